#include "python_forkserver.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

extern char** environ;

namespace ork::worker {

namespace {

namespace fs = std::filesystem;

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Env = std::map<std::string, std::string>;

constexpr size_t kStdoutKeep = size_t{10} << 20, kStderrKeep = 4096;
constexpr auto kFailedBackoff = std::chrono::seconds(60);  // after a failed start, spawn directly for this long

std::string get(const Env& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? "" : it->second;
}

double number(const Env& env, const std::string& key, double fallback) {
  const std::string v = get(env, key);
  if (v.empty()) return fallback;
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  return end && *end == '\0' && d >= 0 ? d : fallback;
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

class Fnv {
 public:
  void add(std::string_view data) {
    for (unsigned char c : data) h_ = (h_ ^ c) * 1099511628211ull;
    h_ = (h_ ^ 0xffu) * 1099511628211ull;
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  uint64_t h_ = 14695981039346656037ull;
};

// This user's private folder for fork-server sockets: ORK_PYTHON_FORKSERVER_DIR, else $XDG_RUNTIME_DIR/ork-python,
// else ${TMPDIR:-/tmp}/ork-python-<uid>. Created 0700; refused unless it is a real directory owned by us with no
// group/other access.
std::optional<std::string> server_dir(const Env& env, std::string& why) {
  std::string dir = get(env, "ORK_PYTHON_FORKSERVER_DIR");
  if (dir.empty()) {
    const std::string rt = get(env, "XDG_RUNTIME_DIR");
    struct stat st {};
    if (!rt.empty() && ::stat(rt.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid()) {
      dir = rt + "/ork-python";
    } else {
      std::string tmp = get(env, "TMPDIR");
      dir = (tmp.empty() ? std::string("/tmp") : tmp) + "/ork-python-" + std::to_string(::geteuid());
    }
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    why = errno_text("cannot create " + dir);
    return std::nullopt;
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    why = dir + " is not a directory";
    return std::nullopt;
  }
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    why = dir + " is not private (it must belong to uid " + std::to_string(::geteuid()) + " with mode 0700)";
    return std::nullopt;
  }
  return dir;
}

void add_stat(Fnv& h, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  h.add(std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
        std::to_string(st.st_mtim.tv_nsec));
}

// One server per interpreter, SDK and preload list (and base_dir when preloading, since the preloaded modules may
// come from it); a changed interpreter or SDK file gets a new one.
std::string server_key(const ForkServerTask& t, const std::string& preload) {
  Fnv h;
  h.add(t.python);
  h.add(t.sdk);
  h.add(preload);
  if (!preload.empty()) h.add(t.cwd);
  add_stat(h, t.python);
  for (const char* f : {"__init__.py", "context.py", "runner.py", "forkserver.py"}) add_stat(h, t.sdk + "/ork/" + f);
  return h.hex();
}

Fd connect_unix(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int rc;
  do rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) fd.reset();
  return fd;
}

// The server's environment: the worker's own (not the task's: it may hold secrets, and the server outlives the
// task) without ORK_* settings of the worker, with PYTHONPATH = sdk[:base_dir when preloading][:$PYTHONPATH].
std::vector<std::string> server_env(const ForkServerTask& t, const std::string& preload) {
  std::vector<std::string> out;
  std::string py_path;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("PYTHONPATH=")) {
      py_path = std::string(kv.substr(11));
      continue;
    }
    if (kv.starts_with("ORK_") || kv.starts_with("PYTHONUNBUFFERED=")) continue;
    out.emplace_back(kv);
  }
  std::string path = t.sdk;
  if (!preload.empty()) path += ":" + t.cwd;
  if (!py_path.empty()) path += ":" + py_path;
  out.push_back("PYTHONPATH=" + path);
  out.push_back("PYTHONUNBUFFERED=1");
  if (!preload.empty()) out.push_back("ORK_PYTHON_PRELOAD=" + preload);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

struct Paths {
  std::string sock, lock, log, failed;
};

// Starts the server (the caller holds the start lock) and waits for its "ready" line; false with `why` otherwise.
bool start_server(const ForkServerTask& t, const std::string& preload, const std::string& dir, const Paths& p,
                  double idle, Clock::time_point deadline, SignalWatch& signals, std::string& why) {
  int rp[2];
  if (::pipe2(rp, O_CLOEXEC) != 0) {
    why = errno_text("pipe");
    return false;
  }
  Fd ready_r(rp[0]), ready_w(rp[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, p.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, ready_w.get(), 3);
  posix_spawn_file_actions_addclosefrom_np(&fa, 4);
  posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP, SIGQUIT}) sigaddset(&defaults, s);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  char idle_text[32];
  std::snprintf(idle_text, sizeof idle_text, "%g", idle);
  std::vector<std::string> args{t.python, "-m",      "ork.forkserver", "--socket", p.sock,
                                "--idle", idle_text, "--ready-fd",     "3"};
  std::vector<std::string> envs = server_env(t, preload);
  auto argv = c_strings(args), envp = c_strings(envs);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ready_w.reset();
  if (rc != 0) {
    why = "cannot start " + t.python + ": " + std::strerror(rc);
    return false;
  }
  std::string answer;
  char buf[512];
  while (answer.find('\n') == std::string::npos) {
    auto now = Clock::now();
    if (now >= deadline || signals.cancel_requested()) {
      why = now >= deadline ? "the fork-server did not get ready in time (see " + p.log + ")" : "cancelled";
      return false;  // it may still come up; the next task finds it
    }
    pollfd fds[2] = {{ready_r.get(), POLLIN, 0}, {signals.fd(), POLLIN, 0}};
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    ::poll(fds, 2, static_cast<int>(std::min<int64_t>(ms, 1000)));
    if (!fds[0].revents) continue;
    ssize_t n = ::read(ready_r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  if (answer.rfind("ready", 0) == 0) return true;
  ::waitpid(pid, nullptr, WNOHANG);
  std::string msg = answer.substr(0, answer.find('\n'));
  why = "the fork-server did not start (" + (msg.empty() ? std::string("it exited during start-up") : msg) +
        "; log: " + p.log + ")";
  return false;
}

// A connection to the running server, starting it under the start lock when needed (only one worker starts it).
Fd connect_or_start(const ForkServerTask& t, const std::string& preload, const std::string& dir, const Paths& p,
                    SignalWatch& signals, std::string& why) {
  if (Fd fd = connect_unix(p.sock)) return fd;
  const auto deadline =
      Clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(1000 * number(t.env, "ORK_PYTHON_FORKSERVER_START_TIMEOUT", 30)));
  Fd lock(::open(p.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock) {
    why = errno_text("cannot open " + p.lock);
    return Fd();
  }
  while (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      why = errno_text("flock " + p.lock);
      return Fd();
    }
    if (signals.cancel_requested()) {
      why = "cancelled";
      return Fd();
    }
    if (Clock::now() >= deadline) {
      why = "timed out waiting for another worker to start the fork-server";
      return Fd();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (Fd fd = connect_unix(p.sock)) return fd;  // started by whoever held the lock
  struct stat st {};
  if (::stat(p.failed.c_str(), &st) == 0 &&
      std::chrono::system_clock::now() - std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec) < kFailedBackoff) {
    why = "it failed to start less than a minute ago; see " + p.log;
    return Fd();
  }
  const double idle = number(t.env, "ORK_PYTHON_FORKSERVER_IDLE", 60);
  if (!start_server(t, preload, dir, p, idle, deadline, signals, why)) {
    if (why != "cancelled") {
      if (FILE* f = std::fopen(p.failed.c_str(), "w")) {
        std::fputs(why.c_str(), f);
        std::fclose(f);
      }
    }
    return Fd();
  }
  ::unlink(p.failed.c_str());
  Fd fd = connect_unix(p.sock);
  if (!fd) why = errno_text("cannot connect to " + p.sock);
  return fd;
}

// The request: 4-byte big-endian length + JSON, with the stdout/stderr write ends attached (SCM_RIGHTS).
bool send_request(int sock, const std::string& payload, int out_w, int err_w) {
  std::string msg(4, '\0');
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) msg[i] = static_cast<char>((n >> (24 - 8 * i)) & 0xff);
  msg += payload;
  iovec iov{msg.data(), msg.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(2 * sizeof(int));
  const int fds[2] = {out_w, err_w};
  std::memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t sent;
  do sent = ::sendmsg(sock, &m, MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent <= 0) return false;
  size_t off = static_cast<size_t>(sent);
  while (off < msg.size()) {
    ssize_t k = ::send(sock, msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    off += static_cast<size_t>(k);
  }
  return true;
}

void keep_tail(std::string& buf, std::string_view data, size_t keep) {
  buf.append(data);
  if (buf.size() > 2 * keep) buf.erase(0, buf.size() - keep);
}

int ms_until(Clock::time_point t, Clock::time_point now) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1;
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1000));
}

enum class Attempt { ran, retry, unusable };

// One request over `sock`. `ran` fills `r`; `retry` when the server went away before the task started.
Attempt run_once(const ForkServerTask& t, int sock, TaskLog& log, SignalWatch& signals, ProcessResult& r,
                 std::string& why) {
  int p[2], q[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    why = errno_text("pipe");
    return Attempt::unusable;
  }
  Fd out_r(p[0]), out_w(p[1]);
  if (::pipe2(q, O_CLOEXEC) != 0) {
    why = errno_text("pipe");
    return Attempt::unusable;
  }
  Fd err_r(q[0]), err_w(q[1]);
  json req{{"env", t.env}, {"cwd", t.cwd}};
  if (!send_request(sock, req.dump(-1, ' ', false, json::error_handler_t::replace), out_w.get(), err_w.get())) {
    why = errno_text("cannot send the request");
    return Attempt::retry;
  }
  out_w.reset();
  err_w.reset();
  ::fcntl(out_r.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(err_r.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) | O_NONBLOCK);

  enum class Stop { none, timeout, cancel } stopping = Stop::none;
  constexpr Clock::time_point kNever = Clock::time_point::max();
  const auto start = Clock::now();
  Clock::time_point deadline = kNever, kill_at = kNever, drain_until = kNever;
  const Clock::time_point answer_by = start + std::chrono::seconds(30);
  if (t.timeout_seconds > 0)
    deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(t.timeout_seconds));
  pid_t pid = -1;
  bool finished = false, sock_open = true, cancel_pending = false, lost = false;
  bool orphan_check = false, logged_any = false;
  int exit_code = 0, sig = 0;
  std::string replies;
  std::vector<char> buf(64 * 1024);

