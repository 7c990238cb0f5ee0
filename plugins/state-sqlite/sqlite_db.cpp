// Poco Data SQLite behind the Db facade. The session is built from SQLite::SessionImpl directly (no connector
// registration in Poco's process-wide SessionFactory, so unloading the plugin leaves nothing dangling).
#include "sqlite_db.hpp"

#include <Poco/AutoPtr.h>
#include <Poco/Data/SQLite/SQLiteException.h>
#include <Poco/Data/SQLite/SessionImpl.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Nullable.h>

#include <ork/plugin.hpp>
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

}  // namespace

struct Db::Impl {
  PD::Session session;
  explicit Impl(const std::string& path) : session(Poco::makeAuto<PD::SQLite::SessionImpl>(path)) {}
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
  return mapped(sql, [&] {
    PD::Statement st(impl_->session);
    st << sql;
    bind_params(st, params);
    return st.execute();
  });
}

std::vector<Row> Db::query(const std::string& sql, const std::vector<Value>& params,
                           const std::vector<ColType>& columns) {
  return mapped(sql, [&] {
    std::vector<Buffer> bufs(columns.size());  // sized once: Poco keeps references into it
    PD::Statement st(impl_->session);
    st << sql;
    bind_params(st, params);
    for (size_t c = 0; c < columns.size(); ++c) {
      if (columns[c] == ColType::Int)
        st, into(bufs[c].ints);
      else
        st, into(bufs[c].text);
    }
    st.execute();
    size_t n = columns.empty() ? 0 : (columns[0] == ColType::Int ? bufs[0].ints.size() : bufs[0].text.size());
    std::vector<Row> rows(n);
    for (size_t r = 0; r < n; ++r) {
      rows[r].reserve(columns.size());
      for (size_t c = 0; c < columns.size(); ++c) {
        Row& row = rows[r];
        if (columns[c] == ColType::Int) {
          const NInt& v = bufs[c].ints[r];
          if (v.isNull())
            row.emplace_back(nullptr);
          else
            row.emplace_back(std::in_place_type<int64_t>, v.value());
        } else {
          NText& v = bufs[c].text[r];
          if (v.isNull())
            row.emplace_back(nullptr);
          else
            row.emplace_back(std::in_place_type<std::string>, std::move(v.value()));
        }
      }
    }
    return rows;
  });
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
