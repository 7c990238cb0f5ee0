// `ork-worker --serve`: a resident worker for a local executor. It reads one JSON request per line on stdin
// ({"op":"run","id","env","cwd","log_path"} or {"op":"kill","id","signal"}), forks itself per attempt (no exec, no
// dynamic loading per task) and writes {"id","pid"} then {"id","exit_code"|"signal"} lines on stdout. When stdin
// closes it lets running attempts finish, then exits.
#pragma once

#include "worker.hpp"

namespace ork::worker {

int serve();

// One attempt in this process: reads the spec, runs it; the exit code. The object store is `preloaded` (created
// before the fork, fork-safe plugins only) or else loaded as ORK_OBJECT_STORE names it.
int run_attempt(const std::string& spec_key, SignalWatch& signals, const ObjectProxy* preloaded);

}  // namespace ork::worker
