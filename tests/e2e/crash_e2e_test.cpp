// kill -9 of `ork-host serve` mid-run, then a restart that finishes the run with no task lost or run twice.
#include <gtest/gtest.h>

#include "core/util.hpp"
#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

std::string env_prefix(const std::string& home) {
  return "ORK_HOME=" + home +
         " ORK_HEARTBEAT_INTERVAL_MS=200 ORK_HEARTBEAT_TIMEOUT_MS=5000 ORK_LEASE_TTL_MS=2000 ORK_CANCEL_GRACE_MS=500 "
         "ORK_START_TIMEOUT_MS=10000 ";
}

// Chain a -> b -> c -> d plus an independent x; each task logs "start T" / "end T" to `log`.
std::string chain_workflow(const std::string& log, int retries) {
  std::string y = "name: crashy\ntasks:\n";
  auto task = [&](const std::string& n, const std::string& dep) {
    y += "  " + n + ":\n    retries: " + std::to_string(retries) + "\n";
    if (!dep.empty()) y += "    depends_on: [" + dep + "]\n";
    y += "    command: |\n      echo start " + n + " >> " + log + "; sleep 1; echo end " + n + " >> " + log +
         "; echo '{\"task\": \"" + n + "\"}'\n";
  };
  task("a", "");
  task("b", "a");
  task("c", "b");
  task("d", "c");
  task("x", "");
  return y;
}

int count(const std::string& text, const std::string& line) {
  int n = 0;
  for (size_t p = text.find(line + "\n"); p != std::string::npos; p = text.find(line + "\n", p + 1))
    if (p == 0 || text[p - 1] == '\n') ++n;
  return n;
}

json only_run(const std::string& home) {
  auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", home + "/state.db"}});
  auto runs = st->list_runs({{"limit", 10}});
  EXPECT_EQ(runs["runs"].size(), 1u);
  json run = runs["runs"][0];
  run["tasks"] = st->get_task_runs({{"run_id", run["id"]}})["tasks"];
  return run;
}

TEST(CrashE2E, KillNineMidRunThenRestartFinishesWithEveryTaskOnce) {
  TempDir dir;
  std::string home = dir / "home", log = dir / "tasks.log", wf = dir / "wf.yaml";
  write_file(wf, chain_workflow(log, 0));
  {
    Process host("exec env " + env_prefix(home) + kHost + " serve --start " + wf, dir / "host1.log");
    ASSERT_TRUE(
        eventually([&] { return read_file(log).find("start b") != std::string::npos; }, std::chrono::seconds(30)))
        << read_file(dir / "host1.log");
    ::kill(host.pid(), SIGKILL);
    EXPECT_EQ(host.wait(std::chrono::seconds(10)), 128 + SIGKILL);
  }
  Process host2("exec env " + env_prefix(home) + kHost + " serve --exit-when-idle", dir / "host2.log");
  ASSERT_EQ(host2.wait(std::chrono::seconds(60)), 0) << read_file(dir / "host2.log");
  json run = only_run(home);
  EXPECT_EQ(run["status"], "success") << run.dump(2) << "\nhost1:\n"
                                      << read_file(dir / "host1.log") << "\nhost2:\n"
                                      << read_file(dir / "host2.log");
  std::string text = read_file(log);
  for (const char* t : {"a", "b", "c", "d", "x"}) {
    EXPECT_EQ(count(text, std::string("start ") + t), 1) << t << "\n" << text << read_file(dir / "host2.log");
    EXPECT_EQ(count(text, std::string("end ") + t), 1) << t << "\n" << text;
  }
  for (const auto& t : run["tasks"]) {
    EXPECT_EQ(t["status"], "success") << t.dump();
    EXPECT_EQ(t["attempt"], 1) << t.dump();
  }
}

