// ork-exec-subprocess through the C ABI: pushed status events, env and log capture, process-group cancellation,
// SIGKILL after the grace period, concurrency, and what happens to children when the plugin is destroyed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "loader/plugin_loader.hpp"

namespace {

namespace fs = std::filesystem;
using ork::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Events pushed through host notify, with waits bounded by a deadline.
class EventLog {
 public:
  void push(const json& e) {
    {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    }
    cv_.notify_all();
  }
  // Waits until pred(events) holds; false on timeout.
  bool wait(const std::function<bool(const std::vector<json>&)>& pred, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(events_); });
  }
  std::vector<json> for_id(const std::string& id) {
    std::lock_guard lock(mu_);
    std::vector<json> out;
    for (const auto& e : events_)
      if (e.value("executor_id", "") == id) out.push_back(e);
    return out;
  }
  std::vector<json> all() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<json> events_;
};

bool is_terminal(const json& e) {
  auto s = e.value("state", "");
  return s == "succeeded" || s == "failed" || s == "cancelled";
}

// True while the process exists and is not a zombie.
bool alive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (stat.empty()) return false;
  auto p = stat.rfind(')');
  if (p == std::string::npos || p + 2 >= stat.size()) return false;
  char state = stat[p + 2];
  return state != 'Z' && state != 'X';
}

pid_t pid_of(const std::string& executor_id) {
  return static_cast<pid_t>(std::stol(executor_id.substr(0, executor_id.find(':'))));
}

// Waits (bounded) until cond holds; the condition, not the sleep, is what the test asserts.
bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 10s) {
  auto until = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

class ExecSubprocessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ork-exec-subprocess-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    exec_ = load({{"kill_on_destroy", true}});
  }
  void TearDown() override {
    exec_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<ork::ExecutorProxy> load(const json& cfg) {
    auto log = events_;
    return ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-subprocess", cfg,
                                                [log](const std::string&, const json& e) { log->push(e); });
  }

  static json config(std::vector<std::string> argv, json env = json::object()) {
    return json{{"task_id", "T1"},
                {"run_id", "R1"},
                {"task_name", "t"},
                {"workflow_name", "wf"},
                {"attempt", 1},
                {"runtime", "shell"},
                {"spec_key", "runs/R1/T1/spec.json"},
                {"timeout_seconds", 60},
                {"worker_command", argv},
                {"image", nullptr},
                {"env", std::move(env)}};
  }
  static json sh(const std::string& script, json env = json::object()) {
    return config({"/bin/sh", "-c", script}, std::move(env));
  }

  std::string dispatch(ork::ExecutorProxy& ex, const json& cfg) {
    json r = ex.dispatch(cfg);
    EXPECT_TRUE(r.contains("executor_id"));
    return r.value("executor_id", "");
  }
  std::string dispatch(const json& cfg) { return dispatch(*exec_, cfg); }

  // The terminal event of `id`, waiting up to `timeout`.
  json wait_final(const std::string& id, std::chrono::milliseconds timeout = 10s) {
    bool ok = events_->wait(
        [&](const std::vector<json>& es) {
          return std::any_of(es.begin(), es.end(),
                             [&](const json& e) { return e.value("executor_id", "") == id && is_terminal(e); });
        },
        timeout);
    EXPECT_TRUE(ok) << "no final event for " << id;
    for (const auto& e : events_->for_id(id))
      if (is_terminal(e)) return e;
    return json::object();
  }

  fs::path dir_;
  std::shared_ptr<EventLog> events_ = std::make_shared<EventLog>();
  std::unique_ptr<ork::ExecutorProxy> exec_;
};

TEST_F(ExecSubprocessTest, PushesEverythingNoPolling) {
  EXPECT_EQ(exec_->poll_interval_ms(), 0u);
  EXPECT_EQ(exec_->plugin_name(), "subprocess");
}

