// The backend-neutral scheduler engine: runs workflow DAGs through the StateStore, ObjectStore and Executor proxies,
// on one io_context, driven by executor events and deadline timers only (no polling loop).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/expressions.hpp"
#include "core/model.hpp"
#include "core/secrets.hpp"
#include "loader/plugin_loader.hpp"

namespace ork {

struct EngineConfig {
  std::string host_id;                      // lease owner id; unique per process
  int64_t lease_ttl_ms = 60000;             // run lease; renewed every ttl/3
  int64_t heartbeat_timeout_ms = 60000;     // stale heartbeat fails the attempt
  int64_t heartbeat_interval_ms = 10000;    // what workers are told; also the re-attach watch period
  int64_t start_timeout_ms = 300000;        // a dispatched job that never starts fails
  int64_t cancel_grace_ms = 10000;          // SIGTERM → SIGKILL grace passed to executors
  int max_active_tasks = 32;                // attempts in flight at once on this host, over all runs
  int fanout_batch = 500;                   // fan-out instances stored (and held in memory) per batch
  int64_t clock_offset_ms = 0;              // shifts the clock schedules are evaluated on (tests: ORK_CLOCK_OFFSET_MS)
  std::vector<std::string> worker_command;  // how executors start ork-worker
  std::vector<std::string> worker_server_command;  // a resident ork-worker local executors may fork from; empty: none
  static EngineConfig from_env();                  // defaults overridden by ORK_* environment variables
};

// A run or task status change, for progress output and (later) the API's event stream.
struct EngineEvent {
  std::string kind;  // "run" | "task"
  json data;  // run: {run_id, workflow_name, status, error}; task: {run_id, task_id, task_name, status, attempt, error}
};

class Engine {
 public:
  Engine(boost::asio::io_context& io, PluginRegistry& plugins, EngineConfig cfg);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Stores (creates or updates) a workflow definition; returns the stored record.
  json deploy(const WorkflowDefinition& wf, const std::string& version);
  // Creates a run of a deployed workflow with all its task rows (atomically) and starts driving it. Returns run id.
  std::string start_run(const std::string& workflow_name, const json& input, const std::string& triggered_by);
  // Takes over one unfinished run if its lease is free or expired; true when this engine now drives it.
  bool take(const std::string& run_id);
  // Takes over every unfinished run whose lease is free or expired (after a restart) and drives it to the end.
  void resume_all();
  // Cancels a run: running attempts are cancelled through their executor, pending tasks skipped.
  void cancel_run(const std::string& run_id);
  // Cancels one task of a run this host drives (every instance of it), or the whole run when task is empty; a run
  // driven by another host is marked cancelled and that host stops it at its next lease renewal.
  void cancel(const std::string& run_id, const std::string& task);
  // Re-runs a finished run: the tasks that did not succeed (reusing successful outputs), or `task` and everything
  // downstream of it. Attempts keep counting; each re-run task gets its `retries` again. Returns the run id.
  std::string retry(const std::string& run_id, const std::string& task);
  // Entry point for executor notify events; thread-safe (posts onto the io_context).
  void notify(const std::string& executor_name, const json& event);
  // Fires due schedules now, then keeps a deadline timer at the next fire (serve mode).
  void start_schedules();
  // Serve mode: runs other processes create or change (state plugins that push change events) are taken over.
  void follow_state_changes() { follow_state_ = true; }
  // One reconciliation pass and no waiting: fire due schedules, take over runs whose lease is free (re-reading the
  // status of their in-flight attempts), dispatch what is ready. Call stop() after it. Returns runs fired.
  int tick();
  // Drops every in-memory run (releasing leases) — shutdown.
  void stop();

  void on_event(std::function<void(const EngineEvent&)> fn) { listeners_.push_back(std::move(fn)); }
  size_t active_runs() const { return runs_.size(); }
  // True while some unfinished run is leased by another host and this one waits for the lease to expire.
  bool awaiting_takeover() const { return takeover_at_ != 0 || !reloading_.empty(); }

 private:
  struct TaskState;
  struct RunState;
  struct FanOut;

  // Loads a leased run (its workflow's definition from the store unless `wf` already holds it) and starts driving it.
  void adopt(json run, bool fresh, std::optional<WorkflowDefinition> wf = std::nullopt);
  void attach(RunState& rs, bool fresh);
  void wait_takeover(int64_t delay_ms);
  void advance(RunState& r);
  void dispatch(RunState& r, TaskState& t);
  void check_task(RunState& r, TaskState& t);
  void arm(RunState& r, TaskState& t, int64_t at_ms);
  void on_state_changed(const json& event);
  void reload_later(const std::string& run_id);
  void retake_later(const std::string& run_id);
  void finish_attempt(RunState& r, TaskState& t, const std::string& state, const json& ev);
  void on_executor_state(RunState& r, TaskState& t, const std::string& state, const json& ev);
  bool read_worker_status(RunState& r, TaskState& t);
  void complete_success(RunState& r, TaskState& t, const json& output);
  void fail_attempt(RunState& r, TaskState& t, const json& error, bool cancel_executor);
  bool update_task(RunState& r, TaskState& t, json set);
  void set_task_terminal(RunState& r, TaskState& t, const std::string& status, const json& error);
  void finish_run(RunState& r);
  void renew_lease(const std::string& run_id);
  int64_t clock_now() const;
  int fire_due_schedules();
  void arm_schedules();
  void wait_schedule_timer(int64_t delay_ms);
  void add_rows(RunState& r, const json& rows);
  void expand(RunState& r, const TaskDefinition& def);
  void add_batch(RunState& r, const TaskDefinition& def, FanOut& fo);
  void insert_rows(RunState& r, const TaskDefinition& def, json rows);
  void restore_fanouts(RunState& r);
  void track(RunState& r, TaskState& t, const std::string& old_status, const std::string& status);
  bool advance_once(RunState& r);
  void drop_run(const std::string& run_id);
  json upstream_outputs(const RunState& r, const TaskState& t) const;
  std::optional<json> check_output(RunState& r, const TaskState& t, json& output);
  json upstream_output(const RunState& r, const std::string& d) const;
  void emit_task(const RunState& r, const TaskState& t);
  void emit_run(const RunState& r);
  RunState* find_run(const std::string& run_id);

  boost::asio::io_context& io_;
  PluginRegistry& plugins_;
  EngineConfig cfg_;
  std::map<std::string, std::unique_ptr<RunState>> runs_;
  std::map<std::string, std::pair<std::string, std::string>> by_executor_id_;  // executor_id → (run_id, task_id)
  std::vector<std::function<void(const EngineEvent&)>> listeners_;
  std::shared_ptr<bool> alive_;
  int active_total_ = 0;           // attempts dispatched or running, over all runs
  bool dispatch_blocked_ = false;  // a ready task waited on max_active_tasks
  boost::asio::steady_timer takeover_timer_;
  boost::asio::steady_timer schedule_timer_;
  bool schedules_on_ = false;
  bool follow_state_ = false;
  std::set<std::string> reloading_;  // runs dropped after a state-store failure, to be adopted again
  int64_t takeover_at_ = 0;
  SecretSource secrets_;  // env `secret:` values (plugins.yaml `secrets:`)
};

}  // namespace ork
