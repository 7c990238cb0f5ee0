#include "server.hpp"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "loader/plugin_loader.hpp"

namespace ork::worker {

namespace {

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the executor is gone; children still finish and write their status
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Event lines go out whole: attempt threads emit their own ends.
class Emitter {
 public:
  void operator()(const json& event) {
    std::string line = event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::lock_guard lock(mu_);
    write_all(STDOUT_FILENO, line);
  }

 private:
  std::mutex mu_;
};

// In the forked child: the environment, descriptors and signal state of a freshly exec'ed worker, then the attempt.
[[noreturn]] void child_main(const json& req, const EnvMap& env, int signal_fd, int done_fd, const ObjectProxy* store,
                             json* spec) {
  ::close(signal_fd);
  ::close(done_fd);
  ::setpgid(0, 0);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
  std::string log_path = req.value("log_path", json()).is_string() ? req["log_path"].get<std::string>() : "";
  int out_fd = log_path.empty() ? ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0)
                                : ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd >= 0) {
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(out_fd, STDERR_FILENO);
  }
  ::clearenv();
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  if (auto it = req.find("cwd"); it != req.end() && it->is_string() && !it->get<std::string>().empty())
    if (::chdir(it->get<std::string>().c_str()) != 0) {
      std::cerr << "ork-worker: cannot change to " << it->get<std::string>() << ": " << ::strerror(errno) << std::endl;
      ::_exit(kExitUsage);
    }
  int rc = kExitFailed;
  {
    SignalWatch signals;  // the mask (TERM, INT, CHLD blocked) came through fork; a fresh signalfd reads it
    const char* spec_key = std::getenv("ORK_TASK_SPEC_PATH");
    rc = run_attempt(spec_key ? spec_key : "", signals, store, spec);
  }
  std::cout.flush();
  std::cerr.flush();
  ::_exit(rc);
}

// True when the library's static info (read from its descriptor, before any instance exists) lists "fork_safe".
bool fork_safe(void* handle) {
  auto entry = reinterpret_cast<ork_plugin_entry_fn>(::dlsym(handle, ORK_PLUGIN_ENTRY_SYMBOL));
  const ork_plugin_descriptor* d = entry ? entry() : nullptr;
  if (!d || d->struct_size < offsetof(ork_plugin_descriptor, info_json) + sizeof(d->info_json) || !d->info_json)
    return false;
  json info = json::parse(d->info_json, nullptr, false);
  if (!info.is_object()) return false;
  auto caps = info.find("capabilities");
  if (caps == info.end() || !caps->is_array()) return false;
  for (const auto& c : *caps)
    if (c == "fork_safe") return true;
  return false;
}

// Maps the object-store library named by an ORK_OBJECT_STORE value once; for a fork-safe plugin also creates the
// instance once and returns it (else nullptr: each child creates its own, like a freshly started worker).
const ObjectProxy* preload_store(const std::string& store,
                                 std::map<std::string, std::unique_ptr<void, int (*)(void*)>>& preloaded,
                                 std::map<std::string, std::unique_ptr<ObjectProxy>>& instances) {
  if (auto it = instances.find(store); it != instances.end()) return it->second.get();
  json ref = json::parse(store, nullptr, false);
  if (!ref.is_object() || !ref.value("library", json()).is_string()) return nullptr;
  const std::string lib = ref["library"].get<std::string>();
  if (!preloaded.count(lib)) {
    void* handle = nullptr;
    try {
      handle = ::dlopen(find_plugin_library(lib).c_str(), RTLD_NOW | RTLD_LOCAL);
    } catch (const std::exception&) {
      // not found: the child reports it like a freshly started worker would
    }
    preloaded.emplace(lib, std::unique_ptr<void, int (*)(void*)>(
                               handle, handle ? ::dlclose : [](void*) { return 0; }));
  }
  void* handle = preloaded.at(lib).get();
  if (!handle || !fork_safe(handle)) return nullptr;
  std::unique_ptr<ObjectProxy> proxy;
  try {
    proxy = load_plugin<ObjectProxy>("object", lib, ref.value("config", json::object()));
  } catch (const std::exception&) {
    return nullptr;  // the child loads it again and reports the error on its own stderr
  }
  return instances.emplace(store, std::move(proxy)).first->second.get();
}

