// ork-worker end to end: the real binary against the object-local plugin in a temp dir, shell and python runtimes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
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

std::string pyenv_python() {
  const char* root = std::getenv("PYENV_ROOT");
  const char* home = std::getenv("HOME");
  std::string r = root && *root ? root : (home ? std::string(home) + "/.pyenv" : "");
  std::string py = r + "/versions/3.11.7/bin/python3";
  return !r.empty() && ::access(py.c_str(), X_OK) == 0 ? py : "";
}

bool has_pydantic(const std::string& python) {
  return ::access(python.c_str(), X_OK) == 0 &&
         std::system((python + " -c 'import pydantic' >/dev/null 2>&1").c_str()) == 0;
}

// The interpreters the python cases run under: the pyenv one (pydantic 2; "" = the worker's own choice) and Debian's
// /usr/bin/python3 when python3-pydantic (pydantic 1) is installed.
const std::vector<std::string>& pythons() {
  static const std::vector<std::string> list = [] {
    std::vector<std::string> v{pyenv_python()};
    if (has_pydantic("/usr/bin/python3"))
      v.push_back("/usr/bin/python3");
    else
      std::cout << "[   NOTE   ] /usr/bin/python3 has no pydantic (apt-get install python3-pydantic): "
                   "the pydantic 1 cases are not run\n";
    return v;
  }();
  return list;
}

std::vector<std::pair<std::string, bool>> python_modes() {
  std::vector<std::pair<std::string, bool>> out;
  for (const auto& py : pythons())
    for (bool warm : {true, false}) out.emplace_back(py, warm);
  return out;
}

// Processes of group `pgid` that are still alive (zombies waiting for a reaper do not count).
int live_in_group(pid_t pgid) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string stat = read_text(e.path() / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream in(stat.substr(close + 2));
    char state = 0;
    long ppid = 0, pgrp = 0;
    in >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != 'Z' && state != 'X') ++n;
  }
  return n;
}

struct Result {
  int exit_code = -1;
  json status;
  std::optional<json> output;
  std::string log;
  std::string worker_stderr;
  double seconds = 0;
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("ORK_PLUGIN_PATH", ORK_BINARY_DIR "/lib", 0);
    root_ = fs::temp_directory_path() / ("ork-worker-test-" + ork::new_uuid());
    project_ = root_ / "project";
    fs::create_directories(root_ / "store");
    fs::create_directories(project_);
    store_config_ = {{"root", (root_ / "store").string()}};
    store_ = ork::load_plugin<ork::ObjectProxy>("object", "ork-object-local", store_config_);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void write(const std::string& rel, const std::string& text, bool executable = false) {
    fs::path p = project_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    if (executable) fs::permissions(p, fs::perms::owner_all, fs::perm_options::add);
  }

  // A spec with fresh ids, the task keys under runs/{run}/{task}/, then `fields` on top.
  json make_spec(const json& fields) {
    std::string run = ork::new_uuid(), task = ork::new_uuid(), dir = "runs/" + run + "/" + task + "/";
    json s = {{"task_id", task},
              {"run_id", run},
              {"task_name", "t"},
              {"workflow_name", "wf"},
              {"executor", "shell"},
              {"file", nullptr},
              {"command", nullptr},
              {"function", nullptr},
              {"config_file", nullptr},
              {"base_dir", project_.string()},
              {"input", json::object()},
              {"upstream", json::object()},
              {"env", json::object()},
              {"timeout_seconds", 60},
              {"parallel_index", nullptr},
              {"parallel_count", nullptr},
              {"attempt", 1},
              {"created_at", ork::now_str()},
              {"output_key", dir + "output.json"},
              {"status_key", dir + "status.json"},
              {"log_key", dir + "attempt-1.log"}};
    s.update(fields);
    return s;
  }
  std::string spec_key(const json& spec) const {
    return "runs/" + spec["run_id"].get<std::string>() + "/" + spec["task_id"].get<std::string>() + "/spec.json";
  }

