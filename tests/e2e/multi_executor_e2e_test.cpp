// End-to-end: examples/multi-executor, one DAG across three executor plugins (exec-subprocess, exec-cloudrun against
// the Cloud Run fake, exec-k8s against the Kubernetes fake). Each cloud task really runs ork-worker (the fakes map
// the job's image to it), so outputs pass local -> Cloud Run -> Kubernetes through the object store.
#include <gtest/gtest.h>

#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

TEST(MultiExecutorE2E, OneRunLandsOnThreeExecutorsAndPassesOutputs) {
  TempDir dir;
  auto r = run(
      "WORK=" + dir.str() + " " + std::string(ORK_SOURCE_DIR) + "/examples/multi-executor/run.sh " + kHost + " 2>&1",
      std::chrono::seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", dir / "state.db"}});
  json run_rec = st->list_runs({{"limit", 1}})["runs"][0];
  EXPECT_EQ(run_rec["status"], "success") << r.output;
  json tasks = st->get_task_runs({{"run_id", run_rec["id"]}})["tasks"];
  ASSERT_EQ(tasks.size(), 3u);
  std::map<std::string, json> by;
  for (const auto& t : tasks) by[t["task_name"]] = t;
  EXPECT_EQ(by["extract"]["executor"], "local");
  EXPECT_EQ(by["square"]["executor"], "cloudrun");
  EXPECT_EQ(by["total"]["executor"], "k8s");
  // Executor ids show where each attempt ran: a Cloud Run execution name, a namespace/Job name.
  EXPECT_EQ(by["square"]["executor_id"].get<std::string>().rfind(
                "projects/demo/locations/europe-west1/jobs/ork-worker/executions/", 0),
            0u)
      << by["square"].dump();
  EXPECT_EQ(by["total"]["executor_id"].get<std::string>().rfind("ork/ork-total-", 0), 0u) << by["total"].dump();
  EXPECT_EQ(by["square"]["output"]["squares"], json::parse("[9, 16, 25]"));
  EXPECT_NE(by["square"]["output"]["ran_on"].get<std::string>().find("cloud run execution ork-worker-"),
            std::string::npos);
  EXPECT_EQ(by["total"]["output"]["total"], 50);
  EXPECT_NE(by["total"]["output"]["ran_on"].get<std::string>().find("k8s pod ork-total-"), std::string::npos);
}

}  // namespace