TEST_F(ExecSubprocessTest, FailedExitCodeAndEnvReachTheChild) {
  fs::path out = dir_ / "env.txt";
  auto id = dispatch(sh("printf '%s' \"$ORK_TEST_VAR\" > \"$OUT_FILE\"; exit 3",
                        {{"ORK_TEST_VAR", "hello wörld"}, {"OUT_FILE", out.string()}}));
  EXPECT_GT(pid_of(id), 0);
  json fin = wait_final(id);
  auto evs = events_->for_id(id);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0]["type"], "executor.status");
  EXPECT_EQ(evs[0]["state"], "running");
  EXPECT_EQ(evs[1]["state"], "failed");
  EXPECT_EQ(evs[1]["exit_code"], 3);
  EXPECT_TRUE(evs[1]["signal"].is_null());
  EXPECT_EQ(read_file(out), "hello wörld");

  json st = exec_->status({{"executor_id", id}});
  EXPECT_EQ(st["state"], "failed");
  EXPECT_EQ(st["exit_code"], 3);
  EXPECT_TRUE(st["message"].is_string());
}

TEST_F(ExecSubprocessTest, InheritsTheCurrentEnvironment) {
  ::setenv("ORK_TEST_INHERITED", "from-parent", 1);
  fs::path out = dir_ / "inherited.txt";
  auto id =
      dispatch(sh("echo \"$ORK_TEST_INHERITED $ORK_TEST_OVERRIDE\" > " + out.string(), {{"ORK_TEST_OVERRIDE", 42}}));
  EXPECT_EQ(wait_final(id)["state"], "succeeded");
  EXPECT_EQ(read_file(out), "from-parent 42\n");
}

TEST_F(ExecSubprocessTest, SuccessAndPathLookup) {
  auto id = dispatch(config({"true"}));
  json fin = wait_final(id);
  EXPECT_EQ(fin["state"], "succeeded");
  EXPECT_EQ(fin["exit_code"], 0);
  EXPECT_EQ(exec_->status({{"executor_id", id}})["state"], "succeeded");
}

TEST_F(ExecSubprocessTest, BadCommandsAreRefused) {
  auto code = [&](const json& cfg) {
    try {
      exec_->dispatch(cfg);
      return static_cast<int>(ORK_OK);
    } catch (const ork::PluginCallError& e) {
      return static_cast<int>(e.code());
    }
  };
  EXPECT_EQ(code(config({"/no/such/binary"})), ORK_ERR_INVALID);
  EXPECT_EQ(code(config({"ork-no-such-command-on-path"})), ORK_ERR_INVALID);
  json no_cmd = config({"true"});
  no_cmd["worker_command"] = json::array();
  EXPECT_EQ(code(no_cmd), ORK_ERR_INVALID);
  no_cmd["worker_command"] = nullptr;
  no_cmd["image"] = "python:3.12";
  EXPECT_EQ(code(no_cmd), ORK_ERR_UNSUPPORTED);
  EXPECT_TRUE(events_->all().empty());
}

TEST_F(ExecSubprocessTest, HostDescriptorsDoNotLeakIntoChildren) {
  int fd = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(fd, 3);
  auto id = dispatch(sh("test -e /proc/self/fd/" + std::to_string(fd) + " && exit 7; exit 0"));
  json fin = wait_final(id);
  ::close(fd);
  EXPECT_EQ(fin["state"], "succeeded") << fin.dump();
}

TEST_F(ExecSubprocessTest, StatusAndCancelOfUnknownIds) {
  json st = exec_->status({{"executor_id", "12345:nope"}});
  EXPECT_EQ(st["state"], "unknown");
  EXPECT_TRUE(st["exit_code"].is_null());
  EXPECT_NO_THROW(exec_->cancel({{"executor_id", "12345:nope"}, {"grace_ms", 10}}));
  EXPECT_THROW(exec_->status(json::object()), ork::PluginCallError);

  auto id = dispatch(config({"true"}));
  wait_final(id);
  EXPECT_NO_THROW(exec_->cancel({{"executor_id", id}}));  // finished: fine, and still succeeded
  EXPECT_EQ(exec_->status({{"executor_id", id}})["state"], "succeeded");
}

