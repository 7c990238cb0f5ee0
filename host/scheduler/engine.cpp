#include "scheduler/engine.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cctype>
#include <cstdlib>
#include <deque>
#include <set>

#include "core/util.hpp"
#include "scheduler/cron.hpp"
#include "scheduler/task_contract.hpp"

namespace ork {
namespace asio = boost::asio;

namespace {

bool is_terminal(const std::string& s) {
  return s == "success" || s == "failed" || s == "skipped" || s == "cancelled";
}
bool is_active(const std::string& s) {
  return s == "dispatched" || s == "running";
}

int64_t env_ms(const char* name, int64_t def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  return (end && *end == '\0' && n >= 0) ? n : def;
}

int64_t time_or(const json& j, const char* field, int64_t def) {
  if (!j.contains(field) || !j[field].is_string()) return def;
  try {
    return parse_time(j[field].get<std::string>());
  } catch (...) {
    return def;
  }
}

// Null-safe field reads: the ABI treats an absent field and null alike.
std::string str_of(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
int64_t int_of(const json& j, const char* key, int64_t dflt = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : dflt;
}

json error_obj(const std::string& type, const std::string& message, json details = nullptr) {
  return {{"type", type}, {"message", message}, {"details", std::move(details)}};
}

// A new task row (seed 003 TaskRun) for one task or one fan-out instance of it.
json task_row(const std::string& run_id, const TaskDefinition& def, int seq, const std::string& now, json input,
              json parallel_index, json parallel_count) {
  return {{"id", new_uuid()},
          {"run_id", run_id},
          {"task_name", def.name},
          {"status", "pending"},
          {"attempt", 0},
          {"max_retries", def.retries},
          {"parallel_index", std::move(parallel_index)},
          {"parallel_count", std::move(parallel_count)},
          {"executor", def.worker},
          {"executor_id", nullptr},
          {"input", std::move(input)},
          {"output", nullptr},
          {"error", nullptr},
          {"not_before", nullptr},
          {"heartbeat_at", nullptr},
          {"dispatched_at", nullptr},
          {"started_at", nullptr},
          {"finished_at", nullptr},
          {"created_at", now},
          {"seq", seq}};
}

std::optional<json> lookup(const json& scope, const std::string& path) {
  const json* cur = &scope;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur->is_object() && cur->contains(part)) {
      cur = &(*cur)[part];
    } else if (cur->is_array() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) &&
               std::stoul(part) < cur->size()) {
      cur = &(*cur)[std::stoul(part)];
    } else {
      return std::nullopt;
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return *cur;
}

}  // namespace

EngineConfig EngineConfig::from_env() {
  EngineConfig c;
  c.lease_ttl_ms = env_ms("ORK_LEASE_TTL_MS", c.lease_ttl_ms);
  c.heartbeat_timeout_ms = env_ms("ORK_HEARTBEAT_TIMEOUT_MS", c.heartbeat_timeout_ms);
  c.heartbeat_interval_ms = env_ms("ORK_HEARTBEAT_INTERVAL_MS", c.heartbeat_interval_ms);
  c.start_timeout_ms = env_ms("ORK_START_TIMEOUT_MS", c.start_timeout_ms);
  c.cancel_grace_ms = env_ms("ORK_CANCEL_GRACE_MS", c.cancel_grace_ms);
  c.clock_offset_ms = [] {
    const char* v = std::getenv("ORK_CLOCK_OFFSET_MS");
    return v && *v ? std::strtoll(v, nullptr, 10) : 0LL;
  }();
  c.fanout_batch = static_cast<int>(std::max<int64_t>(2, env_ms("ORK_FANOUT_BATCH", c.fanout_batch)));
  c.max_active_tasks = static_cast<int>(std::max<int64_t>(1, env_ms("ORK_MAX_ACTIVE_TASKS", c.max_active_tasks)));
  return c;
}

struct Engine::TaskState {
  json row;
  const TaskDefinition* def = nullptr;
  std::unique_ptr<asio::steady_timer> timer;
  int64_t armed_at = 0;
  int64_t last_heartbeat = 0;  // newest heartbeat seen in status.json (ms)
  bool pushed = false;         // the executor will push this attempt's end (false after a re-attach)
  std::string id() const { return row["id"]; }
  std::string status() const { return row["status"]; }
  int attempt() const { return static_cast<int>(int_of(row, "attempt")); }
};

// How many rows of one task name are in each state; readiness of dependents is read from these.
struct Counts {
  int64_t total = 0, pending = 0, active = 0, terminal = 0, success = 0;
  int64_t expected = 0;  // a fan-out's instance count, before all its rows are stored
};

// A sized fan-out whose instances are stored in batches.
struct Engine::FanOut {
  int64_t total = 0, next = 0;  // instances in all; the next parallel_index to store
  json items;                   // foreach: the list; parallel: null
  int seq = 0;
};

struct Engine::RunState {
  json run;
  WorkflowDefinition wf;
  std::vector<std::unique_ptr<TaskState>> tasks;           // in seq order
  std::map<std::string, std::vector<TaskState*>> by_name;  // fan-out instances in parallel_index order
  std::map<std::string, TaskState*> by_id;
  std::map<std::string, Counts> counts;                   // per task name
  std::map<std::string, FanOut> fanouts;                  // sized fan-outs, by task name
  std::map<std::string, std::deque<TaskState*>> pending;  // per task name, in order; stale entries dropped lazily
  bool advancing = false, again = false;
  int active = 0;  // attempts in flight in this run (workflow `concurrency:`)
  std::unique_ptr<asio::steady_timer> lease_timer;
  bool finishing = false;
  std::unique_ptr<TaskContracts> contracts;  // types, env files and secrets of `wf` (built by adopt)
  std::string id() const { return run["id"]; }
  TaskState* task(const std::string& id) {
    auto it = by_id.find(id);
    return it == by_id.end() ? nullptr : it->second;
  }
};

Engine::Engine(asio::io_context& io, PluginRegistry& plugins, EngineConfig cfg)
    : io_(io),
      plugins_(plugins),
      cfg_(std::move(cfg)),
      alive_(std::make_shared<bool>(true)),
      takeover_timer_(io),
      schedule_timer_(io),
      secrets_(plugins_.config().secrets, plugins_.config().dir) {
  if (cfg_.host_id.empty()) cfg_.host_id = "ork-host-" + new_uuid().substr(0, 8);
}

Engine::~Engine() {
  *alive_ = false;
  stop();
}

json Engine::deploy(const WorkflowDefinition& wf, const std::string& version) {
  std::optional<CronExpr> cron;
  if (wf.schedule) cron = CronExpr::parse(*wf.schedule);  // throws CronError naming the problem
  auto old = plugins_.state().get_workflow({{"name", wf.name}});
  json old_schedule = old ? (*old)["schedule"] : json(nullptr);
  json rec{{"name", wf.name},
           {"definition", wf},
           {"schedule", wf.schedule ? json(*wf.schedule) : json(nullptr)},
           {"version", version}};
  json stored = plugins_.state().put_workflow(rec);
  // A redeploy with the same schedule keeps its next fire; a new or changed one starts from now; a removed one is
  // disabled.
  if (cron && old_schedule != rec["schedule"]) {
    plugins_.state().put_schedule({{"workflow_name", wf.name},
                                   {"cron_expr", *wf.schedule},
                                   {"next_run", format_time(cron->next_after(clock_now()))},
                                   {"enabled", true}});
  } else if (!cron && old_schedule.is_string()) {
    plugins_.state().put_schedule({{"workflow_name", wf.name},
                                   {"cron_expr", old_schedule},
                                   {"next_run", format_time(clock_now())},
                                   {"enabled", false}});
  }
  if (schedules_on_) arm_schedules();
  return stored;
}

int64_t Engine::clock_now() const {
  return now_ms() + cfg_.clock_offset_ms;
}

int Engine::fire_due_schedules() {
  int fired = 0;
  int64_t now = clock_now();
  json due = plugins_.state().get_due_schedules({{"now", format_time(now)}})["schedules"];
  for (const auto& sch : due) {
    std::string wf = sch["workflow_name"];
    int64_t next;
    try {
      next = CronExpr::parse(sch["cron_expr"]).next_after(now);
    } catch (const std::exception& e) {
      spdlog::error("schedule of {}: {}", wf, e.what());
      continue;
    }
    // However many fires were missed (downtime), the schedule runs once now and continues from the next future fire.
    auto claim = plugins_.state().claim_schedule(
        {{"id", sch["id"]}, {"expect_next_run", sch["next_run"]}, {"next_run", format_time(next)}});
    if (!claim.value("claimed", false)) continue;  // another host fired it
    try {
      std::string run_id = start_run(wf, {{"scheduled_for", sch["next_run"]}}, "schedule");
      spdlog::info("schedule {} fired: run {} of {} (next fire {})", sch["cron_expr"].get<std::string>(), run_id, wf,
                   format_time(next));
      ++fired;
    } catch (const std::exception& e) {
      spdlog::error("schedule of {}: could not start a run: {}", wf, e.what());
    }
  }
  return fired;
}

void Engine::start_schedules() {
  schedules_on_ = true;
  fire_due_schedules();
  arm_schedules();
}

void Engine::arm_schedules() {
  // Every enabled schedule is "due" by the end of time: the first one is the next fire.
  json all = plugins_.state().get_due_schedules({{"now", "9999-12-31T23:59:59.999Z"}})["schedules"];
  if (all.empty()) {
    schedule_timer_.cancel();
    return;
  }
  int64_t next = time_or(all[0], "next_run", clock_now());
  wait_schedule_timer(std::max<int64_t>(next - clock_now(), 0));
}

void Engine::wait_schedule_timer(int64_t delay_ms) {
  schedule_timer_.expires_after(std::chrono::milliseconds(delay_ms));
  schedule_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    try {
      fire_due_schedules();
      arm_schedules();
    } catch (const std::exception& e) {
      spdlog::error("schedules: {}; trying again", e.what());  // the state store is down: look again shortly
      wait_schedule_timer(cfg_.heartbeat_interval_ms);
    }
  });
}

