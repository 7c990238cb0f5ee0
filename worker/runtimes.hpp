// Task runtimes the worker runs: `shell` (a command or script; JSON on stdin, output file or last stdout line),
// `python` (the Python SDK's `python -m ork.runner` with a request/result file pair), `cpp` (a .cpp task compiled
// with the C++ SDK, cached, then run like a shell task) and `rust` (a #[task] file or crate built with cargo against
// the Rust SDK, cached, then run like a cpp task), and `dbt`, `dbt-test`, `dbt-seed`, `dbt-snapshot` (the task's dbt
// command with the dbt from ORK_DBT or PATH; target/run_results.json becomes the output).
#pragma once

#include <map>
#include <nlohmann/json.hpp>

#include "process.hpp"

namespace ork::worker {

using json = nlohmann::json;

// What one attempt produced: output on success, or error {type, message, details}.
struct TaskOutcome {
  bool ok = false;
  json output;
  json error;
  json metrics = json::array();  // python tasks: ctx.metrics.record(...) calls
};

TaskOutcome failure(const std::string& type, const std::string& message, json details = nullptr);

using EnvMap = std::map<std::string, std::string>;

// This process's environment as a map.
EnvMap process_env();

// What an attempt on a thread of the resident worker has instead of its own process environment and working
// directory: the worker environment a forked attempt would have, and the directory it would have changed to.
struct AttemptEnv {
  EnvMap env;
  std::string cwd;  // "": the process's
};

// Runs the runtime spec["executor"] names, with cwd = spec["base_dir"]; never throws for task failures. `ctx`: the
// thread-mode environment (null: this process's).
TaskOutcome run_runtime(const json& spec, TaskLog& log, SignalWatch& signals, const AttemptEnv* ctx = nullptr);

// True when run_runtime runs `spec` with the shell runtime (a command, an argv or a script).
bool is_shell_task(const json& spec);

}  // namespace ork::worker
