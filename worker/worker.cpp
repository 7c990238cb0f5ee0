#include "worker.hpp"

#include <algorithm>
#include <iostream>

#include "core/util.hpp"

namespace ork::worker {

namespace {

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string str(const json& spec, const char* key) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_string() ? it->get<std::string>() : "";
}

// Runs `f`, retrying twice after a short pause when the object store throws; rethrows the last failure.
template <class F>
void with_retries(F&& f) {
  for (int i = 0;; ++i) {
    try {
      f();
      return;
    } catch (const std::exception&) {
      if (i == 2) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(200 * (i + 1)));
    }
  }
}

}  // namespace

Heartbeat::Heartbeat(std::chrono::milliseconds first, std::chrono::milliseconds every, std::function<void()> beat)
    : thread_([this, first, every, beat = std::move(beat)](std::stop_token stop) {
        std::mutex mu;
        std::unique_lock lock(mu);
        for (auto wait = first;; wait = every) {
          cv_.wait_for(lock, stop, wait, [] { return false; });
          if (stop.stop_requested()) return;
          beat();
        }
      }) {}

Worker::Worker(const ObjectProxy& store, json spec, const std::string& spec_key, SignalWatch& signals,
               std::chrono::milliseconds heartbeat_every)
    : store_(store), spec_(std::move(spec)), signals_(signals), heartbeat_every_(heartbeat_every) {
  if (auto it = spec_.find("attempt"); it != spec_.end() && it->is_number_integer()) attempt_ = it->get<int>();
  auto slash = spec_key.rfind('/');
  std::string dir = slash == std::string::npos ? "" : spec_key.substr(0, slash + 1);
  status_key_ = str(spec_, "status_key");
  output_key_ = str(spec_, "output_key");
  log_key_ = str(spec_, "log_key");
  if (status_key_.empty()) status_key_ = dir + "status.json";
  if (output_key_.empty()) output_key_ = dir + "output.json";
  if (log_key_.empty()) log_key_ = dir + "attempt-" + std::to_string(attempt_) + ".log";
}

void Worker::put_status(const std::string& status, const json& error) {
  std::string now = now_str();
  bool done = status != "running";
  json s = {{"status", status},
            {"attempt", attempt_},
            {"heartbeat", now},
            {"started_at", started_at_},
            {"finished_at", done ? json(now) : json()},
            {"error", error}};
  std::lock_guard lock(store_mu_);
  store_.put(status_key_, dump(s), {{"content_type", "application/json"}});
}

void Worker::upload_log(bool force) {
  std::lock_guard lock(store_mu_);
  size_t total = log_.total();
  if (!force && total == uploaded_) return;
  store_.put(log_key_, log_.text(), {{"content_type", "text/plain; charset=utf-8"}});
  uploaded_ = total;
}

void Worker::beat() {
  try {
    put_status("running", nullptr);
    upload_log(false);
  } catch (const std::exception& e) {
    std::cerr << "[ork-worker] heartbeat failed: " << e.what() << std::endl;
  }
}

int Worker::run() {
  started_at_ = now_str();
  std::string executor = str(spec_, "executor");
  log_.note("task " + str(spec_, "task_name") + " (run " + str(spec_, "run_id") + ") attempt " +
            std::to_string(attempt_) + ", executor " + (executor.empty() ? "(inferred)" : executor));
  // The first "running" status goes out after a short delay, not at once: a task that ends sooner writes only its
  // final status (one object write less per short task; the executor has already reported it running).
  TaskOutcome out;
  {
    Heartbeat heartbeat(std::min(heartbeat_every_, std::chrono::milliseconds(500)), heartbeat_every_,
                        [this] { beat(); });
    out = run_runtime(spec_, log_, signals_);
  }
  for (const auto& m : out.metrics) log_.note("metric " + dump(m));
  if (out.ok)
    log_.note("task succeeded");
  else
    log_.note("task failed: " + out.error.value("type", std::string()) + ": " +
              out.error.value("message", std::string()));

  try {
    upload_log(true);
  } catch (const std::exception& e) {
    std::cerr << "[ork-worker] cannot upload the log to " << log_key_ << ": " << e.what() << std::endl;
  }
  if (out.ok) {
    try {
      with_retries([&] {
        std::lock_guard lock(store_mu_);
        store_.put(output_key_, dump(out.output), {{"content_type", "application/json"}});
      });
    } catch (const std::exception& e) {
      out = failure("worker_error", std::string("cannot write the output: ") + e.what());
    }
  }
  try {
    with_retries([&] { put_status(out.ok ? "success" : "failed", out.ok ? json() : out.error); });
  } catch (const std::exception& e) {
    std::cerr << "ork-worker: cannot write the final status to " << status_key_ << ": " << e.what() << std::endl;
    return kExitFailed;
  }
  if (out.ok) return kExitSuccess;
  return out.error.value("type", std::string()) == "cancelled" ? kExitCancelled : kExitFailed;
}

}  // namespace ork::worker
