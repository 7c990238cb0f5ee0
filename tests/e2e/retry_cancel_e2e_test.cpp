// `ork-host retry` (failed tasks, or one task and its downstream, reusing outputs) and `ork-host cancel`.
#include <gtest/gtest.h>

#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

struct Env {
  TempDir dir;
  std::string home = dir / "home";
  std::string host() const {
    return "env ORK_HOME=" + home + " ORK_HEARTBEAT_INTERVAL_MS=200 ORK_LEASE_TTL_MS=900 ORK_CANCEL_GRACE_MS=500 " +
           kHost;
  }
  json run_state() const {
    auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", home + "/state.db"}});
    json runs = st->list_runs({{"limit", 1}});
    json out = runs["runs"][0];
    json tasks = st->get_task_runs({{"run_id", out["id"]}})["tasks"];
    for (auto& t : tasks) out["t"][t["task_name"].get<std::string>()] = t;
    return out;
  }
  // Three tasks; each appends its name to `log` when it runs; b fails while the file `fail` exists.
  std::string abc() const {
    std::string log = dir / "ran", fail = dir / "fail";
    write_file(dir / "wf.yaml", R"(
name: abc
tasks:
  a:
    command: |
      echo a >> )" + log + R"(; echo '{"v": 1}'
  b:
    depends_on: [a]
    command: |
      echo b >> )" + log + R"(; [ -e )" +
                                    fail + R"( ] && exit 4; cat
  c:
    depends_on: [b]
    command: |
      echo c >> )" + log + R"(; cat
)");
    return dir / "wf.yaml";
  }
};

TEST(RetryE2E, RetryRerunsOnlyWhatDidNotSucceedAndReusesOutputs) {
  Env e;
  write_file(e.dir / "fail", "");
  auto first = run(e.host() + " run " + e.abc() + " 2>&1");
  ASSERT_EQ(first.exit_code, 1) << first.output;
  json s1 = e.run_state();
  EXPECT_EQ(s1["t"]["b"]["status"], "failed");
  EXPECT_EQ(s1["t"]["c"]["status"], "skipped");
  fs::remove(e.dir / "fail");
  auto again = run(e.host() + " retry " + s1["id"].get<std::string>() + " 2>&1");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  json s2 = e.run_state();
  EXPECT_EQ(s2["id"], s1["id"]);
  EXPECT_EQ(s2["status"], "success");
  EXPECT_EQ(read_file(e.dir / "ran"), "a\nb\nb\nc\n");  // a ran once; its output was reused
  EXPECT_EQ(s2["t"]["a"]["attempt"], 1);
  EXPECT_EQ(s2["t"]["b"]["attempt"], 2);
  EXPECT_EQ(s2["t"]["c"]["output"]["b"]["a"]["v"], 1);
  // Nothing left to retry on a successful run.
  auto none = run(e.host() + " retry " + s1["id"].get<std::string>() + " 2>&1");
  EXPECT_EQ(none.exit_code, 2) << none.output;
  EXPECT_NE(none.output.find("nothing to retry"), std::string::npos) << none.output;
}

TEST(RetryE2E, RetryTaskRerunsItAndItsDownstreamOnly) {
  Env e;
  auto first = run(e.host() + " run " + e.abc() + " 2>&1");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  std::string id = e.run_state()["id"];
  auto again = run(e.host() + " retry " + id + " --task b 2>&1");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(read_file(e.dir / "ran"), "a\nb\nc\nb\nc\n");
  json s = e.run_state();
  EXPECT_EQ(s["t"]["a"]["attempt"], 1);
  EXPECT_EQ(s["t"]["b"]["attempt"], 2);
  EXPECT_EQ(s["t"]["c"]["attempt"], 2);
}

TEST(CancelE2E, CancelFromAnotherProcessStopsTheRunTheServerDrives) {
  Env e;
  std::string started = e.dir / "started";
  write_file(e.dir / "long.yaml", R"(
name: long
tasks:
  long:
    command: |
      touch )" + started + R"(; sleep 60
  after:
    depends_on: [long]
    command: echo '{}'
)");
  Process serve("exec " + e.host() + " serve --exit-when-idle --start " + (e.dir / "long.yaml"), e.dir / "serve.log");
  ASSERT_TRUE(eventually([&] { return fs::exists(started); }, std::chrono::seconds(20)))
      << read_file(e.dir / "serve.log");
  std::string id = e.run_state()["id"];
  auto task_cancel = run(e.host() + " cancel " + id + " --task long 2>&1");
  EXPECT_EQ(task_cancel.exit_code, 2) << task_cancel.output;
  EXPECT_NE(task_cancel.output.find("cancel its task there"), std::string::npos) << task_cancel.output;
  auto c = run(e.host() + " cancel " + id + " 2>&1");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_NE(c.output.find("marked cancelled"), std::string::npos) << c.output;
  ASSERT_EQ(serve.wait(std::chrono::seconds(20)), 0) << read_file(e.dir / "serve.log");
  json s = e.run_state();
  EXPECT_EQ(s["status"], "cancelled");
  EXPECT_EQ(s["t"]["long"]["status"], "cancelled");
  EXPECT_EQ(s["t"]["after"]["status"], "skipped");
}

}  // namespace
