// The python runtime through the warm fork-server: the real ork-worker against the object-local plugin, with a
// private server folder per test. Concurrency, cancel, timeout, crashes, state isolation, a killed server, fallback.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "support/plugin_support.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Env = std::map<std::string, std::string>;
using Clock = std::chrono::steady_clock;

const std::string kWorker = ORK_BINARY_DIR "/bin/ork-worker";

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The interpreter: the pyenv one when present, else the worker's default.
std::string python() {
  const char* root = std::getenv("PYENV_ROOT");
  const char* home = std::getenv("HOME");
  std::string r = root && *root ? root : (home ? std::string(home) + "/.pyenv" : "");
  std::string py = r + "/versions/3.11.7/bin/python3";
  return !r.empty() && ::access(py.c_str(), X_OK) == 0 ? py : "python3";
}

bool alive(pid_t pid) {
  std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z' && stat[close + 2] != 'X';
}

bool gone_within(pid_t pid, std::chrono::milliseconds limit) {
  auto until = Clock::now() + limit;
  while (alive(pid) && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return !alive(pid);
}

// Fork-server processes whose command line names `dir` (their socket lives there).
std::vector<pid_t> server_pids(const fs::path& dir) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = read_text(e.path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find("ork.forkserver") != std::string::npos && cmd.find(dir.string() + "/") != std::string::npos &&
        alive(std::stoi(name)))
      out.push_back(std::stoi(name));
  }
  return out;
}

