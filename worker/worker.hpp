// ork-worker's flow for one attempt: status "running" + heartbeat → runtime → log, output.json, final status.json.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "loader/plugin_loader.hpp"
#include "process.hpp"
#include "runtimes.hpp"

namespace ork::worker {

// Outputs up to this size (serialized) go inside the final status.json; larger ones to output.json.
inline constexpr size_t kInlineOutputMax = 64 * 1024;

// Process exit codes.
inline constexpr int kExitSuccess = 0, kExitFailed = 1, kExitUsage = 2, kExitCancelled = 143;

// The heartbeat period from ORK_HEARTBEAT_INTERVAL_MS's value (null or bad: 10 s).
std::chrono::milliseconds heartbeat_interval(const char* value);

// Calls `beat` every `every` on its own thread until destroyed (which stops it promptly and joins).
class Heartbeat {
 public:
  // Beats after `first`, then every `every`, until destroyed.
  Heartbeat(std::chrono::milliseconds first, std::chrono::milliseconds every, std::function<void()> beat);
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  std::condition_variable_any cv_;
  std::jthread thread_;  // last member: stopped and joined first
};

class Worker {
 public:
  // `spec` as read from spec.json; missing output/status/log keys are derived from `spec_key`'s folder. `secrets` is
  // ORK_TASK_SECRETS ({"env": {NAME: value}, "files": [{name, path, value}]}, or null): given to the task, masked in
  // everything the worker writes.
  // `ctx` and `log_fd`: a thread-mode attempt's environment and the descriptor its log is tee'd to (else stderr).
  Worker(const ObjectProxy& store, json spec, const std::string& spec_key, SignalWatch& signals,
         std::chrono::milliseconds heartbeat_every, json secrets = nullptr, const AttemptEnv* ctx = nullptr,
         int log_fd = 2);
  // Runs the attempt; returns the process exit code (0 success, 1 failed, 143 cancelled).
  int run();

 private:
  void put_status(const std::string& status, const json& error, const json* output = nullptr);
  void beat();
  void upload_log(bool force);

  TaskOutcome run_with_secrets();

  const ObjectProxy& store_;
  json spec_;
  json secrets_;
  Masker masker_;
  SignalWatch& signals_;
  const AttemptEnv* ctx_;
  std::chrono::milliseconds heartbeat_every_;
  std::string status_key_, output_key_, log_key_, started_at_;
  int attempt_ = 1;
  TaskLog log_;
  std::mutex store_mu_;  // status and log writes come from the main and the heartbeat thread
  size_t uploaded_ = static_cast<size_t>(-1);
};

}  // namespace ork::worker
