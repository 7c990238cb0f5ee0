// ork-exec-k8s: runs each attempt as a Kubernetes batch/v1 Job (one pod, backoffLimit 0, activeDeadlineSeconds from
// the task timeout, ttlSecondsAfterFinished), labelled for ownership; secrets go into a Secret owned by the Job.
// Status: one LIST of this instance's Jobs per poll interval (StatusPoller), a GET for those not listed; a failed
// Job's pod tells the exit code. Cancel deletes the Job with propagationPolicy Background.
// Auth: in-cluster service account, a kubeconfig (token, tokenFile or client certificate; CA), or explicit config.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <ork/plugin.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "crypto.hpp"
#include "exec_support.hpp"
#include "http.hpp"
#include "object_support.hpp"
#include "web_util.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace {

using namespace ork::common;
using ork::json;
constexpr const char* kName = "exec-k8s";
constexpr const char* kSaDir = "/var/run/secrets/kubernetes.io/serviceaccount";

std::string slurp(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) ork::throw_invalid(std::string(kName) + ": cannot read " + what + " " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A label value: at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric.
std::string label_value(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  if (out.size() > 63) out.resize(63);
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.back()))) out.pop_back();
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.front()))) out.erase(0, 1);
  return out;
}

// Where and how to reach the API server.
struct Connection {
  std::string server, token, token_file, ca_pem, cert_pem, key_pem, namespace_, source;
  bool insecure = false;
};

// A file or inline base64 "-data" value of a kubeconfig entry, relative paths resolved against the kubeconfig.
std::string kube_pem(const YAML::Node& n, const std::string& key, const std::filesystem::path& base) {
  if (n[key + "-data"]) return base64_decode(n[key + "-data"].as<std::string>());
  if (n[key]) {
    std::filesystem::path p = n[key].as<std::string>();
    if (p.is_relative()) p = base / p;
    return slurp(p.string(), key.c_str());
  }
  return "";
}

YAML::Node named(const YAML::Node& list, const std::string& name, const char* what, const std::string& file) {
  if (list && list.IsSequence())
    for (const auto& e : list)
      if (e["name"] && e["name"].as<std::string>() == name) return e[what];
  ork::throw_invalid(std::string(kName) + ": " + file + ": no " + what + " named \"" + name + "\"");
}

Connection from_kubeconfig(const std::string& file, std::string context) {
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    ork::throw_invalid(std::string(kName) + ": kubeconfig " + file + ": " + e.what());
  }
  auto base = std::filesystem::path(file).parent_path();
  if (context.empty() && doc["current-context"]) context = doc["current-context"].as<std::string>();
  if (context.empty()) ork::throw_invalid(std::string(kName) + ": kubeconfig " + file + " has no current-context");
  YAML::Node ctx = named(doc["contexts"], context, "context", file);
  Connection c;
  c.source = "kubeconfig " + file + " context " + context;
  YAML::Node cluster = named(doc["clusters"], ctx["cluster"].as<std::string>(""), "cluster", file);
  c.server = cluster["server"].as<std::string>("");
  c.insecure = cluster["insecure-skip-tls-verify"].as<bool>(false);
  c.ca_pem = kube_pem(cluster, "certificate-authority", base);
  if (ctx["namespace"]) c.namespace_ = ctx["namespace"].as<std::string>();
  if (ctx["user"]) {
    YAML::Node user = named(doc["users"], ctx["user"].as<std::string>(), "user", file);
    if (user["exec"] || user["auth-provider"])
      ork::throw_invalid(std::string(kName) + ": kubeconfig user \"" + ctx["user"].as<std::string>() +
                         "\" uses an exec/auth-provider plugin; give a token, tokenFile or client certificate");
    c.token = user["token"].as<std::string>("");
    c.token_file = user["tokenFile"].as<std::string>("");
    c.cert_pem = kube_pem(user, "client-certificate", base);
    c.key_pem = kube_pem(user, "client-key", base);
  }
  return c;
}