int Engine::tick() {
  int fired = fire_due_schedules();
  resume_all();
  io_.poll();  // events the executors have already pushed
  takeover_timer_.cancel();
  takeover_at_ = 0;
  return fired;
}

std::string Engine::start_run(const std::string& workflow_name, const json& input, const std::string& triggered_by) {
  auto wf_rec = plugins_.state().get_workflow({{"name", workflow_name}});
  if (!wf_rec) throw std::runtime_error("workflow '" + workflow_name + "' is not deployed");
  WorkflowDefinition wf = (*wf_rec)["definition"].get<WorkflowDefinition>();
  std::string run_id = new_uuid(), now = now_str();
  json run{{"id", run_id},
           {"workflow_id", (*wf_rec)["id"]},
           {"workflow_name", workflow_name},
           {"workflow_version", (*wf_rec)["version"]},
           {"status", "pending"},
           {"triggered_by", triggered_by},
           {"input", input.is_object() ? input : json::object()},
           {"owner", nullptr},
           {"lease_expires", nullptr},
           {"error", nullptr},
           {"started_at", nullptr},
           {"finished_at", nullptr},
           {"created_at", now}};
  json tasks = json::array();
  int seq = 0;
  for (const auto& def : wf.tasks) {
    switch (def.parallel.kind) {
      case Parallelism::Kind::None:
        tasks.push_back(task_row(run_id, def, seq, now, def.input, nullptr, nullptr));
        break;
      case Parallelism::Kind::Static:
        for (int i = 0; i < def.parallel.count; ++i)
          tasks.push_back(task_row(run_id, def, seq, now, def.input, i, def.parallel.count));
        break;
      default:  // count/foreach: instances are added once the upstream output that sizes them exists
        break;
    }
    ++seq;
  }
  plugins_.state().create_run({{"run", run}, {"tasks", tasks}});
  auto lease =
      plugins_.state().acquire_lease({{"run_id", run_id}, {"owner", cfg_.host_id}, {"ttl_ms", cfg_.lease_ttl_ms}});
  if (lease.value("acquired", false)) {
    run["owner"] = cfg_.host_id;
    adopt(run, true, std::move(wf));
  }
  return run_id;
}

bool Engine::take(const std::string& run_id) {
  if (find_run(run_id)) return true;
  auto run = plugins_.state().get_run({{"id", run_id}});
  if (!run || is_terminal((*run)["status"])) return false;
  auto lease =
      plugins_.state().acquire_lease({{"run_id", run_id}, {"owner", cfg_.host_id}, {"ttl_ms", cfg_.lease_ttl_ms}});
  if (!lease.value("acquired", false)) return false;
  adopt(*plugins_.state().get_run({{"id", run_id}}), false);
  return find_run(run_id) != nullptr;
}

void Engine::resume_all() {
  auto res = plugins_.state().list_runs({{"status", {"pending", "running"}}, {"limit", 100000}});
  int64_t next_expiry = 0;
  for (const auto& run : res["runs"]) {
    std::string id = run["id"];
    if (runs_.count(id)) continue;
    auto lease =
        plugins_.state().acquire_lease({{"run_id", id}, {"owner", cfg_.host_id}, {"ttl_ms", cfg_.lease_ttl_ms}});
    if (!lease.value("acquired", false)) {
      // Leased by another host: look again when that lease would expire (a deadline, not a polling loop).
      int64_t exp = time_or(run, "lease_expires", now_ms() + cfg_.lease_ttl_ms);
      if (next_expiry == 0 || exp < next_expiry) next_expiry = exp;
      continue;
    }
    spdlog::info("resuming run {} of workflow {}", id, run.value("workflow_name", ""));
    adopt(run, false);
  }
  takeover_at_ = next_expiry;
  if (next_expiry != 0) wait_takeover(std::max<int64_t>(next_expiry - now_ms() + 50, 50));
}

void Engine::wait_takeover(int64_t delay_ms) {
  takeover_timer_.expires_after(std::chrono::milliseconds(delay_ms));
  takeover_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    try {
      resume_all();
    } catch (const std::exception& e) {
      spdlog::error("taking over runs: {}; trying again", e.what());
      wait_takeover(cfg_.heartbeat_interval_ms);
    }
  });
}