  // Starts ork-worker for `spec` (stored first); its stdout+stderr go to a file read by finish().
  pid_t start(const json& spec, const Env& extra = {}, bool with_defaults = true) {
    if (spec.is_object()) store_->put_json(spec_key(spec), spec);
    Env env;
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      auto eq = kv.find('=');
      if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    if (with_defaults) {
      env["ORK_TASK_SPEC_PATH"] = spec_key(spec);
      env["ORK_OBJECT_STORE"] = json{{"library", "ork-object-local"}, {"config", store_config_}}.dump();
    }
    for (const auto& [k, v] : extra) env[k] = v;
    std::vector<std::string> kv;
    for (const auto& [k, v] : env) kv.push_back(k + "=" + v);
    std::vector<char*> envp, argv{const_cast<char*>(kWorker.c_str()), nullptr};
    for (auto& s : kv) envp.push_back(s.data());
    envp.push_back(nullptr);
    stderr_file_ = (root_ / ("worker-" + ork::new_uuid() + ".log")).string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, stderr_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, kWorker.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    check_spawn(rc);
    started_ = Clock::now();
    return pid;
  }

  Result finish(pid_t pid, const json& spec) {
    Result r;
    int st = 0;
    ::waitpid(pid, &st, 0);
    r.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.worker_stderr = read_text(stderr_file_);
    if (spec.is_object()) {
      r.status = store_->get_json(spec["status_key"]).value_or(json());
      r.output = ork::test::attempt_output(*store_, r.status, spec["output_key"]);
      r.log = store_->get(spec["log_key"]).value_or("");
    }
    return r;
  }

  Result run(const json& spec, const Env& extra = {}) { return finish(start(spec, extra), spec); }

  static void check_spawn(int rc) { ASSERT_EQ(rc, 0) << "cannot start " << kWorker << ": " << std::strerror(rc); }

  // Python cases run once per interpreter, through the fork-server and spawned directly; `check` gets each result.
  template <class F>
  void for_each_python(const json& fields, F check) {
    for (const auto& [py, warm] : python_modes()) {
      SCOPED_TRACE("python: " + (py.empty() ? std::string("(worker default)") : py) +
                   (warm ? ", fork-server" : ", spawned"));
      Env env{{"ORK_PYTHON_FORKSERVER", warm ? "1" : "0"},
              {"ORK_PYTHON_FORKSERVER_DIR", (root_ / "forkservers").string()},
              {"ORK_PYTHON_FORKSERVER_IDLE", "3"}};
      if (!py.empty()) env["ORK_PYTHON"] = py;
      Result r = run(make_spec(fields), env);
      EXPECT_EQ(r.log.find("fork-server not used"), std::string::npos) << r.log;
      if (!py.empty()) {
        EXPECT_NE(r.log.find("python: " + py + " "), std::string::npos) << r.log;
      }
      check(r);
    }
  }

  fs::path root_, project_;
  json store_config_;
  std::unique_ptr<ork::ObjectProxy> store_;
  std::string stderr_file_;
  Clock::time_point started_;
};

#define EXPECT_SUCCESS(r)                                                      \
  do {                                                                         \
    EXPECT_EQ((r).exit_code, 0) << (r).worker_stderr;                          \
    EXPECT_EQ((r).status.value("status", ""), "success") << (r).status.dump(); \
  } while (0)

#define EXPECT_FAILED(r, type)                                                                \
  do {                                                                                        \
    EXPECT_EQ((r).exit_code, 1) << (r).worker_stderr;                                         \
    EXPECT_EQ((r).status.value("status", ""), "failed") << (r).status.dump();                 \
    EXPECT_EQ((r).status["error"].value("type", ""), std::string(type)) << (r).status.dump(); \
  } while (0)

// ---- shell ----

TEST_F(WorkerTest, ShellOutputIsTheLastStdoutLineWhenItIsJson) {
  auto r = run(make_spec({{"command", "echo \"pi=[$ORK_PARALLEL_INDEX]\"; echo '{\"a\": 1}'"}}));
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output);
  EXPECT_EQ(*r.output, json({{"a", 1}}));
  EXPECT_EQ(r.status["attempt"], 1);
  EXPECT_TRUE(r.status["error"].is_null());
  EXPECT_LE(r.status["started_at"].get<std::string>(), r.status["finished_at"].get<std::string>());
  EXPECT_NO_THROW(ork::parse_time(r.status["heartbeat"].get<std::string>()));
  EXPECT_NE(r.log.find("pi=[]"), std::string::npos) << "a null parallel_index is an empty variable";
}

