// End-to-end: the Quick Start (examples/quickstart) with the state store chosen in plugins.yaml, no rebuild:
// ORK_E2E_STATE_LIBRARY and ORK_E2E_STATE_CONFIG (JSON; "{file:PATH}" becomes the trimmed contents of PATH, e.g. an
// emulator's endpoint; "{unique}" a fresh id, so runs of a shared emulator never mix). The test then reads the run
// back through the same plugin.
#include <gtest/gtest.h>

#include "core/util.hpp"
#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

// The state config, each "{unique}" a fresh id (a collection prefix, so runs on a shared emulator never mix).
json state_config() {
  std::string unique = "e" + ork::new_uuid().substr(0, 8);
  std::string text = config_from_env("ORK_E2E_STATE_CONFIG").dump();
  for (size_t p = text.find("{unique}"); p != std::string::npos; p = text.find("{unique}", p + unique.size()))
    text.replace(p, 8, unique);
  return json::parse(text);
}

TEST(StateStoreE2E, QuickstartRunsWithThisStateStore) {
  const char* lib_env = std::getenv("ORK_E2E_STATE_LIBRARY");
  ASSERT_TRUE(lib_env && *lib_env) << "ORK_E2E_STATE_LIBRARY names the state plugin";
  std::string lib = lib_env;
  TempDir dir;
  json cfg = state_config();
  std::string plugins = dir / "plugins.yaml";
  write_file(plugins, "plugins:\n  - {kind: state, name: store, library: " + lib + ", config: " + cfg.dump() +
                          "}\n  - {kind: object, name: local, library: ork-object-local, config: {root: \"" +
                          dir / "objects" + "\"}}\n" +
                          "  - {kind: executor, name: local, library: ork-exec-subprocess, default: true}\n");
  auto r = run("ORK_HOME=" + dir / "home" + " " + std::string(ORK_SOURCE_DIR) + "/examples/quickstart/run.sh " + kHost +
                   " --plugins " + plugins + " 2>&1",
               std::chrono::seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("summarize success"), std::string::npos) << r.output;

  auto st = ork::load_plugin<ork::StateProxy>("state", lib, cfg);
  json runs = st->list_runs({{"limit", 10}})["runs"];
  ASSERT_EQ(runs.size(), 1u) << runs.dump();
  EXPECT_EQ(runs[0]["status"], "success");
  EXPECT_TRUE(runs[0]["owner"].is_null()) << "the host released its lease";
  EXPECT_EQ(runs[0]["workflow_name"], "data_pipeline");
  json tasks = st->get_task_runs({{"run_id", runs[0]["id"]}})["tasks"];
  ASSERT_EQ(tasks.size(), 2u);
  std::string text = read_file(std::string(ORK_SOURCE_DIR) + "/examples/quickstart/data/data.txt");
  for (const auto& t : tasks) {
    EXPECT_EQ(t["status"], "success") << t.dump();
    EXPECT_EQ(t["attempt"], 1);
    if (t["task_name"] == "fetch") {
      EXPECT_EQ(t["output"]["data"], text);
    }
  }
  EXPECT_TRUE(st->get_workflow({{"name", "data_pipeline"}})) << "the workflow was registered in this store";
}

}  // namespace