void Engine::adopt(json run, bool fresh, std::optional<WorkflowDefinition> wf) {
  auto r = std::make_unique<RunState>();
  std::string id = run["id"];
  std::optional<json> wf_rec;
  if (!wf) wf_rec = plugins_.state().get_workflow({{"name", run["workflow_name"]}});
  if (!wf && !wf_rec) {
    plugins_.state().update_run({{"id", id},
                                 {"set",
                                  {{"status", "failed"},
                                   {"finished_at", now_str()},
                                   {"error", error_obj("workflow_missing", "workflow was deleted")}}}});
    plugins_.state().release_lease({{"run_id", id}, {"owner", cfg_.host_id}});
    return;
  }
  r->wf = wf ? std::move(*wf) : (*wf_rec)["definition"].get<WorkflowDefinition>();
  r->contracts = std::make_unique<TaskContracts>(r->wf, secrets_);
  r->run = std::move(run);
  auto rows = plugins_.state().get_task_runs({{"run_id", id}});
  add_rows(*r, rows["tasks"]);
  r->lease_timer = std::make_unique<asio::steady_timer>(io_);
  RunState& rs = *r;
  runs_[id] = std::move(r);
  try {
    attach(rs, fresh);
  } catch (...) {
    drop_run(id);  // half adopted: whoever retries adopts it from scratch
    throw;
  }
}

// The second half of adopt(): start the run, renew its lease, re-attach in-flight attempts, advance it.
void Engine::attach(RunState& rs, bool fresh) {
  std::string id = rs.id();
  restore_fanouts(rs);
  for (auto& t : rs.tasks)
    if (!t->def && !is_terminal(t->status()))
      set_task_terminal(rs, *t, "failed", error_obj("spec_error", "task is no longer in the workflow definition"));
  if (rs.run["status"] == "pending") {
    std::string now = now_str();
    if (plugins_.state()
            .update_run({{"id", id},
                         {"set", {{"status", "running"}, {"started_at", now}}},
                         {"expect", {{"status", "pending"}}}})
            .value("updated", false)) {
      rs.run["status"] = "running";
      rs.run["started_at"] = now;
      emit_run(rs);
    }
  }
  renew_lease(id);
  // Re-attach attempts that were in flight when the previous owner stopped: their executor may not push to us.
  for (auto& t : rs.tasks) {
    if (!is_active(t->status())) continue;
    if (t->row["executor_id"].is_string()) by_executor_id_[t->row["executor_id"]] = {id, t->id()};
    t->pushed = fresh;
    t->last_heartbeat = time_or(t->row, "heartbeat_at", time_or(t->row, "dispatched_at", now_ms()));
    check_task(rs, *t);
    if (!find_run(id)) return;
  }
  advance(rs);
}

void Engine::add_rows(RunState& r, const json& rows) {
  for (const auto& row : rows) {
    auto t = std::make_unique<TaskState>();
    t->row = row;
    t->def = r.wf.find(row["task_name"]);
    t->timer = std::make_unique<asio::steady_timer>(io_);
    TaskState& ts = *t;
    r.by_name[row["task_name"]].push_back(t.get());
    r.by_id[t->id()] = t.get();
    r.tasks.push_back(std::move(t));
    track(r, ts, "", row["status"]);
  }
}

void Engine::track(RunState& r, TaskState& t, const std::string& old_status, const std::string& status) {
  if (old_status == status) return;
  Counts& c = r.counts[t.row["task_name"].get<std::string>()];
  auto bump = [&](const std::string& st, int d) {
    if (st.empty()) return;
    if (st == "pending")
      c.pending += d;
    else if (is_active(st))
      c.active += d;
    else if (is_terminal(st))
      c.terminal += d;
    if (st == "success") c.success += d;
  };
  if (old_status.empty()) ++c.total;
  bump(old_status, -1);
  bump(status, +1);
  if (status == "pending") r.pending[t.row["task_name"].get<std::string>()].push_back(&t);
  if (is_terminal(status) && t.row["parallel_index"].is_number()) {
    // A finished fan-out instance keeps only what dependents and progress output read; 10,000 of them stay small.
    json slim = json::object();
    for (const char* k : {"id", "run_id", "task_name", "status", "attempt", "max_retries", "parallel_index",
                          "parallel_count", "executor", "executor_id", "output", "error"})
      slim[k] = std::move(t.row[k]);
    t.row = std::move(slim);
    t.timer.reset();
  }
  int delta = int(is_active(status)) - int(is_active(old_status));
  active_total_ += delta;
  r.active += delta;
  if (delta < 0 && dispatch_blocked_) {
    // A slot opened while some run waited on the host-wide limit: give every run a look, after this handler.
    dispatch_blocked_ = false;
    asio::post(io_, [this, alive = alive_] {
      if (!*alive) return;
      std::vector<std::string> ids;
      for (auto& [id, run] : runs_) ids.push_back(id);
      for (auto& id : ids) {
        try {
          if (RunState* rs = find_run(id)) advance(*rs);
        } catch (const std::exception& e) {
          spdlog::error("run {}: {}", id, e.what());
          reload_later(id);
        }
      }
    });
  }
}

// Sizes a `parallel: task.field` / `foreach: task.field` task once its upstream tasks are done and adds its first
// batch of instances (the item in each one's input); later batches follow as instances finish, so a 10,000-item
// fan-out never has 10,000 rows in memory at once. One skipped row when an upstream failed or there is nothing to
// do, one failed row when the reference does not give a count or a list.
void Engine::expand(RunState& r, const TaskDefinition& def) {
  json scope = json::object();
  bool upstream_failed = false;
  for (const auto& d : def.depends_on) {
    const Counts& c = r.counts[d];
    if (c.total == 0 || c.terminal < std::max(c.total, c.expected)) return;  // upstream not finished
    if (c.success < c.terminal) upstream_failed = true;
    scope[d] = upstream_output(r, d);
  }
  FanOut fo;
  for (const auto& d : r.wf.tasks) {
    if (d.name == def.name) break;
    ++fo.seq;
  }
  auto single = [&](const std::string& status, const json& error) {
    std::string now = now_str();
    json row = task_row(r.id(), def, fo.seq, now, def.input, nullptr, nullptr);
    row["status"] = status;
    row["error"] = error;
    row["finished_at"] = now;
    insert_rows(r, def, json::array({row}));
  };
  const bool foreach = def.parallel.kind == Parallelism::Kind::ForEach;
  std::string what = std::string(foreach ? "foreach: " : "parallel: ") + def.parallel.ref;
  if (upstream_failed && def.on_failure == OnFailure::Skip)
    return single("skipped", error_obj("upstream_failed", "an upstream task failed"));
  auto v = lookup(scope, def.parallel.ref);
  if (!v || (foreach && !v->is_array()) || (!foreach && !v->is_number_integer()))
    return single("failed", error_obj("fanout_error",
                                      what + (v ? " is not " : " is missing from the upstream output") +
                                          (v ? (foreach ? std::string("a list") : "an integer") : ""),
                                      {{"value", v ? *v : json(nullptr)}}));
  fo.total = foreach ? static_cast<int64_t>(v->size()) : v->get<int64_t>();
  if (fo.total < 0) return single("failed", error_obj("fanout_error", what + " is negative", {{"value", *v}}));
  if (fo.total == 0) return single("skipped", error_obj("empty_fanout", what + " has no items"));
  if (foreach) fo.items = std::move(*v);
  r.counts[def.name].expected = fo.total;
  spdlog::debug("run {}: {} fans out into {} instance(s)", r.id(), def.name, fo.total);
  add_batch(r, def, r.fanouts[def.name] = std::move(fo));
}

