// The REST API over real HTTP against a running `ork-host serve`: every route, errors, pagination, SSE events,
// log following and single-task submission. Auth is covered in api_auth_test.cpp.
#include <gtest/gtest.h>

#include <set>

#include "api/api_support.hpp"

using namespace ork::test;

namespace {

class Api : public ::testing::Test {
 protected:
  // One server for the whole suite.
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    // A long list-cache TTL: every list below must see changes through invalidation, not expiry.
    srv_ = std::make_unique<Server>(*dir_ / "home", "--no-ui", "ORK_API_MAX_BODY=65536 ORK_API_CACHE_MS=60000");
  }
  static void TearDownTestSuite() {
    srv_.reset();
    dir_.reset();
  }
  static Server& s() { return *srv_; }
  static std::string dir(const std::string& rel) { return *dir_ / rel; }

  // Deploys YAML text; returns the response.
  static HttpResponse deploy(const std::string& yaml, const std::string& query = "") {
    return s().call("POST", "/api/v1/workflows" + query, yaml, {{"Content-Type", "application/yaml"}});
  }
  static std::string start(const std::string& wf, const json& input = json::object()) {
    auto r = s().post("/api/v1/workflows/" + wf + "/runs", {{"input", input}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.j()["run"].value("id", "");
  }
  // Polls the run until it is terminal; returns it.
  static json wait_run(const std::string& id, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    json run;
    eventually(
        [&] {
          run = s().get("/api/v1/runs/" + id).j()["run"];
          std::string st = run.value("status", "");
          return st == "success" || st == "failed" || st == "cancelled";
        },
        timeout);
    return run;
  }

 private:
  static inline std::unique_ptr<TempDir> dir_;
  static inline std::unique_ptr<Server> srv_;
};

TEST_F(Api, HealthAndOpenApiNeedNoKeyAndDescribeTheServer) {
  auto h = s().get("/api/v1/health");
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.j()["status"], "ok");
  EXPECT_EQ(h.j()["auth"], false);
  EXPECT_EQ(h.headers["content-type"], "application/json");
  auto o = s().get("/api/v1/openapi.json");
  ASSERT_EQ(o.status, 200);
  json doc = o.j();
  EXPECT_EQ(doc["openapi"], "3.0.3");
  EXPECT_EQ(doc, json::parse(read_file(std::string(ORK_SOURCE_DIR) + "/host/api/openapi.json")));
}

TEST_F(Api, UnknownRoutesMethodsAndParametersAreJsonErrors) {
  auto r = s().get("/api/v1/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.code(), "route_not_found");
  EXPECT_EQ(r.j()["error"]["details"]["path"], "/api/v1/nope");
  r = s().get("/somewhere/else");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.code(), "route_not_found");
  r = s().call("PUT", "/api/v1/runs");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.code(), "method_not_allowed");
  EXPECT_EQ(r.headers["allow"], "GET");
  r = s().get("/api/v1/runs?bogus=1");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.code(), "unknown_parameter");
  EXPECT_EQ(r.j()["error"]["details"]["parameter"], "bogus");
  for (const char* q : {"limit=0", "limit=1001", "limit=x", "status=done", "cursor=%21%21"}) {
    r = s().get(std::string("/api/v1/runs?") + q);
    EXPECT_EQ(r.status, 400) << q << r.body;
    EXPECT_FALSE(r.code().empty()) << q;
  }
}

TEST_F(Api, MalformedJsonIs400WithItsPosition) {
  ASSERT_EQ(deploy("name: jsonbad\ntasks:\n  a:\n    command: \"true\"\n").status, 201);
  auto r = s().call("POST", "/api/v1/workflows/jsonbad/runs", "{\"input\": {\n  \"a\": 1,\n  \"b\" 2}}");
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.code(), "invalid_json");
  EXPECT_EQ(r.j()["error"]["details"]["line"], 3) << r.body;
  EXPECT_EQ(r.j()["error"]["details"]["column"], 7) << r.body;
  EXPECT_NE(r.j()["error"]["message"].get<std::string>().find("line 3, column 7"), std::string::npos) << r.body;
  r = s().call("POST", "/api/v1/workflows/jsonbad/runs", "[1, 2]");
  EXPECT_EQ(r.code(), "invalid_json");
  r = s().post("/api/v1/workflows/jsonbad/runs", {{"input", 5}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.code(), "invalid_body");
  r = s().post("/api/v1/workflows/jsonbad/runs", {{"inputs", json::object()}});
  EXPECT_EQ(r.code(), "invalid_body");
  r = s().call("POST", "/api/v1/workflows/jsonbad/runs", "{}", {{"Content-Type", "multipart/form-data"}});
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(r.code(), "unsupported_media_type");
}

