// Reads a dbt project (dbt_project.yml, models, schema .yml files, seeds, snapshots, or target/manifest.json) into
// Ork task definitions: the logic of the ork-dbt-import plugin, kept apart from the ABI glue so tests can call it.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace ork::dbt {

using json = nlohmann::json;

// Every problem found in the project, one "file:line[:column]: message" per entry.
class ImportError : public std::runtime_error {
 public:
  explicit ImportError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// `request` is the importer ABI's {"source": {"dbt": "./path", "models": [...], "target", "profiles_dir", "vars",
// "manifest": "auto|always|never"}, "base_dir": "/abs"}; `defaults` the plugin config (target, profiles_dir).
// Returns {"tasks": {name: task}, "project": name, "from": "sources|manifest"}.
json import_project(const json& request, const json& defaults);

}  // namespace ork::dbt