// Adds the next batch of a sized fan-out's instances.
void Engine::add_batch(RunState& r, const TaskDefinition& def, FanOut& fo) {
  std::string now = now_str();
  json rows = json::array();
  int64_t end = std::min<int64_t>(fo.total, fo.next + cfg_.fanout_batch);
  for (int64_t i = fo.next; i < end; ++i) {
    json input = def.input.is_object() ? def.input : json::object();
    if (fo.items.is_array()) input["item"] = fo.items[static_cast<size_t>(i)];
    rows.push_back(task_row(r.id(), def, fo.seq, now, std::move(input), i, fo.total));
  }
  fo.next = end;
  insert_rows(r, def, rows);
}

// Stores new rows of `def` (all or none) and tracks them; if another host stored them first, tracks its rows.
void Engine::insert_rows(RunState& r, const TaskDefinition& def, json rows) {
  try {
    plugins_.state().add_task_runs({{"run_id", r.id()}, {"tasks", rows}});
  } catch (const PluginCallError& e) {
    if (e.code() != ORK_ERR_CONFLICT) throw;
    rows = json::array();
    json all = plugins_.state().get_task_runs({{"run_id", r.id()}})["tasks"];
    for (auto& row : all)
      if (row["task_name"] == def.name && !r.task(row["id"])) rows.push_back(std::move(row));
    if (auto it = r.fanouts.find(def.name); it != r.fanouts.end())
      for (const auto& row : rows)
        if (row["parallel_index"].is_number())
          it->second.next = std::max<int64_t>(it->second.next, row["parallel_index"].get<int64_t>() + 1);
  }
  add_rows(r, rows);
  for (const auto& row : rows)
    if (row["status"] != "pending") emit_task(r, *r.task(row["id"]));
}

// After a restart: fan-outs that had only part of their instances stored continue where they stopped.
void Engine::restore_fanouts(RunState& r) {
  for (const auto& def : r.wf.tasks) {
    if (def.parallel.kind != Parallelism::Kind::CountRef && def.parallel.kind != Parallelism::Kind::ForEach) continue;
    const auto& rows = r.by_name[def.name];
    if (rows.empty() || !rows.front()->row["parallel_count"].is_number()) continue;
    FanOut fo;
    fo.total = rows.front()->row["parallel_count"].get<int64_t>();
    for (const TaskState* t : rows) fo.next = std::max<int64_t>(fo.next, t->row["parallel_index"].get<int64_t>() + 1);
    fo.seq = static_cast<int>(int_of(rows.front()->row, "seq"));
    r.counts[def.name].expected = fo.total;
    if (fo.next >= fo.total) continue;
    if (def.parallel.kind == Parallelism::Kind::ForEach) {
      json scope = json::object();
      for (const auto& d : def.depends_on) scope[d] = upstream_output(r, d);
      auto v = lookup(scope, def.parallel.ref);
      if (!v || !v->is_array() || static_cast<int64_t>(v->size()) != fo.total) {
        spdlog::error("run {}: cannot continue the fan-out of {}: its items changed", r.id(), def.name);
        continue;
      }
      fo.items = std::move(*v);
    }
    r.fanouts[def.name] = std::move(fo);
  }
}

Engine::RunState* Engine::find_run(const std::string& run_id) {
  auto it = runs_.find(run_id);
  return it == runs_.end() ? nullptr : it->second.get();
}

void Engine::renew_lease(const std::string& run_id) {
  RunState* r = find_run(run_id);
  if (!r) return;
  r->lease_timer->expires_after(std::chrono::milliseconds(std::max<int64_t>(cfg_.lease_ttl_ms / 3, 10)));
  r->lease_timer->async_wait([this, run_id, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    try {
      auto res =
          plugins_.state().renew_lease({{"run_id", run_id}, {"owner", cfg_.host_id}, {"ttl_ms", cfg_.lease_ttl_ms}});
      if (!res.value("renewed", false)) {
        spdlog::warn("lost the lease on run {}; another host owns it now", run_id);
        drop_run(run_id);
        return;
      }
      // Another process may have cancelled the run (ork-host cancel): the lease renewal is when we look.
      auto run = plugins_.state().get_run({{"id", run_id}});
      RunState* rs = find_run(run_id);
      if (run && rs && (*run)["status"] == "cancelled" && rs->run["status"] != "cancelled") {
        spdlog::info("run {} was cancelled elsewhere: stopping its tasks", run_id);
        cancel_run(run_id);
        if (!find_run(run_id)) return;
      }
    } catch (const std::exception& e) {
      spdlog::warn("renewing lease on run {}: {}", run_id, e.what());
    }
    renew_lease(run_id);
  });
}

void Engine::drop_run(const std::string& run_id) {
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  for (auto& t : it->second->tasks) {
    if (t->timer) t->timer->cancel();
    if (t->row["executor_id"].is_string()) by_executor_id_.erase(t->row["executor_id"].get<std::string>());
  }
  it->second->lease_timer->cancel();
  for (auto& [name, c] : it->second->counts) active_total_ -= c.active;
  runs_.erase(it);
}

void Engine::stop() {
  reloading_.clear();
  schedule_timer_.cancel();
  schedules_on_ = false;
  takeover_timer_.cancel();
  takeover_at_ = 0;
  std::vector<std::string> ids;
  for (auto& [id, r] : runs_) ids.push_back(id);
  for (auto& id : ids) {
    try {
      plugins_.state().release_lease({{"run_id", id}, {"owner", cfg_.host_id}});
    } catch (const std::exception& e) {
      spdlog::warn("releasing lease on run {}: {}", id, e.what());
    }
    drop_run(id);
  }
}

// Decides what happens next in a run: expands fan-outs whose size is known, skips tasks whose upstream failed,
// dispatches ready tasks within the concurrency limits, and finishes the run when nothing is left. Works per task
// name from counters, so an event costs O(task names + tasks dispatched), not O(instances). Not re-entrant: a
// nested call (a dispatch that fails at once) just asks the running one to go around again.
void Engine::advance(RunState& r) {
  if (r.finishing) return;
  if (r.advancing) {
    r.again = true;
    return;
  }
  r.advancing = true;
  bool stop = false;
  try {
    do {
      r.again = false;
      stop = advance_once(r);
    } while (r.again && !stop);
  } catch (...) {
    r.advancing = false;  // the state store failed mid-way: the next event or deadline advances again
    throw;
  }
  r.advancing = false;
  if (stop) finish_run(r);
}

