// LISTEN/NOTIFY for the PostgreSQL state store: one background thread holds a dedicated connection with
// `LISTEN <channel>`, blocks in poll() on its socket (and on an eventfd that stops it), and hands every notification
// of this store's schema to the host. A dropped connection is re-opened with backoff, then "reconnected" is reported
// so the host re-scans what it may have missed.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <ork/plugin.hpp>
#include <string>
#include <thread>

#include "pg_conn.hpp"

namespace ork::pg {

// An owned file descriptor (closed on destruction).
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd();
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

class Listener {
 public:
  using Sink = std::function<void(const json& event)>;
  // Connects and LISTENs before returning (a failure there is logged and retried in the background).
  Listener(const Target& target, std::string channel, std::string schema, Sink sink, LogFn log);
  ~Listener();  // wakes the thread through the eventfd and joins it
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // True while the LISTEN connection is up (tests wait on it).
  bool listening() const;

 private:
  void loop();
  bool connect();
  void forward(const char* payload);

  const Target& target_;
  std::string channel_, schema_;
  Sink sink_;
  LogFn log_;
  Fd wake_;
  std::unique_ptr<Conn> conn_;  // owned by the thread once it runs
  std::atomic<bool> up_{false};
  std::thread thread_;
};

}  // namespace ork::pg
