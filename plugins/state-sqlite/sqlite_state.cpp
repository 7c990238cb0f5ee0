// ork-state-sqlite: the StateStore contract of docs/plugin-abi.md on one SQLite file (WAL, versioned schema).
// One connection per instance, serialized by a mutex; several processes share the file through SQLite's locking
// (every multi-statement write runs in BEGIN IMMEDIATE, every CAS is a single conditional UPDATE).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <initializer_list>
#include <mutex>
#include <ork/plugin.hpp>
#include <ork/state_records.hpp>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sqlite_db.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace ork::sqlite {
namespace {

using namespace ork::records;  // record layouts and timestamps shared with every state plugin

// ---- Schema migrations, applied in order; schema_version records each one. Never edit a released entry.

const std::vector<std::vector<std::string>>& migrations() {
  static const std::vector<std::vector<std::string>> m = {
      {// v1: the reference schema adapted to SQLite (TEXT ids and timestamps, JSON as TEXT).
       R"(CREATE TABLE workflows (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, definition TEXT NOT NULL, schedule TEXT, version TEXT,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL))",
       R"(CREATE TABLE runs (
            id TEXT PRIMARY KEY, workflow_id TEXT, workflow_name TEXT NOT NULL, workflow_version TEXT,
            status TEXT NOT NULL DEFAULT 'pending', triggered_by TEXT, input TEXT, owner TEXT, lease_expires TEXT,
            error TEXT, started_at TEXT, finished_at TEXT, created_at TEXT NOT NULL))",
       R"(CREATE TABLE task_runs (
            id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            task_name TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempt INTEGER NOT NULL DEFAULT 0,
            max_retries INTEGER NOT NULL DEFAULT 0, parallel_index INTEGER, parallel_count INTEGER, executor TEXT,
            executor_id TEXT, input TEXT, output TEXT, error TEXT, not_before TEXT, heartbeat_at TEXT,
            dispatched_at TEXT, started_at TEXT, finished_at TEXT, created_at TEXT NOT NULL,
            seq INTEGER NOT NULL))",
       // UNIQUE(run_id, task_name, parallel_index) with NULL counted as one value (SQLite's UNIQUE would not).
       "CREATE UNIQUE INDEX ux_task_runs_slot ON task_runs(run_id, task_name, COALESCE(parallel_index, -1))",
       "CREATE INDEX idx_task_runs_order ON task_runs(run_id, seq, parallel_index)",
       "CREATE INDEX idx_task_runs_status ON task_runs(run_id, status)",
       R"(CREATE TABLE schedules (
            id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL UNIQUE, cron_expr TEXT NOT NULL,
            next_run TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL))",
       "CREATE INDEX idx_runs_status ON runs(status)",
       "CREATE INDEX idx_runs_lease ON runs(status, lease_expires) WHERE status = 'running'",
       "CREATE INDEX idx_runs_created ON runs(created_at DESC, id)",
       "CREATE INDEX idx_runs_workflow ON runs(workflow_name, created_at DESC, id)",
       "CREATE INDEX idx_schedules_next_run ON schedules(next_run) WHERE enabled = 1"},
  };
  return m;
}

// ---- JSON <-> SQL helpers.

std::string column_list(const Table& t) {
  std::string s;
  for (const auto& f : t.fields) {
    if (!s.empty()) s += ", ";
    s += f.name;
  }
  return s;
}

std::string placeholders(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += i ? ", ?" : "?";
  return s;
}

ColType col_type(Kind k) {
  return k == Kind::Int || k == Kind::Bool ? ColType::Int : ColType::Text;
}

std::vector<ColType> col_types(const Table& t) {
  std::vector<ColType> v;
  for (const auto& f : t.fields) v.push_back(col_type(f.kind));
  return v;
}

std::string select_sql(const Table& t) {
  return "SELECT " + column_list(t) + " FROM " + std::string(t.name);
}

// Converts one JSON value for column `f`, checking its type. `guard` values (CAS expectations) may always be null.
Value to_value(const Table& t, const Field& f, const json& v, bool guard = false) {
  check_value(t, f, v, guard);
  if (v.is_null()) return nullptr;
  switch (f.kind) {
    case Kind::Text:
    case Kind::Time:
      return v.get<std::string>();
    case Kind::Int:
      return v.get<int64_t>();
    case Kind::Bool:
      return int64_t{v.get<bool>() ? 1 : 0};
    case Kind::Json:
      return v.dump();
  }
  return nullptr;
}

