// Poco Data SQLite behind the Db facade. The session is built from SQLite::SessionImpl directly (no connector
// registration in Poco's process-wide SessionFactory, so unloading the plugin leaves nothing dangling). exec() and
// query() run on the session's own connection through statements prepared once and kept (SQLite compiles a statement
// in tens of microseconds; a task transition runs several); batches go through Poco's bulk binding.
#include "sqlite_db.hpp"

#include <Poco/AutoPtr.h>
#include <Poco/Data/SQLite/SQLiteException.h>
#include <Poco/Data/SQLite/SessionImpl.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Nullable.h>
#include <sqlite3.h>

#include <ork/plugin.hpp>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace ork::sqlite {

namespace PD = Poco::Data;
using PD::Keywords::bind;
using PD::Keywords::into;
using PD::Keywords::use;
using NText = Poco::Nullable<std::string>;
using NInt = Poco::Nullable<Poco::Int64>;

namespace {

// Maps a Poco/SQLite exception to the plugin status the host understands.
[[noreturn]] void rethrow(const Poco::Exception& e, const std::string& sql) {
  std::string msg = "sqlite: " + e.displayText() + " [" + sql.substr(0, 60) + (sql.size() > 60 ? "...]" : "]");
  if (dynamic_cast<const PD::SQLite::ConstraintViolationException*>(&e)) throw PluginError(ORK_ERR_CONFLICT, msg);
  if (dynamic_cast<const PD::SQLite::DBLockedException*>(&e) ||
      dynamic_cast<const PD::SQLite::TableLockedException*>(&e) ||
      dynamic_cast<const PD::SQLite::LockProtocolException*>(&e))
    throw PluginError(ORK_ERR_UNAVAILABLE, msg + " (database busy; retry)");
  throw PluginError(ORK_ERR_INTERNAL, msg);
}

template <class F>
auto mapped(const std::string& sql, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Poco::Exception& e) {
    rethrow(e, sql);
  }
}

void bind_params(PD::Statement& st, const std::vector<Value>& params) {
  for (const auto& p : params) {
    if (const auto* i = std::get_if<int64_t>(&p))
      st.addBind(bind(NInt(static_cast<Poco::Int64>(*i))));
    else if (const auto* s = std::get_if<std::string>(&p))
      st.addBind(bind(NText(*s)));
    else
      st.addBind(bind(NText()));
  }
}

// One typed column buffer for Poco's bulk bindings and extractions.
struct Buffer {
  std::vector<NText> text;
  std::vector<NInt> ints;
};

// Maps a SQLite result code to the plugin status the host understands (as rethrow() does for Poco's exceptions).
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, const std::string& sql) {
  std::string msg =
      std::string("sqlite: ") + sqlite3_errmsg(db) + " [" + sql.substr(0, 60) + (sql.size() > 60 ? "...]" : "]");
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      throw PluginError(ORK_ERR_CONFLICT, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL:
      throw PluginError(ORK_ERR_UNAVAILABLE, msg + " (database busy; retry)");
    default:
      throw PluginError(ORK_ERR_INTERNAL, msg);
  }
}

using Stmt = std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>;

// Resets a cached statement and drops its bindings when a call is done with it, whatever happened.
struct StmtUse {
  sqlite3_stmt* st;
  ~StmtUse() {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
};

}  // namespace

struct Db::Impl {
  static constexpr size_t kMaxCached = 256;  // statements differ only by shape (values are bound): a few dozen
  PD::Session session;
  sqlite3* db;
  std::unordered_map<std::string, Stmt> cache;
  explicit Impl(const std::string& path)
      : session(Poco::makeAuto<PD::SQLite::SessionImpl>(path)), db(PD::SQLite::Utility::dbHandle(session)) {}

  // The prepared statement for `sql` (one statement), compiled on first use. Null when `sql` holds several.
  sqlite3_stmt* prepare(const std::string& sql) {
    if (auto it = cache.find(sql); it != cache.end()) return it->second.get();
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    int rc =
        sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size() + 1), SQLITE_PREPARE_PERSISTENT, &raw, &tail);
    Stmt st(raw, sqlite3_finalize);
    if (rc != SQLITE_OK) throw_sqlite(db, rc, sql);
    if (tail && std::string_view(tail).find_first_not_of(" \t\r\n;") != std::string_view::npos) return nullptr;
    if (cache.size() >= kMaxCached) cache.clear();
    return cache.emplace(sql, std::move(st)).first->second.get();
  }

  void bind(sqlite3_stmt* st, const std::vector<Value>& params, const std::string& sql) {
    for (size_t i = 0; i < params.size(); ++i) {
      const int at = static_cast<int>(i + 1);
      int rc;
      if (const auto* n = std::get_if<int64_t>(&params[i]))
        rc = sqlite3_bind_int64(st, at, *n);
      else if (const auto* t = std::get_if<std::string>(&params[i]))  // params outlive the statement's use
        rc = sqlite3_bind_text(st, at, t->data(), static_cast<int>(t->size()), SQLITE_STATIC);
      else
        rc = sqlite3_bind_null(st, at);
      if (rc != SQLITE_OK) throw_sqlite(db, rc, sql);
    }
  }
};