TEST_F(WorkerTest, SmallOutputsAreInsideTheStatusLargeOnesInOutputJson) {
  json spec = make_spec({{"command", "echo '{\"small\": 1}'"}});
  auto r = run(spec);
  EXPECT_SUCCESS(r);
  EXPECT_EQ(r.status["output"], json({{"small", 1}}));
  EXPECT_FALSE(store_->get(spec["output_key"])) << "no output.json for a small output";

  // 100 KB of output (over the 64 KiB inline limit): output.json, written before the status, which has no copy.
  json big_spec = make_spec({{"command", "printf '{\"big\": \"%0100000d\"}' 0 > \"$ORK_OUTPUT_FILE\""}});
  auto b = run(big_spec);
  EXPECT_SUCCESS(b);
  EXPECT_FALSE(b.status.contains("output")) << "a large output is not repeated in the status";
  auto file = store_->get_json(big_spec["output_key"]);
  ASSERT_TRUE(file);
  EXPECT_EQ((*file)["big"].get<std::string>().size(), 100000u);
}

TEST_F(WorkerTest, ShellOutputFileWinsOverStdout) {
  auto r = run(make_spec({{"command", "echo '{\"x\": [1, 2]}' > \"$ORK_OUTPUT_FILE\"; echo '{\"not\": \"this\"}'"}}));
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output);
  EXPECT_EQ(*r.output, json({{"x", {1, 2}}}));
}

TEST_F(WorkerTest, ShellOrkOutputPrefixAndNonJsonLastLine) {
  auto r = run(make_spec({{"command", "echo 'ORK_OUTPUT:{\"y\": true}'; echo trailing words"}}));
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output);
  EXPECT_EQ(*r.output, json({{"y", true}}));

  auto n = run(make_spec({{"command", "echo done"}}));
  EXPECT_SUCCESS(n);
  ASSERT_TRUE(n.output);
  EXPECT_TRUE(n.output->is_null());
}

TEST_F(WorkerTest, ShellNonZeroExitFailsWithExitCodeDetails) {
  auto r = run(make_spec({{"command", "echo partial; echo oops-on-stderr >&2; exit 3"}}));
  EXPECT_FAILED(r, "exit_code");
  const json& e = r.status["error"];
  EXPECT_EQ(e["message"], "command exited with code 3");
  EXPECT_EQ(e["details"]["exit_code"], 3);
  EXPECT_NE(e["details"]["stderr_tail"].get<std::string>().find("oops-on-stderr"), std::string::npos);
  EXPECT_FALSE(r.output) << "no output.json for a failed task";
  EXPECT_FALSE(r.status["finished_at"].is_null());
}

TEST_F(WorkerTest, ShellInputArrivesOnStdinAndInEnv) {
  json input = {{"n", 5}, {"s", "h\u00e9llo"}, {"fetch", {{"data", "x"}}}};
  auto r =
      run(make_spec({{"input", input},
                     {"command", "IN=$(cat); printf '{\"stdin\": %s, \"env\": %s}\\n' \"$IN\" \"$ORK_INPUT_JSON\""}}));
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output);
  EXPECT_EQ((*r.output)["stdin"], input);
  EXPECT_EQ((*r.output)["env"], input);
}

TEST_F(WorkerTest, ShellScriptFileExecutableOrNot) {
  write("tasks/echo.sh", "#!/bin/sh\ncat\necho\n", true);
  write("tasks/plain.sh", "echo '{\"plain\": true}'\n");
  auto a = run(make_spec({{"file", "tasks/echo.sh"}, {"input", {{"k", "v"}}}}));
  EXPECT_SUCCESS(a);
  ASSERT_TRUE(a.output);
  EXPECT_EQ(*a.output, json({{"k", "v"}}));
  auto b = run(make_spec({{"file", "tasks/plain.sh"}}));
  EXPECT_SUCCESS(b);
  ASSERT_TRUE(b.output);
  EXPECT_EQ(*b.output, json({{"plain", true}}));
  auto c = run(make_spec({{"file", "tasks/missing.sh"}}));
  EXPECT_FAILED(c, "spec_error");
}