json to_json(const Table& t, Row& row) {
  json j = json::object();
  for (size_t i = 0; i < t.fields.size(); ++i) {
    const Field& f = t.fields[i];
    Value& v = row[i];
    std::string key(f.name);
    if (std::holds_alternative<std::nullptr_t>(v)) {
      j[key] = nullptr;
    } else if (f.kind == Kind::Int) {
      j[key] = std::get<int64_t>(v);
    } else if (f.kind == Kind::Bool) {
      j[key] = std::get<int64_t>(v) != 0;
    } else if (f.kind == Kind::Json) {
      try {
        j[key] = json::parse(std::get<std::string>(v));
      } catch (const json::exception& e) {
        throw PluginError(ORK_ERR_INTERNAL, "stored JSON in " + what(t, f) + " is corrupt: " + e.what());
      }
    } else {
      j[key] = std::move(std::get<std::string>(v));
    }
  }
  return j;
}

// Column values for an INSERT of `rec`: fields missing from `rec` take `defaults`, unknown keys are ignored.
std::vector<Value> record_values(const Table& t, const json& rec, const json& defaults) {
  std::vector<Value> out;
  out.reserve(t.fields.size());
  for (const auto& f : t.fields) {
    std::string key(f.name);
    auto it = rec.find(key);
    if (it == rec.end() || it->is_null()) {
      auto d = defaults.find(key);
      out.push_back(to_value(t, f, d == defaults.end() ? json(nullptr) : *d));
    } else {
      out.push_back(to_value(t, f, *it));
    }
  }
  return out;
}

// ---- The store.

