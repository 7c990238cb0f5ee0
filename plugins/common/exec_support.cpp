#include "exec_support.hpp"

#include <algorithm>

namespace ork::common {

using nlohmann::json;

JobEnv job_env(const json& config, const char* plugin) {
  JobEnv out;
  if (!config.contains("env") || config["env"].is_null()) return out;
  if (!config["env"].is_object()) ork::throw_invalid(std::string(plugin) + ": \"env\" must be an object");
  for (const auto& [k, v] : config["env"].items()) {
    if (!v.is_string()) ork::throw_invalid(std::string(plugin) + ": env \"" + k + "\" must be a string");
    if (k == "ORK_TASK_SECRETS")
      out.secrets = v.get<std::string>();
    else
      out.vars.emplace_back(k, v.get<std::string>());
  }
  std::sort(out.vars.begin(), out.vars.end());
  return out;
}

std::string JobEnv::redact(std::string text) const {
  if (secrets.empty()) return text;
  std::vector<std::string> values{secrets};
  json bundle = json::parse(secrets, nullptr, false);
  if (bundle.is_object()) {
    if (bundle.contains("env") && bundle["env"].is_object())
      for (const auto& [k, v] : bundle["env"].items())
        if (v.is_string()) values.push_back(v.get<std::string>());
    if (bundle.contains("files") && bundle["files"].is_array())
      for (const auto& f : bundle["files"])
        if (f.is_object() && f.contains("value") && f["value"].is_string()) values.push_back(f["value"]);
  }
  std::vector<std::string> forms;
  for (const auto& v : values) {
    if (v.size() < 3) continue;  // too short to tell from ordinary text
    forms.push_back(v);
    std::string escaped = json(v).dump();
    forms.push_back(escaped.substr(1, escaped.size() - 2));
  }
  std::sort(forms.begin(), forms.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  for (const auto& f : forms)
    for (size_t p = text.find(f); p != std::string::npos; p = text.find(f, p + 3)) text.replace(p, f.size(), "***");
  return text;
}

void check_known_fields(const json& cfg, const char* plugin, const std::vector<std::string>& known) {
  if (!cfg.is_object()) ork::throw_invalid(std::string(plugin) + ": config must be an object");
  for (const auto& [k, v] : cfg.items())
    if (std::find(known.begin(), known.end(), k) == known.end())
      ork::throw_invalid(std::string(plugin) + ": unknown config field \"" + k + "\"");
}

std::vector<std::string> cfg_strings(const json& cfg, const char* plugin, const char* field) {
  std::vector<std::string> out;
  if (!cfg.contains(field) || cfg[field].is_null()) return out;
  auto bad = [&] { ork::throw_invalid(std::string(plugin) + ": config \"" + field + "\" must be a list of strings"); };
  if (!cfg[field].is_array()) bad();
  for (const auto& v : cfg[field]) {
    if (!v.is_string()) bad();
    out.push_back(v.get<std::string>());
  }
  return out;
}

void throw_http(const char* plugin, const std::string& what, int status, const std::string& detail) {
  std::string text = std::string(plugin) + ": " + what + ": HTTP " + std::to_string(status) +
                     (detail.empty() ? "" : ": " + detail.substr(0, 300));
  if (status == 404) ork::throw_not_found(text);
  if (status == 409) ork::throw_conflict(text);
  if (status == 400 || status == 401 || status == 403 || status == 422) ork::throw_invalid(text);
  if (status == 408 || status == 429 || status >= 500) ork::throw_unavailable(text);
  throw std::runtime_error(text);
}

HttpResponse send_json_request(const HttpClient& http, const std::string& method, const std::string& url,
                               std::string_view body, const std::string& token, const char* plugin,
                               const std::string& content_type) {
  Headers h{{"Accept", "application/json"}};
  if (!body.empty()) h.emplace_back("Content-Type", content_type);
  HttpRequest req{method, url, h, body, ""};
  try {
    return http.send(req, [&](HttpRequest& q) {
      if (!token.empty()) q.set_header("Authorization", "Bearer " + token);
    });
  } catch (const HttpError& e) {
    ork::throw_unavailable(std::string(plugin) + ": " + e.what());
  }
}

json exec_status(const std::string& state, const json& exit_code, const std::string& message) {
  return {{"state", state}, {"exit_code", exit_code}, {"message", message}};
}

bool exec_terminal(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

std::string dns_label(const std::string& s, size_t max_len) {
  std::string out;
  for (char c : s) {
    char l = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9');
    if (ok)
      out += l;
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  if (out.empty() || !(out[0] >= 'a' && out[0] <= 'z')) out = "t-" + out;
  if (out.size() > max_len) out.resize(max_len);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

StatusPoller::StatusPoller(ork::HostServices host, std::chrono::milliseconds interval, Fetch fetch, std::string plugin)
    : host_(host), interval_(interval), fetch_(std::move(fetch)), plugin_(std::move(plugin)) {
  thread_ = std::thread([this] { run(); });
}

StatusPoller::~StatusPoller() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void StatusPoller::watch(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    last_.emplace(id, "");
  }
  cv_.notify_all();
}

void StatusPoller::forget(const std::string& id) {
  std::lock_guard lock(mu_);
  last_.erase(id);
}

size_t StatusPoller::watched() const {
  std::lock_guard lock(mu_);
  return last_.size();
}

StatusPoller::Fetch StatusPoller::each(ork::HostServices host, std::string plugin,
                                       std::function<json(const std::string&)> one) {
  return [host, plugin, one](const std::vector<std::string>& ids) {
    std::map<std::string, json> out;
    for (const auto& id : ids) {
      try {
        out[id] = one(id);
      } catch (const std::exception& e) {
        host.log(ORK_LOG_WARN, plugin + ": status of " + id + ": " + e.what());
      }
    }
    return out;
  };
}

bool StatusPoller::watching(const std::string& id) const {
  std::lock_guard lock(mu_);
  return last_.count(id) > 0;
}

void StatusPoller::observe(const std::string& id, const json& st) {
  std::string state = st.value("state", "unknown");
  if (state != "running" && !exec_terminal(state)) return;
  {
    std::lock_guard lock(mu_);
    auto it = last_.find(id);
    if (it == last_.end() || it->second == state) return;
    if (exec_terminal(state))
      last_.erase(it);
    else
      it->second = state;
  }
  json ev{{"type", "executor.status"},
          {"executor_id", id},
          {"state", state},
          {"exit_code", st.value("exit_code", json(nullptr))}};
  if (!st.value("message", "").empty()) ev["message"] = st["message"];
  host_.notify(ev);
}

void StatusPoller::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !last_.empty(); });
    if (stop_) return;
    if (cv_.wait_for(lock, interval_, [&] { return stop_; })) return;
    std::vector<std::string> ids;
    for (const auto& [id, state] : last_) ids.push_back(id);
    lock.unlock();
    std::map<std::string, json> got;
    try {
      got = fetch_(ids);
    } catch (const std::exception& e) {
      host_.log(ORK_LOG_WARN, plugin_ + ": status: " + e.what());
    }
    for (const auto& [id, st] : got) observe(id, st);
    lock.lock();
  }
}

}  // namespace ork::common