TEST_F(WorkerTest, SpecEnvAndContextVariablesReachTheTaskButSecretsAreNotLogged) {
  const std::string secret = "s3cr3t-value-123";
  auto r = run(make_spec(
      {{"env", {{"GREETING", "hi there"}, {"SECRET_TOKEN", secret}}},
       {"task_name", "extract"},
       {"attempt", 3},
       {"parallel_index", 2},
       {"parallel_count", 4},
       {"command",
        "printf '{\"g\":\"%s\",\"task\":\"%s\",\"attempt\":\"%s\",\"pi\":\"%s\",\"pc\":\"%s\",\"wf\":\"%s\","
        "\"id\":\"%s\",\"run\":\"%s\",\"store\":\"%s\",\"secret_len\":%s}\\n' \"$GREETING\" \"$ORK_TASK_NAME\" "
        "\"$ORK_ATTEMPT\" \"$ORK_PARALLEL_INDEX\" \"$ORK_PARALLEL_COUNT\" \"$ORK_WORKFLOW_NAME\" \"$ORK_TASK_ID\" "
        "\"$ORK_RUN_ID\" \"$ORK_OBJECT_STORE\" \"${#SECRET_TOKEN}\""}}));
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output);
  const json& o = *r.output;
  EXPECT_EQ(o["g"], "hi there");
  EXPECT_EQ(o["task"], "extract");
  EXPECT_EQ(o["attempt"], "3");
  EXPECT_EQ(o["pi"], "2");
  EXPECT_EQ(o["pc"], "4");
  EXPECT_EQ(o["wf"], "wf");
  EXPECT_FALSE(o["id"].get<std::string>().empty());
  EXPECT_FALSE(o["run"].get<std::string>().empty());
  EXPECT_EQ(o["store"], "") << "the object-store reference is not passed to tasks";
  EXPECT_EQ(o["secret_len"], secret.size());
  EXPECT_EQ(r.log.find(secret), std::string::npos);
  EXPECT_EQ(r.worker_stderr.find(secret), std::string::npos);
  EXPECT_EQ(r.status.dump().find(secret), std::string::npos);
}