TEST_F(Api, BodiesOverTheLimitAre413) {
  std::string big(70000, 'x');
  auto r = s().call("POST", "/api/v1/tasks", "{\"run\": \"" + big + "\"}");
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(r.code(), "payload_too_large");
  // The server keeps serving.
  EXPECT_EQ(s().get("/api/v1/health").status, 200);
}

TEST_F(Api, KeepAliveServesSeveralRequestsOnOneConnection) {
  Socket sock(s().port());
  for (int i = 0; i < 3; ++i) {
    sock.write_all(request_text("GET", "/api/v1/health", "", {}, false));
    auto r = read_response(sock);
    EXPECT_EQ(r.status, 200);
  }
}

TEST_F(Api, WorkflowsDeployListGetDeleteWithErrors) {
  std::string wfdir = dir("wfs");
  write_file(wfdir + "/tasks/t.sh", "echo hi\n");
  for (const char* n : {"wf-a", "wf-b", "wf-c"}) {
    auto r = deploy(std::string("name: ") + n + "\ntasks:\n  t:\n    executor: shell\n    file: tasks/t.sh\n",
                    "?base_dir=" + wfdir);
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(r.j()["created"], true);
    EXPECT_EQ(r.headers["location"], std::string("/api/v1/workflows/") + n);
  }
  auto again = deploy("name: wf-a\ntasks:\n  t:\n    command: \"true\"\n");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.j()["created"], false);
  // A missing task file is reported against base_dir.
  auto missing = deploy("name: wf-x\ntasks:\n  t:\n    executor: shell\n    file: nope.sh\n", "?base_dir=" + wfdir);
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.code(), "invalid_workflow");
  auto rel = deploy("name: wf-x\ntasks:\n  t:\n    command: \"true\"\n", "?base_dir=relative/dir");
  EXPECT_EQ(rel.code(), "invalid_parameter");

  auto bad = deploy("name: wf-bad\ntasks:\n  t:\n    command: \"true\"\n    retries: -1\n");
  ASSERT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(bad.code(), "invalid_workflow");
  json e0 = bad.j()["error"]["details"]["errors"][0];
  EXPECT_EQ(e0["line"], 5);
  EXPECT_EQ(e0["field"], "tasks.t.retries");
  EXPECT_EQ(deploy("").code(), "invalid_workflow");
  EXPECT_EQ(deploy("name: [").status, 400);

  // Pages of one, in name order, walked by cursor.
  std::vector<std::string> names;
  std::string cursor;
  for (int i = 0; i < 20; ++i) {
    auto page = s().get("/api/v1/workflows?limit=1" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(page.status, 200) << page.body;
    for (const auto& w : page.j()["workflows"]) names.push_back(w["name"]);
    if (page.j()["next_cursor"].is_null()) break;
    cursor = page.j()["next_cursor"];
  }
  std::vector<std::string> ours;
  for (const auto& n : names)
    if (n.rfind("wf-", 0) == 0) ours.push_back(n);
  EXPECT_EQ(ours, (std::vector<std::string>{"wf-a", "wf-b", "wf-c"}));
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));

  auto got = s().get("/api/v1/workflows/wf-b");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.j()["workflow"]["definition"]["base_dir"], wfdir);
  EXPECT_EQ(s().get("/api/v1/workflows/none").code(), "workflow_not_found");
  EXPECT_EQ(s().call("DELETE", "/api/v1/workflows/wf-c").status, 204);
  EXPECT_EQ(s().get("/api/v1/workflows/wf-c").status, 404);
  EXPECT_EQ(s().call("DELETE", "/api/v1/workflows/wf-c").code(), "workflow_not_found");
  EXPECT_EQ(s().post("/api/v1/workflows/wf-c/runs").code(), "workflow_not_found");
}

