// StateStore conformance suite (docs/plugin-abi.md): any state plugin, loaded through the host's loader exactly as
// ork-host loads it. ORK_CONFORMANCE_LIBRARY (default ork-state-sqlite) and ORK_CONFORMANCE_CONFIG (JSON; every
// "{tmpdir}" becomes a fresh directory per test, every "{file:PATH}" the contents of PATH) choose the backend, read
// at run time. Remote backends cannot be reset between tests, so every test uses fresh UUIDs and names and never
// assumes an empty store.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "support/plugin_support.hpp"

using ork::test::code_of;

namespace {

namespace fs = std::filesystem;
using ork::json;
using ork::StateProxy;
using Clock = std::chrono::steady_clock;

// ---- Backend selection

struct Backend {
  std::string library;
  std::string config;  // JSON text, may contain {tmpdir}
};

void PrintTo(const Backend& b, std::ostream* os) {
  *os << b.library << " " << b.config;
}

Backend backend_from_env() {
  const char* lib = std::getenv("ORK_CONFORMANCE_LIBRARY");
  const char* cfg = std::getenv("ORK_CONFORMANCE_CONFIG");
  return {lib && *lib ? lib : "ork-state-sqlite", cfg && *cfg ? cfg : R"({"path": "{tmpdir}/state.db"})"};
}

std::string test_name(const ::testing::TestParamInfo<Backend>& info) {
  std::string n = fs::path(info.param.library).stem().string();
  for (auto& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n.empty() ? "backend" : n;
}

// ---- Records as the host writes them (every field present, null when unset)

const std::vector<std::string> kWorkflowFields = {"id",      "name",       "definition", "schedule",
                                                  "version", "created_at", "updated_at"};
const std::vector<std::string> kRunFields = {
    "id",    "workflow_id",   "workflow_name", "workflow_version", "status",      "triggered_by", "input",
    "owner", "lease_expires", "error",         "started_at",       "finished_at", "created_at"};
const std::vector<std::string> kTaskFields = {
    "id",         "run_id",      "task_name",  "status", "attempt", "max_retries", "parallel_index", "parallel_count",
    "executor",   "executor_id", "input",      "output", "error",   "not_before",  "heartbeat_at",   "dispatched_at",
    "started_at", "finished_at", "created_at", "seq"};
const std::vector<std::string> kScheduleFields = {"id",       "workflow_name", "cron_expr",
                                                  "next_run", "enabled",       "created_at"};

std::string uid() {
  return ork::new_uuid();
}
// prefix + number (appending sidesteps a GCC 12 -Wrestrict false positive on "literal" + std::string at -O2).
std::string numbered(const char* prefix, size_t i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}
std::string ts(int64_t offset_ms = 0) {
  return ork::format_time(ork::now_ms() + offset_ms);
}
std::string at(int64_t epoch_ms) {
  return ork::format_time(epoch_ms);
}

bool is_timestamp(const json& j) {
  if (!j.is_string()) return false;
  const std::string& s = j.get_ref<const std::string&>();
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (s.size() != shape.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(s[i])) : s[i] != shape[i]) return false;
  return true;
}

void expect_fields(const json& rec, const std::vector<std::string>& fields, const std::string& what) {
  ASSERT_TRUE(rec.is_object()) << what << ": " << rec.dump();
  for (const auto& f : fields) EXPECT_TRUE(rec.contains(f)) << what << " lacks field '" << f << "': " << rec.dump();
}

json run_record(const std::string& id, const std::string& wf, const std::string& status = "pending",
                const std::string& created_at = "") {
  return {{"id", id},
          {"workflow_id", uid()},
          {"workflow_name", wf},
          {"workflow_version", "v1"},
          {"status", status},
          {"triggered_by", "test"},
          {"input", {{"k", "v"}, {"n", 1}}},
          {"owner", nullptr},
          {"lease_expires", nullptr},
          {"error", nullptr},
          {"started_at", nullptr},
          {"finished_at", nullptr},
          {"created_at", created_at.empty() ? ts() : created_at}};
}

json task_record(const std::string& run_id, const std::string& name, int64_t seq, json parallel_index = nullptr,
                 json parallel_count = nullptr) {
  return {{"id", uid()},
          {"run_id", run_id},
          {"task_name", name},
          {"status", "pending"},
          {"attempt", 0},
          {"max_retries", 2},
          {"parallel_index", parallel_index},
          {"parallel_count", parallel_count},
          {"executor", "local"},
          {"executor_id", nullptr},
          {"input", {{"task", name}}},
          {"output", nullptr},
          {"error", nullptr},
          {"not_before", nullptr},
          {"heartbeat_at", nullptr},
          {"dispatched_at", nullptr},
          {"started_at", nullptr},
          {"finished_at", nullptr},
          {"created_at", ts()},
          {"seq", seq}};
}

// ---- Fixture

class StateConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    tmpdir_ = fresh_dir();
    config_ = config_for(tmpdir_);
    store_ = open(config_);
    ASSERT_TRUE(store_);
  }

  void TearDown() override {
    store_.reset();
    std::error_code ec;
    for (const auto& d : dirs_) fs::remove_all(d, ec);
  }

  std::string fresh_dir() {
    std::string tmpl = (fs::temp_directory_path() / "ork-state-conformance-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dirs_.push_back(tmpl);
    return tmpl;
  }

  // The backend's config with every {tmpdir} replaced by `dir` and every {file:PATH} by the trimmed contents of
  // PATH (e.g. a server's URL written at run time), both JSON-escaped.
  static json config_for(const std::string& dir) {
    auto escaped = [](const std::string& s) {
      std::string e = json(s).dump();
      return e.substr(1, e.size() - 2);
    };
    std::string text = GetParam().config, esc = escaped(dir);
    for (size_t p = text.find("{tmpdir}"); p != std::string::npos; p = text.find("{tmpdir}", p + esc.size()))
      text.replace(p, 8, esc);
    for (size_t p = text.find("{file:"); p != std::string::npos; p = text.find("{file:", p)) {
      size_t end = text.find('}', p);
      if (end == std::string::npos) throw std::runtime_error("ORK_CONFORMANCE_CONFIG: unterminated {file:...}");
      std::string path = text.substr(p + 6, end - p - 6), contents;
      std::ifstream in(path);
      if (!in) throw std::runtime_error("ORK_CONFORMANCE_CONFIG: cannot read " + path);
      contents.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      size_t b = contents.find_first_not_of(" \t\r\n"), e = contents.find_last_not_of(" \t\r\n");
      contents = escaped(b == std::string::npos ? "" : contents.substr(b, e - b + 1));
      text.replace(p, end - p + 1, contents);
      p += contents.size();
    }
    return json::parse(text);
  }

  static std::unique_ptr<StateProxy> open(const json& config) {
    return ork::load_plugin<StateProxy>("state", GetParam().library, config);
  }

  StateProxy& s() { return *store_; }

  struct Created {
    std::string run_id;
    std::vector<std::string> task_ids;
  };

  // A run of a fresh workflow name with `n` tasks t0..t{n-1}.
  Created make_run(size_t n, const std::string& status = "pending") {
    Created c{uid(), {}};
    json tasks = json::array();
    for (size_t i = 0; i < n; ++i) {
      tasks.push_back(task_record(c.run_id, numbered("t", i), static_cast<int64_t>(i)));
      c.task_ids.push_back(tasks.back()["id"]);
    }
    EXPECT_EQ(s().create_run({{"run", run_record(c.run_id, "wf-" + uid(), status)}, {"tasks", tasks}}), json::object());
    return c;
  }

  json run(const std::string& id) {
    auto r = s().get_run({{"id", id}});
    return r ? *r : json(nullptr);
  }

  json tasks_of(const std::string& run_id, json status = nullptr) {
    json a{{"run_id", run_id}};
    if (!status.is_null()) a["status"] = status;
    return s().get_task_runs(a)["tasks"];
  }

  // Returns by value: iterating `get_due_schedules(..)["schedules"]` directly would dangle.
  json due(const std::string& now) { return s().get_due_schedules({{"now", now}})["schedules"]; }

  json task(const std::string& run_id, const std::string& id) {
    for (auto& t : tasks_of(run_id))
      if (t["id"] == id) return t;
    return nullptr;
  }

  std::vector<std::string> dirs_;
  std::string tmpdir_;
  json config_;
  std::unique_ptr<StateProxy> store_;
};