// One pass of advance(); returns true when the run is complete.
bool Engine::advance_once(RunState& r) {
  bool cancelled = r.run["status"] == "cancelled";
  bool any_unexpanded = false;
  for (const auto& def : r.wf.tasks) {
    bool dynamic = def.parallel.kind == Parallelism::Kind::CountRef || def.parallel.kind == Parallelism::Kind::ForEach;
    if (!dynamic || cancelled) continue;
    if (r.by_name[def.name].empty()) expand(r, def);
    if (auto it = r.fanouts.find(def.name); it != r.fanouts.end() && it->second.next < it->second.total) {
      const Counts& c = r.counts[def.name];
      if (c.pending < cfg_.fanout_batch / 2) add_batch(r, def, it->second);
      any_unexpanded = true;
    }
    if (r.by_name[def.name].empty()) any_unexpanded = true;
  }
  bool start_no_more = false;
  int64_t now = now_ms();
  for (const auto& def : r.wf.tasks) {
    auto& q = r.pending[def.name];
    while (!q.empty() && q.front()->status() != "pending") q.pop_front();
    if (q.empty()) continue;
    bool ready = true, upstream_failed = false;
    for (const auto& d : def.depends_on) {
      const Counts& c = r.counts[d];
      if (c.total == 0 || c.terminal < std::max(c.total, c.expected)) ready = false;  // fan-outs not all stored yet
      if (c.success < c.terminal) upstream_failed = true;
    }
    const char* skip = cancelled                                              ? "run was cancelled"
                       : upstream_failed && def.on_failure == OnFailure::Skip ? "an upstream task failed"
                                                                              : nullptr;
    if (skip) {
      for (size_t i = 0; i < q.size(); ++i)
        if (q[i]->status() == "pending")
          set_task_terminal(r, *q[i], "skipped", error_obj(cancelled ? "cancelled" : "upstream_failed", skip));
      q.clear();
      continue;
    }
    if (!ready || start_no_more) continue;
    for (size_t i = 0; i < q.size(); ++i) {
      TaskState& t = *q[i];
      if (t.status() != "pending") continue;
      if (int64_t nb = time_or(t.row, "not_before", 0); nb > now) {
        if (t.armed_at != nb) arm(r, t, nb);
        continue;
      }
      if (def.concurrency && r.counts[def.name].active >= *def.concurrency) break;
      if (r.wf.concurrency && r.active >= *r.wf.concurrency) {
        start_no_more = true;  // nothing else in this run may start either
        break;
      }
      if (active_total_ >= cfg_.max_active_tasks) {
        dispatch_blocked_ = true;
        start_no_more = true;
        break;
      }
      dispatch(r, t);
    }
  }
  if (any_unexpanded) return false;
  for (const auto& [name, c] : r.counts)
    if (c.pending > 0 || c.active > 0) return false;
  return true;
}

// What a dependent sees of upstream task `d`: its output (null unless it succeeded), or for a fanned-out task the
// list of its instances' outputs in parallel_index order.
json Engine::upstream_output(const RunState& r, const std::string& d) const {
  auto it = r.by_name.find(d);
  if (it == r.by_name.end() || it->second.empty()) return nullptr;
  auto out = [](const TaskState* u) { return u->status() == "success" ? u->row["output"] : json(nullptr); };
  const TaskDefinition* def = r.wf.find(d);
  if (!def || def->parallel.kind == Parallelism::Kind::None) return out(it->second.front());
  if (it->second.size() == 1 && it->second.front()->row["parallel_index"].is_null()) return json::array();
  json list = json::array();
  for (const TaskState* u : it->second) list.push_back(out(u));
  return list;
}

// Each dependency's output by name (what `{{ dep.field }}` and the implicit input.<dep> see).
json Engine::upstream_outputs(const RunState& r, const TaskState& t) const {
  json upstream = json::object();
  for (const auto& d : t.def->depends_on) upstream[d] = upstream_output(r, d);
  return upstream;
}

void Engine::dispatch(RunState& r, TaskState& t) {
  const TaskDefinition& def = *t.def;
  ExecutorProxy* ex = plugins_.executor(def.worker);
  if (!ex) {
    set_task_terminal(
        r, t, "failed",
        error_obj("spec_error", "no executor plugin named '" + def.worker + "' in " + plugins_.config().source));
    return;
  }
  auto acq = plugins_.state().try_acquire_task({{"run_id", r.id()}, {"id", t.id()}});
  if (!acq.value("acquired", false)) {
    auto rows = plugins_.state().get_task_runs({{"run_id", r.id()}});
    for (auto& row : rows["tasks"])
      if (row["id"] == t.row["id"]) {
        std::string before = t.status();
        t.row = row;
        track(r, t, before, t.status());
      }
    return;
  }
  std::string before = t.status();
  t.row = acq["task"];
  track(r, t, before, t.status());
  t.pushed = ex->poll_interval_ms() == 0;
  emit_task(r, t);
  std::string base = "runs/" + r.id() + "/" + t.id() + "/";
  std::string spec_key = base + "spec.json";
  json upstream = upstream_outputs(r, t);
  PreparedTask prep;
  try {
    json ctx{{"run_id", r.id()},
             {"task_id", t.id()},
             {"task_name", def.name},
             {"workflow_name", r.wf.name},
             {"attempt", t.attempt()},
             {"parallel_index", t.row["parallel_index"]},
             {"parallel_count", t.row["parallel_count"]}};
    const json* item =
        def.parallel.kind == Parallelism::Kind::ForEach && t.row["input"].is_object() && t.row["input"].contains("item")
            ? &t.row["input"]["item"]
            : nullptr;
    prep = r.contracts->prepare(def, r.run["input"], upstream, ctx, item);
  } catch (const TaskInputError& e) {
    if (e.retryable()) {
      fail_attempt(r, t, e.error(), false);
    } else {  // the same upstream outputs give the same input: retrying cannot help
      set_task_terminal(r, t, "failed", e.error());
      advance(r);
    }
    return;
  } catch (const std::exception& e) {
    fail_attempt(r, t, error_obj("input_error", e.what()), false);
    return;
  }
  json& input = prep.input;
  json secret_names = json::array();
  for (auto it = prep.secret_env.begin(); it != prep.secret_env.end(); ++it) secret_names.push_back(it.key());
  json spec{{"task_id", t.id()},
            {"run_id", r.id()},
            {"task_name", def.name},
            {"workflow_name", r.wf.name},
            {"executor", def.executor},
            {"file", def.file ? json(*def.file) : json(nullptr)},
            {"command", command_json(def)},
            {"function", def.function ? json(*def.function) : json(nullptr)},
            {"config_file", def.config_file ? json(*def.config_file) : json(nullptr)},
            {"image", def.image ? json(*def.image) : json(nullptr)},
            {"input_to_file", def.input_to_file ? json(*def.input_to_file) : json(nullptr)},
            {"output_from_file", def.output_from_file ? json(*def.output_from_file) : json(nullptr)},
            {"base_dir", r.wf.base_dir},
            {"input", input},
            {"upstream", upstream},
            {"env", prep.env},
            {"secret_env", std::move(secret_names)},
            {"timeout_seconds", def.timeout_seconds},
            {"parallel_index", t.row["parallel_index"]},
            {"parallel_count", t.row["parallel_count"]},
            {"attempt", t.attempt()},
            {"created_at", now_str()},
            {"output_key", base + "output.json"},
            {"status_key", base + "status.json"},
            {"log_key", base + "attempt-" + std::to_string(t.attempt()) + ".log"}};
  json exec_env{{"ORK_TASK_SPEC_PATH", spec_key},
                {"ORK_OBJECT_STORE", plugins_.object_store_ref().dump()},
                {"ORK_HEARTBEAT_INTERVAL_MS", std::to_string(cfg_.heartbeat_interval_ms)},
                {"ORK_TASK_CANCEL_GRACE_MS", std::to_string(cfg_.cancel_grace_ms / 2)}};
  // Secret values travel in the worker's environment only, never in spec.json (docs/workflows.md, "Secrets").
  if (prep.has_secrets()) exec_env["ORK_TASK_SECRETS"] = prep.secrets_payload().dump();
  exec_env["ORK_SECRET_ENV_PREFIX"] = secrets_.env_prefix();  // the worker hides the host's ORK_SECRET_* from tasks
  json exec_cfg{
      {"task_id", t.id()},
      {"run_id", r.id()},
      {"task_name", def.name},
      {"workflow_name", r.wf.name},
      {"attempt", t.attempt()},
      {"runtime", def.executor},
      {"spec_key", spec_key},
      {"timeout_seconds", def.timeout_seconds},
      {"resources", {{"cpu_millis", def.resources.cpu_millis}, {"memory_mb", def.resources.memory_mb}}},
      {"worker_command", cfg_.worker_command},
      {"worker_server_command", cfg_.worker_server_command.empty() ? json() : json(cfg_.worker_server_command)},
      {"image", def.image ? json(*def.image) : json(nullptr)},
      {"env", exec_env}};
  std::string executor_id;
  bool running = false;
  try {
    plugins_.objects().del(base + "status.json");
    plugins_.objects().put_json(spec_key, spec);
    json res = ex->dispatch(exec_cfg);
    executor_id = res.at("executor_id").get<std::string>();
    running = res.is_object() && res.value("state", json()) == "running";
  } catch (const std::exception& e) {
    fail_attempt(r, t, error_obj("dispatch_error", e.what()), false);
    return;
  }
  by_executor_id_[executor_id] = {r.id(), t.id()};
  // An executor that answers "running" (the process exists) saves a second state write for the running event.
  json set{{"executor_id", executor_id}, {"executor", ex->name()}};
  if (running) {
    set["status"] = "running";
    set["started_at"] = now_str();
  }
  if (update_task(r, t, std::move(set)) && running) emit_task(r, t);
  t.last_heartbeat = now_ms();
  check_task(r, t);
}

