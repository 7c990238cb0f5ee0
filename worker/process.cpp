#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace ork::worker {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

struct Pipe {
  Fd r, w;
};

Pipe make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe");
  return {Fd(p[0]), Fd(p[1])};
}

void set_nonblock(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// posix_spawn's attribute and file-action objects, destroyed on scope exit.
struct SpawnActions {
  posix_spawn_file_actions_t fa;
  SpawnActions() { posix_spawn_file_actions_init(&fa); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&fa); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
};

struct SpawnAttr {
  posix_spawnattr_t attr;
  SpawnAttr() { posix_spawnattr_init(&attr); }
  ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
};

// A started child: if still unreaped when this goes out of scope (an exception), its group is killed and reaped.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  void release() { pid_ = -1; }

 private:
  pid_t pid_;
};

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Appends to a tail buffer that keeps at least the last `keep` bytes.
void keep_tail(std::string& buf, std::string_view data, size_t keep) {
  buf.append(data);
  if (buf.size() > 2 * keep) buf.erase(0, buf.size() - keep);
}

int ms_until(Clock::time_point t, Clock::time_point now) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1;
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1000));
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(std::exchange(o.fd_, -1));
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void TaskLog::mask(const Masker& m) {
  std::lock_guard lock(mu_);
  if (!m.empty()) masking_.emplace(m);
}

void TaskLog::tee_to(int fd) {
  std::lock_guard lock(mu_);
  tee_fd_ = fd;
}

void TaskLog::store(std::string_view data) {
  total_ += data.size();
  if (data_.size() < cap_) data_.append(data.substr(0, cap_ - data_.size()));
}

void TaskLog::append(std::string_view data) {
  std::string masked;
  {
    std::lock_guard lock(mu_);
    if (masking_) {
      masked = masking_->feed(data);
      data = masked;
    }
    store(data);
  }
  if (tee_) write_all(tee_fd_, data);
}

void TaskLog::flush() {
  std::string rest;
  {
    std::lock_guard lock(mu_);
    if (!masking_) return;
    rest = masking_->finish();
    store(rest);
  }
  if (tee_) write_all(tee_fd_, rest);
}

void TaskLog::note(std::string_view line) {
  append("[ork-worker] " + std::string(line) + "\n");
}

std::string TaskLog::text() const {
  std::lock_guard lock(mu_);
  std::string out = data_;
  if (total_ > data_.size())
    out += "\n[ork-worker] log truncated: " + std::to_string(total_ - data_.size()) + " bytes dropped (limit " +
           std::to_string(cap_) + " bytes)\n";
  return out;
}

size_t TaskLog::total() const {
  std::lock_guard lock(mu_);
  return total_;
}

SignalWatch::SignalWatch() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  if (pthread_sigmask(SIG_BLOCK, &set, &old_) != 0) throw std::runtime_error("pthread_sigmask failed");
  fd_ = Fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd_) throw_errno("signalfd");
  ::signal(SIGPIPE, SIG_IGN);
}

SignalWatch::SignalWatch(ThreadMode) : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), thread_mode_(true) {
  if (!fd_) throw_errno("eventfd");
}

SignalWatch::~SignalWatch() = default;  // the mask stays: unblocking would deliver a pending SIGTERM now

bool SignalWatch::cancel_requested() {
  if (thread_mode_) {
    uint64_t v = 0;
    if (::read(fd_.get(), &v, sizeof v) == static_cast<ssize_t>(sizeof v) && v > 0) cancelled_ = true;
    return cancelled_;
  }
  signalfd_siginfo si;
  while (::read(fd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) cancelled_ = true;
  }
  return cancelled_;
}

void SignalWatch::cancel() {
  if (!thread_mode_) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
}

void SignalWatch::set_task(pid_t pgid) {
  {
    std::lock_guard lock(task_mu_);
    task_ = pgid;
  }
  if (pgid > 0 && on_task) on_task(pgid);
}

void SignalWatch::kill_task(int sig) {
  std::lock_guard lock(task_mu_);
  if (task_ > 0) ::kill(-task_, sig);
}

std::string utf8_tail(std::string_view s, size_t max) {
  size_t start = s.size() > max ? s.size() - max : 0;
  while (start < s.size() && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) ++start;
  return std::string(s.substr(start));
}

