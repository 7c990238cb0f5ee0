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
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <ork/plugin.hpp>

#include "unique_fd.hpp"
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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


// posix_spawn attributes and file actions, destroyed on scope exit.
class SpawnSetup {
 public:
  SpawnSetup() {
    ::posix_spawnattr_init(&attr_);
    ::posix_spawn_file_actions_init(&actions_);
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

// One dispatched attempt.
struct Child {
  pid_t pid = -1;  // also the process group id
  UniqueFd pidfd;
  bool watched = false;  // the background thread polls it (set once the "running" event went out)
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
    if (!kill_on_destroy_) return;  // children outlive the host; it re-attaches through their status files
    std::vector<pid_t> pids;
    for (auto& [id, c] : children_)
      if (c.running()) {
        ::kill(-c.pid, SIGKILL);
        pids.push_back(c.pid);
      }
    for (pid_t pid : pids) {
      int st = 0;
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
  }

  json dispatch(const json& cfg) override {
    if (!cfg.is_object()) ork::throw_invalid("exec-subprocess: dispatch needs an ExecutionConfig object");
    const json& cmd =
        cfg.contains("worker_command") && !cfg["worker_command"].is_null() ? cfg["worker_command"] : default_command_;
    if (cmd.is_null() && cfg.contains("image") && !cfg["image"].is_null())
      ork::throw_unsupported("exec-subprocess: cannot run an image, only worker_command");
    if (!cmd.is_array() || cmd.empty()) ork::throw_invalid("exec-subprocess: worker_command must be a non-empty array");
    std::vector<std::string> args;
    for (const auto& a : cmd) {
      if (!a.is_string()) ork::throw_invalid("exec-subprocess: worker_command items must be strings");
      args.push_back(a.get<std::string>());
    }
    if (args[0].empty()) ork::throw_invalid("exec-subprocess: worker_command[0] is empty");

    // The current environment, then the config's env on top.
    std::map<std::string, std::string> env;
    for (char** e = environ; e && *e; ++e) {
      std::string_view kv(*e);
      size_t eq = kv.find('=');
      if (eq != std::string_view::npos && eq > 0)
        env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
    if (cfg.contains("env") && !cfg["env"].is_null()) {
      if (!cfg["env"].is_object()) ork::throw_invalid("exec-subprocess: env must be an object");
      for (const auto& [k, v] : cfg["env"].items()) {
        if (k.empty() || k.find('=') != std::string::npos)
          ork::throw_invalid("exec-subprocess: bad env name '" + k + "'");
        env[k] = env_value(v);
      }
    }
    std::vector<std::string> env_strings;
    env_strings.reserve(env.size());
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);

    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    SpawnSetup sp;
    check_spawn(
        ::posix_spawnattr_setflags(sp.attr(), POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
        "spawnattr flags");
    check_spawn(::posix_spawnattr_setpgroup(sp.attr(), 0), "spawnattr pgroup");
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s :
         {SIGPIPE, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU})
      sigaddset(&defaults, s);
    check_spawn(::posix_spawnattr_setsigmask(sp.attr(), &none), "spawnattr sigmask");
    check_spawn(::posix_spawnattr_setsigdefault(sp.attr(), &defaults), "spawnattr sigdefault");
    check_spawn(::posix_spawn_file_actions_addopen(sp.actions(), 0, "/dev/null", O_RDONLY, 0), "stdin");
    std::string log_path;
    if (!log_dir_.empty()) {
      fs::path dir = log_dir_ / safe_segment(cfg, "run_id");
      std::string attempt = cfg.contains("attempt") && !cfg["attempt"].is_null() ? env_value(cfg["attempt"]) : "0";
      log_path = (dir / (safe_segment(cfg, "task_id") + "-" + attempt + ".log")).string();
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) throw std::runtime_error("exec-subprocess: cannot create " + dir.string() + ": " + ec.message());
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
    return json{{"executor_id", id}};
  }

  json status(const json& a) override {
    std::string id = executor_id(a);
    std::lock_guard lock(mu_);
    auto it = children_.find(id);
    if (it == children_.end())
      return json{
          {"state", "unknown"}, {"exit_code", nullptr}, {"signal", nullptr}, {"message", "unknown executor_id"}};
    const Child& c = it->second;
    return json{{"state", c.state},
                {"exit_code", c.exit_code ? json(*c.exit_code) : json(nullptr)},
                {"signal", c.signal ? json(*c.signal) : json(nullptr)},
                {"message", c.message}};
  }

  json cancel(const json& a) override {
    std::string id = executor_id(a);
    int64_t grace = default_grace_ms_;
    if (a.contains("grace_ms") && !a["grace_ms"].is_null()) grace = a["grace_ms"].get<int64_t>();
    grace = std::max<int64_t>(grace, 0);
    {
      std::lock_guard lock(mu_);
      auto it = children_.find(id);
      if (it == children_.end() || !it->second.running()) return json::object();
      Child& c = it->second;
      c.cancelled = true;
      // The leader is reaped only under this lock, so its pid still names our process group here.
      ::kill(-c.pid, grace == 0 ? SIGKILL : SIGTERM);
      if (grace > 0) {
        auto at = Clock::now() + std::chrono::milliseconds(grace);
        if (!c.kill_at || at < *c.kill_at) c.kill_at = at;
      }
    }
    wake();
    host_.log(ORK_LOG_DEBUG, "exec-subprocess: cancelling " + id + " (grace " + std::to_string(grace) + " ms)");
    return json::object();
  }

 private:
  static std::string executor_id(const json& a) {
    if (!a.is_object() || !a.contains("executor_id") || !a["executor_id"].is_string())
      ork::throw_invalid("exec-subprocess: needs a string \"executor_id\"");
    return a["executor_id"].get<std::string>();
  }

  void wake() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);  // EAGAIN: already pending
  }

