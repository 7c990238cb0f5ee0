// dbt project → Ork tasks. Nodes (models, seeds, snapshots) come from the project files, or from
// target/manifest.json when it is newer than every project file; tests attach to the node they test.
#include "dbt_project.hpp"

#include <fnmatch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <ork/suggest.hpp>
#include <set>
#include <sstream>
#include <string_view>

#include "jinja_scan.hpp"

namespace ork::dbt {

namespace fs = std::filesystem;

namespace {

std::string join_lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "\n") + x;
  return s;
}

}  // namespace

ImportError::ImportError(std::vector<std::string> problems)
    : std::runtime_error(join_lines(problems)), problems_(std::move(problems)) {}

namespace {

struct Ref {
  std::string package, name;
  std::string where;  // file:line:column
};

// A model, seed or snapshot.
struct Node {
  std::string kind;    // model | seed | snapshot
  std::string name;    // dbt name (unique across kinds)
  std::string dotted;  // task name without "dbt.": staging.stg_orders, seeds.country_codes, snapshots.x
  std::string file;    // shown path (relative to the workflow)
  std::string where;   // file:line of the definition
  std::vector<Ref> refs;
  std::vector<std::string> deps;  // resolved node names (manifest: given directly)
  std::vector<std::string> sources;
  std::string materialized, description;
  std::vector<std::string> tags;
  json columns = json::object();
  std::vector<std::string> vars;
  std::vector<std::string> tests;      // test names attached to this node
  std::vector<std::string> test_deps;  // other nodes the tests need (relationships)
};

Node make_node(std::string kind, std::string name, std::string dotted, std::string file, std::string where) {
  Node n;
  n.kind = std::move(kind);
  n.name = std::move(name);
  n.dotted = std::move(dotted);
  n.file = std::move(file);
  n.where = std::move(where);
  return n;
}

struct SourceTable {
  std::string source, table, description;
  std::vector<std::string> tests;
};

class Importer {
 public:
  Importer(const json& request, const json& defaults) : defaults_(defaults) {
    const json& src = request.at("source");
    base_ = request.value("base_dir", std::string());
    if (!src.contains("dbt") || !src["dbt"].is_string() || src["dbt"].get<std::string>().empty())
      throw ImportError({"import: 'dbt' must be the path of a dbt project (e.g. '- dbt: ./transform')"});
    shown_root_ = fs::path(src["dbt"].get<std::string>()).lexically_normal().string();
    while (shown_root_.size() > 1 && shown_root_.back() == '/') shown_root_.pop_back();
    root_ = fs::path(shown_root_).is_absolute() ? fs::path(shown_root_) : fs::path(base_) / shown_root_;
    options_ = src;
    for (const auto& [k, v] : src.items()) {
      static const std::set<std::string> known{"dbt", "models", "target", "profiles_dir", "vars", "manifest", "tests"};
      if (!known.count(k))
        problems_.push_back("import: unknown option '" + k +
                            "' (expected dbt, models, target, profiles_dir, vars, manifest, tests)");
      else if ((k == "target" || k == "profiles_dir" || k == "manifest") && !v.is_string())
        problems_.push_back("import: " + k + ": expected a string, got " + v.dump());
      else if (k == "tests" && !v.is_boolean())
        problems_.push_back("import: tests: expected true or false, got " + v.dump());
    }
  }

  json run() {
    read_project();
    fail_if_problems();
    const std::string mode = options_.value("manifest", std::string("auto"));
    if (mode != "auto" && mode != "always" && mode != "never")
      throw ImportError({"import: manifest: expected auto, always or never, got '" + mode + "'"});
    fs::path manifest = root_ / target_path_ / "manifest.json";
    std::error_code ec;
    bool have_manifest = fs::is_regular_file(manifest, ec);
    if (mode == "always" && !have_manifest)
      throw ImportError({shown(manifest) + ": not found (import option manifest: always)"});
    if (have_manifest && (mode == "always" || (mode == "auto" && manifest_is_fresh(manifest)))) {
      from_ = "manifest";
      read_manifest(manifest);
    } else {
      from_ = "sources";
      read_sources();
    }
    fail_if_problems();
    resolve();
    fail_if_problems();
    check_cycles();
    fail_if_problems();
    return emit();
  }

