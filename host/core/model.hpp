// Workflow definitions as the YAML loader produces them and the scheduler consumes them (seed 003 TaskDefinition).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ork {

using json = nlohmann::json;

// Where a definition came from, for error messages: file:line:column.
struct SourceLoc {
  std::string file;
  int line = 0;
  int column = 0;
};

struct Parallelism {
  enum class Kind { None, Static, CountRef, ForEach };
  Kind kind = Kind::None;
  int count = 0;    // Static
  std::string ref;  // CountRef / ForEach: "<task>.<field>[.<field>...]"
};

struct Resources {
  int64_t cpu_millis = 0;  // 0 = executor default
  int64_t memory_mb = 0;
};

// An env value: a literal (may hold {{ task.field }} expressions) or a secret reference (`secret: name`).
struct EnvValue {
  std::string value;
  std::optional<std::string> secret;
};

struct SecretFile {
  std::string name, secret, path;
};

enum class OnFailure { Skip, Run };

struct TaskDefinition {
  std::string name;
  std::string executor;  // the runtime: shell | python | rust | cpp | dbt... (YAML `executor:`)
  std::string worker;    // executor plugin's logical name from plugins.yaml (YAML `worker:`); empty = default
  std::optional<std::string> file, config_file, command, function, image;
  std::vector<std::string> command_args;  // `command:` given as a list (exec form, no shell); `command` is then unset
  // Container tasks: the input JSON is written to `input: {to_file}` before the image starts, the output is read
  // from `output: {from_file}` after it exits (paths inside the container).
  std::optional<std::string> input_to_file, output_from_file;
  json input = json::object();
  std::vector<std::string> depends_on;
  int timeout_seconds = 3600;
  int retries = 0;
  int retry_delay_seconds = 0;
  Parallelism parallel;  // `parallel:` or `foreach:`
  std::optional<int> concurrency;
  Resources resources;
  std::map<std::string, EnvValue> env;
  std::vector<SecretFile> secrets;
  std::optional<std::string> env_file;  // dotenv file, relative to the workflow file; read at dispatch
  OnFailure on_failure = OnFailure::Skip;
  json input_type = nullptr;   // type spec (JSON form of the YAML): `input: TypeName` or `input_type:`; null = untyped
  json output_type = nullptr;  // `output:` / `output_type:`; null = untyped
  bool validate_output = true;
  std::string description;  // free text (importers fill it from the project's docs)
  json meta = nullptr;      // free-form metadata kept with the task (e.g. `dbt:` node info); null = none
  SourceLoc loc;
};

struct WorkflowDefinition {
  std::string name;
  std::optional<std::string> schedule;
  std::optional<int> concurrency;     // attempts in flight at once in one run of this workflow
  std::vector<TaskDefinition> tasks;  // in file order
  json types = json::object();
  json imports = json::array();
  std::optional<std::string> env_file;  // workflow-wide dotenv file, under each task's own env_file and env
  std::string base_dir;                 // absolute directory the workflow's relative paths resolve against
  std::string source_file;              // absolute path of the YAML file, "" when loaded from a string

  const TaskDefinition* find(const std::string& task) const;
};

// `command` as stored and as spec.json carries it: the string, the exec-form list, or null.
json command_json(const TaskDefinition& t);

void to_json(json& j, const TaskDefinition& t);
void from_json(const json& j, TaskDefinition& t);
void to_json(json& j, const WorkflowDefinition& w);
void from_json(const json& j, WorkflowDefinition& w);

}  // namespace ork
