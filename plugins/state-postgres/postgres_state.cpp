// ork-state-postgres: the StateStore contract of docs/plugin-abi.md on PostgreSQL 15+ through libpq. A pool of
// connections serves any number of threads; every CAS is one conditional UPDATE, multi-row writes are one
// transaction (task rows through COPY), and a LISTEN thread turns other hosts' writes into host notify events.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <ork/plugin.hpp>
#include <ork/state_records.hpp>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pg_conn.hpp"
#include "pg_listener.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace ork::pg {
namespace {

constexpr const char* kChannel = "ork_events";

using namespace ork::records;  // record layouts and timestamps shared with every state plugin

// ---- Schema migrations, applied in order under an advisory lock; schema_version records each one. `{s}` is the
// quoted schema. Never edit a released entry: a change is a new one.

const std::vector<std::vector<std::string>>& migrations() {
  static const std::vector<std::vector<std::string>> m = {
      {// v1: upstream's reference DDL (docs/dev/schema.md) plus the ABI's fields; text ids (exact round trip of what
       // the host sends) in the "C" collation, jsonb, timestamptz.
       R"(CREATE TABLE {s}.workflows (
            id text COLLATE "C" PRIMARY KEY, name text COLLATE "C" NOT NULL, definition jsonb NOT NULL,
            schedule text, version text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
            CONSTRAINT workflows_name_key UNIQUE (name)))",
       R"(CREATE TABLE {s}.runs (
            id text COLLATE "C" PRIMARY KEY, workflow_id text, workflow_name text COLLATE "C" NOT NULL,
            workflow_version text, status text NOT NULL DEFAULT 'pending', triggered_by text, input jsonb,
            owner text, lease_expires timestamptz, error jsonb, started_at timestamptz, finished_at timestamptz,
            created_at timestamptz NOT NULL))",
       R"(CREATE TABLE {s}.task_runs (
            id text COLLATE "C" PRIMARY KEY,
            run_id text COLLATE "C" NOT NULL REFERENCES {s}.runs(id) ON DELETE CASCADE,
            task_name text COLLATE "C" NOT NULL, status text NOT NULL DEFAULT 'pending',
            attempt integer NOT NULL DEFAULT 0, max_retries integer NOT NULL DEFAULT 0, parallel_index integer,
            parallel_count integer, executor text, executor_id text, input jsonb, output jsonb, error jsonb,
            not_before timestamptz, heartbeat_at timestamptz, dispatched_at timestamptz, started_at timestamptz,
            finished_at timestamptz, created_at timestamptz NOT NULL, seq integer NOT NULL,
            CONSTRAINT task_runs_slot_key UNIQUE NULLS NOT DISTINCT (run_id, task_name, parallel_index)))",
       "CREATE INDEX idx_task_runs_order ON {s}.task_runs (run_id, seq, parallel_index NULLS FIRST)",
       "CREATE INDEX idx_task_runs_status ON {s}.task_runs (run_id, status)",
       R"(CREATE TABLE {s}.schedules (
            id text COLLATE "C" PRIMARY KEY, workflow_name text COLLATE "C" NOT NULL, cron_expr text NOT NULL,
            next_run timestamptz NOT NULL, enabled boolean NOT NULL DEFAULT true, created_at timestamptz NOT NULL,
            CONSTRAINT schedules_workflow_name_key UNIQUE (workflow_name)))",
       "CREATE INDEX idx_runs_status ON {s}.runs (status)",
       "CREATE INDEX idx_runs_lease ON {s}.runs (status, lease_expires) WHERE status = 'running'",
       "CREATE INDEX idx_runs_created ON {s}.runs (created_at DESC, id)",
       "CREATE INDEX idx_runs_workflow ON {s}.runs (workflow_name, created_at DESC, id)",
       "CREATE INDEX idx_schedules_next_run ON {s}.schedules (next_run) WHERE enabled"},
  };
  return m;
}

// ---- JSON <-> SQL helpers.

std::string column_list(const Table& t, const std::string& prefix = "") {
  std::string s;
  for (const auto& f : t.fields) {
    if (!s.empty()) s += ", ";
    s += prefix;
    s += f.name;
  }
  return s;
}

