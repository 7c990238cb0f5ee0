// Child processes for task runtimes: RAII fds, the task log, signal handling through a signalfd, and one supervised
// run (own process group, output capture, timeout and cancellation).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/secrets.hpp"

namespace ork::worker {

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// The task log: runtime output interleaved with worker notes, tee'd to our stderr (unless `tee` is false), capped at
// `cap` bytes (the rest is dropped and counted), with secret values masked as "***". Thread-safe: the heartbeat thread
// uploads snapshots while the runtime writes.
class TaskLog {
 public:
  explicit TaskLog(size_t cap = size_t{10} << 20, bool tee = true) : cap_(cap), tee_(tee) {}
  void mask(const Masker& m);  // from now on; text that may start a secret is held back until flush()
  void tee_to(int fd);         // tee to this descriptor instead of stderr (not owned; set before the first append)
  void append(std::string_view data);
  void note(std::string_view line);  // "[ork-worker] line\n"
  void flush();                      // writes out text held back by masking
  std::string text() const;          // the log, plus a truncation note if bytes were dropped
  size_t total() const;              // bytes ever appended: unchanged means nothing new to upload

 private:
  void store(std::string_view data);  // with mu_ held

  mutable std::mutex mu_;
  std::string data_;
  size_t cap_;
  bool tee_;
  int tee_fd_ = 2;
  size_t total_ = 0;
  std::optional<MaskStream> masking_;
};

// Where an attempt learns it is cancelled. Process mode: blocks SIGTERM, SIGINT and SIGCHLD in the calling thread and
// reads them from a signalfd (construct it first in main(), before any thread starts, so every thread inherits the
// mask; SIGPIPE is ignored). Thread mode (an attempt on a thread of the resident worker): cancel() from another
// thread, through an eventfd; no signal state is touched.
class SignalWatch {
 public:
  struct ThreadMode {};
  SignalWatch();
  explicit SignalWatch(ThreadMode);
  ~SignalWatch();
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  int fd() const { return fd_.get(); }
  // Reads pending signals; true once SIGTERM or SIGINT has arrived, or cancel() ran (sticky).
  bool cancel_requested();
  // Thread mode: asks the attempt to stop (as SIGTERM would a process-mode worker). Any thread.
  void cancel();
  // The process group of the task being run (0: none); kill_task() signals it. run_process keeps it current, and
  // calls `on_task` (set before the attempt starts) with each new group.
  void set_task(pid_t pgid);
  void kill_task(int sig);
  std::function<void(pid_t)> on_task;

 private:
  Fd fd_;
  bool thread_mode_ = false;
  sigset_t old_{};
  bool cancelled_ = false;
  std::mutex task_mu_;
  pid_t task_ = 0;
};

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH when it has no '/'
  std::vector<std::string> env;   // complete environment, "K=V"
  std::string cwd;
  std::optional<std::string> stdin_data;  // written to stdin, then closed; nullopt: /dev/null
  double timeout_seconds = 0;             // <= 0: none
  int timeout_grace_ms = 5000;            // SIGTERM → SIGKILL on timeout
  int cancel_grace_ms = 3000;             // SIGTERM → SIGKILL on cancellation
};

struct ProcessResult {
  enum class End { exited, signaled, timed_out, cancelled, spawn_failed };
  End end = End::exited;
  int exit_code = 0;  // exit status, or 128 + signal
  int signal = 0;
  std::string spawn_error;  // strerror of a failed spawn
  std::string stdout_tail;  // the last up to 10 MB of stdout
  std::string stderr_tail;  // the last up to 4 KB of stderr
};

// Runs one process in its own process group; its stdout and stderr go to `log` as they arrive. On timeout or
// cancellation the whole group gets SIGTERM, then SIGKILL after the grace time. When the leader exits, what is left
// of its group is killed and the pipes are drained for at most a second.
ProcessResult run_process(const ProcessSpec& spec, TaskLog& log, SignalWatch& signals);

// The last `max` bytes of s, starting on a UTF-8 character boundary.
std::string utf8_tail(std::string_view s, size_t max);

}  // namespace ork::worker
