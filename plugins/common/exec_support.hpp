// Pieces the cloud Executor plugins share: the environment and secrets of an ExecutionConfig, and a status poller
// that turns a platform without push notifications into `executor.status` events (one thread, asleep while idle).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ork/plugin.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http.hpp"

namespace ork::common {

// The variables to set in the job: ExecutionConfig.env without ORK_TASK_SECRETS (returned apart in `secrets`,
// "" when none), in name order. Values are strings; anything else is INVALID.
struct JobEnv {
  std::vector<std::pair<std::string, std::string>> vars;
  std::string secrets;
  // `text` with the secrets bundle and each secret value in it (as is and JSON-escaped) replaced by ***.
  std::string redact(std::string text) const;
  // Runs f(); an error it throws is thrown again with its message redacted (an API may echo what it was sent).
  template <class F>
  auto redacting(F&& f) const -> decltype(f()) {
    try {
      return f();
    } catch (const ork::PluginError& e) {
      throw ork::PluginError(e.code(), redact(e.what()));
    } catch (const std::exception& e) {
      throw std::runtime_error(redact(e.what()));
    }
  }
};
JobEnv job_env(const nlohmann::json& config, const char* plugin);

// {"state": s, "exit_code": n|null, "message": m}.
nlohmann::json exec_status(const std::string& state, const nlohmann::json& exit_code = nullptr,
                           const std::string& message = "");
bool exec_terminal(const std::string& state);

// Refuses config fields not in `known` (INVALID naming the field).
void check_known_fields(const nlohmann::json& cfg, const char* plugin, const std::vector<std::string>& known);
// A list of strings from config (absent: empty); INVALID otherwise.
std::vector<std::string> cfg_strings(const nlohmann::json& cfg, const char* plugin, const char* field);
// Throws the PluginError matching an HTTP error answer: 404 NOT_FOUND, 409 CONFLICT, 400/401/403/422 INVALID,
// 408/429/5xx UNAVAILABLE, else a runtime_error; the text names the plugin, what failed, the status and `detail`.
[[noreturn]] void throw_http(const char* plugin, const std::string& what, int status, const std::string& detail);

// Sends a JSON request (`body` as application/json, or `content_type`) with "Authorization: Bearer <token>" (none when
// empty) through `http`'s retries; a transport failure becomes UNAVAILABLE naming the plugin.
HttpResponse send_json_request(const HttpClient& http, const std::string& method, const std::string& url,
                               std::string_view body, const std::string& token, const char* plugin,
                               const std::string& content_type = "application/json");

// A lowercase DNS-1123 label (a-z0-9 and '-', starting with a letter, at most max_len) made from `s`.
std::string dns_label(const std::string& s, size_t max_len);

// Polls the status of the attempts it watches every `interval` and pushes each change (to running or a terminal
// state) through host notify; forgets an attempt once terminal. With nothing watched its thread waits unwoken.
class StatusPoller {
 public:
  // The status (exec_status(...)) of each id it can tell; ids it leaves out are asked again next round.
  using Fetch = std::function<std::map<std::string, nlohmann::json>(const std::vector<std::string>& ids)>;
  StatusPoller(ork::HostServices host, std::chrono::milliseconds interval, Fetch fetch, std::string plugin);
  // A Fetch asking `one` per id; an id whose call throws is logged (as a warning) and left out.
  static Fetch each(ork::HostServices host, std::string plugin,
                    std::function<nlohmann::json(const std::string& executor_id)> one);
  ~StatusPoller();
  StatusPoller(const StatusPoller&) = delete;
  StatusPoller& operator=(const StatusPoller&) = delete;

  void watch(const std::string& executor_id);
  void forget(const std::string& executor_id);
  size_t watched() const;
  bool watching(const std::string& executor_id) const;
  // A status the plugin read itself (status()): pushed now when it is news for a watched attempt, so an attempt
  // status() reports final has always had its final event.
  void observe(const std::string& executor_id, const nlohmann::json& status);

 private:
  void run();

  ork::HostServices host_;
  std::chrono::milliseconds interval_;
  Fetch fetch_;
  std::string plugin_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> last_;  // executor id -> last state pushed ("" = none yet)
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ork::common