class SqliteStateStore final : public StateStore {
 public:
  SqliteStateStore(const json& cfg, HostServices host) : host_(host), rng_(std::random_device{}()) {
    if (!cfg.is_object()) throw_invalid("state-sqlite config must be a JSON object");
    for (const auto& [k, v] : cfg.items())
      if (k != "path" && k != "busy_timeout_ms")
        throw_invalid("state-sqlite config: unknown key '" + k + "' (known: path, busy_timeout_ms)");
    if (!cfg.contains("path") || !cfg["path"].is_string() || cfg["path"].get_ref<const std::string&>().empty())
      throw_invalid("state-sqlite config: 'path' (the database file) is required and must be a non-empty string");
    path_ = cfg["path"].get<std::string>();
    json cfg_busy = cfg.value("busy_timeout_ms", json(nullptr));
    if (cfg_busy.is_string()) {  // "${VAR}" expansions in plugins.yaml arrive as strings
      const std::string& t = cfg_busy.get_ref<const std::string&>();
      if (t.empty() || t.size() > 10 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw_invalid("state-sqlite config: busy_timeout_ms must be an integer, got '" + t + "'");
      cfg_busy = std::stoll(t);
    }
    int64_t busy_ms = opt_int(json{{"busy_timeout_ms", cfg_busy}}, "busy_timeout_ms", 5000, 0);
    if (busy_ms > INT32_MAX) throw_invalid("state-sqlite config: busy_timeout_ms is too large");
    if (path_ != ":memory:") {
      std::filesystem::path parent = std::filesystem::path(path_).parent_path();
      std::error_code ec;
      if (!parent.empty()) std::filesystem::create_directories(parent, ec);
      if (ec) throw_invalid("state-sqlite: cannot create directory '" + parent.string() + "': " + ec.message());
    }
    try {
      db_ = std::make_unique<Db>(path_, busy_ms);
    } catch (const PluginError& e) {
      throw_invalid("state-sqlite: cannot open '" + path_ + "': " + e.what());
    }
    std::string jm = enable_wal(busy_ms);
    db_->exec("PRAGMA synchronous = NORMAL");
    db_->exec("PRAGMA foreign_keys = ON");
    int version = migrate();
    if (jm != "wal" && path_ != ":memory:")
      host_.log(ORK_LOG_WARN, "state-sqlite: journal_mode is '" + jm + "', not WAL; concurrency will suffer");
    host_.log(ORK_LOG_INFO,
              "state-sqlite: " + path_ + " (schema v" + std::to_string(version) + ", journal " + jm + ")");
  }

  // -- Workflows

  json put_workflow(const json& a) override {
    require_object(a, "put_workflow");
    std::string name = req_string(a, "name");
    if (!a.contains("definition") || a["definition"].is_null()) throw_invalid("put_workflow: 'definition' is required");
    std::string now = now_str();
    std::lock_guard lk(mu_);
    json defaults{{"id", new_uuid()}, {"created_at", now}, {"updated_at", now}};
    auto values = record_values(kWorkflows, a, defaults);
    values[6] = now;  // updated_at is always the time of this write
    Transaction tx(*db_, Transaction::Mode::Write);
    db_->exec("INSERT INTO workflows (" + column_list(kWorkflows) + ") VALUES (" + placeholders(values.size()) +
                  ") ON CONFLICT(name) DO UPDATE SET definition = excluded.definition, schedule = excluded.schedule, "
                  "version = excluded.version, updated_at = excluded.updated_at",
              values);
    json out = fetch_one(kWorkflows, "name = ?", {name});
    tx.commit();
    return out;
  }

  json get_workflow(const json& a) override {
    require_object(a, "get_workflow");
    std::lock_guard lk(mu_);
    if (a.contains("id") && !a["id"].is_null()) {
      std::string id = req_string(a, "id");
      json w = fetch_one(kWorkflows, "id = ?", {id});
      if (w.is_null()) throw_not_found("workflow id '" + id + "' not found");
      return w;
    }
    std::string name = req_string(a, "name");
    json w = fetch_one(kWorkflows, "name = ?", {name});
    if (w.is_null()) throw_not_found("workflow '" + name + "' not found");
    return w;
  }

  json list_workflows(const json& a) override {
    require_object(a, "list_workflows");
    std::lock_guard lk(mu_);
    return {{"workflows", fetch(kWorkflows, "1 = 1 ORDER BY name", {})}};
  }

  json delete_workflow(const json& a) override {
    require_object(a, "delete_workflow");
    std::string name = req_string(a, "name");
    std::lock_guard lk(mu_);
    Transaction tx(*db_, Transaction::Mode::Write);
    if (db_->exec("DELETE FROM workflows WHERE name = ?", {name}) == 0)
      throw_not_found("workflow '" + name + "' not found");
    db_->exec("DELETE FROM schedules WHERE workflow_name = ?", {name});
    tx.commit();
    return json::object();
  }

  // -- Runs and task runs

  json create_run(const json& a) override {
    auto [run, run_id, tasks] = create_run_args(a);
    std::string now = now_str();
    auto run_values = record_values(kRuns, run, {{"status", "pending"}, {"created_at", now}});
    const json& created = run.contains("created_at") && !run["created_at"].is_null() ? run["created_at"] : json(now);

    // All validation happens before the transaction: a bad task fails the call with nothing written.
    std::vector<BatchColumn> cols = task_columns("create_run", tasks, run_id, created);

    std::lock_guard lk(mu_);
    Transaction tx(*db_, Transaction::Mode::Write);
    if (!db_->query("SELECT 1 FROM runs WHERE id = ?", {run_id}, {ColType::Int}).empty())
      throw_conflict("run '" + run_id + "' already exists");
    db_->exec("INSERT INTO runs (" + column_list(kRuns) + ") VALUES (" + placeholders(run_values.size()) + ")",
              run_values);
    try {
      db_->exec_batch(
          "INSERT INTO task_runs (" + column_list(kTasks) + ") VALUES (" + placeholders(kTasks.fields.size()) + ")",
          std::move(cols));
    } catch (const PluginError& e) {
      if (e.code() != ORK_ERR_CONFLICT) throw;
      throw_conflict("create_run: duplicate task id or (task_name, parallel_index) in run '" + run_id +
                     "'; nothing was written (" + e.what() + ")");
    }
    tx.commit();
    return json::object();
  }

  // Validates task rows and turns them into insert columns; `op` names the operation in errors.
  std::vector<BatchColumn> task_columns(const std::string& op, const json& tasks, const std::string& run_id,
                                        const json& created) {
    std::vector<BatchColumn> cols;
    for (const auto& f : kTasks.fields) cols.push_back({col_type(f.kind), {}});
    for (auto& c : cols) c.values.reserve(tasks.size());
    json defaults{{"run_id", run_id}, {"status", "pending"},   {"attempt", 0},
                  {"max_retries", 0}, {"created_at", created}, {"seq", 0}};
    json& default_seq = defaults["seq"];
    for (size_t i = 0; i < tasks.size(); ++i) {
      const json& t = tasks[i];
      if (!t.is_object()) throw_invalid(op + ": tasks[" + std::to_string(i) + "] must be an object");
      auto rid = t.find("run_id");
      if (rid != t.end() && !rid->is_null() && *rid != run_id)
        throw_invalid(op + ": tasks[" + std::to_string(i) + "].run_id differs from the run's id");
      std::vector<Value> values;
      try {
        req_string(t, "id");
        req_string(t, "task_name");
        default_seq = static_cast<int64_t>(i);
        values = record_values(kTasks, t, defaults);
      } catch (const PluginError& e) {
        throw_invalid(op + ": tasks[" + std::to_string(i) + "]: " + e.what());
      }
      values[1] = run_id;
      for (size_t c = 0; c < values.size(); ++c) cols[c].values.push_back(std::move(values[c]));
    }
    return cols;
  }

  json add_task_runs(const json& a) override {
    require_object(a, "add_task_runs");
    std::string run_id = req_string(a, "run_id");
    if (!a.contains("tasks") || !a["tasks"].is_array()) throw_invalid("add_task_runs: 'tasks' must be an array");
    std::vector<BatchColumn> cols = task_columns("add_task_runs", a["tasks"], run_id, json(now_str()));
    std::lock_guard lk(mu_);
    Transaction tx(*db_, Transaction::Mode::Write);
    if (db_->query("SELECT 1 FROM runs WHERE id = ?", {run_id}, {ColType::Int}).empty())
      throw_not_found("run '" + run_id + "' does not exist");
    try {
      db_->exec_batch(
          "INSERT INTO task_runs (" + column_list(kTasks) + ") VALUES (" + placeholders(kTasks.fields.size()) + ")",
          std::move(cols));
    } catch (const PluginError& e) {
      if (e.code() != ORK_ERR_CONFLICT) throw;
      throw_conflict("add_task_runs: duplicate task id or (task_name, parallel_index) in run '" + run_id +
                     "'; nothing was written (" + e.what() + ")");
    }
    tx.commit();
    return json::object();
  }

  json get_run(const json& a) override {
    require_object(a, "get_run");
    std::string id = req_string(a, "id");
    std::lock_guard lk(mu_);
    json r = fetch_one(kRuns, "id = ?", {id});
    if (r.is_null()) throw_not_found("run '" + id + "' not found");
    return r;
  }

  json list_runs(const json& a) override {
    require_object(a, "list_runs");
    std::string where = "1 = 1";
    std::vector<Value> params;
    if (a.contains("workflow_name") && !a["workflow_name"].is_null()) {
      where += " AND workflow_name = ?";
      params.push_back(req_string(a, "workflow_name"));
    }
    if (a.contains("status") && !a["status"].is_null()) {
      const json& st = a["status"];
      if (!st.is_array()) throw_invalid("list_runs: 'status' must be an array of strings");
      if (st.empty()) where += " AND 0";
      std::string in;
      for (const auto& s : st) {
        if (!s.is_string()) throw_invalid("list_runs: 'status' must be an array of strings");
        in += in.empty() ? "?" : ", ?";
        params.push_back(s.get<std::string>());
      }
      if (!in.empty()) where += " AND status IN (" + in + ")";
    }
    int64_t limit = opt_int(a, "limit", 100, 0), offset = opt_int(a, "offset", 0, 0);
    std::lock_guard lk(mu_);
    Transaction tx(*db_, Transaction::Mode::Read);  // one snapshot for the count and the page
    auto count = db_->query("SELECT COUNT(*) FROM runs WHERE " + where, params, {ColType::Int});
    auto page_params = params;
    page_params.push_back(limit);
    page_params.push_back(offset);
    json runs = fetch(kRuns, where + " ORDER BY created_at DESC, id ASC LIMIT ? OFFSET ?", page_params);
    tx.commit();
    return {{"runs", std::move(runs)}, {"total", std::get<int64_t>(count.at(0).at(0))}};
  }

  json list_runs_page(const json& a) override {
    require_object(a, "list_runs_page");
    std::string where = "1 = 1";
    std::vector<Value> params;
    if (a.contains("workflow_name") && !a["workflow_name"].is_null()) {
      where += " AND workflow_name = ?";
      params.push_back(req_string(a, "workflow_name"));
    }
    if (a.contains("status") && !a["status"].is_null()) {
      const json& st = a["status"];
      if (!st.is_array()) throw_invalid("list_runs_page: 'status' must be an array of strings");
      std::string in;
      for (const auto& s : st) {
        if (!s.is_string()) throw_invalid("list_runs_page: 'status' must be an array of strings");
        in += in.empty() ? "?" : ", ?";
        params.push_back(s.get<std::string>());
      }
      where += in.empty() ? " AND 0" : " AND status IN (" + in + ")";
    }
    if (a.contains("after") && !a["after"].is_null()) {
      const json& after = a["after"];
      if (!after.is_object()) throw_invalid("list_runs_page: 'after' must be {created_at, id}");
      std::string c = req_time(after, "created_at"), id = req_string(after, "id");
      where += " AND (created_at < ? OR (created_at = ? AND id > ?))";
      params.insert(params.end(), {c, c, id});
    }
    int64_t limit = std::min<int64_t>(opt_int(a, "limit", 100, 0), INT64_MAX - 1);
    params.push_back(limit + 1);  // one more row says whether a next page exists
    std::lock_guard lk(mu_);
    json runs = fetch(kRuns, where + " ORDER BY created_at DESC, id ASC LIMIT ?", params);
    return keyset_page(std::move(runs), limit);
  }

  json update_run(const json& a) override {
    require_object(a, "update_run");
    return update(kRuns, a, false);
  }

  json get_task_runs(const json& a) override {
    require_object(a, "get_task_runs");
    std::string run_id = req_string(a, "run_id");
    std::string where = "run_id = ?";
    std::vector<Value> params{run_id};
    if (a.contains("status") && !a["status"].is_null()) {
      const json& st = a["status"];
      if (!st.is_array()) throw_invalid("get_task_runs: 'status' must be an array of strings");
      std::string in;
      for (const auto& s : st) {
        if (!s.is_string()) throw_invalid("get_task_runs: 'status' must be an array of strings");
        in += in.empty() ? "?" : ", ?";
        params.push_back(s.get<std::string>());
      }
      where += in.empty() ? " AND 0" : " AND status IN (" + in + ")";
    }
    std::lock_guard lk(mu_);
    Transaction tx(*db_, Transaction::Mode::Read);
    if (!exists("runs", "id = ?", {run_id})) throw_not_found("run '" + run_id + "' not found");
    json tasks = fetch(kTasks, where + " ORDER BY seq, parallel_index", params);
    tx.commit();
    return {{"tasks", std::move(tasks)}};
  }

  json update_task_run(const json& a) override {
    require_object(a, "update_task_run");
    return update(kTasks, a, true);
  }

  json try_acquire_task(const json& a) override {
    require_object(a, "try_acquire_task");
    std::string run_id = req_string(a, "run_id"), id = req_string(a, "id");
    std::string now = now_str();
    std::lock_guard lk(mu_);
    Transaction tx(*db_, Transaction::Mode::Write);
    size_t n = db_->exec(
        "UPDATE task_runs SET status = 'dispatched', attempt = attempt + 1, dispatched_at = ?, executor_id = NULL, "
        "heartbeat_at = NULL, started_at = NULL, finished_at = NULL, error = NULL "
        "WHERE id = ? AND run_id = ? AND status = 'pending'",
        {now, id, run_id});
    if (n == 0) {
      if (!exists("task_runs", "id = ? AND run_id = ?", {id, run_id}))
        throw_not_found("task run '" + id + "' of run '" + run_id + "' not found");
      return {{"acquired", false}, {"task", nullptr}};
    }
    json task = fetch_one(kTasks, "id = ?", {id});
    tx.commit();
    return {{"acquired", true}, {"task", std::move(task)}};
  }

  // -- Leases

  json acquire_lease(const json& a) override {
    require_object(a, "acquire_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    int64_t ttl = req_ttl_ms(a);
    int64_t now = host_.now_ms();
    std::lock_guard lk(mu_);
    size_t n = db_->exec(
        "UPDATE runs SET owner = ?, lease_expires = ? WHERE id = ? AND status IN ('pending', 'running') "
        "AND (owner IS NULL OR owner = ? OR lease_expires < ?)",
        {owner, format_time(now + ttl), run_id, owner, format_time(now)});
    if (n == 0 && !exists("runs", "id = ?", {run_id})) throw_not_found("run '" + run_id + "' not found");
    return {{"acquired", n > 0}};
  }

  json renew_lease(const json& a) override {
    require_object(a, "renew_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    int64_t ttl = req_ttl_ms(a);
    int64_t now = host_.now_ms();
    std::lock_guard lk(mu_);
    size_t n = db_->exec("UPDATE runs SET lease_expires = ? WHERE id = ? AND owner = ?",
                         {format_time(now + ttl), run_id, owner});
    if (n == 0 && !exists("runs", "id = ?", {run_id})) throw_not_found("run '" + run_id + "' not found");
    return {{"renewed", n > 0}};
  }

  json release_lease(const json& a) override {
    require_object(a, "release_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    std::lock_guard lk(mu_);
    size_t n =
        db_->exec("UPDATE runs SET owner = NULL, lease_expires = NULL WHERE id = ? AND owner = ?", {run_id, owner});
    if (n == 0 && !exists("runs", "id = ?", {run_id})) throw_not_found("run '" + run_id + "' not found");
    return json::object();
  }

  // -- Schedules

  json put_schedule(const json& a) override {
    require_object(a, "put_schedule");
    std::string name = req_string(a, "workflow_name");
    req_string(a, "cron_expr");
    req_time(a, "next_run");
    std::lock_guard lk(mu_);
    auto values = record_values(kSchedules, a, {{"id", new_uuid()}, {"enabled", true}, {"created_at", now_str()}});
    Transaction tx(*db_, Transaction::Mode::Write);
    db_->exec("INSERT INTO schedules (" + column_list(kSchedules) + ") VALUES (" + placeholders(values.size()) +
                  ") ON CONFLICT(workflow_name) DO UPDATE SET cron_expr = excluded.cron_expr, "
                  "next_run = excluded.next_run, enabled = excluded.enabled",
              values);
    json out = fetch_one(kSchedules, "workflow_name = ?", {name});
    tx.commit();
    return out;
  }

  json get_due_schedules(const json& a) override {
    require_object(a, "get_due_schedules");
    std::string now = req_time(a, "now");
    std::lock_guard lk(mu_);
    return {{"schedules", fetch(kSchedules, "enabled = 1 AND next_run <= ? ORDER BY next_run, id", {now})}};
  }

  json claim_schedule(const json& a) override {
    require_object(a, "claim_schedule");
    std::string id = req_string(a, "id");
    std::string expect = req_time(a, "expect_next_run"), next = req_time(a, "next_run");
    std::lock_guard lk(mu_);
    size_t n = db_->exec("UPDATE schedules SET next_run = ? WHERE id = ? AND next_run = ?", {next, id, expect});
    if (n == 0 && !exists("schedules", "id = ?", {id})) throw_not_found("schedule '" + id + "' not found");
    return {{"claimed", n > 0}};
  }

 private:
  // Switches to WAL (a no-op when the file already is). The switch needs an exclusive lock and SQLite reports
  // SQLITE_BUSY for it without waiting, so retry in small sleeps for up to the busy timeout.
  std::string enable_wal(int64_t busy_ms) {
    for (int64_t waited = 0;; waited += 10) {
      try {
        auto mode = db_->query("PRAGMA journal_mode = WAL", {}, {ColType::Text});
        return mode.empty() || !std::holds_alternative<std::string>(mode[0][0]) ? "?"
                                                                                : std::get<std::string>(mode[0][0]);
      } catch (const PluginError& e) {
        if (e.code() != ORK_ERR_UNAVAILABLE || waited >= busy_ms) throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // Applies pending migrations in one write transaction; returns the resulting schema version.
  int migrate() {
    const auto& all = migrations();
    Transaction tx(*db_, Transaction::Mode::Write);
    db_->exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)");
    auto cur = db_->query("SELECT COALESCE(MAX(version), 0) FROM schema_version", {}, {ColType::Int});
    int64_t v = std::get<int64_t>(cur.at(0).at(0));
    if (v > static_cast<int64_t>(all.size()))
      throw_invalid("state-sqlite: '" + path_ + "' has schema version " + std::to_string(v) +
                    ", newer than this plugin (" ORK_PLUGIN_VERSION ") supports (" + std::to_string(all.size()) +
                    "); upgrade the plugin");
    for (size_t i = static_cast<size_t>(v); i < all.size(); ++i) {
      for (const auto& sql : all[i]) db_->exec(sql);
      db_->exec("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                {static_cast<int64_t>(i + 1), now_str()});
    }
    tx.commit();
    return static_cast<int>(all.size());
  }

  // `{id, [run_id,] set, expect?}` as one conditional UPDATE; NOT_FOUND only when the row does not exist.
  json update(const Table& t, const json& a, bool task) {
    std::string id = req_string(a, "id"), run_id;
    std::string where = "id = ?";
    std::vector<Value> where_params{id};
    if (task) {
      run_id = req_string(a, "run_id");
      where += " AND run_id = ?";
      where_params.push_back(run_id);
    }
    auto sit = a.find("set");
    if (sit == a.end() || !sit->is_object()) throw_invalid("'set' is required and must be an object");
    std::string sets;
    std::vector<Value> params;
    for (const auto& [k, v] : sit->items()) {
      const Field* f = find_field(t, k);
      if (!f || k == "id" || k == "run_id")
        throw_invalid("'set' names unknown or read-only field '" + k + "' of " + std::string(t.name));
      sets += (sets.empty() ? "" : ", ") + k + " = ?";
      params.push_back(to_value(t, *f, v));
    }
    auto eit = a.find("expect");
    if (eit != a.end() && !eit->is_null()) {
      if (!eit->is_object()) throw_invalid("'expect' must be an object");
      for (const auto& [k, v] : eit->items()) {
        const Field* f = find_field(t, k);
        if (!f) throw_invalid("'expect' names unknown field '" + k + "' of " + std::string(t.name));
        where += " AND " + k + " IS ?";
        where_params.push_back(to_value(t, *f, v, true));
      }
    }
    params.insert(params.end(), where_params.begin(), where_params.end());
    std::lock_guard lk(mu_);
    bool updated = sets.empty()
                       ? exists(std::string(t.name), where, where_params)
                       : db_->exec("UPDATE " + std::string(t.name) + " SET " + sets + " WHERE " + where, params) > 0;
    if (!updated && !exists(std::string(t.name), task ? "id = ? AND run_id = ?" : "id = ?",
                            task ? std::vector<Value>{id, run_id} : std::vector<Value>{id}))
      throw_not_found(std::string(task ? "task run '" : "run '") + id + "' not found");
    return {{"updated", updated}};
  }

  json fetch(const Table& t, const std::string& where_and_order, const std::vector<Value>& params) {
    auto rows = db_->query(select_sql(t) + " WHERE " + where_and_order, params, col_types(t));
    json out = json::array();
    for (auto& r : rows) out.push_back(to_json(t, r));
    return out;
  }

  json fetch_one(const Table& t, const std::string& where, const std::vector<Value>& params) {
    auto rows = db_->query(select_sql(t) + " WHERE " + where + " LIMIT 1", params, col_types(t));
    return rows.empty() ? json(nullptr) : to_json(t, rows[0]);
  }

  bool exists(const std::string& table, const std::string& where, const std::vector<Value>& params) {
    return !db_->query("SELECT 1 FROM " + table + " WHERE " + where + " LIMIT 1", params, {ColType::Int}).empty();
  }

  std::string now_str() const { return format_time(host_.now_ms()); }

  // Random UUID v4 for rows the host did not name (put_workflow / put_schedule without id). Call under mu_.
  std::string new_uuid() {
    uint64_t hi = rng_(), lo = rng_();
    return uuid_v4(hi, lo);
  }

  HostServices host_;
  std::string path_;
  std::mutex mu_;  // guards db_ and rng_: one SQLite connection, one caller at a time
  std::unique_ptr<Db> db_;
  std::mt19937_64 rng_;
};

}  // namespace
}  // namespace ork::sqlite

ORK_STATE_PLUGIN(ork::sqlite::SqliteStateStore, "sqlite", ORK_PLUGIN_VERSION)
