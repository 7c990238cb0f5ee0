// The REST API's request handling (routing, auth, JSON errors, handlers), independent of the HTTP library.
// Reads go straight to the thread-safe state/object store proxies on the HTTP threads; anything that changes the
// engine's state runs on the engine's io_context (the engine is single-threaded).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "api/api.hpp"
#include "api/api_keys.hpp"
#include "api/event_hub.hpp"
#include "api/http_types.hpp"
#include "api/routes.hpp"

namespace ork {
class Engine;
class PluginRegistry;
}  // namespace ork

namespace ork::api {

using json = nlohmann::json;

// Thrown by handlers: becomes {"error": {"code", "message", "details"}} with `status`.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string code, const std::string& message, json details = nullptr)
      : std::runtime_error(message), status(status), code(std::move(code)), details(std::move(details)) {}
  int status;
  std::string code;
  json details;
};

Response json_response(int status, const json& body);
// An exception from a handler or a plugin as its JSON error response (ApiError, PluginCallError, anything else: 500).
Response error_from(const std::exception& e);
Response error_response(int status, const std::string& code, const std::string& message, const json& details = nullptr);
// JSON text with invalid UTF-8 replaced (task logs and outputs may hold anything).
std::string dump_json(const json& j);

// Recently built list bodies, reused until `ttl_ms` passes or the generation (engine events, API writes) moves.
class ListCache {
 public:
  explicit ListCache(int64_t ttl_ms) : ttl_ms_(ttl_ms) {}
  std::shared_ptr<const std::string> get(const std::string& key, uint64_t gen);
  void put(const std::string& key, uint64_t gen, std::shared_ptr<const std::string> body);

 private:
  struct Entry {
    std::shared_ptr<const std::string> body;
    uint64_t gen;
    int64_t expires;  // steady ms
  };
  int64_t ttl_ms_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

class Service {
 public:
  Service(boost::asio::io_context& engine_io, boost::asio::io_context& http_io, Engine& engine, PluginRegistry& plugins,
          const ApiConfig& cfg, std::shared_ptr<EventHub> hub);
  ~Service();

  // Handles one request; `reply` is called exactly once (maybe later, from another thread).
  void handle(Request req, Reply reply);
  // Whether requests need a key right now (auth on, or auto with at least one active key).
  bool auth_required();
  ApiKeyStore& keys() { return keys_; }
  void shutdown() { *alive_ = false; }

 private:
  struct Helpers;
  friend struct Helpers;
  void dispatch(const std::string& op, Request& req, Reply& reply);
  template <class F>
  void on_engine(Reply reply, F fn);
  uint64_t generation() const { return hub_->generation() + writes_.load(); }
  void wrote() { ++writes_; }
  std::string data_dir() const;

  // Handlers (one per route; operation ids in routes.cpp).
  Response health(const Request& r);
  Response list_workflows(const Request& r);
  void deploy_workflow(Request& r, Reply& reply);
  Response get_workflow(const Request& r);
  void delete_workflow(Request& r, Reply& reply);
  void start_run(Request& r, Reply& reply);
  Response list_runs(const Request& r);
  Response get_run(const Request& r);
  void cancel_run(Request& r, Reply& reply);
  void retry_run(Request& r, Reply& reply);
  Response list_run_tasks(const Request& r);
  Response task_logs(const Request& r);
  Response events(const Request& r);
  void submit_task(Request& r, Reply& reply);
  Response get_task(const Request& r);
  Response list_keys(const Request& r);
  Response create_key(const Request& r);
  Response revoke_key(const Request& r);
  Response static_file(const Request& r);

  boost::asio::io_context& engine_io_;
  boost::asio::io_context& http_io_;
  Engine& engine_;
  PluginRegistry& plugins_;
  ApiConfig cfg_;
  std::shared_ptr<EventHub> hub_;
  ApiKeyStore keys_;
  ListCache cache_;
  std::atomic<uint64_t> writes_{0};
  std::atomic<bool> legacy_list_{false};  // the state plugin predates list_runs_page (ABI < 1.3)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::string openapi_;
};

// Runs fn() (returning a Response) on the engine's thread and replies with its result or error.
template <class F>
void Service::on_engine(Reply reply, F fn) {
  boost::asio::post(engine_io_, [this, alive = alive_, reply = std::move(reply), fn = std::move(fn)]() mutable {
    if (!*alive) return;
    Response res;
    try {
      res = fn();
    } catch (const std::exception& e) {
      res = error_from(e);
    }
    reply(std::move(res));
  });
}

// The OpenAPI 3.0 document (host/api/openapi.json, embedded at build time).
const std::string& openapi_json();

// Helpers shared by the handler files.
json parse_json_body(const Request& r, bool allow_empty);
std::string encode_cursor(const json& c);
json decode_cursor(const std::string& s);  // throws ApiError invalid_cursor
int parse_int_param(const Request& r, const char* key, int dflt, int min, int max);
bool parse_bool_param(const Request& r, const char* key);
std::vector<std::string> parse_list_param(const Request& r, const char* key);
bool is_loopback_address(const std::string& bind);

}  // namespace ork::api
