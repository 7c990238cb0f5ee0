// libpq behind the pg_conn.hpp facade: connect with a deadline, statements over the extended protocol (prepared once
// per connection), COPY, SQLSTATE -> ork_status mapping, and the connection pool.
#include "pg_conn.hpp"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

namespace ork::pg {

namespace {

constexpr size_t kMaxPrepared = 256;  // per connection; statements beyond it run unnamed

}  // namespace

std::string one_line(const char* m) {
  std::string s = m ? m : "";
  for (auto& ch : s)
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

namespace {

std::string sql_excerpt(const std::string& sql) {
  std::string s = one_line(sql.substr(0, 80).c_str());
  s.erase(std::unique(s.begin(), s.end(), [](char a, char b) { return a == ' ' && b == ' '; }), s.end());
  return "[" + s + (sql.size() > 80 ? "...]" : "]");
}

// The plugin status for a SQLSTATE: constraint violations are conflicts, bad values invalid, transient server
// conditions (serialization, deadlock, lock/statement timeouts, resource limits, shutdown) retryable.
ork_status status_for(std::string_view state) {
  if (state.size() != 5) return ORK_ERR_INTERNAL;
  std::string_view cls = state.substr(0, 2);
  if (cls == "23") return ORK_ERR_CONFLICT;
  if (cls == "22") return ORK_ERR_INVALID;
  if (cls == "08" || cls == "40" || cls == "53" || cls == "57" || state == "55P03") return ORK_ERR_UNAVAILABLE;
  return ORK_ERR_INTERNAL;
}

uint64_t be(std::string_view b) {
  uint64_t v = 0;
  for (unsigned char ch : b) v = (v << 8) | ch;
  return v;
}

struct ResultPtr {
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Clear> p;
};

}  // namespace

// ---- Target

std::string Target::mask(std::string message) const {
  auto replace_all = [&](const std::string& what, const std::string& with) {
    if (what.empty()) return;
    for (size_t p = message.find(what); p != std::string::npos; p = message.find(what, p + with.size()))
      message.replace(p, what.size(), with);
  };
  if (url != display) replace_all(url, display);
  for (const auto& s : secrets) replace_all(s, "***");
  return message;
}

Target parse_target(const std::string& url, int64_t connect_timeout_ms) {
  Target t;
  t.url = url;
  t.connect_timeout_ms = connect_timeout_ms;
  // The password as written (percent-encoded) sits between "user:" and "@" of the authority.
  size_t scheme = url.find("://");
  if (scheme != std::string::npos) {
    size_t start = scheme + 3, end = url.find_first_of("/?", start);
    std::string authority = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
    size_t at = authority.rfind('@');
    if (at != std::string::npos) {
      std::string userinfo = authority.substr(0, at);
      size_t colon = userinfo.find(':');
      if (colon != std::string::npos) t.secrets.push_back(userinfo.substr(colon + 1));
    }
  }
  std::string prefix = url.substr(0, url.find("://") + 3);
  if (scheme == std::string::npos || (prefix != "postgresql://" && prefix != "postgres://")) {
    t.display = "(a URL not starting with postgresql://)";
    throw_invalid(t.mask("state-postgres config: 'url' must be a postgresql://user@host:port/db URL"));
  }
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (!opts) {
    std::string m = one_line(err);
    if (err) PQfreemem(err);
    t.display = "postgresql://(unparsable)";
    throw_invalid(t.mask("state-postgres config: 'url' is not a valid PostgreSQL URL: " + m));
  }
  std::string user, host, port, dbname;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    std::string k = o->keyword;
    if (k == "user") user = o->val;
    if (k == "host" || (k == "hostaddr" && host.empty())) host = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") dbname = o->val;
    if (k == "password" && *o->val) t.secrets.push_back(o->val);
  }
  PQconninfoFree(opts);
  std::sort(t.secrets.begin(), t.secrets.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  t.display = "postgresql://" + (user.empty() ? "" : user + "@") + (host.empty() ? "localhost" : host) +
              (port.empty() ? "" : ":" + port) + "/" + dbname;
  t.display = t.mask(t.display);
  return t;
}

// ---- Result

int64_t Result::integer(int row, int col) const {
  std::string_view b = bytes(row, col);
  uint64_t v = be(b);
  switch (b.size()) {
    case 2:
      return static_cast<int16_t>(v);
    case 4:
      return static_cast<int32_t>(v);
    case 8:
      return static_cast<int64_t>(v);
    default:
      throw PluginError(ORK_ERR_INTERNAL, "postgres: unexpected integer width " + std::to_string(b.size()));
  }
}

bool Result::boolean(int row, int col) const {
  std::string_view b = bytes(row, col);
  return !b.empty() && b[0] != 0;
}

int64_t Result::time_ms(int row, int col) const {
  std::string_view b = bytes(row, col);
  if (b.size() != 8) throw PluginError(ORK_ERR_INTERNAL, "postgres: unexpected timestamptz width");
  int64_t us = static_cast<int64_t>(be(b));  // microseconds since 2000-01-01 UTC
  if (us == INT64_MAX || us == INT64_MIN) throw PluginError(ORK_ERR_INTERNAL, "postgres: infinite timestamp stored");
  int64_t ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
  return ms + 946'684'800'000;
}

size_t Result::affected() const {
  const char* n = r_ ? PQcmdTuples(r_.get()) : "";
  return n && *n ? static_cast<size_t>(std::strtoull(n, nullptr, 10)) : 0;
}

// ---- Conn

Conn::Conn(const Target& target) : target_(&target) {
  // Keepalive defaults come before the URL (which may override them): a silently dead server is detected in ~25 s
  // instead of hanging a call. The encoding comes after it: the plugin only speaks UTF-8.
  const char* keys[] = {"keepalives", "keepalives_idle", "keepalives_interval",       "keepalives_count",
                        "dbname",     "client_encoding", "fallback_application_name", nullptr};
  const char* vals[] = {"1", "10", "5", "3", target.url.c_str(), "UTF8", "ork-state-postgres", nullptr};
  c_.reset(PQconnectStartParams(keys, vals, 1));
  auto fail_connect = [&](const std::string& why) {
    throw PluginError(ORK_ERR_UNAVAILABLE, target_->mask("state-postgres: cannot connect to " + target_->display +
                                                         ": " + why + " (is the server up?)"));
  };
  if (!c_) fail_connect("out of memory");
  PQsetNoticeProcessor(
      c_.get(), [](void*, const char*) {}, nullptr);  // NOTICEs are not errors; keep stderr clean
  if (PQstatus(c_.get()) == CONNECTION_BAD) fail_connect(one_line(PQerrorMessage(c_.get())));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(target.connect_timeout_ms);
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) fail_connect(one_line(PQerrorMessage(c_.get())));
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      fail_connect("timed out after " + std::to_string(target.connect_timeout_ms) + " ms (connect_timeout_ms)");
    pollfd p{PQsocket(c_.get()), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), INT32_MAX)));
    if (n < 0 && errno != EINTR) fail_connect(std::string("poll: ") + std::strerror(errno));
    if (n > 0) st = PQconnectPoll(c_.get());
  }
}