TEST_F(WorkerTest, SecretsFromTheHostReachTheTaskMaskedEverywhere) {
  const std::string token = "tk-51e0c9d2-secret", multi = "line-one-9a8b\nline-two-7c6d";
  json secrets = {{"env", {{"TOKEN", token}}},
                  {"files", {{{"name", "sa"}, {"path", "creds/sa.json"}, {"value", multi}}}}};
  auto r = run(make_spec({{"env", {{"PLAIN", "p"}}},
                          {"command",
                           "f=\"$ORK_SECRETS_DIR/creds/sa.json\"; echo \"dir $ORK_SECRETS_DIR\" > secrets_dir; "
                           "stat -c %a \"$f\" > mode; echo \"token $TOKEN\"; echo \"first $(head -n1 \"$f\")\"; echo "
                           "\"second $(tail -n1 \"$f\")\"; "
                           "echo \"host: ${ORK_SECRET_OTHER:-none} bundle: ${ORK_TASK_SECRETS:-none}\"; "
                           "echo \"{\\\"t\\\": \\\"$TOKEN\\\", \\\"p\\\": \\\"$PLAIN\\\"}\""}}),
               {{"ORK_TASK_SECRETS", secrets.dump()}, {"ORK_SECRET_OTHER", "host-only-value"}});
  EXPECT_SUCCESS(r);
  EXPECT_EQ(*r.output, json({{"t", "***"}, {"p", "p"}}));
  EXPECT_NE(r.log.find("token ***"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("token ***\nfirst ***\nsecond ***\n"), std::string::npos)
      << r.log;  // each line of a multi-line secret
  EXPECT_NE(r.log.find("host: none bundle: none"), std::string::npos) << r.log;
  EXPECT_EQ(read_text(project_ / "mode"), "600\n");
  std::string dir = read_text(project_ / "secrets_dir").substr(4);
  dir.pop_back();
  EXPECT_FALSE(fs::exists(dir)) << "secret files are removed after the attempt";
  for (const std::string& s : {token, std::string("line-one-9a8b"), std::string("line-two-7c6d")}) {
    EXPECT_EQ(r.log.find(s), std::string::npos) << s;
    EXPECT_EQ(r.worker_stderr.find(s), std::string::npos) << s;
    EXPECT_EQ(r.output->dump().find(s), std::string::npos) << s;
  }
}

TEST_F(WorkerTest, SecretsInAFailureAreMasked) {
  auto r = run(make_spec({{"command", "echo \"login failed for $TOKEN\" >&2; exit 4"}}),
               {{"ORK_TASK_SECRETS", json{{"env", {{"TOKEN", "pw-3e1f"}}}}.dump()}});
  EXPECT_FAILED(r, "exit_code");
  EXPECT_EQ(r.status.dump().find("pw-3e1f"), std::string::npos) << r.status.dump();
  EXPECT_NE(r.status.dump().find("login failed for ***"), std::string::npos) << r.status.dump();
}

TEST_F(WorkerTest, BadSecretBundleIsAUsageError) {
  auto r = run(make_spec({{"command", "true"}}), {{"ORK_TASK_SECRETS", "not json"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.worker_stderr.find("ORK_TASK_SECRETS must be a JSON object"), std::string::npos) << r.worker_stderr;
}

TEST_F(WorkerTest, TimeoutKillsTheTaskQuickly) {
  auto r = run(make_spec({{"timeout_seconds", 1}, {"command", "sleep 30"}}));
  EXPECT_FAILED(r, "timeout");
  EXPECT_EQ(r.status["error"]["message"], "execution timeout");
  EXPECT_LT(r.seconds, 8.0);
}

TEST_F(WorkerTest, LogHoldsStdoutAndStderrAndIsTeedToTheWorkerStderr) {
  auto r = run(make_spec({{"command", "echo out-line; echo err-line >&2"}}));
  EXPECT_SUCCESS(r);
  for (const char* s : {"out-line", "err-line"}) {
    EXPECT_NE(r.log.find(s), std::string::npos) << r.log;
    EXPECT_NE(r.worker_stderr.find(s), std::string::npos) << r.worker_stderr;
  }
}

TEST_F(WorkerTest, HeartbeatRefreshesStatusAndUploadsTheLogWhileRunning) {
  json spec = make_spec({{"command", "echo early-line; sleep 1.5"}});
  pid_t pid = start(spec, {{"ORK_HEARTBEAT_INTERVAL_MS", "100"}});
  std::set<std::string> beats;
  bool log_seen = false;
  int st = 0;
  while (::waitpid(pid, &st, WNOHANG) == 0) {
    if (auto s = store_->get_json(spec["status_key"]); s && (*s)["status"] == "running")
      beats.insert((*s)["heartbeat"].get<std::string>());
    if (auto l = store_->get(spec["log_key"]); l && l->find("early-line") != std::string::npos) log_seen = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_GE(beats.size(), 2u) << "distinct heartbeats seen while running";
  EXPECT_TRUE(log_seen) << "the log is uploaded with the heartbeat";
  EXPECT_EQ(store_->get_json(spec["status_key"]).value_or(json())["status"], "success");
}

TEST_F(WorkerTest, SigtermCancelsTheTaskAndKillsItsProcessGroup) {
  json spec = make_spec({{"command", "echo $$ > pgid.txt; sleep 30"}});
  pid_t pid = start(spec);
  auto until = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < until && !(fs::exists(project_ / "pgid.txt") && fs::file_size(project_ / "pgid.txt") > 0))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(project_ / "pgid.txt"));
  pid_t pgid = std::stoi(read_text(project_ / "pgid.txt"));
  auto sent = Clock::now();
  ::kill(pid, SIGTERM);
  Result r = finish(pid, spec);
  EXPECT_EQ(r.exit_code, 143) << r.worker_stderr;
  EXPECT_EQ(r.status["status"], "failed");
  EXPECT_EQ(r.status["error"]["type"], "cancelled");
  EXPECT_EQ(r.status["error"]["message"], "cancelled");
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - sent).count(), 5.0);
  auto gone_by = Clock::now() + std::chrono::seconds(3);
  while (live_in_group(pgid) > 0 && Clock::now() < gone_by) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(live_in_group(pgid), 0) << "the task's process group is gone";
}

