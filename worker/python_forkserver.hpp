// Client of the warm Python fork-server (sdk/python/ork/forkserver.py): finds or starts the resident server of an
// interpreter + SDK + preload list for this user, and runs one `ork.runner` request in a child it forks, with the
// task's stdout/stderr pipes passed over the unix socket. Timeout and cancel signal the child's process group.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "process.hpp"

namespace ork::worker {

struct ForkServerTask {
  std::string python;                      // interpreter
  std::string sdk;                         // directory holding the `ork` package
  std::map<std::string, std::string> env;  // the task's complete environment (settings are read from it too)
  std::string cwd;                         // the task's base_dir
  double timeout_seconds = 0;              // <= 0: none
  int timeout_grace_ms = 5000;             // SIGTERM -> SIGKILL on timeout
  int cancel_grace_ms = 3000;              // SIGTERM -> SIGKILL on cancellation
};

// False when ORK_PYTHON_FORKSERVER (in `env`) is 0/false/off/no.
bool forkserver_enabled(const std::map<std::string, std::string>& env);

// Runs the task in a child of the fork-server. nullopt, with `why` set, when the server could not be used and the
// task did not start: the caller then spawns the interpreter itself. Every other outcome is a ProcessResult, as
// run_process() gives it (stdout/stderr went to `log` as they arrived).
std::optional<ProcessResult> run_in_forkserver(const ForkServerTask& task, TaskLog& log, SignalWatch& signals,
                                               std::string& why);

}  // namespace ork::worker