void Engine::arm(RunState& r, TaskState& t, int64_t at_ms) {
  int64_t delay = std::max<int64_t>(at_ms - now_ms(), 0);
  t.armed_at = at_ms;
  t.timer->expires_after(std::chrono::milliseconds(delay));
  std::string run_id = r.id(), task_id = t.id();
  t.timer->async_wait([this, run_id, task_id, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    RunState* rs = find_run(run_id);
    if (!rs) return;
    TaskState* ts = rs->task(task_id);
    if (!ts) return;
    try {
      if (ts->status() == "pending")
        advance(*rs);
      else
        check_task(*rs, *ts);
    } catch (const std::exception& e) {
      spdlog::error("run {} task {}: {}", run_id, str_of(ts->row, "task_name"), e.what());
      reload_later(run_id);
    }
  });
}

// After a failed state-store call the in-memory run may disagree with the store: drop it and adopt it again from
// the store (as after a restart: in-flight attempts are re-attached through their status files), retrying until
// the store answers.
void Engine::reload_later(const std::string& run_id) {
  if (!find_run(run_id)) return;
  spdlog::warn("run {}: reloading it from the state store", run_id);
  drop_run(run_id);
  retake_later(run_id);
}

void Engine::retake_later(const std::string& run_id) {
  reloading_.insert(run_id);
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(cfg_.heartbeat_interval_ms));
  timer->async_wait([this, run_id, timer, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    try {
      take(run_id);
      reloading_.erase(run_id);
    } catch (const std::exception& e) {
      spdlog::warn("run {}: state store still failing ({}); trying again", run_id, e.what());
      retake_later(run_id);
    }
  });
}

// Looks at one in-flight attempt and arms its next deadline: start timeout, execution timeout, heartbeat staleness,
// or (for executors that cannot push, and attempts re-attached after a restart) the next status check.
void Engine::check_task(RunState& r, TaskState& t) {
  if (!is_active(t.status())) return;
  std::string run_id = r.id();
  int64_t now = now_ms();
  ExecutorProxy* ex = plugins_.executor(str_of(t.row, "executor"));
  uint32_t poll = ex ? ex->poll_interval_ms() : 0;
  if (poll > 0 && t.row["executor_id"].is_string()) {
    try {
      auto st = ex->status({{"executor_id", t.row["executor_id"]}});
      std::string s = st.value("state", "unknown");
      if (s != "unknown") {
        on_executor_state(r, t, s, st);
        if (!find_run(run_id) || !is_active(t.status())) return;
      }
    } catch (const std::exception& e) {
      spdlog::warn("executor status for task {}: {}", str_of(t.row, "task_name"), e.what());
    }
  }
  if (!t.pushed || poll > 0 || now - t.last_heartbeat >= cfg_.heartbeat_timeout_ms ||
      (t.status() == "dispatched" && now - time_or(t.row, "dispatched_at", now) >= cfg_.start_timeout_ms)) {
    if (read_worker_status(r, t)) return;  // the attempt ended
    if (!find_run(run_id)) return;
  }
  int64_t dispatched = time_or(t.row, "dispatched_at", now);
  int64_t started = time_or(t.row, "started_at", dispatched);
  int64_t timeout_ms = int64_t(t.def ? t.def->timeout_seconds : 3600) * 1000;
  if (t.status() == "dispatched" && now - dispatched >= cfg_.start_timeout_ms) {
    if (t.row["executor_id"].is_null()) {
      // The host stopped between acquiring the attempt and recording its executor, and no worker ever wrote a
      // status: the attempt provably never ran. Dispatch it again without spending one of the task's retries.
      spdlog::warn("task {} attempt {} was never handed to an executor; dispatching it again",
                   str_of(t.row, "task_name"), t.attempt());
      if (update_task(r, t,
                      {{"status", "pending"},
                       {"max_retries", int_of(t.row, "max_retries") + 1},
                       {"error", error_obj("dispatch_lost", "the host stopped before the attempt was dispatched")}})) {
        if (t.timer) t.timer->cancel();
        emit_task(r, t);
        advance(r);
      }
      return;
    }
    fail_attempt(r, t, error_obj("start_timeout", "job never started"), true);
    return;
  }
  if (now - started >= timeout_ms) {
    fail_attempt(r, t, error_obj("timeout", "execution timeout", {{"timeout_seconds", timeout_ms / 1000}}), true);
    return;
  }
  if (t.status() == "running" && now - t.last_heartbeat >= cfg_.heartbeat_timeout_ms) {
    fail_attempt(r, t, error_obj("heartbeat", "heartbeat timeout", {{"last_heartbeat", format_time(t.last_heartbeat)}}),
                 true);
    return;
  }
  int64_t next = started + timeout_ms;
  next = std::min(next, t.last_heartbeat + cfg_.heartbeat_timeout_ms);
  if (t.status() == "dispatched") next = std::min(next, dispatched + cfg_.start_timeout_ms);
  if (!t.pushed) next = std::min(next, now + cfg_.heartbeat_interval_ms);
  if (poll > 0) next = std::min<int64_t>(next, now + poll);
  arm(r, t, std::max(next, now + 1));
}

