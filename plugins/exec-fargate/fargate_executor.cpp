// ork-exec-fargate: runs each attempt as an Amazon ECS task on Fargate: RunTask (launchType FARGATE, awsvpc
// network, container overrides for env/command, task-level cpu/memory from `resources:` rounded up to a valid
// Fargate size, clientToken for safe retries), DescribeTasks (100 per call) for status, StopTask to cancel.
// ECS has no push channel for task state here, so a StatusPoller turns polling into executor.status events.
#include <algorithm>
#include <memory>
#include <mutex>
#include <ork/plugin.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "aws_credentials.hpp"
#include "crypto.hpp"
#include "exec_support.hpp"
#include "http.hpp"
#include "object_support.hpp"
#include "sigv4.hpp"
#include "web_util.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace {

using namespace ork::common;
using ork::json;
constexpr const char* kName = "exec-fargate";
constexpr const char* kTargetPrefix = "AmazonEC2ContainerServiceV20141113.";

// The smallest valid Fargate task size holding `cpu_millis` and `memory_mb` (0 = no wish): {cpu units, MiB};
// {0, 0} when both are 0. Throws INVALID past the largest size.
std::pair<int64_t, int64_t> fargate_size(int64_t cpu_millis, int64_t memory_mb) {
  struct Size {
    int64_t cpu, mem_min, mem_max, step;
  };
  static const Size sizes[] = {{256, 512, 2048, 0},         {512, 1024, 4096, 1024},   {1024, 2048, 8192, 1024},
                               {2048, 4096, 16384, 1024},   {4096, 8192, 30720, 1024}, {8192, 16384, 61440, 4096},
                               {16384, 32768, 122880, 8192}};
  if (cpu_millis <= 0 && memory_mb <= 0) return {0, 0};
  int64_t units = (std::max<int64_t>(cpu_millis, 0) * 1024 + 999) / 1000;
  for (const auto& s : sizes) {
    if (s.cpu < units || s.mem_max < memory_mb) continue;
    int64_t mem = std::max(memory_mb, s.mem_min);
    if (s.step == 0) {  // 256 CPU units: 512, 1024 or 2048 MiB
      mem = mem <= 512 ? 512 : mem <= 1024 ? 1024 : 2048;
    } else {
      mem = s.mem_min + (mem - s.mem_min + s.step - 1) / s.step * s.step;
    }
    return {s.cpu, mem};
  }
  ork::throw_invalid(std::string(kName) + ": no Fargate task size has " + std::to_string(cpu_millis) +
                     " millicpu and " + std::to_string(memory_mb) + " MiB (largest: 16 vCPU, 120 GiB)");
}

class FargateExecutor : public ork::Executor {
 public:
  static constexpr const char* kInfo =
      R"({"description": "Task attempts as Amazon ECS tasks on Fargate", "capabilities": ["cancel", "resources"]})";

  FargateExecutor(const json& cfg, ork::HostServices host) : host_(host) {
    check_known_fields(
        cfg, kName, {"cluster",          "task_definition",  "container",         "subnets",       "security_groups",
                     "assign_public_ip", "platform_version", "command",           "started_by",    "region",
                     "endpoint",         "access_key_id",    "secret_access_key", "session_token", "profile",
                     "poll_interval_ms", "timeout_ms",       "max_attempts",      "secrets",       "propagate_tags"});
    cluster_ = cfg_string(cfg, kName, "cluster", "", true);
    task_definition_ = cfg_string(cfg, kName, "task_definition", "", true);
    container_ = cfg_string(cfg, kName, "container", "worker");
    subnets_ = cfg_strings(cfg, kName, "subnets");
    if (subnets_.empty()) ork::throw_invalid(std::string(kName) + ": config needs \"subnets\" (awsvpc networking)");
    security_groups_ = cfg_strings(cfg, kName, "security_groups");
    public_ip_ = cfg_bool(cfg, kName, "assign_public_ip", false);
    platform_version_ = cfg_string(cfg, kName, "platform_version");
    command_ = cfg_strings(cfg, kName, "command");
    started_by_ = cfg_string(cfg, kName, "started_by", "ork");
    propagate_tags_ = cfg_string(cfg, kName, "propagate_tags");
    secrets_mode_ = cfg_string(cfg, kName, "secrets", "env");
    if (secrets_mode_ != "env" && secrets_mode_ != "refuse")
      ork::throw_invalid(std::string(kName) + ": config \"secrets\" must be \"env\" or \"refuse\"");
    creds_ = std::make_unique<AwsCredentialsProvider>(aws_credentials_options(cfg, kName));
    region_ = aws_region(cfg, kName, *creds_);
    std::string endpoint = cfg_string(cfg, kName, "endpoint");
    try {
      endpoint_ = parse_url(endpoint.empty() ? "https://ecs." + region_ + ".amazonaws.com" : endpoint).origin() + "/";
    } catch (const std::exception& e) {
      ork::throw_invalid(std::string(kName) + ": endpoint: " + e.what());
    }
    HttpOptions ho;
    ho.timeout = std::chrono::milliseconds(cfg_int(cfg, kName, "timeout_ms", 30000, 100, 600000));
    max_attempts_ = static_cast<int>(cfg_int(cfg, kName, "max_attempts", 5, 1, 20));
    ho.retry.max_attempts = max_attempts_;
    http_ = std::make_unique<HttpClient>(ho);
    auto poll = std::chrono::milliseconds(cfg_int(cfg, kName, "poll_interval_ms", 5000, 10, 3600000));
    poller_ = std::make_unique<StatusPoller>(
        host_, poll, [this](const std::vector<std::string>& ids) { return describe(ids); }, kName);
    host_.log(ORK_LOG_DEBUG, std::string(kName) + ": cluster " + cluster_ + " in " + region_ + " at " + endpoint_);
  }