TEST_F(ExecSubprocessTest, CancelKillsTheWholeProcessGroup) {
  fs::path gc = dir_ / "grandchild.pid";
  auto id = dispatch(
      sh("sleep 100 & echo $! > " + gc.string() + ".tmp && mv " + gc.string() + ".tmp " + gc.string() + "; wait"));
  ASSERT_TRUE(eventually([&] { return fs::exists(gc); }));
  pid_t grandchild = static_cast<pid_t>(std::stol(read_file(gc)));
  ASSERT_TRUE(alive(grandchild));
  EXPECT_EQ(::getpgid(grandchild), pid_of(id));  // same group as the leader
  EXPECT_EQ(exec_->status({{"executor_id", id}})["state"], "running");

  exec_->cancel({{"executor_id", id}, {"grace_ms", 5000}});
  json fin = wait_final(id);
  EXPECT_EQ(fin["state"], "cancelled");
  EXPECT_TRUE(eventually([&] { return !alive(grandchild); }, 5s)) << "grandchild " << grandchild << " survived";
  EXPECT_FALSE(alive(pid_of(id)));
  EXPECT_EQ(exec_->status({{"executor_id", id}})["state"], "cancelled");
}

TEST_F(ExecSubprocessTest, TermIgnoringChildIsKilledAfterGrace) {
  fs::path ready = dir_ / "ready";
  auto id = dispatch(sh("trap '' TERM; touch " + ready.string() + "; while :; do sleep 1; done"));
  ASSERT_TRUE(eventually([&] { return fs::exists(ready); }));
  auto t0 = Clock::now();
  exec_->cancel({{"executor_id", id}, {"grace_ms", 400}});
  // Still alive inside the grace period: SIGTERM is ignored.
  EXPECT_EQ(exec_->status({{"executor_id", id}})["state"], "running");
  json fin = wait_final(id, 10s);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_EQ(fin["state"], "cancelled");
  EXPECT_EQ(fin["signal"], SIGKILL);
  EXPECT_TRUE(fin["exit_code"].is_null());
  EXPECT_GE(elapsed, 400);
  EXPECT_LT(elapsed, 5000);
}

TEST_F(ExecSubprocessTest, ZeroGraceKillsImmediately) {
  auto id = dispatch(config({"sleep", "100"}));
  exec_->cancel({{"executor_id", id}, {"grace_ms", 0}});
  json fin = wait_final(id, 5s);
  EXPECT_EQ(fin["state"], "cancelled");
  EXPECT_EQ(fin["signal"], SIGKILL);
}

TEST_F(ExecSubprocessTest, LogDirCapturesStdoutAndStderr) {
  fs::path logs = dir_ / "logs";
  auto ex = load({{"log_dir", logs.string()}, {"kill_on_destroy", true}});
  json cfg = sh("echo out; echo err >&2; read x || echo stdin-is-empty");
  cfg["attempt"] = 2;
  auto id = dispatch(*ex, cfg);
  EXPECT_EQ(wait_final(id)["state"], "succeeded");
  EXPECT_EQ(read_file(logs / "R1" / "T1-2.log"), "out\nerr\nstdin-is-empty\n");

  cfg["run_id"] = "../escape";
  EXPECT_THROW(ex->dispatch(cfg), ork::PluginCallError);
}

TEST_F(ExecSubprocessTest, CwdConfig) {
  fs::path work = dir_ / "work";
  fs::create_directories(work);
  auto ex = load({{"cwd", work.string()}, {"kill_on_destroy", true}});
  auto id = dispatch(*ex, sh("pwd > where.txt"));
  EXPECT_EQ(wait_final(id)["state"], "succeeded");
  EXPECT_EQ(read_file(work / "where.txt"), fs::canonical(work).string() + "\n");
}