TEST_F(Api, ScheduledWorkflowShowsItsNextFire) {
  ASSERT_EQ(deploy("name: nightly\nschedule: \"0 3 * * *\"\ntasks:\n  a:\n    command: \"true\"\n").status, 201);
  json wf = s().get("/api/v1/workflows/nightly").j()["workflow"];
  EXPECT_EQ(wf["schedule"], "0 3 * * *");
  ASSERT_TRUE(wf["next_run"].is_string()) << wf.dump();
  EXPECT_NE(wf["next_run"].get<std::string>().find("T03:00:00.000Z"), std::string::npos) << wf.dump();
}

TEST_F(Api, StartRunWithInputRunsItAndReportsTasks) {
  ASSERT_EQ(deploy(R"(name: greet
tasks:
  hello:
    command: |
      echo "saying hello"; echo "{\"msg\": \"hi $(cat | tr -d '\n' | wc -c)\"}"
  after:
    depends_on: [hello]
    command: cat
)")
                .status,
            201);
  auto r = s().post("/api/v1/workflows/greet/runs", {{"input", {{"who", "ork"}}}});
  ASSERT_EQ(r.status, 201) << r.body;
  std::string id = r.j()["run"]["id"];
  EXPECT_EQ(r.headers["location"], "/api/v1/runs/" + id);
  EXPECT_EQ(r.j()["run"]["input"]["who"], "ork");
  EXPECT_EQ(r.j()["run"]["triggered_by"], "api");
  json run = wait_run(id);
  EXPECT_EQ(run["status"], "success") << run.dump();
  EXPECT_EQ(run["task_counts"]["success"], 2);
  EXPECT_EQ(run["tasks_total"], 2);

  auto tasks = s().get("/api/v1/runs/" + id + "/tasks");
  ASSERT_EQ(tasks.status, 200);
  ASSERT_EQ(tasks.j()["tasks"].size(), 2u);
  EXPECT_EQ(tasks.j()["tasks"][0]["task_name"], "hello");
  EXPECT_EQ(tasks.j()["tasks"][1]["output"]["hello"]["msg"].get<std::string>().rfind("hi ", 0), 0u);
  auto only = s().get("/api/v1/runs/" + id + "/tasks?name=after&status=success");
  ASSERT_EQ(only.j()["tasks"].size(), 1u);
  EXPECT_EQ(only.j()["tasks"][0]["task_name"], "after");
  auto page = s().get("/api/v1/runs/" + id + "/tasks?limit=1");
  ASSERT_EQ(page.j()["tasks"].size(), 1u);
  auto page2 = s().get("/api/v1/runs/" + id + "/tasks?limit=1&cursor=" + page.j()["next_cursor"].get<std::string>());
  ASSERT_EQ(page2.j()["tasks"].size(), 1u);
  EXPECT_EQ(page2.j()["tasks"][0]["task_name"], "after");
  EXPECT_TRUE(page2.j()["next_cursor"].is_null());
  EXPECT_EQ(s().get("/api/v1/runs/nope/tasks").code(), "run_not_found");
  EXPECT_EQ(s().get("/api/v1/runs/nope").code(), "run_not_found");

  auto log = s().get("/api/v1/runs/" + id + "/tasks/hello/logs");
  ASSERT_EQ(log.status, 200) << log.body;
  EXPECT_EQ(log.j()["attempt"], 1);
  EXPECT_EQ(log.j()["attempts"], 1);
  EXPECT_NE(log.j()["content"].get<std::string>().find("saying hello"), std::string::npos) << log.body;
  auto text = s().get("/api/v1/runs/" + id + "/tasks/hello/logs?format=text");
  EXPECT_EQ(text.headers["content-type"], "text/plain; charset=utf-8");
  EXPECT_EQ(text.body, log.j()["content"]);
  EXPECT_EQ(s().get("/api/v1/runs/" + id + "/tasks/nope/logs").code(), "task_not_found");
  EXPECT_EQ(s().get("/api/v1/runs/" + id + "/tasks/hello/logs?attempt=2").code(), "attempt_not_found");
}

