// The one translation unit that includes cpprestsdk (20-30 s to compile): every plugin goes through HttpClient.
#include "http.hpp"

#include <cpprest/containerstream.h>
#include <cpprest/filestream.h>
#include <cpprest/http_client.h>
#include <cpprest/rawptrstream.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "web_util.hpp"

namespace ork::common {

namespace http = web::http;
namespace streams = concurrency::streams;

namespace {
std::string find_header(const Headers& hs, std::string_view name) {
  for (const auto& [k, v] : hs)
    if (to_lower(k) == to_lower(name)) return v;
  return "";
}
std::string without_query(const std::string& url) {
  return url.substr(0, url.find('?'));
}
}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  return find_header(headers, name);
}
void HttpRequest::set_header(const std::string& name, std::string value) {
  std::string ln = to_lower(name);
  std::erase_if(headers, [&](const auto& h) { return to_lower(h.first) == ln; });
  headers.emplace_back(name, std::move(value));
}
std::string HttpResponse::header(std::string_view name) const {
  return find_header(headers, name);
}

struct HttpClient::Impl {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<http::client::http_client>> clients;  // by origin

  http::client::http_client& client_for(const std::string& origin, const HttpOptions& o) {
    std::lock_guard lk(mu);
    auto& c = clients[origin];
    if (!c) {
      http::client::http_client_config cfg;
      cfg.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(o.timeout));
      cfg.set_validate_certificates(o.verify_tls);
      cfg.set_chunksize(256 * 1024);
      if (!o.ca_pem.empty() || !o.client_cert_pem.empty()) {
        cfg.set_ssl_context_callback(
            [ca = o.ca_pem, cert = o.client_cert_pem, key = o.client_key_pem](boost::asio::ssl::context& ctx) {
              if (!ca.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca.data(), ca.size()));
              if (!cert.empty()) ctx.use_certificate_chain(boost::asio::buffer(cert.data(), cert.size()));
              if (!key.empty())
                ctx.use_private_key(boost::asio::buffer(key.data(), key.size()), boost::asio::ssl::context::pem);
            });
      }
      c = std::make_unique<http::client::http_client>(web::uri(origin), cfg);
    }
    return *c;
  }
};

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}
HttpClient::~HttpClient() = default;

HttpResponse HttpClient::send_once(const HttpRequest& req) const {
  Url u = parse_url(req.url);
  std::string origin = u.origin();
  bool host_given = !req.header("host").empty();
  std::string host_header;
  if (!options_.connect_to.empty()) {
    origin = u.scheme + "://" + options_.connect_to;
    if (!host_given) host_header = u.authority();
  }
  auto& client = impl_->client_for(origin, options_);

  http::http_request msg(http::method(req.method));
  msg.set_request_uri(web::uri(u.target()));
  std::string content_type;
  for (const auto& [k, v] : req.headers) {
    if (to_lower(k) == "content-type") {
      content_type = v;
      continue;
    }
    if (to_lower(k) == "content-length") continue;
    msg.headers().add(k, v);
  }
  if (!host_header.empty()) msg.headers().add("Host", host_header);
  if (!req.body.empty() || !content_type.empty()) {
    static const char kEmpty[1] = {0};
    const char* data = req.body.empty() ? kEmpty : req.body.data();
    auto in = streams::rawptr_stream<uint8_t>::open_istream(reinterpret_cast<const uint8_t*>(data), req.body.size());
    msg.set_body(in, req.body.size(), content_type.empty() ? "application/octet-stream" : content_type);
  } else if (req.method == "PUT" || req.method == "POST") {
    msg.headers().set_content_length(0);
  }

  std::string tmp;
  streams::ostream file_out;
  if (!req.response_file.empty()) {
    tmp = req.response_file + ".ork-part-" + std::to_string(::getpid()) + "-" +
          std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
    file_out = streams::fstream::open_ostream(tmp, std::ios::out | std::ios::trunc | std::ios::binary).get();
    msg.set_response_stream(file_out);
  }
  auto cleanup = [&] {
    if (file_out.is_valid()) file_out.close().wait();
    if (!tmp.empty()) std::remove(tmp.c_str());
  };

  HttpResponse out;
  try {
    http::http_response resp = client.request(msg).get();
    out.status = resp.status_code();
    for (const auto& [k, v] : resp.headers()) out.headers.emplace_back(to_lower(k), v);
    if (file_out.is_valid()) {
      resp.content_ready().wait();
      file_out.flush().wait();
      file_out.close().wait();
      if (out.ok()) {
        std::error_code ec;
        std::filesystem::rename(tmp, req.response_file, ec);
        if (ec) {
          std::remove(tmp.c_str());
          throw std::runtime_error("cannot rename the download into " + req.response_file + ": " + ec.message());
        }
      } else {
        std::ifstream in(tmp, std::ios::binary);
        std::ostringstream ss;
        ss << in.rdbuf();
        out.body = ss.str().substr(0, 1 << 20);
        std::remove(tmp.c_str());
      }
    } else {
      streams::container_buffer<std::string> buf;
      resp.body().read_to_end(buf).wait();
      out.body = std::move(buf.collection());
    }
  } catch (const http::http_exception& e) {
    cleanup();
    throw HttpError(req.method + " " + without_query(req.url) + ": " + e.what());
  } catch (const web::uri_exception& e) {
    cleanup();
    throw HttpError(req.method + " " + without_query(req.url) + ": bad URL: " + e.what());
  } catch (...) {
    cleanup();
    throw;
  }
  return out;
}