TEST_F(ExecSubprocessTest, FiftyConcurrentChildrenReportedExactlyOnce) {
  constexpr int kChildren = 50;
  std::map<std::string, int> expected;  // id -> exit code
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 5; ++t)
    threads.emplace_back([&, t] {
      for (int i = t; i < kChildren; i += 5) {
        auto id = exec_->dispatch(sh("exit " + std::to_string(i % 3)))["executor_id"].get<std::string>();
        std::lock_guard lock(mu);
        expected[id] = i % 3;
      }
    });
  for (auto& th : threads) th.join();
  ASSERT_EQ(expected.size(), static_cast<size_t>(kChildren));
  ASSERT_TRUE(events_->wait(
      [&](const std::vector<json>& es) { return std::count_if(es.begin(), es.end(), is_terminal) >= kChildren; }));
  // A last child acts as a barrier: its event comes after anything (duplicates) still queued for the others.
  wait_final(dispatch(config({"true"})));
  for (const auto& [id, code] : expected) {
    auto evs = events_->for_id(id);
    ASSERT_EQ(evs.size(), 2u) << id;
    EXPECT_EQ(evs[0]["state"], "running");
    EXPECT_EQ(evs[1]["state"], code == 0 ? "succeeded" : "failed");
    EXPECT_EQ(evs[1]["exit_code"], code);
  }
  EXPECT_EQ(events_->all().size(), 2u * (kChildren + 1));
}

TEST_F(ExecSubprocessTest, DestroyLeavesRunningChildrenAlone) {
  auto ex = load(json::object());
  auto id = dispatch(*ex, config({"sleep", "100"}));
  pid_t pid = pid_of(id);
  ex.reset();  // host shutdown
  EXPECT_TRUE(alive(pid));
  ::kill(-pid, SIGKILL);
  int st = 0;
  EXPECT_EQ(::waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(st));
}

TEST_F(ExecSubprocessTest, KillOnDestroyKillsChildren) {
  auto ex = load({{"kill_on_destroy", true}});
  auto id = dispatch(*ex, config({"sleep", "100"}));
  pid_t pid = pid_of(id);
  ASSERT_TRUE(alive(pid));
  ex.reset();
  EXPECT_FALSE(alive(pid));
}

// --- the resident worker (`ork-worker --serve`): shell attempts on its threads (param true) or in forks of it ---

class ResidentWorkerTest : public ExecSubprocessTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    ExecSubprocessTest::SetUp();
    root_ = dir_ / "objects";
    fs::create_directories(root_);
    ::setenv("ORK_WORKER_THREADS", threads() ? "1" : "0", 1);  // the resident worker inherits our environment
  }
  void TearDown() override {
    ExecSubprocessTest::TearDown();
    ::unsetenv("ORK_WORKER_THREADS");
  }
  static bool threads() { return GetParam(); }
  // An ExecutionConfig whose spec (a shell task running `command`) is in the object store under task `task`.
  json task(const std::string& task, const std::string& command) {
    std::string key = "runs/R1/" + task + "/spec.json";
    fs::create_directories(root_ / "runs/R1" / task);
    std::ofstream(root_ / key) << json{{"executor", "shell"}, {"command", command},       {"task_name", task},
                                       {"task_id", task},     {"run_id", "R1"},           {"workflow_name", "wf"},
                                       {"attempt", 1},        {"base_dir", dir_.string()}}
                                      .dump();
    json cfg = config({ORK_WORKER_PATH});
    cfg["task_id"] = task;
    cfg["worker_server_command"] = {ORK_WORKER_PATH, "--serve"};
    cfg["env"] = {{"ORK_TASK_SPEC_PATH", key},
                  {"ORK_TASK_CANCEL_GRACE_MS", "100"},  // the worker's own grace for its task, below the executor's
                  {"ORK_OBJECT_STORE", json{{"library", ORK_OBJECT_LOCAL_PATH}, {"config", {{"root", root_}}}}.dump()}};
    return cfg;
  }
  json status_of(const std::string& task) {
    return json::parse(read_file(root_ / "runs/R1" / task / "status.json"), nullptr, false);
  }
  static pid_t server_of(const std::string& id) {  // ids look like "w<server pid>:<nonce>-<n>"
    return static_cast<pid_t>(std::stol(id.substr(1, id.find(':') - 1)));
  }
  static pid_t ppid_of(pid_t pid) {
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    auto p = stat.rfind(')');
    if (p == std::string::npos) return -1;
    std::istringstream rest(stat.substr(p + 2));
    char state;
    pid_t ppid = -1;
    rest >> state >> ppid;
    return ppid;
  }
  fs::path root_;
};