class K8sExecutor : public ork::Executor {
 public:
  static constexpr const char* kInfo =
      R"({"description": "Task attempts as Kubernetes batch/v1 Jobs", "capabilities": ["cancel", "resources", "secrets"]})";

  K8sExecutor(const json& cfg, ork::HostServices host) : host_(host) {
    check_known_fields(cfg, kName,
                       {"image",
                        "command",
                        "args",
                        "namespace",
                        "auth",
                        "kubeconfig",
                        "context",
                        "server",
                        "token",
                        "token_file",
                        "ca_file",
                        "insecure_skip_tls_verify",
                        "service_account",
                        "image_pull_policy",
                        "ttl_seconds_after_finished",
                        "deadline_margin_seconds",
                        "labels",
                        "annotations",
                        "poll_interval_ms",
                        "timeout_ms",
                        "max_attempts",
                        "service_account_dir",
                        "watch"});
    image_ = cfg_string(cfg, kName, "image", "", true);
    command_ = cfg_strings(cfg, kName, "command");
    args_ = cfg_strings(cfg, kName, "args");
    service_account_ = cfg_string(cfg, kName, "service_account");
    pull_policy_ = cfg_string(cfg, kName, "image_pull_policy");
    ttl_ = cfg_int(cfg, kName, "ttl_seconds_after_finished", 3600, -1, 86400 * 30);
    margin_ = cfg_int(cfg, kName, "deadline_margin_seconds", 60, 0, 3600);
    extra_labels_ = string_map(cfg, "labels");
    annotations_ = string_map(cfg, "annotations");
    conn_ = connect(cfg);
    ns_ = cfg_string(cfg, kName, "namespace", conn_.namespace_.empty() ? "default" : conn_.namespace_);
    if (dns_label(ns_, 63) != ns_) ork::throw_invalid(std::string(kName) + ": \"" + ns_ + "\" is not a namespace name");
    try {
      Url u = parse_url(conn_.server);
      server_ = u.origin() + (u.path == "/" ? "" : u.path);
      while (!server_.empty() && server_.back() == '/') server_.pop_back();
    } catch (const std::exception& e) {
      ork::throw_invalid(std::string(kName) + ": server: " + e.what());
    }
    HttpOptions ho;
    ho.timeout = std::chrono::milliseconds(cfg_int(cfg, kName, "timeout_ms", 30000, 100, 600000));
    ho.retry.max_attempts = static_cast<int>(cfg_int(cfg, kName, "max_attempts", 5, 1, 20));
    ho.verify_tls = !conn_.insecure;
    ho.ca_pem = conn_.ca_pem;
    ho.client_cert_pem = conn_.cert_pem;
    ho.client_key_pem = conn_.key_pem;
    http_ = std::make_unique<HttpClient>(ho);
    watch_timeout_s_ = std::max<int64_t>(1, ho.timeout.count() / 1000 * 5 / 6);
    instance_ = random_hex(6);
    bool watch = cfg_bool(cfg, kName, "watch", true);
    // With the watch pushing changes, polling is only the safety net for a missed event.
    auto poll = std::chrono::milliseconds(cfg_int(cfg, kName, "poll_interval_ms", watch ? 30000 : 2000, 10, 3600000));
    poller_ = std::make_unique<StatusPoller>(
        host_, poll, [this](const std::vector<std::string>& ids) { return fetch_many(ids); }, kName);
    if (watch) watcher_ = std::thread([this] { watch_loop(); });
    host_.log(ORK_LOG_DEBUG, std::string(kName) + ": namespace " + ns_ + " at " + server_ + " (" + conn_.source + ")");
  }

