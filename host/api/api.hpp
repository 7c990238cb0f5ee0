// The REST API server of `ork-host serve`: HTTP/1.1 on a small thread pool beside the engine's io_context
// (routes in routes.hpp, document in openapi.json, user docs in docs/api.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace ork {
class Engine;
class PluginRegistry;
}  // namespace ork

namespace ork::api {

struct ApiConfig {
  std::string bind = "127.0.0.1";
  uint16_t port = 4000;         // 0: any free port (the chosen one is logged and returned by port())
  int threads = 2;              // HTTP threads
  size_t max_body = 1 << 20;    // request body limit (413 beyond)
  std::string auth = "auto";    // auto: keys required once one exists; on; off (loopback only)
  std::string keys_file;        // API keys file (default <home>/api-keys.json)
  std::string home;             // the host's data dir: files of submitted tasks go under <home>/tasks/
  std::string static_dir;       // files served for paths outside /api/ ("" = none)
  int64_t cache_ms = 100;       // list responses are reused this long unless an engine event intervenes (0: off)
  int64_t log_poll_ms = 10000;  // a followed log is re-read this often while its task runs (the worker's upload period)
  int64_t sse_ping_ms = 15000;  // comment lines that keep idle event streams alive

  // Defaults overridden by ORK_API_BIND, ORK_API_PORT, ORK_API_THREADS, ORK_API_MAX_BODY, ORK_API_AUTH,
  // ORK_API_KEYS_FILE, ORK_API_STATIC_DIR, ORK_API_CACHE_MS.
  static ApiConfig from_env();
};

class ApiServer {
 public:
  // Registers the engine listener: construct on the engine's thread before its io_context runs.
  ApiServer(boost::asio::io_context& engine_io, Engine& engine, PluginRegistry& plugins, ApiConfig cfg);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and starts serving. Throws std::runtime_error when it must not start (e.g. a non-loopback address
  // without API keys, or the port is taken), with a message saying why.
  void start();
  void stop();
  uint16_t port() const;
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ork::api
