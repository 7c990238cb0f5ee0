#include "http_client.hpp"

#include <cpprest/http_client.h>
#include <cpprest/containerstream.h>

#include <cctype>
#include <cstdio>

namespace ork::cli {

namespace http = web::http;

json Response::parsed() const {
  if (body.empty()) return json::object();
  json j = json::parse(body, nullptr, false);
  return j.is_discarded() ? json::object() : j;
}

struct Client::Impl {
  Impl(const std::string& base, std::string key) : client(make_client(base, false)), key(std::move(key)), base(base) {}
  static http::client::http_client make_client(const std::string& base, bool streaming) {
    http::client::http_client_config cfg;
    cfg.set_timeout(std::chrono::seconds(streaming ? 24 * 3600 : 60));
    if (streaming) cfg.set_chunksize(1);  // hand over every byte as it arrives (events are small and sparse)
    try {
      return http::client::http_client(utility::conversions::to_string_t(base), cfg);
    } catch (const std::exception& e) {
      throw std::invalid_argument("bad server URL '" + base + "': " + e.what());
    }
  }
  http::http_request make(const std::string& method, const std::string& path) const {
    http::http_request req(utility::conversions::to_string_t(method));
    req.set_request_uri(utility::conversions::to_string_t(path));
    if (!key.empty()) req.headers().add(U("Authorization"), utility::conversions::to_string_t("Bearer " + key));
    req.headers().add(U("User-Agent"), U("ork-cli"));
    return req;
  }
  http::client::http_client client;
  std::string key, base;
};

Client::Client(std::string base_url, std::string api_key)
    : impl_(std::make_unique<Impl>(base_url, std::move(api_key))) {}
Client::~Client() = default;

Response Client::request(const std::string& method, const std::string& path, const std::string& body,
                         const std::string& content_type) {
  auto req = impl_->make(method, path);
  if (!body.empty() || method == "POST") req.set_body(body, content_type);
  try {
    http::http_response resp = impl_->client.request(req).get();
    Response r;
    r.status = resp.status_code();
    r.body = resp.extract_utf8string(true).get();
    return r;
  } catch (const http::http_exception& e) {
    throw Unreachable("cannot reach " + impl_->base + ": " + e.what());
  }
}

int Client::stream(const std::string& path, const std::function<bool(const std::string&, const std::string&)>& on_event,
                   Response* error) {
  auto client = Impl::make_client(impl_->base, true);
  auto req = impl_->make("GET", path);
  req.headers().add(U("Accept"), U("text/event-stream"));
  http::http_response resp;
  try {
    resp = client.request(req).get();
  } catch (const http::http_exception& e) {
    throw Unreachable("cannot reach " + impl_->base + ": " + e.what());
  }
  if (resp.status_code() != http::status_codes::OK) {
    if (error) {
      error->status = resp.status_code();
      error->body = resp.extract_utf8string(true).get();
    }
    return resp.status_code();
  }
  auto body = resp.body();
  std::string event, data;
  try {
    for (;;) {
      // Line by line: a plain read() would wait for a whole buffer of bytes, and events are small.
      concurrency::streams::container_buffer<std::string> buf;
      size_t n = body.read_line(buf).get();
      std::string line = std::move(buf.collection());
      if (n == 0 && line.empty() && body.is_eof()) return 200;  // the server closed the stream
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {  // a blank line ends one event
        if (!data.empty() || !event.empty()) {
          if (!data.empty() && data.back() == '\n') data.pop_back();
          if (!on_event(event.empty() ? "message" : event, data)) return 200;
        }
        event.clear();
        data.clear();
      } else if (line == ": ready") {  // the server's "subscribed" comment
        if (!on_event("ready", "")) return 200;
      } else if (line.rfind("event:", 0) == 0) {
        event = line.substr(line.size() > 6 && line[6] == ' ' ? 7 : 6);
      } else if (line.rfind("data:", 0) == 0) {
        data += line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5) + "\n";
      }
    }
  } catch (const std::exception& e) {
    throw Unreachable("the event stream from " + impl_->base + " broke: " + e.what());
  }
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

}  // namespace ork::cli
