// End-to-end: one workflow whose tasks run on two executors — `worker: docker` tasks in containers through
// exec-docker (a shell task in the worker image, and plain `image:` tasks in an image without Ork, with input.to_file
// and output.from_file) and a local task that receives their outputs. ORK_E2E_DOCKER_DIR is the podman service dir
// of tests/support/docker_service.sh (docker_host, image, bundle).
#include <gtest/gtest.h>

#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

TEST(DockerE2E, TasksRunInContainersAndPassOutputsToALocalTask) {
  const char* d = std::getenv("ORK_E2E_DOCKER_DIR");
  ASSERT_TRUE(d && *d) << "ORK_E2E_DOCKER_DIR is not set";
  std::string ddir = d;
  json docker_cfg{{"docker_host", trimmed(read_file(ddir + "/docker_host"))},
                  {"image", trimmed(read_file(ddir + "/image"))},
                  {"worker_bundle", ddir + "/bundle"},
                  {"network_mode", "none"},
                  {"keep_finished", 0}};
  TempDir dir;
  std::string plugins = dir / "plugins.yaml";
  write_file(plugins,
             "plugins:\n"
             "  - {kind: state, name: sqlite, library: ork-state-sqlite, config: {path: \"" +
                 dir / "state.db" + "\"}}\n" +
                 "  - {kind: object, name: store, library: ork-object-local, config: {root: \"" + dir / "objects" +
                 "\"}}\n" + "  - {kind: executor, name: local, library: ork-exec-subprocess, default: true}\n" +
                 "  - {kind: executor, name: docker, library: ork-exec-docker, config: " + docker_cfg.dump() + "}\n");
  std::string wf = dir / "wf.yaml";
  // /proc/1/cmdline tells where a task ran: in a container, PID 1 is the container's ork-worker.
  write_file(wf, R"(name: docker_mix
tasks:
  make:
    worker: docker
    resources: {cpu: 0.5, memory: 128Mi}
    command: |
      echo "{\"n\": 21, \"pid1\": \"$(tr '\0' ' ' < /proc/1/cmdline)\"}"
  double:
    worker: docker
    image: localhost/busybox:test
    depends_on: [make]
    input:
      to_file: /in/input.json
      n: "{{ make.n }}"
    command: |
      n=$(sed 's/.*"n":\([0-9]*\).*/\1/' /in/input.json)
      mkdir -p /out
      echo "{\"doubled\": $((n * 2)), \"pid1\": \"$(tr '\0' ' ' < /proc/1/cmdline)\"}" > /out/result.json
    output:
      from_file: /out/result.json
  defaults:
    worker: docker
    image: localhost/busybox:test
  report:
    depends_on: [make, double, defaults]
    input:
      n: "{{ make.n }}"
      doubled: "{{ double.doubled }}"
      default: "{{ defaults.default }}"
    command: |
      echo "{\"got\": $ORK_INPUT_JSON, \"pid1\": \"$(tr '\0' ' ' < /proc/1/cmdline)\"}"
)");
  auto r = run("ORK_HOME=" + dir / "home" + " " + kHost + " --plugins " + plugins + " run " + wf + " 2>&1",
               std::chrono::seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", dir / "state.db"}});
  json run_rec = st->list_runs({{"limit", 1}})["runs"][0];
  EXPECT_EQ(run_rec["status"], "success") << r.output;
  json tasks = json::object();
  json rows = st->get_task_runs({{"run_id", run_rec["id"]}})["tasks"];  // a named copy: no dangling temporary
  for (auto& t : rows) tasks[t["task_name"].get<std::string>()] = t;
  EXPECT_EQ(tasks["make"]["executor"], "docker");
  EXPECT_EQ(tasks["double"]["executor"], "docker");
  EXPECT_EQ(tasks["report"]["executor"], "local");
  EXPECT_EQ(tasks["make"]["output"]["n"], 21);
  ASSERT_TRUE(tasks["make"]["output"]["pid1"].is_string() && tasks["double"]["output"]["pid1"].is_string() &&
              tasks["report"]["output"]["pid1"].is_string())
      << tasks.dump();
  EXPECT_NE(tasks["make"]["output"]["pid1"].get<std::string>().find("ork-worker"), std::string::npos)
      << tasks["make"]["output"].dump();
  EXPECT_EQ(tasks["double"]["output"]["doubled"], 42) << tasks["double"].dump();
  EXPECT_NE(tasks["double"]["output"]["pid1"].get<std::string>().find("/ork/bin/ork-worker"), std::string::npos)
      << tasks["double"]["output"].dump();
  EXPECT_EQ(tasks["defaults"]["output"], (json{{"default", true}}));
  json report = tasks["report"]["output"];
  EXPECT_EQ(report["got"]["n"], 21) << report.dump();
  EXPECT_EQ(report["got"]["doubled"], 42) << report.dump();
  EXPECT_EQ(report["got"]["default"], true) << report.dump();
  EXPECT_EQ(report["got"]["double"], tasks["double"]["output"]) << report.dump();  // upstream outputs, as stored
  EXPECT_EQ(report["pid1"].get<std::string>().find("ork-worker"), std::string::npos) << "report ran locally";
}

}  // namespace
