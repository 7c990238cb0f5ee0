// plugins.yaml: which plugin library provides each interface, under which logical name, with which config.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ork {

struct PluginSpec {
  std::string kind;     // state | object | executor | importer
  std::string name;     // logical name; executors are picked by it (task `worker:`)
  std::string library;  // file name looked up on ORK_PLUGIN_PATH, or a path
  nlohmann::json config = nlohmann::json::object();
  bool is_default = false;  // the default executor
  std::string where;        // "plugins.yaml:12:5" for error messages
};

struct PluginsConfig {
  std::vector<PluginSpec> plugins;
  std::string source;  // file path or "<builtin>"
  std::string dir;     // directory of the file (${CONFIG_DIR})
  // The local secret source (`secrets:` block): {"file": path, "env_prefix": "ORK_SECRET_"}; the file defaults to
  // secrets.env beside plugins.yaml (or in the home folder for the embedded default).
  nlohmann::json secrets = nlohmann::json::object();
};

// Parses plugins.yaml. `${VAR}` / `${VAR:-default}` in string values are expanded from the environment, and
// `${CONFIG_DIR}` is the file's directory. Throws std::runtime_error naming file:line:column and the field.
PluginsConfig load_plugins_config(const std::string& path);
PluginsConfig parse_plugins_config(const std::string& yaml, const std::string& source, const std::string& dir);

// The embedded default: SQLite state, local-folder objects and the subprocess executor under `home` (e.g. .ork/).
PluginsConfig default_plugins_config(const std::string& home);

}  // namespace ork