void Conn::fail(PGresult* raw, const std::string& sql, bool sent) {
  ResultPtr r{std::unique_ptr<PGresult, ResultPtr::Clear>(raw)};
  const char* state = raw ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = raw ? PQresultErrorField(raw, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  const char* detail = raw ? PQresultErrorField(raw, PG_DIAG_MESSAGE_DETAIL) : nullptr;
  const char* severity = raw ? PQresultErrorField(raw, PG_DIAG_SEVERITY_NONLOCALIZED) : nullptr;
  std::string msg = primary ? one_line(primary) : one_line(PQerrorMessage(c_.get()));
  if (msg.empty()) msg = "unknown error";
  std::string_view st = state ? state : "";
  bool fatal = severity && (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0);
  bool lost = PQstatus(c_.get()) != CONNECTION_OK || fatal || st.substr(0, 2) == "08" || st.substr(0, 3) == "57P";
  if (lost)
    throw ConnectionLost(target_->mask("state-postgres: lost the connection to " + target_->display + ": " + msg),
                         sent && !in_tx_);
  std::string full = "postgres: " + msg + (detail ? " (" + one_line(detail) + ")" : "") +
                     (state ? " SQLSTATE " + std::string(state) : "") + " " + sql_excerpt(sql);
  throw PluginError(state ? status_for(st) : ORK_ERR_INTERNAL, target_->mask(full));
}

Result Conn::finish(const std::string& sql, bool executes) {
  ResultPtr last, err;
  while (PGresult* r = PQgetResult(c_.get())) {
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE || s == PGRES_NONFATAL_ERROR) {
      if (!err.p)
        err.p.reset(r);
      else
        PQclear(r);
    } else {
      last.p.reset(r);
    }
  }
  if (err.p) fail(err.p.release(), sql, executes);
  if (!last.p) fail(nullptr, sql, executes);
  return Result(last.p.release());
}