 private:
  // ---- helpers ----
  std::string shown(const fs::path& p) const {
    fs::path rel = fs::path(p).lexically_relative(root_);
    if (rel.empty() || rel.native().rfind("..", 0) == 0) return p.string();
    return (fs::path(shown_root_) / rel).lexically_normal().string();
  }
  std::string at(const fs::path& p, const YAML::Mark& m) const {
    return shown(p) + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  void fail_if_problems() {
    if (!problems_.empty()) throw ImportError(problems_);
  }
  static std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Parses a YAML file; a syntax error becomes a problem and an empty node.
  YAML::Node load_yaml(const fs::path& p) {
    try {
      return YAML::Load(read_text(p));
    } catch (const YAML::Exception& e) {
      problems_.push_back(at(p, e.mark) + ": YAML syntax error: " + e.msg);
      return YAML::Node();
    }
  }
  std::vector<std::string> path_list(const YAML::Node& proj, const fs::path& file, const char* key, const char* legacy,
                                     const char* fallback) {
    const YAML::Node n = proj[key] || !legacy ? proj[key] : proj[legacy];  // Node's operator= copies content
    if (!n) return {fallback};
    std::vector<std::string> out;
    if (n.IsScalar()) return {n.Scalar()};
    if (!n.IsSequence()) {
      problems_.push_back(at(file, n.Mark()) + ": " + key + ": expected a list of folders");
      return {fallback};
    }
    for (const auto& x : n) {
      if (!x.IsScalar()) {
        problems_.push_back(at(file, x.Mark()) + ": " + key + ": expected a folder name");
        continue;
      }
      out.push_back(x.Scalar());
    }
    return out;
  }

  // ---- dbt_project.yml ----
  void read_project() {
    std::error_code ec;
    if (!fs::is_directory(root_, ec)) throw ImportError({shown_root_ + ": dbt project folder not found"});
    fs::path file = root_ / "dbt_project.yml";
    if (!fs::is_regular_file(file, ec)) throw ImportError({shown(file) + ": not found (not a dbt project folder)"});
    const YAML::Node proj = load_yaml(file);
    fail_if_problems();
    if (!proj.IsMap()) throw ImportError({shown(file) + ":1:1: expected a mapping with 'name'"});
    if (!proj["name"] || !proj["name"].IsScalar())
      problems_.push_back(at(file, proj.Mark()) + ": name: missing the project name");
    else
      project_ = proj["name"].Scalar();
    model_paths_ = path_list(proj, file, "model-paths", "source-paths", "models");
    seed_paths_ = path_list(proj, file, "seed-paths", "data-paths", "seeds");
    snapshot_paths_ = path_list(proj, file, "snapshot-paths", nullptr, "snapshots");
    test_paths_ = path_list(proj, file, "test-paths", nullptr, "tests");
    if (proj["target-path"] && proj["target-path"].IsScalar()) target_path_ = proj["target-path"].Scalar();
    if (proj["vars"] && !proj["vars"].IsMap())
      problems_.push_back(at(file, proj["vars"].Mark()) + ": vars: expected a mapping");
    else if (proj["vars"])
      for (const auto& kv : proj["vars"])
        project_vars_[kv.first.Scalar()] = kv.second.IsScalar() ? kv.second.Scalar() : "";
    if (options_.contains("vars") && !options_["vars"].is_object())
      problems_.push_back("import: vars: expected a mapping of dbt vars");
  }

  // Every file under the project's folders with one of the extensions, sorted for a stable order.
  std::vector<fs::path> files_under(const std::vector<std::string>& dirs,
                                    std::initializer_list<std::string_view> exts) const {
    std::vector<fs::path> out;
    for (const auto& d : dirs) {
      std::error_code ec;
      fs::path dir = root_ / d;
      if (!fs::is_directory(dir, ec)) continue;
      for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        const std::string ext = it->path().extension().string();
        if (std::find(exts.begin(), exts.end(), ext) != exts.end()) out.push_back(it->path());
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // dotted path of `file` below whichever of `dirs` holds it, without the extension.
  std::string dotted_below(const fs::path& file, const std::vector<std::string>& dirs) const {
    for (const auto& d : dirs) {
      fs::path rel = file.lexically_relative(root_ / d);
      if (rel.empty() || rel.native().rfind("..", 0) == 0) continue;
      std::string s;
      for (const auto& part : rel.parent_path()) s += part.string() + ".";
      return s + file.stem().string();
    }
    return file.stem().string();
  }

  bool manifest_is_fresh(const fs::path& manifest) const {
    std::error_code ec;
    auto mt = fs::last_write_time(manifest, ec);
    if (ec) return false;
    auto newer = [&](const fs::path& p) {
      std::error_code e2;
      auto t = fs::last_write_time(p, e2);
      return !e2 && t > mt;
    };
    if (newer(root_ / "dbt_project.yml")) return false;
    for (const auto* dirs : {&model_paths_, &seed_paths_, &snapshot_paths_, &test_paths_})
      for (const auto& f : files_under(*dirs, {".sql", ".yml", ".yaml", ".csv"}))
        if (newer(f)) return false;
    return true;
  }

  Node& add_node(Node n) {
    auto it = nodes_.find(n.name);
    if (it != nodes_.end()) {
      problems_.push_back(n.where + ": duplicate " + n.kind + " name '" + n.name + "' (also " + it->second.kind +
                          " at " + it->second.where + ")");
      return it->second;
    }
    order_.push_back(n.name);
    return nodes_.emplace(n.name, std::move(n)).first->second;
  }

  // Reads ref/source/config/var calls of one SQL body into `n`.
  void take_calls(Node& n, const fs::path& file, const std::vector<JinjaCall>& calls) {
    for (const auto& c : calls) {
      const std::string where = shown(file) + ":" + std::to_string(c.line) + ":" + std::to_string(c.column);
      if (c.fn == "ref") {
        std::string a = arg_string(c, 0), b = arg_string(c, 1);
        if (a.empty()) {
          problems_.push_back(where + ": ref(): expected a quoted model name");
        } else if (b.empty()) {
          n.refs.push_back({"", a, where});
        } else {
          n.refs.push_back({a, b, where});
        }
      } else if (c.fn == "source") {
        std::string s = arg_string(c, 0), t = arg_string(c, 1);
        if (s.empty() || t.empty())
          problems_.push_back(where + ": source(): expected source('source_name', 'table_name')");
        else
          n.sources.push_back(s + "." + t);
      } else if (c.fn == "config") {
        for (const auto& a : c.args) {
          if (a.key == "materialized" && a.value.is_string()) n.materialized = a.value.get<std::string>();
          if (a.key == "tags") {
            if (a.value.is_string()) n.tags.push_back(a.value.get<std::string>());
            if (a.value.is_array())
              for (const auto& t : a.value) n.tags.push_back(t.get<std::string>());
          }
        }
      } else if (c.fn == "var") {
        std::string v = arg_string(c, 0);
        if (!v.empty() && std::find(n.vars.begin(), n.vars.end(), v) == n.vars.end()) n.vars.push_back(v);
      }
    }
  }

  // ---- project files ----
  void read_sources() {
    for (const auto& f : files_under(model_paths_, {".sql"})) {
      std::string text = read_text(f);
      JinjaScan s = scan_jinja(text);
      if (!s.error.empty()) problems_.push_back(shown(f) + ": " + s.error);
      Node n = make_node("model", f.stem().string(), dotted_below(f, model_paths_), shown(f), shown(f) + ":1");
      n.materialized = "view";
      take_calls(n, f, s.calls);
      add_node(std::move(n));
    }
    for (const auto& f : files_under(seed_paths_, {".csv"}))
      add_node(
          make_node("seed", f.stem().string(), "seeds." + dotted_below(f, seed_paths_), shown(f), shown(f) + ":1"));
    for (const auto& f : files_under(snapshot_paths_, {".sql"})) {
      std::string text = read_text(f);
      JinjaScan s = scan_jinja(text);
      if (!s.error.empty()) problems_.push_back(shown(f) + ": " + s.error);
      for (size_t k = 0; k < s.snapshots.size(); ++k) {
        const SnapshotBlock& b = s.snapshots[k];
        const int next = k + 1 < s.snapshots.size() ? s.snapshots[k + 1].line : INT_MAX;
        if (b.name.empty()) {
          problems_.push_back(shown(f) + ":" + std::to_string(b.line) + ": '{% snapshot %}' without a name");
          continue;
        }
        Node n =
            make_node("snapshot", b.name, "snapshots." + b.name, shown(f), shown(f) + ":" + std::to_string(b.line));
        n.materialized = "snapshot";
        std::vector<JinjaCall> inside;
        for (const auto& c : s.calls)
          if (c.line >= b.line && c.line < next) inside.push_back(c);
        take_calls(n, f, inside);
        add_node(std::move(n));
      }
    }
    for (const auto* dirs : {&model_paths_, &seed_paths_, &snapshot_paths_})
      for (const auto& f : files_under(*dirs, {".yml", ".yaml"})) read_properties(f);
    for (const auto& f : files_under(test_paths_, {".sql"})) {  // singular tests: attach to every node they ref
      JinjaScan s = scan_jinja(read_text(f));
      if (!s.error.empty()) problems_.push_back(shown(f) + ": " + s.error);
      std::vector<Ref> refs;
      for (const auto& c : s.calls)
        if (c.fn == "ref" && !arg_string(c, 0).empty()) {
          std::string b = arg_string(c, 1);
          refs.push_back({b.empty() ? "" : arg_string(c, 0), b.empty() ? arg_string(c, 0) : b,
                          shown(f) + ":" + std::to_string(c.line)});
        }
      std::vector<std::string> targets;
      for (const auto& r : refs) {
        if (!local(r.package)) continue;
        if (!nodes_.count(r.name)) {
          problems_.push_back(r.where + ": ref('" + r.name + "'): unknown model" + suggest(r.name));
          continue;
        }
        targets.push_back(r.name);
      }
      for (const auto& t : targets) {
        nodes_[t].tests.push_back(f.stem().string());
        for (const auto& o : targets)
          if (o != t) nodes_[t].test_deps.push_back(o);
      }
    }
  }

  bool local(const std::string& package) const { return package.empty() || package == project_; }

  // Tests listed under `tests:` / `data_tests:` of a model, column, seed, snapshot or source table.
  void read_tests(const fs::path& f, const YAML::Node& owner, const std::string& column, std::vector<std::string>& out,
                  std::vector<std::pair<std::string, std::string>>* rel_refs) {
    for (const char* key : {"tests", "data_tests"}) {
      YAML::Node list = owner[key];
      if (!list) continue;
      if (!list.IsSequence()) {
        problems_.push_back(at(f, list.Mark()) + ": " + key + ": expected a list of tests");
        continue;
      }
      for (const auto& t : list) {
        std::string name;
        if (t.IsScalar()) {
          name = t.Scalar();
        } else if (t.IsMap() && t.size() > 0) {
          name = t.begin()->first.Scalar();
          YAML::Node args = t.begin()->second;
          if (args.IsMap() && args["to"] && args["to"].IsScalar() && rel_refs) {
            JinjaScan s = scan_jinja("{{ " + args["to"].Scalar() + " }}");
            for (const auto& c : s.calls)
              if (c.fn == "ref" && !arg_string(c, 0).empty())
                rel_refs->push_back(
                    {arg_string(c, 1).empty() ? arg_string(c, 0) : arg_string(c, 1), at(f, args["to"].Mark())});
          }
        } else {
          problems_.push_back(at(f, t.Mark()) + ": expected a test name or a mapping {test_name: {args}}");
          continue;
        }
        out.push_back(column.empty() ? name : name + "(" + column + ")");
      }
    }
  }

  // A properties (.yml) file: docs, tests and sources of models, seeds and snapshots.
  void read_properties(const fs::path& f) {
    const YAML::Node doc = load_yaml(f);
    if (!doc || doc.IsNull()) return;
    if (!doc.IsMap()) {
      problems_.push_back(at(f, doc.Mark()) + ": expected a mapping (version: 2, models: ...)");
      return;
    }
    for (const char* section : {"models", "seeds", "snapshots"}) {
      YAML::Node list = doc[section];
      if (!list) continue;
      if (!list.IsSequence()) {
        problems_.push_back(at(f, list.Mark()) + ": " + section + ": expected a list");
        continue;
      }
      for (const auto& m : list) {
        if (!m.IsMap() || !m["name"] || !m["name"].IsScalar()) {
          problems_.push_back(at(f, m.Mark()) + ": " + section + ": each entry needs a 'name'");
          continue;
        }
        const std::string name = m["name"].Scalar();
        auto it = nodes_.find(name);
        if (it == nodes_.end()) {
          problems_.push_back(at(f, m["name"].Mark()) + ": " + section + ": '" + name +
                              "' is described here but no such file exists" + suggest(name));
          continue;
        }
        Node& n = it->second;
        if (m["description"] && m["description"].IsScalar()) n.description = m["description"].Scalar();
        if (YAML::Node cfg = m["config"]; cfg && cfg.IsMap()) {
          if (cfg["materialized"] && cfg["materialized"].IsScalar()) n.materialized = cfg["materialized"].Scalar();
          if (cfg["tags"] && cfg["tags"].IsSequence())
            for (const auto& t : cfg["tags"]) n.tags.push_back(t.Scalar());
        }
        std::vector<std::pair<std::string, std::string>> rel;
        read_tests(f, m, "", n.tests, &rel);
        if (YAML::Node cols = m["columns"]; cols) {
          if (!cols.IsSequence()) {
            problems_.push_back(at(f, cols.Mark()) + ": columns: expected a list");
          } else {
            for (const auto& c : cols) {
              if (!c.IsMap() || !c["name"] || !c["name"].IsScalar()) {
                problems_.push_back(at(f, c.Mark()) + ": columns: each entry needs a 'name'");
                continue;
              }
              const std::string col = c["name"].Scalar();
              json info = json::object();
              if (c["description"] && c["description"].IsScalar()) info["description"] = c["description"].Scalar();
              if (c["data_type"] && c["data_type"].IsScalar()) info["data_type"] = c["data_type"].Scalar();
              n.columns[col] = info;
              read_tests(f, c, col, n.tests, &rel);
            }
          }
        }
        for (const auto& [target, where] : rel) {
          if (!nodes_.count(target))
            problems_.push_back(where + ": relationships test: ref('" + target + "'): unknown model" + suggest(target));
          else if (target != name)
            n.test_deps.push_back(target);
        }
      }
    }
    if (YAML::Node srcs = doc["sources"]; srcs) {
      if (!srcs.IsSequence()) {
        problems_.push_back(at(f, srcs.Mark()) + ": sources: expected a list");
        return;
      }
      for (const auto& s : srcs) {
        if (!s.IsMap() || !s["name"] || !s["name"].IsScalar()) {
          problems_.push_back(at(f, s.Mark()) + ": sources: each entry needs a 'name'");
          continue;
        }
        YAML::Node tables = s["tables"];
        if (!tables) continue;
        if (!tables.IsSequence()) {
          problems_.push_back(at(f, tables.Mark()) + ": sources." + s["name"].Scalar() + ".tables: expected a list");
          continue;
        }
        for (const auto& t : tables) {
          if (!t.IsMap() || !t["name"] || !t["name"].IsScalar()) {
            problems_.push_back(at(f, t.Mark()) + ": tables: each entry needs a 'name'");
            continue;
          }
          SourceTable st{s["name"].Scalar(), t["name"].Scalar(), "", {}};
          if (t["description"] && t["description"].IsScalar()) st.description = t["description"].Scalar();
          read_tests(f, t, "", st.tests, nullptr);
          if (YAML::Node cols = t["columns"]; cols && cols.IsSequence())
            for (const auto& c : cols)
              if (c.IsMap() && c["name"] && c["name"].IsScalar())
                read_tests(f, c, c["name"].Scalar(), st.tests, nullptr);
          sources_[st.source + "." + st.table] = std::move(st);
        }
      }
    }
  }

  // ---- target/manifest.json ----
  void read_manifest(const fs::path& file) {
    json m = json::parse(read_text(file), nullptr, false);
    if (m.is_discarded() || !m.is_object() || !m.contains("nodes") || !m["nodes"].is_object())
      throw ImportError({shown(file) + ": not a dbt manifest (expected JSON with a 'nodes' object)"});
    if (m.contains("metadata") && m["metadata"].contains("project_name") && m["metadata"]["project_name"].is_string())
      project_ = m["metadata"]["project_name"].get<std::string>();
    std::map<std::string, std::string> by_id;  // unique_id -> node name
    std::vector<std::pair<std::string, const json*>> tests;
    for (const auto& [id, n] : m["nodes"].items()) {
      const std::string type = n.value("resource_type", std::string());
      if (type == "test") {
        tests.emplace_back(id, &n);
        continue;
      }
      if (type != "model" && type != "seed" && type != "snapshot") continue;
      if (n.value("package_name", project_) != project_) continue;  // installed packages: external
      const std::string name = n.value("name", std::string());
      const std::string path = n.value("original_file_path", std::string());
      std::vector<std::string> fqn = n.value("fqn", std::vector<std::string>{});
      std::string dotted;
      if (type == "snapshot") {
        dotted = "snapshots." + name;
      } else {
        for (size_t i = 1; i < fqn.size(); ++i) dotted += (dotted.empty() ? "" : ".") + fqn[i];
        if (dotted.empty()) dotted = name;
        if (type == "seed") dotted = "seeds." + dotted;
      }
      Node node = make_node(type, name, dotted, shown(root_ / path), shown(file) + ": " + id);
      const json cfg = n.value("config", json::object());
      node.materialized = cfg.value("materialized", std::string());
      if (n.contains("tags") && n["tags"].is_array())
        for (const auto& t : n["tags"])
          if (t.is_string()) node.tags.push_back(t.get<std::string>());
      node.description = n.value("description", std::string());
      if (n.contains("columns") && n["columns"].is_object())
        for (const auto& [c, info] : n["columns"].items()) {
          json ci = json::object();
          if (info.contains("description") && info["description"].is_string() && !info["description"].empty())
            ci["description"] = info["description"];
          if (info.contains("data_type") && info["data_type"].is_string()) ci["data_type"] = info["data_type"];
          node.columns[c] = ci;
        }
      if (n.contains("depends_on") && n["depends_on"].contains("nodes"))
        for (const auto& d : n["depends_on"]["nodes"])
          if (d.is_string()) {
            const std::string dep = d.get<std::string>();
            if (dep.rfind("source.", 0) == 0)
              node.sources.push_back(dep.substr(dep.find('.', 7) + 1));
            else
              node.refs.push_back({"", dep, node.where});  // resolved by unique_id below
          }
      by_id[id] = name;
      add_node(std::move(node));
    }
    // refs hold unique_ids: map them to names; ids outside the project (packages) are dropped.
    for (auto& [name, n] : nodes_) {
      std::vector<Ref> local_refs;
      for (auto& r : n.refs)
        if (auto it = by_id.find(r.name); it != by_id.end()) local_refs.push_back({"", it->second, r.where});
      n.refs = std::move(local_refs);
    }
    for (const auto& [id, t] : tests) {
      std::vector<std::string> deps;
      if (t->contains("depends_on") && (*t)["depends_on"].contains("nodes"))
        for (const auto& d : (*t)["depends_on"]["nodes"])
          if (d.is_string())
            if (auto it = by_id.find(d.get<std::string>()); it != by_id.end()) deps.push_back(it->second);
      std::string owner;
      if (t->contains("attached_node") && (*t)["attached_node"].is_string())
        if (auto it = by_id.find((*t)["attached_node"].get<std::string>()); it != by_id.end()) owner = it->second;
      if (owner.empty() && !deps.empty()) owner = deps.front();
      if (owner.empty()) continue;  // a source test
      Node& n = nodes_[owner];
      n.tests.push_back(t->value("name", id));
      for (const auto& d : deps)
        if (d != owner) n.test_deps.push_back(d);
    }
  }

  // ---- graph ----
  // " (did you mean 'x'?)" for the known model closest to `name` (edit distance under 3), else "".
  std::string suggest(const std::string& name) const {
    std::vector<std::string> names;
    names.reserve(nodes_.size());
    for (const auto& [k, v] : nodes_) names.push_back(k);
    return ork::did_you_mean(name, names, 3);
  }

  void resolve() {
    for (const auto& name : order_) {
      Node& n = nodes_[name];
      for (const auto& r : n.refs) {
        if (!local(r.package)) continue;  // a model of an installed package (dbt_packages/): not imported
        if (!nodes_.count(r.name)) {
          problems_.push_back(r.where + ": ref('" + r.name + "'): unknown model" + suggest(r.name));
          continue;
        }
        if (r.name == n.name) {
          problems_.push_back(r.where + ": ref('" + r.name + "'): a model cannot ref itself");
          continue;
        }
        if (std::find(n.deps.begin(), n.deps.end(), r.name) == n.deps.end()) n.deps.push_back(r.name);
      }
    }
  }

  void check_cycles() {
    enum Color { White, Grey, Black };
    std::map<std::string, Color> color;
    std::vector<std::string> stack;
    std::function<void(const std::string&)> visit = [&](const std::string& u) {
      color[u] = Grey;
      stack.push_back(u);
      for (const auto& v : nodes_[u].deps) {
        if (color[v] == Grey) {
          std::string path;
          for (auto it = std::find(stack.begin(), stack.end(), v); it != stack.end(); ++it) path += *it + " -> ";
          problems_.push_back(nodes_[v].where + ": dependency cycle: " + path + v);
        } else if (color[v] == White) {
          visit(v);
        }
      }
      stack.pop_back();
      color[u] = Black;
    };
    for (const auto& n : order_)
      if (color[n] == White) visit(n);
  }

  // ---- selection and output ----
  std::set<std::string> selected() {
    std::set<std::string> out;
    if (!options_.contains("models")) {
      out.insert(order_.begin(), order_.end());
      return out;
    }
    json pats = options_["models"];
    if (pats.is_string()) pats = json::array({pats});
    if (!pats.is_array()) throw ImportError({"import: models: expected a list of globs such as 'staging.*'"});
    std::vector<std::string> bad;
    for (const auto& p : pats) {
      if (!p.is_string()) throw ImportError({"import: models: expected strings, got " + p.dump()});
      std::string pat = p.get<std::string>();
      if (pat.rfind("dbt.", 0) == 0) pat = pat.substr(4);
      bool any = false;
      for (const auto& name : order_) {
        const Node& n = nodes_[name];
        if (fnmatch(pat.c_str(), n.dotted.c_str(), 0) == 0 || fnmatch(pat.c_str(), n.name.c_str(), 0) == 0) {
          out.insert(name);
          any = true;
        }
      }
      if (!any) bad.push_back("import: models: '" + p.get<std::string>() + "' matches no model, seed or snapshot");
    }
    if (!bad.empty()) throw ImportError(bad);
    return out;
  }

  // The nearest selected ancestors of `name`, looking through unselected nodes (their edges are kept).
  std::vector<std::string> selected_deps(const std::vector<std::string>& deps, const std::set<std::string>& sel,
                                         std::map<std::string, std::vector<std::string>>& memo) {
    std::vector<std::string> out;
    auto add = [&](const std::string& d) {
      if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
    };
    for (const auto& d : deps) {
      if (sel.count(d)) {
        add(d);
        continue;
      }
      auto it = memo.find(d);
      if (it == memo.end()) it = memo.emplace(d, selected_deps(nodes_[d].deps, sel, memo)).first;
      for (const auto& x : it->second) add(x);
    }
    return out;
  }

  std::string task_name(const Node& n) const { return "dbt." + n.dotted; }

  json common_args() const {
    json extra = json::array();
    const std::string profiles = options_.value("profiles_dir", defaults_.value("profiles_dir", std::string()));
    const std::string target = options_.value("target", defaults_.value("target", std::string()));
    extra.push_back("--project-dir");
    extra.push_back(shown_root_);
    if (!profiles.empty()) extra.insert(extra.end(), {"--profiles-dir", profiles});
    if (!target.empty()) extra.insert(extra.end(), {"--target", target});
    if (options_.contains("vars") && options_["vars"].is_object() && !options_["vars"].empty())
      extra.insert(extra.end(), {"--vars", options_["vars"].dump()});
    return extra;
  }

  // The types of a dbt runtime's output (run_results.json digested), declared once in the workflow's `types:`.
  static json output_types() {
    return {{"DbtTiming", {{"name", "str"}, {"started_at", "str?"}, {"completed_at", "str?"}}},
            {"DbtNodeResult",
             {{"unique_id", "str"},
              {"status", "str"},
              {"execution_time", "float"},
              {"rows_affected", "int?"},
              {"failures", "int?"},
              {"message", "str?"},
              {"timing", "list[DbtTiming]"}}},
            {"DbtRunResult",
             {{"status", "str"},
              {"command", "str"},
              {"select", "str"},
              {"rows_affected", "int?"},
              {"failures", "int?"},
              {"execution_time", "float"},
              {"elapsed_time", "float?"},
              {"invocation_id", "str?"},
              {"nodes", "list[DbtNodeResult]"}}}};
  }

  json task(const std::string& executor, const std::string& verb, const std::string& select, json deps,
            const Node& n) const {
    json cmd = json::array({"dbt", verb, "--select", select});
    for (const auto& a : common_args()) cmd.push_back(a);
    json meta = {{"resource_type", n.kind},
                 {"name", n.name},
                 {"unique_id", n.kind + "." + project_ + "." + n.name},
                 {"file", n.file}};
    if (!n.materialized.empty() && verb != "test") meta["materialized"] = n.materialized;
    if (!n.tags.empty()) meta["tags"] = n.tags;
    if (!n.sources.empty()) meta["sources"] = n.sources;
    if (!n.columns.empty() && verb != "test") meta["columns"] = n.columns;
    if (!n.vars.empty()) {  // the vars the SQL reads, with the value the import or dbt_project.yml gives
      json vars = json::object();
      for (const auto& v : n.vars) {
        if (options_.contains("vars") && options_["vars"].is_object() && options_["vars"].contains(v))
          vars[v] = options_["vars"][v];
        else if (auto it = project_vars_.find(v); it != project_vars_.end())
          vars[v] = it->second;
        else
          vars[v] = nullptr;
      }
      meta["vars"] = vars;
    }
    if (verb == "test") meta["tests"] = n.tests;
    json t = {{"executor", executor}, {"command", cmd}, {"output_type", "DbtRunResult"}, {"meta", {{"dbt", meta}}}};
    if (!deps.empty()) t["depends_on"] = std::move(deps);
    std::string desc = verb == "test" ? "dbt tests of " + n.kind + " " + n.name : n.description;
    if (!desc.empty()) t["description"] = desc;
    return t;
  }

  json emit() {
    const std::set<std::string> sel = selected();
    std::map<std::string, std::vector<std::string>> memo;
    const bool with_tests = options_.value("tests", true);
    json tasks = json::object();
    std::set<std::string> names;
    for (const auto& name : order_) {
      if (!sel.count(name)) continue;
      const Node& n = nodes_.at(name);
      json deps = json::array();
      for (const auto& d : selected_deps(n.deps, sel, memo)) deps.push_back(task_name(nodes_[d]));
      const std::string tn = task_name(n);
      if (!names.insert(tn).second) problems_.push_back(n.where + ": two nodes map to the task name '" + tn + "'");
      const char* exec = n.kind == "seed" ? "dbt-seed" : n.kind == "snapshot" ? "dbt-snapshot" : "dbt";
      const char* verb = n.kind == "seed" ? "seed" : n.kind == "snapshot" ? "snapshot" : "run";
      tasks[tn] = task(exec, verb, n.name, deps, n);
      if (with_tests && !n.tests.empty()) {
        json tdeps = json::array({tn});
        for (const auto& d : selected_deps(n.test_deps, sel, memo))
          if (d != name) tdeps.push_back(task_name(nodes_[d]));
        tasks[tn + ".test"] = task("dbt-test", "test", n.name, tdeps, n);
      }
    }
    for (const auto& [id, st] : sources_) {  // source tests: no upstream in the project
      if (!with_tests || st.tests.empty()) continue;
      bool used = !options_.contains("models");
      for (const auto& name : sel) {
        const auto& srcs = nodes_.at(name).sources;
        used = used || std::find(srcs.begin(), srcs.end(), id) != srcs.end();
      }
      if (!used) continue;
      json cmd = json::array({"dbt", "test", "--select", "source:" + id});
      for (const auto& a : common_args()) cmd.push_back(a);
      tasks["dbt.sources." + id + ".test"] = {
          {"executor", "dbt-test"},
          {"command", cmd},
          {"output_type", "DbtRunResult"},
          {"description", "dbt tests of source " + id},
          {"meta", {{"dbt", {{"resource_type", "source"}, {"name", id}, {"tests", st.tests}}}}}};
    }
    fail_if_problems();
    return {{"tasks", tasks}, {"types", output_types()}, {"project", project_}, {"from", from_}};
  }

  json defaults_, options_;
  std::string base_, shown_root_;
  fs::path root_;
  std::string project_, from_, target_path_ = "target";
  std::vector<std::string> model_paths_, seed_paths_, snapshot_paths_, test_paths_;
  std::map<std::string, std::string> project_vars_;  // dbt_project.yml vars (scalars as text)
  std::map<std::string, Node> nodes_;
  std::vector<std::string> order_;  // node names in discovery order
  std::map<std::string, SourceTable> sources_;
  std::vector<std::string> problems_;
};

}  // namespace

json import_project(const json& request, const json& defaults) {
  if (!request.contains("source") || !request["source"].is_object())
    throw ImportError({"import: expected {\"source\": {\"dbt\": \"./path\"}}"});
  Importer imp(request, defaults);
  return imp.run();
}

}  // namespace ork::dbt
