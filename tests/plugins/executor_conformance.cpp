// Executor conformance suite (docs/plugin-abi.md, "Executor"): any executor plugin, loaded through the host's loader,
// runs real ork-worker attempts whose spec/status/output live in an object store. Knobs (read at run time):
//   ORK_CONFORMANCE_LIBRARY       executor plugin (default ork-exec-subprocess)
//   ORK_CONFORMANCE_CONFIG        its config JSON; "{tmpdir}" = a fresh directory per test, "{file:PATH}" = PATH's text
//   ORK_CONFORMANCE_OBJECT_STORE  {"library","config"} the worker and the suite share (same substitutions; default
//                                 ork-object-local under {tmpdir}/objects)
//   ORK_CONFORMANCE_WORKER_COMMAND JSON argv of the worker (default: the built ork-worker)
//   ORK_CONFORMANCE_WORKER_SERVER_COMMAND JSON argv of a resident worker (`worker_server_command`; default: none)
//   ORK_CONFORMANCE_LOSE_COMMAND  shell command that deletes the job ORK_CONFORMANCE_EXECUTOR_ID on the backend behind
//                                 the plugin's back (ORK_CONFORMANCE_EXECUTOR_PID is set too when status() reports a
//                                 pid; default for ork-exec-subprocess: SIGKILL its process group)
//   ORK_CONFORMANCE_MISSING_ID    an executor id the backend never had (default: a fresh "ork-missing-<uuid>")
//   ORK_CONFORMANCE_FANOUT        dispatches in the fan-out case (default 500)
//   ORK_CONFORMANCE_WAIT_SECONDS  how long one attempt may take to reach a final state (default 60)
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "support/plugin_support.hpp"

#ifndef ORK_WORKER_PATH
#define ORK_WORKER_PATH "ork-worker"
#endif

namespace {

namespace fs = std::filesystem;
using ork::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

struct Backend {
  std::string library = env_or("ORK_CONFORMANCE_LIBRARY", "ork-exec-subprocess");
  std::string config = env_or("ORK_CONFORMANCE_CONFIG", R"({"kill_on_destroy": true})");
  std::string object_store = env_or("ORK_CONFORMANCE_OBJECT_STORE",
                                    R"({"library": "ork-object-local", "config": {"root": "{tmpdir}/objects"}})");
  std::string worker_command = env_or("ORK_CONFORMANCE_WORKER_COMMAND", json::array({ORK_WORKER_PATH}).dump());
  std::string worker_server_command = env_or("ORK_CONFORMANCE_WORKER_SERVER_COMMAND", "");
  std::string lose_command = env_or("ORK_CONFORMANCE_LOSE_COMMAND", "");
  std::string missing_id = env_or("ORK_CONFORMANCE_MISSING_ID", "");
  size_t fanout = std::stoul(env_or("ORK_CONFORMANCE_FANOUT", "500"));
  int wait_seconds = std::stoi(env_or("ORK_CONFORMANCE_WAIT_SECONDS", "60"));