TEST_F(Api, RunListFiltersAndWalksCursorPages) {
  ASSERT_EQ(deploy("name: pages-ok\ntasks:\n  a:\n    command: \"true\"\n").status, 201);
  ASSERT_EQ(deploy("name: pages-bad\ntasks:\n  a:\n    command: \"exit 3\"\n").status, 201);
  std::vector<std::string> ok, bad;
  for (int i = 0; i < 7; ++i) ok.push_back(start("pages-ok"));
  for (int i = 0; i < 2; ++i) bad.push_back(start("pages-bad"));
  for (const auto& id : ok) ASSERT_EQ(wait_run(id)["status"], "success");
  for (const auto& id : bad) ASSERT_EQ(wait_run(id)["status"], "failed");

  // Walk pages of 3 while a new run appears: every run once, newest first, the new one not in the walk.
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  while (true) {
    auto r = s().get("/api/v1/runs?workflow=pages-ok&limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r.body;
    for (const auto& run : r.j()["runs"]) {
      EXPECT_EQ(run["workflow_name"], "pages-ok");
      seen.push_back(run["id"]);
    }
    if (++pages == 1) ok.push_back(start("pages-ok"));
    if (r.j()["next_cursor"].is_null()) break;
    cursor = r.j()["next_cursor"];
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  std::vector<std::string> expect(ok.rbegin() + 1, ok.rend());  // started in order: newest first
  EXPECT_EQ(seen, expect);

  auto failed = s().get("/api/v1/runs?status=failed&workflow=pages-bad");
  ASSERT_EQ(failed.j()["runs"].size(), 2u) << failed.body;
  auto both = s().get("/api/v1/runs?status=failed,success&limit=1000");
  std::set<std::string> statuses;
  for (const auto& r : both.j()["runs"]) statuses.insert(r["status"].get<std::string>());
  EXPECT_EQ(statuses, (std::set<std::string>{"failed", "success"}));
  auto repeated = s().get("/api/v1/runs?status=failed&status=cancelled&workflow=pages-bad");
  EXPECT_EQ(repeated.j()["runs"].size(), 2u);
}

// Run lists are cached briefly, but a status change or a write through the API shows at once.
TEST_F(Api, RunListsShowChangesAtOnce) {
  ASSERT_EQ(deploy("name: fresh\ntasks:\n  a:\n    command: \"true\"\n").status, 201);
  EXPECT_TRUE(s().get("/api/v1/runs?workflow=fresh").j()["runs"].empty());
  std::string id = start("fresh");
  json runs = s().get("/api/v1/runs?workflow=fresh").j()["runs"];
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["id"], id);
  ASSERT_EQ(wait_run(id)["status"], "success");
  EXPECT_EQ(s().get("/api/v1/runs?workflow=fresh").j()["runs"][0]["status"], "success");
}

TEST_F(Api, EventsStreamRunAndTaskStatusChanges) {
  ASSERT_EQ(deploy("name: evented\ntasks:\n  one:\n    command: \"true\"\n  two:\n    depends_on: [one]\n    command: "
                   "\"true\"\n")
                .status,
            201);
  SseStream all(s().port(), "/api/v1/events?workflow=evented");
  ASSERT_EQ(all.status(), 200);
  EXPECT_NE(all.head().find("text/event-stream"), std::string::npos);
  ASSERT_TRUE(all.wait_ready());
  std::string id = start("evented");
  auto running = all.next_where("run", [&](const SseEvent& e) { return e.j()["status"] == "running"; });
  ASSERT_TRUE(running) << "no run event";
  EXPECT_EQ(running->j()["run_id"], id);
  auto t = all.next_where(
      "task", [&](const SseEvent& e) { return e.j()["task_name"] == "two" && e.j()["status"] == "success"; });
  ASSERT_TRUE(t);
  EXPECT_EQ(t->j()["run_id"], id);
  EXPECT_FALSE(t->j().contains("output"));
  auto done = all.next_where("run", [&](const SseEvent& e) { return e.j()["status"] == "success"; });
  ASSERT_TRUE(done);
  EXPECT_EQ(done->j()["workflow_name"], "evented");
}

TEST_F(Api, CancelStopsARunAndEventsFilterByRun) {
  ASSERT_EQ(deploy("name: sleepy\ntasks:\n  nap:\n    command: \"sleep 30\"\n  never:\n    depends_on: [nap]\n    "
                   "command: \"true\"\n")
                .status,
            201);
  std::string id = start("sleepy");
  std::string other = start("sleepy");
  SseStream mine(s().port(), "/api/v1/events?run=" + id);
  ASSERT_TRUE(mine.wait_ready());
  ASSERT_TRUE(eventually(
      [&] { return s().get("/api/v1/runs/" + id + "/tasks?name=nap").j()["tasks"][0]["status"] == "running"; },
      std::chrono::seconds(30)));
  auto c = s().post("/api/v1/runs/" + id + "/cancel");
  ASSERT_EQ(c.status, 202) << c.body;
  auto ev = mine.next_where("run", [](const SseEvent& e) { return e.j()["status"] == "cancelled"; });
  ASSERT_TRUE(ev) << "no cancelled event";
  EXPECT_EQ(ev->j()["run_id"], id);
  json run = wait_run(id);
  EXPECT_EQ(run["status"], "cancelled");
  json tasks = s().get("/api/v1/runs/" + id + "/tasks").j()["tasks"];
  EXPECT_EQ(tasks[0]["status"], "cancelled");
  EXPECT_EQ(tasks[1]["status"], "skipped");
  // Nothing of the other run reached this stream.
  while (auto e = mine.next(std::chrono::milliseconds(300))) EXPECT_EQ(e->j()["run_id"], id) << e->data;
  EXPECT_EQ(s().post("/api/v1/runs/" + id + "/cancel").code(), "run_finished");
  EXPECT_EQ(s().post("/api/v1/runs/nope/cancel").code(), "run_not_found");
  EXPECT_EQ(s().post("/api/v1/runs/" + other + "/cancel", {{"task", "ghost"}}).code(), "task_not_found");
  auto one = s().post("/api/v1/runs/" + other + "/cancel", {{"task", "nap"}});
  EXPECT_EQ(one.status, 202) << one.body;
  EXPECT_EQ(wait_run(other)["status"], "cancelled");
}

TEST_F(Api, RetryRerunsFailedTasksOrOneTask) {
  std::string flag = dir("retry-fail");
  write_file(flag, "");
  ASSERT_EQ(deploy("name: flaky\ntasks:\n  a:\n    command: \"echo '{\\\"a\\\": 1}'\"\n  b:\n    depends_on: [a]\n    "
                   "command: \"[ -e " +
                   flag + " ] && exit 4; cat\"\n")
                .status,
            201);
  std::string id = start("flaky");
  ASSERT_EQ(wait_run(id)["status"], "failed");
  EXPECT_EQ(s().post("/api/v1/runs/" + id + "/retry", {{"task", "zzz"}}).code(), "task_not_found");
  fs::remove(flag);
  auto r = s().post("/api/v1/runs/" + id + "/retry");
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_EQ(wait_run(id)["status"], "success");
  json tasks = s().get("/api/v1/runs/" + id + "/tasks").j()["tasks"];
  EXPECT_EQ(tasks[0]["attempt"], 1);  // a's output was reused
  EXPECT_EQ(tasks[1]["attempt"], 2);
  EXPECT_EQ(s().post("/api/v1/runs/" + id + "/retry").code(), "nothing_to_retry");
  auto one = s().post("/api/v1/runs/" + id + "/retry", {{"task", "b"}});
  ASSERT_EQ(one.status, 202) << one.body;
  ASSERT_EQ(wait_run(id)["status"], "success");
  EXPECT_EQ(s().get("/api/v1/runs/" + id + "/tasks?name=b").j()["tasks"][0]["attempt"], 3);
  // Attempts are selectable in the logs.
  auto a1 = s().get("/api/v1/runs/" + id + "/tasks/b/logs?attempt=1");
  EXPECT_EQ(a1.j()["attempt"], 1);
  EXPECT_NE(a1.j()["content"].get<std::string>().find("exited with code 4"), std::string::npos) << a1.body;
  auto a3 = s().get("/api/v1/runs/" + id + "/tasks/b/logs");
  EXPECT_EQ(a3.j()["attempt"], 3);
  EXPECT_NE(a3.j()["content"].get<std::string>().find("task succeeded"), std::string::npos) << a3.body;

  ASSERT_EQ(deploy("name: slow-retry\ntasks:\n  a:\n    command: \"sleep 20\"\n").status, 201);
  std::string busy = start("slow-retry");
  EXPECT_EQ(s().post("/api/v1/runs/" + busy + "/retry").code(), "run_active");
  s().post("/api/v1/runs/" + busy + "/cancel");
}

TEST_F(Api, FanOutLogsNeedAnIndex) {
  ASSERT_EQ(
      deploy("name: fan\ntasks:\n  p:\n    parallel: 2\n    command: \"echo instance $ORK_PARALLEL_INDEX\"\n").status,
      201);
  std::string id = start("fan");
  ASSERT_EQ(wait_run(id)["status"], "success");
  auto r = s().get("/api/v1/runs/" + id + "/tasks/p/logs");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.code(), "index_required");
  auto one = s().get("/api/v1/runs/" + id + "/tasks/p/logs?index=1");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.j()["parallel_index"], 1);
  EXPECT_NE(one.j()["content"].get<std::string>().find("instance 1"), std::string::npos) << one.body;
  EXPECT_EQ(s().get("/api/v1/runs/" + id + "/tasks/p/logs?index=5").code(), "task_not_found");
}