TEST_F(WorkerTest, UnknownExecutorIsASpecError) {
  auto r = run(make_spec({{"executor", "cobol"}, {"command", "true"}}));
  EXPECT_FAILED(r, "spec_error");
}

// A plain container task run in place (what exec-docker starts inside the task's image, ORK_CONTAINER_TASK=1).
TEST_F(WorkerTest, ContainerTaskInPlaceWritesInputFileAndReadsOutputFile) {
  fs::path in = root_ / "ctr" / "in" / "input.json", out = root_ / "ctr" / "out.json";
  json spec = make_spec(
      {{"executor", "container"},
       {"image", "example/img:1"},
       {"base_dir", "/nonexistent/on/this/side"},  // the host's dir: not needed in the container
       {"input", {{"to_file", in.string()}, {"n", 21}}},
       {"input_to_file", in.string()},
       {"output_from_file", out.string()},
       {"command", "test ! -e \"" + out.string() + "\" && sed 's/.*\"n\":\\([0-9]*\\).*/{\"twice\": \\1\\1}/' \"" +
                       in.string() + "\" > \"" + out.string() + "\"; echo not-the-output"}});
  auto r = run(spec, {{"ORK_CONTAINER_TASK", "1"}});
  EXPECT_SUCCESS(r);
  EXPECT_EQ(read_text(in.string()), R"({"n":21})") << "to_file is not part of the input";
  ASSERT_TRUE(r.output);
  EXPECT_EQ(*r.output, (json{{"twice", 2121}}));
}

TEST_F(WorkerTest, ContainerTaskInPlaceRunsTheImageDefaultCommandAndChecksTheOutputFile) {
  json spec = make_spec({{"executor", "container"}, {"image", "example/img:1"}, {"command", nullptr}});
  auto r = run(spec, {{"ORK_CONTAINER_TASK", "1"}, {"ORK_CONTAINER_DEFAULT_COMMAND", R"(["echo", "{\"d\": 1}"])"}});
  EXPECT_SUCCESS(r);
  ASSERT_TRUE(r.output);
  EXPECT_EQ(*r.output, (json{{"d", 1}}));

  json missing = make_spec({{"executor", "container"},
                            {"image", "example/img:1"},
                            {"command", "true"},
                            {"output_from_file", (root_ / "never-written.json").string()}});
  EXPECT_FAILED(run(missing, {{"ORK_CONTAINER_TASK", "1"}}), "output_error");
  // Without the flag (a worker outside a container executor) a container task is still refused.
  EXPECT_FAILED(run(make_spec({{"executor", "container"}, {"image", "x"}, {"command", "true"}})), "spec_error");
}

TEST_F(WorkerTest, MissingConfigurationExitsWithCode2) {
  json spec = make_spec({{"command", "true"}});
  auto no_spec = finish(start(spec, {{"ORK_TASK_SPEC_PATH", ""}}), nullptr);
  EXPECT_EQ(no_spec.exit_code, 2);
  EXPECT_NE(no_spec.worker_stderr.find("ORK_TASK_SPEC_PATH"), std::string::npos) << no_spec.worker_stderr;
  auto no_store = finish(start(spec, {{"ORK_OBJECT_STORE", ""}}), nullptr);
  EXPECT_EQ(no_store.exit_code, 2);
  auto bad_lib =
      finish(start(spec, {{"ORK_OBJECT_STORE", R"({"library": "ork-object-nope", "config": {}})"}}), nullptr);
  EXPECT_EQ(bad_lib.exit_code, 2);
  EXPECT_NE(bad_lib.worker_stderr.find("ork-object-nope"), std::string::npos) << bad_lib.worker_stderr;
  auto missing = finish(start(spec, {{"ORK_TASK_SPEC_PATH", "runs/none/none/spec.json"}}), nullptr);
  EXPECT_EQ(missing.exit_code, 2);
}

// ---- python ----

const char* kDataOps = R"(
def fetch_data(url: str) -> str:
    import requests
    response = requests.get(url)
    response.raise_for_status()
    return response.text

def summarize_data(text: str) -> dict:
    lines = text.split('\n')
    return {
        "total_chars": len(text),
        "total_lines": len(lines),
        "non_empty_lines": len([l for l in lines if l.strip()])
    }
)";

const char* kSummarize = R"(from ork import task
from pydantic import BaseModel
from src.data_ops import summarize_data

class FetchOutput(BaseModel):
    data: str

class Input(BaseModel):
    fetch: FetchOutput

class Output(BaseModel):
    total_chars: int
    total_lines: int
    non_empty_lines: int

@task
def main(input: Input) -> Output:
    stats = summarize_data(input.fetch.data)
    return Output(**stats)
)";