  std::string lose() const {
    if (!lose_command.empty()) return lose_command;
    if (fs::path(library).stem().string().find("exec-subprocess") != std::string::npos)
      return R"(kill -KILL "-${ORK_CONFORMANCE_EXECUTOR_PID:-${ORK_CONFORMANCE_EXECUTOR_ID%%:*}}")";
    return "";
  }
};

void PrintTo(const Backend& b, std::ostream* os) {
  *os << b.library << " " << b.config;
}

std::string test_name(const ::testing::TestParamInfo<Backend>& info) {
  std::string n = fs::path(info.param.library).stem().string();
  for (auto& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n.empty() ? "backend" : n;
}

bool is_final(const std::string& s) {
  return s == "succeeded" || s == "failed" || s == "cancelled";
}

// Events pushed through host notify, with bounded waits.
class EventLog {
 public:
  void push(const json& e) {
    {
      std::lock_guard lock(mu_);
      events_.push_back(e);
      if (is_final(e.value("state", ""))) ++finals_[e.value("executor_id", "")];
    }
    cv_.notify_all();
  }
  bool wait(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, pred);
  }
  std::vector<json> for_id(const std::string& id) {
    std::lock_guard lock(mu_);
    std::vector<json> out;
    for (const auto& e : events_)
      if (e.value("executor_id", "") == id) out.push_back(e);
    return out;
  }
  size_t finals(const std::string& id) {  // caller holds no lock
    std::lock_guard lock(mu_);
    return finals_.count(id) ? finals_[id] : 0;
  }
  // Under the lock (inside wait's predicate only).
  size_t finals_locked(const std::string& id) const {
    auto it = finals_.find(id);
    return it == finals_.end() ? 0 : it->second;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<json> events_;
  std::map<std::string, size_t> finals_;
};

// Replaces every {tmpdir} by `dir` and every {file:PATH} by the trimmed contents of PATH, both JSON-escaped.
json substitute(std::string text, const std::string& dir) {
  auto escaped = [](const std::string& s) {
    std::string e = json(s).dump();
    return e.substr(1, e.size() - 2);
  };
  std::string esc = escaped(dir);
  for (size_t p = text.find("{tmpdir}"); p != std::string::npos; p = text.find("{tmpdir}", p + esc.size()))
    text.replace(p, 8, esc);
  for (size_t p = text.find("{file:"); p != std::string::npos; p = text.find("{file:", p)) {
    size_t end = text.find('}', p);
    if (end == std::string::npos) throw std::runtime_error("conformance config: unterminated {file:...}");
    std::string path = text.substr(p + 6, end - p - 6);
    std::ifstream in(path);
    if (!in) throw std::runtime_error("conformance config: cannot read " + path);
    std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t b = contents.find_first_not_of(" \t\r\n"), e = contents.find_last_not_of(" \t\r\n");
    contents = escaped(b == std::string::npos ? "" : contents.substr(b, e - b + 1));
    text.replace(p, end - p + 1, contents);
    p += contents.size();
  }
  return json::parse(text);
}

class ExecutorConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ork-exec-conformance-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::permissions(dir_, fs::perms::all);  // a container's user may differ from ours
    store_ref_ = substitute(GetParam().object_store, dir_);
    objects_ = ork::load_plugin<ork::ObjectProxy>("object", store_ref_.at("library").get<std::string>(),
                                                  store_ref_.value("config", json::object()));
    auto log = events_;
    exec_ = ork::load_plugin<ork::ExecutorProxy>("executor", GetParam().library, substitute(GetParam().config, dir_),
                                                 [log](const std::string&, const json& e) { log->push(e); });
    ASSERT_TRUE(exec_);
    pushed_ = exec_->poll_interval_ms() == 0;
    run_id_ = ork::new_uuid();
  }
  void TearDown() override {
    for (const auto& id : live_) {
      try {
        exec_->cancel({{"executor_id", id}, {"grace_ms", 0}});
      } catch (const std::exception&) {
      }
    }
    exec_.reset();
    objects_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::chrono::seconds wait_budget() const { return std::chrono::seconds(GetParam().wait_seconds); }

  struct Attempt {
    std::string task_id, executor_id, base;
  };

  // Writes spec.json for a shell task and dispatches it; `name` is the task's name.
  Attempt dispatch(const std::string& command, const std::string& name = "t", int timeout_seconds = 0,
                   json extra_env = json::object(), json parallel_index = nullptr) {
    Attempt a;
    a.task_id = ork::new_uuid();
    a.base = "runs/" + run_id_ + "/" + a.task_id + "/";
    json spec{{"task_id", a.task_id},
              {"run_id", run_id_},
              {"task_name", name},
              {"workflow_name", "conformance"},
              {"executor", "shell"},
              {"file", nullptr},
              {"command", command},
              {"function", nullptr},
              {"config_file", nullptr},
              {"image", nullptr},
              {"input_to_file", nullptr},
              {"output_from_file", nullptr},
              {"base_dir", "/"},
              {"input", {{"name", name}}},
              {"upstream", json::object()},
              {"env", json::object()},
              {"secret_env", json::array()},
              {"timeout_seconds", timeout_seconds},
              {"parallel_index", parallel_index},
              {"parallel_count", parallel_index.is_null() ? json(nullptr) : json(GetParam().fanout)},
              {"attempt", 1},
              {"created_at", ork::format_time(ork::now_ms())},
              {"output_key", a.base + "output.json"},
              {"status_key", a.base + "status.json"},
              {"log_key", a.base + "attempt-1.log"}};
    objects_->put_json(a.base + "spec.json", spec);
    json env{{"ORK_TASK_SPEC_PATH", a.base + "spec.json"},
             {"ORK_OBJECT_STORE", store_ref_.dump()},
             {"ORK_HEARTBEAT_INTERVAL_MS", "1000"},
             {"ORK_TASK_CANCEL_GRACE_MS", "1000"}};
    env.update(extra_env);
    json cfg{{"task_id", a.task_id},
             {"run_id", run_id_},
             {"task_name", name},
             {"workflow_name", "conformance"},
             {"attempt", 1},
             {"runtime", "shell"},
             {"spec_key", a.base + "spec.json"},
             {"timeout_seconds", timeout_seconds},
             {"resources", {{"cpu_millis", 500}, {"memory_mb", 256}}},
             {"worker_command", json::parse(GetParam().worker_command)},
             {"image", nullptr},
             {"env", env}};
    if (!GetParam().worker_server_command.empty())
      cfg["worker_server_command"] = json::parse(GetParam().worker_server_command);
    json r = exec_->dispatch(cfg);
    EXPECT_TRUE(r.contains("executor_id") && r["executor_id"].is_string()) << r.dump();
    a.executor_id = r.value("executor_id", "");
    live_.push_back(a.executor_id);
    return a;
  }

  json status(const std::string& id) {
    json st = exec_->status({{"executor_id", id}});
    EXPECT_TRUE(st.contains("state") && st.contains("exit_code")) << st.dump();
    return st;
  }

  // Waits until the attempt is final: by its pushed event (poll_interval_ms == 0) or by polling status. Returns
  // the final status as status() reports it afterwards; an empty object on timeout.
  json wait_final(const std::string& id, std::chrono::milliseconds timeout) {
    if (pushed_) {
      bool ok = events_->wait([&] { return events_->finals_locked(id) > 0; }, timeout);
      EXPECT_TRUE(ok) << "no final event for " << id << " within " << timeout.count() << " ms";
      if (!ok) return json::object();
      return status(id);
    }
    auto until = Clock::now() + timeout;
    for (;;) {
      json st = status(id);
      if (is_final(st.value("state", ""))) return st;
      if (Clock::now() > until) {
        ADD_FAILURE() << "not final within " << timeout.count() << " ms: " << st.dump();
        return json::object();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(std::max<uint32_t>(exec_->poll_interval_ms(), 50)));
    }
  }
  json wait_final(const std::string& id) { return wait_final(id, wait_budget()); }

  // Polls status until pred holds (bounded); the last status.
  json wait_status(const std::string& id, const std::function<bool(const json&)>& pred,
                   std::chrono::milliseconds timeout) {
    auto until = Clock::now() + timeout;
    json st;
    while (!pred(st = status(id)) && Clock::now() < until) std::this_thread::sleep_for(100ms);
    return st;
  }

  // The pushed final event of `id` (pushing plugins only).
  json final_event(const std::string& id) {
    for (const auto& e : events_->for_id(id))
      if (is_final(e.value("state", ""))) return e;
    return json::object();
  }

  fs::path dir_;
  json store_ref_;
  std::shared_ptr<EventLog> events_ = std::make_shared<EventLog>();
  std::unique_ptr<ork::ObjectProxy> objects_;
  std::unique_ptr<ork::ExecutorProxy> exec_;
  bool pushed_ = false;
  std::string run_id_;
  std::vector<std::string> live_;
};

TEST_P(ExecutorConformance, LoadsAsAnExecutor) {
  EXPECT_EQ(exec_->kind(), "executor");
  EXPECT_FALSE(exec_->plugin_name().empty());
  EXPECT_FALSE(exec_->version().empty());
}

TEST_P(ExecutorConformance, SucceedsThroughPendingRunningWithTheWorkersFiles) {
  auto t0 = Clock::now();
  auto a = dispatch("sleep 2; echo \"{\\\"answer\\\": 42, \\\"v\\\": \\\"$CONFORMANCE_VALUE\\\"}\"", "ok", 0,
                    {{"CONFORMANCE_VALUE", "from env"}});
  ASSERT_FALSE(a.executor_id.empty());
  std::vector<std::string> seen;
  for (;;) {  // the states status() reports, in order, until final
    std::string s = status(a.executor_id).value("state", "");
    if (seen.empty() || seen.back() != s) seen.push_back(s);
    if (is_final(s) || Clock::now() - t0 > wait_budget()) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.front() == "pending" || seen.front() == "running") << seen.front();
  EXPECT_TRUE(std::find(seen.begin(), seen.end(), "running") != seen.end())
      << "a 2 s task was never seen running: " << json(seen).dump();
  static const std::map<std::string, int> rank{{"pending", 0}, {"running", 1}, {"succeeded", 2}};
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_TRUE(rank.count(seen[i])) << "unexpected state " << seen[i] << " in " << json(seen).dump();
    if (i > 0) {
      EXPECT_LT(rank.at(seen[i - 1]), rank.at(seen[i])) << json(seen).dump();
    }
  }
  json st = wait_final(a.executor_id);
  EXPECT_EQ(st["state"], "succeeded") << st.dump();
  EXPECT_EQ(st["exit_code"], 0) << st.dump();

