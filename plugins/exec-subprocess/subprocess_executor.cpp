// ork-exec-subprocess: runs each task attempt as a local child process in its own process group.
// Completion is pushed through host notify by one background thread blocked in poll() on the children's pidfds (plus
// an eventfd to wake it); it also fires the SIGKILL deadlines of cancelled attempts. Nothing is polled while idle.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ork/plugin.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "unique_fd.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace {

namespace fs = std::filesystem;
using ork::json;
using Clock = std::chrono::steady_clock;

constexpr int64_t kDefaultGraceMs = 10000;
constexpr size_t kMaxFinished = 10000;  // finished attempts kept for status(); older ones are forgotten

using ork::common::UniqueFd;

void check_spawn(int rc, const char* what);

// posix_spawn attributes and file actions for a child in its own process group (pgid = pid) with an empty signal
// mask and default dispositions for the signals a host may catch or ignore; destroyed on scope exit.
class SpawnSetup {
 public:
  SpawnSetup() {
    ::posix_spawnattr_init(&attr_);
    ::posix_spawn_file_actions_init(&actions_);
    check_spawn(
        ::posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
        "spawnattr flags");
    check_spawn(::posix_spawnattr_setpgroup(&attr_, 0), "spawnattr pgroup");
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s :
         {SIGPIPE, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU})
      sigaddset(&defaults, s);
    check_spawn(::posix_spawnattr_setsigmask(&attr_, &none), "spawnattr sigmask");
    check_spawn(::posix_spawnattr_setsigdefault(&attr_, &defaults), "spawnattr sigdefault");
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  ~SpawnSetup() {
    ::posix_spawn_file_actions_destroy(&actions_);
    ::posix_spawnattr_destroy(&attr_);
  }
  posix_spawnattr_t* attr() { return &attr_; }
  posix_spawn_file_actions_t* actions() { return &actions_; }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

void check_spawn(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string("exec-subprocess: ") + what + ": " + ::strerror(rc));
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// A path segment taken from the ExecutionConfig (run_id, task_id): no separators, no dot names.
std::string safe_segment(const json& cfg, const char* field) {
  if (!cfg.contains(field) || !cfg[field].is_string())
    ork::throw_invalid(std::string("exec-subprocess: log_dir needs a string \"") + field + "\"");
  std::string s = cfg[field].get<std::string>();
  if (s.empty() || s == "." || s == ".." || s.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
    ork::throw_invalid(std::string("exec-subprocess: ") + field + " '" + s + "' is not usable in a file name");
  return s;
}

std::string env_value(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// This process's environment as a map.
std::map<std::string, std::string> environ_map() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos && eq > 0)
      env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

// One dispatched attempt.
struct WorkerServer;

struct Child {
  pid_t pid = -1;  // also the process group id; -1 until a resident worker reports it
  UniqueFd pidfd;
  std::shared_ptr<WorkerServer> server;  // the resident worker that forked it; null when spawned directly
  bool orphan = false;                   // its resident worker died: watched through a pidfd, exit code unknown
  bool in_thread = false;                // runs on a thread of its resident worker (pid is the worker's)
  pid_t task_pid = -1;                   // in_thread: the task's process group, once reported
  bool watched = false;                  // the background thread polls it (set once the "running" event went out)
  bool cancelled = false;
  std::string state = "running";  // running | succeeded | failed | cancelled
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string message;
  std::optional<Clock::time_point> kill_at;  // pending SIGKILL of the group after a cancel's grace period

  bool running() const { return state == "running"; }
  json event(const std::string& id) const {
    return json{{"type", "executor.status"},
                {"executor_id", id},
                {"state", state},
                {"exit_code", exit_code ? json(*exit_code) : json(nullptr)},
                {"signal", signal ? json(*signal) : json(nullptr)},
                {"message", message}};
  }
};

// A resident `ork-worker --serve` (see worker/server.hpp): requests on `in`, events on `out`.
struct WorkerServer {
  pid_t pid = -1;
  std::map<std::string, std::string> base_env;  // the environment it started with: requests carry what differs
  UniqueFd in, out, pidfd;
  std::string buffer;    // partial event line
  bool closing = false;  // stdin closed (idle or shutdown): takes no more requests
};

class SubprocessExecutor : public ork::Executor {
 public:
  SubprocessExecutor(const json& cfg, ork::HostServices host) : host_(host) {
    if (!cfg.is_null() && !cfg.is_object()) ork::throw_invalid("exec-subprocess: config must be an object");
    auto str = [&](const char* k) -> std::string {
      if (!cfg.contains(k) || cfg[k].is_null()) return "";
      if (!cfg[k].is_string())
        ork::throw_invalid(std::string("exec-subprocess: config \"") + k + "\" must be a string");
      return cfg[k].get<std::string>();
    };
    if (auto d = str("log_dir"); !d.empty()) log_dir_ = fs::absolute(d);
    cwd_ = str("cwd");
    if (cfg.contains("kill_on_destroy") && !cfg["kill_on_destroy"].is_null())
      kill_on_destroy_ = cfg["kill_on_destroy"].get<bool>();
    if (cfg.contains("grace_ms") && !cfg["grace_ms"].is_null()) default_grace_ms_ = cfg["grace_ms"].get<int64_t>();
    if (cfg.contains("worker_command") && !cfg["worker_command"].is_null()) default_command_ = cfg["worker_command"];
    if (cfg.contains("resident_worker") && !cfg["resident_worker"].is_null())
      resident_ = cfg["resident_worker"].get<bool>();
    if (cfg.contains("resident_idle_ms") && !cfg["resident_idle_ms"].is_null())
      resident_idle_ms_ = std::max<int64_t>(cfg["resident_idle_ms"].get<int64_t>(), 0);
    if (cfg.contains("resident_answer_ms") && !cfg["resident_answer_ms"].is_null())
      resident_answer_ms_ = std::max<int64_t>(cfg["resident_answer_ms"].get<int64_t>(), 1);
    std::random_device rd;
    char nonce[24];
    std::snprintf(nonce, sizeof nonce, "%08x%08x", rd(), rd());
    nonce_ = nonce;
    wake_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd_) throw std::runtime_error(std::string("exec-subprocess: eventfd: ") + ::strerror(errno));
    thread_ = std::thread([this] { run(); });
  }

  ~SubprocessExecutor() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    wake();
    if (thread_.joinable()) thread_.join();
    for (auto& srv : servers_) {  // a resident worker exits once its attempts end
      std::lock_guard lock(write_mu_);
      srv->in.reset();
    }
    if (!kill_on_destroy_) {  // children outlive the host; it re-attaches through their status files
      reap_idle_servers(false);
      return;
    }
    std::vector<pid_t> pids;
    for (auto& [id, c] : children_)
      if (c.running() && c.pid > 0) {
        if (c.in_thread && c.task_pid > 0) ::kill(-c.task_pid, SIGKILL);
        ::kill(-c.pid, SIGKILL);
        if (!c.server && !c.orphan) pids.push_back(c.pid);
      }
    for (pid_t pid : pids) {
      int st = 0;
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
    reap_idle_servers(true);
  }

  json dispatch(const json& cfg) override {
    if (!cfg.is_object()) ork::throw_invalid("exec-subprocess: dispatch needs an ExecutionConfig object");
    const json& cmd =
        cfg.contains("worker_command") && !cfg["worker_command"].is_null() ? cfg["worker_command"] : default_command_;
    if (cfg.contains("image") && !cfg["image"].is_null()) {
      const std::string task = cfg.value("task_name", json()).is_string() ? cfg["task_name"].get<std::string>() : "";
      ork::throw_unsupported("task '" + task + "' runs the image '" + env_value(cfg["image"]) +
                             "': it needs a container executor (docker, cloudrun, fargate, k8s); exec-subprocess runs "
                             "ork-worker on this machine and cannot run images");
    }
    if (!cmd.is_array() || cmd.empty()) ork::throw_invalid("exec-subprocess: worker_command must be a non-empty array");
    std::vector<std::string> args;
    for (const auto& a : cmd) {
      if (!a.is_string()) ork::throw_invalid("exec-subprocess: worker_command items must be strings");
      args.push_back(a.get<std::string>());
    }
    if (args[0].empty()) ork::throw_invalid("exec-subprocess: worker_command[0] is empty");

    // The current environment, then the config's env on top.
    std::map<std::string, std::string> env = environ_map();
    if (cfg.contains("env") && !cfg["env"].is_null()) {
      if (!cfg["env"].is_object()) ork::throw_invalid("exec-subprocess: env must be an object");
      for (const auto& [k, v] : cfg["env"].items()) {
        if (k.empty() || k.find('=') != std::string::npos)
          ork::throw_invalid("exec-subprocess: bad env name '" + k + "'");
        env[k] = env_value(v);
      }
    }
    std::string log_path = prepare_log(cfg);
    if (resident_ && cfg.contains("worker_server_command") && cfg["worker_server_command"].is_array() &&
        !cfg["worker_server_command"].empty())
      return dispatch_resident(cfg["worker_server_command"], env, log_path);

    std::vector<std::string> env_strings;
    env_strings.reserve(env.size());
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);

    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    SpawnSetup sp;
    check_spawn(::posix_spawn_file_actions_addopen(sp.actions(), 0, "/dev/null", O_RDONLY, 0), "stdin");
    if (!log_path.empty()) {
      check_spawn(
          ::posix_spawn_file_actions_addopen(sp.actions(), 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644),
          "stdout");
      check_spawn(::posix_spawn_file_actions_adddup2(sp.actions(), 1, 2), "stderr");
    }
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    // Descriptors the host forgot to mark close-on-exec (sockets, databases) must not leak into workers.
    check_spawn(::posix_spawn_file_actions_addclosefrom_np(sp.actions(), 3), "closefrom");
#endif
    if (!cwd_.empty()) check_spawn(::posix_spawn_file_actions_addchdir_np(sp.actions(), cwd_.c_str()), "cwd");

    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argv[0], sp.actions(), sp.attr(), argv.data(), envp.data());
    if (rc != 0) {
      std::string m = "exec-subprocess: cannot start '" + args[0] + "': " + ::strerror(rc);
      if (rc == ENOENT || rc == EACCES || rc == ENOEXEC || rc == ENOTDIR) ork::throw_invalid(m);
      if (rc == EAGAIN || rc == ENOMEM) ork::throw_unavailable(m);
      throw std::runtime_error(m);
    }
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) {
      int err = errno;
      ::kill(-pid, SIGKILL);
      int st = 0;
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      throw std::runtime_error(std::string("exec-subprocess: pidfd_open: ") + ::strerror(err));
    }

    std::string id;
    {
      std::lock_guard lock(mu_);
      id = std::to_string(pid) + ":" + nonce_ + "-" + std::to_string(++counter_);
      Child c;
      c.pid = pid;
      c.pidfd = std::move(pidfd);
      c.message = "running as pid " + std::to_string(pid);
      children_.emplace(id, std::move(c));
      running_.insert(id);
    }
    // "running" goes out before the background thread may report the exit, so events arrive in order.
    host_.notify(json{{"type", "executor.status"}, {"executor_id", id}, {"state", "running"}, {"pid", pid}});
    {
      std::lock_guard lock(mu_);
      children_.at(id).watched = true;
    }
    wake();
    host_.log(ORK_LOG_DEBUG,
              "exec-subprocess: started " + id + " (" + args[0] + ")" + (log_path.empty() ? "" : ", log " + log_path));
    return json{{"executor_id", id}, {"state", "running"}, {"pid", pid}};
  }

  json status(const json& a) override {
    std::string id = executor_id(a);
    std::lock_guard lock(mu_);
    auto it = children_.find(id);
    if (it == children_.end())
      return json{
          {"state", "unknown"}, {"exit_code", nullptr}, {"signal", nullptr}, {"message", "unknown executor_id"}};
    const Child& c = it->second;
    json st{{"state", c.state},
            {"exit_code", c.exit_code ? json(*c.exit_code) : json(nullptr)},
            {"signal", c.signal ? json(*c.signal) : json(nullptr)},
            {"message", c.message},
            {"pid", c.pid > 0 ? json(c.pid) : json(nullptr)}};
    if (c.in_thread) st["task_pid"] = c.task_pid > 0 ? json(c.task_pid) : json(nullptr);  // the task's process group
    return st;
  }

  json cancel(const json& a) override {
    std::string id = executor_id(a);
    int64_t grace = default_grace_ms_;
    if (a.contains("grace_ms") && !a["grace_ms"].is_null()) grace = a["grace_ms"].get<int64_t>();
    grace = std::max<int64_t>(grace, 0);
    std::vector<std::pair<std::shared_ptr<WorkerServer>, json>> requests;
    {
      std::lock_guard lock(mu_);
      auto it = children_.find(id);
      if (it == children_.end() || !it->second.running()) return json::object();
      Child& c = it->second;
      c.cancelled = true;
      signal_group(id, c, grace == 0 ? SIGKILL : SIGTERM, requests);
      if (grace > 0) {
        auto at = Clock::now() + std::chrono::milliseconds(grace);
        if (!c.kill_at || at < *c.kill_at) c.kill_at = at;
      }
    }
    for (auto& [server, req] : requests) send(*server, req);
    wake();
    host_.log(ORK_LOG_DEBUG, "exec-subprocess: cancelling " + id + " (grace " + std::to_string(grace) + " ms)");
    return json::object();
  }

 private:
  // The log file of an attempt under log_dir (its folder created); "" without log_dir.
  std::string prepare_log(const json& cfg) {
    if (log_dir_.empty()) return "";
    fs::path dir = log_dir_ / safe_segment(cfg, "run_id");
    std::string attempt = cfg.contains("attempt") && !cfg["attempt"].is_null() ? env_value(cfg["attempt"]) : "0";
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error("exec-subprocess: cannot create " + dir.string() + ": " + ec.message());
    return (dir / (safe_segment(cfg, "task_id") + "-" + attempt + ".log")).string();
  }

  // Starts `ork-worker --serve` with pipes on its stdin and stdout, in its own process group. Called with mu_ held.
  std::shared_ptr<WorkerServer> start_server(const json& cmd) {
    std::vector<std::string> args;
    for (const auto& a : cmd) {
      if (!a.is_string() || a.get<std::string>().empty())
        ork::throw_invalid("exec-subprocess: worker_server_command items must be non-empty strings");
      args.push_back(a.get<std::string>());
    }
    int req[2], ev[2];
    if (::pipe2(req, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string("exec-subprocess: pipe: ") + ::strerror(errno));
    UniqueFd req_r(req[0]), req_w(req[1]);
    if (::pipe2(ev, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string("exec-subprocess: pipe: ") + ::strerror(errno));
    UniqueFd ev_r(ev[0]), ev_w(ev[1]);
    SpawnSetup sp;
    check_spawn(::posix_spawn_file_actions_adddup2(sp.actions(), req_r.get(), 0), "server stdin");
    check_spawn(::posix_spawn_file_actions_adddup2(sp.actions(), ev_w.get(), 1), "server stdout");
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    check_spawn(::posix_spawn_file_actions_addclosefrom_np(sp.actions(), 3), "closefrom");
#endif
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argv[0], sp.actions(), sp.attr(), argv.data(), environ);
    if (rc != 0) {
      std::string m = "exec-subprocess: cannot start '" + args[0] + "': " + ::strerror(rc);
      if (rc == ENOENT || rc == EACCES || rc == ENOEXEC || rc == ENOTDIR) ork::throw_invalid(m);
      ork::throw_unavailable(m);
    }
    auto server = std::make_shared<WorkerServer>();
    server->pid = pid;
    server->base_env = environ_map();
    server->in = std::move(req_w);
    server->out = std::move(ev_r);
    server->pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    ::fcntl(server->out.get(), F_SETFL, O_NONBLOCK);
    servers_.push_back(server);
    host_.log(ORK_LOG_DEBUG, "exec-subprocess: started resident worker pid " + std::to_string(pid));
    return server;
  }

  // At destruction, stdin closed: waits (up to 2 s) for each resident worker with no attempt of ours left (`all`: every
  // one, its attempts were just killed) and reaps it, so none stays a zombie when our parent does not reap orphans.
  // One still running attempts is left to finish them.
  void reap_idle_servers(bool all) {
    for (auto& srv : servers_) {
      if (!srv->pidfd) continue;
      bool busy = false;
      for (const auto& id : running_)
        if (children_.at(id).server == srv) busy = true;
      if (busy && !all) continue;
      pollfd p{srv->pidfd.get(), POLLIN, 0};
      if (::poll(&p, 1, 2000) > 0) ::waitpid(srv->pid, nullptr, WNOHANG);
    }
  }

  // Writes one request line to a resident worker; false when it is gone.
  bool send(WorkerServer& server, const json& request) {
    std::string line = request.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::lock_guard lock(write_mu_);
    std::string_view rest(line);
    while (!rest.empty()) {
      if (!server.in) return false;
      ssize_t n = ::write(server.in.get(), rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      rest.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Runs the attempt as a fork of the resident worker: no exec and no dynamic loading per task.
  json dispatch_resident(const json& server_cmd, const std::map<std::string, std::string>& env,
                         const std::string& log_path) {
    // A resident worker that does not answer (stopped, stuck) is abandoned once and the attempt goes to a new one.
    for (int round = 0;; ++round) {
      if (auto started = dispatch_resident_once(server_cmd, env, log_path, round == 0)) return *started;
    }
  }

  // One try of dispatch_resident; nullopt when the worker did not answer and `may_abandon` (it is abandoned).
  std::optional<json> dispatch_resident_once(const json& server_cmd, const std::map<std::string, std::string>& env,
                                             const std::string& log_path, bool may_abandon) {
    std::shared_ptr<WorkerServer> server;
    std::string id;
    {
      std::lock_guard lock(mu_);
      if (!servers_.empty() && !servers_.back()->closing)
        server = servers_.back();
      else
        server = start_server(server_cmd);
      id = "w" + std::to_string(server->pid) + ":" + nonce_ + "-" + std::to_string(++counter_);
      Child c;
      c.server = server;
      c.message = "starting in resident worker pid " + std::to_string(server->pid);
      children_.emplace(id, std::move(c));
      running_.insert(id);
      idle_at_.reset();
    }
    wake();  // polls a new server's events
    // The environment as a difference from the one the resident worker started with (a few variables, not all).
    json delta = json::object(), unset = json::array();
    auto b = server->base_env.begin();
    for (const auto& [k, v] : env) {
      for (; b != server->base_env.end() && b->first < k; ++b) unset.push_back(b->first);
      if (b != server->base_env.end() && b->first == k) {
        if (b->second != v) delta[k] = v;
        ++b;
      } else {
        delta[k] = v;
      }
    }
    for (; b != server->base_env.end(); ++b) unset.push_back(b->first);
    json request{{"op", "run"},
                 {"id", id},
                 {"env_from", "server"},
                 {"env", std::move(delta)},
                 {"env_unset", std::move(unset)},
                 {"log_path", log_path.empty() ? json() : json(log_path)}};
    if (!cwd_.empty()) request["cwd"] = cwd_;
    bool sent = send(*server, request);
    std::unique_lock lock(mu_);
    Child& c = children_.at(id);
    if (!sent) c.message = "resident worker pid " + std::to_string(server->pid) + " is gone";
    started_cv_.wait_for(lock, std::chrono::milliseconds(resident_answer_ms_),
                         [&] { return !sent || c.pid > 0 || !c.running(); });
    if (c.pid <= 0 && c.running()) {
      std::string m =
          "exec-subprocess: " + c.message + " (no pid reported within " + std::to_string(resident_answer_ms_) + " ms)";
      running_.erase(id);
      children_.erase(id);
      if (!sent || !may_abandon) ork::throw_unavailable(m);
      // Killed, not just left: a worker that is only slow would still start the request waiting in its pipe while
      // the attempt runs elsewhere. Its forks live on (watched as orphans); its thread attempts end as lost.
      server->closing = true;
      ::kill(server->pid, SIGKILL);  // our unreaped child: the pid cannot have been reused
      lock.unlock();
      host_.log(ORK_LOG_WARN, m + ": killed it, starting another");
      std::lock_guard wlock(write_mu_);
      server->in.reset();
      return std::nullopt;
    }
    if (c.pid <= 0) {  // the fork failed: report it as a failed start
      std::string m = "exec-subprocess: " + c.message;
      running_.erase(id);
      children_.erase(id);
      throw std::runtime_error(m);
    }
    pid_t pid = c.pid;
    lock.unlock();
    host_.notify(json{{"type", "executor.status"}, {"executor_id", id}, {"state", "running"}, {"pid", pid}});
    std::optional<json> ended;
    {
      std::lock_guard relock(mu_);
      Child& ch = children_.at(id);
      ch.watched = true;
      if (!ch.running()) ended = ch.event(id);  // it ended before "running" went out
    }
    if (ended) host_.notify(*ended);
    return json{{"executor_id", id}, {"state", "running"}, {"pid", pid}};
  }

  // Signals an attempt's process group, called with mu_ held. A resident worker's fork is signalled by that worker
  // (it alone knows whether the pid is still its unreaped child), so the request is queued for sending after unlock.
  void signal_group(const std::string& id, const Child& c, int sig,
                    std::vector<std::pair<std::shared_ptr<WorkerServer>, json>>& requests) {
    if (c.server && !c.orphan) {
      requests.emplace_back(c.server, json{{"op", "kill"}, {"id", id}, {"signal", sig}});
    } else if (c.pid > 0) {
      // A direct child is reaped only under mu_, so its pid still names our process group here.
      ::kill(-c.pid, sig);
    }
  }

  static std::string executor_id(const json& a) {
    if (!a.is_object() || !a.contains("executor_id") || !a["executor_id"].is_string())
      ork::throw_invalid("exec-subprocess: needs a string \"executor_id\"");
    return a["executor_id"].get<std::string>();
  }

  void wake() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);  // EAGAIN: already pending
  }

  // Background thread: wait for exits (pidfds), resident workers' events, wake-ups (eventfd) and the nearest
  // deadline (a cancel's SIGKILL, closing an idle resident worker).
  void run() {
    std::vector<pollfd> fds;
    std::vector<std::string> ids;                             // fds[1 .. ids.size()]: children's pidfds
    std::vector<std::shared_ptr<WorkerServer>> outs, pidfds;  // then resident workers' stdout, then their pidfds
    for (;;) {
      fds.assign(1, pollfd{wake_fd_.get(), POLLIN, 0});
      ids.clear();
      outs.clear();
      pidfds.clear();
      int timeout = -1;
      auto shorten = [&](Clock::time_point at, Clock::time_point now) {
        auto ms = std::chrono::ceil<std::chrono::milliseconds>(at - now).count();
        int t = static_cast<int>(std::clamp<int64_t>(ms, 0, 24 * 3600 * 1000));
        timeout = timeout < 0 ? t : std::min(timeout, t);
      };
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
        auto now = Clock::now();
        bool resident_busy = false;
        for (const auto& id : running_) {
          const Child& c = children_.at(id);
          if (c.watched && c.pidfd) {
            fds.push_back(pollfd{c.pidfd.get(), POLLIN, 0});
            ids.push_back(id);
          }
          if (c.server && !c.orphan) resident_busy = true;
          if (c.kill_at) shorten(*c.kill_at, now);
        }
        for (const auto& srv : servers_)
          if (srv->out) outs.push_back(srv);
        for (const auto& srv : outs) fds.push_back(pollfd{srv->out.get(), POLLIN, 0});
        for (const auto& srv : servers_)
          if (srv->pidfd) pidfds.push_back(srv);
        for (const auto& srv : pidfds) fds.push_back(pollfd{srv->pidfd.get(), POLLIN, 0});
        bool idle_server = !resident_busy && !servers_.empty() && !servers_.back()->closing;
        if (!idle_server)
          idle_at_.reset();
        else if (!idle_at_)
          idle_at_ = now + std::chrono::milliseconds(resident_idle_ms_);
        if (idle_at_) shorten(*idle_at_, now);
      }
      int n = ::poll(fds.data(), fds.size(), timeout);
      if (n < 0 && errno != EINTR) {
        host_.log(ORK_LOG_ERROR, std::string("exec-subprocess: poll: ") + ::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      if (n > 0 && fds[0].revents) {
        uint64_t v = 0;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_.get(), &v, sizeof v);
      }
      // Event bytes are read before taking the lock: a dispatch may hold it while waiting for a pid.
      std::vector<std::pair<std::shared_ptr<WorkerServer>, std::string>> chunks;
      std::vector<std::shared_ptr<WorkerServer>> eofs;
      size_t base = 1 + ids.size();
      for (size_t i = 0; n > 0 && i < outs.size(); ++i) {
        if (!fds[base + i].revents) continue;
        std::string data;
        char buf[65536];
        ssize_t r;
        while ((r = ::read(outs[i]->out.get(), buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(r));
        if (!data.empty()) chunks.emplace_back(outs[i], std::move(data));
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) eofs.push_back(outs[i]);
      }
      std::vector<json> events;
      std::vector<std::pair<std::shared_ptr<WorkerServer>, json>> requests;
      std::vector<std::shared_ptr<WorkerServer>> to_close;
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
        for (size_t i = 1; n > 0 && i <= ids.size(); ++i)
          if (fds[i].revents) reap(ids[i - 1], events);
        for (auto& [srv, data] : chunks) on_server_output(*srv, data, events);
        for (auto& srv : eofs) on_server_gone(srv, events);
        size_t pbase = base + outs.size();
        for (size_t i = 0; n > 0 && i < pidfds.size(); ++i)
          if (fds[pbase + i].revents) {
            int st = 0;
            if (::waitpid(pidfds[i]->pid, &st, WNOHANG) == pidfds[i]->pid) {
              pidfds[i]->pidfd.reset();
              if (!pidfds[i]->out) std::erase(servers_, pidfds[i]);
            }
          }
        auto now = Clock::now();
        for (const auto& id : running_)
          if (Child& c = children_.at(id); c.kill_at && *c.kill_at <= now) {
            c.kill_at.reset();
            signal_group(id, c, SIGKILL, requests);
            host_.log(ORK_LOG_INFO, "exec-subprocess: " + id + " outlived its grace period, sent SIGKILL");
          }
        if (idle_at_ && *idle_at_ <= now) {
          idle_at_.reset();
          for (auto& srv : servers_)
            if (!srv->closing) {
              srv->closing = true;
              to_close.push_back(srv);
            }
        }
      }
      for (auto& [srv, req] : requests) send(*srv, req);
      for (auto& srv : to_close) {
        std::lock_guard lock(write_mu_);
        srv->in.reset();  // it exits once its last attempt is reaped
      }
      for (const auto& e : events) host_.notify(e);
    }
  }

  // Called with mu_ held: event lines of a resident worker ({"id","pid"}, {"id","error"}, {"id","exit_code"|"signal"}).
  void on_server_output(WorkerServer& srv, const std::string& data, std::vector<json>& events) {
    srv.buffer += data;
    for (size_t nl; (nl = srv.buffer.find('\n')) != std::string::npos;) {
      json ev = json::parse(srv.buffer.substr(0, nl), nullptr, false);
      srv.buffer.erase(0, nl + 1);
      if (!ev.is_object() || !ev.value("id", json()).is_string()) continue;
      std::string id = ev["id"].get<std::string>();
      auto it = children_.find(id);
      if (it == children_.end() || !it->second.running()) continue;
      Child& c = it->second;
      if (ev.contains("pid")) {
        c.pid = ev["pid"].get<pid_t>();
        c.in_thread = ev.value("thread", false);
        c.message = c.in_thread ? "running on a thread of resident worker " + std::to_string(srv.pid)
                                : "running as pid " + std::to_string(c.pid) + " (forked by resident worker " +
                                      std::to_string(srv.pid) + ")";
        started_cv_.notify_all();
      } else if (ev.contains("task_pid")) {
        c.task_pid = ev["task_pid"].get<pid_t>();
      } else if (ev.contains("error")) {
        c.state = "failed";
        c.message = "resident worker: " + ev["error"].get<std::string>();
        running_.erase(id);
        started_cv_.notify_all();
      } else {
        std::optional<int> code, sig;
        if (ev.contains("signal")) sig = ev["signal"].get<int>();
        if (ev.contains("exit_code")) code = ev["exit_code"].get<int>();
        finish(id, c, code, sig, events);
      }
    }
  }

  // Called with mu_ held when a resident worker's stdout closed: it exited. Its forks keep running on their own; each
  // one with a pid is watched through a pidfd from now on (exit code unknown: the engine reads its status file).
  // Attempts on its threads died with it: their tasks' process groups are killed, and they end as lost.
  void on_server_gone(const std::shared_ptr<WorkerServer>& srv, std::vector<json>& events) {
    srv->out.reset();
    srv->closing = true;
    {
      std::lock_guard lock(write_mu_);
      srv->in.reset();
    }
    if (!srv->pidfd) std::erase(servers_, srv);
    std::vector<std::string> lost;
    for (const auto& id : running_) {
      Child& c = children_.at(id);
      if (c.server != srv) continue;
      c.orphan = true;
      if (c.in_thread) {
        if (c.task_pid > 0) ::kill(-c.task_pid, SIGKILL);
        lost.push_back(id);
        continue;
      }
      if (c.pid > 0) c.pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, c.pid, 0)));
      if (!c.pidfd) lost.push_back(id);
    }
    for (const auto& id : lost) finish(id, children_.at(id), std::nullopt, std::nullopt, events);
    started_cv_.notify_all();
    host_.log(ORK_LOG_WARN, "exec-subprocess: resident worker pid " + std::to_string(srv->pid) + " exited");
  }

  // Called with mu_ held: records how an attempt ended; its event goes out now if "running" already did.
  void finish(const std::string& id, Child& c, std::optional<int> code, std::optional<int> sig,
              std::vector<json>& events) {
    std::string how = "exit status unknown (its resident worker exited)";
    c.exit_code = code;
    c.signal = sig;
    if (code)
      how = "exited with code " + std::to_string(*code);
    else if (sig)
      how = "killed by " + signal_name(*sig);
    if (c.cancelled)
      c.state = "cancelled";
    else
      c.state = (c.exit_code && *c.exit_code == 0) ? "succeeded" : "failed";
    c.message = c.cancelled ? "cancelled; " + how : how;
    c.kill_at.reset();
    c.pidfd.reset();
    c.server.reset();
    if (c.watched) events.push_back(c.event(id));
    running_.erase(id);
    finished_.push_back(id);
    while (finished_.size() > kMaxFinished) {
      children_.erase(finished_.front());
      finished_.pop_front();
    }
  }

  // Called with mu_ held when a pidfd is readable: the leader exited (a zombie until waitpid below, unless it is an
  // orphaned fork of a resident worker, which is not our child).
  void reap(const std::string& id, std::vector<json>& events) {
    auto it = children_.find(id);
    if (it == children_.end() || !it->second.running()) return;
    Child& c = it->second;
    if (c.orphan) {
      finish(id, c, std::nullopt, std::nullopt, events);
      return;
    }
    if (c.cancelled) ::kill(-c.pid, SIGKILL);  // stragglers of a cancelled group; the zombie keeps the pgid ours
    int st = 0;
    pid_t r;
    while ((r = ::waitpid(c.pid, &st, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (r == 0) return;  // not exited after all
    if (r > 0 && WIFEXITED(st))
      finish(id, c, WEXITSTATUS(st), std::nullopt, events);
    else if (r > 0 && WIFSIGNALED(st))
      finish(id, c, std::nullopt, WTERMSIG(st), events);
    else
      finish(id, c, std::nullopt, std::nullopt, events);
  }

  ork::HostServices host_;
  fs::path log_dir_;
  std::string cwd_;
  bool kill_on_destroy_ = false;
  int64_t default_grace_ms_ = kDefaultGraceMs;
  json default_command_;
  std::string nonce_;

  bool resident_ = true;
  int64_t resident_idle_ms_ = 30000;
  int64_t resident_answer_ms_ = 5000;  // how long a resident worker may take to report an attempt's start

  std::mutex mu_;
  std::condition_variable started_cv_;                  // a resident worker reported a pid (or failed)
  std::mutex write_mu_;                                 // serializes request lines; never held while waiting for mu_
  std::vector<std::shared_ptr<WorkerServer>> servers_;  // guarded by mu_; back() takes new attempts
  std::optional<Clock::time_point> idle_at_;            // guarded by mu_: when an idle resident worker is let go
  std::map<std::string, Child> children_;               // guarded by mu_
  std::set<std::string> running_;                       // ids of children_ still running; guarded by mu_
  std::deque<std::string> finished_;                    // ids in finishing order, for eviction
  uint64_t counter_ = 0;
  bool stop_ = false;
  UniqueFd wake_fd_;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace

ORK_EXECUTOR_PLUGIN(SubprocessExecutor, "subprocess", ORK_PLUGIN_VERSION)
