// Cron schedules (serve's deadline timer, missed-fire policy) and `ork-host tick` driving runs with no resident host.
#include <gtest/gtest.h>

#include "core/util.hpp"
#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

struct Env {
  TempDir dir;
  std::string home = dir / "home";
  std::string host(int64_t clock_offset_ms = 0) const {
    return "env ORK_HOME=" + home +
           " ORK_HEARTBEAT_INTERVAL_MS=200 ORK_CLOCK_OFFSET_MS=" + std::to_string(clock_offset_ms) + " " + kHost;
  }
  json runs() const {
    auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", home + "/state.db"}});
    json rs = st->list_runs({{"limit", 100}})["runs"];
    for (auto& r : rs) r["tasks"] = st->get_task_runs({{"run_id", r["id"]}})["tasks"];
    return rs;
  }
};

std::string chain(const std::string& log, const std::string& schedule) {
  std::string y = "name: nightly\nschedule: \"" + schedule + "\"\ntasks:\n";
  std::string prev;
  for (const char* t : {"a", "b", "c"}) {
    y += std::string("  ") + t + ":\n";
    if (!prev.empty()) y += "    depends_on: [" + prev + "]\n";
    y += std::string("    command: |\n      echo ") + t + " >> " + log + "; echo '{\"t\": \"" + t + "\"}'\n";
    prev = t;
  }
  return y;
}

TEST(TickE2E, TicksAloneFireTheScheduleOnceAndFinishTheRun) {
  Env e;
  std::string log = e.dir / "ran";
  write_file(e.dir / "wf.yaml", chain(log, "*/5 * * * *"));
  auto d = run(e.host() + " deploy " + (e.dir / "wf.yaml") + " 2>&1");
  ASSERT_EQ(d.exit_code, 0) << d.output;
  // Nothing is due yet.
  auto t0 = run(e.host() + " tick 2>&1");
  ASSERT_EQ(t0.exit_code, 0) << t0.output;
  EXPECT_NE(t0.output.find("0 schedule(s) fired"), std::string::npos) << t0.output;
  EXPECT_TRUE(e.runs().empty());
  // An hour later (ten missed fires): one run, not ten.
  const int64_t hour = 3600 * 1000;
  auto t1 = run(e.host(hour) + " tick 2>&1");
  EXPECT_NE(t1.output.find("1 schedule(s) fired"), std::string::npos) << t1.output;
  auto t2 = run(e.host(hour) + " tick 2>&1");
  EXPECT_NE(t2.output.find("0 schedule(s) fired"), std::string::npos) << t2.output;
  // Only ticks, no resident process: each one finishes what ended and dispatches what is ready.
  bool done = eventually(
      [&] {
        run(e.host(hour) + " tick 2>&1");
        json rs = e.runs();
        return rs.size() == 1 && rs[0]["status"] == "success";
      },
      std::chrono::seconds(60));
  json rs = e.runs();
  ASSERT_TRUE(done) << rs.dump(2);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0]["triggered_by"], "schedule");
  EXPECT_EQ(read_file(log), "a\nb\nc\n");
  EXPECT_EQ(rs[0]["tasks"][2]["output"]["t"], "c");
}

TEST(ScheduleE2E, ServeFiresOnTheCronDeadline) {
  Env e;
  std::string log = e.dir / "ran";
  write_file(e.dir / "wf.yaml", chain(log, "* * * * *"));
  // Shift the schedule clock so the next minute boundary is ~1.5 s away.
  int64_t now = ork::now_ms();
  int64_t offset = ((now / 60000) + 1) * 60000 - 1500 - now;
  Process serve("exec " + e.host(offset) + " serve --deploy " + (e.dir / "wf.yaml"), e.dir / "serve.log");
  ASSERT_TRUE(eventually(
      [&] {
        json rs = e.runs();
        return !rs.empty() && rs[0]["status"] == "success";
      },
      std::chrono::seconds(20)))
      << read_file(e.dir / "serve.log");
  serve.kill_group(SIGTERM);
  EXPECT_EQ(serve.wait(std::chrono::seconds(10)), 0);
  json rs = e.runs();
  ASSERT_EQ(rs.size(), 1u) << rs.dump(2);
  EXPECT_EQ(rs[0]["triggered_by"], "schedule");
  EXPECT_TRUE(rs[0]["input"]["scheduled_for"].is_string());
}

TEST(ScheduleE2E, BadCronIsRefusedAtValidateAndDeploy) {
  Env e;
  write_file(e.dir / "wf.yaml", "name: bad\nschedule: \"61 * * * *\"\ntasks:\n  a:\n    command: 'true'\n");
  auto v = run(e.host() + " validate " + (e.dir / "wf.yaml") + " 2>&1");
  EXPECT_EQ(v.exit_code, 2) << v.output;
  EXPECT_NE(v.output.find("wf.yaml:2:"), std::string::npos) << v.output;
  EXPECT_NE(v.output.find("schedule"), std::string::npos) << v.output;
}

}  // namespace