  ~K8sExecutor() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    cancel_watch_.cancel();
    if (watcher_.joinable()) watcher_.join();
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
                             " is a plain-image container task; exec-k8s runs the worker image only");
    std::string tid = config.value("task_id", "");
    int64_t attempt = config.value("attempt", int64_t(1));
    std::string suffix = sha256_hex(tid + "/" + std::to_string(attempt)).substr(0, 10);
    std::string name = dns_label("ork-" + task, 63 - 11) + "-" + suffix;
    json labels{{"app.kubernetes.io/managed-by", "ork"},
                {"ork.dev/instance", instance_},
                {"ork.dev/run-id", label_value(config.value("run_id", ""))},
                {"ork.dev/task", label_value(task)},
                {"ork.dev/attempt", std::to_string(attempt)}};
    for (const auto& [k, v] : extra_labels_.items()) labels[k] = v;
    json envs = json::array();
    for (const auto& [k, v] : env.vars) envs.push_back({{"name", k}, {"value", v}});
    std::string secret_name;
    if (!env.secrets.empty()) {
      secret_name = name + "-secrets";
      json secret{{"apiVersion", "v1"},
                  {"kind", "Secret"},
                  {"metadata", {{"name", secret_name}, {"namespace", ns_}, {"labels", labels}}},
                  {"type", "Opaque"},
                  {"stringData", {{"ORK_TASK_SECRETS", env.secrets}}}};
      std::string body = secret.dump();
      HttpResponse r = call("POST", "/api/v1/namespaces/" + ns_ + "/secrets", body);
      if (!r.ok() && r.status != 409) throw_http(kName, "create secret for " + task, r.status, status_message(r));
      envs.push_back({{"name", "ORK_TASK_SECRETS"},
                      {"valueFrom", {{"secretKeyRef", {{"name", secret_name}, {"key", "ORK_TASK_SECRETS"}}}}}});
    }
    json container{{"name", "worker"}, {"image", image_}, {"env", envs}};
    if (!command_.empty()) container["command"] = command_;
    if (!args_.empty()) container["args"] = args_;
    if (!pull_policy_.empty()) container["imagePullPolicy"] = pull_policy_;
    json res = resources(config);
    if (!res.empty()) container["resources"] = res;
    json pod{{"restartPolicy", "Never"}, {"containers", json::array({container})}};
    if (!service_account_.empty()) pod["serviceAccountName"] = service_account_;
    json spec{{"backoffLimit", 0}, {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod}}}};
    int64_t timeout = config.value("timeout_seconds", int64_t(0));
    if (timeout > 0) spec["activeDeadlineSeconds"] = timeout + margin_;
    if (ttl_ >= 0) spec["ttlSecondsAfterFinished"] = ttl_;
    json annotations = annotations_;
    annotations["ork.dev/task-id"] = tid;
    json job{{"apiVersion", "batch/v1"},
             {"kind", "Job"},
             {"metadata", {{"name", name}, {"namespace", ns_}, {"labels", labels}, {"annotations", annotations}}},
             {"spec", spec}};
    std::string id = ns_ + "/" + name;
    {
      std::lock_guard lock(mu_);
      creating_.insert(id);
    }
    poller_->watch(id);  // before the create: the watch may report the Job at once
    struct Created {
      K8sExecutor* self;
      std::string id;
      ~Created() {
        std::lock_guard lock(self->mu_);
        self->creating_.erase(id);
      }
    } created_guard{this, id};
    std::string body = job.dump();
    HttpResponse r = call("POST", jobs_path(), body);
    json created = json::parse(r.body, nullptr, false);
    if (r.status == 409 && r.attempts > 1) {
      // A retried create whose first answer was lost: the Job is ours when it names this task attempt.
      HttpResponse g = call("GET", jobs_path() + "/" + name);
      created = json::parse(g.body, nullptr, false);
      bool ours = g.ok() && created.is_object() &&
                  created["metadata"].value("annotations", json::object()).value("ork.dev/task-id", "") == tid;
      if (!ours) {
        poller_->forget(id);
        throw_http(kName, "create job " + name, r.status, status_message(r));
      }
    } else if (!r.ok()) {
      poller_->forget(id);
      if (!secret_name.empty()) call("DELETE", "/api/v1/namespaces/" + ns_ + "/secrets/" + secret_name);
      throw_http(kName, "create job " + name, r.status, status_message(r));
    }
    if (!secret_name.empty() && created.is_object())
      own_secret(secret_name, name, created["metadata"].value("uid", ""));
    return {{"executor_id", id}};
  }

  json status(const json& a) override {
    auto [ns, name] = split_id(a);
    json st = one_status(ns, name);
    poller_->observe(ns + "/" + name, st);
    return st;
  }

  json cancel(const json& a) override {
    auto [ns, name] = split_id(a);
    // A finished Job keeps its result (its TTL removes it): cancelling it changes nothing.
    HttpResponse g = call("GET", "/apis/batch/v1/namespaces/" + ns + "/jobs/" + name);
    if (g.status == 404) return json::object();
    if (g.ok()) {
      json job = json::parse(g.body, nullptr, false);
      if (job.is_object() && exec_terminal(job_state(ns, name, job).value("state", ""))) return json::object();
    }
    {
      std::lock_guard lock(mu_);
      if (cancelled_.size() > 100000) cancelled_.clear();
      cancelled_.insert(ns + "/" + name);
    }
    std::string body =
        json{{"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"propagationPolicy", "Background"}}.dump();
    HttpResponse r = call("DELETE", "/apis/batch/v1/namespaces/" + ns + "/jobs/" + name, body);
    if (!r.ok() && r.status != 404) throw_http(kName, "delete job " + name, r.status, status_message(r));
    return json::object();
  }

 private:
  static json string_map(const json& cfg, const char* field) {
    json out = json::object();
    if (!cfg.contains(field)) return out;
    if (!cfg[field].is_object())
      ork::throw_invalid(std::string(kName) + ": config \"" + field + "\" must be an object of strings");
    for (const auto& [k, v] : cfg[field].items()) {
      if (!v.is_string())
        ork::throw_invalid(std::string(kName) + ": config \"" + field + "\": \"" + k + "\" must be a string");
      out[k] = v;
    }
    return out;
  }

  static Connection connect(const json& cfg) {
    std::string auth = cfg_string(cfg, kName, "auth", "auto");
    if (auth != "auto" && auth != "in_cluster" && auth != "kubeconfig" && auth != "config")
      ork::throw_invalid(std::string(kName) + ": config \"auth\" must be auto, in_cluster, kubeconfig or config");
    Connection c;
    std::string server = cfg_string(cfg, kName, "server");
    if (auth == "config" || (auth == "auto" && !server.empty())) {
      c.server = server;
      c.source = "config";
    } else {
      const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
      const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
      std::string kubeconfig = cfg_string(cfg, kName, "kubeconfig");
      if (kubeconfig.empty() && std::getenv("KUBECONFIG")) kubeconfig = std::getenv("KUBECONFIG");
      std::string sa_dir = cfg_string(cfg, kName, "service_account_dir", kSaDir);
      auto sa_token = sa_dir + "/token";
      bool in_cluster = auth == "in_cluster" ||
                        (auth == "auto" && kubeconfig.empty() && host && *host && std::filesystem::exists(sa_token));
      if (in_cluster) {
        if (!host || !*host)
          ork::throw_invalid(std::string(kName) + ": in-cluster auth needs KUBERNETES_SERVICE_HOST (not in a pod?)");
        std::string h = host;
        if (h.find(':') != std::string::npos) h = "[" + h + "]";
        c.server = "https://" + h + ":" + std::string(port && *port ? port : "443");
        c.token_file = sa_token;
        c.ca_pem = slurp(sa_dir + "/ca.crt", "service account CA");
        std::ifstream nsf(sa_dir + "/namespace");
        std::getline(nsf, c.namespace_);
        c.source = "in-cluster service account";
      } else {
        if (kubeconfig.empty()) {
          const char* home = std::getenv("HOME");
          kubeconfig = std::string(home ? home : "") + "/.kube/config";
        }
        c = from_kubeconfig(kubeconfig, cfg_string(cfg, kName, "context"));
      }
    }
    if (cfg.contains("token")) c.token = cfg_string(cfg, kName, "token");
    if (cfg.contains("token_file")) c.token_file = cfg_string(cfg, kName, "token_file");
    if (cfg.contains("ca_file")) c.ca_pem = slurp(cfg_string(cfg, kName, "ca_file"), "ca_file");
    c.insecure = cfg_bool(cfg, kName, "insecure_skip_tls_verify", c.insecure);
    if (c.server.empty()) ork::throw_invalid(std::string(kName) + ": no API server (" + c.source + ")");
    return c;
  }

  // resources: {cpu_millis, memory_mb} -> requests = limits ("500m", "512Mi"); 0 or absent: not set.
  static json resources(const json& config) {
    json out = json::object();
    if (!config.contains("resources") || !config["resources"].is_object()) return out;
    const json& r = config["resources"];
    json q = json::object();
    int64_t cpu = r.value("cpu_millis", int64_t(0)), mem = r.value("memory_mb", int64_t(0));
    if (cpu > 0) q["cpu"] = std::to_string(cpu) + "m";
    if (mem > 0) q["memory"] = std::to_string(mem) + "Mi";
    if (q.empty()) return out;
    out["requests"] = q;
    out["limits"] = q;
    return out;
  }

  // Makes the Job own its Secret, so deleting the Job (or its TTL) removes the Secret too. Best effort.
  void own_secret(const std::string& secret, const std::string& job, const std::string& uid) {
    if (uid.empty()) return;
    std::string body =
        json{{"metadata",
              {{"ownerReferences",
                json::array({{{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"name", job}, {"uid", uid}}})}}}}
            .dump();
    HttpResponse r =
        call("PATCH", "/api/v1/namespaces/" + ns_ + "/secrets/" + secret, body, "application/merge-patch+json");
    if (!r.ok())
      host_.log(ORK_LOG_WARN, std::string(kName) + ": could not make job " + job + " own its secret: HTTP " +
                                  std::to_string(r.status));
  }

  std::pair<std::string, std::string> split_id(const json& a) const {
    std::string id = a.value("executor_id", "");
    auto slash = id.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == id.size() ||
        id.find('/', slash + 1) != std::string::npos)
      ork::throw_invalid(std::string(kName) + ": \"" + id + "\" is not namespace/job");
    return {id.substr(0, slash), id.substr(slash + 1)};
  }

  std::string jobs_path() const { return "/apis/batch/v1/namespaces/" + ns_ + "/jobs"; }

  // Job -> state: Complete/Failed conditions once present; before, running while it has an active (ready) pod.
  json job_state(const std::string& ns, const std::string& name, const json& job) {
    const json& s = job.contains("status") && job["status"].is_object() ? job["status"] : json::object();
    if (s.contains("conditions") && s["conditions"].is_array())
      for (const auto& c : s["conditions"]) {
        if (!c.is_object() || c.value("status", "") != "True") continue;
        std::string type = c.value("type", "");
        if (type == "Complete") return exec_status("succeeded", 0, "");
        if (type == "Failed") {
          std::string reason = c.value("reason", "");
          std::string msg = reason + (c.value("message", "").empty() ? "" : ": " + c.value("message", ""));
          if (reason == "DeadlineExceeded") msg = "activeDeadlineSeconds exceeded (" + msg + ")";
          return exec_status(was_cancelled(ns + "/" + name) ? "cancelled" : "failed", pod_exit_code(ns, name), msg);
        }
      }
    int64_t active = s.value("active", int64_t(0));
    bool ready_known = s.contains("ready") && s["ready"].is_number();
    if (active > 0 && (!ready_known || s["ready"].get<int64_t>() > 0)) return exec_status("running");
    if (s.value("succeeded", int64_t(0)) > 0 || s.value("failed", int64_t(0)) > 0) return exec_status("running");
    return exec_status("pending");
  }

  bool was_cancelled(const std::string& id) {
    std::lock_guard lock(mu_);
    return cancelled_.count(id) > 0;
  }

  json not_found(const std::string& id) {
    if (was_cancelled(id)) return exec_status("cancelled", nullptr, "job deleted by cancel");
    return exec_status("failed", nullptr, "job not found (deleted or expired)");
  }

  json one_status(const std::string& ns, const std::string& name) {
    HttpResponse r = call("GET", "/apis/batch/v1/namespaces/" + ns + "/jobs/" + name);
    if (r.status == 404) return not_found(ns + "/" + name);
    if (!r.ok()) throw_http(kName, "get job " + name, r.status, status_message(r));
    json job = json::parse(r.body, nullptr, false);
    if (!job.is_object()) throw std::runtime_error(std::string(kName) + ": get job " + name + ": not JSON");
    return job_state(ns, name, job);
  }

  // Streams this instance's Job changes (?watch=1 from the last resourceVersion) into the poller: a change to a
  // watched attempt is pushed as it happens. Reconnects after the server's timeout, lists again after 410 Gone.
  void watch_loop() {
    std::string rv;
    std::string selector = "&labelSelector=" + uri_encode("ork.dev/instance=" + instance_);
    std::chrono::milliseconds backoff{200};
    for (;;) {
      {
        std::unique_lock lock(mu_);
        if (stopping_) return;
      }
      bool ok = false;
      try {
        if (rv.empty()) {
          HttpResponse l = call("GET", jobs_path() + "?" + selector.substr(1));
          json list = json::parse(l.body, nullptr, false);
          if (!l.ok() || !list.is_object()) throw std::runtime_error("list jobs: HTTP " + std::to_string(l.status));
          rv = list.value("metadata", json::object()).value("resourceVersion", "");
          for (const auto& job : list.value("items", json::array())) on_job_event("MODIFIED", job);
        }
        HttpRequest req{"GET",
                        server_ + jobs_path() + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=" +
                            std::to_string(watch_timeout_s_) + "&resourceVersion=" + uri_encode(rv) + selector,
                        {{"Accept", "application/json"}},
                        {},
                        ""};
        std::string token = bearer();
        if (!token.empty()) req.set_header("Authorization", "Bearer " + token);
        HttpResponse r = http_->stream_lines(
            req,
            [&](const std::string& line) {
              json ev = json::parse(line, nullptr, false);
              if (!ev.is_object() || !ev.contains("object") || !ev["object"].is_object()) return true;
              std::string type = ev.value("type", "");
              if (type == "ERROR") {  // 410 Gone: our resourceVersion is too old, list again
                if (ev["object"].value("code", 0) == 410) rv.clear();
                return false;
              }
              std::string v = ev["object"].value("metadata", json::object()).value("resourceVersion", "");
              if (!v.empty()) rv = v;
              if (type != "BOOKMARK") on_job_event(type, ev["object"]);
              std::lock_guard lock(mu_);
              return !stopping_;
            },
            cancel_watch_);
        if (r.status == 410) rv.clear();
        ok = r.ok();
      } catch (const std::exception& e) {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        host_.log(ORK_LOG_DEBUG, std::string(kName) + ": watch: " + e.what());
      }
      std::unique_lock lock(mu_);
      if (ok) {
        backoff = std::chrono::milliseconds(200);
        continue;
      }
      if (stop_cv_.wait_for(lock, backoff, [&] { return stopping_; })) return;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10000));
    }
  }

  void on_job_event(const std::string& type, const json& job) {
    std::string name = job.value("metadata", json::object()).value("name", "");
    if (name.empty()) return;
    std::string id = ns_ + "/" + name;
    if (!poller_->watching(id)) return;
    poller_->observe(id, type == "DELETED" ? not_found(id) : job_state(ns_, name, job));
  }

  // One LIST of this instance's Jobs; ids it does not show are asked one by one (a GET tells deleted from lagging).
  std::map<std::string, json> fetch_many(const std::vector<std::string>& ids) {
    std::map<std::string, json> out;
    HttpResponse r = call("GET", jobs_path() + "?labelSelector=" + uri_encode("ork.dev/instance=" + instance_));
    if (!r.ok()) throw_http(kName, "list jobs", r.status, status_message(r));
    json list = json::parse(r.body, nullptr, false);
    std::set<std::string> wanted(ids.begin(), ids.end());
    if (list.is_object() && list.contains("items") && list["items"].is_array())
      for (const auto& job : list["items"]) {
        std::string name = job["metadata"].value("name", "");
        std::string id = ns_ + "/" + name;
        if (wanted.count(id)) out[id] = job_state(ns_, name, job);
      }
    for (const auto& id : ids) {
      if (out.count(id)) continue;
      {
        std::lock_guard lock(mu_);
        if (creating_.count(id)) continue;  // its create is still on the way: not lost
      }
      try {
        auto slash = id.find('/');
        out[id] = one_status(id.substr(0, slash), id.substr(slash + 1));
      } catch (const std::exception& e) {
        host_.log(ORK_LOG_WARN, std::string(kName) + ": status of " + id + ": " + e.what());
      }
    }
    return out;
  }

  // The exit code of the Job's pod's worker container, when a pod shows one.
  json pod_exit_code(const std::string& ns, const std::string& name) {
    HttpResponse r = call("GET", "/api/v1/namespaces/" + ns + "/pods?labelSelector=" + uri_encode("job-name=" + name));
    if (!r.ok()) return nullptr;
    json pods = json::parse(r.body, nullptr, false);
    if (!pods.is_object() || !pods.contains("items") || !pods["items"].is_array()) return nullptr;
    for (const auto& p : pods["items"]) {
      const json& cs = p.value("status", json::object()).value("containerStatuses", json::array());
      for (const auto& c : cs)
        if (c.contains("state") && c["state"].contains("terminated"))
          return c["state"]["terminated"].value("exitCode", json(nullptr));
    }
    return nullptr;
  }

  std::string bearer() {
    if (conn_.token_file.empty()) return conn_.token;
    std::lock_guard lock(mu_);
    int64_t now = now_epoch_ms();
    if (token_.empty() || now - token_read_ms_ > 60000) {  // projected tokens rotate: re-read every minute
      token_ = trim(slurp(conn_.token_file, "token file"));
      token_read_ms_ = now;
    }
    return token_;
  }

  HttpResponse call(const std::string& method, const std::string& path, std::string_view body = {},
                    const std::string& content_type = "application/json") {
    return send_json_request(*http_, method, server_ + path, body, bearer(), kName, content_type);
  }

  // The message of a Kubernetes Status object, else the body's start.
  static std::string status_message(const HttpResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"];
    return r.body.substr(0, 200);
  }

  ork::HostServices host_;
  Connection conn_;
  std::string image_, service_account_, pull_policy_, ns_, server_, instance_;
  std::vector<std::string> command_, args_;
  json extra_labels_ = json::object(), annotations_ = json::object();
  int64_t ttl_ = 3600, margin_ = 60;
  std::unique_ptr<HttpClient> http_;
  std::mutex mu_;
  std::set<std::string> cancelled_;
  std::set<std::string> creating_;  // watched before their create returned
  std::string token_;
  int64_t token_read_ms_ = 0;
  std::unique_ptr<StatusPoller> poller_;  // stopped before the members its thread uses
  bool stopping_ = false;
  std::condition_variable stop_cv_;
  StreamCanceller cancel_watch_;
  int64_t watch_timeout_s_ = 25;  // below the per-request timeout: the server ends an idle watch first
  std::thread watcher_;           // joined by the destructor before anything else goes
};

}  // namespace

ORK_EXECUTOR_PLUGIN(K8sExecutor, "k8s", ORK_PLUGIN_VERSION)