TEST(CrashE2E, KillNineOfHostAndWorkerRetriesTheLostAttempt) {
  TempDir dir;
  std::string home = dir / "home", log = dir / "tasks.log", wf = dir / "wf.yaml";
  write_file(wf, chain_workflow(log, 1));
  {
    Process host("exec env " + env_prefix(home) + kHost + " serve --start " + wf, dir / "host1.log");
    ASSERT_TRUE(
        eventually([&] { return read_file(log).find("start b") != std::string::npos; }, std::chrono::seconds(30)));
    // Kill the host and every worker it started (workers run in their own process groups).
    // Freeze the host first so it cannot react (and retry) between the kills below.
    ::kill(host.pid(), SIGSTOP);
    // ("[s]tart" keeps pkill's own shell from matching its pattern.)
    // Attempts are forks of the host's resident ork-worker: kill those forks, then the resident worker itself.
    const std::string hp = std::to_string(host.pid());
    run("for s in $(pgrep -P " + hp + " ork-worker); do pkill -KILL -P $s ork-worker; done; pkill -KILL -P " + hp +
        " ork-worker; pkill -KILL -f 'echo [s]tart b'; true");
    ::kill(host.pid(), SIGKILL);
    host.wait(std::chrono::seconds(10));
  }
  Process host2("exec env " + env_prefix(home) + kHost + " serve --exit-when-idle", dir / "host2.log");
  ASSERT_EQ(host2.wait(std::chrono::seconds(90)), 0) << read_file(dir / "host2.log");
  json run = only_run(home);
  EXPECT_EQ(run["status"], "success") << run.dump(2) << "\nhost1:\n"
                                      << read_file(dir / "host1.log") << "\nhost2:\n"
                                      << read_file(dir / "host2.log");
  std::string text = read_file(log);
  for (const char* t : {"a", "c", "d"}) EXPECT_EQ(count(text, std::string("end ") + t), 1) << t << "\n" << text;
  EXPECT_EQ(count(text, "end b"), 1) << text;  // the killed attempt never ended; the retry did
  for (const auto& t : run["tasks"]) {
    EXPECT_EQ(t["status"], "success") << t.dump();
    if (t["task_name"] == "b") {
      EXPECT_EQ(t["attempt"], 2) << t.dump();
    }
  }
}

TEST(CrashE2E, FrozenWorkerIsDetectedByItsStaleHeartbeatAndRetried) {
  TempDir dir;
  std::string home = dir / "home", marker = dir / "first", wf = dir / "wf.yaml";
  write_file(wf, R"(
name: frozen
tasks:
  t:
    retries: 1
    command: |
      if [ ! -e )" + marker +
                     R"( ]; then echo $PPID > )" + marker + R"(; kill -STOP $PPID; exec sleep 30; fi
      echo '{"ok": true}'
)");
  auto r = run("env " + env_prefix(home) + " ORK_HEARTBEAT_TIMEOUT_MS=3000 " + kHost + " run " + wf + " 2>&1");
  // The frozen worker never runs again: kill it (its resident worker then exits too).
  run("kill -KILL $(cat " + marker + "); pkill -KILL -f '[e]xec sleep 30'; pkill -KILL -f '^sleep 30$'; true");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("heartbeat timeout"), std::string::npos) << r.output;
  json state = only_run(home);
  EXPECT_EQ(state["tasks"][0]["attempt"], 2);
  EXPECT_EQ(state["tasks"][0]["output"]["ok"], true);
}