TEST_F(Api, FollowingALogStreamsLinesAsTheTaskWritesThem) {
  std::string gate = dir("follow-gate");
  ASSERT_EQ(deploy("name: chatty\ntasks:\n  talk:\n    command: |\n      echo line-one\n      while [ ! -e " + gate +
                   " ]; do sleep 0.05; done\n      echo line-two\n")
                .status,
            201);
  std::string id = start("chatty");
  ASSERT_TRUE(eventually(
      [&] { return s().get("/api/v1/runs/" + id + "/tasks?name=talk").j()["tasks"][0]["status"] == "running"; },
      std::chrono::seconds(30)));
  SseStream f(s().port(), "/api/v1/runs/" + id + "/tasks/talk/logs?follow=true");
  ASSERT_EQ(f.status(), 200);
  // The first line arrives while the task still runs (it waits for the gate).
  auto first = f.next_where("log", [](const SseEvent& e) { return e.data.find("line-one") != std::string::npos; });
  ASSERT_TRUE(first);
  EXPECT_EQ(s().get("/api/v1/runs/" + id).j()["run"]["status"], "running");
  write_file(gate, "");
  auto second = f.next_where("log", [](const SseEvent& e) { return e.data.find("line-two") != std::string::npos; });
  ASSERT_TRUE(second);
  auto end = f.next_where("end", [](const SseEvent&) { return true; });
  ASSERT_TRUE(end);
  EXPECT_EQ(end->j()["status"], "success");
  EXPECT_EQ(end->j()["attempt"], 1);
  EXPECT_TRUE(f.closed(std::chrono::seconds(10)));
}

