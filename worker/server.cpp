#include "server.hpp"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>

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

void emit(const json& event) {
  write_all(STDOUT_FILENO, event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

// In the forked child: the environment, descriptors and signal state of a freshly exec'ed worker, then the attempt.
[[noreturn]] void child_main(const json& req, int signal_fd, const ObjectProxy* store) {
  ::close(signal_fd);
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
  if (auto it = req.find("env"); it != req.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string()) ::setenv(k.c_str(), v.get<std::string>().c_str(), 1);
  if (auto it = req.find("cwd"); it != req.end() && it->is_string() && !it->get<std::string>().empty())
    if (::chdir(it->get<std::string>().c_str()) != 0) {
      std::cerr << "ork-worker: cannot change to " << it->get<std::string>() << ": " << ::strerror(errno) << std::endl;
      ::_exit(kExitUsage);
    }
  int rc = kExitFailed;
  {
    SignalWatch signals;  // the mask (TERM, INT, CHLD blocked) came through fork; a fresh signalfd reads it
    const char* spec = std::getenv("ORK_TASK_SPEC_PATH");
    rc = run_attempt(spec ? spec : "", signals, store);
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
  if (!sfd) {
    std::cerr << "ork-worker --serve: signalfd: " << ::strerror(errno) << std::endl;
    return kExitUsage;
  }

  std::map<pid_t, std::string> children;  // pid (= process group) -> request id
  using Library = std::unique_ptr<void, int (*)(void*)>;
  std::map<std::string, Library> preloaded;  // object-store libraries, mapped once for all forks
  // Instances of fork-safe object stores (capability "fork_safe"), created once per ORK_OBJECT_STORE value and used
  // by every forked attempt: no per-attempt plugin set-up (root resolution, descriptors, random seeds).
  std::map<std::string, std::unique_ptr<ObjectProxy>> instances;
  std::string buffer;
  bool input_open = true;
  while (input_open || !children.empty()) {
    pollfd fds[2] = {{sfd.get(), POLLIN, 0}, {input_open ? STDIN_FILENO : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return kExitFailed;
    }
    if (fds[0].revents) {
      signalfd_siginfo si;
      while (::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      }
      for (;;) {
        int st = 0;
        pid_t pid = ::waitpid(-1, &st, WNOHANG);
        if (pid <= 0) break;
        auto it = children.find(pid);
        if (it == children.end()) continue;
        json ev{{"id", it->second}};
        if (WIFSIGNALED(st))
          ev["signal"] = WTERMSIG(st);
        else
          ev["exit_code"] = WEXITSTATUS(st);
        children.erase(it);
        emit(ev);
      }
    }
    if (!fds[1].revents) continue;
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
        for (const auto& [pid, cid] : children)
          if (cid == id) ::kill(-pid, req.value("signal", SIGTERM));
        continue;
      }
      if (op != "run") continue;
      std::string store;
      if (auto env = req.find("env"); env != req.end() && env->is_object())
        if (auto ref = env->find("ORK_OBJECT_STORE"); ref != env->end() && ref->is_string()) store = *ref;
      const ObjectProxy* instance = store.empty() ? nullptr : preload_store(store, preloaded, instances);
      pid_t pid = ::fork();
      if (pid == 0) child_main(req, sfd.get(), instance);
      if (pid < 0) {
        emit(json{{"id", id}, {"error", std::string("fork: ") + ::strerror(errno)}});
        continue;
      }
      ::setpgid(pid, pid);  // also in the child: whichever runs first, the group exists before a kill
      children.emplace(pid, id);
      emit(json{{"id", id}, {"pid", pid}});
    }
  }
  return kExitSuccess;
}

}  // namespace ork::worker