// ---- Loading

TEST_P(StateConformance, LoadsAsAStatePlugin) {
  EXPECT_EQ(s().kind(), "state");
  EXPECT_FALSE(s().plugin_name().empty());
  EXPECT_FALSE(s().version().empty());
  EXPECT_EQ(s().abi().substr(0, 2), "1.");
}

TEST_P(StateConformance, TwoInstancesOpenTheSameFreshStoreAtOnce) {
  json cfg = config_for(fresh_dir());  // a store nobody initialized yet (for file backends)
  std::unique_ptr<StateProxy> a, b;
  std::string err_a, err_b;
  std::thread ta([&] {
    try {
      a = open(cfg);
    } catch (const std::exception& e) {
      err_a = e.what();
    }
  });
  std::thread tb([&] {
    try {
      b = open(cfg);
    } catch (const std::exception& e) {
      err_b = e.what();
    }
  });
  ta.join();
  tb.join();
  ASSERT_TRUE(a) << err_a;
  ASSERT_TRUE(b) << err_b;
  std::string name = "wf-" + uid();
  a->put_workflow({{"name", name}, {"definition", {{"tasks", json::object()}}}, {"version", "1"}});
  auto got = b->get_workflow({{"name", name}});
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)["name"], name);
  a.reset();
  auto c = open(cfg);  // reopening an initialized store (migrations are idempotent)
  EXPECT_TRUE(c->get_workflow({{"name", name}}));
}

// ---- Workflows

TEST_P(StateConformance, PutWorkflowReturnsTheStoredRecord) {
  std::string name = "wf-" + uid();
  json def{{"tasks", {{"a", {{"executor", "python"}, {"depends_on", json::array()}}}}},
           {"types", json::object()},
           {"base_dir", "/tmp/x"}};
  json w = s().put_workflow({{"name", name}, {"definition", def}, {"schedule", "0 2 * * *"}, {"version", "abc"}});
  expect_fields(w, kWorkflowFields, "put_workflow result");
  EXPECT_TRUE(w["id"].is_string() && !w["id"].get<std::string>().empty());
  EXPECT_EQ(w["name"], name);
  EXPECT_EQ(w["definition"], def);
  EXPECT_EQ(w["schedule"], "0 2 * * *");
  EXPECT_EQ(w["version"], "abc");
  EXPECT_TRUE(is_timestamp(w["created_at"])) << w["created_at"];
  EXPECT_TRUE(is_timestamp(w["updated_at"])) << w["updated_at"];

  json given = s().put_workflow(
      {{"id", uid()}, {"name", "wf-" + uid()}, {"definition", def}, {"schedule", nullptr}, {"version", "1"}});
  EXPECT_TRUE(given["schedule"].is_null());
}

TEST_P(StateConformance, PutWorkflowUpsertsByNameKeepingIdAndCreatedAt) {
  std::string name = "wf-" + uid();
  json first = s().put_workflow({{"name", name}, {"definition", {{"v", 1}}}, {"schedule", nullptr}, {"version", "1"}});
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  json second = s().put_workflow(
      {{"id", uid()}, {"name", name}, {"definition", {{"v", 2}}}, {"schedule", "* * * * *"}, {"version", "2"}});
  EXPECT_EQ(second["id"], first["id"]);
  EXPECT_EQ(second["created_at"], first["created_at"]);
  EXPECT_EQ(second["definition"], json({{"v", 2}}));
  EXPECT_EQ(second["schedule"], "* * * * *");
  EXPECT_EQ(second["version"], "2");
  EXPECT_GE(second["updated_at"].get<std::string>(), first["updated_at"].get<std::string>());
  EXPECT_EQ(*s().get_workflow({{"name", name}}), second);
}

TEST_P(StateConformance, GetWorkflowByNameOrIdAndNotFound) {
  std::string name = "wf-" + uid();
  json w = s().put_workflow({{"name", name}, {"definition", json::object()}, {"schedule", nullptr}, {"version", "1"}});
  auto by_name = s().get_workflow({{"name", name}});
  auto by_id = s().get_workflow({{"id", w["id"]}});
  ASSERT_TRUE(by_name);
  ASSERT_TRUE(by_id);
  EXPECT_EQ(*by_name, w);
  EXPECT_EQ(*by_id, w);
  EXPECT_FALSE(s().get_workflow({{"name", "missing-" + uid()}}));
  EXPECT_FALSE(s().get_workflow({{"id", uid()}}));
}

TEST_P(StateConformance, ListWorkflowsIsSortedByName) {
  std::string prefix = "wf-list-" + uid() + "-";
  for (const char* n : {"c", "a", "b"})
    s().put_workflow({{"name", prefix + n}, {"definition", json::object()}, {"schedule", nullptr}, {"version", "1"}});
  json all = s().list_workflows(json::object())["workflows"];
  ASSERT_TRUE(all.is_array());
  std::vector<std::string> names, ours;
  for (const auto& w : all) {
    expect_fields(w, kWorkflowFields, "list_workflows item");
    names.push_back(w["name"]);
    if (names.back().rfind(prefix, 0) == 0) ours.push_back(names.back());
  }
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(ours, (std::vector<std::string>{prefix + "a", prefix + "b", prefix + "c"}));
}