  // Background thread: wait for exits (pidfds), wake-ups (eventfd) and the nearest SIGKILL deadline.
  void run() {
    std::vector<pollfd> fds;
    std::vector<std::string> ids;
    for (;;) {
      fds.assign(1, pollfd{wake_fd_.get(), POLLIN, 0});
      ids.clear();
      int timeout = -1;
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
        auto now = Clock::now();
        for (const auto& id : running_) {
          const Child& c = children_.at(id);
          if (c.watched) {
            fds.push_back(pollfd{c.pidfd.get(), POLLIN, 0});
            ids.push_back(id);
          }
          if (c.kill_at) {
            auto ms = std::chrono::ceil<std::chrono::milliseconds>(*c.kill_at - now).count();
            int t = static_cast<int>(std::clamp<int64_t>(ms, 0, 24 * 3600 * 1000));
            timeout = timeout < 0 ? t : std::min(timeout, t);
          }
        }
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
      std::vector<json> events;
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
        for (size_t i = 1; n > 0 && i < fds.size(); ++i)
          if (fds[i].revents) reap(ids[i - 1], events);
        auto now = Clock::now();
        for (const auto& id : running_)
          if (Child& c = children_.at(id); c.kill_at && *c.kill_at <= now) {
            c.kill_at.reset();
            ::kill(-c.pid, SIGKILL);
            host_.log(ORK_LOG_INFO, "exec-subprocess: " + id + " outlived its grace period, sent SIGKILL");
          }
      }
      for (const auto& e : events) host_.notify(e);
    }
  }

  // Called with mu_ held when a pidfd is readable: the leader exited (a zombie until waitpid below).
  void reap(const std::string& id, std::vector<json>& events) {
    auto it = children_.find(id);
    if (it == children_.end() || !it->second.running()) return;
    Child& c = it->second;
    if (c.cancelled) ::kill(-c.pid, SIGKILL);  // stragglers of a cancelled group; the zombie keeps the pgid ours
    int st = 0;
    pid_t r;
    while ((r = ::waitpid(c.pid, &st, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (r == 0) return;  // not exited after all
    std::string how;
    if (r < 0) {
      how = "exit status unavailable (reaped elsewhere: " + std::string(::strerror(errno)) + ")";
    } else if (WIFEXITED(st)) {
      c.exit_code = WEXITSTATUS(st);
      how = "exited with code " + std::to_string(*c.exit_code);
    } else if (WIFSIGNALED(st)) {
      c.signal = WTERMSIG(st);
      how = "killed by " + signal_name(*c.signal);
    }
    if (c.cancelled)
      c.state = "cancelled";
    else
      c.state = (c.exit_code && *c.exit_code == 0) ? "succeeded" : "failed";
    c.message = c.cancelled ? "cancelled; " + how : how;
    c.kill_at.reset();
    c.pidfd.reset();
    events.push_back(c.event(id));
    running_.erase(id);
    finished_.push_back(id);
    while (finished_.size() > kMaxFinished) {
      children_.erase(finished_.front());
      finished_.pop_front();
    }
  }

  ork::HostServices host_;
  fs::path log_dir_;
  std::string cwd_;
  bool kill_on_destroy_ = false;
  int64_t default_grace_ms_ = kDefaultGraceMs;
  json default_command_;
  std::string nonce_;

  std::mutex mu_;
  std::map<std::string, Child> children_;  // guarded by mu_
  std::set<std::string> running_;          // ids of children_ still running; guarded by mu_
  std::deque<std::string> finished_;       // ids in finishing order, for eviction
  uint64_t counter_ = 0;
  bool stop_ = false;
  UniqueFd wake_fd_;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace

ORK_EXECUTOR_PLUGIN(SubprocessExecutor, "subprocess", ORK_PLUGIN_VERSION)