  json dispatch(const json& config) override {
    JobEnv env = job_env(config, kName);
    return env.redacting([&] { return start(config, env); });
  }

  // dispatch() itself; errors leave through JobEnv::redacting.
  json start(const json& config, JobEnv env) {
    std::string task = config.value("task_name", "");
    if (config.contains("image") && config["image"].is_string())
      ork::throw_unsupported(std::string(kName) + ": task " + task +
                             " is a plain-image container task; exec-fargate runs the worker task definition only");
    if (!env.secrets.empty() && secrets_mode_ == "refuse")
      ork::throw_unsupported(std::string(kName) + ": task " + task +
                             " has secrets and this executor is configured with secrets: refuse");
    if (!env.secrets.empty()) env.vars.emplace_back("ORK_TASK_SECRETS", env.secrets);
    json environment = json::array();
    for (const auto& [k, v] : env.vars) environment.push_back({{"name", k}, {"value", v}});
    json co{{"name", container_}, {"environment", environment}};
    if (!command_.empty()) co["command"] = command_;
    json overrides{{"containerOverrides", json::array({co})}};
    if (config.contains("resources") && config["resources"].is_object()) {
      auto [cpu, mem] = fargate_size(config["resources"].value("cpu_millis", int64_t(0)),
                                     config["resources"].value("memory_mb", int64_t(0)));
      if (cpu > 0) {
        overrides["cpu"] = std::to_string(cpu);
        overrides["memory"] = std::to_string(mem);
      }
    }
    json vpc{{"subnets", subnets_}, {"assignPublicIp", public_ip_ ? "ENABLED" : "DISABLED"}};
    if (!security_groups_.empty()) vpc["securityGroups"] = security_groups_;
    std::string tid = config.value("task_id", "");
    int64_t attempt = config.value("attempt", int64_t(1));
    json req{{"cluster", cluster_},
             {"taskDefinition", task_definition_},
             {"launchType", "FARGATE"},
             {"count", 1},
             {"networkConfiguration", {{"awsvpcConfiguration", vpc}}},
             {"overrides", overrides},
             {"startedBy", started_by_.substr(0, 36)},
             {"clientToken", sha256_hex(tid + "/" + std::to_string(attempt)).substr(0, 64)},
             {"tags", json::array({{{"key", "ork:run-id"}, {"value", config.value("run_id", "")}},
                                   {{"key", "ork:task"}, {"value", task}},
                                   {{"key", "ork:attempt"}, {"value", std::to_string(attempt)}}})}};
    if (!platform_version_.empty()) req["platformVersion"] = platform_version_;
    if (!propagate_tags_.empty()) req["propagateTags"] = propagate_tags_;
    json r = call("RunTask", req);
    if (r.contains("failures") && r["failures"].is_array() && !r["failures"].empty())
      ork::throw_unavailable(std::string(kName) + ": RunTask for " + task + " failed: " +
                             r["failures"][0].value("reason", "") + " " + r["failures"][0].value("detail", ""));
    if (!r.contains("tasks") || !r["tasks"].is_array() || r["tasks"].empty())
      throw std::runtime_error(std::string(kName) + ": RunTask for " + task + " started no task");
    std::string arn = r["tasks"][0].value("taskArn", "");
    if (arn.empty()) throw std::runtime_error(std::string(kName) + ": RunTask answered a task without taskArn");
    poller_->watch(arn);
    return {{"executor_id", arn}};
  }

  json status(const json& a) override {
    std::string arn = a.value("executor_id", "");
    if (arn.empty()) ork::throw_invalid(std::string(kName) + ": status needs executor_id");
    auto m = describe({arn});
    auto it = m.find(arn);
    if (it == m.end()) throw std::runtime_error(std::string(kName) + ": DescribeTasks said nothing about " + arn);
    poller_->observe(arn, it->second);
    return it->second;
  }

  json cancel(const json& a) override {
    std::string arn = a.value("executor_id", "");
    if (arn.empty()) ork::throw_invalid(std::string(kName) + ": cancel needs executor_id");
    // A stopped task keeps its result: cancelling it changes nothing.
    if (exec_terminal(describe({arn})[arn].value("state", ""))) return json::object();
    {
      std::lock_guard lock(mu_);
      if (cancelled_.size() > 100000) cancelled_.clear();
      cancelled_.insert(arn);
    }
    try {
      call("StopTask", {{"cluster", cluster_}, {"task", arn}, {"reason", "cancelled by ork"}});
    } catch (const ork::PluginError& e) {
      if (e.code() != ORK_ERR_NOT_FOUND && e.code() != ORK_ERR_INVALID) throw;  // gone or already stopped
    }
    return json::object();
  }