TEST(CrashE2E, SecondHostTakesOverWhenTheFirstIsKilled) {
  TempDir dir;
  std::string home = dir / "home", log = dir / "tasks.log", wf = dir / "wf.yaml";
  write_file(wf, chain_workflow(log, 0));
  Process a("exec env " + env_prefix(home) + kHost + " serve --start " + wf, dir / "a.log");
  ASSERT_TRUE(
      eventually([&] { return read_file(log).find("start b") != std::string::npos; }, std::chrono::seconds(30)));
  // Host B starts while A is alive and holds the lease: it must wait, not steal.
  Process b("exec env " + env_prefix(home) + kHost + " serve --exit-when-idle", dir / "b.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(read_file(dir / "b.log").find("resuming run"), std::string::npos) << read_file(dir / "b.log");
  ::kill(a.pid(), SIGKILL);
  a.wait(std::chrono::seconds(10));
  ASSERT_EQ(b.wait(std::chrono::seconds(60)), 0) << read_file(dir / "b.log");
  EXPECT_NE(read_file(dir / "b.log").find("resuming run"), std::string::npos);
  json run = only_run(home);
  EXPECT_EQ(run["status"], "success") << run.dump(2);
  std::string text = read_file(log);
  for (const char* t : {"a", "b", "c", "d", "x"}) EXPECT_EQ(count(text, std::string("end ") + t), 1) << t << text;
}

TEST(CrashE2E, FanOutStoredInBatchesContinuesAfterKillNine) {
  TempDir dir;
  std::string home = dir / "home", log = dir / "items.log", wf = dir / "wf.yaml";
  write_file(wf, R"(
name: batches
tasks:
  discover:
    command: |
      echo '{"items": [)" +
                     int_list(60) + R"(]}'
  process:
    foreach: discover.items
    concurrency: 3
    command: |
      sleep 0.05; echo "end $ORK_PARALLEL_INDEX" >> )" +
                     log + R"(
  total:
    depends_on: [process]
    command: cat
)");
  std::string env = "exec env " + env_prefix(home) + " ORK_FANOUT_BATCH=8 ";
  {
    Process host(env + kHost + " serve --start " + wf, dir / "host1.log");
    ASSERT_TRUE(eventually([&] { return count(read_file(log), "end 20") == 1; }, std::chrono::seconds(60)))
        << read_file(dir / "host1.log");
    ::kill(host.pid(), SIGKILL);
    host.wait(std::chrono::seconds(10));
  }
  Process host2(env + kHost + " serve --exit-when-idle", dir / "host2.log");
  ASSERT_EQ(host2.wait(std::chrono::seconds(90)), 0) << read_file(dir / "host2.log");
  json run = only_run(home);
  EXPECT_EQ(run["status"], "success");
  std::string text = read_file(log);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(count(text, "end " + std::to_string(i)), 1) << i << "\n" << text;
  int processes = 0;
  for (const auto& t : run["tasks"])
    if (t["task_name"] == "process") ++processes;
  EXPECT_EQ(processes, 60);
  for (const auto& t : run["tasks"]) {
    if (t["task_name"] == "total" && t["output"].is_object()) {
      EXPECT_EQ(t["output"]["process"].size(), 60u);
    }
  }
}

TEST(CrashE2E, WorkerKilledWithSigkillIsRetried) {
  TempDir dir;
  std::string home = dir / "home", marker = dir / "first", wf = dir / "wf.yaml";
  write_file(wf, R"(
name: killed
tasks:
  t:
    retries: 1
    command: |
      if [ ! -e )" + marker +
                     R"( ]; then touch )" + marker + R"(; kill -KILL $PPID; exec sleep 5; fi
      echo '{"ok": true}'
)");
  auto r = run("env " + env_prefix(home) + kHost + " run " + wf + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("worker exited without reporting a result"), std::string::npos) << r.output;
  json state = only_run(home);
  EXPECT_EQ(state["tasks"][0]["attempt"], 2);
}

TEST(CrashE2E, AttemptAcquiredButNeverDispatchedRunsAgainWithoutSpendingARetry) {
  TempDir dir;
  std::string home = dir / "home", wf = dir / "wf.yaml";
  write_file(wf, "name: lost\ntasks:\n  t:\n    command: |\n      echo '{\"ran\": true}'\n");
  auto d = run("env " + env_prefix(home) + kHost + " deploy " + wf + " 2>&1");
  ASSERT_EQ(d.exit_code, 0) << d.output;
  // What a host leaves behind when it dies between try_acquire_task and recording the executor: the attempt is
  // `dispatched`, has no executor id, and no worker ever wrote a status.
  {
    auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", home + "/state.db"}});
    json wfrec = *st->get_workflow({{"name", "lost"}});
    std::string run_id = "run-lost-1", now = ork::now_str();
    json run_row{{"id", run_id}, {"workflow_id", wfrec["id"]}, {"workflow_name", "lost"},
                 {"workflow_version", wfrec["version"]}, {"status", "running"}, {"triggered_by", "test"},
                 {"input", json::object()}, {"created_at", now}, {"started_at", now}};
    json task{{"id", "task-lost-1"}, {"run_id", run_id},  {"task_name", "t"},        {"status", "dispatched"},
              {"attempt", 1},        {"max_retries", 0}, {"dispatched_at", now},    {"input", json::object()},
              {"seq", 0}};
    st->create_run({{"run", run_row}, {"tasks", {task}}});
  }
  auto r = run("env " + env_prefix(home) + " ORK_START_TIMEOUT_MS=500 " + kHost + " serve --exit-when-idle 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("never handed to an executor"), std::string::npos) << r.output;
  json state = only_run(home);
  EXPECT_EQ(state["status"], "success") << state.dump(2);
  EXPECT_EQ(state["tasks"][0]["attempt"], 2);
  EXPECT_EQ(state["tasks"][0]["max_retries"], 1);
  EXPECT_EQ(state["tasks"][0]["output"]["ran"], true);
}

}  // namespace