Result Conn::exec(const std::string& sql, const std::vector<Value>& params) {
  if (PQstatus(c_.get()) != CONNECTION_OK)
    throw ConnectionLost(target_->mask("state-postgres: the connection to " + target_->display + " is broken"), false);
  std::vector<std::string> ints;
  ints.reserve(params.size());  // no reallocation: vals points into these strings
  std::vector<const char*> vals;
  vals.reserve(params.size());
  for (const auto& p : params) {
    if (const auto* i = std::get_if<int64_t>(&p)) {
      ints.push_back(std::to_string(*i));
      vals.push_back(ints.back().c_str());
    } else if (const auto* s = std::get_if<std::string>(&p)) {
      if (s->find('\0') != std::string::npos) throw_invalid("PostgreSQL text cannot hold NUL characters");
      vals.push_back(s->c_str());
    } else {
      vals.push_back(nullptr);
    }
  }
  int n = static_cast<int>(params.size());
  auto it = prepared_.find(sql);
  if (it == prepared_.end() && prepared_.size() < kMaxPrepared) {
    std::string name = "ork_" + std::to_string(prepared_.size());
    if (!PQsendPrepare(c_.get(), name.c_str(), sql.c_str(), n, nullptr)) fail(nullptr, sql, false);
    finish(sql, false);
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  int ok = it != prepared_.end()
               ? PQsendQueryPrepared(c_.get(), it->second.c_str(), n, vals.data(), nullptr, nullptr, 1)
               : PQsendQueryParams(c_.get(), sql.c_str(), n, nullptr, vals.data(), nullptr, nullptr, 1);
  if (!ok) fail(nullptr, sql, false);
  return finish(sql, true);
}

void Conn::run(const std::string& sql) {
  if (PQstatus(c_.get()) != CONNECTION_OK)
    throw ConnectionLost(target_->mask("state-postgres: the connection to " + target_->display + " is broken"), false);
  if (!PQsendQuery(c_.get(), sql.c_str())) fail(nullptr, sql, false);
  finish(sql, true);
}

size_t Conn::copy_in(const std::string& copy_sql, const std::string& data) {
  if (!PQsendQuery(c_.get(), copy_sql.c_str())) fail(nullptr, copy_sql, false);
  ResultPtr start{std::unique_ptr<PGresult, ResultPtr::Clear>(PQgetResult(c_.get()))};
  if (!start.p || PQresultStatus(start.p.get()) != PGRES_COPY_IN) {
    while (PGresult* r = PQgetResult(c_.get())) PQclear(r);
    fail(start.p.release(), copy_sql, true);
  }
  constexpr size_t kChunk = 1 << 20;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    int len = static_cast<int>(std::min(kChunk, data.size() - off));
    if (PQputCopyData(c_.get(), data.data() + off, len) != 1) break;  // the error surfaces from finish()
  }
  PQputCopyEnd(c_.get(), nullptr);
  return finish(copy_sql, true).affected();
}

bool Conn::idle_ok() {
  if (!c_ || PQstatus(c_.get()) != CONNECTION_OK || PQtransactionStatus(c_.get()) != PQTRANS_IDLE) return false;
  pollfd p{PQsocket(c_.get()), POLLIN, 0};
  // An idle connection gets no unsolicited input here (no LISTEN): anything readable is the server's goodbye
  // (FATAL 57P01 on shutdown, then EOF) or a reset.
  return ::poll(&p, 1, 0) == 0;
}

// ---- Tx

Tx::Tx(Conn& c) : c_(c) {
  c_.in_tx_ = true;  // a connection lost during BEGIN cannot have committed anything
  try {
    c_.run("BEGIN");
  } catch (...) {
    c_.in_tx_ = false;
    throw;
  }
  open_ = true;
}

Tx::~Tx() {
  if (!open_) return;
  c_.in_tx_ = false;
  if (PQstatus(c_.raw()) != CONNECTION_OK) return;
  try {
    c_.run("ROLLBACK");
  } catch (...) {  // the pool drops a connection left inside a transaction
  }
}

void Tx::commit() {
  open_ = false;
  c_.in_tx_ = false;  // a connection lost during COMMIT leaves the outcome unknown
  c_.run("COMMIT");
}

// ---- Pool

Pool::Pool(Target target, size_t size, LogFn log) : target_(std::move(target)), size_(size), log_(std::move(log)) {}

Pool::~Pool() = default;

std::unique_ptr<Conn> Pool::checkout() {
  std::unique_lock lk(mu_);
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<Conn> c = std::move(idle_.back());
      idle_.pop_back();
      if (c->idle_ok()) {
        ++out_;
        return c;
      }
      lk.unlock();
      c.reset();
      log_(ORK_LOG_INFO, "state-postgres: dropped a pooled connection the server closed (restart?); reconnecting");
      lk.lock();
    }
    if (out_ < size_) break;
    cv_.wait(lk);
  }
  ++out_;
  lk.unlock();
  try {
    return std::make_unique<Conn>(target_);
  } catch (...) {
    lk.lock();
    --out_;
    cv_.notify_one();
    throw;
  }
}

void Pool::checkin(std::unique_ptr<Conn> c) {
  bool keep = c && PQstatus(c->raw()) == CONNECTION_OK && PQtransactionStatus(c->raw()) == PQTRANS_IDLE;
  if (!keep) c.reset();
  std::lock_guard lk(mu_);
  --out_;
  if (keep) {
    try {
      idle_.push_back(std::move(c));
    } catch (...) {  // out of memory: the connection just closes
    }
  }
  cv_.notify_one();
}

// ---- COPY text format

void append_copy_field(std::string& out, const Value& v) {
  if (std::holds_alternative<std::nullptr_t>(v)) {
    out += "\\N";
  } else if (const auto* i = std::get_if<int64_t>(&v)) {
    out += std::to_string(*i);
  } else {
    const std::string& s = std::get<std::string>(v);
    if (s.find('\0') != std::string::npos) throw_invalid("PostgreSQL text cannot hold NUL characters");
    for (char ch : s) {
      switch (ch) {
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          out += ch;
      }
    }
  }
}

}  // namespace ork::pg
