// `ork-worker --serve`: a resident worker for a local executor. It reads one JSON request per line on stdin
// ({"op":"run","id","env","cwd","log_path"} — with "env_from":"server", `env` and `env_unset` are the difference from
// this process's own starting environment — or {"op":"kill","id","signal"}) and writes {"id","pid"} then
// {"id","exit_code"|"signal"} lines on stdout. A shell task on a fork-safe object store runs on a thread of this
// process ({"id","pid","thread":true}, pid = this process, then {"id","task_pid"} once the task's process group
// exists); any other attempt in a fork of it (no exec, no dynamic loading per task). ORK_WORKER_THREADS=0 forks for
// every attempt. When stdin closes it lets running attempts finish, then exits.
#pragma once

#include "worker.hpp"

namespace ork::worker {

int serve();

// One attempt in this process: reads the spec (unless `read_spec` holds it), runs it; the exit code. The object store
// is `preloaded` (created before the fork, fork-safe plugins only) or else loaded as ORK_OBJECT_STORE names it.
int run_attempt(const std::string& spec_key, SignalWatch& signals, const ObjectProxy* preloaded, json* read_spec);

}  // namespace ork::worker
