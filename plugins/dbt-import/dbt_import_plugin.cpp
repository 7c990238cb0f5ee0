// ork-dbt-import: Importer plugin turning a dbt project into Ork tasks (see README.md).
#include <ork/plugin.hpp>

#include "dbt_project.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace {

class DbtImporter : public ork::Importer {
 public:
  static constexpr const char* kInfo = R"j({"description": "dbt project -> tasks (models, seeds, snapshots, tests)"})j";

  DbtImporter(const ork::json& cfg, ork::HostServices host) : cfg_(cfg.is_object() ? cfg : ork::json::object()) {
    (void)host;
    for (const auto& [k, v] : cfg_.items())
      if ((k != "target" && k != "profiles_dir") || !v.is_string())
        ork::throw_invalid("dbt importer: config '" + k + "': expected target or profiles_dir (strings)");
  }

  ork::json import_tasks(const ork::json& a) override {
    try {
      return ork::dbt::import_project(a, cfg_);
    } catch (const ork::dbt::ImportError& e) {
      ork::throw_invalid(e.what());
    }
  }

 private:
  ork::json cfg_;
};

}  // namespace

ORK_IMPORTER_PLUGIN(DbtImporter, "dbt", ORK_PLUGIN_VERSION)