  auto worker_status = objects_->get_json(a.base + "status.json");
  ASSERT_TRUE(worker_status) << "the worker wrote no status.json";
  EXPECT_EQ((*worker_status)["status"], "success") << worker_status->dump();
  EXPECT_EQ((*worker_status)["attempt"], 1);
  auto output = ork::test::attempt_output(*objects_, *worker_status, a.base + "output.json");
  ASSERT_TRUE(output) << "the worker wrote no output";
  EXPECT_EQ(*output, (json{{"answer", 42}, {"v", "from env"}}));
  EXPECT_TRUE(objects_->get(a.base + "attempt-1.log")) << "no log";
}

TEST_P(ExecutorConformance, FailingTaskFailsWithTheWorkersExitCode) {
  auto a = dispatch("echo doomed >&2; exit 3", "bad");
  json st = wait_final(a.executor_id);
  EXPECT_EQ(st["state"], "failed") << st.dump();
  EXPECT_EQ(st["exit_code"], 1) << st.dump();  // the worker's code for a failed task (docs/worker.md)
  auto ws = objects_->get_json(a.base + "status.json");
  ASSERT_TRUE(ws);
  EXPECT_EQ((*ws)["status"], "failed");
  EXPECT_EQ((*ws)["error"]["type"], "exit_code") << ws->dump();
  EXPECT_EQ((*ws)["error"]["details"]["exit_code"], 3) << ws->dump();
}

