// The project configuration `ork.yaml` as the worker reads it: `executors:` maps a custom executor name (a task's
// `executor:`) to a built-in runtime or to a Python @executor class ("module:Class") with its config.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace ork::worker {

struct CustomExecutor {
  std::string name;
  std::string type;         // "python", "rust", "cpp", "shell" or "module:Class"
  nlohmann::json config;    // the `config:` map (JSON), or an empty object
  std::string source;       // ork.yaml path, for messages
  std::string project_dir;  // the folder holding ork.yaml (on PYTHONPATH, so `type` modules resolve from there)
};

// The ork.yaml for a task: $ORK_PROJECT_CONFIG when set, else the nearest ork.yaml from base_dir upwards; "" if none.
std::string find_project_config(const std::string& base_dir, const std::map<std::string, std::string>& env);

// The definition of executor `name` in the ork.yaml at `path`; nullopt when that file does not define it. Throws
// std::runtime_error ("ork.yaml:line:column: executors.x.type: ...") when the file or the entry is invalid.
std::optional<CustomExecutor> load_custom_executor(const std::string& path, const std::string& name);

}  // namespace ork::worker