bool wait_for_file(const fs::path& p, std::chrono::seconds limit = std::chrono::seconds(20)) {
  auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    std::error_code ec;
    if (fs::exists(p, ec) && fs::file_size(p, ec) > 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

struct Result {
  int exit_code = -1;
  json status;
  std::optional<json> output;
  std::string log;
  std::string worker_stderr;
  double seconds = 0;
};

class ForkServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("ORK_PLUGIN_PATH", ORK_BINARY_DIR "/lib", 0);
    root_ = fs::temp_directory_path() / ("ork-forkserver-test-" + ork::new_uuid());
    project_ = root_ / "project";
    servers_ = root_ / "servers";
    fs::create_directories(root_ / "store");
    fs::create_directories(project_);
    store_config_ = {{"root", (root_ / "store").string()}};
    store_ = ork::load_plugin<ork::ObjectProxy>("object", "ork-object-local", store_config_);
    write("tasks/info.py", R"(import os, sys
from ork import task

@task
def main(input: dict, ctx) -> dict:
    print("stdout of", ctx.task_name)
    print("stderr of", ctx.task_name, file=sys.stderr)
    return {"i": input.get("i"), "pid": os.getpid(), "ppid": os.getppid(), "pgrp": os.getpgrp(),
            "cwd": os.getcwd(), "path0": sys.path[0], "greeting": os.environ.get("GREETING")}
)");
    write("tasks/sleepy.py", R"(import os, time
from ork import task

@task
def main(input: dict) -> dict:
    with open(input["pidfile"] + ".tmp", "w") as f:
        f.write("%d %d" % (os.getpid(), os.getppid()))
    os.rename(input["pidfile"] + ".tmp", input["pidfile"])
    time.sleep(input.get("seconds", 30))
    return {"slept": True}
)");
  }
  void TearDown() override {
    for (pid_t pid : server_pids(servers_)) ::kill(pid, SIGKILL);
    store_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void write(const std::string& rel, const std::string& text) {
    fs::path p = project_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

  json make_spec(const json& fields) {
    std::string run = ork::new_uuid(), task = ork::new_uuid(), dir = "runs/" + run + "/" + task + "/";
    json s = {{"task_id", task},
              {"run_id", run},
              {"task_name", "t"},
              {"workflow_name", "wf"},
              {"executor", "python"},
              {"file", "tasks/info.py"},
              {"base_dir", project_.string()},
              {"input", json::object()},
              {"upstream", json::object()},
              {"env", json::object()},
              {"timeout_seconds", 60},
              {"attempt", 1},
              {"output_key", dir + "output.json"},
              {"status_key", dir + "status.json"},
              {"log_key", dir + "attempt-1.log"}};
    s.update(fields);
    return s;
  }
  std::string spec_key(const json& spec) const {
    return "runs/" + spec["run_id"].get<std::string>() + "/" + spec["task_id"].get<std::string>() + "/spec.json";
  }

  struct Started {
    pid_t pid;
    json spec;
    std::string stderr_file;
    Clock::time_point at;
  };

  Started start(const json& spec, const Env& extra = {}) {
    store_->put_json(spec_key(spec), spec);
    Env env;
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      auto eq = kv.find('=');
      if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    env["ORK_TASK_SPEC_PATH"] = spec_key(spec);
    env["ORK_OBJECT_STORE"] = json{{"library", "ork-object-local"}, {"config", store_config_}}.dump();
    env["ORK_PYTHON"] = python();
    env["ORK_PYTHON_FORKSERVER_DIR"] = servers_.string();
    env["ORK_PYTHON_FORKSERVER_IDLE"] = "20";
    for (const auto& [k, v] : extra) env[k] = v;
    std::vector<std::string> kv;
    for (const auto& [k, v] : env) kv.push_back(k + "=" + v);
    std::vector<char*> envp, argv{const_cast<char*>(kWorker.c_str()), nullptr};
    for (auto& s : kv) envp.push_back(s.data());
    envp.push_back(nullptr);
    Started st{-1, spec, (root_ / ("worker-" + ork::new_uuid() + ".log")).string(), Clock::now()};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, st.stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&st.pid, kWorker.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    EXPECT_EQ(rc, 0) << std::strerror(rc);
    return st;
  }

  Result finish(const Started& s) {
    Result r;
    int st = 0;
    ::waitpid(s.pid, &st, 0);
    r.seconds = std::chrono::duration<double>(Clock::now() - s.at).count();
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.worker_stderr = read_text(s.stderr_file);
    r.status = store_->get_json(s.spec["status_key"]).value_or(json());
    r.output = ork::test::attempt_output(*store_, r.status, s.spec["output_key"]);
    r.log = store_->get(s.spec["log_key"]).value_or("");
    return r;
  }

  Result run(const json& spec, const Env& extra = {}) { return finish(start(spec, extra)); }

  fs::path root_, project_, servers_;
  json store_config_;
  std::unique_ptr<ork::ObjectProxy> store_;
};

#define EXPECT_SUCCESS(r)                                                                         \
  do {                                                                                            \
    EXPECT_EQ((r).exit_code, 0) << (r).worker_stderr;                                             \
    EXPECT_EQ((r).status.value("status", ""), "success") << (r).status.dump() << "\n" << (r).log; \
  } while (0)

#define EXPECT_FAILED(r, type)                                                                \
  do {                                                                                        \
    EXPECT_EQ((r).exit_code, 1) << (r).worker_stderr;                                         \
    EXPECT_EQ((r).status.value("status", ""), "failed") << (r).status.dump();                 \
    EXPECT_EQ((r).status["error"].value("type", ""), std::string(type)) << (r).status.dump(); \
  } while (0)

TEST_F(ForkServerTest, TaskRunsInAForkedChildWithItsOutputInTheLog) {
  Result r = run(make_spec({{"task_name", "info"}, {"input", {{"i", 7}}}, {"env", {{"GREETING", "hi"}}}}));
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output) << r.log;
  const json& o = *r.output;
  EXPECT_EQ(o["i"], 7);
  EXPECT_EQ(o["greeting"], "hi");
  EXPECT_EQ(o["cwd"], project_.string());
  EXPECT_EQ(o["path0"], project_.string());
  EXPECT_EQ(o["pgrp"], o["pid"]) << "the task leads its own process group";
  auto servers = server_pids(servers_);
  ASSERT_EQ(servers.size(), 1u) << "one server started on demand";
  EXPECT_EQ(o["ppid"], servers[0]) << "forked by the server, not spawned by the worker";
  EXPECT_NE(r.log.find("stdout of info"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("stderr of info"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("fork-server"), std::string::npos) << r.log;
  EXPECT_EQ(r.log.find("not used"), std::string::npos) << r.log;
  struct stat st {};
  ASSERT_EQ(::stat(servers_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "the socket folder is private";

  Result again = run(make_spec({{"input", {{"i", 8}}}}));
  EXPECT_SUCCESS(again);
  ASSERT_TRUE(again.output);
  EXPECT_EQ((*again.output)["ppid"], servers[0]) << "the second task reuses the warm server";
  EXPECT_NE((*again.output)["pid"], o["pid"]);
}

TEST_F(ForkServerTest, ManyConcurrentTasksStartOneServerAndAllSucceed) {
  constexpr int kTasks = 24;
  std::vector<Started> started;
  for (int i = 0; i < kTasks; ++i) started.push_back(start(make_spec({{"input", {{"i", i}}}})));
  std::set<int> seen, parents;
  for (auto& s : started) {
    Result r = finish(s);
    EXPECT_SUCCESS(r);
    if (!r.output) continue;
    seen.insert((*r.output)["i"].get<int>());
    parents.insert((*r.output)["ppid"].get<int>());
    EXPECT_EQ(r.log.find("not used"), std::string::npos) << r.log;
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kTasks));
  EXPECT_EQ(parents.size(), 1u) << "all tasks forked by one server: the start is race-free";
  EXPECT_EQ(server_pids(servers_).size(), 1u);
}

TEST_F(ForkServerTest, CancelStopsTheTaskProcessGroup) {
  const fs::path pidfile = root_ / "sleepy.pid";
  auto s = start(make_spec({{"file", "tasks/sleepy.py"}, {"input", {{"pidfile", pidfile.string()}}}}));
  ASSERT_TRUE(wait_for_file(pidfile));
  pid_t task_pid = std::stoi(read_text(pidfile));
  auto sent = Clock::now();
  ::kill(s.pid, SIGTERM);
  Result r = finish(s);
  EXPECT_EQ(r.exit_code, 143) << r.worker_stderr;
  EXPECT_EQ(r.status["error"]["type"], "cancelled") << r.status.dump();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - sent).count(), 5.0);
  EXPECT_TRUE(gone_within(task_pid, std::chrono::seconds(3)));
  EXPECT_EQ(server_pids(servers_).size(), 1u) << "the server outlives a cancelled task";
}

TEST_F(ForkServerTest, TimeoutStopsTheTask) {
  const fs::path pidfile = root_ / "sleepy.pid";
  Result r = run(
      make_spec({{"file", "tasks/sleepy.py"}, {"timeout_seconds", 1.5}, {"input", {{"pidfile", pidfile.string()}}}}));
  EXPECT_FAILED(r, "timeout");
  EXPECT_EQ(r.status["error"]["message"], "execution timeout");
  EXPECT_LT(r.seconds, 10.0);
  ASSERT_TRUE(fs::exists(pidfile));
  EXPECT_TRUE(gone_within(std::stoi(read_text(pidfile)), std::chrono::seconds(3)));
}

TEST_F(ForkServerTest, CrashingTasksAreExitCodeErrors) {
  write("tasks/crash.py", R"(import os, signal, sys
from ork import task

@task
def main(input: dict):
    print("dying now", file=sys.stderr)
    sys.stderr.flush()
    if input["how"] == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGSEGV)
)");
  Result e = run(make_spec({{"file", "tasks/crash.py"}, {"input", {{"how", "exit"}}}}));
  EXPECT_FAILED(e, "exit_code");
  EXPECT_EQ(e.status["error"]["details"]["exit_code"], 3);
  EXPECT_NE(e.status["error"]["details"]["stderr_tail"].get<std::string>().find("dying now"), std::string::npos);
  Result s = run(make_spec({{"file", "tasks/crash.py"}, {"input", {{"how", "segv"}}}}));
  EXPECT_FAILED(s, "exit_code");
  EXPECT_EQ(s.status["error"]["details"]["signal"], SIGSEGV);
  EXPECT_NE(s.status["error"]["message"].get<std::string>().find("SIGSEGV"), std::string::npos);
  EXPECT_EQ(server_pids(servers_).size(), 1u) << "a crashing task does not take the server down";
  EXPECT_SUCCESS(run(make_spec(json::object())));
}

TEST_F(ForkServerTest, ModuleStateDoesNotLeakToTheNextTask) {
  write("shared_state.py", "calls = []\n");
  write("tasks/stateful.py", R"(import sys
import ork.runner
from ork import task

@task
def main(input: dict) -> dict:
    first_import = "shared_state" not in sys.modules
    import shared_state
    shared_state.calls.append(input["n"])
    leaked = getattr(ork.runner, "LEAK", None)
    ork.runner.LEAK = input["n"]
    sys.path.append("/leaked/path")
    return {"calls": shared_state.calls, "first_import": first_import, "leaked": leaked,
            "path_leaked": sys.path.count("/leaked/path") > 1}
)");
  for (int n : {1, 2, 3}) {
    Result r = run(make_spec({{"file", "tasks/stateful.py"}, {"input", {{"n", n}}}}));
    EXPECT_SUCCESS(r);
    ASSERT_TRUE(r.output) << r.log;
    EXPECT_EQ((*r.output)["calls"], json::array({n}));
    EXPECT_EQ((*r.output)["first_import"], true);
    EXPECT_TRUE((*r.output)["leaked"].is_null()) << "a module the server preloaded keeps no task's changes";
    EXPECT_EQ((*r.output)["path_leaked"], false);
  }
  // A module the task edits between runs is imported fresh: never cached in the server.
  write("shared_state.py", "calls = ['edited']\n");
  Result r = run(make_spec({{"file", "tasks/stateful.py"}, {"input", {{"n", 4}}}}));
  ASSERT_TRUE(r.output) << r.log;
  EXPECT_EQ((*r.output)["calls"], json::array({"edited", 4}));
}

TEST_F(ForkServerTest, ServerKilledMidTaskFailsTheTaskAndTheNextTaskStartsANewServer) {
  const fs::path pidfile = root_ / "sleepy.pid";
  auto s = start(make_spec({{"file", "tasks/sleepy.py"}, {"input", {{"pidfile", pidfile.string()}}}}));
  ASSERT_TRUE(wait_for_file(pidfile));
  std::istringstream ids(read_text(pidfile));
  pid_t task_pid = 0, server_pid = 0;
  ids >> task_pid >> server_pid;
  ASSERT_GT(server_pid, 1);
  ::kill(server_pid, SIGKILL);
  Result r = finish(s);
  EXPECT_FAILED(r, "exit_code");
  EXPECT_EQ(r.status["error"]["details"]["signal"], SIGKILL) << r.status.dump();
  EXPECT_NE(r.log.find("fork-server exited while the task was running"), std::string::npos) << r.log;
  EXPECT_LT(r.seconds, 15.0);
  EXPECT_TRUE(gone_within(task_pid, std::chrono::seconds(3)));

  Result next = run(make_spec(json::object()));
  EXPECT_SUCCESS(next);
  ASSERT_TRUE(next.output);
  EXPECT_NE((*next.output)["ppid"], server_pid);
  EXPECT_EQ(next.log.find("not used"), std::string::npos) << "the stale socket is replaced: " << next.log;
}

TEST_F(ForkServerTest, DisabledRunsTheInterpreterDirectly) {
  auto s = start(make_spec({{"input", {{"i", 1}}}}), {{"ORK_PYTHON_FORKSERVER", "0"}});
  Result r = finish(s);
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output);
  EXPECT_EQ((*r.output)["ppid"], s.pid) << "spawned by the worker itself";
  EXPECT_EQ(r.log.find("fork-server"), std::string::npos) << r.log;
  EXPECT_TRUE(server_pids(servers_).empty());
  EXPECT_FALSE(fs::exists(servers_)) << "nothing created when disabled";
}