TEST_P(StateConformance, DeleteWorkflowRemovesItAndItsScheduleButKeepsRuns) {
  std::string name = "wf-" + uid();
  s().put_workflow({{"name", name}, {"definition", json::object()}, {"schedule", "0 * * * *"}, {"version", "1"}});
  json sched = s().put_schedule({{"workflow_name", name},
                                 {"cron_expr", "0 * * * *"},
                                 {"next_run", "2001-01-01T00:00:00.000Z"},
                                 {"enabled", true}});
  std::string run_id = uid();
  s().create_run({{"run", run_record(run_id, name)}, {"tasks", json::array()}});
  auto has_schedule = [&] {
    for (const auto& d : due("2999-01-01T00:00:00.000Z"))
      if (d["id"] == sched["id"]) return true;
    return false;
  };
  ASSERT_TRUE(has_schedule());

  EXPECT_EQ(s().delete_workflow({{"name", name}}), json::object());
  EXPECT_FALSE(s().get_workflow({{"name", name}}));
  EXPECT_EQ(code_of([&] { s().delete_workflow({{"name", name}}); }), ORK_ERR_NOT_FOUND);
  EXPECT_EQ(code_of([&] { s().delete_workflow({{"name", "missing-" + uid()}}); }), ORK_ERR_NOT_FOUND);
  EXPECT_FALSE(has_schedule()) << "the workflow's schedule survived delete_workflow";
  EXPECT_TRUE(s().get_run({{"id", run_id}})) << "runs must stay when their workflow is deleted";
}

// ---- Runs and task runs

TEST_P(StateConformance, CreateRunAndReadItBack) {
  std::string run_id = uid(), wf = "wf-" + uid();
  json r = run_record(run_id, wf);
  json tasks = json::array({task_record(run_id, "extract", 0), task_record(run_id, "transform", 1, 0, 2),
                            task_record(run_id, "transform", 2, 1, 2)});
  EXPECT_EQ(s().create_run({{"run", r}, {"tasks", tasks}}), json::object());

  json got = run(run_id);
  expect_fields(got, kRunFields, "get_run");
  EXPECT_EQ(got, r);
  EXPECT_TRUE(got["input"].is_object()) << "JSON fields come back parsed, not as strings";

  json ts_ = tasks_of(run_id);
  ASSERT_EQ(ts_.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    expect_fields(ts_[i], kTaskFields, "get_task_runs item");
    EXPECT_EQ(ts_[i], tasks[i]) << "task " << i;
  }
}

TEST_P(StateConformance, CreateRunAssignsSeqFromThePositionWhenOmitted) {
  std::string run_id = uid();
  json tasks = json::array();
  for (const char* n : {"z", "y", "x"}) {
    json t = task_record(run_id, n, 0);
    t.erase("seq");
    tasks.push_back(t);
  }
  s().create_run({{"run", run_record(run_id, "wf-" + uid())}, {"tasks", tasks}});
  json got = tasks_of(run_id);
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i]["id"], tasks[i]["id"]);
    EXPECT_EQ(got[i]["seq"], static_cast<int64_t>(i));
  }
}

TEST_P(StateConformance, CreateRunWithAnExistingIdConflictsAndWritesNothing) {
  std::string run_id = uid();
  json first = task_record(run_id, "a", 0);
  s().create_run({{"run", run_record(run_id, "wf-" + uid())}, {"tasks", {first}}});
  json b = task_record(run_id, "b", 0), c = task_record(run_id, "c", 1);
  EXPECT_EQ(code_of([&] {
              s().create_run({{"run", run_record(run_id, "wf-other")}, {"tasks", {b, c}}});
            }),
            ORK_ERR_CONFLICT);
  json got = tasks_of(run_id);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["id"], first["id"]);
  EXPECT_NE(run(run_id)["workflow_name"], "wf-other");
  EXPECT_EQ(code_of([&] {
              s().update_task_run({{"run_id", run_id}, {"id", b["id"]}, {"set", {{"attempt", 1}}}});
            }),
            ORK_ERR_NOT_FOUND);
}

TEST_P(StateConformance, CreateRunWithADuplicateTaskSlotFailsAsAWhole) {
  auto fails_cleanly = [&](const std::function<json(const std::string&)>& tasks_for, const char* what) {
    std::string run_id = uid();
    int code = code_of([&] {
      s().create_run({{"run", run_record(run_id, "wf-" + uid())}, {"tasks", tasks_for(run_id)}});
    });
    EXPECT_TRUE(code == ORK_ERR_CONFLICT || code == ORK_ERR_INVALID) << what << ": status " << code;
    EXPECT_FALSE(s().get_run({{"id", run_id}})) << what << ": the run row was written";
    // Nothing partial: the same run id is still free.
    EXPECT_EQ(s().create_run({{"run", run_record(run_id, "wf-" + uid())}, {"tasks", json::array()}}), json::object())
        << what;
  };
  fails_cleanly(
      [](const std::string& r) {
        return json{task_record(r, "x", 0, 0), task_record(r, "x", 1, 0)};
      },
      "same (task_name, parallel_index)");
  fails_cleanly(
      [](const std::string& r) {
        return json{task_record(r, "x", 0), task_record(r, "x", 1)};
      },
      "same task_name with null parallel_index");
  fails_cleanly(
      [](const std::string& r) {
        json a = task_record(r, "x", 0), b = task_record(r, "y", 1);
        b["id"] = a["id"];
        return json{a, b};
      },
      "same task id");
  // Distinct slots of one name are fine, including null next to 0.
  std::string ok = uid();
  EXPECT_EQ(
      s().create_run({{"run", run_record(ok, "wf-" + uid())},
                      {"tasks", {task_record(ok, "x", 0), task_record(ok, "x", 1, 0), task_record(ok, "x", 2, 1)}}}),
      json::object());
  EXPECT_EQ(tasks_of(ok).size(), 3u);
}

TEST_P(StateConformance, AddTaskRunsAppendsFanOutInstancesAllOrNothing) {
  std::string run_id = uid();
  s().create_run({{"run", run_record(run_id, "wf-" + uid())}, {"tasks", {task_record(run_id, "discover", 0)}}});
  json batch = json::array();
  for (int i = 0; i < 50; ++i) batch.push_back(task_record(run_id, "process", 1, i, 50));
  EXPECT_EQ(s().add_task_runs({{"run_id", run_id}, {"tasks", batch}}), json::object());
  auto tasks = tasks_of(run_id);
  ASSERT_EQ(tasks.size(), 51u);
  EXPECT_EQ(tasks[0]["task_name"], "discover");
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(tasks[1 + i]["parallel_index"], i);
    EXPECT_EQ(tasks[1 + i]["parallel_count"], 50);
    EXPECT_EQ(tasks[1 + i]["status"], "pending");
  }
  // A second expansion of the same slots (another host racing) conflicts and adds nothing, not even new slots.
  json again{task_record(run_id, "process", 1, 50, 51), task_record(run_id, "process", 1, 3, 51)};
  EXPECT_EQ(code_of([&] { s().add_task_runs({{"run_id", run_id}, {"tasks", again}}); }), ORK_ERR_CONFLICT);
  EXPECT_EQ(tasks_of(run_id).size(), 51u);
  EXPECT_EQ(code_of([&] { s().add_task_runs({{"run_id", uid()}, {"tasks", json::array()}}); }), ORK_ERR_NOT_FOUND);
}