struct StreamCanceller::Impl {
  pplx::cancellation_token_source source;
};
StreamCanceller::StreamCanceller() : impl_(std::make_unique<Impl>()) {}
StreamCanceller::~StreamCanceller() = default;
void StreamCanceller::cancel() {
  impl_->source.cancel();
}

HttpResponse HttpClient::stream_lines(const HttpRequest& req, const std::function<bool(const std::string&)>& on_line,
                                      StreamCanceller& cancel) const {
  Url u = parse_url(req.url);
  auto& client = impl_->client_for(u.origin(), options_);
  http::http_request msg(http::method(req.method));
  msg.set_request_uri(web::uri(u.target()));
  for (const auto& [k, v] : req.headers)
    if (to_lower(k) != "content-length" && to_lower(k) != "content-type") msg.headers().add(k, v);
  HttpResponse out;
  try {
    auto token = cancel.impl_->source.get_token();
    http::http_response resp = client.request(msg, token).get();
    out.status = resp.status_code();
    for (const auto& [k, v] : resp.headers()) out.headers.emplace_back(to_lower(k), v);
    auto body = resp.body();
    if (!out.ok()) {
      streams::container_buffer<std::string> buf;
      body.read_to_end(buf).wait();
      out.body = std::move(buf.collection());
      return out;
    }
    for (;;) {
      if (token.is_canceled()) throw HttpError(req.method + " " + without_query(req.url) + ": cancelled");
      streams::container_buffer<std::string> line;
      size_t n = body.read_line(line).get();
      if (n == 0 && body.is_eof()) break;
      if (!line.collection().empty() && !on_line(line.collection())) break;
    }
  } catch (const http::http_exception& e) {
    throw HttpError(req.method + " " + without_query(req.url) + ": " + e.what());
  } catch (const pplx::task_canceled&) {
    throw HttpError(req.method + " " + without_query(req.url) + ": cancelled");
  }
  return out;
}

HttpResponse HttpClient::send(const HttpRequest& req, const Prepare& prepare) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int attempts = std::max(1, options_.retry.max_attempts);
  for (int attempt = 1;; ++attempt) {
    HttpRequest r = req;
    // A body always travels with a Content-Type (cpprest insists); set it before signing so signers see it.
    if (!r.body.empty() && r.header("content-type").empty()) r.set_header("Content-Type", "application/octet-stream");
    if (prepare) prepare(r);
    std::chrono::milliseconds wait{0};
    try {
      HttpResponse resp = send_once(r);
      resp.attempts = attempt;
      if (!retryable_status(resp.status) || attempt >= attempts) return resp;
      if (std::string ra = resp.header("retry-after"); !ra.empty() && std::isdigit(static_cast<unsigned char>(ra[0])))
        wait = std::chrono::milliseconds(std::min<long>(std::stol(ra), 60) * 1000);
    } catch (const HttpError&) {
      if (attempt >= attempts) throw;
    }
    if (wait.count() == 0) {
      auto cap =
          std::min(options_.retry.max_delay.count(), options_.retry.base_delay.count() << std::min(attempt - 1, 16));
      wait = std::chrono::milliseconds(std::uniform_int_distribution<long>(cap / 2, std::max<long>(cap, 1))(rng));
    }
    std::this_thread::sleep_for(std::min(wait, options_.retry.max_delay * 4));
  }
}

}  // namespace ork::common