ProcessResult run_process(const ProcessSpec& spec, TaskLog& log, SignalWatch& signals) {
  constexpr size_t kStdoutKeep = size_t{10} << 20, kStderrKeep = 4096;
  ProcessResult r;
  if (signals.cancel_requested()) {
    r.end = ProcessResult::End::cancelled;
    return r;
  }
  Pipe out = make_pipe(), err = make_pipe();
  std::optional<Pipe> in;
  if (spec.stdin_data) in = make_pipe();

  SpawnActions fa;
  if (in)
    posix_spawn_file_actions_adddup2(&fa.fa, in->r.get(), STDIN_FILENO);
  else
    posix_spawn_file_actions_addopen(&fa.fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa.fa, out.w.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa.fa, err.w.get(), STDERR_FILENO);
  if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa.fa, spec.cwd.c_str());

  SpawnAttr attr;
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP, SIGQUIT}) sigaddset(&defaults, s);
  posix_spawnattr_setflags(&attr.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr.attr, 0);
  posix_spawnattr_setsigmask(&attr.attr, &none);
  posix_spawnattr_setsigdefault(&attr.attr, &defaults);

  auto argv = c_strings(spec.argv);
  auto envp = c_strings(spec.env);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &fa.fa, &attr.attr, argv.data(), envp.data());
  if (rc != 0) {
    r.end = ProcessResult::End::spawn_failed;
    r.spawn_error = std::strerror(rc);
    return r;
  }
  ChildGuard child(pid);
  // The leader's exit wakes poll() through a pidfd: in thread mode SIGCHLD goes to the resident worker's own signalfd.
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // glibc 2.36 declares pidfd_open without C linkage
  signals.set_task(pid);
  struct TaskReset {
    SignalWatch& s;
    ~TaskReset() { s.set_task(0); }
  } task_reset{signals};
  out.w.reset();
  err.w.reset();
  set_nonblock(out.r.get());
  set_nonblock(err.r.get());
  size_t in_off = 0;
  if (in) {
    in->r.reset();
    set_nonblock(in->w.get());
  }

  enum class Stop { none, timeout, cancel } stopping = Stop::none;
  const auto start = Clock::now();
  // Clock::time_point::max() means "not set" (std::optional here trips GCC 12 -Wmaybe-uninitialized at -O2).
  constexpr Clock::time_point kNever = Clock::time_point::max();
  Clock::time_point deadline = kNever, kill_at = kNever, drain_until = kNever;
  if (spec.timeout_seconds > 0)
    deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(spec.timeout_seconds));
  int status = 0;
  bool exited = false;
  std::vector<char> buf(64 * 1024);

  auto read_from = [&](Fd& fd, bool is_stdout) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      fd.reset();
      return;
    }
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    log.append(chunk);
    keep_tail(is_stdout ? r.stdout_tail : r.stderr_tail, chunk, is_stdout ? kStdoutKeep : kStderrKeep);
  };
  auto stop_group = [&](Stop why, int grace_ms) {
    stopping = why;
    ::kill(-pid, SIGTERM);
    auto at = Clock::now() + std::chrono::milliseconds(grace_ms);
    if (at < kill_at) kill_at = at;
  };

  for (;;) {
    auto now = Clock::now();
    if (exited && ((!out.r && !err.r) || now >= drain_until)) break;
    if (!exited) {
      if (stopping == Stop::none && deadline != kNever && now >= deadline) {
        log.note("execution timeout after " + std::to_string(spec.timeout_seconds) + " s: stopping the task");
        stop_group(Stop::timeout, spec.timeout_grace_ms);
        deadline = kNever;
      }
      if (kill_at != kNever && now >= kill_at) {
        ::kill(-pid, SIGKILL);
        kill_at = kNever;
      }
    }

    pollfd fds[5];
    int nfds = 0, i_out = -1, i_err = -1, i_in = -1;
    fds[nfds] = {signals.fd(), POLLIN, 0};
    const int i_sig = nfds++;
    if (!exited && pidfd) fds[nfds++] = {pidfd.get(), POLLIN, 0};
    if (out.r) fds[i_out = nfds++] = {out.r.get(), POLLIN, 0};
    if (err.r) fds[i_err = nfds++] = {err.r.get(), POLLIN, 0};
    if (in && in->w) fds[i_in = nfds++] = {in->w.get(), POLLOUT, 0};
    int wait_ms = 1000;
    if (exited) {
      wait_ms = ms_until(drain_until, now);
    } else {
      if (deadline != kNever) wait_ms = std::min(wait_ms, ms_until(deadline, now));
      if (kill_at != kNever) wait_ms = std::min(wait_ms, ms_until(kill_at, now));
    }
    if (::poll(fds, static_cast<nfds_t>(nfds), wait_ms) < 0 && errno != EINTR) throw_errno("poll");

    if (i_out >= 0 && fds[i_out].revents) read_from(out.r, true);
    if (i_err >= 0 && fds[i_err].revents) read_from(err.r, false);
    if (i_in >= 0 && fds[i_in].revents) {
      const std::string& data = *spec.stdin_data;
      ssize_t n = in_off < data.size() ? ::write(in->w.get(), data.data() + in_off, data.size() - in_off) : 0;
      if (n > 0) in_off += static_cast<size_t>(n);
      if (in_off >= data.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) in->w.reset();
    }
    if (fds[i_sig].revents && signals.cancel_requested() && !exited && stopping != Stop::cancel) {
      log.note("cancel requested: stopping the task");
      stop_group(Stop::cancel, spec.cancel_grace_ms);
    }
    if (!exited) {
      siginfo_t si{};
      if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) {
        ::kill(-pid, SIGKILL);  // leftovers of the group (the zombie leader keeps the group id reserved)
        signals.set_task(0);    // before the reap frees the pid
        ::waitpid(pid, &status, 0);
        child.release();
        exited = true;
        drain_until = Clock::now() + std::chrono::seconds(1);
        if (in) in->w.reset();
      }
    }
  }

  if (stopping == Stop::cancel) {
    r.end = ProcessResult::End::cancelled;
  } else if (stopping == Stop::timeout) {
    r.end = ProcessResult::End::timed_out;
  } else if (WIFSIGNALED(status)) {
    r.end = ProcessResult::End::signaled;
    r.signal = WTERMSIG(status);
    r.exit_code = 128 + r.signal;
  } else {
    r.end = ProcessResult::End::exited;
    r.exit_code = WEXITSTATUS(status);
  }
  r.stderr_tail = utf8_tail(r.stderr_tail, kStderrKeep);
  return r;
}

}  // namespace ork::worker