TEST_P(StateConformance, MissingRunsAndTasksAreNotFound) {
  std::string missing = uid();
  EXPECT_FALSE(s().get_run({{"id", missing}}));
  EXPECT_EQ(code_of([&] { s().update_run({{"id", missing}, {"set", {{"status", "running"}}}}); }), ORK_ERR_NOT_FOUND);
  auto c = make_run(1);
  EXPECT_EQ(code_of([&] {
              s().update_task_run({{"run_id", c.run_id}, {"id", uid()}, {"set", {{"attempt", 1}}}});
            }),
            ORK_ERR_NOT_FOUND);
  EXPECT_EQ(code_of([&] {
              s().update_task_run({{"run_id", uid()}, {"id", c.task_ids[0]}, {"set", {{"attempt", 1}}}});
            }),
            ORK_ERR_NOT_FOUND)
      << "a task addressed under another run_id does not exist";
  // Unspecified by the contract: a missing run's task list is NOT_FOUND or empty.
  int code = ORK_OK;
  json got;
  code = code_of([&] { got = s().get_task_runs({{"run_id", missing}}); });
  EXPECT_TRUE(code == ORK_ERR_NOT_FOUND || (code == ORK_OK && got["tasks"].empty())) << code << " " << got.dump();
}

TEST_P(StateConformance, UpdateRunIsACompareAndSwap) {
  auto c = make_run(0);
  std::string t1 = ts();
  json res = s().update_run(
      {{"id", c.run_id}, {"set", {{"status", "running"}, {"started_at", t1}}}, {"expect", {{"status", "pending"}}}});
  EXPECT_EQ(res, json({{"updated", true}}));
  EXPECT_EQ(run(c.run_id)["status"], "running");
  EXPECT_EQ(run(c.run_id)["started_at"], t1);

  // A stale expectation writes nothing.
  res = s().update_run(
      {{"id", c.run_id}, {"set", {{"status", "failed"}, {"finished_at", ts()}}}, {"expect", {{"status", "pending"}}}});
  EXPECT_EQ(res, json({{"updated", false}}));
  json r = run(c.run_id);
  EXPECT_EQ(r["status"], "running");
  EXPECT_TRUE(r["finished_at"].is_null());

  // null in expect means "must be null"; several expectations must all hold.
  res = s().update_run({{"id", c.run_id}, {"set", {{"owner", "h1"}}}, {"expect", {{"owner", "someone"}}}});
  EXPECT_FALSE(res["updated"].get<bool>());
  res = s().update_run({{"id", c.run_id},
                        {"set", {{"owner", "h1"}}},
                        {"expect", {{"owner", nullptr}, {"finished_at", nullptr}, {"status", "running"}}}});
  EXPECT_TRUE(res["updated"].get<bool>());
  res = s().update_run({{"id", c.run_id}, {"set", {{"owner", "h2"}}}, {"expect", {{"owner", nullptr}}}});
  EXPECT_FALSE(res["updated"].get<bool>());
  EXPECT_EQ(run(c.run_id)["owner"], "h1");

  // Without expect it always writes; JSON fields and nulls are set as given.
  json err{{"type", "boom"}, {"message", "it broke"}, {"details", {{"line", 3}, {"trace", {"a", "b"}}}}};
  res = s().update_run({{"id", c.run_id}, {"set", {{"status", "failed"}, {"error", err}, {"owner", nullptr}}}});
  EXPECT_TRUE(res["updated"].get<bool>());
  r = run(c.run_id);
  EXPECT_EQ(r["error"], err);
  EXPECT_TRUE(r["owner"].is_null());
  // Expect on a JSON field compares values.
  res = s().update_run({{"id", c.run_id}, {"set", {{"triggered_by", "x"}}}, {"expect", {{"error", err}}}});
  EXPECT_TRUE(res["updated"].get<bool>());
}

TEST_P(StateConformance, UpdateTaskRunIsACompareAndSwap) {
  auto c = make_run(2);
  const std::string& id = c.task_ids[0];
  json out{{"rows", 42}, {"files", {"a.csv", "b.csv"}}};
  json res = s().update_task_run({{"run_id", c.run_id},
                                  {"id", id},
                                  {"set", {{"status", "success"}, {"output", out}, {"finished_at", ts()}}},
                                  {"expect", {{"status", "pending"}, {"attempt", 0}, {"executor_id", nullptr}}}});
  EXPECT_EQ(res, json({{"updated", true}}));
  json t = task(c.run_id, id);
  EXPECT_EQ(t["status"], "success");
  EXPECT_EQ(t["output"], out);

  res = s().update_task_run({{"run_id", c.run_id},
                             {"id", id},
                             {"set", {{"status", "failed"}, {"output", nullptr}}},
                             {"expect", {{"status", "running"}}}});
  EXPECT_EQ(res, json({{"updated", false}}));
  t = task(c.run_id, id);
  EXPECT_EQ(t["status"], "success");
  EXPECT_EQ(t["output"], out);
  // The other task is untouched.
  EXPECT_EQ(task(c.run_id, c.task_ids[1])["status"], "pending");
  // Integer and timestamp fields can be set too.
  std::string nb = ts(60'000);
  res = s().update_task_run(
      {{"run_id", c.run_id}, {"id", c.task_ids[1]}, {"set", {{"attempt", 3}, {"not_before", nb}, {"max_retries", 5}}}});
  EXPECT_TRUE(res["updated"].get<bool>());
  t = task(c.run_id, c.task_ids[1]);
  EXPECT_EQ(t["attempt"], 3);
  EXPECT_EQ(t["not_before"], nb);
  EXPECT_EQ(t["max_retries"], 5);
}

TEST_P(StateConformance, UnknownOrReadOnlySetFieldsAreInvalid) {
  auto c = make_run(1);
  const std::string& tid = c.task_ids[0];
  EXPECT_EQ(code_of([&] { s().update_run({{"id", c.run_id}, {"set", {{"bogus", 1}}}}); }), ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] {
              s().update_run({{"id", c.run_id}, {"set", {{"status", "running"}, {"bogus", 1}}}});
            }),
            ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] { s().update_run({{"id", c.run_id}, {"set", {{"id", uid()}}}}); }), ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] {
              s().update_task_run({{"run_id", c.run_id}, {"id", tid}, {"set", {{"bogus", 1}}}});
            }),
            ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] {
              s().update_task_run({{"run_id", c.run_id}, {"id", tid}, {"set", {{"run_id", uid()}}}});
            }),
            ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] {
              s().update_task_run({{"run_id", c.run_id}, {"id", tid}, {"set", {{"id", uid()}}}});
            }),
            ORK_ERR_INVALID);
  EXPECT_EQ(run(c.run_id)["status"], "pending") << "an INVALID update must not write the valid part";
  EXPECT_EQ(task(c.run_id, tid)["status"], "pending");
}

