// ork-exec-cloudrun: runs each attempt as one execution of a Cloud Run job (Admin API v2): jobs/{job}:run with
// per-execution overrides (env, args, taskCount, timeout), the returned Operation's metadata names the execution,
// executions/{id} gives its counts and Completed condition, executions/{id}:cancel stops it. Cloud Run has no push
// channel for execution state, so a StatusPoller turns polling (poll_interval_ms) into executor.status events.
#include <memory>
#include <ork/plugin.hpp>
#include <string>
#include <vector>

#include "exec_support.hpp"
#include "google_auth.hpp"
#include "http.hpp"
#include "object_support.hpp"
#include "web_util.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace {

using namespace ork::common;
using ork::json;
constexpr const char* kName = "exec-cloudrun";

class CloudRunExecutor : public ork::Executor {
 public:
  static constexpr const char* kInfo =
      R"({"description": "Task attempts as Cloud Run job executions", "capabilities": ["cancel", "task_count"]})";

  CloudRunExecutor(const json& cfg, ork::HostServices host) : host_(host) {
    check_known_fields(
        cfg, kName,
        {"project", "location", "job", "container", "endpoint", "credentials_file", "credentials_json", "anonymous",
         "args", "task_count", "timeout_margin_seconds", "poll_interval_ms", "timeout_ms", "max_attempts", "secrets"});
    GoogleAuthOptions go;
    go.credentials_file = cfg_string(cfg, kName, "credentials_file");
    go.credentials_json = cfg_string(cfg, kName, "credentials_json");
    std::string endpoint = cfg_string(cfg, kName, "endpoint");
    bool given = !go.credentials_file.empty() || !go.credentials_json.empty();
    if (cfg_bool(cfg, kName, "anonymous", !endpoint.empty() && !given)) {
      go.use_metadata_server = false;
      go.env = nullptr;
      go.credentials_file.clear();
      go.credentials_json.clear();
    }
    try {
      creds_ = std::make_unique<GoogleCredentials>(go);
    } catch (const std::exception& e) {
      ork::throw_invalid(std::string(kName) + ": " + e.what());
    }
    std::string project = cfg_string(cfg, kName, "project", creds_->project_id());
    if (project.empty()) ork::throw_invalid(std::string(kName) + ": config needs \"project\"");
    std::string location = cfg_string(cfg, kName, "location", "", true);
    std::string job = cfg_string(cfg, kName, "job", "", true);
    if (endpoint.empty()) endpoint = "https://run.googleapis.com";
    try {
      Url u = parse_url(endpoint);
      endpoint_ = u.origin() + (u.path == "/" ? "" : u.path);
      while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
    } catch (const std::exception& e) {
      ork::throw_invalid(std::string(kName) + ": endpoint: " + e.what());
    }
    job_name_ = "projects/" + project + "/locations/" + location + "/jobs/" + job;
    container_ = cfg_string(cfg, kName, "container");
    if (cfg.contains("args")) {
      args_ = cfg_strings(cfg, kName, "args");
      set_args_ = true;
    }
    task_count_ = cfg_int(cfg, kName, "task_count", 1, 1, 10000);
    margin_s_ = cfg_int(cfg, kName, "timeout_margin_seconds", 60, 0, 3600);
    secrets_mode_ = cfg_string(cfg, kName, "secrets", "env");
    if (secrets_mode_ != "env" && secrets_mode_ != "refuse")
      ork::throw_invalid(std::string(kName) + ": config \"secrets\" must be \"env\" or \"refuse\"");
    HttpOptions ho;
    ho.timeout = std::chrono::milliseconds(cfg_int(cfg, kName, "timeout_ms", 30000, 100, 600000));
    ho.retry.max_attempts = static_cast<int>(cfg_int(cfg, kName, "max_attempts", 5, 1, 20));
    http_ = std::make_unique<HttpClient>(ho);
    auto poll = std::chrono::milliseconds(cfg_int(cfg, kName, "poll_interval_ms", 5000, 10, 3600000));
    poller_ = std::make_unique<StatusPoller>(
        host_, poll, StatusPoller::each(host_, kName, [this](const std::string& id) { return fetch_status(id); }),
        kName);
    host_.log(ORK_LOG_DEBUG, std::string(kName) + ": job " + job_name_ + " at " + endpoint_ +
                                 " (credentials: " + creds_->source() + ")");
  }

  json dispatch(const json& config) override {
    JobEnv env = job_env(config, kName);
    return env.redacting([&] { return start(config, env); });
  }

