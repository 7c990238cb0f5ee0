// End-to-end: examples/multi-executor, one DAG across three executor plugins (exec-subprocess, exec-cloudrun against
// the Cloud Run fake, exec-k8s against the Kubernetes fake). Each cloud task really runs ork-worker (the fakes map
// the job's image to it), so outputs pass local -> Cloud Run -> Kubernetes through the object store. With
// ORK_E2E_DOCKER_DIR (tests/support/docker_service.sh), a fourth task runs in a container through exec-docker.
#include <gtest/gtest.h>

#include <set>

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

TEST(MultiExecutorE2E, AndAFourthOnDocker) {
  const char* d = std::getenv("ORK_E2E_DOCKER_DIR");
  ASSERT_TRUE(d && *d) << "ORK_E2E_DOCKER_DIR is not set (the multi_executor_docker_e2e_test entry sets it)";
  auto trimmed = [](std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  };
  std::string ddir = d;
  json docker_cfg{{"docker_host", trimmed(read_file(ddir + "/docker_host"))},
                  {"image", trimmed(read_file(ddir + "/image"))},
                  {"network_mode", "none"},
                  {"keep_finished", 0}};
  TempDir dir;
  fs::create_directories(dir / "tasks");
  fs::copy_file(std::string(ORK_SOURCE_DIR) + "/examples/multi-executor/tasks/square.py", dir / "tasks/square.py");
  std::string wf = read_file(std::string(ORK_SOURCE_DIR) + "/examples/multi-executor/workflow.yaml") + R"(
  report:
    worker: docker
    depends_on: [total]
    input:
      total: "{{ total.total }}"
    command: |
      echo "{\"total\": $(echo "$ORK_INPUT_JSON" | sed 's/.*"total": *\([0-9]*\).*/\1/'), \"pid1\": \"$(tr '\0' ' ' < /proc/1/cmdline)\"}"
)";
  write_file(dir / "wf.yaml", wf);
  std::string extra = "  - {kind: executor, name: docker, library: ork-exec-docker, config: " + docker_cfg.dump() + "}";
  auto r = run("WORK=" + dir / "work" + " WORKFLOW=" + dir / "wf.yaml" + " EXTRA_PLUGINS='" + extra + "' " +
                   std::string(ORK_SOURCE_DIR) + "/examples/multi-executor/run.sh " + kHost + " 2>&1",
               std::chrono::seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", dir / "work/state.db"}});
  json run_rec = st->list_runs({{"limit", 1}})["runs"][0];
  EXPECT_EQ(run_rec["status"], "success") << r.output;
  std::map<std::string, json> by;
  json rows = st->get_task_runs({{"run_id", run_rec["id"]}})["tasks"];
  for (const auto& t : rows) by[t["task_name"]] = t;
  ASSERT_EQ(by.size(), 4u);
  EXPECT_EQ(by["report"]["executor"], "docker");
  EXPECT_EQ(by["report"]["output"]["total"], 50) << by["report"].dump();
  EXPECT_NE(by["report"]["output"]["pid1"].get<std::string>().find("ork-worker"), std::string::npos)
      << by["report"].dump();  // PID 1 of the container is its ork-worker
  std::set<std::string> executors;
  for (const auto& [name, t] : by) executors.insert(t["executor"]);
  EXPECT_EQ(executors, (std::set<std::string>{"local", "cloudrun", "k8s", "docker"}));
}

}  // namespace