TEST_P(ExecutorConformance, CancelStopsARunningAttemptAndAFinishedOneIsFine) {
  auto a = dispatch("sleep 300", "long");
  json st = wait_status(
      a.executor_id, [](const json& s) { return s.value("state", "") == "running"; }, wait_budget());
  ASSERT_EQ(st["state"], "running") << st.dump();
  auto t0 = Clock::now();
  EXPECT_EQ(exec_->cancel({{"executor_id", a.executor_id}, {"grace_ms", 2000}}), json::object());
  st = wait_final(a.executor_id);
  EXPECT_EQ(st["state"], "cancelled") << st.dump();
  EXPECT_LT(Clock::now() - t0, wait_budget());
  EXPECT_NO_THROW(exec_->cancel({{"executor_id", a.executor_id}, {"grace_ms", 0}}));  // again: a no-op
  EXPECT_EQ(status(a.executor_id)["state"], "cancelled");

  auto b = dispatch("true", "quick");
  EXPECT_EQ(wait_final(b.executor_id)["state"], "succeeded");
  EXPECT_NO_THROW(exec_->cancel({{"executor_id", b.executor_id}, {"grace_ms", 0}}));
  st = status(b.executor_id);
  EXPECT_EQ(st["state"], "succeeded") << "cancelling a finished attempt changed it: " << st.dump();
  EXPECT_EQ(st["exit_code"], 0);
}

