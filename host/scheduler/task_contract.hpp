// What the engine does to a task at dispatch and at completion besides moving states: render input and env
// expressions, read env files, resolve secrets, and validate input and output against the declared types.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/model.hpp"
#include "core/secrets.hpp"
#include "core/types.hpp"

namespace ork {

// A task input that cannot be built: an expression that does not resolve, a secret that cannot be read, input that
// does not match the input type. error() is the task error object {type, message, details}; `retryable` is false
// when the same upstream outputs would give the same failure.
class TaskInputError : public std::runtime_error {
 public:
  TaskInputError(json error, bool retryable)
      : std::runtime_error(error.value("message", std::string())), error_(std::move(error)), retryable_(retryable) {}
  const json& error() const { return error_; }
  bool retryable() const { return retryable_; }

 private:
  json error_;
  bool retryable_;
};

// One attempt's rendered input and environment.
struct PreparedTask {
  json input = json::object();
  json env = json::object();          // plain variables: these go into spec.json
  json secret_env = json::object();   // NAME -> secret value: never written to the object store
  json secret_files = json::array();  // [{path, value}] for `secrets:` file mounts
  bool has_secrets() const { return !secret_env.empty() || !secret_files.empty(); }
  // What the worker gets in ORK_TASK_SECRETS (see docs/workflows.md, "Secrets").
  json secrets_payload() const { return {{"env", secret_env}, {"files", secret_files}}; }
};

// The compiled contracts of one workflow definition, built once per run the engine drives.
class TaskContracts {
 public:
  TaskContracts(const WorkflowDefinition& wf, const SecretSource& secrets);

  // Renders def.input against run input, upstream outputs (name -> output), the context object and the foreach
  // item; merges run input and upstream outputs in (the implicit `input.<task>`); validates the result against the
  // input type (filling defaults); renders env and env files; reads secrets. Throws TaskInputError.
  PreparedTask prepare(const TaskDefinition& def, const json& run_input, const json& upstream, const json& ctx,
                       const json* item) const;

  // Checks a successful attempt's output against the output type (filling defaults). nullopt when it matches or the
  // task is untyped or has validate_output: false; else the task error object.
  std::optional<json> check_output(const TaskDefinition& def, json& output) const;

 private:
  std::map<std::string, std::string> env_file(const std::string& rel) const;

  const WorkflowDefinition& wf_;
  const SecretSource& secrets_;
  TypeSystem types_;
  std::string types_error_;  // why the stored types do not compile ("" when they do)
  std::map<std::string, TypePtr> input_types_, output_types_;
  std::map<std::string, std::string> type_errors_;  // task -> why its type spec does not compile
  // Env files read once per run (a run sees one version of each file).
  mutable std::map<std::string, std::map<std::string, std::string>> env_files_;
};

}  // namespace ork
