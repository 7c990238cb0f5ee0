// End-to-end: `ork-host run` on real workflows with the embedded default plugins (SQLite, local objects, subprocess).
#include <gtest/gtest.h>

#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

struct Env {
  TempDir dir;
  std::string home = dir / "home";
  std::string prefix() const { return "ORK_HOME=" + home + " ORK_HEARTBEAT_INTERVAL_MS=200 ORK_CANCEL_GRACE_MS=500 "; }
  std::string workflow(const std::string& yaml) const {
    std::string p = dir / "wf.yaml";
    write_file(p, yaml);
    return p;
  }
  CmdResult run_wf(const std::string& yaml, const std::string& extra = "") const {
    return run(prefix() + kHost + " run " + workflow(yaml) + " " + extra + " 2>&1");
  }
  std::unique_ptr<ork::StateProxy> state() const {
    return ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", home + "/state.db"}});
  }
  json last_run_tasks() const {
    auto st = state();
    auto runs = st->list_runs({{"limit", 1}});
    if (runs["runs"].empty()) return json::object();
    json out = json::object();
    json tasks = st->get_task_runs({{"run_id", runs["runs"][0]["id"]}})["tasks"];
    for (auto& t : tasks) out[t["task_name"].get<std::string>()] = t;
    out["_run"] = runs["runs"][0];
    return out;
  }
};

TEST(RunE2E, QuickstartFetchThenSummarize) {
  Env e;
  auto r =
      run("ORK_HOME=" + e.home + " " + std::string(ORK_SOURCE_DIR) + "/examples/quickstart/run.sh " + kHost + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fetch running"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("summarize success"), std::string::npos) << r.output;
  std::string text = read_file(std::string(ORK_SOURCE_DIR) + "/examples/quickstart/data/data.txt");
  auto tasks = e.last_run_tasks();
  EXPECT_EQ(tasks["_run"]["status"], "success");
  EXPECT_EQ(tasks["fetch"]["output"]["data"], text);
  json& out = tasks["summarize"]["output"];
  EXPECT_EQ(out["total_chars"], text.size());
  EXPECT_EQ(out["total_lines"], std::count(text.begin(), text.end(), '\n') + 1);
  EXPECT_EQ(out["non_empty_lines"], 3);
}

TEST(RunE2E, UpstreamOutputsAndTemplatesReachInput) {
  Env e;
  auto r = e.run_wf(R"(
name: pass_data
tasks:
  a:
    command: |
      echo '{"n": 2, "word": "hi"}'
  b:
    depends_on: [a]
    input:
      greeting: "{{ a.word }} there"
      count: "{{ a.n }}"
    command: cat
)");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto t = e.last_run_tasks();
  EXPECT_EQ(t["b"]["output"]["a"]["n"], 2);
  EXPECT_EQ(t["b"]["output"]["greeting"], "hi there");
  EXPECT_EQ(t["b"]["output"]["count"], 2);
}

TEST(RunE2E, RunInputReachesTasks) {
  Env e;
  auto r = e.run_wf(R"(
name: with_input
tasks:
  show:
    input: {date: "2024-01-01"}
    command: cat
)",
                    "--input date=2024-01-15 --input region=us-west");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto t = e.last_run_tasks();
  EXPECT_EQ(t["show"]["output"]["date"], "2024-01-15");
  EXPECT_EQ(t["show"]["output"]["region"], "us-west");
}

TEST(RunE2E, RetriesUntilSuccess) {
  Env e;
  std::string counter = e.dir / "count";
  auto r = e.run_wf(R"(
name: flaky
tasks:
  flakey:
    retries: 2
    command: |
      n=$(cat )" + counter +
                    R"( 2>/dev/null || echo 0); n=$((n+1)); echo $n > )" + counter + R"(
      [ $n -ge 3 ] || { echo "failing attempt $n" >&2; exit 1; }
      echo "{\"attempts\": $n}"
  after:
    depends_on: [flakey]
    command: |
      echo '{"ok": true}'
)");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto t = e.last_run_tasks();
  EXPECT_EQ(t["flakey"]["status"], "success");
  EXPECT_EQ(t["flakey"]["attempt"], 3);
  EXPECT_EQ(t["flakey"]["output"]["attempts"], 3);
  EXPECT_EQ(t["after"]["status"], "success");
  EXPECT_NE(r.output.find("attempt 1/3"), std::string::npos) << r.output;
}

TEST(RunE2E, RetriesExhaustedFailRunAndSkipDownstream) {
  Env e;
  auto r = e.run_wf(R"(
name: failing
tasks:
  bad:
    retries: 1
    command: echo boom >&2; exit 3
  after:
    depends_on: [bad]
    command: echo '{}'
  independent:
    command: |
      echo '{"fine": true}'
)");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto t = e.last_run_tasks();
  EXPECT_EQ(t["_run"]["status"], "failed");
  EXPECT_EQ(t["bad"]["status"], "failed");
  EXPECT_EQ(t["bad"]["attempt"], 2);
  EXPECT_EQ(t["bad"]["error"]["type"], "exit_code");
  EXPECT_EQ(t["bad"]["error"]["details"]["exit_code"], 3);
  EXPECT_EQ(t["after"]["status"], "skipped");
  EXPECT_EQ(t["independent"]["status"], "success");
}