TEST_F(Api, FollowingALogMovesOnToTheRetryAttempt) {
  std::string gate = dir("retry-gate"), mark = dir("retry-mark");
  ASSERT_EQ(deploy("name: twice\ntasks:\n  t:\n    retries: 1\n    command: |\n      if [ ! -e " + mark +
                   " ]; then\n        touch " + mark + "; echo first-try\n        while [ ! -e " + gate +
                   " ]; do sleep 0.05; done\n        exit 1\n      fi\n      echo second-try\n")
                .status,
            201);
  std::string id = start("twice");
  ASSERT_TRUE(eventually([&] { return fs::exists(mark); }, std::chrono::seconds(30)));
  SseStream f(s().port(), "/api/v1/runs/" + id + "/tasks/t/logs?follow=true");
  ASSERT_TRUE(f.next_where("log", [](const SseEvent& e) { return e.data.find("first-try") != std::string::npos; }));
  write_file(gate, "");
  auto next = f.next_where("attempt", [](const SseEvent&) { return true; });
  ASSERT_TRUE(next);
  EXPECT_EQ(next->j()["attempt"], 2);
  ASSERT_TRUE(f.next_where("log", [](const SseEvent& e) { return e.data.find("second-try") != std::string::npos; }));
  auto end = f.next_where("end", [](const SseEvent&) { return true; });
  ASSERT_TRUE(end);
  EXPECT_EQ(end->j()["status"], "success");
  EXPECT_EQ(end->j()["attempt"], 2);
  // A finished task's log follows to its end at once; a fixed attempt stops with that attempt.
  SseStream done(s().port(), "/api/v1/runs/" + id + "/tasks/t/logs?follow=true&attempt=1");
  ASSERT_TRUE(done.next_where("log", [](const SseEvent& e) { return e.data.find("first-try") != std::string::npos; }));
  auto end1 = done.next_where("end", [](const SseEvent&) { return true; });
  ASSERT_TRUE(end1);
  EXPECT_EQ(end1->j()["status"], "retried");
  EXPECT_TRUE(done.closed(std::chrono::seconds(10)));
}