  auto read_from = [&](Fd& fd, bool is_stdout) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      fd.reset();
      return;
    }
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    logged_any = true;
    log.append(chunk);
    keep_tail(is_stdout ? r.stdout_tail : r.stderr_tail, chunk, is_stdout ? kStdoutKeep : kStderrKeep);
  };
  auto stop_group = [&](Stop why_stop, int grace_ms) {
    stopping = why_stop;
    ::kill(-pid, SIGTERM);
    auto at = Clock::now() + std::chrono::milliseconds(grace_ms);
    if (at < kill_at) kill_at = at;
  };

  for (;;) {
    auto now = Clock::now();
    if (finished && ((!out_r && !err_r) || now >= drain_until)) break;
    if (orphan_check && !out_r && !err_r) {
      auto result = get(t.env, "ORK_TASK_RESULT");
      std::error_code ec;
      if (!logged_any && (result.empty() || fs::file_size(result, ec) == 0 || ec)) {
        why = "the fork-server closed the connection before starting the task";
        return Attempt::retry;
      }
      log.note("python fork-server exited after starting the task; its exit status is unknown");
      r.end = ProcessResult::End::signaled;
      r.signal = SIGKILL;
      r.exit_code = 128 + SIGKILL;
      return Attempt::ran;  // the runner's result file, if any, says how the task ended
    }
    if (pid < 0 && !orphan_check && now >= answer_by) {
      why = "no answer from the fork-server";
      return Attempt::unusable;
    }
    if (pid > 0 && !finished) {
      if (cancel_pending && stopping != Stop::cancel) {
        log.note("cancel requested: stopping the task");
        stop_group(Stop::cancel, t.cancel_grace_ms);
      }
      if (stopping == Stop::none && deadline != kNever && now >= deadline) {
        log.note("execution timeout after " + std::to_string(t.timeout_seconds) + " s: stopping the task");
        stop_group(Stop::timeout, t.timeout_grace_ms);
        deadline = kNever;
      }
      if (kill_at != kNever && now >= kill_at) {
        ::kill(-pid, SIGKILL);
        kill_at = kNever;
      }
    }
    pollfd fds[4];
    int nfds = 0, i_out = -1, i_err = -1, i_sock = -1;
    fds[nfds] = {signals.fd(), POLLIN, 0};
    const int i_sig = nfds++;
    if (out_r) fds[i_out = nfds++] = {out_r.get(), POLLIN, 0};
    if (err_r) fds[i_err = nfds++] = {err_r.get(), POLLIN, 0};
    if (sock_open && !finished) fds[i_sock = nfds++] = {sock, POLLIN, 0};
    int wait_ms = 1000;
    if (finished) {
      wait_ms = ms_until(drain_until, now);
    } else {
      if (deadline != kNever) wait_ms = std::min(wait_ms, ms_until(deadline, now));
      if (kill_at != kNever) wait_ms = std::min(wait_ms, ms_until(kill_at, now));
    }
    if (::poll(fds, static_cast<nfds_t>(nfds), wait_ms) < 0 && errno != EINTR) {
      why = errno_text("poll");
      if (pid < 0) return Attempt::unusable;
      ::kill(-pid, SIGKILL);
      lost = finished = true;
      drain_until = Clock::now() + std::chrono::seconds(1);
      continue;
    }
    if (i_out >= 0 && fds[i_out].revents) read_from(out_r, true);
    if (i_err >= 0 && fds[i_err].revents) read_from(err_r, false);
    if (fds[i_sig].revents && signals.cancel_requested() && !finished && stopping != Stop::cancel)
      cancel_pending = true;
    if (i_sock >= 0 && fds[i_sock].revents) {
      ssize_t n = ::read(sock, buf.data(), buf.size());
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n > 0) replies.append(buf.data(), static_cast<size_t>(n));
      for (size_t nl; (nl = replies.find('\n')) != std::string::npos;) {
        json m = json::parse(replies.substr(0, nl), nullptr, false);
        replies.erase(0, nl + 1);
        if (!m.is_object()) continue;
        if (m.contains("error") && pid < 0) {
          why = "the fork-server refused the task: " + m["error"].dump();
          return Attempt::unusable;
        }
        if (m.value("pid", json()).is_number_integer()) pid = m["pid"].get<pid_t>();
        if (m.value("exit_code", json()).is_number_integer()) {
          exit_code = m["exit_code"].get<int>();
          finished = true;
        } else if (m.value("signal", json()).is_number_integer()) {
          sig = m["signal"].get<int>();
          finished = true;
        }
      }
      if (n <= 0) {
        sock_open = false;
        if (pid < 0) {
          // Gone before it told us a pid: it may still have forked the task. Only the task holds the write ends of
          // its output pipes now, so they hang up once no task runs; it then either left a result (it ran) or not.
          orphan_check = true;
          continue;
        }
        if (!finished) {  // the server died under a running task: it cannot report an exit status any more
          log.note("python fork-server exited while the task was running: stopping the task");
          ::kill(-pid, SIGKILL);
          lost = finished = true;
        }
      }
      if (finished) drain_until = Clock::now() + std::chrono::seconds(1);
    }
  }

  if (stopping == Stop::cancel) {
    r.end = ProcessResult::End::cancelled;
  } else if (stopping == Stop::timeout) {
    r.end = ProcessResult::End::timed_out;
  } else if (lost) {
    r.end = ProcessResult::End::signaled;
    r.signal = SIGKILL;
    r.exit_code = 128 + SIGKILL;
  } else if (sig) {
    r.end = ProcessResult::End::signaled;
    r.signal = sig;
    r.exit_code = 128 + sig;
  } else {
    r.end = ProcessResult::End::exited;
    r.exit_code = exit_code;
  }
  r.stderr_tail = utf8_tail(r.stderr_tail, kStderrKeep);
  return Attempt::ran;
}

}  // namespace