// Reads status.json of the current attempt. Returns true when it showed a finished attempt (and handled it).
bool Engine::read_worker_status(RunState& r, TaskState& t) {
  std::string base = "runs/" + r.id() + "/" + t.id() + "/";
  std::optional<json> st;
  try {
    st = plugins_.objects().get_json(base + "status.json");
  } catch (const std::exception& e) {
    spdlog::warn("reading status of task {}: {}", str_of(t.row, "task_name"), e.what());
    return false;
  }
  if (!st || st->value("attempt", t.attempt()) != t.attempt()) return false;
  int64_t hb = time_or(*st, "heartbeat", 0);
  if (hb > t.last_heartbeat) t.last_heartbeat = hb;
  std::string s = st->value("status", "");
  if (s == "running") {
    if (t.status() == "dispatched") {
      update_task(r, t, {{"status", "running"}, {"started_at", st->value("started_at", now_str())}});
      emit_task(r, t);
    }
    return false;
  }
  if (s == "success") {
    if (auto inline_out = st->find("output"); inline_out != st->end()) {  // small outputs come inside the status
      complete_success(r, t, *inline_out);
      return true;
    }
    std::optional<json> out;
    try {
      out = plugins_.objects().get_json(base + "output.json");
    } catch (const std::exception& e) {
      fail_attempt(r, t, error_obj("invalid_output", e.what()), false);
      return true;
    }
    complete_success(r, t, out ? *out : json(nullptr));
    return true;
  }
  if (s == "failed") {
    json err =
        st->contains("error") && (*st)["error"].is_object() ? (*st)["error"] : error_obj("failed", "task failed");
    if (t.row.contains("_cancel_requested")) {
      set_task_terminal(r, t, "cancelled", error_obj("cancelled", "cancelled by user"));
      advance(r);
      return true;
    }
    fail_attempt(r, t, err, false);
    return true;
  }
  return false;
}

void Engine::notify(const std::string& executor_name, const json& event) {
  asio::post(io_, [this, executor_name, event, alive = alive_] {
    if (!*alive) return;
    if (event.value("type", "") == "state.changed") {
      on_state_changed(event);
      return;
    }
    std::string eid = event.value("executor_id", "");
    auto it = by_executor_id_.find(eid);
    if (it == by_executor_id_.end()) return;
    auto [run_id, task_id] = it->second;
    RunState* r = find_run(run_id);
    if (!r) return;
    TaskState* t = r->task(task_id);
    if (!t || t->row["executor_id"] != eid) return;
    try {
      on_executor_state(*r, *t, event.value("state", ""), event);
    } catch (const std::exception& e) {
      spdlog::error("handling {} event for task {}: {}", executor_name, str_of(t->row, "task_name"), e.what());
      reload_later(run_id);
    }
  });
}

// A state plugin that can push (PostgreSQL LISTEN/NOTIFY) tells us another host created or changed a run or a
// schedule: a serving engine looks for runs to take over and re-arms its schedule timer, with no polling.
void Engine::on_state_changed(const json& event) {
  if (!follow_state_) return;
  try {
    std::string what = event.value("what", "");
    if (what == "run" || what == "reconnected") {
      std::string id = event.value("run_id", "");
      if (id.empty() || !find_run(id)) resume_all();
    }
    if ((what == "schedule" || what == "reconnected") && schedules_on_) arm_schedules();
  } catch (const std::exception& e) {
    spdlog::warn("handling a state change event: {}", e.what());
  }
}

void Engine::on_executor_state(RunState& r, TaskState& t, const std::string& state, const json& ev) {
  if (!is_active(t.status())) return;
  if (state == "running") {
    if (t.status() == "dispatched") {
      update_task(r, t, {{"status", "running"}, {"started_at", now_str()}});
      emit_task(r, t);
    }
    return;
  }
  if (state != "succeeded" && state != "failed" && state != "cancelled") return;
  std::string run_id = r.id();
  if (t.row["executor_id"].is_string()) by_executor_id_.erase(t.row["executor_id"].get<std::string>());
  finish_attempt(r, t, state, ev);
}

// The attempt's executor says it ended: record what its status file says, or why it has none.
void Engine::finish_attempt(RunState& r, TaskState& t, const std::string& state, const json& ev) {
  std::string run_id = r.id();
  if (read_worker_status(r, t)) return;
  if (!find_run(run_id) || !is_active(t.status())) return;
  if (state == "cancelled" || t.row.contains("_cancel_requested")) {
    set_task_terminal(r, t, "cancelled", error_obj("cancelled", "cancelled by user"));
    advance(r);
    return;
  }
  json details{{"exit_code", ev.value("exit_code", json(nullptr))}};
  if (ev.contains("message")) details["message"] = ev["message"];
  fail_attempt(r, t, error_obj("worker_crashed", "worker exited without reporting a result", details), false);
}

bool Engine::update_task(RunState& r, TaskState& t, json set) {
  json expect{{"status", t.row["status"]}, {"attempt", t.row["attempt"]}};
  auto res = plugins_.state().update_task_run({{"run_id", r.id()}, {"id", t.id()}, {"set", set}, {"expect", expect}});
  if (!res.value("updated", false)) {
    spdlog::warn("task {} changed under us (status {} attempt {})", str_of(t.row, "task_name"), t.status(),
                 t.attempt());
    return false;
  }
  std::string old_status = t.status();
  for (auto it = set.begin(); it != set.end(); ++it) t.row[it.key()] = it.value();
  track(r, t, old_status, t.status());
  return true;
}

// The output checked against the task's output type (defaults filled in); the error when it does not match.
std::optional<json> Engine::check_output(RunState& r, const TaskState& t, json& output) {
  if (!t.def || !r.contracts) return std::nullopt;
  return r.contracts->check_output(*t.def, output);
}

void Engine::complete_success(RunState& r, TaskState& t, const json& result) {
  json output = result;
  if (auto err = check_output(r, t, output)) {
    fail_attempt(r, t, *err, false);
    return;
  }
  if (!update_task(r, t, {{"status", "success"}, {"output", output}, {"error", nullptr}, {"finished_at", now_str()}}))
    return;
  if (t.timer) t.timer->cancel();
  emit_task(r, t);
  advance(r);
}

void Engine::fail_attempt(RunState& r, TaskState& t, const json& error, bool cancel_executor) {
  if (cancel_executor && t.row["executor_id"].is_string()) {
    if (ExecutorProxy* ex = plugins_.executor(str_of(t.row, "executor"))) {
      try {
        ex->cancel({{"executor_id", t.row["executor_id"]}, {"grace_ms", cfg_.cancel_grace_ms}});
      } catch (const std::exception& e) {
        spdlog::warn("cancelling task {}: {}", str_of(t.row, "task_name"), e.what());
      }
    }
  }
  if (t.row["executor_id"].is_string()) by_executor_id_.erase(t.row["executor_id"].get<std::string>());
  int max_retries = int_of(t.row, "max_retries");
  if (t.attempt() <= max_retries && r.run["status"] != "cancelled") {
    int64_t delay = int64_t(t.def ? t.def->retry_delay_seconds : 0) * 1000;
    if (!update_task(r, t,
                     {{"status", "pending"},
                      {"error", error},
                      {"executor_id", nullptr},
                      {"not_before", format_time(now_ms() + delay)},
                      {"finished_at", now_str()}}))
      return;
    if (t.timer) t.timer->cancel();
    spdlog::info("task {} attempt {} failed ({}); retrying in {} ms", str_of(t.row, "task_name"), t.attempt(),
                 error.value("message", ""), delay);
    emit_task(r, t);
  } else {
    set_task_terminal(r, t, "failed", error);
  }
  advance(r);
}

