// RAII libpq for the PostgreSQL state store: connections (non-blocking connect with a millisecond deadline),
// parameterized statements with binary results and a per-connection prepared-statement cache, COPY FROM STDIN,
// transactions, and a fixed-size pool that replaces broken connections and retries a call once when that is safe.
// PostgreSQL errors become ork::PluginError codes by SQLSTATE; no message ever carries the URL's password.
#pragma once

#include <libpq-fe.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <ork/plugin.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace ork::pg {

// One statement parameter, sent in text format: NULL, an integer or text (timestamps, JSON, booleans as text).
using Value = std::variant<std::nullptr_t, int64_t, std::string>;

using LogFn = std::function<void(ork_log_level, const std::string&)>;

// Where to connect. `url` is only ever handed to libpq; messages use `display` and go through mask().
struct Target {
  std::string url;
  std::string display;               // postgresql://user@host:port/db, without the password
  std::vector<std::string> secrets;  // the password as written in the URL and decoded: replaced by *** in messages
  int64_t connect_timeout_ms = 5000;
  std::string mask(std::string message) const;
};

// Validates a postgresql:// or postgres:// URL (INVALID when malformed, with the password masked).
Target parse_target(const std::string& url, int64_t connect_timeout_ms);

// The connection broke during a call. maybe_committed: the statement may have taken effect on the server (it was
// sent outside a transaction, or it was the COMMIT), so only an idempotent call may be repeated.
class ConnectionLost : public PluginError {
 public:
  ConnectionLost(const std::string& message, bool maybe_committed)
      : PluginError(ORK_ERR_UNAVAILABLE, message), maybe_committed_(maybe_committed) {}
  bool maybe_committed() const noexcept { return maybe_committed_; }

 private:
  bool maybe_committed_;
};

// A statement result in binary format (text columns are raw bytes).
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* r) : r_(r) {}
  int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
  int cols() const { return r_ ? PQnfields(r_.get()) : 0; }
  bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view bytes(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col))};
  }
  int64_t integer(int row, int col) const;  // int2 / int4 / int8
  bool boolean(int row, int col) const;
  int64_t time_ms(int row, int col) const;  // timestamptz as Unix epoch milliseconds
  size_t affected() const;                  // rows an INSERT / UPDATE / DELETE touched

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Clear> r_;
};

class Conn {
 public:
  // Connects within target.connect_timeout_ms; PluginError(UNAVAILABLE) naming target.display otherwise.
  explicit Conn(const Target& target);
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Runs one parameterized statement (prepared once per connection and cached); binary results.
  Result exec(const std::string& sql, const std::vector<Value>& params = {});
  // Runs parameterless SQL through the simple protocol (BEGIN, COMMIT, DDL, LISTEN).
  void run(const std::string& sql);
  // COPY ... FROM STDIN with `data` in COPY text format; returns the rows copied.
  size_t copy_in(const std::string& copy_sql, const std::string& data);

  // True when an idle connection is still usable: status OK, outside any transaction, nothing unexpected pending
  // on its socket (a server that shut down leaves a FATAL message and EOF there).
  bool idle_ok();
  PGconn* raw() const { return c_.get(); }
  const Target& target() const { return *target_; }

 private:
  friend class Tx;
  [[noreturn]] void fail(PGresult* r, const std::string& sql, bool sent);
  Result finish(const std::string& sql, bool executes);

  struct Finish {
    void operator()(PGconn* c) const { PQfinish(c); }
  };
  const Target* target_;
  std::unique_ptr<PGconn, Finish> c_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
  bool in_tx_ = false;                                     // inside BEGIN ... COMMIT (a lost statement did not commit)
};

// BEGIN now; ROLLBACK on destruction unless commit() ran. A connection lost before COMMIT leaves nothing written.
class Tx {
 public:
  explicit Tx(Conn& c);
  ~Tx();
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;
  void commit();

 private:
  Conn& c_;
  bool open_ = false;
};

// How a call may be repeated after its connection broke.
enum class Retry {
  Always,          // idempotent: repeat once on a new connection
  IfNotCommitted,  // repeat only when the lost statement cannot have taken effect
};

// Up to `size` connections, opened on demand and shared by any number of threads (a caller waits for a free one).
class Pool {
 public:
  Pool(Target target, size_t size, LogFn log);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs f(Conn&) on a pooled connection. A stale idle connection is replaced before use; a connection lost during
  // the call is dropped and the call repeated once on a fresh one when `retry` allows, else UNAVAILABLE.
  template <class F>
  auto run(Retry retry, F&& f) -> decltype(f(std::declval<Conn&>())) {
    for (int attempt = 0;; ++attempt) {
      Lease lease(*this);
      try {
        return f(lease.conn());
      } catch (const ConnectionLost& e) {
        lease.discard();
        if (attempt > 0 || (retry == Retry::IfNotCommitted && e.maybe_committed()))
          throw PluginError(ORK_ERR_UNAVAILABLE, e.maybe_committed()
                                                     ? std::string(e.what()) + " (the outcome of this call is unknown)"
                                                     : std::string(e.what()));
        log_(ORK_LOG_WARN, std::string(e.what()) + "; retrying once on a new connection");
      }
    }
  }

  const Target& target() const { return target_; }

 private:
  class Lease {
   public:
    explicit Lease(Pool& p) : p_(p), c_(p.checkout()) {}
    ~Lease() { p_.checkin(std::move(c_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Conn& conn() { return *c_; }
    void discard() { c_.reset(); }

   private:
    Pool& p_;
    std::unique_ptr<Conn> c_;
  };

  std::unique_ptr<Conn> checkout();
  void checkin(std::unique_ptr<Conn> c);

  Target target_;
  size_t size_;
  LogFn log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  size_t out_ = 0;  // connections checked out or being opened
};

// A libpq message (trailing newline, maybe several lines) as one line for logs and error JSON.
std::string one_line(const char* message);

// COPY text format: appends `v` escaped (or \N) to `out`.
void append_copy_field(std::string& out, const Value& v);

}  // namespace ork::pg
