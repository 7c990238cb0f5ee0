// Fan-out: parallel: N, parallel: task.field, foreach: task.field, concurrency limits, list outputs downstream.
#include <gtest/gtest.h>

#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

struct Run {
  CmdResult result;
  json run;
  std::map<std::string, std::vector<json>> tasks;  // by name, in parallel_index order
};

Run run_workflow(const TempDir& dir, const std::string& yaml, const std::string& env = "") {
  write_file(dir / "wf.yaml", yaml);
  Run r;
  r.result = run("ORK_HOME=" + (dir / "home") + " " + env + " " + kHost + " run " + (dir / "wf.yaml") + " 2>&1",
                 std::chrono::seconds(300));
  auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", dir / "home/state.db"}});
  json runs = st->list_runs({{"limit", 1}});
  if (runs["runs"].empty()) return r;
  r.run = runs["runs"][0];
  json tasks = st->get_task_runs({{"run_id", r.run["id"]}})["tasks"];
  for (auto& t : tasks) r.tasks[t["task_name"]].push_back(t);
  return r;
}

TEST(FanOutE2E, ForeachOverAThousandItemsNeverExceedsItsConcurrency) {
  TempDir dir;
  std::string c = dir.str();
  auto r = run_workflow(dir, R"(
name: wide
tasks:
  discover:
    command: |
      echo '{"items": [)" + int_list(1000) +
                                 R"(]}'
  process:
    foreach: discover.items
    concurrency: 4
    command: |
)" + concurrency_probe(c, "0.01") +
                                 R"(
      echo "{\"double\": $((ORK_PARALLEL_INDEX * 2)), \"count\": $ORK_PARALLEL_COUNT}"
  total:
    depends_on: [process]
    command: cat
)");
  ASSERT_EQ(r.result.exit_code, 0) << r.result.output.substr(0, 4000);
  ASSERT_EQ(r.tasks["process"].size(), 1000u);
  EXPECT_LE(probe_max(c), 4);
  EXPECT_GE(probe_max(c), 2) << "instances never overlapped: concurrency had no effect";
  EXPECT_EQ(probe_now(c), 0);
  json total = r.tasks["total"][0]["output"]["process"];
  ASSERT_EQ(total.size(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(total[i]["double"], 2 * i);
    EXPECT_EQ(total[i]["count"], 1000);
    EXPECT_EQ(r.tasks["process"][i]["input"]["item"], i);
  }
}

TEST(FanOutE2E, StaticAndCountFanOutsGiveIndexCountAndOrderedLists) {
  TempDir dir;
  auto r = run_workflow(dir, R"yaml(
name: shards
tasks:
  size:
    command: |
      echo '{"n": 3}'
  fixed:
    parallel: 2
    command: |
      echo "{\"k\": $ORK_PARALLEL_INDEX, \"of\": $ORK_PARALLEL_COUNT}"
  shard:
    parallel: size.n
    input: {base: 10}
    command: |
      python3 -c "import json,os; i=json.loads(os.environ['ORK_INPUT_JSON']); print(json.dumps({'v': i['base'] + int(os.environ['ORK_PARALLEL_INDEX'])}))"
  join:
    depends_on: [fixed, shard]
    command: cat
)yaml");
  ASSERT_EQ(r.result.exit_code, 0) << r.result.output;
  EXPECT_EQ(r.tasks["fixed"].size(), 2u);
  EXPECT_EQ(r.tasks["shard"].size(), 3u);
  json j = r.tasks["join"][0]["output"];
  EXPECT_EQ(j["fixed"], json::parse(R"([{"k":0,"of":2},{"k":1,"of":2}])"));
  EXPECT_EQ(j["shard"], json::parse(R"([{"v":10},{"v":11},{"v":12}])"));
}

TEST(FanOutE2E, EmptyForeachIsSkippedAndABadReferenceFails) {
  TempDir dir;
  auto r = run_workflow(dir, R"(
name: edge
tasks:
  discover:
    command: |
      echo '{"none": [], "notalist": 5}'
  empty:
    foreach: discover.none
    command: echo '{}'
  after_empty:
    depends_on: [empty]
    command: echo '{}'
  bad:
    foreach: discover.notalist
    command: echo '{}'
  cleanup:
    depends_on: [empty, bad]
    on_failure: run
    command: cat
)");
  EXPECT_EQ(r.result.exit_code, 1) << r.result.output;
  ASSERT_EQ(r.tasks["empty"].size(), 1u);
  EXPECT_EQ(r.tasks["empty"][0]["status"], "skipped");
  EXPECT_EQ(r.tasks["empty"][0]["error"]["type"], "empty_fanout");
  EXPECT_EQ(r.tasks["after_empty"][0]["status"], "skipped");
  ASSERT_EQ(r.tasks["bad"].size(), 1u);
  EXPECT_EQ(r.tasks["bad"][0]["status"], "failed");
  EXPECT_NE(r.tasks["bad"][0]["error"]["message"].get<std::string>().find("foreach: discover.notalist is not a list"),
            std::string::npos);
  EXPECT_EQ(r.tasks["cleanup"][0]["status"], "success");
  EXPECT_EQ(r.tasks["cleanup"][0]["output"]["empty"], json::array());
  EXPECT_EQ(r.tasks["cleanup"][0]["output"]["bad"], json::array());
  EXPECT_EQ(r.run["status"], "failed");
}

TEST(FanOutE2E, HostWideLimitCapsAttemptsInFlight) {
  TempDir dir;
  std::string c = dir.str();
  std::string body = "\n    command: |\n" + concurrency_probe(c, "0.05");
  auto r = run_workflow(dir, "name: capped\ntasks:\n  a:\n    parallel: 12" + body + "  b:\n    parallel: 12" + body,
                        "ORK_MAX_ACTIVE_TASKS=3");
  ASSERT_EQ(r.result.exit_code, 0) << r.result.output;
  EXPECT_LE(probe_max(c), 3);
  EXPECT_EQ(r.tasks["a"].size() + r.tasks["b"].size(), 24u);
}

TEST(FanOutE2E, WorkflowConcurrencyCapsOneRun) {
  TempDir dir;
  std::string c = dir.str();
  std::string body = "\n    command: |\n" + concurrency_probe(c, "0.05");
  auto r = run_workflow(
      dir, "name: capped\nconcurrency: 2\ntasks:\n  a:\n    parallel: 8" + body + "  b:\n    parallel: 8" + body);
  ASSERT_EQ(r.result.exit_code, 0) << r.result.output;
  EXPECT_EQ(probe_max(c), 2);
}

}  // namespace
