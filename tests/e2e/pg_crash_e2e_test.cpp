// Two `ork-host serve` on one PostgreSQL: a 200-task run (fan-out plus a chain) survives `kill -9` of the host
// driving it at a random moment (10 trials), and a PostgreSQL restart in the middle of a run. No task succeeds twice.
#include <gtest/gtest.h>

#include <random>

#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

const std::string kPgDir = std::string(ORK_BINARY_DIR) + "/pg";

std::string tail(const std::string& s, size_t n = 6000) {
  return s.size() > n ? s.substr(s.size() - n) : s;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

struct Trial {
  TempDir dir;
  std::string schema;
  std::string log = dir / "markers.log";
  json state_cfg;

  explicit Trial(const std::string& name) : schema(name) {
    state_cfg = {{"url", trim(read_file(kPgDir + "/url"))}, {"schema", schema}};
    write_file(dir / "plugins.yaml",
               "plugins:\n  - {kind: state, name: pg, library: ork-state-postgres, config: " + state_cfg.dump() +
                   "}\n" + "  - {kind: object, name: local, library: ork-object-local, config: {root: '" +
                   (dir / "objects") + "'}}\n" +
                   "  - {kind: executor, name: local, library: ork-exec-subprocess, default: true}\n");
    // root -> 120-way foreach -> join, and root -> a 78-task chain: 200 tasks. Each attempt logs start and end.
    std::string mark =
        "echo \"$ORK_TASK_ID $ORK_ATTEMPT start\" >> " + log + "; sleep 0.02; echo \"$ORK_TASK_ID end\" >> " + log;
    std::string y = "name: crashy\ntasks:\n  root:\n    command: |\n      " + mark + "; echo '{\"items\": [" +
                    int_list(120) + "]}'\n";
    y += "  fan:\n    foreach: root.items\n    concurrency: 8\n    retries: 2\n    command: |\n      " + mark + "\n";
    y += "  join:\n    depends_on: [fan]\n    retries: 2\n    command: |\n      " + mark + "\n";
    std::string prev = "root";
    for (int i = 0; i < 78; ++i) {
      std::string n = "c" + std::to_string(i);
      y += "  " + n + ":\n    depends_on: [" + prev + "]\n    retries: 2\n    command: |\n      " + mark + "\n";
      prev = n;
    }
    write_file(dir / "wf.yaml", y);
  }
  std::string host(const std::string& args) const {
    return "exec env ORK_HOME=" + (dir / "home") +
           " ORK_HEARTBEAT_INTERVAL_MS=300 ORK_HEARTBEAT_TIMEOUT_MS=6000 ORK_LEASE_TTL_MS=2000 "
           "ORK_START_TIMEOUT_MS=10000 " +
           kHost + " --plugins " + (dir / "plugins.yaml") + " " + args;
  }
  json run() const {
    auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-postgres", state_cfg);
    json runs = st->list_runs({{"limit", 5}})["runs"];
    if (runs.size() != 1) return json::object();
    json r = runs[0];
    r["tasks"] = st->get_task_runs({{"run_id", r["id"]}})["tasks"];
    return r;
  }
  bool finished() const {
    try {
      json r = run();
      return r.contains("status") && (r["status"] == "success" || r["status"] == "failed");
    } catch (const std::exception&) {
      return false;  // the server may be restarting
    }
  }
  // The tasks that have not succeeded (for failure messages).
  std::string unfinished() const {
    std::string out;
    try {
      json r = run();
      for (const auto& t : r.value("tasks", json::array()))
        if (t["status"] != "success") out += t["task_name"].get<std::string>() + " " + t.dump().substr(0, 400) + "\n";
    } catch (const std::exception& e) {
      out = e.what();
    }
    return out;
  }
  // Checks the finished run; returns how many attempts beyond the first there were (retries after lost workers).
  int verify() const {
    json r = run();
    EXPECT_EQ(r["status"], "success") << r.dump().substr(0, 3000);
    EXPECT_EQ(r["tasks"].size(), 200u);
    std::string text = read_file(log);
    int extra = 0;
    for (const auto& t : r["tasks"]) {
      EXPECT_EQ(t["status"], "success") << t.dump();
      std::string id = t["id"];
      int ends = 0;
      for (size_t p = text.find(id + " end"); p != std::string::npos; p = text.find(id + " end", p + 1)) ++ends;
      EXPECT_EQ(ends, 1) << "task " << t["task_name"] << " " << id << " succeeded " << ends << " times";
      extra += t["attempt"].get<int>() - 1;
    }
    return extra;
  }
};

TEST(PgCrashE2E, KillNineOfTheDrivingHostTenTimes) {
  std::mt19937 rng(std::random_device{}());
  int extra_attempts = 0;
  for (int trial = 0; trial < 10; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    Trial t("crash_" + std::to_string(getpid()) + "_" + std::to_string(trial));
    Process a(t.host("serve --start " + (t.dir / "wf.yaml")), t.dir / "a.log");
    ASSERT_TRUE(eventually([&] { return fs::exists(t.log); }, std::chrono::seconds(30))) << read_file(t.dir / "a.log");
    Process b(t.host("serve"), t.dir / "b.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 2500)(rng)));
    ::kill(a.pid(), SIGKILL);
    a.wait(std::chrono::seconds(10));
    ASSERT_TRUE(eventually([&] { return t.finished(); }, std::chrono::seconds(120)))
        << tail(read_file(t.dir / "b.log"));
    extra_attempts += t.verify();
    b.kill_group(SIGTERM);
    b.wait(std::chrono::seconds(10));
  }
  std::cout << "10 trials: every run succeeded; attempts beyond the first (after lost workers): " << extra_attempts
            << "\n";
}

TEST(PgCrashE2E, PostgresRestartInTheMiddleOfARun) {
  Trial t("restart_" + std::to_string(getpid()));
  Process a(t.host("serve --start " + (t.dir / "wf.yaml")), t.dir / "a.log");
  Process b(t.host("serve"), t.dir / "b.log");
  ASSERT_TRUE(eventually([&] { return read_file(t.log).size() > 2000; }, std::chrono::seconds(30)))
      << read_file(t.dir / "a.log");
  auto r = run("bash " + std::string(ORK_SOURCE_DIR) + "/tests/support/pg_server.sh restart " + kPgDir + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(eventually([&] { return t.finished(); }, std::chrono::seconds(120)))
      << t.unfinished() << "host a:\n"
      << tail(read_file(t.dir / "a.log")) << "\nhost b:\n"
      << tail(read_file(t.dir / "b.log"));
  int extra = t.verify();
  std::cout << "PostgreSQL restart: run succeeded; attempts beyond the first: " << extra << "\n";
  a.kill_group(SIGTERM);
  b.kill_group(SIGTERM);
}

}  // namespace
