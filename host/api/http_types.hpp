// The REST API's request/response types, independent of the HTTP library (Boost.Beast stays in http_server.cpp).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ork::api {

// An open Server-Sent Events response. Thread-safe; data is queued and written in order.
class EventChannel {
 public:
  virtual ~EventChannel() = default;
  virtual void send(std::string data) = 0;  // raw SSE text ("event: x\ndata: y\n\n"); dropped once closed
  virtual void close() = 0;                 // ends the response after what is queued
  virtual bool is_open() const = 0;
};

struct Request {
  std::string method;                             // "GET", "POST", ...
  std::string path;                               // decoded, without the query string
  std::multimap<std::string, std::string> query;  // decoded
  std::map<std::string, std::string> params;      // path parameters of the matched route
  std::string body;
  std::string content_type;   // lower-cased media type without parameters
  std::string authorization;  // the Authorization header
  std::string remote;         // peer address, for logs

  // The first value of query parameter `key`, or `dflt`.
  std::string q(const std::string& key, const std::string& dflt = "") const {
    auto it = query.find(key);
    return it == query.end() ? dflt : it->second;
  }
  bool has(const std::string& key) const { return query.count(key) > 0; }
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set for an event stream: the body is ignored, the connection stays open and this is called once with the
  // channel (the response head is already queued on it).
  std::function<void(std::shared_ptr<EventChannel>)> stream;
};

// Completes a request; call exactly once, from any thread.
using Reply = std::function<void(Response)>;

}  // namespace ork::api