TEST_P(StateConformance, TryAcquireTaskDispatchesOnceAndClearsAttemptFields) {
  auto c = make_run(2);
  const std::string& id = c.task_ids[0];
  // Leftovers of an earlier attempt, as after a retry reset.
  s().update_task_run({{"run_id", c.run_id},
                       {"id", id},
                       {"set",
                        {{"executor_id", "old"},
                         {"heartbeat_at", ts()},
                         {"started_at", ts()},
                         {"finished_at", ts()},
                         {"error", {{"type", "t"}, {"message", "m"}, {"details", nullptr}}}}}});
  std::string before = ts();
  json res = s().try_acquire_task({{"run_id", c.run_id}, {"id", id}});
  ASSERT_TRUE(res["acquired"].get<bool>()) << res.dump();
  json t = res["task"];
  expect_fields(t, kTaskFields, "try_acquire_task task");
  EXPECT_EQ(t["id"], id);
  EXPECT_EQ(t["status"], "dispatched");
  EXPECT_EQ(t["attempt"], 1);
  EXPECT_TRUE(is_timestamp(t["dispatched_at"])) << t["dispatched_at"];
  EXPECT_GE(t["dispatched_at"].get<std::string>(), before.substr(0, 19));  // same clock, to the second
  for (const char* f : {"executor_id", "heartbeat_at", "started_at", "finished_at", "error"})
    EXPECT_TRUE(t[f].is_null()) << f << " = " << t[f];
  EXPECT_EQ(task(c.run_id, id), t) << "the result is the stored row after the change";

  res = s().try_acquire_task({{"run_id", c.run_id}, {"id", id}});
  EXPECT_FALSE(res["acquired"].get<bool>());
  EXPECT_TRUE(res["task"].is_null());
  EXPECT_EQ(task(c.run_id, id)["attempt"], 1);

  // A retry: back to pending, acquired again as attempt 2.
  s().update_task_run({{"run_id", c.run_id}, {"id", id}, {"set", {{"status", "pending"}}}});
  res = s().try_acquire_task({{"run_id", c.run_id}, {"id", id}});
  ASSERT_TRUE(res["acquired"].get<bool>());
  EXPECT_EQ(res["task"]["attempt"], 2);

  // Only pending tasks: a running or finished one is refused.
  s().update_task_run({{"run_id", c.run_id}, {"id", c.task_ids[1]}, {"set", {{"status", "running"}}}});
  EXPECT_FALSE(s().try_acquire_task({{"run_id", c.run_id}, {"id", c.task_ids[1]}})["acquired"].get<bool>());

  // Unspecified by the contract: a missing task is NOT_FOUND or not acquired.
  json miss;
  int code = code_of([&] { miss = s().try_acquire_task({{"run_id", c.run_id}, {"id", uid()}}); });
  EXPECT_TRUE(code == ORK_ERR_NOT_FOUND || (code == ORK_OK && !miss["acquired"].get<bool>())) << code;
}