 private:
  // DescribeTasks in batches of 100; an ARN neither listed nor in failures (moto) or failed as MISSING is lost.
  std::map<std::string, json> describe(const std::vector<std::string>& arns) {
    std::map<std::string, json> out;
    for (size_t i = 0; i < arns.size(); i += 100) {
      std::vector<std::string> batch(arns.begin() + i, arns.begin() + std::min(arns.size(), i + 100));
      json r = call("DescribeTasks", {{"cluster", cluster_}, {"tasks", batch}});
      if (r.contains("tasks") && r["tasks"].is_array())
        for (const auto& t : r["tasks"]) out[t.value("taskArn", "")] = task_state(t);
      for (const auto& arn : batch)
        if (!out.count(arn)) out[arn] = exec_status("failed", nullptr, "ECS task not found (MISSING)");
    }
    return out;
  }

  // lastStatus PROVISIONING/PENDING/ACTIVATING: pending; RUNNING and the stopping states: running; STOPPED: the
  // worker container's exit code decides (none: the task never ran, stoppedReason says why). StopTask: cancelled.
  json task_state(const json& t) {
    std::string last = t.value("lastStatus", "");
    std::string arn = t.value("taskArn", "");
    if (last == "PROVISIONING" || last == "PENDING" || last == "ACTIVATING" || last.empty())
      return exec_status("pending");
    if (last != "STOPPED") return exec_status("running");
    std::string reason = t.value("stoppedReason", "");
    std::string stop_code = t.value("stopCode", "");
    bool cancelled;
    {
      std::lock_guard lock(mu_);
      cancelled = cancelled_.count(arn) > 0;
    }
    json code = nullptr;
    std::string container_reason;
    if (t.contains("containers") && t["containers"].is_array())
      for (const auto& c : t["containers"])
        if (c.value("name", "") == container_) {
          if (c.contains("exitCode") && c["exitCode"].is_number()) code = c["exitCode"];
          container_reason = c.value("reason", "");
        }
    std::string msg = stop_code.empty() ? reason : stop_code + ": " + reason;
    if (!container_reason.empty()) msg += (msg.empty() ? "" : "; ") + container_reason;
    if (cancelled || stop_code == "UserInitiated") return exec_status("cancelled", code, msg);
    if (code.is_number() && code.get<int64_t>() == 0) return exec_status("succeeded", 0, msg);
    return exec_status("failed", code, msg.empty() ? "task stopped" : msg);
  }

  // One ECS JSON 1.1 call; ThrottlingException (a 400) is retried with backoff like a 429.
  json call(const std::string& action, const json& body) {
    std::string payload = body.dump();
    HttpRequest req{"POST",
                    endpoint_,
                    {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", kTargetPrefix + action}},
                    payload,
                    ""};
    std::string hash = sha256_hex(payload);
    for (int attempt = 1;; ++attempt) {
      AwsCredentials c;
      try {
        c = creds_->get();
      } catch (const std::exception& e) {
        ork::throw_invalid(std::string(kName) + ": " + e.what());
      }
      HttpResponse r;
      try {
        r = http_->send(req,
                        [&](HttpRequest& q) { sigv4_sign_request(q, c, region_, "ecs", now_epoch_ms(), false, hash); });
      } catch (const HttpError& e) {
        ork::throw_unavailable(std::string(kName) + ": " + e.what());
      }
      json j = json::parse(r.body.empty() ? "{}" : r.body, nullptr, false);
      if (r.ok() && j.is_object()) return j;
      std::string type = j.is_object() ? j.value("__type", "") : "";
      type = type.substr(type.rfind('#') == std::string::npos ? 0 : type.rfind('#') + 1);
      std::string message = j.is_object() ? j.value("message", j.value("Message", "")) : r.body.substr(0, 200);
      bool throttled = type.find("Throttl") != std::string::npos || type == "TooManyRequestsException";
      if (throttled && attempt < max_attempts_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100 << std::min(attempt, 6)));
        continue;
      }
      int status = throttled ? 429 : r.status;
      if (type == "ClusterNotFoundException") status = 400;
      throw_http(kName, action + (type.empty() ? "" : " (" + type + ")"), status, message);
    }
  }

  ork::HostServices host_;
  std::string cluster_, task_definition_, container_, platform_version_, started_by_, propagate_tags_, secrets_mode_;
  std::vector<std::string> subnets_, security_groups_, command_;
  bool public_ip_ = false;
  std::string region_, endpoint_;
  int max_attempts_ = 5;
  std::unique_ptr<AwsCredentialsProvider> creds_;
  std::unique_ptr<HttpClient> http_;
  std::mutex mu_;
  std::set<std::string> cancelled_;
  std::unique_ptr<StatusPoller> poller_;  // last: stopped before the members its thread uses
};

}  // namespace

ORK_EXECUTOR_PLUGIN(FargateExecutor, "fargate", ORK_PLUGIN_VERSION)
