// The `ork` CLI's HTTP client for the REST API (cpprestsdk; kept out of every other translation unit).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace ork::cli {

using json = nlohmann::json;

struct Response {
  int status = 0;
  std::string body;
  json parsed() const;  // the body as JSON, or {} when empty / not JSON
};

// The server cannot be reached (connection refused, DNS, TLS): the CLI exits 3.
struct Unreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Client {
 public:
  Client(std::string base_url, std::string api_key);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request; `path` starts with /api/v1 and may carry a query string.
  Response request(const std::string& method, const std::string& path, const std::string& body = "",
                   const std::string& content_type = "application/json");
  // Reads a Server-Sent Events stream; `on_event(event, data)` returns false to stop. Returns the HTTP status (200
  // when the stream was read to its end or stopped), or the error response's status with `error` filled.
  int stream(const std::string& path, const std::function<bool(const std::string&, const std::string&)>& on_event,
             Response* error = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Percent-encodes one URL path segment or query value.
std::string url_encode(const std::string& s);

}  // namespace ork::cli