// An attempt's whole worker environment: the request's `env`, or with "env_from": "server" the environment this
// process started with, minus `env_unset`, plus `env` (the executor sends only what differs).
EnvMap request_env(const json& req, const EnvMap& base) {
  EnvMap env;
  if (req.value("env_from", json()) == "server") {
    env = base;
    if (auto it = req.find("env_unset"); it != req.end() && it->is_array())
      for (const auto& name : *it)
        if (name.is_string()) env.erase(name.get<std::string>());
  }
  if (auto it = req.find("env"); it != req.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string()) env[k] = v.get<std::string>();
  return env;
}

// A variable of an attempt's environment; "" when missing.
std::string env_of(const EnvMap& env, const char* name) {
  auto it = env.find(name);
  return it != env.end() ? it->second : "";
}

// The request's spec read through the shared store; null when it cannot be read (the fork then reads it and reports
// the error itself).
json read_spec(const EnvMap& env, const ObjectProxy& store) {
  const std::string key = env_of(env, "ORK_TASK_SPEC_PATH");
  if (key.empty()) return nullptr;
  try {
    auto text = store.get(key);
    if (!text) return nullptr;
    json spec = json::parse(*text, nullptr, false);
    return spec.is_object() ? spec : json();
  } catch (const std::exception&) {
    return nullptr;
  }
}

// Whether an attempt may run on a thread: a shell task with no secrets, not a container task.
bool thread_eligible(const EnvMap& env, const json& spec) {
  return spec.is_object() && is_shell_task(spec) && env_of(env, "ORK_TASK_SECRETS").empty() &&
         env_of(env, "ORK_CONTAINER_TASK") != "1";
}

// One attempt on a thread: the worker environment a fork would get from clearenv/setenv, without the host's secret
// variables; its log tee'd to log_path (else our stderr); cancelled through `signals`. The exit code.
int run_thread_attempt(const json& req, EnvMap env, json spec, const ObjectProxy& store, SignalWatch& signals) {
  AttemptEnv ctx;
  ctx.env = std::move(env);
  auto prefix_it = ctx.env.find("ORK_SECRET_ENV_PREFIX");
  const std::string prefix = prefix_it != ctx.env.end() ? prefix_it->second : "ORK_SECRET_";
  if (prefix_it != ctx.env.end()) ctx.env.erase(prefix_it);
  if (!prefix.empty()) std::erase_if(ctx.env, [&](const auto& kv) { return kv.first.starts_with(prefix); });
  if (auto it = req.find("cwd"); it != req.end() && it->is_string()) ctx.cwd = it->get<std::string>();
  std::string log_path = req.value("log_path", json()).is_string() ? req["log_path"].get<std::string>() : "";
  Fd log(log_path.empty() ? ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0)
                          : ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  const int log_fd = log ? log.get() : STDERR_FILENO;
  auto hb = ctx.env.find("ORK_HEARTBEAT_INTERVAL_MS");
  const std::string spec_key = ctx.env["ORK_TASK_SPEC_PATH"];
  try {
    return Worker(store, std::move(spec), spec_key, signals,
                  heartbeat_interval(hb != ctx.env.end() ? hb->second.c_str() : nullptr), nullptr, &ctx, log_fd)
        .run();
  } catch (const std::exception& e) {
    const std::string line = std::string("ork-worker: ") + e.what() + "\n";
    [[maybe_unused]] ssize_t n = ::write(log_fd, line.data(), line.size());
    return kExitFailed;
  }
}