TEST_F(ForkServerTest, AnUnusableFolderFallsBackToSpawningWithANote) {
  fs::create_directories(servers_);
  fs::permissions(servers_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  auto s = start(make_spec(json::object()));
  Result r = finish(s);
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output);
  EXPECT_EQ((*r.output)["ppid"], s.pid);
  EXPECT_NE(r.log.find("python fork-server not used"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("not private"), std::string::npos) << r.log;

  // An interpreter that cannot run the server: noted, then the spawn path reports what it always did.
  fs::permissions(servers_, fs::perms::owner_all);
  Result bad = run(make_spec(json::object()), {{"ORK_PYTHON", "/bin/false"}});
  EXPECT_FAILED(bad, "exit_code");
  EXPECT_NE(bad.log.find("python fork-server not used"), std::string::npos) << bad.log;
}

TEST_F(ForkServerTest, IdleServerExitsAndRemovesItsSocket) {
  Result r = run(make_spec(json::object()), {{"ORK_PYTHON_FORKSERVER_IDLE", "1"}});
  EXPECT_SUCCESS(r);
  auto until = Clock::now() + std::chrono::seconds(20);
  while (!server_pids(servers_).empty() && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(server_pids(servers_).empty()) << "the server exits after its idle time";
  for (const auto& e : fs::directory_iterator(servers_))
    EXPECT_NE(e.path().extension(), ".sock") << e.path() << " left behind";
  EXPECT_SUCCESS(run(make_spec(json::object())));  // and the next task starts a new one
}

TEST_F(ForkServerTest, PreloadedModulesAreImportedByTheServer) {
  write("heavy_lib.py", "import os\nLOADED_IN = os.getpid()\n");
  write("tasks/preload.py", R"(import os
from ork import task

@task
def main(input: dict) -> dict:
    import heavy_lib
    return {"loaded_in": heavy_lib.LOADED_IN, "me": os.getpid(), "parent": os.getppid()}
)");
  Result r = run(make_spec({{"file", "tasks/preload.py"}}), {{"ORK_PYTHON_PRELOAD", "heavy_lib"}});
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output) << r.log;
  EXPECT_EQ((*r.output)["loaded_in"], (*r.output)["parent"]) << "imported once, in the server";
}

}  // namespace