TEST_P(ExecutorConformance, TimeoutIsEnforced) {
  auto t0 = Clock::now();
  auto a = dispatch("sleep 300", "slow", 2);
  json st = wait_final(a.executor_id);
  auto took = Clock::now() - t0;
  EXPECT_EQ(st["state"], "failed") << st.dump();
  EXPECT_GE(took, 2s);
  EXPECT_LT(took, 2s + wait_budget()) << "timeout_seconds 2 was not enforced";
  // Whoever enforced it (worker or backend), the attempt must not look like a success.
  if (auto ws = objects_->get_json(a.base + "status.json")) {
    EXPECT_NE((*ws)["status"], "success") << ws->dump();
  }
}

TEST_P(ExecutorConformance, LostJobIsReportedNotHung) {
  std::string lose = GetParam().lose();
  ASSERT_FALSE(lose.empty()) << "set ORK_CONFORMANCE_LOSE_COMMAND: a shell command deleting the backend's job "
                                "$ORK_CONFORMANCE_EXECUTOR_ID (the lost-job case is part of the contract)";
  auto a = dispatch("sleep 60", "lost");  // long enough to be lost while running; an orphaned sleep ends soon
  json st = wait_status(
      a.executor_id, [](const json& s) { return s.value("state", "") == "running"; }, wait_budget());
  ASSERT_EQ(st["state"], "running") << st.dump();
  ::setenv("ORK_CONFORMANCE_EXECUTOR_ID", a.executor_id.c_str(), 1);
  if (st.contains("pid") && st["pid"].is_number_integer())
    ::setenv("ORK_CONFORMANCE_EXECUTOR_PID", std::to_string(st["pid"].get<int64_t>()).c_str(), 1);
  int rc = std::system(lose.c_str());
  ::unsetenv("ORK_CONFORMANCE_EXECUTOR_ID");
  ::unsetenv("ORK_CONFORMANCE_EXECUTOR_PID");
  ASSERT_EQ(rc, 0) << "lose command failed: " << lose;
  auto t0 = Clock::now();
  st = wait_status(
      a.executor_id,
      [](const json& s) {
        auto v = s.value("state", "");
        return v == "unknown" || v == "failed";
      },
      wait_budget());
  EXPECT_TRUE(st["state"] == "unknown" || st["state"] == "failed") << st.dump();
  EXPECT_LT(Clock::now() - t0, wait_budget());
  // A pushing plugin that reports the loss as `failed` tells the host so (else the host learns it from status).
  if (pushed_ && st["state"] == "failed") {
    EXPECT_EQ(events_->finals(a.executor_id), 1u);
  }
}

TEST_P(ExecutorConformance, UnknownIdsAnswerPromptly) {
  std::string id = GetParam().missing_id.empty() ? "ork-missing-" + ork::new_uuid() : GetParam().missing_id;
  auto t0 = Clock::now();
  json st = status(id);
  EXPECT_TRUE(st["state"] == "unknown" || st["state"] == "failed") << st.dump();
  EXPECT_NO_THROW(exec_->cancel({{"executor_id", id}, {"grace_ms", 0}}));
  EXPECT_LT(Clock::now() - t0, 10s);
  EXPECT_THROW(exec_->status(json::object()), ork::PluginCallError);
}

