// End-to-end: the Quick Start (examples/quickstart, fetch -> summarize in Python) with the object store chosen in
// plugins.yaml: ORK_E2E_OBJECT_LIBRARY and ORK_E2E_OBJECT_CONFIG (JSON; "{file:PATH}" becomes the trimmed contents
// of PATH, e.g. an emulator's endpoint). The host writes specs there, workers read them and write status, output and
// logs back; the test then reads the run's objects from the store itself.
#include <gtest/gtest.h>

#include <fstream>

#include "core/util.hpp"
#include "e2e/e2e_support.hpp"
#include "support/plugin_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

TEST(ObjectStoreE2E, QuickstartRunsWithThisObjectStore) {
  const char* lib_env = std::getenv("ORK_E2E_OBJECT_LIBRARY");
  std::string lib = lib_env && *lib_env ? lib_env : "ork-object-local";
  TempDir dir;
  json cfg = config_from_env("ORK_E2E_OBJECT_CONFIG");
  if (lib == "ork-object-local") cfg = {{"root", dir / "objects"}};
  // Every run gets its own prefix, so a shared emulator never mixes runs of several test invocations.
  if (lib != "ork-object-local") cfg["prefix"] = "e2e-" + ork::new_uuid();
  std::string plugins = dir / "plugins.yaml";
  write_file(plugins,
             "plugins:\n"
             "  - {kind: state, name: sqlite, library: ork-state-sqlite, config: {path: \"" +
                 dir / "state.db" + "\"}}\n" + "  - {kind: object, name: store, library: " + lib +
                 ", config: " + cfg.dump() + "}\n" +
                 "  - {kind: executor, name: local, library: ork-exec-subprocess, default: true}\n");
  auto r = run("ORK_HOME=" + dir / "home" + " " + std::string(ORK_SOURCE_DIR) + "/examples/quickstart/run.sh " + kHost +
                   " --plugins " + plugins + " 2>&1",
               std::chrono::seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("summarize success"), std::string::npos) << r.output;

  auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", dir / "state.db"}});
  json run_rec = st->list_runs({{"limit", 1}})["runs"][0];
  EXPECT_EQ(run_rec["status"], "success");
  json tasks = st->get_task_runs({{"run_id", run_rec["id"]}})["tasks"];
  ASSERT_EQ(tasks.size(), 2u);
  std::string text = read_file(std::string(ORK_SOURCE_DIR) + "/examples/quickstart/data/data.txt");
  auto store = ork::load_plugin<ork::ObjectProxy>("object", lib, cfg);
  for (const auto& t : tasks) {
    std::string base = "runs/" + run_rec["id"].get<std::string>() + "/" + t["id"].get<std::string>() + "/";
    auto keys = store->list(base);
    EXPECT_NE(std::find(keys.begin(), keys.end(), base + "spec.json"), keys.end()) << json(keys).dump();
    auto status = store->get_json(base + "status.json");
    ASSERT_TRUE(status) << base;
    EXPECT_EQ((*status)["status"], "success");
    auto output = ork::test::attempt_output(*store, *status, base + "output.json");
    ASSERT_TRUE(output) << base;
    EXPECT_EQ(*output, t["output"]);
    EXPECT_NE(std::find(keys.begin(), keys.end(), base + "attempt-1.log"), keys.end()) << json(keys).dump();
    if (t["task_name"] == "fetch") {
      EXPECT_EQ((*output)["data"], text);
    }
  }
}

}  // namespace