TEST_P(StateConformance, TryAcquireTaskFromEightThreadsAcquiresEachTaskExactlyOnce) {
  constexpr size_t kTasks = 200, kThreads = 8;
  auto c = make_run(kTasks);
  auto second = open(config_);  // half the threads go through a second instance, like a second host
  std::vector<std::vector<json>> won(kThreads);
  std::atomic<int> errors{0};
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      StateProxy& st = i % 2 ? *second : s();
      std::vector<std::string> order = c.task_ids;
      std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(i)));
      start.arrive_and_wait();
      for (const auto& id : order) {
        try {
          json r = st.try_acquire_task({{"run_id", c.run_id}, {"id", id}});
          if (r["acquired"].get<bool>()) won[i].push_back(r["task"]);
        } catch (const std::exception& e) {
          if (errors++ < 5) ADD_FAILURE() << "thread " << i << ": " << e.what();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  std::map<std::string, int> count;
  for (const auto& v : won)
    for (const auto& t : v) {
      count[t["id"]]++;
      EXPECT_EQ(t["attempt"], 1);
      EXPECT_EQ(t["status"], "dispatched");
    }
  EXPECT_EQ(count.size(), kTasks);
  for (const auto& [id, n] : count) EXPECT_EQ(n, 1) << id;
  for (const auto& t : tasks_of(c.run_id)) {
    EXPECT_EQ(t["status"], "dispatched");
    EXPECT_EQ(t["attempt"], 1);
  }
}

// ---- Leases

TEST_P(StateConformance, LeaseAcquireRenewReleaseByOwnerOnly) {
  auto c = make_run(0);
  std::string before = ts();
  EXPECT_EQ(s().acquire_lease({{"run_id", c.run_id}, {"owner", "A"}, {"ttl_ms", 60'000}}), json({{"acquired", true}}));
  json r = run(c.run_id);
  EXPECT_EQ(r["owner"], "A");
  ASSERT_TRUE(is_timestamp(r["lease_expires"])) << r["lease_expires"];
  EXPECT_GT(r["lease_expires"].get<std::string>(), ts(30'000));
  EXPECT_LT(r["lease_expires"].get<std::string>(), ts(120'000));

  EXPECT_EQ(s().acquire_lease({{"run_id", c.run_id}, {"owner", "B"}, {"ttl_ms", 60'000}}), json({{"acquired", false}}));
  EXPECT_EQ(run(c.run_id)["owner"], "A");
  EXPECT_TRUE(s().acquire_lease({{"run_id", c.run_id}, {"owner", "A"}, {"ttl_ms", 60'000}})["acquired"].get<bool>())
      << "the owner may re-acquire its own lease";

  EXPECT_EQ(s().renew_lease({{"run_id", c.run_id}, {"owner", "B"}, {"ttl_ms", 60'000}}), json({{"renewed", false}}));
  std::string old_exp = run(c.run_id)["lease_expires"];
  EXPECT_EQ(s().renew_lease({{"run_id", c.run_id}, {"owner", "A"}, {"ttl_ms", 300'000}}), json({{"renewed", true}}));
  EXPECT_GT(run(c.run_id)["lease_expires"].get<std::string>(), old_exp);

  EXPECT_EQ(s().release_lease({{"run_id", c.run_id}, {"owner", "B"}}), json::object());
  EXPECT_EQ(run(c.run_id)["owner"], "A") << "only the owner releases";
  EXPECT_EQ(s().release_lease({{"run_id", c.run_id}, {"owner", "A"}}), json::object());
  r = run(c.run_id);
  EXPECT_TRUE(r["owner"].is_null());
  EXPECT_TRUE(r["lease_expires"].is_null());
  EXPECT_TRUE(s().acquire_lease({{"run_id", c.run_id}, {"owner", "B"}, {"ttl_ms", 60'000}})["acquired"].get<bool>());
  EXPECT_EQ(run(c.run_id)["owner"], "B");
}

TEST_P(StateConformance, ExpiredLeaseIsTakenOverByAnotherOwner) {
  auto c = make_run(0, "running");
  EXPECT_TRUE(s().acquire_lease({{"run_id", c.run_id}, {"owner", "A"}, {"ttl_ms", 50}})["acquired"].get<bool>());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_TRUE(s().acquire_lease({{"run_id", c.run_id}, {"owner", "B"}, {"ttl_ms", 60'000}})["acquired"].get<bool>());
  EXPECT_EQ(run(c.run_id)["owner"], "B");
  EXPECT_FALSE(s().renew_lease({{"run_id", c.run_id}, {"owner", "A"}, {"ttl_ms", 60'000}})["renewed"].get<bool>());
  EXPECT_FALSE(s().acquire_lease({{"run_id", c.run_id}, {"owner", "A"}, {"ttl_ms", 60'000}})["acquired"].get<bool>());
  EXPECT_EQ(run(c.run_id)["owner"], "B");
}

TEST_P(StateConformance, LeaseIsRefusedOnTerminalRuns) {
  for (const char* st : {"success", "failed", "cancelled"}) {
    auto c = make_run(0, st);
    EXPECT_FALSE(s().acquire_lease({{"run_id", c.run_id}, {"owner", "A"}, {"ttl_ms", 60'000}})["acquired"].get<bool>())
        << st;
    EXPECT_TRUE(run(c.run_id)["owner"].is_null()) << st;
  }
  auto live = make_run(0, "running");
  EXPECT_TRUE(s().acquire_lease({{"run_id", live.run_id}, {"owner", "A"}, {"ttl_ms", 60'000}})["acquired"].get<bool>());
  // A run that finishes while leased cannot be re-acquired, even by its owner.
  s().update_run({{"id", live.run_id}, {"set", {{"status", "success"}}}});
  EXPECT_FALSE(
      s().acquire_lease({{"run_id", live.run_id}, {"owner", "A"}, {"ttl_ms", 60'000}})["acquired"].get<bool>());
  // Unspecified by the contract: on a missing run the lease calls are NOT_FOUND or a refusal.
  json miss;
  int code = code_of([&] { miss = s().acquire_lease({{"run_id", uid()}, {"owner", "A"}, {"ttl_ms", 1000}}); });
  EXPECT_TRUE(code == ORK_ERR_NOT_FOUND || (code == ORK_OK && !miss["acquired"].get<bool>())) << code;
  code = code_of([&] { miss = s().renew_lease({{"run_id", uid()}, {"owner", "A"}, {"ttl_ms", 1000}}); });
  EXPECT_TRUE(code == ORK_ERR_NOT_FOUND || (code == ORK_OK && !miss["renewed"].get<bool>())) << code;
  code = code_of([&] { s().release_lease({{"run_id", uid()}, {"owner", "A"}}); });
  EXPECT_TRUE(code == ORK_ERR_NOT_FOUND || code == ORK_OK) << code;
}

// ---- Schedules

TEST_P(StateConformance, PutScheduleUpsertsByWorkflowName) {
  std::string wf = "wf-" + uid();
  json a = s().put_schedule(
      {{"workflow_name", wf}, {"cron_expr", "0 2 * * *"}, {"next_run", "2030-01-01T02:00:00.000Z"}, {"enabled", true}});
  expect_fields(a, kScheduleFields, "put_schedule result");
  EXPECT_TRUE(a["id"].is_string() && !a["id"].get<std::string>().empty());
  EXPECT_EQ(a["workflow_name"], wf);
  EXPECT_EQ(a["cron_expr"], "0 2 * * *");
  EXPECT_EQ(a["next_run"], "2030-01-01T02:00:00.000Z");
  EXPECT_EQ(a["enabled"], true);
  EXPECT_TRUE(is_timestamp(a["created_at"]));
  json b = s().put_schedule({{"workflow_name", wf},
                             {"cron_expr", "*/5 * * * *"},
                             {"next_run", "2031-01-01T00:05:00.000Z"},
                             {"enabled", false}});
  EXPECT_EQ(b["id"], a["id"]);
  EXPECT_EQ(b["created_at"], a["created_at"]);
  EXPECT_EQ(b["cron_expr"], "*/5 * * * *");
  EXPECT_EQ(b["next_run"], "2031-01-01T00:05:00.000Z");
  EXPECT_EQ(b["enabled"], false);
}

TEST_P(StateConformance, DueSchedulesAreEnabledAndPastOldestFirst) {
  std::string p = "wf-due-" + uid() + "-";
  auto put = [&](const std::string& n, const char* next, bool enabled) {
    return s().put_schedule(
        {{"workflow_name", p + n}, {"cron_expr", "0 * * * *"}, {"next_run", next}, {"enabled", enabled}})["id"];
  };
  json late = put("late", "2001-03-01T00:00:00.000Z", true);
  json early = put("early", "2001-01-01T00:00:00.000Z", true);
  json exact = put("exact", "2001-06-01T00:00:00.000Z", true);
  put("off", "2001-01-01T00:00:00.000Z", false);
  put("future", "2999-01-01T00:00:00.000Z", true);

  std::vector<json> ours;
  std::vector<std::string> next_runs;
  for (const auto& d : due("2001-06-01T00:00:00.000Z")) {
    expect_fields(d, kScheduleFields, "get_due_schedules item");
    EXPECT_TRUE(d["enabled"].get<bool>());
    EXPECT_LE(d["next_run"].get<std::string>(), "2001-06-01T00:00:00.000Z");
    next_runs.push_back(d["next_run"]);
    if (d["workflow_name"].get<std::string>().rfind(p, 0) == 0) ours.push_back(d["id"]);
  }
  EXPECT_TRUE(std::is_sorted(next_runs.begin(), next_runs.end())) << "oldest first";
  EXPECT_EQ(ours, (std::vector<json>{early, late, exact})) << "next_run == now is due; disabled and future are not";
  for (const auto& d : due("2000-12-31T23:59:59.999Z"))
    EXPECT_NE(d["workflow_name"].get<std::string>().rfind(p, 0), 0u) << d.dump();
}

TEST_P(StateConformance, ClaimScheduleHasExactlyOneWinnerPerFire) {
  std::string wf = "wf-" + uid();
  int64_t t0 = 946'684'800'000;  // 2000-01-01
  json sched =
      s().put_schedule({{"workflow_name", wf}, {"cron_expr", "* * * * *"}, {"next_run", at(t0)}, {"enabled", true}});
  auto host_b = open(config_);
  constexpr int kFires = 25;
  std::barrier round(2);
  std::atomic<int> errors{0};
  std::vector<int> wins_a(kFires), wins_b(kFires);
  auto host = [&](StateProxy& st, std::vector<int>& wins) {
    for (int f = 0; f < kFires; ++f) {
      round.arrive_and_wait();
      try {
        json r = st.claim_schedule(
            {{"id", sched["id"]}, {"expect_next_run", at(t0 + f * 60'000)}, {"next_run", at(t0 + (f + 1) * 60'000)}});
        wins[f] = r["claimed"].get<bool>() ? 1 : 0;
      } catch (const std::exception& e) {
        if (errors++ < 5) ADD_FAILURE() << e.what();
      }
      round.arrive_and_wait();
    }
  };
  std::thread ta([&] { host(s(), wins_a); });
  std::thread tb([&] { host(*host_b, wins_b); });
  ta.join();
  tb.join();
  EXPECT_EQ(errors.load(), 0);
  for (int f = 0; f < kFires; ++f) EXPECT_EQ(wins_a[f] + wins_b[f], 1) << "fire " << f;
  // A stale claim loses; the schedule moved exactly kFires minutes.
  EXPECT_EQ(s().claim_schedule({{"id", sched["id"]}, {"expect_next_run", at(t0)}, {"next_run", at(t0 + 1)}}),
            json({{"claimed", false}}));
  bool seen = false;
  for (const auto& d : due("2999-01-01T00:00:00.000Z"))
    if (d["id"] == sched["id"]) {
      seen = true;
      EXPECT_EQ(d["next_run"], at(t0 + kFires * 60'000));
    }
  EXPECT_TRUE(seen);
  json miss;
  int code = code_of([&] {
    miss = s().claim_schedule({{"id", uid()}, {"expect_next_run", at(t0)}, {"next_run", at(t0 + 1)}});
  });
  EXPECT_TRUE(code == ORK_ERR_NOT_FOUND || (code == ORK_OK && !miss["claimed"].get<bool>())) << code;
}

// ---- Listing

TEST_P(StateConformance, ListRunsFiltersOrdersAndPages) {
  std::string wf = "wf-" + uid();
  int64_t base = ork::now_ms() - 3'600'000;
  const char* statuses[] = {"pending", "running", "success", "failed", "cancelled", "failed", "success"};
  std::vector<json> runs;
  for (int i = 0; i < 7; ++i) {
    // Runs 5 and 6 share a created_at: id breaks the tie.
    json r = run_record(uid(), wf, statuses[i], at(base + std::min(i, 5) * 1000));
    s().create_run({{"run", r}, {"tasks", json::array()}});
    runs.push_back(r);
  }
  std::vector<json> expected = runs;
  std::sort(expected.begin(), expected.end(), [](const json& a, const json& b) {
    if (a["created_at"] != b["created_at"]) return a["created_at"] > b["created_at"];
    return a["id"] < b["id"];
  });
  auto ids = [](const json& list) {
    std::vector<std::string> v;
    for (const auto& r : list) v.push_back(r["id"]);
    return v;
  };
  auto slice = [&](size_t from, size_t n) {
    std::vector<std::string> v;
    for (size_t i = from; i < std::min(expected.size(), from + n); ++i) v.push_back(expected[i]["id"]);
    return v;
  };

  json all = s().list_runs({{"workflow_name", wf}});
  EXPECT_EQ(all["total"], 7);
  EXPECT_EQ(ids(all["runs"]), slice(0, 7));
  for (const auto& r : all["runs"]) expect_fields(r, kRunFields, "list_runs item");
  EXPECT_EQ(all["runs"][6], expected[6]);

  json page = s().list_runs({{"workflow_name", wf}, {"limit", 3}});
  EXPECT_EQ(page["total"], 7);
  EXPECT_EQ(ids(page["runs"]), slice(0, 3));
  page = s().list_runs({{"workflow_name", wf}, {"limit", 3}, {"offset", 3}});
  EXPECT_EQ(ids(page["runs"]), slice(3, 3));
  page = s().list_runs({{"workflow_name", wf}, {"limit", 3}, {"offset", 6}});
  EXPECT_EQ(ids(page["runs"]), slice(6, 3));
  page = s().list_runs({{"workflow_name", wf}, {"offset", 10}});
  EXPECT_TRUE(page["runs"].empty());
  EXPECT_EQ(page["total"], 7);

  json failed = s().list_runs({{"workflow_name", wf}, {"status", {"failed", "cancelled"}}});
  EXPECT_EQ(failed["total"], 3);
  for (const auto& r : failed["runs"]) EXPECT_TRUE(r["status"] == "failed" || r["status"] == "cancelled");
  std::vector<std::string> want;
  for (const auto& r : expected)
    if (r["status"] == "failed" || r["status"] == "cancelled") want.push_back(r["id"]);
  EXPECT_EQ(ids(failed["runs"]), want);

  // Unfiltered: everything in the store, still newest first.
  json any = s().list_runs({{"limit", 50}});
  EXPECT_GE(any["total"].get<int64_t>(), 7);
  std::vector<std::string> created;
  for (const auto& r : any["runs"]) created.push_back(r["created_at"]);
  EXPECT_TRUE(std::is_sorted(created.rbegin(), created.rend()));
}

// ABI 1.3: keyset pages. Walking `next` visits every run once, newest first, even when runs are added meanwhile.
TEST_P(StateConformance, ListRunsPageWalksKeysetPagesWithFilters) {
  std::string wf = "wf-" + uid();
  int64_t base = ork::now_ms() - 7'200'000;
  std::vector<json> runs;
  for (int i = 0; i < 9; ++i) {
    // Three runs per created_at: the id breaks ties, and a page boundary falls inside a tie.
    json r = run_record(uid(), wf, i % 3 == 0 ? "failed" : "success", at(base + (i / 3) * 1000));
    s().create_run({{"run", r}, {"tasks", json::array()}});
    runs.push_back(r);
  }
  std::sort(runs.begin(), runs.end(), [](const json& a, const json& b) {
    if (a["created_at"] != b["created_at"]) return a["created_at"] > b["created_at"];
    return a["id"] < b["id"];
  });
  std::vector<std::string> want, got;
  for (const auto& r : runs) want.push_back(r["id"]);

  json args{{"workflow_name", wf}, {"limit", 4}};
  int pages = 0;
  while (true) {
    json page = s().list_runs_page(args);
    ++pages;
    ASSERT_TRUE(page.contains("next")) << page.dump();
    for (const auto& r : page["runs"]) {
      expect_fields(r, kRunFields, "list_runs_page item");
      got.push_back(r["id"]);
    }
    if (pages == 1) {
      // A run created after the first page, older than everything: the walk still ends with it, once.
      json late = run_record(uid(), wf, "success", at(base - 1000));
      s().create_run({{"run", late}, {"tasks", json::array()}});
      want.push_back(late["id"]);
    }
    if (page["next"].is_null()) break;
    ASSERT_EQ(page["runs"].size(), 4u);
    EXPECT_EQ(page["next"]["id"], page["runs"].back()["id"]);
    EXPECT_EQ(page["next"]["created_at"], page["runs"].back()["created_at"]);
    args["after"] = page["next"];
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(pages, 3);

  // An exact multiple of the limit ends with next = null on the last full page, not an empty extra page.
  json exact = s().list_runs_page({{"workflow_name", wf}, {"limit", 10}});
  EXPECT_EQ(exact["runs"].size(), 10u);
  EXPECT_TRUE(exact["next"].is_null());

  json failed = s().list_runs_page({{"workflow_name", wf}, {"status", {"failed"}}, {"limit", 2}});
  ASSERT_EQ(failed["runs"].size(), 2u);
  for (const auto& r : failed["runs"]) EXPECT_EQ(r["status"], "failed");
  json rest = s().list_runs_page({{"workflow_name", wf}, {"status", {"failed"}}, {"after", failed["next"]}});
  ASSERT_EQ(rest["runs"].size(), 1u);
  EXPECT_EQ(rest["runs"][0]["status"], "failed");
  EXPECT_TRUE(rest["next"].is_null());
  EXPECT_TRUE(s().list_runs_page({{"workflow_name", wf}, {"status", json::array()}})["runs"].empty());

  EXPECT_EQ(code_of([&] {
              s().list_runs_page({{"after", {{"created_at", "yesterday"}, {"id", uid()}}}});
            }),
            ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] { s().list_runs_page({{"status", "failed"}}); }), ORK_ERR_INVALID);
}

TEST_P(StateConformance, ListRunsDefaultsToAHundred) {
  std::string wf = "wf-" + uid();
  for (int i = 0; i < 105; ++i) s().create_run({{"run", run_record(uid(), wf)}, {"tasks", json::array()}});
  json res = s().list_runs({{"workflow_name", wf}});
  EXPECT_EQ(res["runs"].size(), 100u);
  EXPECT_EQ(res["total"], 105);
}

TEST_P(StateConformance, GetTaskRunsOrdersBySeqThenParallelIndexAndFilters) {
  std::string run_id = uid();
  // Fan-out siblings share their definition's seq and arrive out of order.
  json tasks = json::array({task_record(run_id, "extract", 0), task_record(run_id, "fetch", 1, 2, 3),
                            task_record(run_id, "fetch", 1, 0, 3), task_record(run_id, "fetch", 1, 1, 3),
                            task_record(run_id, "load", 2)});
  s().create_run({{"run", run_record(run_id, "wf-" + uid())}, {"tasks", tasks}});
  json got = tasks_of(run_id);
  std::vector<std::string> order;
  for (const auto& t : got)
    order.push_back(t["task_name"].get<std::string>() +
                    (t["parallel_index"].is_null() ? "" : std::to_string(t["parallel_index"].get<int>())));
  EXPECT_EQ(order, (std::vector<std::string>{"extract", "fetch0", "fetch1", "fetch2", "load"}));

  s().update_task_run({{"run_id", run_id}, {"id", tasks[3]["id"]}, {"set", {{"status", "success"}}}});
  s().update_task_run({{"run_id", run_id}, {"id", tasks[4]["id"]}, {"set", {{"status", "failed"}}}});
  json done = tasks_of(run_id, {"success", "failed"});
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0]["id"], tasks[3]["id"]);
  EXPECT_EQ(done[1]["id"], tasks[4]["id"]);
  EXPECT_EQ(tasks_of(run_id, {"pending"}).size(), 3u);
  EXPECT_TRUE(tasks_of(run_id, {"running"}).empty());
}

TEST_P(StateConformance, TenThousandTaskRunRoundTrips) {
  constexpr size_t kTasks = 10'000;
  std::string run_id = uid();
  json tasks = json::array();
  for (size_t i = 0; i < kTasks; ++i)
    tasks.push_back(task_record(run_id, numbered("task_", i), static_cast<int64_t>(i)));
  json args{{"run", run_record(run_id, "wf-" + uid())}, {"tasks", std::move(tasks)}};
  auto t0 = Clock::now();
  s().create_run(args);
  auto t1 = Clock::now();
  json got = tasks_of(run_id);
  auto t2 = Clock::now();
  auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::cout << "[ timing ] " << GetParam().library << ": create_run with " << kTasks << " tasks " << ms(t1 - t0)
            << " ms, get_task_runs " << ms(t2 - t1) << " ms" << std::endl;
  ASSERT_EQ(got.size(), kTasks);
  for (size_t i = 0; i < kTasks; ++i) {
    if (got[i] != args["tasks"][i]) {
      ADD_FAILURE() << "task " << i << " differs: " << got[i].dump();
      break;
    }
  }
}

// ---- Payloads

TEST_P(StateConformance, UnicodeAndControlCharactersRoundTripExactly) {
  std::string tricky =
      "emoji 😀🚀👩‍💻, CJK 漢字かな한국어, RTL שלום, quotes \" ' `, backslashes \\ \\\\ \\n, "
      "controls \x01\x02\x1f\t\r\n, json-ish {\"a\": [1]}, null-ish \\u0000, max U+10FFFF \U0010FFFF";
  json value{
      {"text", tricky}, {tricky, {tricky, 1.5, -0.0, 1e300, nullptr, true}}, {"nested", {{"k", {{"k", tricky}}}}}};
  std::string name = "wf-ü-漢-😀-" + uid();
  json w = s().put_workflow({{"name", name}, {"definition", value}, {"schedule", nullptr}, {"version", tricky}});
  EXPECT_EQ(w["definition"], value);
  EXPECT_EQ(w["version"], tricky);
  auto back = s().get_workflow({{"name", name}});
  ASSERT_TRUE(back);
  EXPECT_EQ((*back)["definition"], value);
  EXPECT_EQ((*back)["name"], name);

  std::string run_id = uid();
  json r = run_record(run_id, name);
  r["input"] = value;
  r["triggered_by"] = tricky;
  json t = task_record(run_id, tricky, 0);
  t["input"] = value;
  s().create_run({{"run", r}, {"tasks", {t}}});
  EXPECT_EQ(run(run_id), r);
  EXPECT_EQ(tasks_of(run_id).at(0), t);
  s().update_task_run({{"run_id", run_id},
                       {"id", t["id"]},
                       {"set", {{"output", value}, {"executor_id", tricky}}},
                       {"expect", {{"input", value}, {"task_name", tricky}}}});
  json got = task(run_id, t["id"]);
  EXPECT_EQ(got["output"], value);
  EXPECT_EQ(got["executor_id"], tricky);
}

TEST_P(StateConformance, FiveMegabyteJsonRoundTripsExactly) {
  json big = json::array();
  size_t bytes = 0;
  for (int i = 0; bytes < 5'000'000; ++i) {
    json item{{"i", i}, {"s", std::string(200, static_cast<char>('a' + i % 26)) + "✓漢😀"}, {"f", i * 0.25}};
    bytes += item.dump().size();
    big.push_back(std::move(item));
  }
  auto c = make_run(1);
  auto t0 = Clock::now();
  EXPECT_TRUE(s().update_task_run({{"run_id", c.run_id}, {"id", c.task_ids[0]}, {"set", {{"output", big}}}})["updated"]
                  .get<bool>());
  json got = task(c.run_id, c.task_ids[0]);
  auto t1 = Clock::now();
  std::cout << "[ timing ] " << GetParam().library << ": " << bytes / 1'000'000.0 << " MB output written and read in "
            << std::chrono::duration<double, std::milli>(t1 - t0).count() << " ms" << std::endl;
  EXPECT_TRUE(got["output"] == big) << "the 5 MB output differs after the round trip";

  std::string run_id = uid();
  json r = run_record(run_id, "wf-" + uid());
  r["input"] = big;
  s().create_run({{"run", r}, {"tasks", json::array()}});
  EXPECT_TRUE(run(run_id)["input"] == big);
}

INSTANTIATE_TEST_SUITE_P(Env, StateConformance, ::testing::Values(backend_from_env()), test_name);

}  // namespace