TEST(RunE2E, TimeoutKillsTheAttempt) {
  Env e;
  auto start = std::chrono::steady_clock::now();
  auto r = e.run_wf(R"(
name: slow
tasks:
  slow:
    timeout: 1
    command: sleep 30
)");
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(secs, 20);
  auto t = e.last_run_tasks();
  EXPECT_EQ(t["slow"]["status"], "failed");
  EXPECT_EQ(t["slow"]["error"]["message"], "execution timeout");
}

TEST(RunE2E, OnFailureRunGetsNullForFailedUpstream) {
  Env e;
  auto r = e.run_wf(R"(
name: cleanup
tasks:
  extract:
    command: |
      echo '{"rows": 5}'
  load:
    depends_on: [extract]
    command: exit 1
  notify:
    depends_on: [extract, load]
    on_failure: run
    command: cat
  never:
    depends_on: [load]
    command: echo '{}'
)");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto t = e.last_run_tasks();
  EXPECT_EQ(t["notify"]["status"], "success");
  EXPECT_TRUE(t["notify"]["output"]["load"].is_null());
  EXPECT_EQ(t["notify"]["output"]["extract"]["rows"], 5);
  EXPECT_EQ(t["never"]["status"], "skipped");
  EXPECT_EQ(t["_run"]["status"], "failed");
}

TEST(RunE2E, InvalidWorkflowIsRefusedWithFileAndLine) {
  Env e;
  auto r = e.run_wf("name: bad\ntasks:\n  a:\n    command: 'true'\n    depends_on: [nope]\n");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("wf.yaml:5:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nope"), std::string::npos) << r.output;
}

TEST(RunE2E, InterruptCancelsTheRunAndStopsItsTasks) {
  Env e;
  std::string marker = e.dir / "started", wf = e.workflow(R"(
name: long
tasks:
  long:
    command: |
      trap '' TERM; echo $$ > )" + e.dir / "pid" + R"(; touch )" +
                                                          marker + R"(; sleep 60
  after:
    depends_on: [long]
    command: echo '{}'
)");
  Process host("exec env " + e.prefix() + kHost + " run " + wf, e.dir / "host.log");
  ASSERT_TRUE(eventually([&] { return fs::exists(marker); }, std::chrono::seconds(20)))
      << read_file(e.dir / "host.log");
  ::kill(host.pid(), SIGINT);
  EXPECT_EQ(host.wait(std::chrono::seconds(20)), 130) << read_file(e.dir / "host.log");
  auto t = e.last_run_tasks();
  EXPECT_EQ(t["_run"]["status"], "cancelled");
  EXPECT_EQ(t["long"]["status"], "cancelled");
  EXPECT_EQ(t["after"]["status"], "skipped");
  // The task ignored SIGTERM; the grace period ran out and SIGKILL ended it.
  pid_t pid = std::stoi(read_file(e.dir / "pid"));
  EXPECT_TRUE(eventually([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(5)));
}

TEST(RunE2E, PluginsCommandListsEmbeddedDefaults) {
  Env e;
  auto r = run(e.prefix() + kHost + " plugins 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"state", "sqlite", "object", "local", "executor", "1.0"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
}

}  // namespace

// examples/rust-task: ork-host → worker → cargo build of a #[task] file → its typed output feeds a shell task.
TEST(RunE2E, RustTaskExampleFeedsAShellTask) {
  Env e;
  const std::string cache = e.dir / "rust-cache";
  auto r = run(e.prefix() + "ORK_RUST_CACHE=" + cache + " CARGO_TARGET_DIR=" + ORK_BINARY_DIR + "/rust-task-target " +
               kHost + " run " + ORK_SOURCE_DIR + "/examples/rust-task/workflow.yaml 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto t = e.last_run_tasks();
  EXPECT_EQ(t["_run"]["status"], "success");
  EXPECT_EQ(t["count"]["output"], json({{"words", 13},
                                        {"distinct", 10},
                                        {"top", {{{"word", "the"}, {"count", 3}}, {{"word", "dog"}, {"count", 2}}}}}));
  EXPECT_EQ(t["report"]["output"], json({{"summary", "13 words, 10 distinct, top the"}}));
}

TEST(RunE2E, PolyglotExampleShellRustCppPythonInOneRun) {
  Env e;
  auto r = run(e.prefix() + "ORK_RUST_CACHE=" + e.dir / "rust-cache" + " ORK_CPP_CACHE=" + e.dir / "cpp-cache" +
               " CARGO_TARGET_DIR=" + ORK_BINARY_DIR + "/rust-task-target " + kHost + " run " + ORK_SOURCE_DIR +
               "/examples/polyglot/workflow.yaml 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto t = e.last_run_tasks();
  EXPECT_EQ(t["_run"]["status"], "success");
  EXPECT_EQ(t["count"]["output"]["words"], 13);
  EXPECT_EQ(t["double"]["output"], json({{"label", "words"}, {"total", 26}, {"attempt", 1}}));
  EXPECT_EQ(t["summarize"]["output"],
            json({{"line", "13 words (11 distinct, doubled 26), top 'and'"}, {"ratio", 0.846}}));
  EXPECT_NE(r.output.find("13 words (11 distinct, doubled 26)"), std::string::npos) << r.output;
}