TEST_P(ResidentWorkerTest, AttemptsRunInOneResidentWorker) {
  auto a = dispatch(task("a", "echo '{\"n\": 1}'"));
  auto b = dispatch(task("b", "exit 3"));
  ASSERT_EQ(a[0], 'w');
  EXPECT_EQ(server_of(a), server_of(b));  // one resident worker serves both
  EXPECT_EQ(wait_final(a)["state"], "succeeded");
  json fb = wait_final(b);
  EXPECT_EQ(fb["state"], "failed");
  EXPECT_EQ(fb["exit_code"], 1);  // ork-worker's "task failed"
  EXPECT_EQ(status_of("a")["status"], "success");
  EXPECT_EQ(status_of("a")["output"], json({{"n", 1}}));  // small outputs travel inside the status
  EXPECT_FALSE(fs::exists(root_ / "runs/R1/a/output.json"));
  EXPECT_EQ(status_of("b")["status"], "failed");
  auto evs = events_->for_id(a);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0]["state"], "running");
  EXPECT_GT(evs[0]["pid"].get<int>(), 0);
  EXPECT_EQ(exec_->status({{"executor_id", b}})["exit_code"], 1);
}

TEST_P(ResidentWorkerTest, AttemptsSeeTheEnvironmentOfTheirDispatch) {
  ::setenv("ORK_TEST_GONE", "at-start", 1);
  ::setenv("ORK_TEST_CHANGED", "old", 1);
  auto first = dispatch(task("v1", "true"));  // starts the resident worker with both
  EXPECT_EQ(wait_final(first)["state"], "succeeded");
  ::unsetenv("ORK_TEST_GONE");
  ::setenv("ORK_TEST_CHANGED", "new", 1);
  ::setenv("ORK_TEST_ADDED", "added", 1);
  fs::path out = dir_ / "env.txt";
  auto id = dispatch(
      task("v2", "echo \"${ORK_TEST_GONE-unset} $ORK_TEST_CHANGED $ORK_TEST_ADDED $ORK_TASK_NAME\" > " + out.string()));
  EXPECT_EQ(server_of(id), server_of(first));  // the same resident worker, started with the old environment
  EXPECT_EQ(wait_final(id)["state"], "succeeded");
  EXPECT_EQ(read_file(out), "unset new added v2\n");
  for (const char* v : {"ORK_TEST_CHANGED", "ORK_TEST_ADDED"}) ::unsetenv(v);
}

