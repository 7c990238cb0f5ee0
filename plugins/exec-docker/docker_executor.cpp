// ork-exec-docker: Executor plugin running each attempt's ork-worker in a container through the Docker Engine API
// (v1.41) over a unix socket; completion is pushed from the /events stream (poll_interval_ms 0).
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <ork/plugin.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using ork::json;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = net::local::stream_protocol;
using namespace std::chrono_literals;

constexpr const char* kApi = "/v1.41";
constexpr size_t kFinishedKept = 10000;  // finished attempts whose status() is still answered from memory

std::string percent_encode(const std::string& s) {
  std::string out;
  char hex[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

struct Response {
  unsigned status = 0;
  std::string body;
  json json_body() const {
    json j = json::parse(body, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  // Docker's error body is {"message": "..."}.
  std::string message() const {
    json j = json_body();
    return j.is_object() && j.contains("message") && j["message"].is_string() ? j["message"].get<std::string>()
                                                                              : body.substr(0, 300);
  }
};

// One HTTP/1.1 request per connection to the Docker API's unix socket, bounded by a deadline.
class DockerApi {
 public:
  DockerApi(std::string socket, std::chrono::milliseconds timeout) : socket_(std::move(socket)), timeout_(timeout) {}
  const std::string& socket() const { return socket_; }

  Response call(http::verb verb, const std::string& target, const json& body = nullptr) const {
    http::request<http::string_body> req{verb, std::string(kApi) + target, 11};
    req.set(http::field::host, "docker");
    if (!body.is_null()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body.dump();
    }
    req.prepare_payload();
    net::io_context ioc;
    local::socket s(ioc);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    beast::error_code result;
    bool done = false;
    auto finish = [&](beast::error_code ec) {
      result = ec;
      done = true;
    };
    s.async_connect(local::endpoint(socket_), [&](beast::error_code ec) {
      if (ec) return finish(ec);
      http::async_write(s, req, [&](beast::error_code ec2, size_t) {
        if (ec2) return finish(ec2);
        http::async_read(s, buf, res, [&](beast::error_code ec3, size_t) { finish(ec3); });
      });
    });
    ioc.run_for(timeout_);
    if (!done) {
      beast::error_code ignored;
      s.close(ignored);
      ioc.run();
      ork::throw_unavailable("exec-docker: " + std::string(http::to_string(verb)) + " " + target +
                             ": no answer from the Docker API at " + socket_ + " within " +
                             std::to_string(timeout_.count()) + " ms");
    }
    if (result)
      ork::throw_unavailable("exec-docker: " + std::string(http::to_string(verb)) + " " + target + ": " +
                             result.message() + " (Docker API at " + socket_ + ")");
    return {res.result_int(), std::move(res.body())};
  }

 private:
  std::string socket_;
  std::chrono::milliseconds timeout_;
};

std::string socket_from_host(const std::string& host) {
  const std::string prefix = "unix://";
  if (host.rfind(prefix, 0) != 0)
    ork::throw_invalid("exec-docker: docker_host must be unix:///path/to/docker.sock, got '" + host + "'");
  return host.substr(prefix.size());
}

struct Attempt {
  std::string state = "pending";  // pending|running|succeeded|failed|cancelled
  json exit_code = nullptr;
  std::string message;
  bool created = false;  // the container exists (create answered)
  bool running_sent = false;
  bool cancel_requested = false;
  bool oom = false;
};

bool final_state(const std::string& s) {
  return s == "succeeded" || s == "failed" || s == "cancelled";
}

class DockerExecutor : public ork::Executor {
 public:
  DockerExecutor(const json& cfg, ork::HostServices host) : host_(host) {
    if (!cfg.is_null() && !cfg.is_object()) ork::throw_invalid("exec-docker: config must be an object");
    json c = cfg.is_object() ? cfg : json::object();
    auto str = [&](const char* k, const std::string& def) {
      if (!c.contains(k) || c[k].is_null()) return def;
      if (!c[k].is_string()) ork::throw_invalid(std::string("exec-docker: config \"") + k + "\" must be a string");
      return c[k].get<std::string>();
    };
    auto num = [&](const char* k, int64_t def) {
      if (!c.contains(k) || c[k].is_null()) return def;
      if (!c[k].is_number_integer() || c[k].get<int64_t>() < 0)
        ork::throw_invalid(std::string("exec-docker: config \"") + k + "\" must be a non-negative integer");
      return c[k].get<int64_t>();
    };
    const char* env_host = std::getenv("DOCKER_HOST");
    std::string docker_host = str("docker_host", env_host && *env_host ? env_host : "unix:///var/run/docker.sock");
    api_ = std::make_unique<DockerApi>(socket_from_host(docker_host),
                                       std::chrono::milliseconds(num("api_timeout_ms", 30000)));
    image_ = str("image", "");
    worker_command_ = c.value("worker_command", json::array({"/usr/local/bin/ork-worker"}));
    if (!worker_command_.is_array() || worker_command_.empty())
      ork::throw_invalid("exec-docker: config \"worker_command\" must be a non-empty list of strings");
    for (const auto& a : worker_command_)
      if (!a.is_string()) ork::throw_invalid("exec-docker: config \"worker_command\" must be a list of strings");
    network_mode_ = str("network_mode", "");
    worker_bundle_ = str("worker_bundle", "");
    user_ = str("user", "");
    keep_finished_ = static_cast<size_t>(num("keep_finished", 10));
    default_grace_ms_ = num("grace_ms", 10000);
    mount_object_store_ = c.value("mount_object_store", true);
    if (c.contains("mounts")) {
      if (!c["mounts"].is_array()) ork::throw_invalid("exec-docker: config \"mounts\" must be a list of strings");
      for (const auto& m : c["mounts"]) {
        if (!m.is_string() || m.get<std::string>().find(':') == std::string::npos)
          ork::throw_invalid("exec-docker: a mount is \"/host/path:/container/path[:ro]\"");
        mounts_.push_back(m.get<std::string>());
      }
    }
    if (c.contains("env")) {
      if (!c["env"].is_object()) ork::throw_invalid("exec-docker: config \"env\" must be a map");
      extra_env_ = c["env"];
    }
    std::random_device rd;
    char nonce[24];
    std::snprintf(nonce, sizeof nonce, "%08x%08x", rd(), rd());
    nonce_ = nonce;
    owner_ = str("owner", "ork-" + nonce_);
    size_t threads = static_cast<size_t>(std::max<int64_t>(num("dispatch_threads", 4), 1));
    events_thread_ = std::thread([this] { events_loop(); });
    control_thread_ = std::thread([this] { control_loop(); });
    for (size_t i = 0; i < threads; ++i) dispatch_threads_.emplace_back([this] { dispatch_loop(); });
  }

  ~DockerExecutor() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      if (events_fd_ >= 0) ::shutdown(events_fd_, SHUT_RDWR);
    }
    cv_.notify_all();
    if (events_thread_.joinable()) events_thread_.join();
    if (control_thread_.joinable()) control_thread_.join();
    for (auto& t : dispatch_threads_) t.join();
  }

  json dispatch(const json& cfg) override {
    if (!cfg.is_object()) ork::throw_invalid("exec-docker: dispatch expects an ExecutionConfig object");
    std::string task = cfg.value("task_name", "?");
    const bool image_task =
        cfg.contains("image") && cfg["image"].is_string() && !cfg["image"].get<std::string>().empty();
    if (!image_task && image_.empty())
      ork::throw_invalid("exec-docker: task '" + task + "': the config has no \"image\" (the ork-worker image)");
    if (image_task && worker_bundle_.empty())
      ork::throw_unsupported("exec-docker: task '" + task + "' runs the image '" + cfg["image"].get<std::string>() +
                             "': container tasks need \"worker_bundle\" in the exec-docker config (a host "
                             "directory with bin/ork-worker and lib/, mounted into the task's image)");
    json labels{{"ork.owner", owner_}};
    for (const char* k : {"task_id", "run_id", "task_name", "workflow_name"})
      if (cfg.contains(k) && cfg[k].is_string()) labels[std::string("ork.") + k] = cfg[k];
    if (cfg.contains("attempt")) labels["ork.attempt"] = cfg["attempt"].dump();

    json env = json::array();
    auto add_env = [&](const json& m) {
      for (auto it = m.begin(); it != m.end(); ++it)
        env.push_back(it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump()));
    };
    add_env(extra_env_);
    json task_env = cfg.value("env", json::object());
    if (!task_env.is_object()) ork::throw_invalid("exec-docker: dispatch \"env\" must be a map");
    json store_ref;
    if (task_env.contains("ORK_OBJECT_STORE") && task_env["ORK_OBJECT_STORE"].is_string()) {
      store_ref = json::parse(task_env["ORK_OBJECT_STORE"].get<std::string>(), nullptr, false);
      // The host names the store plugin by its path on the host: inside the image it is found by name.
      if (store_ref.is_object() && store_ref.contains("library") && store_ref["library"].is_string()) {
        std::string lib = store_ref["library"];
        if (lib.find('/') != std::string::npos) {
          lib = lib.substr(lib.rfind('/') + 1);
          if (lib.rfind("lib", 0) == 0) lib = lib.substr(3);
          if (lib.size() > 3 && lib.compare(lib.size() - 3, 3, ".so") == 0) lib.resize(lib.size() - 3);
          store_ref["library"] = lib;
          task_env["ORK_OBJECT_STORE"] = store_ref.dump();
        }
      }
    }
    add_env(task_env);

    json binds = json::array();
    for (const auto& m : mounts_) binds.push_back(m);
    if (mount_object_store_) {
      // A local object store is a host directory: the worker sees it at the same path.
      const json& ref = store_ref;
      if (ref.is_object() && ref.value("library", "").find("object-local") != std::string::npos &&
          ref.contains("config") && ref["config"].is_object() && ref["config"].contains("root") &&
          ref["config"]["root"].is_string()) {
        std::string root = ref["config"]["root"];
        binds.push_back(root + ":" + root);
      }
    }
    json host_config{{"Binds", binds}};
    if (cfg.contains("resources") && cfg["resources"].is_object()) {
      const json& r = cfg["resources"];
      if (r.contains("cpu_millis") && r["cpu_millis"].is_number() && r["cpu_millis"].get<double>() > 0)
        host_config["NanoCpus"] = static_cast<int64_t>(r["cpu_millis"].get<double>() * 1e6);
      if (r.contains("memory_mb") && r["memory_mb"].is_number() && r["memory_mb"].get<double>() > 0)
        host_config["Memory"] = static_cast<int64_t>(r["memory_mb"].get<double>() * 1024 * 1024);
    }
    if (!network_mode_.empty()) host_config["NetworkMode"] = network_mode_;
    json body{
        {"Image", image_}, {"Cmd", worker_command_}, {"Env", env}, {"Labels", labels}, {"HostConfig", host_config}};
    if (!user_.empty()) body["User"] = user_;
    if (image_task) {
      // The task's own image runs ork-worker from the mounted bundle (its own loader and libraries), which writes
      // the input file, runs the command (or the image's entrypoint + cmd) and reads the output file.
      std::string image = cfg["image"];
      for (char ch : image)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && std::string_view("./:-_@").find(ch) == std::string::npos)
          ork::throw_invalid("exec-docker: task '" + task + "': malformed image name '" + image + "'");
      Response img = api_->call(http::verb::get, "/images/" + image + "/json");
      if (img.status == 404)
        ork::throw_invalid("exec-docker: task '" + task + "': image '" + image + "' not found: " + img.message());
      if (img.status != 200)
        ork::throw_unavailable("exec-docker: task '" + task + "': inspecting image '" + image + "' (HTTP " +
                               std::to_string(img.status) + "): " + img.message());
      json ic = img.json_body().value("Config", json::object());
      json def = json::array();
      for (const char* k : {"Entrypoint", "Cmd"})
        if (ic.contains(k) && ic[k].is_array())
          for (const auto& a : ic[k]) def.push_back(a);
      body["Image"] = image;
      body["Entrypoint"] =
          json::array({"/ork/lib/ld-linux-x86-64.so.2", "--library-path", "/ork/lib", "/ork/bin/ork-worker"});
      body["Cmd"] = json::array();
      body["Env"].push_back("ORK_CONTAINER_TASK=1");
      body["Env"].push_back("ORK_CONTAINER_DEFAULT_COMMAND=" + def.dump());
      body["Env"].push_back("ORK_PLUGIN_PATH=/ork/lib");
      body["HostConfig"]["Binds"].push_back(worker_bundle_ + ":/ork:ro");
      body["Labels"]["ork.image_task"] = "true";
    }

    // The executor id is the container's name, chosen here: dispatch returns at once and create + start run on
    // the dispatch threads (several at a time); a failure there is the attempt's final `failed` event.
    std::string name = "ork-" + nonce_ + "-" + std::to_string(++counter_);
    {
      std::lock_guard lock(mu_);
      attempts_[name] = Attempt{};
      starts_.push_back({name, task, std::move(body)});
    }
    cv_.notify_all();
    return {{"executor_id", name}};
  }

  struct StartJob {
    std::string name, task;
    json body;
  };

  // Creates and starts one container (a dispatch thread).
  void start_container(const StartJob& job) {
    const std::string& name = job.name;
    auto cancelled = [&] {
      std::lock_guard lock(mu_);
      auto it = attempts_.find(name);
      return it == attempts_.end() || it->second.cancel_requested;
    };
    if (cancelled()) return advance(name, "cancelled", nullptr, "cancelled before the container was created", false);
    wait_for_events_stream();
    std::string error;
    try {
      Response created = api_->call(http::verb::post, "/containers/create?name=" + name, job.body);
      if (created.status == 201 || created.status == 200) {
        {
          std::lock_guard lock(mu_);
          if (auto it = attempts_.find(name); it != attempts_.end()) it->second.created = true;
        }
        if (cancelled()) {
          api_->call(http::verb::delete_, "/containers/" + name + "?force=true");
          return advance(name, "cancelled", nullptr, "cancelled before the container started", false);
        }
        Response started = api_->call(http::verb::post, "/containers/" + name + "/start");
        if (started.status == 204 || started.status == 304) {
          advance(name, "running", nullptr, "");
          if (cancelled()) stop_later(name, default_grace_ms_);  // cancel() came between the checks and the start
          return;
        }
        error = "start failed (HTTP " + std::to_string(started.status) + "): " + started.message();
        api_->call(http::verb::delete_, "/containers/" + name + "?force=true");
      } else {
        error = (created.status == 404 ? "image '" + job.body.value("Image", "") + "' not found: "
                                       : "create failed (HTTP " + std::to_string(created.status) + "): ") +
                created.message();
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    advance(name, "failed", nullptr, "exec-docker: task '" + job.task + "': " + error, false);
  }

  json status(const json& a) override {
    std::string id = executor_id(a);
    {
      std::lock_guard lock(mu_);
      auto it = attempts_.find(id);
      if (it != attempts_.end() && final_state(it->second.state)) return status_json(it->second);
    }
    return inspect_and_advance(id);
  }

  json cancel(const json& a) override {
    std::string id = executor_id(a);
    int64_t grace =
        a.contains("grace_ms") && a["grace_ms"].is_number_integer() ? a["grace_ms"].get<int64_t>() : default_grace_ms_;
    bool known = false, created = false;
    {
      std::lock_guard lock(mu_);
      if (auto it = attempts_.find(id); it != attempts_.end()) {
        if (final_state(it->second.state)) return json::object();
        it->second.cancel_requested = true;
        known = true;
        created = it->second.created;
      }
    }
    if (!known) {  // not in memory (e.g. dispatched before a restart): stop it only when Ork started it
      Response r = api_->call(http::verb::get, "/containers/" + id + "/json");
      if (r.status != 200 || !r.json_body()["Config"]["Labels"].contains("ork.task_id")) return json::object();
      std::lock_guard lock(mu_);
      Attempt& at = attempts_[id];
      at.cancel_requested = at.created = created = true;
    }
    if (!created) return json::object();  // its dispatch thread sees the flag before creating or starting it
    // docker stop: SIGTERM, SIGKILL after the grace period; on the control thread so cancel() never blocks.
    stop_later(id, grace);
    return json::object();
  }

 private:
  static std::string executor_id(const json& a) {
    if (!a.is_object() || !a.contains("executor_id") || !a["executor_id"].is_string() ||
        a["executor_id"].get<std::string>().empty())
      ork::throw_invalid("exec-docker: expected {\"executor_id\": \"...\"}");
    std::string id = a["executor_id"];
    for (char ch : id)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
        ork::throw_invalid("exec-docker: malformed executor id");
    return id;
  }

  static json status_json(const Attempt& at) {
    return {{"state", at.state}, {"exit_code", at.exit_code}, {"message", at.message}};
  }

  // Moves an attempt forward (pending → running → final, never back) and pushes the events: `running` always
  // precedes the one final event. Unknown ids are ignored.
  void advance(const std::string& id, const std::string& to, json exit_code, const std::string& message,
               bool started = true) {
    std::lock_guard order(notify_mu_);
    std::vector<json> events;
    std::string remove_id;
    {
      std::lock_guard lock(mu_);
      auto it = attempts_.find(id);
      if (it == attempts_.end() || final_state(it->second.state)) return;
      Attempt& at = it->second;
      if (!at.running_sent && started) {
        at.running_sent = true;
        events.push_back({{"type", "executor.status"}, {"executor_id", id}, {"state", "running"}});
      }
      if (to == "running") {
        at.state = "running";
      } else {
        at.state = to == "failed" && at.cancel_requested ? "cancelled" : to;
        if (at.state == "failed" && at.oom)
          at.message = "killed: out of memory (Memory limit); " + message;
        else
          at.message = message;
        at.exit_code = exit_code;
        events.push_back({{"type", "executor.status"},
                          {"executor_id", id},
                          {"state", at.state},
                          {"exit_code", exit_code},
                          {"message", at.message}});
        finished_.push_back(id);
        if (finished_.size() > kFinishedKept) {
          attempts_.erase(finished_.front());
          finished_.pop_front();
        }
        to_remove_.push_back(id);
        if (to_remove_.size() > keep_finished_) {
          remove_id = to_remove_.front();
          to_remove_.pop_front();
        }
      }
    }
    for (const auto& e : events) host_.notify(e);
    if (!remove_id.empty())
      enqueue([this, remove_id] { api_->call(http::verb::delete_, "/containers/" + remove_id + "?force=true"); });
  }

  // The last lines of the container's output (Docker's multiplexed log frames, or raw text with a TTY).
  std::string logs_tail(const std::string& id) {
    Response r = api_->call(http::verb::get, "/containers/" + id + "/logs?stdout=1&stderr=1&tail=10");
    if (r.status != 200) return "";
    const std::string& b = r.body;
    std::string out;
    size_t i = 0;
    while (i + 8 <= b.size() && static_cast<unsigned char>(b[i]) <= 2 && b[i + 1] == 0 && b[i + 2] == 0 &&
           b[i + 3] == 0) {
      size_t n = 0;
      for (size_t k = 4; k < 8; ++k) n = (n << 8) | static_cast<unsigned char>(b[i + k]);
      out.append(b, i + 8, n);
      i += 8 + n;
    }
    if (i == 0) out = b;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out.size() > 1000 ? out.substr(out.size() - 1000) : out;
  }

  void finish_exited(const std::string& id, int64_t code) {
    std::string msg = "exited with code " + std::to_string(code);
    bool cancelled;
    {
      std::lock_guard lock(mu_);
      auto it = attempts_.find(id);
      cancelled = it != attempts_.end() && it->second.cancel_requested;
    }
    // Exit codes other than the worker's own 0/1 (2: configuration, 125-127: the runtime could not start it) mean
    // nothing reached the object store: the container's last output is the only explanation.
    if (code != 0 && code != 1 && !cancelled) try {
        if (std::string tail = logs_tail(id); !tail.empty()) msg += ": " + tail;
      } catch (const std::exception&) {
      }
    advance(id, code == 0 ? "succeeded" : "failed", code, msg);
  }

  // Reads the container's state from the API; tracked attempts move forward with it.
  json inspect_and_advance(const std::string& id) {
    bool tracked;
    {
      std::lock_guard lock(mu_);
      auto it = attempts_.find(id);
      tracked = it != attempts_.end();
      if (tracked && !it->second.created) return status_json(it->second);  // still queued for create
    }
    Response r = api_->call(http::verb::get, "/containers/" + id + "/json");
    if (r.status == 404) {
      if (!tracked) return {{"state", "unknown"}, {"exit_code", nullptr}, {"message", "no such container"}};
      advance(id, "failed", nullptr, "the container disappeared (removed outside Ork)");
    } else if (r.status != 200) {
      ork::throw_unavailable("exec-docker: inspect " + id + " (HTTP " + std::to_string(r.status) + "): " + r.message());
    } else {
      json st = r.json_body().value("State", json::object());
      std::string s = st.value("Status", "");
      if (!tracked) {  // not started by this instance: report what the API says
        if (s == "created") return {{"state", "pending"}, {"exit_code", nullptr}, {"message", s}};
        if (s == "running" || s == "paused" || s == "restarting")
          return {{"state", "running"}, {"exit_code", nullptr}, {"message", s}};
        int64_t code = st.value("ExitCode", -1);
        return {{"state", code == 0 ? "succeeded" : "failed"},
                {"exit_code", code},
                {"message", "exited with code " + std::to_string(code)}};
      }
      if (st.value("OOMKilled", false)) {
        std::lock_guard lock(mu_);
        attempts_[id].oom = true;
      }
      if (s == "running" || s == "paused" || s == "restarting")
        advance(id, "running", nullptr, "");
      else if (s == "exited" || s == "dead" || s == "stopped")
        finish_exited(id, st.value("ExitCode", -1));
    }
    std::lock_guard lock(mu_);
    auto it = attempts_.find(id);
    if (it == attempts_.end()) return {{"state", "unknown"}, {"exit_code", nullptr}, {"message", ""}};
    return status_json(it->second);
  }

  void on_event(const json& e) {
    if (e.value("Type", "") != "container") return;
    std::string action = e.value("Action", e.value("status", ""));
    json attrs = e.contains("Actor") ? e["Actor"].value("Attributes", json::object()) : json::object();
    // Attempts are known by container name (the executor id); the full id only where a name is missing.
    std::string id =
        attrs.contains("name") && attrs["name"].is_string() ? attrs["name"].get<std::string>() : e.value("id", "");
    {
      std::lock_guard lock(mu_);
      auto it = attempts_.find(id);
      // A container of this owner started by an earlier instance (a restarted host with a fixed `owner`): adopted.
      if (it == attempts_.end() && (action == "start" || action == "die") && attrs.contains("ork.task_id"))
        it = attempts_.emplace(id, Attempt{}).first;
      it->second.created = true;
      if (it == attempts_.end() || final_state(it->second.state)) return;
      if (action == "oom") it->second.oom = true;
    }
    if (action == "start") {
      advance(id, "running", nullptr, "");
    } else if (action == "die") {
      std::string code = attrs.value("exitCode", attrs.value("containerExitCode", ""));
      if (!code.empty() && code.find_first_not_of("0123456789") == std::string::npos)
        finish_exited(id, std::stoll(code));
      else
        inspect_and_advance(id);
    } else if (action == "destroy" || action == "remove") {
      advance(id, "failed", nullptr, "the container was removed before it finished");
    }
  }

  void wait_for_events_stream() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 5s, [&] { return events_connected_ || stop_; });
  }

  // Follows GET /events filtered by this instance's owner label; reconnects with backoff, and after a reconnect
  // re-reads every unfinished attempt (events sent while it was down are lost).
  void events_loop() {
    json filters{{"label", json::array({"ork.owner=" + owner_})}, {"type", json::array({"container"})}};
    std::string target = std::string(kApi) + "/events?filters=" + percent_encode(filters.dump());
    auto backoff = 100ms;
    bool first = true;
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
      }
      net::io_context ioc;
      local::socket s(ioc);
      beast::error_code ec;
      s.connect(local::endpoint(api_->socket()), ec);
      if (!ec) {
        std::lock_guard lock(mu_);
        if (stop_) return;
        events_fd_ = s.native_handle();
      }
      if (!ec) {
        http::request<http::empty_body> req{http::verb::get, target, 11};
        req.set(http::field::host, "docker");
        http::write(s, req, ec);
      }
      beast::flat_buffer buf;
      http::response_parser<http::buffer_body> p;
      p.body_limit(std::numeric_limits<std::uint64_t>::max());
      if (!ec) http::read_header(s, buf, p, ec);
      if (!ec && p.get().result_int() == 200) {
        {
          std::lock_guard lock(mu_);
          events_connected_ = true;
        }
        cv_.notify_all();
        backoff = 100ms;
        if (!first) resync();
        first = false;
        std::string pending;
        char chunk[8192];
        while (!p.is_done()) {
          p.get().body().data = chunk;
          p.get().body().size = sizeof chunk;
          http::read_some(s, buf, p, ec);
          if (ec == http::error::need_buffer) ec = {};
          if (ec) break;
          pending.append(chunk, sizeof chunk - p.get().body().size);
          for (size_t nl; (nl = pending.find('\n')) != std::string::npos; pending.erase(0, nl + 1)) {
            json e = json::parse(pending.substr(0, nl), nullptr, false);
            if (e.is_object()) try {
                on_event(e);
              } catch (const std::exception& ex) {
                host_.log(ORK_LOG_WARN, std::string("exec-docker: event handling: ") + ex.what());
              }
          }
        }
      }
      {
        std::unique_lock lock(mu_);
        events_fd_ = -1;
        events_connected_ = false;
        if (stop_) return;
        host_.log(ORK_LOG_WARN, "exec-docker: the events stream from " + api_->socket() + " ended (" +
                                    (ec ? ec.message() : "HTTP " + std::to_string(p.get().result_int())) +
                                    "); reconnecting");
        cv_.wait_for(lock, backoff, [&] { return stop_; });
      }
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
    }
  }

  void resync() {
    std::vector<std::string> open;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, at] : attempts_)
        if (!final_state(at.state)) open.push_back(id);
    }
    for (const auto& id : open) try {
        inspect_and_advance(id);
      } catch (const std::exception& ex) {
        host_.log(ORK_LOG_WARN, std::string("exec-docker: resync: ") + ex.what());
      }
  }

  void stop_later(const std::string& id, int64_t grace_ms) {
    enqueue([this, id, grace_ms] {
      int64_t t = (std::max<int64_t>(grace_ms, 0) + 999) / 1000;
      api_->call(http::verb::post, "/containers/" + id + "/stop?t=" + std::to_string(t));
    });
  }

  void enqueue(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_all();
  }

  // Runs the jobs of `queue` one by one until shutdown; what is still queued then is dropped (a queued attempt stays
  // pending: the host's heartbeat check fails it).
  template <class Job, class Run>
  void serve(std::deque<Job>& queue, Run run) {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || !queue.empty(); });
      if (stop_) return;
      Job job = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      try {
        run(job);
      } catch (const std::exception& ex) {
        host_.log(ORK_LOG_WARN, std::string("exec-docker: ") + ex.what());
      }
      lock.lock();
    }
  }
  // Creates and starts queued attempts (dispatch threads).
  void dispatch_loop() {
    serve(starts_, [this](const StartJob& job) { start_container(job); });
  }
  // Stops and removals, off the caller's thread.
  void control_loop() {
    serve(jobs_, [](const std::function<void()>& job) { job(); });
  }

  ork::HostServices host_;
  std::unique_ptr<DockerApi> api_;
  std::string image_, network_mode_, user_, owner_, worker_bundle_, nonce_;
  std::atomic<uint64_t> counter_{0};
  json worker_command_, extra_env_ = json::object();
  std::vector<std::string> mounts_;
  size_t keep_finished_ = 10;
  int64_t default_grace_ms_ = 10000;
  bool mount_object_store_ = true;

  std::mutex notify_mu_;  // orders pushed events per instance (taken before mu_)
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Attempt> attempts_;
  std::deque<std::string> finished_, to_remove_;
  std::deque<std::function<void()>> jobs_;
  std::deque<StartJob> starts_;
  std::vector<std::thread> dispatch_threads_;
  bool stop_ = false, events_connected_ = false;
  int events_fd_ = -1;
  std::thread events_thread_, control_thread_;
};

}  // namespace

ORK_EXECUTOR_PLUGIN(DockerExecutor, "docker", ORK_PLUGIN_VERSION)