// Starts a fresh `ork-worker` for an attempt (what a fork would have run, at the cost of an exec): its own process
// group, the attempt's environment and cwd, stdin /dev/null, stdout and stderr to log_path (else ours). The pid, or -1
// with `why`.
pid_t spawn_worker(const std::string& exe, const json& req, const EnvMap& env, std::string& why) {
  std::string log_path = req.value("log_path", json()).is_string() ? req["log_path"].get<std::string>() : "";
  std::string cwd = req.value("cwd", json()).is_string() ? req["cwd"].get<std::string>() : "";
  std::vector<std::string> vars;
  vars.reserve(env.size());
  for (const auto& [k, v] : env) vars.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::string arg0 = "ork-worker";
  char* argv[] = {arg0.data(), nullptr};
  Fd log(log_path.empty() ? -1 : ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  const int out_fd = log ? log.get() : STDERR_FILENO;
  // Nothing below throws: the spawn objects are destroyed on every path.
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out_fd, STDERR_FILENO);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP, SIGQUIT}) sigaddset(&defaults, sig);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  pid_t pid = -1;
  int rc = exe.empty() ? ENOENT : ::posix_spawn(&pid, exe.c_str(), &fa, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    why = "cannot start " + exe + ": " + std::string(::strerror(rc));
    return -1;
  }
  return pid;
}

// An attempt running on a thread of the server.
struct ThreadAttempt {
  SignalWatch signals{SignalWatch::ThreadMode{}};
  std::atomic<bool> done{false};
  std::jthread thread;  // last: joined before the rest goes
};

}  // namespace