Db::Db(const std::string& path, int64_t busy_timeout_ms) {
  mapped("open", [&] {
    impl_ = std::make_unique<Impl>(path);
    exec("PRAGMA busy_timeout = " + std::to_string(busy_timeout_ms));
    return 0;
  });
}

Db::~Db() = default;

size_t Db::exec(const std::string& sql, const std::vector<Value>& params) {
  if (sqlite3_stmt* st = impl_->prepare(sql)) {
    StmtUse use{st};
    impl_->bind(st, params, sql);
    const int64_t before = sqlite3_total_changes64(impl_->db);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) throw_sqlite(impl_->db, rc, sql);
    return static_cast<size_t>(sqlite3_total_changes64(impl_->db) - before);
  }
  return mapped(sql, [&] {  // several statements in one string (schema migrations): Poco runs them
    PD::Statement st(impl_->session);
    st << sql;
    bind_params(st, params);
    return st.execute();
  });
}

std::vector<Row> Db::query(const std::string& sql, const std::vector<Value>& params,
                           const std::vector<ColType>& columns) {
  sqlite3_stmt* st = impl_->prepare(sql);
  if (!st) throw PluginError(ORK_ERR_INTERNAL, "sqlite: a query must be one statement [" + sql.substr(0, 60) + "]");
  StmtUse use{st};
  impl_->bind(st, params, sql);
  std::vector<Row> rows;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    Row& row = rows.emplace_back();
    row.reserve(columns.size());
    for (size_t c = 0; c < columns.size(); ++c) {
      const int col = static_cast<int>(c);
      if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        row.emplace_back(nullptr);
      } else if (columns[c] == ColType::Int) {
        row.emplace_back(std::in_place_type<int64_t>, sqlite3_column_int64(st, col));
      } else {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(st, col));
        row.emplace_back(std::in_place_type<std::string>, text ? text : "",
                         static_cast<size_t>(sqlite3_column_bytes(st, col)));
      }
    }
  }
  if (rc != SQLITE_DONE) throw_sqlite(impl_->db, rc, sql);
  return rows;
}

size_t Db::exec_batch(const std::string& sql, std::vector<BatchColumn> columns) {
  if (columns.empty() || columns[0].values.empty()) return 0;
  return mapped(sql, [&] {
    size_t n = columns[0].values.size();
    std::vector<Buffer> bufs(columns.size());  // sized once: Poco keeps references into it
    PD::Statement st(impl_->session);
    st << sql;
    for (size_t c = 0; c < columns.size(); ++c) {
      if (columns[c].values.size() != n) throw PluginError(ORK_ERR_INTERNAL, "exec_batch: ragged columns");
      if (columns[c].type == ColType::Int) {
        auto& out = bufs[c].ints;
        out.reserve(n);
        for (auto& v : columns[c].values) {
          if (const auto* i = std::get_if<int64_t>(&v))
            out.emplace_back(static_cast<Poco::Int64>(*i));
          else
            out.emplace_back();
        }
        st.addBind(use(out));
      } else {
        auto& out = bufs[c].text;
        out.reserve(n);
        for (auto& v : columns[c].values) {
          if (auto* s = std::get_if<std::string>(&v))
            out.emplace_back(std::move(*s));
          else
            out.emplace_back();
        }
        st.addBind(use(out));
      }
    }
    return st.execute();
  });
}

Transaction::Transaction(Db& db, Mode mode) : db_(db) {
  db_.exec(mode == Mode::Write ? "BEGIN IMMEDIATE" : "BEGIN");
  open_ = true;
}

Transaction::~Transaction() {
  if (!open_) return;
  try {
    db_.exec("ROLLBACK");
  } catch (...) {  // SQLite may already have rolled back (e.g. after an I/O error); nothing else to do
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  open_ = false;
}

}  // namespace ork::sqlite
