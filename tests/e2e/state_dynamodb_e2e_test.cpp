// End-to-end: the Quick Start (examples/quickstart) with plugins.yaml switched to state-dynamodb against the emulator
// in ORK_EMULATOR_DIR (moto), no rebuild. The test then reads the run and its tasks back through the plugin.
#include <gtest/gtest.h>

#include "core/util.hpp"
#include "crypto.hpp"
#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

TEST(StateDynamoE2E, QuickstartRunsWithStateInDynamoDB) {
  const char* emu = std::getenv("ORK_EMULATOR_DIR");
  ASSERT_TRUE(emu) << "ORK_EMULATOR_DIR is not set (run through ctest)";
  std::string endpoint = read_file(std::string(emu) + "/endpoint");
  while (!endpoint.empty() && (endpoint.back() == '\n' || endpoint.back() == ' ')) endpoint.pop_back();
  TempDir dir;
  // A table of its own per run, so a shared emulator never mixes runs of several test invocations.
  json cfg{{"endpoint", endpoint},
           {"region", "us-east-1"},
           {"access_key_id", "test"},
           {"secret_access_key", "test"},
           {"table_prefix", "e2e-" + ork::common::random_hex(4) + "-"},
           {"create_tables", true}};
  std::string plugins = dir / "plugins.yaml";
  write_file(plugins, "plugins:\n  - {kind: state, name: dynamodb, library: ork-state-dynamodb, config: " + cfg.dump() +
                          "}\n  - {kind: object, name: local, library: ork-object-local, config: {root: \"" +
                          dir / "objects" +
                          "\"}}\n  - {kind: executor, name: local, library: ork-exec-subprocess, default: true}\n");
  auto r = run("ORK_HOME=" + dir / "home" + " " + std::string(ORK_SOURCE_DIR) + "/examples/quickstart/run.sh " + kHost +
                   " --plugins " + plugins + " 2>&1",
               std::chrono::seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("summarize success"), std::string::npos) << r.output;

  auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-dynamodb", cfg);
  json runs = st->list_runs({{"limit", 10}});
  ASSERT_EQ(runs["total"], 1) << runs.dump();
  json run_rec = runs["runs"][0];
  EXPECT_EQ(run_rec["status"], "success");
  EXPECT_TRUE(run_rec["owner"].is_null()) << "the host released its lease";
  EXPECT_TRUE(st->get_workflow({{"name", run_rec["workflow_name"]}}));
  json tasks = st->get_task_runs({{"run_id", run_rec["id"]}})["tasks"];
  ASSERT_EQ(tasks.size(), 2u);
  std::string text = read_file(std::string(ORK_SOURCE_DIR) + "/examples/quickstart/data/data.txt");
  for (const auto& t : tasks) {
    EXPECT_EQ(t["status"], "success") << t.dump();
    EXPECT_EQ(t["attempt"], 1);
    if (t["task_name"] == "fetch") {
      EXPECT_EQ(t["output"]["data"], text);
    }
  }
}

}  // namespace