const char* cast(Kind k) {
  switch (k) {
    case Kind::Text:
      return "::text";
    case Kind::Time:
      return "::timestamptz";
    case Kind::Int:
      return "::integer";
    case Kind::Json:
      return "::jsonb";
    case Kind::Bool:
      return "::boolean";
  }
  return "";
}

// "$1::text, $2::jsonb, ..." for an INSERT of every column of `t`.
std::string typed_placeholders(const Table& t) {
  std::string s;
  for (size_t i = 0; i < t.fields.size(); ++i) s += (i ? ", $" : "$") + std::to_string(i + 1) + cast(t.fields[i].kind);
  return s;
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
      if (v.get<int64_t>() > INT32_MAX || v.get<int64_t>() < INT32_MIN)
        throw_invalid(what(t, f) + " is out of range (32-bit integer)");
      return v.get<int64_t>();
    case Kind::Bool:
      return std::string(v.get<bool>() ? "true" : "false");
    case Kind::Json:
      return v.dump();
  }
  return nullptr;
}

// Row `row` of `r` as a record of `t`, its columns starting at `col0`.
json to_json(const Table& t, const Result& r, int row, int col0 = 0) {
  json j = json::object();
  for (size_t i = 0; i < t.fields.size(); ++i) {
    const Field& f = t.fields[i];
    int col = col0 + static_cast<int>(i);
    std::string key(f.name);
    if (r.null(row, col)) {
      j[key] = nullptr;
      continue;
    }
    switch (f.kind) {
      case Kind::Text:
        j[key] = std::string(r.bytes(row, col));
        break;
      case Kind::Time:
        j[key] = format_time(r.time_ms(row, col));
        break;
      case Kind::Int:
        j[key] = r.integer(row, col);
        break;
      case Kind::Bool:
        j[key] = r.boolean(row, col);
        break;
      case Kind::Json: {
        std::string_view b = r.bytes(row, col);
        if (!b.empty() && b[0] == 1) b.remove_prefix(1);  // jsonb binary format: version byte, then text
        try {
          j[key] = json::parse(b);
        } catch (const json::exception& e) {
          throw PluginError(ORK_ERR_INTERNAL, "stored JSON in " + what(t, f) + " is unreadable: " + e.what());
        }
        break;
      }
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

// A config integer: a JSON integer or a string of digits ("${VAR}" expansions in plugins.yaml arrive as strings).
int64_t config_int(const json& cfg, const char* key, int64_t dflt, int64_t min, int64_t max) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return dflt;
  int64_t v = 0;
  if (it->is_string()) {
    const std::string& t = it->get_ref<const std::string&>();
    if (t.empty() || t.size() > 12 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw_invalid(std::string("state-postgres config: ") + key + " must be an integer, got '" + t + "'");
    v = std::stoll(t);
  } else if (it->is_number_integer() && !(it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX)) {
    v = it->get<int64_t>();
  } else {
    throw_invalid(std::string("state-postgres config: ") + key + " must be an integer");
  }
  if (v < min || v > max)
    throw_invalid(std::string("state-postgres config: ") + key + " must be between " + std::to_string(min) + " and " +
                  std::to_string(max));
  return v;
}

bool valid_schema_name(const std::string& s) {
  if (s.empty() || s.size() > 63 || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

// ---- The store.

class PostgresStateStore final : public StateStore {
 public:
  PostgresStateStore(const json& cfg, HostServices host) : host_(host) {
    if (!cfg.is_object()) throw_invalid("state-postgres config must be a JSON object");
    for (const auto& [k, v] : cfg.items())
      if (k != "url" && k != "pool_size" && k != "schema" && k != "connect_timeout_ms")
        throw_invalid("state-postgres config: unknown key '" + k +
                      "' (known: url, pool_size, schema, connect_timeout_ms)");
    if (!cfg.contains("url") || !cfg["url"].is_string() || cfg["url"].get_ref<const std::string&>().empty())
      throw_invalid("state-postgres config: 'url' (postgresql://user@host:port/db) is required");
    int64_t pool_size = config_int(cfg, "pool_size", 4, 1, 256);
    int64_t timeout_ms = config_int(cfg, "connect_timeout_ms", 5000, 1, 600'000);
    auto sc = cfg.find("schema");
    schema_ = sc == cfg.end() || sc->is_null() ? "ork" : sc->is_string() ? sc->get<std::string>() : "";
    if (!valid_schema_name(schema_))
      throw_invalid("state-postgres config: 'schema' must be a lowercase SQL identifier ([a-z_][a-z0-9_]*, <= 63)");
    qschema_ = "\"" + schema_ + "\"";
    target_ = parse_target(cfg["url"].get<std::string>(), timeout_ms);
    LogFn log = [this](ork_log_level level, const std::string& m) { host_.log(level, target_.mask(m)); };
    pool_ = std::make_unique<Pool>(target_, static_cast<size_t>(pool_size), log);
    int version = migrate();
    listener_ = std::make_unique<Listener>(
        pool_->target(), kChannel, schema_, [this](const json& ev) { host_.notify(ev); }, log);
    host_.log(ORK_LOG_INFO, "state-postgres: " + target_.display + " schema " + schema_ + " (v" +
                                std::to_string(version) + "), pool " + std::to_string(pool_size) +
                                (listener_->listening() ? ", listening on " : ", not yet listening on ") + kChannel);
  }

  // -- Workflows

  json put_workflow(const json& a) override {
    require_object(a, "put_workflow");
    req_string(a, "name");
    if (!a.contains("definition") || a["definition"].is_null()) throw_invalid("put_workflow: 'definition' is required");
    std::string now = now_str();
    auto values = record_values(kWorkflows, a, {{"id", new_uuid()}, {"created_at", now}, {"updated_at", now}});
    values[6] = now;  // updated_at is always the time of this write
    std::string sql = "INSERT INTO " + tbl(kWorkflows) + " (" + column_list(kWorkflows) + ") VALUES (" +
                      typed_placeholders(kWorkflows) +
                      ") ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition, "
                      "schedule = EXCLUDED.schedule, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at "
                      "RETURNING " +
                      column_list(kWorkflows);
    return pool_->run(Retry::Always, [&](Conn& c) { return to_json(kWorkflows, c.exec(sql, values), 0); });
  }

  json get_workflow(const json& a) override {
    require_object(a, "get_workflow");
    bool by_id = a.contains("id") && !a["id"].is_null();
    std::string key = req_string(a, by_id ? "id" : "name");
    json w = pool_->run(Retry::Always,
                        [&](Conn& c) { return fetch_one(c, kWorkflows, by_id ? "id = $1" : "name = $1", {key}); });
    if (w.is_null()) throw_not_found(std::string(by_id ? "workflow id '" : "workflow '") + key + "' not found");
    return w;
  }

  json list_workflows(const json& a) override {
    require_object(a, "list_workflows");
    return {{"workflows",
             pool_->run(Retry::Always, [&](Conn& c) { return fetch(c, kWorkflows, "true ORDER BY name", {}); })}};
  }

  json delete_workflow(const json& a) override {
    require_object(a, "delete_workflow");
    std::string name = req_string(a, "name");
    pool_->run(Retry::IfNotCommitted, [&](Conn& c) {
      Tx tx(c);
      if (c.exec("DELETE FROM " + tbl(kWorkflows) + " WHERE name = $1", {name}).affected() == 0)
        throw_not_found("workflow '" + name + "' not found");
      c.exec("DELETE FROM " + tbl(kSchedules) + " WHERE workflow_name = $1", {name});
      tx.commit();
    });
    return json::object();
  }

  // -- Runs and task runs

  json create_run(const json& a) override {
    auto [run, run_id, tasks] = create_run_args(a);
    std::string now = now_str();
    auto run_values = record_values(kRuns, run, {{"status", "pending"}, {"created_at", now}});
    const json& created = run.contains("created_at") && !run["created_at"].is_null() ? run["created_at"] : json(now);

    // All validation happens before the transaction: a bad task fails the call with nothing written.
    std::string rows = task_rows("create_run", tasks, run_id, created);
    std::string insert_run =
        "INSERT INTO " + tbl(kRuns) + " (" + column_list(kRuns) + ") VALUES (" + typed_placeholders(kRuns) + ")";
    pool_->run(Retry::IfNotCommitted, [&](Conn& c) {
      Tx tx(c);
      try {
        c.exec(insert_run, run_values);
      } catch (const PluginError& e) {
        if (e.code() != ORK_ERR_CONFLICT) throw;
        throw_conflict("run '" + run_id + "' already exists");
      }
      copy_tasks(c, "create_run", run_id, rows);
      notify(c, {{"what", "run"}, {"run_id", run_id}, {"op", "create_run"}});
      tx.commit();
    });
    return json::object();
  }

  json add_task_runs(const json& a) override {
    require_object(a, "add_task_runs");
    std::string run_id = req_string(a, "run_id");
    if (!a.contains("tasks") || !a["tasks"].is_array()) throw_invalid("add_task_runs: 'tasks' must be an array");
    std::string rows = task_rows("add_task_runs", a["tasks"], run_id, json(now_str()));
    pool_->run(Retry::IfNotCommitted, [&](Conn& c) {
      Tx tx(c);
      if (!exists(c, kRuns, "id = $1", {run_id})) throw_not_found("run '" + run_id + "' does not exist");
      if (rows.empty()) return;  // nothing to add (the transaction rolls back)
      copy_tasks(c, "add_task_runs", run_id, rows);
      notify(c, {{"what", "run"}, {"run_id", run_id}, {"op", "add_task_runs"}});
      tx.commit();
    });
    return json::object();
  }

  json get_run(const json& a) override {
    require_object(a, "get_run");
    std::string id = req_string(a, "id");
    json r = pool_->run(Retry::Always, [&](Conn& c) { return fetch_one(c, kRuns, "id = $1", {id}); });
    if (r.is_null()) throw_not_found("run '" + id + "' not found");
    return r;
  }

  json list_runs(const json& a) override {
    require_object(a, "list_runs");
    std::string where = "true";
    std::vector<Value> params;
    if (a.contains("workflow_name") && !a["workflow_name"].is_null()) {
      params.push_back(req_string(a, "workflow_name"));
      where += " AND workflow_name = $" + std::to_string(params.size());
    }
    if (a.contains("status") && !a["status"].is_null()) {
      where += " AND " + status_filter(a["status"], "list_runs", params);
    }
    int64_t limit = opt_int(a, "limit", 100, 0), offset = opt_int(a, "offset", 0, 0);
    params.push_back(limit);
    params.push_back(offset);
    std::string n = std::to_string(params.size());
    std::string m = std::to_string(params.size() - 1);
    // One statement, so the count and the page come from one snapshot; the count row is there even past the end.
    std::string sql = "SELECT t.total, " + column_list(kRuns, "p.") + " FROM (SELECT count(*) AS total FROM " +
                      tbl(kRuns) + " WHERE " + where + ") t LEFT JOIN LATERAL (SELECT " + column_list(kRuns) +
                      " FROM " + tbl(kRuns) + " WHERE " + where + " ORDER BY created_at DESC, id LIMIT $" + m +
                      " OFFSET $" + n + ") p ON true ORDER BY p.created_at DESC, p.id";
    return pool_->run(Retry::Always, [&](Conn& c) {
      Result r = c.exec(sql, params);
      json runs = json::array();
      int64_t total = r.rows() ? r.integer(0, 0) : 0;
      for (int i = 0; i < r.rows(); ++i)
        if (!r.null(i, 1)) runs.push_back(to_json(kRuns, r, i, 1));
      return json{{"runs", std::move(runs)}, {"total", total}};
    });
  }

  json list_runs_page(const json& a) override {
    require_object(a, "list_runs_page");
    std::string where = "true";
    std::vector<Value> params;
    if (a.contains("workflow_name") && !a["workflow_name"].is_null()) {
      params.push_back(req_string(a, "workflow_name"));
      where += " AND workflow_name = $" + std::to_string(params.size());
    }
    if (a.contains("status") && !a["status"].is_null())
      where += " AND " + status_filter(a["status"], "list_runs_page", params);
    if (a.contains("after") && !a["after"].is_null()) {
      const json& after = a["after"];
      if (!after.is_object()) throw_invalid("list_runs_page: 'after' must be {created_at, id}");
      params.push_back(req_time(after, "created_at"));
      std::string c = "$" + std::to_string(params.size()) + "::timestamptz";
      params.push_back(req_string(after, "id"));
      where +=
          " AND (created_at < " + c + " OR (created_at = " + c + " AND id > $" + std::to_string(params.size()) + "))";
    }
    int64_t limit = std::min<int64_t>(opt_int(a, "limit", 100, 0), INT64_MAX - 1);
    params.push_back(limit + 1);  // one more row says whether a next page exists
    std::string order = " ORDER BY created_at DESC, id LIMIT $" + std::to_string(params.size());
    json runs = pool_->run(Retry::Always, [&](Conn& c) { return fetch(c, kRuns, where + order, params); });
    return keyset_page(std::move(runs), limit);
  }

  json update_run(const json& a) override {
    require_object(a, "update_run");
    return update(kRuns, a, false);
  }

  json get_task_runs(const json& a) override {
    require_object(a, "get_task_runs");
    std::string run_id = req_string(a, "run_id");
    std::string where = "run_id = $1";
    std::vector<Value> params{run_id};
    if (a.contains("status") && !a["status"].is_null())
      where += " AND " + status_filter(a["status"], "get_task_runs", params);
    json tasks = pool_->run(Retry::Always, [&](Conn& c) {
      json out = fetch(c, kTasks, where + " ORDER BY seq, parallel_index NULLS FIRST", params);
      if (out.empty() && !exists(c, kRuns, "id = $1", {run_id})) throw_not_found("run '" + run_id + "' not found");
      return out;
    });
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
    // `(status = 'pending') IS TRUE` is not indexable, which keeps every plan on the primary key: a cached generic
    // plan could otherwise tie it with idx_task_runs_status (run_id, status) and scan every pending task of the run.
    // (A single-statement variant telling "refused" from "missing" through a CTE measured ~15 % slower when the
    // acquire succeeds, the common case; the existence check only runs when it did not.)
    std::string sql = "UPDATE " + tbl(kTasks) +
                      " SET status = 'dispatched', attempt = attempt + 1, dispatched_at = $1::timestamptz, "
                      "executor_id = NULL, heartbeat_at = NULL, started_at = NULL, finished_at = NULL, error = NULL "
                      "WHERE id = $2 AND run_id = $3 AND (status = 'pending') IS TRUE RETURNING " +
                      column_list(kTasks);
    return pool_->run(Retry::IfNotCommitted, [&](Conn& c) {
      Result r = c.exec(sql, {now, id, run_id});
      if (r.rows() == 0) {
        if (!exists(c, kTasks, "id = $1 AND run_id = $2", {id, run_id}))
          throw_not_found("task run '" + id + "' of run '" + run_id + "' not found");
        return json{{"acquired", false}, {"task", nullptr}};
      }
      return json{{"acquired", true}, {"task", to_json(kTasks, r, 0)}};
    });
  }

  // -- Leases

  json acquire_lease(const json& a) override {
    require_object(a, "acquire_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    int64_t ttl = req_ttl_ms(a);
    int64_t now = host_.now_ms();
    std::string sql = "UPDATE " + tbl(kRuns) +
                      " SET owner = $1, lease_expires = $2::timestamptz WHERE id = $3 AND status IN ('pending', "
                      "'running') AND (owner IS NULL OR owner = $1 OR lease_expires < $4::timestamptz)";
    bool ok = pool_->run(Retry::Always, [&](Conn& c) {
      size_t n = c.exec(sql, {owner, format_time(now + ttl), run_id, format_time(now)}).affected();
      if (n == 0 && !exists(c, kRuns, "id = $1", {run_id})) throw_not_found("run '" + run_id + "' not found");
      return n > 0;
    });
    return {{"acquired", ok}};
  }

  json renew_lease(const json& a) override {
    require_object(a, "renew_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    int64_t ttl = req_ttl_ms(a);
    int64_t now = host_.now_ms();
    std::string sql = "UPDATE " + tbl(kRuns) + " SET lease_expires = $1::timestamptz WHERE id = $2 AND owner = $3";
    bool ok = pool_->run(Retry::Always, [&](Conn& c) {
      size_t n = c.exec(sql, {format_time(now + ttl), run_id, owner}).affected();
      if (n == 0 && !exists(c, kRuns, "id = $1", {run_id})) throw_not_found("run '" + run_id + "' not found");
      return n > 0;
    });
    return {{"renewed", ok}};
  }

  json release_lease(const json& a) override {
    require_object(a, "release_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    std::string sql = "UPDATE " + tbl(kRuns) + " SET owner = NULL, lease_expires = NULL WHERE id = $1 AND owner = $2";
    pool_->run(Retry::Always, [&](Conn& c) {
      size_t n = c.exec(sql, {run_id, owner}).affected();
      if (n == 0 && !exists(c, kRuns, "id = $1", {run_id})) throw_not_found("run '" + run_id + "' not found");
    });
    return json::object();
  }

  // -- Schedules

  json put_schedule(const json& a) override {
    require_object(a, "put_schedule");
    std::string name = req_string(a, "workflow_name");
    req_string(a, "cron_expr");
    req_time(a, "next_run");
    auto values = record_values(kSchedules, a, {{"id", new_uuid()}, {"enabled", true}, {"created_at", now_str()}});
    std::string sql = "INSERT INTO " + tbl(kSchedules) + " (" + column_list(kSchedules) + ") VALUES (" +
                      typed_placeholders(kSchedules) +
                      ") ON CONFLICT (workflow_name) DO UPDATE SET cron_expr = EXCLUDED.cron_expr, "
                      "next_run = EXCLUDED.next_run, enabled = EXCLUDED.enabled RETURNING " +
                      column_list(kSchedules);
    return pool_->run(Retry::Always, [&](Conn& c) {
      Tx tx(c);
      json out = to_json(kSchedules, c.exec(sql, values), 0);
      notify(c, {{"what", "schedule"}, {"workflow_name", name}, {"schedule_id", out["id"]}});
      tx.commit();
      return out;
    });
  }

  json get_due_schedules(const json& a) override {
    require_object(a, "get_due_schedules");
    std::string now = req_time(a, "now");
    json due = pool_->run(Retry::Always, [&](Conn& c) {
      return fetch(c, kSchedules, "enabled AND next_run <= $1::timestamptz ORDER BY next_run, id", {now});
    });
    return {{"schedules", std::move(due)}};
  }

  json claim_schedule(const json& a) override {
    require_object(a, "claim_schedule");
    std::string id = req_string(a, "id");
    std::string expect = req_time(a, "expect_next_run"), next = req_time(a, "next_run");
    std::string sql =
        "UPDATE " + tbl(kSchedules) + " SET next_run = $1::timestamptz WHERE id = $2 AND next_run = $3::timestamptz";
    bool ok = pool_->run(Retry::IfNotCommitted, [&](Conn& c) {
      size_t n = c.exec(sql, {next, id, expect}).affected();
      if (n == 0 && !exists(c, kSchedules, "id = $1", {id})) throw_not_found("schedule '" + id + "' not found");
      return n > 0;
    });
    return {{"claimed", ok}};
  }

 private:
  std::string tbl(const Table& t) const { return qschema_ + "." + std::string(t.name); }

  // Applies pending migrations in one transaction holding a transaction-scoped advisory lock, so hosts starting at
  // once serialize here; returns the resulting schema version.
  int migrate() {
    const auto& all = migrations();
    return pool_->run(Retry::Always, [&](Conn& c) {
      int server = PQserverVersion(c.raw());
      if (server < 150000)
        throw_invalid("state-postgres needs PostgreSQL 15 or newer (UNIQUE NULLS NOT DISTINCT); " + target_.display +
                      " runs " + std::to_string(server / 10000) + "." + std::to_string(server % 10000));
      Tx tx(c);
      c.exec("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", {"ork-state-postgres:" + schema_});
      if (!c.exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", {schema_}).rows())
        c.run("CREATE SCHEMA " + qschema_);
      std::string versions = qschema_ + ".schema_version";
      if (c.exec("SELECT to_regclass($1)", {versions}).null(0, 0))
        c.run("CREATE TABLE " + versions + " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)");
      int64_t v = c.exec("SELECT COALESCE(MAX(version), 0)::bigint FROM " + versions).integer(0, 0);
      if (v > static_cast<int64_t>(all.size()))
        throw_invalid("state-postgres: schema '" + schema_ + "' has version " + std::to_string(v) +
                      ", newer than this plugin (" ORK_PLUGIN_VERSION ") supports (" + std::to_string(all.size()) +
                      "); upgrade the plugin");
      for (size_t i = static_cast<size_t>(v); i < all.size(); ++i) {
        for (std::string sql : all[i]) {
          for (size_t p = sql.find("{s}"); p != std::string::npos; p = sql.find("{s}", p + qschema_.size()))
            sql.replace(p, 3, qschema_);
          c.run(sql);
        }
        c.exec("INSERT INTO " + versions + " (version, applied_at) VALUES ($1, $2::timestamptz)",
               {static_cast<int64_t>(i + 1), now_str()});
      }
      tx.commit();
      return static_cast<int>(all.size());
    });
  }

  // Validates task rows and renders them as COPY text; `op` names the operation in errors.
  std::string task_rows(const std::string& op, const json& tasks, const std::string& run_id, const json& created) {
    std::string out;
    out.reserve(tasks.size() * 320);
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
        values[1] = run_id;
        for (size_t c = 0; c < values.size(); ++c) {
          if (c) out += '\t';
          append_copy_field(out, values[c]);
        }
      } catch (const PluginError& e) {
        throw_invalid(op + ": tasks[" + std::to_string(i) + "]: " + e.what());
      }
      out += '\n';
    }
    return out;
  }

  void copy_tasks(Conn& c, const std::string& op, const std::string& run_id, const std::string& rows) {
    if (rows.empty()) return;
    try {
      c.copy_in("COPY " + tbl(kTasks) + " (" + column_list(kTasks) + ") FROM STDIN", rows);
    } catch (const PluginError& e) {
      if (e.code() != ORK_ERR_CONFLICT) throw;
      throw_conflict(op + ": duplicate task id or (task_name, parallel_index) in run '" + run_id +
                     "'; nothing was written (" + e.what() + ")");
    }
  }

  // pg_notify inside the caller's transaction: delivered to every LISTENer when (and only if) it commits.
  void notify(Conn& c, json payload) {
    payload["type"] = "state.changed";
    payload["schema"] = schema_;
    c.exec("SELECT pg_notify($1, $2)", {std::string(kChannel), payload.dump()});
  }

  // `[status IN ($k, ...)]` for a JSON array of statuses (an empty array matches nothing); appends to `params`.
  static std::string status_filter(const json& st, const char* op, std::vector<Value>& params) {
    if (!st.is_array()) throw_invalid(std::string(op) + ": 'status' must be an array of strings");
    if (st.empty()) return "false";
    std::string in;
    for (const auto& s : st) {
      if (!s.is_string()) throw_invalid(std::string(op) + ": 'status' must be an array of strings");
      params.push_back(s.get<std::string>());
      in += (in.empty() ? "$" : ", $") + std::to_string(params.size());
    }
    return "status IN (" + in + ")";
  }

  // `{id, [run_id,] set, expect?}` as one conditional UPDATE; NOT_FOUND only when the row does not exist. A run
  // update that sets `status` also notifies, in the same transaction.
  json update(const Table& t, const json& a, bool task) {
    std::string id = req_string(a, "id"), run_id;
    std::vector<Value> params;
    std::string sets;
    auto sit = a.find("set");
    if (sit == a.end() || !sit->is_object()) throw_invalid("'set' is required and must be an object");
    for (const auto& [k, v] : sit->items()) {
      const Field* f = find_field(t, k);
      if (!f || k == "id" || k == "run_id")
        throw_invalid("'set' names unknown or read-only field '" + k + "' of " + std::string(t.name));
      params.push_back(to_value(t, *f, v));
      sets += (sets.empty() ? "" : ", ") + k + " = $" + std::to_string(params.size()) + cast(f->kind);
    }
    size_t first_where = params.size();
    params.push_back(id);
    std::string key = "id = $" + std::to_string(params.size());
    if (task) {
      run_id = req_string(a, "run_id");
      params.push_back(run_id);
      key += " AND run_id = $" + std::to_string(params.size());
    }
    std::string where = key;
    auto eit = a.find("expect");
    bool guarded = false;
    if (eit != a.end() && !eit->is_null()) {
      if (!eit->is_object()) throw_invalid("'expect' must be an object");
      for (const auto& [k, v] : eit->items()) {
        const Field* f = find_field(t, k);
        if (!f) throw_invalid("'expect' names unknown field '" + k + "' of " + std::string(t.name));
        params.push_back(to_value(t, *f, v, true));
        where += " AND " + k + " IS NOT DISTINCT FROM $" + std::to_string(params.size()) + cast(f->kind);
        guarded = true;
      }
    }
    bool notify_status = !task && sit->contains("status");
    std::vector<Value> key_params(params.begin() + static_cast<std::ptrdiff_t>(first_where),
                                  params.begin() + static_cast<std::ptrdiff_t>(first_where + (task ? 2 : 1)));
    std::string key_only = task ? "id = $1 AND run_id = $2" : "id = $1";
    std::string sql = "UPDATE " + tbl(t) + " SET " + sets + " WHERE " + where;
    bool updated = pool_->run(guarded ? Retry::IfNotCommitted : Retry::Always, [&](Conn& c) {
      std::unique_ptr<Tx> tx;
      if (notify_status) tx = std::make_unique<Tx>(c);
      bool done;
      // With nothing to set, "updated" says whether the row exists and matches (there are no SET parameters).
      done = sets.empty() ? exists(c, t, where, params) : c.exec(sql, params).affected() > 0;
      if (!done && !exists(c, t, key_only, key_params))
        throw_not_found(std::string(task ? "task run '" : "run '") + id + "' not found");
      if (done && notify_status)
        notify(c, {{"what", "run"}, {"run_id", id}, {"op", "update_run"}, {"status", (*sit)["status"]}});
      if (tx) tx->commit();
      return done;
    });
    return {{"updated", updated}};
  }

  json fetch(Conn& c, const Table& t, const std::string& where_and_order, const std::vector<Value>& params) {
    Result r = c.exec("SELECT " + column_list(t) + " FROM " + tbl(t) + " WHERE " + where_and_order, params);
    json out = json::array();
    for (int i = 0; i < r.rows(); ++i) out.push_back(to_json(t, r, i));
    return out;
  }

  json fetch_one(Conn& c, const Table& t, const std::string& where, const std::vector<Value>& params) {
    Result r = c.exec("SELECT " + column_list(t) + " FROM " + tbl(t) + " WHERE " + where + " LIMIT 1", params);
    return r.rows() ? to_json(t, r, 0) : json(nullptr);
  }

  bool exists(Conn& c, const Table& t, const std::string& where, const std::vector<Value>& params) {
    return c.exec("SELECT 1 FROM " + tbl(t) + " WHERE " + where + " LIMIT 1", params).rows() > 0;
  }

  std::string now_str() const { return format_time(host_.now_ms()); }

  // Random UUID v4 for rows the host did not name (put_workflow / put_schedule without id).
  std::string new_uuid() { return uuids_.next(); }

  HostServices host_;
  std::string schema_, qschema_;
  Target target_;
  std::unique_ptr<Pool> pool_;
  std::unique_ptr<Listener> listener_;  // destroyed first: its thread stops before the pool goes
  UuidSource uuids_;
};

}  // namespace
}  // namespace ork::pg

ORK_STATE_PLUGIN(ork::pg::PostgresStateStore, "postgres", ORK_PLUGIN_VERSION)