bool forkserver_enabled(const std::map<std::string, std::string>& env) {
  std::string v = get(env, "ORK_PYTHON_FORKSERVER");
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return !(v == "0" || v == "false" || v == "off" || v == "no");
}

std::optional<ProcessResult> run_in_forkserver(const ForkServerTask& t, TaskLog& log, SignalWatch& signals,
                                               std::string& why) {
  ProcessResult r;
  if (signals.cancel_requested()) {
    r.end = ProcessResult::End::cancelled;
    return r;
  }
  auto dir = server_dir(t.env, why);
  if (!dir) return std::nullopt;
  std::string preload = get(t.env, "ORK_PYTHON_PRELOAD");
  const std::string base = *dir + "/" + server_key(t, preload);
  const Paths p{base + ".sock", base + ".lock", base + ".log", base + ".failed"};
  if (p.sock.size() >= sizeof(sockaddr_un{}.sun_path)) {
    why = "socket path too long: " + p.sock;
    return std::nullopt;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    Fd sock = connect_or_start(t, preload, *dir, p, signals, why);
    if (!sock) break;
    timeval tv{10, 0};
    ::setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    Attempt a = run_once(t, sock.get(), log, signals, r, why);
    if (a == Attempt::ran) return r;
    if (a == Attempt::unusable) break;
  }
  if (signals.cancel_requested()) {
    r = ProcessResult{};
    r.end = ProcessResult::End::cancelled;
    return r;
  }
  return std::nullopt;
}

}  // namespace ork::worker
