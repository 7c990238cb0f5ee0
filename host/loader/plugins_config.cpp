#include "loader/plugins_config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "loader/plugin_loader.hpp"

namespace ork {
namespace {

std::string where(const std::string& src, const YAML::Node& n) {
  auto m = n.Mark();
  return src + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

std::string expand(const std::string& s, const std::string& dir) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 2, "${") == 0) {
      size_t end = s.find('}', i + 2);
      if (end == std::string::npos) throw std::runtime_error("unterminated ${ in '" + s + "'");
      std::string expr = s.substr(i + 2, end - i - 2), def;
      bool has_def = false;
      if (auto p = expr.find(":-"); p != std::string::npos) {
        def = expr.substr(p + 2);
        expr = expr.substr(0, p);
        has_def = true;
      }
      if (expr == "CONFIG_DIR") {
        out += dir;
      } else if (const char* v = std::getenv(expr.c_str()); v && *v) {
        out += v;
      } else if (has_def) {
        out += def;
      } else {
        throw std::runtime_error("environment variable " + expr + " is not set");
      }
      i = end + 1;
    } else {
      out += s[i++];
    }
  }
  return out;
}

nlohmann::json to_json(const YAML::Node& n, const std::string& src, const std::string& dir) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = to_json(kv.second, src, dir);
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& e : n) j.push_back(to_json(e, src, dir));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() != "!") {
        if (s == "true" || s == "false") return s == "true";
        if (s == "null" || s == "~") return nullptr;
        char* end = nullptr;
        long long v = std::strtoll(s.c_str(), &end, 10);
        if (!s.empty() && end && *end == '\0') return v;
        double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end && *end == '\0') return d;
      }
      try {
        return expand(s, dir);
      } catch (const std::exception& e) {
        throw std::runtime_error(where(src, n) + ": " + e.what());
      }
    }
    default:
      return nullptr;
  }
}

}  // namespace

PluginsConfig parse_plugins_config(const std::string& yaml, const std::string& source, const std::string& dir) {
  PluginsConfig cfg;
  cfg.source = source;
  cfg.dir = dir;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    throw std::runtime_error(source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                             ": " + e.msg);
  }
  auto fail = [&](const YAML::Node& n, const std::string& field, const std::string& msg) {
    throw std::runtime_error(where(source, n) + ": " + field + ": " + msg);
  };
  if (!root.IsMap()) fail(root, "plugins.yaml", "expected a mapping with a 'plugins:' list");
  cfg.secrets = {{"file", dir + "/secrets.env"}};
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key == "secrets") {
      const YAML::Node& v = kv.second;
      if (!v.IsMap()) fail(v, "secrets", "expected a mapping {file, env_prefix}");
      for (const auto& s : v) {
        const std::string k = s.first.as<std::string>();
        if (k != "file" && k != "env_prefix")
          fail(s.first, "secrets." + k, "unknown field (expected file, env_prefix)");
        if (!s.second.IsScalar() && !s.second.IsNull()) fail(s.second, "secrets." + k, "expected a string");
        cfg.secrets[k] = s.second.IsNull() ? std::string() : expand(s.second.Scalar(), dir);
      }
    } else if (key != "plugins") {
      fail(kv.first, key, "unknown field (expected plugins, secrets)");
    }
  }
  YAML::Node list = root["plugins"];
  if (!list || !list.IsSequence()) fail(root, "plugins", "expected a list of plugins");
  static const std::set<std::string> kinds{"state", "object", "executor", "importer"};
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& p = list[i];
    std::string field = "plugins[" + std::to_string(i) + "]";
    if (!p.IsMap()) fail(p, field, "expected a mapping");
    PluginSpec s;
    s.where = where(source, p);
    for (const auto& kv : p) {
      std::string k = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      auto scalar = [&]() {
        if (!v.IsScalar()) fail(v, field + "." + k, "expected a string");
        return to_json(v, source, dir).is_string() ? expand(v.Scalar(), dir) : v.Scalar();
      };
      if (k == "kind") {
        s.kind = scalar();
        if (!kinds.count(s.kind)) fail(v, field + ".kind", "must be one of state, object, executor, importer");
      } else if (k == "name") {
        s.name = scalar();
      } else if (k == "library") {
        s.library = scalar();
      } else if (k == "default") {
        s.is_default = scalar() == "true";
      } else if (k == "config") {
        if (!v.IsMap() && !v.IsNull()) fail(v, field + ".config", "expected a mapping");
        if (v.IsMap()) s.config = to_json(v, source, dir);
      } else {
        fail(kv.first, field + "." + k, "unknown field (expected kind, name, library, default, config)");
      }
    }
    if (s.kind.empty()) fail(p, field + ".kind", "missing");
    if (s.library.empty()) fail(p, field + ".library", "missing");
    if (s.name.empty()) s.name = s.kind;
    if (!seen.insert(s.kind + "/" + s.name).second)
      fail(p, field + ".name", "duplicate " + s.kind + " plugin name '" + s.name + "'");
    cfg.plugins.push_back(std::move(s));
  }
  return cfg;
}

PluginsConfig load_plugins_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot read plugins file");
  std::stringstream ss;
  ss << in.rdbuf();
  auto dir = std::filesystem::absolute(path).parent_path().string();
  return parse_plugins_config(ss.str(), path, dir);
}

PluginsConfig default_plugins_config(const std::string& home) {
  PluginsConfig cfg;
  cfg.source = "<embedded default>";
  cfg.dir = home;
  cfg.plugins.push_back({"state", "sqlite", "ork-state-sqlite", {{"path", home + "/state.db"}}, false, cfg.source});
  cfg.plugins.push_back({"object", "local", "ork-object-local", {{"root", home + "/objects"}}, false, cfg.source});
  cfg.plugins.push_back({"executor", "local", "ork-exec-subprocess", nlohmann::json::object(), true, cfg.source});
  if (!find_plugin_library("ork-dbt-import").empty())  // `import: - dbt: ./path` when the plugin is installed
    cfg.plugins.push_back({"importer", "dbt", "ork-dbt-import", nlohmann::json::object(), false, cfg.source});
  cfg.secrets = {{"file", home + "/secrets.env"}};
  return cfg;
}

}  // namespace ork
