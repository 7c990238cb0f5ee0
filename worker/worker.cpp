#include "worker.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
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

// Every secret value in an ORK_TASK_SECRETS payload.
std::vector<std::string> secret_values(const json& secrets) {
  std::vector<std::string> out;
  if (!secrets.is_object()) return out;
  if (auto e = secrets.find("env"); e != secrets.end() && e->is_object())
    for (const auto& [k, v] : e->items())
      if (v.is_string()) out.push_back(v.get<std::string>());
  if (auto f = secrets.find("files"); f != secrets.end() && f->is_array())
    for (const auto& x : *f)
      if (x.is_object() && x.contains("value") && x["value"].is_string()) out.push_back(x["value"].get<std::string>());
  return out;
}

// `secrets:` file mounts: each value written (mode 0600) to its path for the attempt, removed afterwards. Relative
// paths land in a private directory, exported as ORK_SECRETS_DIR.
class SecretFiles {
 public:
  SecretFiles(const json& files, json& env) {
    if (!files.is_array() || files.empty()) return;
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/ork-secrets-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a directory for secret files");
    dir_ = tmpl;
    env["ORK_SECRETS_DIR"] = dir_.string();
    for (const auto& f : files) {
      std::filesystem::path p = f.value("path", std::string());
      if (p.empty()) throw std::runtime_error("secret file '" + f.value("name", std::string()) + "' has no path");
      if (p.is_relative()) p = dir_ / p;
      std::filesystem::create_directories(p.parent_path());
      const mode_t old = ::umask(077);
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      ::umask(old);
      out << f.value("value", std::string());
      if (!out.flush()) throw std::runtime_error("cannot write secret file " + p.string());
      written_.push_back(p);
    }
  }
  ~SecretFiles() {
    std::error_code ec;
    for (const auto& p : written_) std::filesystem::remove(p, ec);
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  SecretFiles(const SecretFiles&) = delete;
  SecretFiles& operator=(const SecretFiles&) = delete;

 private:
  std::filesystem::path dir_;
  std::vector<std::filesystem::path> written_;
};

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

std::chrono::milliseconds heartbeat_interval(const char* value) {
  long ms = value && *value ? std::strtol(value, nullptr, 10) : 10000;
  return std::chrono::milliseconds(ms >= 10 ? ms : 10000);
}

Worker::Worker(const ObjectProxy& store, json spec, const std::string& spec_key, SignalWatch& signals,
               std::chrono::milliseconds heartbeat_every, json secrets, const AttemptEnv* ctx, int log_fd)
    : store_(store),
      spec_(std::move(spec)),
      secrets_(std::move(secrets)),
      masker_(secret_values(secrets_)),
      signals_(signals),
      ctx_(ctx),
      heartbeat_every_(heartbeat_every) {
  log_.tee_to(log_fd);
  log_.mask(masker_);
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

void Worker::put_status(const std::string& status, const json& error, const json* output) {
  std::string now = now_str();
  bool done = status != "running";
  json s = {{"status", status},
            {"attempt", attempt_},
            {"heartbeat", now},
            {"started_at", started_at_},
            {"finished_at", done ? json(now) : json()},
            {"error", masker_.mask(error)}};
  if (output) s["output"] = *output;
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

// Secret env values join spec.env in memory only; secret files exist while the runtime runs.
TaskOutcome Worker::run_with_secrets() {
  json saved_env = spec_.value("env", json::object());
  try {
    json& env = spec_["env"];
    if (!env.is_object()) env = json::object();
    if (secrets_.is_object() && secrets_.contains("env") && secrets_["env"].is_object())
      for (const auto& [k, v] : secrets_["env"].items()) env[k] = v;
    SecretFiles files(secrets_.is_object() ? secrets_.value("files", json::array()) : json::array(), env);
    TaskOutcome out = run_runtime(spec_, log_, signals_, ctx_);
    spec_["env"] = std::move(saved_env);
    return out;
  } catch (const std::exception& e) {
    spec_["env"] = std::move(saved_env);
    return failure("secret_error", std::string("cannot provide the task's secrets: ") + e.what());
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
    out = run_with_secrets();
  }
  out.output = masker_.mask(out.output);
  out.error = masker_.mask(out.error);
  for (const auto& m : out.metrics) log_.note("metric " + dump(m));
  if (out.ok)
    log_.note("task succeeded");
  else
    log_.note("task failed: " + out.error.value("type", std::string()) + ": " +
              out.error.value("message", std::string()));
  log_.flush();

  try {
    upload_log(true);
  } catch (const std::exception& e) {
    std::cerr << "[ork-worker] cannot upload the log to " << log_key_ << ": " << e.what() << std::endl;
  }
  // A small output travels inside the final status (one object less per task); a large one in output_key first.
  bool inline_output = false;
  if (out.ok) {
    try {
      std::string text = dump(out.output);
      inline_output = text.size() <= kInlineOutputMax;
      if (!inline_output)
        with_retries([&] {
          std::lock_guard lock(store_mu_);
          store_.put(output_key_, text, {{"content_type", "application/json"}});
        });
    } catch (const std::exception& e) {
      out = failure("worker_error", std::string("cannot write the output: ") + e.what());
    }
  }
  try {
    with_retries([&] {
      put_status(out.ok ? "success" : "failed", out.ok ? json() : out.error,
                 out.ok && inline_output ? &out.output : nullptr);
    });
  } catch (const std::exception& e) {
    std::cerr << "ork-worker: cannot write the final status to " << status_key_ << ": " << e.what() << std::endl;
    return kExitFailed;
  }
  if (out.ok) return kExitSuccess;
  return out.error.value("type", std::string()) == "cancelled" ? kExitCancelled : kExitFailed;
}

}  // namespace ork::worker
