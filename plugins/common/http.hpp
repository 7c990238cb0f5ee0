// A small HTTP client for the cloud plugins over cpprestsdk (kept out of this header: pimpl), with retries and
// exponential backoff on connection errors, 408, 429 and 5xx. One implementation for every plugin.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ork::common {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;            // absolute and already percent-encoded: http(s)://host[:port]/path?query
  Headers headers;            // sent as given (cpprest adds Content-Length, and Host unless given here); a body without
                              // Content-Type gets application/octet-stream before `prepare` (signing) runs
  std::string_view body;      // not owned: the caller keeps it alive for the whole send()
  std::string response_file;  // when set, a 2xx body goes to this file (through a temp file, renamed at the end)

  // The value of header `name` (case-insensitive), or "".
  std::string header(std::string_view name) const;
  void set_header(const std::string& name, std::string value);  // replaces any header of that name
};

struct HttpResponse {
  int status = 0;
  Headers headers;   // names lowercased
  std::string body;  // empty when the body went to response_file
  int attempts = 1;  // how many were sent: > 1 means an earlier attempt may have taken effect
  std::string header(std::string_view name) const;
  bool ok() const { return status >= 200 && status < 300; }
};

struct RetryPolicy {
  int max_attempts = 5;  // 1 = no retries
  std::chrono::milliseconds base_delay{100};
  std::chrono::milliseconds max_delay{5000};
};

struct HttpOptions {
  std::chrono::milliseconds timeout{60000};  // per request, without progress
  RetryPolicy retry;
  // "host:port" to connect to instead of the URL's authority; the Host header keeps the URL's (plain http only). For
  // tests of virtual-host addressing and for reaching a service through a tunnel.
  std::string connect_to;
  bool verify_tls = true;
  // PEM text (not file names): extra trusted CA certificates, and a client certificate chain + key (mutual TLS).
  std::string ca_pem, client_cert_pem, client_key_pem;
};

// A transport failure (no HTTP status) after every attempt; the message names the method and URL without query.
class HttpError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Lets another thread abort a streaming request (HttpClient::stream_lines).
class StreamCanceller {
 public:
  StreamCanceller();
  ~StreamCanceller();
  StreamCanceller(const StreamCanceller&) = delete;
  StreamCanceller& operator=(const StreamCanceller&) = delete;
  void cancel();

 private:
  friend class HttpClient;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Called before every attempt on a fresh copy of the request (e.g. to sign it with the current time).
  using Prepare = std::function<void(HttpRequest&)>;
  // Sends `req`, retrying retryable failures with backoff (honouring Retry-After). Returns the final response
  // whatever its status; throws HttpError when no response arrived.
  HttpResponse send(const HttpRequest& req, const Prepare& prepare = {}) const;
  // One attempt, no retries.
  HttpResponse send_once(const HttpRequest& req) const;
  // One attempt whose 2xx body is handed to `on_line` line by line as it arrives (a watch / event stream), until
  // the body ends, on_line returns false or `cancel` fires (then HttpError). A non-2xx answer comes back with its
  // body. The per-request timeout applies between arrivals.
  HttpResponse stream_lines(const HttpRequest& req, const std::function<bool(const std::string& line)>& on_line,
                            StreamCanceller& cancel) const;

  const HttpOptions& options() const { return options_; }
  static bool retryable_status(int status) { return status == 408 || status == 429 || status >= 500; }

 private:
  struct Impl;
  HttpOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ork::common