TEST_F(WorkerTest, PythonSeedSummarizeTaskWithPydanticModelsAndUpstreamInput) {
  write("src/__init__.py", "");
  write("src/data_ops.py", kDataOps);
  write("tasks/summarize.py", kSummarize);
  std::string data = "line one\nline two\n\nline four";
  json fetch_out = {{"data", data}};
  for_each_python(
      {{"executor", "python"},
       {"file", "tasks/summarize.py"},
       {"task_name", "summarize"},
       {"input", {{"fetch", fetch_out}}},
       {"upstream", {{"fetch", fetch_out}}}},
      [&](const Result& r) {
        EXPECT_SUCCESS(r);
        ASSERT_TRUE(r.output);
        EXPECT_EQ(*r.output, json({{"total_chars", data.size()}, {"total_lines", 4}, {"non_empty_lines", 3}}));
      });
}

TEST_F(WorkerTest, PythonContextLogMetricsAndPlainDictInput) {
  write("tasks/ctx.py", R"(from ork import task, Context

def helper():
    return 1

@task
def run_it(input: dict, ctx: Context) -> dict:
    ctx.log.info("ctx-log-line %s", ctx.task_name)
    ctx.metrics.record("rows", 42, labels={"attempt": ctx.attempt})
    print("printed-line")
    return {"keys": sorted(input), "task": ctx.task_name, "attempt": ctx.attempt, "wf": ctx.workflow_name,
            "pi": ctx.parallel_index, "pc": ctx.parallel_count, "run": ctx.run_id, "id": ctx.task_id}
)");
  for_each_python({{"executor", "python"},
                   {"file", "tasks/ctx.py"},
                   {"task_name", "process"},
                   {"attempt", 2},
                   {"parallel_index", 1},
                   {"parallel_count", 3},
                   {"input", {{"b", 1}, {"a", 2}}}},
                  [&](const Result& r) {
                    EXPECT_SUCCESS(r);
                    ASSERT_TRUE(r.output);
                    const json& o = *r.output;
                    EXPECT_EQ(o["keys"], json({"a", "b"}));
                    EXPECT_EQ(o["task"], "process");
                    EXPECT_EQ(o["attempt"], 2);
                    EXPECT_EQ(o["wf"], "wf");
                    EXPECT_EQ(o["pi"], 1);
                    EXPECT_EQ(o["pc"], 3);
                    EXPECT_FALSE(o["run"].get<std::string>().empty());
                    EXPECT_NE(r.log.find("[info] ctx-log-line process"), std::string::npos) << r.log;
                    EXPECT_NE(r.log.find("printed-line"), std::string::npos) << r.log;
                    EXPECT_NE(r.log.find("\"rows\""), std::string::npos) << r.log;
                  });
}