TEST_F(Api, SubmittedTaskRunsWithPreAndPostAndReportsItsResult) {
  auto r = s().post("/api/v1/tasks", {{"name", "hello world"},
                                      {"cmd", {"echo", "-n", "{\"hello\": \"it's me\"}"}},
                                      {"pre", {{{"run", "echo pre-ran"}}}},
                                      {"post", {{{"command", "cat"}}}}});
  ASSERT_EQ(r.status, 201) << r.body;
  std::string id = r.j()["task"]["id"];
  EXPECT_EQ(r.headers["location"], "/api/v1/tasks/" + id);
  EXPECT_EQ(r.j()["task"]["name"], "hello world");
  json t;
  ASSERT_TRUE(eventually(
      [&] {
        t = s().get("/api/v1/tasks/" + id).j()["task"];
        return t.value("state", "") == "COMPLETED" || t.value("state", "") == "FAILED";
      },
      std::chrono::seconds(60)));
  EXPECT_EQ(t["state"], "COMPLETED") << t.dump();
  EXPECT_EQ(t["status"], "success");
  EXPECT_EQ(t["result"]["hello"], "it's me");
  ASSERT_EQ(t["pre"].size(), 1u);
  EXPECT_EQ(t["pre"][0]["status"], "success");
  ASSERT_EQ(t["post"].size(), 1u);
  EXPECT_EQ(t["post"][0]["output"]["main"]["hello"], "it's me");
  // It is a run like any other; its hidden workflow is not listed.
  EXPECT_EQ(s().get("/api/v1/runs/" + id).status, 200);
  auto wfs = s().get("/api/v1/workflows?limit=1000").j()["workflows"];
  for (const auto& w : wfs) EXPECT_NE(w["name"].get<std::string>()[0], '@');
  auto log = s().get("/api/v1/runs/" + id + "/tasks/pre-1/logs");
  EXPECT_NE(log.j()["content"].get<std::string>().find("pre-ran"), std::string::npos);
}

TEST_F(Api, SubmittedPythonTaskWithRetriesGetsItsInput) {
  auto r = s().post("/api/v1/tasks", {{"code", "def main(inp):\n    return {\"double\": inp[\"n\"] * 2}\n"},
                                      {"input", {{"n", 21}}},
                                      {"retries", 2},
                                      {"timeout", "30s"}});
  ASSERT_EQ(r.status, 201) << r.body;
  std::string id = r.j()["task"]["id"];
  json t;
  ASSERT_TRUE(eventually(
      [&] {
        t = s().get("/api/v1/tasks/" + id).j()["task"];
        return t.value("state", "") == "COMPLETED" || t.value("state", "") == "FAILED";
      },
      std::chrono::seconds(60)));
  EXPECT_EQ(t["state"], "COMPLETED") << t.dump() << s().get("/api/v1/runs/" + id + "/tasks/main/logs").body;
  EXPECT_EQ(t["result"]["double"], 42);
  EXPECT_EQ(t["retries"], 2);
}