TEST_P(ExecutorConformance, FanOutAllReachAFinalState) {
  const size_t n = GetParam().fanout;
  auto t0 = Clock::now();
  std::vector<Attempt> as;
  as.reserve(n);
  for (size_t i = 0; i < n; ++i)
    as.push_back(dispatch("echo \"{\\\"i\\\": $ORK_PARALLEL_INDEX}\"", "fan", 0, json::object(), i));
  auto dispatched = Clock::now();
  std::set<std::string> ids;
  for (const auto& a : as) ids.insert(a.executor_id);
  EXPECT_EQ(ids.size(), n) << "executor ids must be distinct";
  // A budget that grows with n: a slow backend may run few at a time, but every attempt must end.
  auto budget = wait_budget() + std::chrono::milliseconds(200 * n);
  size_t ok = 0;
  for (size_t i = 0; i < n; ++i) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t0 + budget - Clock::now());
    json st = wait_final(as[i].executor_id, std::max(left, std::chrono::milliseconds(1)));
    if (st.value("state", "") != "succeeded") {
      ADD_FAILURE() << "attempt " << i << ": " << st.dump();
      break;
    }
    auto out = ork::test::attempt_output(*objects_, objects_->get_json(as[i].base + "status.json").value_or(json()),
                                         as[i].base + "output.json");
    EXPECT_TRUE(out && *out == json({{"i", i}})) << i << ": " << (out ? out->dump() : "no output");
    ++ok;
  }
  EXPECT_EQ(ok, n);
  auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  std::cout << "[ fan-out  ] " << n << " attempts: dispatch " << secs(dispatched - t0) << " s, all final after "
            << secs(Clock::now() - t0) << " s\n";
  if (pushed_) {
    for (const auto& a : as) EXPECT_EQ(events_->finals(a.executor_id), 1u) << a.executor_id;
  }
}

TEST_P(ExecutorConformance, PushedEventsWhenNotPolled) {
  auto ok = dispatch("true", "ok");
  auto bad = dispatch("exit 5", "bad");
  auto cancelled = dispatch("sleep 300", "cancelled");
  json st = wait_status(
      cancelled.executor_id, [](const json& s) { return s.value("state", "") == "running"; }, wait_budget());
  ASSERT_EQ(st["state"], "running");
  exec_->cancel({{"executor_id", cancelled.executor_id}, {"grace_ms", 1000}});
  std::map<std::string, std::pair<std::string, json>> want{{ok.executor_id, {"succeeded", 0}},
                                                           {bad.executor_id, {"failed", 1}},
                                                           {cancelled.executor_id, {"cancelled", nullptr}}};
  if (!pushed_) {  // a polling plugin: status alone must carry every change
    EXPECT_GT(exec_->poll_interval_ms(), 0u);
    for (const auto& [id, w] : want) EXPECT_EQ(wait_final(id)["state"], w.first);
    return;
  }
  for (const auto& [id, w] : want) {
    wait_final(id);
    auto evs = events_->for_id(id);
    size_t finals = 0, final_at = 0;
    for (size_t i = 0; i < evs.size(); ++i) {
      EXPECT_EQ(evs[i]["type"], "executor.status") << evs[i].dump();
      std::string s = evs[i].value("state", "");
      EXPECT_TRUE(s == "running" || is_final(s)) << evs[i].dump();
      if (is_final(s)) ++finals, final_at = i;
    }
    ASSERT_EQ(finals, 1u) << "exactly one final event: " << json(evs).dump();
    EXPECT_EQ(final_at, evs.size() - 1) << "nothing after the final event: " << json(evs).dump();
    EXPECT_EQ(evs[final_at]["state"], w.first) << json(evs).dump();
    if (!w.second.is_null()) {
      EXPECT_EQ(evs[final_at]["exit_code"], w.second) << json(evs).dump();
    }
    EXPECT_EQ(status(id)["state"], w.first);
  }
}

INSTANTIATE_TEST_SUITE_P(Env, ExecutorConformance, ::testing::Values(Backend{}), test_name);

}  // namespace