TEST_P(ResidentWorkerTest, AnAttemptThatCannotBeAThreadRunsBesideThreadAttempts) {
  // A task with secrets is never a thread. While thread attempts run, it is a fresh ork-worker (exec), not a fork: a
  // fork could inherit a libc lock (tzset's, for one) that a thread holds at that moment and hang on it.
  fs::path go = dir_ / "go", out = dir_ / "secret.txt";
  const std::string wait_go = "while [ ! -e " + go.string() + " ]; do sleep 0.02; done";
  auto shell = dispatch(task("t1", wait_go));
  json with_secret = task("t2", wait_go + "; echo \"$S\" > " + out.string());
  with_secret["env"]["ORK_TASK_SECRETS"] = json{{"env", {{"S", "s3cr3t"}}}}.dump();
  auto secret = dispatch(with_secret);
  pid_t pid = events_->for_id(secret).at(0)["pid"].get<pid_t>();
  EXPECT_EQ(ppid_of(pid), server_of(secret));
  std::string cmdline;  // empty for a moment while the new program is still being set up
  EXPECT_TRUE(eventually([&] { return !(cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline")).empty(); }));
  if (threads()) {
    EXPECT_EQ(cmdline, std::string("ork-worker", 11)) << "not a freshly started ork-worker";
  } else {
    EXPECT_NE(cmdline.find("--serve"), std::string::npos) << "not a fork of the resident worker";
  }
  std::ofstream(go) << "";
  EXPECT_EQ(wait_final(shell)["state"], "succeeded");
  EXPECT_EQ(wait_final(secret)["state"], "succeeded");
  EXPECT_EQ(read_file(out), "s3cr3t\n");
  EXPECT_EQ(status_of("t2")["status"], "success");
}

TEST_P(ResidentWorkerTest, CancelReachesTheAttemptsTask) {
  fs::path ready = dir_ / "ready", shell = dir_ / "shell.pid";
  auto id = dispatch(task(
      "c", "trap '' TERM; echo $$ > " + shell.string() + "; touch " + ready.string() + "; while :; do sleep 1; done"));
  ASSERT_TRUE(eventually([&] { return fs::exists(ready); }));
  auto running = events_->for_id(id);
  ASSERT_FALSE(running.empty());
  pid_t pid = running[0]["pid"].get<pid_t>();
  if (threads()) {
    EXPECT_EQ(pid, server_of(id));  // the attempt is a thread of the resident worker
  } else {
    EXPECT_EQ(ppid_of(pid), server_of(id));  // a fork of it
  }
  exec_->cancel({{"executor_id", id}, {"grace_ms", 300}});
  json fin = wait_final(id);
  EXPECT_EQ(fin["state"], "cancelled");
  if (threads()) {
    EXPECT_EQ(status_of("c")["status"], "failed");  // the thread ended the attempt and said so
  } else {
    EXPECT_TRUE(eventually([&] { return !alive(pid); }, 5s));
  }
  pid_t task_shell = static_cast<pid_t>(std::stol(read_file(shell)));
  EXPECT_TRUE(eventually([&] { return !alive(task_shell); }, 5s)) << "the task's shell survived the cancel";
}

TEST_P(ResidentWorkerTest, AnAttemptOutlivesItsResidentWorkerOnlyAsAFork) {
  fs::path go = dir_ / "go", shell = dir_ / "shell.pid";
  auto id = dispatch(
      task("d", "echo $$ > " + shell.string() + "; while [ ! -e " + go.string() + " ]; do sleep 0.05; done; echo 7"));
  ASSERT_TRUE(eventually([&] { return !events_->for_id(id).empty() && !read_file(shell).empty(); }));
  // A thread attempt's task is known to the executor once the worker reported its process group.
  if (threads()) {
    ASSERT_TRUE(eventually([&] { return exec_->status({{"executor_id", id}})["task_pid"].is_number(); }));
  }
  pid_t task_shell = static_cast<pid_t>(std::stol(read_file(shell)));
  pid_t server = server_of(id);
  ::kill(server, SIGKILL);
  EXPECT_TRUE(eventually([&] { return !alive(server); }, 5s));
  if (!threads()) std::ofstream(go) << "";
  // A fork: pushed through a pidfd once the orphan ends; its status file has the result. A thread died with the
  // resident worker: the attempt is lost at once and its orphaned task is killed, so it cannot run on unobserved.
  json fin = wait_final(id);
  EXPECT_EQ(fin["state"], "failed");
  EXPECT_TRUE(fin["exit_code"].is_null());
  EXPECT_NE(fin["message"].get<std::string>().find("resident worker"), std::string::npos) << fin;
  if (threads()) {
    EXPECT_TRUE(eventually([&] { return !alive(task_shell); }, 5s)) << "the orphaned task survived";
    json st = status_of("d");
    EXPECT_FALSE(st.is_object() && st.value("status", "") == "success") << st;
  } else {
    EXPECT_EQ(status_of("d")["status"], "success");
  }
  // The next attempt starts a new resident worker.
  auto next = dispatch(task("e", "true"));
  EXPECT_NE(server_of(next), server);
  EXPECT_EQ(wait_final(next)["state"], "succeeded");
}

TEST_P(ResidentWorkerTest, AResidentWorkerThatDoesNotAnswerIsAbandoned) {
  auto ex = load({{"resident_answer_ms", 1000}});
  auto first = dispatch(*ex, task("s1", "true"));
  EXPECT_EQ(wait_final(first)["state"], "succeeded");
  pid_t stuck = server_of(first);
  ASSERT_EQ(::kill(stuck, SIGSTOP), 0);
  auto next = dispatch(*ex, task("s2", "echo 2"));  // no pid within 1 s: a new resident worker takes it
  EXPECT_NE(server_of(next), stuck);
  EXPECT_EQ(wait_final(next)["state"], "succeeded");
  EXPECT_EQ(status_of("s2")["status"], "success");
  ::kill(stuck, SIGKILL);
  EXPECT_TRUE(eventually([&] { return !alive(stuck); }, 5s));
}

TEST_P(ResidentWorkerTest, DestroyReapsAnIdleResidentWorker) {
  auto ex = load(json::object());
  auto id = dispatch(*ex, task("z", "true"));
  EXPECT_EQ(wait_final(id)["state"], "succeeded");
  pid_t server = server_of(id);
  ex.reset();  // host shutdown: stdin closes, the idle worker exits and is reaped (no zombie under a non-reaping init)
  EXPECT_FALSE(fs::exists("/proc/" + std::to_string(server))) << "resident worker " << server << " left a zombie";
}

TEST_P(ResidentWorkerTest, AnIdleResidentWorkerExits) {
  auto ex = load({{"resident_idle_ms", 200}});
  auto id = dispatch(*ex, task("f", "true"));
  EXPECT_EQ(wait_final(id)["state"], "succeeded");
  pid_t server = server_of(id);
  EXPECT_TRUE(eventually([&] { return !alive(server); }, 5s)) << "resident worker " << server << " stayed";
}

TEST_P(ResidentWorkerTest, ManyConcurrentAttemptsReportedOnce) {
  constexpr int kTasks = 40;
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) ids.push_back(dispatch(task("m" + std::to_string(i), "echo " + std::to_string(i))));
  for (const auto& id : ids) {
    EXPECT_EQ(wait_final(id)["state"], "succeeded");
    EXPECT_EQ(events_->for_id(id).size(), 2u);
  }
  for (int i = 0; i < kTasks; ++i) EXPECT_EQ(status_of("m" + std::to_string(i))["status"], "success");
}

TEST_P(ResidentWorkerTest, ResidentWorkerCanBeTurnedOff) {
  auto ex = load({{"resident_worker", false}, {"kill_on_destroy", true}});
  auto id = dispatch(*ex, task("g", "true"));
  EXPECT_NE(id[0], 'w');  // a directly spawned ork-worker: "<pid>:<nonce>-<n>"
  EXPECT_EQ(wait_final(id)["state"], "succeeded");
  EXPECT_EQ(status_of("g")["status"], "success");
}

INSTANTIATE_TEST_SUITE_P(Modes, ResidentWorkerTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Threads" : "Forks"; });

}  // namespace

namespace {

TEST(ResidentWorkerProtocol, MalformedRequestsDoNotStopIt) {
  // Garbage, a request with no usable env, then end of input: it answers what it can and exits cleanly.
  std::string cmd =
      std::string("printf 'not json\\n{\"op\":\"run\"}\\n{\"op\":\"run\",\"id\":\"x\",\"env\":5}\\n' | ") +
      ORK_WORKER_PATH + " --serve 2>/dev/null; echo \"rc=$?\"";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  EXPECT_NE(out.find("{\"id\":\"x\",\"pid\":"), std::string::npos) << out;
  EXPECT_NE(out.find("{\"exit_code\":2,\"id\":\"x\"}"), std::string::npos) << out;  // no spec: a usage error
  EXPECT_NE(out.find("rc=0"), std::string::npos) << out;
}

}  // namespace