TEST_F(WorkerTest, PythonTaskErrorSurfacesMessageAndDetails) {
  write("tasks/bad.py", R"(from ork import task, TaskError

@task
def main(input):
    raise TaskError("Invalid input data", details={"field": "url", "n": 1})
)");
  for_each_python({{"executor", "python"}, {"file", "tasks/bad.py"}}, [&](const Result& r) {
    EXPECT_FAILED(r, "task_error");
    EXPECT_EQ(r.status["error"]["message"], "Invalid input data");
    EXPECT_EQ(r.status["error"]["details"], json({{"field", "url"}, {"n", 1}}));
  });
}

TEST_F(WorkerTest, PythonInputValidationError) {
  write("tasks/fetch.py", R"(from ork import task
from pydantic import BaseModel

class Input(BaseModel):
    url: str
    retries: int = 3

@task
def main(input: Input) -> dict:
    return {"url": input.url}
)");
  for_each_python({{"executor", "python"}, {"file", "tasks/fetch.py"}, {"input", {{"retries", "many"}}}},
                  [&](const Result& r) {
                    EXPECT_FAILED(r, "input_validation");
                    const json& d = r.status["error"]["details"];
                    ASSERT_TRUE(d["errors"].is_array()) << r.status.dump();
                    EXPECT_EQ(d["errors"].size(), 2u) << r.status.dump();
                    EXPECT_NE(r.status["error"]["message"].get<std::string>().find("url"), std::string::npos);
                  });
}

TEST_F(WorkerTest, PythonExceptionCarriesTheTraceback) {
  write("tasks/boom.py", "from ork import task\n\n@task\ndef main(input):\n    raise ValueError('boom')\n");
  for_each_python({{"executor", "python"}, {"file", "tasks/boom.py"}}, [&](const Result& r) {
    EXPECT_FAILED(r, "exception");
    EXPECT_EQ(r.status["error"]["message"], "ValueError: boom");
    EXPECT_NE(r.status["error"]["details"]["traceback"].get<std::string>().find("ValueError"), std::string::npos);
  });
}

TEST_F(WorkerTest, PythonFunctionModeCallsWithKeywordInput) {
  write("pkg/__init__.py", "");
  write("pkg/mathops.py", R"(
def add(a: int, b: int, ctx=None):
    ctx.log.info("adding")
    return {"sum": a + b, "task": ctx.task_name}

def echo(**kwargs):
    return kwargs
)");
  for_each_python(
      {{"executor", "python"}, {"function", "pkg.mathops:add"}, {"input", {{"a", 2}, {"b", 3}, {"unused", "x"}}}},
      [&](const Result& r) {
        EXPECT_SUCCESS(r);
        ASSERT_TRUE(r.output);
        EXPECT_EQ(*r.output, json({{"sum", 5}, {"task", "t"}}));
      });
  for_each_python({{"executor", "python"}, {"function", "pkg.mathops:echo"}, {"input", {{"k", 1}}}},
                  [&](const Result& r) {
                    EXPECT_SUCCESS(r);
                    ASSERT_TRUE(r.output);
                    EXPECT_EQ(*r.output, json({{"k", 1}}));
                  });
  for_each_python({{"executor", "python"}, {"function", "pkg.mathops:add"}, {"input", {{"a", 2}}}},
                  [&](const Result& r) { EXPECT_FAILED(r, "input_validation"); });
}

TEST_F(WorkerTest, PythonRunnerCrashIsAnExitCodeError) {
  for_each_python({{"executor", "python"}, {"file", "tasks/nothere.py"}},
                  [&](const Result& r) { EXPECT_FAILED(r, "spec_error"); });
  // A broken interpreter path: spawn fails.
  const std::string servers = (root_ / "forkservers").string();
  auto r = run(make_spec({{"executor", "python"}, {"file", "x.py"}}),
               {{"ORK_PYTHON", "/nonexistent/python3"}, {"ORK_PYTHON_FORKSERVER_DIR", servers}});
  EXPECT_FAILED(r, "spawn_error");
  // The interpreter dies without writing a result.
  auto d = run(make_spec({{"executor", "python"}, {"file", "x.py"}}),
               {{"ORK_PYTHON", "/bin/false"}, {"ORK_PYTHON_FORKSERVER_DIR", servers}});
  EXPECT_FAILED(d, "exit_code");
}

}  // namespace