int serve() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGINT}) sigaddset(&set, s);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return kExitUsage;
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  Fd sfd(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
  Fd done_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));  // an attempt thread ended: join it
  if (!sfd || !done_fd) {
    std::cerr << "ork-worker --serve: signalfd/eventfd: " << ::strerror(errno) << std::endl;
    return kExitUsage;
  }
  const EnvMap base_env = process_env();  // what requests with "env_from": "server" are relative to
  const char* threads_env = std::getenv("ORK_WORKER_THREADS");
  const bool threads_enabled = !(threads_env && std::string(threads_env) == "0");

  Emitter emit;
  std::map<pid_t, std::string> children;  // forks: pid (= process group) -> request id
  using Library = std::unique_ptr<void, int (*)(void*)>;
  std::map<std::string, Library> preloaded;  // object-store libraries, mapped once for all forks
  // Instances of fork-safe object stores (capability "fork_safe"), created once per ORK_OBJECT_STORE value and used
  // by every forked attempt: no per-attempt plugin set-up (root resolution, descriptors, random seeds).
  std::map<std::string, std::unique_ptr<ObjectProxy>> instances;
  // Request id -> attempt on a thread; declared last, so its threads are joined before what they use goes.
  std::map<std::string, std::unique_ptr<ThreadAttempt>> threads;
  auto join_finished = [&threads] {
    for (auto it = threads.begin(); it != threads.end();) {
      if (!it->second->done) {
        ++it;
        continue;
      }
      it->second->thread.join();
      it = threads.erase(it);
    }
  };
  std::error_code ec;
  const std::string self_exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  std::string buffer;
  bool input_open = true;
  while (input_open || !children.empty() || !threads.empty()) {
    pollfd fds[3] = {{sfd.get(), POLLIN, 0}, {done_fd.get(), POLLIN, 0}, {input_open ? STDIN_FILENO : -1, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return kExitFailed;
    }
    if (fds[0].revents) {
      signalfd_siginfo si;
      while (::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      }
      // Only our forks, by pid: the tasks of attempt threads are reaped by those threads.
      for (auto it = children.begin(); it != children.end();) {
        int st = 0;
        pid_t pid = ::waitpid(it->first, &st, WNOHANG);
        if (pid != it->first) {
          ++it;
          continue;
        }
        json ev{{"id", it->second}};
        if (WIFSIGNALED(st))
          ev["signal"] = WTERMSIG(st);
        else
          ev["exit_code"] = WEXITSTATUS(st);
        it = children.erase(it);
        emit(ev);
      }
    }
    if (fds[1].revents) {
      uint64_t v = 0;
      [[maybe_unused]] ssize_t r = ::read(done_fd.get(), &v, sizeof v);
      join_finished();
    }
    if (!fds[2].revents) continue;
    char chunk[65536];
    ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      input_open = false;  // the executor is gone: finish what runs, then exit
      continue;
    }
    buffer.append(chunk, static_cast<size_t>(n));
    for (size_t nl; (nl = buffer.find('\n')) != std::string::npos;) {
      json req = json::parse(buffer.substr(0, nl), nullptr, false);
      buffer.erase(0, nl + 1);
      if (!req.is_object() || !req.value("id", json()).is_string()) continue;
      const std::string id = req["id"].get<std::string>();
      const std::string op = req.value("op", std::string());
      if (op == "kill") {
        const int sig = req.value("signal", SIGTERM);
        if (auto t = threads.find(id); t != threads.end()) {
          if (sig == SIGKILL) t->second->signals.kill_task(SIGKILL);  // now, not after the cancel grace
          t->second->signals.cancel();
        }
        for (const auto& [pid, cid] : children)
          if (cid == id) ::kill(-pid, sig);
        continue;
      }
      if (op != "run") continue;
      EnvMap env = request_env(req, base_env);
      std::string store = env_of(env, "ORK_OBJECT_STORE");
      const ObjectProxy* instance = store.empty() ? nullptr : preload_store(store, preloaded, instances);
      json spec = instance ? read_spec(env, *instance) : json();
      if (threads.count(id) || std::any_of(children.begin(), children.end(), [&](auto& c) { return c.second == id; }))
        continue;  // already running: a repeated request changes nothing
      if (threads_enabled && thread_eligible(env, spec)) {
        auto attempt = std::make_unique<ThreadAttempt>();
        ThreadAttempt* a = attempt.get();
        threads.emplace(id, std::move(attempt));
        emit(json{{"id", id}, {"pid", ::getpid()}, {"thread", true}});
        try {
          // The task's process group goes to the executor: if this process dies, it kills the orphaned task.
          a->signals.on_task = [id, &emit](pid_t pgid) { emit(json{{"id", id}, {"task_pid", pgid}}); };
          a->thread = std::jthread([a, req = std::move(req), env = std::move(env), spec = std::move(spec), instance, id,
                                    &emit, &done_fd]() mutable {
            int rc = run_thread_attempt(req, std::move(env), std::move(spec), *instance, a->signals);
            emit(json{{"id", id}, {"exit_code", rc}});
            a->done = true;
            uint64_t one = 1;
            [[maybe_unused]] ssize_t w = ::write(done_fd.get(), &one, sizeof one);
          });
        } catch (const std::system_error&) {
          threads.erase(id);
          emit(json{{"id", id}, {"exit_code", kExitFailed}});
        }
        continue;
      }
      join_finished();
      pid_t pid = -1;
      if (threads.empty()) {  // single-threaded now: a fork inherits no lock another thread holds
        pid = ::fork();
        if (pid == 0) child_main(req, env, sfd.get(), done_fd.get(), instance, spec.is_object() ? &spec : nullptr);
        if (pid < 0) {
          emit(json{{"id", id}, {"error", std::string("fork: ") + ::strerror(errno)}});
          continue;
        }
        ::setpgid(pid, pid);  // also in the child: whichever runs first, the group exists before a kill
      } else {  // attempt threads run (and may hold libc's locks, e.g. tzset's): a fresh ork-worker instead
        std::string why;
        pid = spawn_worker(self_exe, req, env, why);
        if (pid < 0) {
          emit(json{{"id", id}, {"error", why}});
          continue;
        }
      }
      children.emplace(pid, id);
      emit(json{{"id", id}, {"pid", pid}});
    }
  }
  return kExitSuccess;
}

}  // namespace ork::worker