// Timers are cancelled only once the state store has the change: if the store is down the attempt's deadline
// timer stays armed and the change is made again when it fires.
void Engine::set_task_terminal(RunState& r, TaskState& t, const std::string& status, const json& error) {
  if (!update_task(r, t, {{"status", status}, {"error", error}, {"finished_at", now_str()}})) return;
  if (t.timer) t.timer->cancel();
  emit_task(r, t);
}

void Engine::finish_run(RunState& r) {
  r.finishing = true;
  std::string status = r.run["status"] == "cancelled" ? "cancelled" : "success";
  for (auto& t : r.tasks)
    if (t->status() == "cancelled" && status == "success") status = "cancelled";
  json error = nullptr;
  if (status != "cancelled") {
    for (auto& t : r.tasks)
      if (t->status() == "failed") {
        status = "failed";
        error = error_obj("task_failed", "task '" + t->row["task_name"].get<std::string>() + "' failed",
                          {{"task", t->row["task_name"]}, {"error", t->row["error"]}});
        break;
      }
  }
  std::string id = r.id();
  json set{{"status", status}, {"finished_at", now_str()}};
  if (!error.is_null()) set["error"] = error;
  plugins_.state().update_run({{"id", id}, {"set", set}});
  for (auto it = set.begin(); it != set.end(); ++it) r.run[it.key()] = it.value();
  emit_run(r);
  plugins_.state().release_lease({{"run_id", id}, {"owner", cfg_.host_id}});
  drop_run(id);
}

void Engine::cancel_run(const std::string& run_id) {
  cancel(run_id, "");
}

void Engine::cancel(const std::string& run_id, const std::string& task_name) {
  RunState* r = find_run(run_id);
  if (!r) {
    auto run = plugins_.state().get_run({{"id", run_id}});
    if (!run) throw std::runtime_error("no run " + run_id);
    if (is_terminal((*run)["status"])) return;
    if (!task_name.empty())
      throw std::runtime_error("run " + run_id + " is driven by " + run->value("owner", std::string("another host")) +
                               ": cancel its task there");
    // Another host drives it: mark it; that host sees the mark when it next renews its lease and stops the tasks.
    plugins_.state().update_run(
        {{"id", run_id}, {"set", {{"status", "cancelled"}}}, {"expect", {{"status", (*run)["status"]}}}});
    return;
  }
  if (task_name.empty()) {
    plugins_.state().update_run({{"id", run_id}, {"set", {{"status", "cancelled"}}}});
    r->run["status"] = "cancelled";
  } else if (!r->wf.find(task_name)) {
    throw std::runtime_error("run " + run_id + " has no task '" + task_name + "'");
  }
  for (auto& t : r->tasks) {
    if (!task_name.empty() && t->row["task_name"] != task_name) continue;
    if (t->status() == "pending" && !task_name.empty()) {
      set_task_terminal(*r, *t, "cancelled", error_obj("cancelled", "cancelled by user"));
      continue;
    }
    if (!is_active(t->status())) continue;
    t->row["_cancel_requested"] = true;
    if (ExecutorProxy* ex = plugins_.executor(str_of(t->row, "executor"))) {
      try {
        if (t->row["executor_id"].is_string())
          ex->cancel({{"executor_id", t->row["executor_id"]}, {"grace_ms", cfg_.cancel_grace_ms}});
      } catch (const std::exception& e) {
        spdlog::warn("cancelling task {}: {}", str_of(t->row, "task_name"), e.what());
      }
    }
  }
  advance(*r);
}

std::string Engine::retry(const std::string& run_id, const std::string& task_name) {
  auto run = plugins_.state().get_run({{"id", run_id}});
  if (!run) throw std::runtime_error("no run " + run_id);
  std::string status = (*run)["status"];
  if (!is_terminal(status))
    throw std::runtime_error("run " + run_id + " is still " + status + "; retry a finished run");
  if (task_name.empty() && status == "success")
    throw std::runtime_error("run " + run_id + " succeeded: nothing to retry");
  auto wf_rec = plugins_.state().get_workflow({{"name", (*run)["workflow_name"]}});
  if (!wf_rec) throw std::runtime_error("workflow " + (*run)["workflow_name"].get<std::string>() + " was deleted");
  WorkflowDefinition wf = (*wf_rec)["definition"].get<WorkflowDefinition>();
  // What re-runs: every task that did not succeed, or `task_name` and everything downstream of it.
  std::set<std::string> names;
  if (!task_name.empty()) {
    if (!wf.find(task_name)) throw std::runtime_error("run " + run_id + " has no task '" + task_name + "'");
    names.insert(task_name);
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& def : wf.tasks)
        for (const auto& d : def.depends_on)
          if (names.count(d) && names.insert(def.name).second) grew = true;
    }
  }
  json rows = plugins_.state().get_task_runs({{"run_id", run_id}})["tasks"];
  int reset = 0;
  for (const auto& row : rows) {
    std::string name = row["task_name"];
    bool again = task_name.empty() ? row["status"] != "success" : names.count(name) > 0;
    if (!again) continue;
    const TaskDefinition* def = wf.find(name);
    int attempt = static_cast<int>(int_of(row, "attempt"));
    json set{{"status", "pending"},
             {"error", nullptr},
             {"output", nullptr},
             {"executor_id", nullptr},
             {"not_before", nullptr},
             {"finished_at", nullptr},
             {"max_retries", attempt + (def ? def->retries : 0)}};
    plugins_.state().update_task_run(
        {{"run_id", run_id}, {"id", row["id"]}, {"set", set}, {"expect", {{"status", row["status"]}}}});
    ++reset;
  }
  if (reset == 0) throw std::runtime_error("run " + run_id + ": no task to retry");
  auto upd =
      plugins_.state().update_run({{"id", run_id},
                                   {"set", {{"status", "pending"}, {"error", nullptr}, {"finished_at", nullptr}}},
                                   {"expect", {{"status", status}}}});
  if (!upd.value("updated", false)) throw std::runtime_error("run " + run_id + " changed while retrying it");
  spdlog::info("retrying run {}: {} task(s) reset", run_id, reset);
  auto lease =
      plugins_.state().acquire_lease({{"run_id", run_id}, {"owner", cfg_.host_id}, {"ttl_ms", cfg_.lease_ttl_ms}});
  if (lease.value("acquired", false)) {
    auto fresh = plugins_.state().get_run({{"id", run_id}});
    adopt(*fresh, false);
  }
  return run_id;
}

void Engine::emit_task(const RunState& r, const TaskState& t) {
  EngineEvent ev{"task",
                 {{"run_id", r.run["id"]},
                  {"workflow_name", r.run["workflow_name"]},
                  {"task_id", t.row["id"]},
                  {"task_name", t.row["task_name"]},
                  {"parallel_index", t.row.value("parallel_index", json(nullptr))},
                  {"status", t.row["status"]},
                  {"attempt", t.row["attempt"]},
                  {"max_retries", t.row["max_retries"]},
                  {"error", t.row.value("error", json(nullptr))},
                  {"output", t.row.value("output", json(nullptr))}}};
  for (auto& l : listeners_) l(ev);
}

void Engine::emit_run(const RunState& r) {
  EngineEvent ev{"run",
                 {{"run_id", r.run["id"]},
                  {"workflow_name", r.run["workflow_name"]},
                  {"status", r.run["status"]},
                  {"error", r.run.value("error", json(nullptr))}}};
  for (auto& l : listeners_) l(ev);
}

}  // namespace ork
