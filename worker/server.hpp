// `ork-worker --serve`: a resident worker for a local executor. It reads one JSON request per line on stdin
// ({"op":"run","id","env","cwd","log_path"} or {"op":"kill","id","signal"}), forks itself per attempt (no exec, no
// dynamic loading per task) and writes {"id","pid"} then {"id","exit_code"|"signal"} lines on stdout. When stdin
// closes it lets running attempts finish, then exits.
#pragma once

#include "worker.hpp"

namespace ork::worker {

int serve();

// One attempt in this process: loads the object store named by ORK_OBJECT_STORE, reads the spec, runs it; the exit
// code.
int run_attempt(const std::string& spec_key, SignalWatch& signals);

}  // namespace ork::worker