TEST_F(Api, FailingSubmittedTaskIsFailedWithItsError) {
  auto r = s().post("/api/v1/tasks", {{"run", "echo broken >&2; exit 7"}});
  ASSERT_EQ(r.status, 201) << r.body;
  std::string id = r.j()["task"]["id"];
  json t;
  ASSERT_TRUE(eventually(
      [&] {
        t = s().get("/api/v1/tasks/" + id).j()["task"];
        return t.value("state", "") == "FAILED";
      },
      std::chrono::seconds(60)))
      << t.dump();
  EXPECT_EQ(t["error"]["type"], "task_failed") << t.dump();
}

TEST_F(Api, BadTaskSubmissionsAreRefusedNamingTheField) {
  auto r = s().post("/api/v1/tasks", {{"command", "true"}, {"colour", "red"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.code(), "invalid_task");
  EXPECT_EQ(r.j()["error"]["details"]["field"], "colour");
  r = s().post("/api/v1/tasks", {{"input", json::object()}});
  EXPECT_EQ(r.code(), "invalid_task");
  r = s().post("/api/v1/tasks", {{"command", "true"}, {"run", "true"}});
  EXPECT_EQ(r.code(), "invalid_task");
  r = s().post("/api/v1/tasks", {{"command", "true"}, {"timeout", "soon"}});
  ASSERT_EQ(r.code(), "invalid_task") << r.body;
  EXPECT_EQ(r.j()["error"]["details"]["errors"][0]["field"], "timeout") << r.body;
  r = s().post("/api/v1/tasks", {{"command", "true"}, {"pre", {{{"command", "true"}, {"retries", -2}}}}});
  ASSERT_EQ(r.code(), "invalid_task") << r.body;
  EXPECT_EQ(r.j()["error"]["details"]["errors"][0]["field"], "pre[0].retries") << r.body;
  r = s().post("/api/v1/tasks", {{"image", "ubuntu:mantic"}, {"cmd", {"echo", "hi"}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.code(), "unsupported");
  EXPECT_EQ(s().get("/api/v1/tasks/nope").code(), "task_not_found");
}

TEST_F(Api, RunsOfWorkflowsAreNotSubmittedTasks) {
  ASSERT_EQ(deploy("name: plain\ntasks:\n  a:\n    command: \"true\"\n").status, 201);
  std::string id = start("plain");
  EXPECT_EQ(s().get("/api/v1/tasks/" + id).code(), "task_not_found");
  wait_run(id);
}

// `import:` in a deployed workflow goes through the dbt importer plugin (tests/fixtures/dbt), errors as JSON.
TEST_F(Api, DeployedWorkflowImportsADbtProject) {
  const std::string fixtures = std::string(ORK_SOURCE_DIR) + "/tests/fixtures/dbt";
  ASSERT_TRUE(fs::exists(std::string(ORK_BINARY_DIR) + "/lib/libork-dbt-import.so"))
      << "plugins/dbt-import is not built (ORK_BUILD_DBT_IMPORT=OFF)";
  auto r = deploy(
      "name: dbt-api\nimport:\n  - dbt: ./jaffle\n    models: [marts.*]\ntasks:\n  after:\n"
      "    command: \"true\"\n    depends_on: [dbt.marts.fct_sales]\n",
      "?base_dir=" + fixtures);
  ASSERT_EQ(r.status, 201) << r.body;
  json def = s().get("/api/v1/workflows/dbt-api").j()["workflow"]["definition"];
  std::set<std::string> names;
  for (const auto& t : def["tasks"]) names.insert(t["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"after", "dbt.marts.core.dim_customers", "dbt.marts.fct_sales",
                                          "dbt.marts.fct_sales.test"}));
  auto bad = deploy("name: dbt-bad\nimport:\n  - dbt: ./broken/cycle\n", "?base_dir=" + fixtures);
  ASSERT_EQ(bad.status, 400) << bad.body;
  json e0 = bad.j()["error"]["details"]["errors"][0];
  EXPECT_EQ(e0["line"], 3);
  EXPECT_EQ(e0["field"], "import[0].dbt");
  EXPECT_NE(e0["message"].get<std::string>().find("dependency cycle: a -> b -> c -> a"), std::string::npos) << e0;
}

}  // namespace
