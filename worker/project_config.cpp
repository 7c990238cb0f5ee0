#include "project_config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace ork::worker {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string at(const std::string& src, const YAML::Node& n) {
  auto m = n.Mark();
  return src + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

// YAML 1.2 core-schema scalars: unquoted true/false/null/numbers keep their type, quoted ones are strings.
json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json j = json::object();
      for (const auto& kv : n) j[kv.first.Scalar()] = to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      json j = json::array();
      for (const auto& e : n) j.push_back(to_json(e));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;
      if (s == "true" || s == "false") return s == "true";
      if (s == "null" || s == "~") return nullptr;
      char* end = nullptr;
      long long v = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && end && *end == '\0') return v;
      double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end && *end == '\0') return d;
      return s;
    }
    default:
      return nullptr;
  }
}

bool is_builtin(const std::string& t) {
  return t == "python" || t == "rust" || t == "cpp" || t == "shell" || t == "process";
}

}  // namespace

std::string find_project_config(const std::string& base_dir, const std::map<std::string, std::string>& env) {
  if (auto it = env.find("ORK_PROJECT_CONFIG"); it != env.end() && !it->second.empty()) return it->second;
  std::error_code ec;
  for (fs::path d = fs::absolute(base_dir, ec).lexically_normal(); !d.empty(); d = d.parent_path()) {
    if (fs::is_regular_file(d / "ork.yaml", ec)) return (d / "ork.yaml").string();
    if (d == d.parent_path()) break;
  }
  return "";
}

std::optional<CustomExecutor> load_custom_executor(const std::string& path, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw std::runtime_error(path + ":0:0: cannot read the project config");
  } catch (const YAML::ParserException& e) {
    throw std::runtime_error(path + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                             ": YAML syntax error: " + e.msg);
  }
  if (!root.IsMap()) return std::nullopt;
  const YAML::Node executors = root["executors"];
  if (!executors) return std::nullopt;
  if (!executors.IsMap())
    throw std::runtime_error(at(path, executors) + ": executors: expected a map of name to {type, config}");
  const YAML::Node entry = executors[name];
  if (!entry) return std::nullopt;
  const std::string field = "executors." + name;
  if (!entry.IsMap())
    throw std::runtime_error(at(path, entry) + ": " + field + ": expected a map with 'type' (and 'config')");
  for (const auto& kv : entry) {
    const std::string key = kv.first.Scalar();
    if (key != "type" && key != "config")
      throw std::runtime_error(at(path, kv.first) + ": " + field + "." + key +
                               ": unknown field (expected type, config)");
  }
  CustomExecutor ex;
  ex.name = name;
  ex.source = path;
  ex.project_dir = fs::absolute(path).parent_path().lexically_normal().string();
  const YAML::Node type = entry["type"];
  if (!type || !type.IsScalar() || type.Scalar().empty())
    throw std::runtime_error(at(path, type ? type : entry) + ": " + field +
                             ".type: missing; expected a built-in runtime (python, rust, cpp, shell) or "
                             "'module:Class' of a Python @executor");
  ex.type = type.Scalar();
  const auto colon = ex.type.find(':');
  if (!is_builtin(ex.type) && (colon == std::string::npos || colon == 0 || colon + 1 == ex.type.size()))
    throw std::runtime_error(at(path, type) + ": " + field +
                             ".type: expected a built-in runtime (python, rust, cpp, shell) or 'module:Class' of a "
                             "Python @executor, got '" +
                             ex.type + "'");
  const YAML::Node config = entry["config"];
  if (config && !config.IsNull() && !config.IsMap())
    throw std::runtime_error(at(path, config) + ": " + field + ".config: expected a map");
  ex.config = config && config.IsMap() ? to_json(config) : json::object();
  return ex;
}

}  // namespace ork::worker