  // dispatch() itself; errors leave through JobEnv::redacting.
  json start(const json& config, JobEnv env) {
    if (!env.secrets.empty() && secrets_mode_ == "refuse")
      ork::throw_unsupported(std::string(kName) + ": task " + config.value("task_name", "") +
                             " has secrets and this executor is configured with secrets: refuse");
    if (!env.secrets.empty()) env.vars.emplace_back("ORK_TASK_SECRETS", env.secrets);
    json overrides_env = json::array();
    for (const auto& [k, v] : env.vars) overrides_env.push_back({{"name", k}, {"value", v}});
    json co{{"env", overrides_env}};
    if (!container_.empty()) co["name"] = container_;
    if (set_args_) {
      co["args"] = args_;
      if (args_.empty()) co["clearArgs"] = true;
    }
    json overrides{{"containerOverrides", json::array({co})}, {"taskCount", task_count_}};
    int64_t timeout = config.value("timeout_seconds", int64_t(0));
    if (timeout > 0) overrides["timeout"] = std::to_string(timeout + margin_s_) + "s";
    std::string body = json{{"overrides", overrides}}.dump();
    HttpResponse r = call("POST", endpoint_ + "/v2/" + job_name_ + ":run", body);
    if (!r.ok()) throw_http(kName, "run " + job_name_, r.status, error_message(r));
    json op = json::parse(r.body, nullptr, false);
    std::string execution = execution_of(op);
    // An Operation whose metadata does not name the execution yet: ask the operation until it does (bounded).
    for (int i = 0; execution.empty() && op.is_object() && op.contains("name") && i < 20; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * (i + 1)));
      HttpResponse o = call("GET", endpoint_ + "/v2/" + op.value("name", ""));
      if (!o.ok()) throw_http(kName, "get operation", o.status, error_message(o));
      op = json::parse(o.body, nullptr, false);
      execution = execution_of(op);
    }
    if (execution.empty()) throw std::runtime_error(std::string(kName) + ": the run operation names no execution");
    poller_->watch(execution);
    return {{"executor_id", execution}};
  }

  json status(const json& a) override {
    std::string id = id_of(a);
    json st = fetch_status(id);
    poller_->observe(id, st);
    return st;
  }

  json cancel(const json& a) override {
    std::string id = id_of(a);
    HttpResponse r = call("POST", endpoint_ + "/v2/" + id + ":cancel", "{}");
    // 404: gone; 400 FAILED_PRECONDITION: already finished. Both mean nothing is left to stop.
    if (!r.ok() && r.status != 404 && r.status != 400) throw_http(kName, "cancel " + id, r.status, error_message(r));
    return json::object();
  }

 private:
  static std::string execution_of(const json& op) {
    if (!op.is_object()) return "";
    if (op.contains("metadata") && op["metadata"].is_object()) {
      std::string n = op["metadata"].value("name", "");
      if (n.find("/executions/") != std::string::npos) return n;
    }
    if (op.contains("response") && op["response"].is_object()) {
      std::string n = op["response"].value("name", "");
      if (n.find("/executions/") != std::string::npos) return n;
    }
    return "";
  }

  std::string id_of(const json& a) const {
    std::string id = a.value("executor_id", "");
    if (id.rfind(job_name_ + "/executions/", 0) != 0)
      ork::throw_invalid(std::string(kName) + ": \"" + id + "\" is not an execution of " + job_name_);
    return id;
  }

  // Execution → state: the Completed condition decides once it has; before that running/pending by counts.
  json fetch_status(const std::string& id) {
    HttpResponse r = call("GET", endpoint_ + "/v2/" + id);
    if (r.status == 404) return exec_status("failed", nullptr, "execution not found (deleted or never created)");
    if (!r.ok()) throw_http(kName, "get " + id, r.status, error_message(r));
    json ex = json::parse(r.body, nullptr, false);
    if (!ex.is_object()) throw std::runtime_error(std::string(kName) + ": get " + id + ": the answer is not JSON");
    auto count = [&](const char* f) { return ex.contains(f) && ex[f].is_number() ? ex[f].get<int64_t>() : 0; };
    json completed;
    if (ex.contains("conditions") && ex["conditions"].is_array())
      for (const auto& c : ex["conditions"])
        if (c.is_object() && c.value("type", "") == "Completed") completed = c;
    std::string cstate = completed.is_object() ? completed.value("state", "") : "";
    std::string reason = completed.is_object() ? completed.value("executionReason", "") : "";
    std::string message = completed.is_object() ? completed.value("message", "") : "";
    if (reason == "CANCELLED" || (cstate == "CONDITION_FAILED" && count("cancelledCount") > 0))
      return exec_status("cancelled", nullptr, message.empty() ? "execution cancelled" : message);
    if (cstate == "CONDITION_SUCCEEDED") return exec_status("succeeded", 0, message);
    if (cstate == "CONDITION_FAILED") {
      json code = reason == "NON_ZERO_EXIT_CODE" ? json(1) : json(nullptr);
      return exec_status("failed", code, message.empty() ? "execution failed" : message);
    }
    if (count("runningCount") > 0 || count("succeededCount") > 0 || count("failedCount") > 0 ||
        count("retriedCount") > 0 || reason == "CANCELLING")
      return exec_status("running");
    return exec_status("pending");
  }

  HttpResponse call(const std::string& method, const std::string& url, std::string_view body = {}) {
    std::string token;
    try {
      token = creds_->access_token();
    } catch (const std::exception& e) {
      ork::throw_unavailable(std::string(kName) + ": " + e.what());
    }
    return send_json_request(*http_, method, url, body, token, kName);
  }

  static std::string error_message(const HttpResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_object()) return j["error"].value("message", "");
    return r.body.substr(0, 200);
  }

  ork::HostServices host_;
  std::string endpoint_, job_name_, container_, secrets_mode_;
  std::vector<std::string> args_;
  bool set_args_ = false;
  int64_t task_count_ = 1, margin_s_ = 60;
  std::unique_ptr<GoogleCredentials> creds_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<StatusPoller> poller_;  // last: stopped before the members its thread uses
};

}  // namespace

ORK_EXECUTOR_PLUGIN(CloudRunExecutor, "cloudrun", ORK_PLUGIN_VERSION)
