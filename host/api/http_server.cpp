// Boost.Beast HTTP/1.1 server for the REST API: keep-alive sessions on a small thread pool, body limits, and
// Server-Sent Events streams. The only file that includes Beast.
#include <spdlog/spdlog.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <deque>
#include <set>
#include <thread>

#include "api/api.hpp"
#include "api/service.hpp"
#include "loader/plugin_loader.hpp"
#include "scheduler/engine.hpp"

namespace ork::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kHeaderLimit = 16 * 1024;
constexpr size_t kSseQueueLimit = 8 * 1024 * 1024;  // a client this far behind is dropped
constexpr auto kIdleTimeout = std::chrono::seconds(60);

int64_t env_int(const char* name, int64_t def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  return end && *end == '\0' ? n : def;
}

std::string env_str(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v && *v ? v : def;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class Session;

// What an SSE response writes to: posts onto the session's strand; the session may already be gone.
class Channel final : public EventChannel {
 public:
  explicit Channel(std::weak_ptr<Session> s) : s_(std::move(s)) {}
  void send(std::string data) override;
  void close() override;
  bool is_open() const override { return open_.load(); }
  void mark_closed() { open_ = false; }

 private:
  std::weak_ptr<Session> s_;
  std::atomic<bool> open_{true};
};

struct Server;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Server& srv);
  void run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }
  void sse_send(std::string data);
  void sse_close();

 private:
  void read();
  void on_read(beast::error_code ec);
  void respond(Response res);
  void write_plain(int status, const std::string& code, const std::string& message);
  void finish_write(beast::error_code ec, bool keep);
  void start_sse(Response res);
  void sse_pump();
  void sse_watch();
  void sse_ping();
  void close();

  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Server& srv_;
  http::response<http::string_body> res_;
  bool keep_alive_ = true;
  // SSE
  bool sse_ = false, sse_writing_ = false, sse_closing_ = false, closed_ = false;
  std::deque<std::string> sse_q_;
  size_t sse_bytes_ = 0;
  std::shared_ptr<Channel> chan_;
  std::unique_ptr<asio::steady_timer> ping_;
  char sink_[512];
};

struct Server {
  Server(Service& s, const ApiConfig& c) : service(s), cfg(c) {}
  Service& service;
  const ApiConfig& cfg;
  std::mutex mu;
  std::set<std::shared_ptr<Session>> awaiting;  // sessions whose reply is pending (replies hold weak refs)
};

void Channel::send(std::string data) {
  if (!open_) return;
  if (auto s = s_.lock()) s->sse_send(std::move(data));
}

void Channel::close() {
  if (!open_.exchange(false)) return;
  if (auto s = s_.lock()) s->sse_close();
}

Session::Session(tcp::socket&& socket, Server& srv) : stream_(std::move(socket)), srv_(srv) {}

void Session::read() {
  parser_.emplace();
  parser_->body_limit(srv_.cfg.max_body);
  parser_->header_limit(kHeaderLimit);
  stream_.expires_after(kIdleTimeout);
  http::async_read(stream_, buf_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
}

void Session::on_read(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == beast::error::timeout || ec == asio::error::operation_aborted)
    return close();
  if (ec == http::error::body_limit) {
    keep_alive_ = false;
    return write_plain(413, "payload_too_large",
                       "request body exceeds the limit of " + std::to_string(srv_.cfg.max_body) + " bytes");
  }
  if (ec == http::error::header_limit) {
    keep_alive_ = false;
    return write_plain(431, "headers_too_large", "request headers exceed " + std::to_string(kHeaderLimit) + " bytes");
  }
  if (ec) {
    keep_alive_ = false;
    return write_plain(400, "bad_request", "malformed HTTP request: " + ec.message());
  }
  auto& msg = parser_->get();
  keep_alive_ = msg.keep_alive();
  Request req;
  req.method = std::string(msg.method_string());
  std::string target(msg.target());
  size_t qpos = target.find('?');
  req.path = target.substr(0, qpos);
  if (req.path.size() > 1 && req.path.back() == '/') req.path.pop_back();
  if (qpos != std::string::npos) {
    std::string_view qs = std::string_view(target).substr(qpos + 1);
    while (!qs.empty()) {
      size_t amp = qs.find('&');
      std::string_view part = qs.substr(0, amp);
      if (!part.empty()) {
        size_t eq = part.find('=');
        req.query.emplace(url_decode(part.substr(0, eq), true),
                          eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1), true));
      }
      if (amp == std::string_view::npos) break;
      qs.remove_prefix(amp + 1);
    }
  }
  std::string ct(msg[http::field::content_type]);
  req.content_type = lower(ct.substr(0, ct.find(';')));
  while (!req.content_type.empty() && req.content_type.back() == ' ') req.content_type.pop_back();
  req.authorization = std::string(msg[http::field::authorization]);
  req.body = std::move(msg.body());
  beast::error_code ignore;
  auto ep = stream_.socket().remote_endpoint(ignore);
  if (!ignore) req.remote = ep.address().to_string();
  {
    std::lock_guard lk(srv_.mu);
    srv_.awaiting.insert(shared_from_this());
  }
  std::weak_ptr<Session> weak = weak_from_this();
  Server* srv = &srv_;
  srv_.service.handle(std::move(req), [weak, srv](Response res) {
    auto self = weak.lock();
    if (!self) return;
    {
      std::lock_guard lk(srv->mu);
      srv->awaiting.erase(self);
    }
    asio::dispatch(self->stream_.get_executor(),
                   [self, res = std::move(res)]() mutable { self->respond(std::move(res)); });
  });
}

void Session::respond(Response res) {
  if (res.stream) return start_sse(std::move(res));
  res_ = {};
  res_.version(11);
  res_.result(static_cast<http::status>(res.status));
  res_.set(http::field::server, "ork-host");
  if (!res.content_type.empty()) res_.set(http::field::content_type, res.content_type);
  for (auto& [k, v] : res.headers) res_.set(k, v);
  res_.body() = std::move(res.body);
  res_.keep_alive(keep_alive_);
  res_.prepare_payload();
  stream_.expires_after(kIdleTimeout);
  http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->finish_write(ec, self->keep_alive_);
  });
}

void Session::write_plain(int status, const std::string& code, const std::string& message) {
  respond(error_response(status, code, message));
}

void Session::finish_write(beast::error_code ec, bool keep) {
  if (ec || !keep) return close();
  read();
}

void Session::close() {
  if (closed_) return;
  closed_ = true;
  if (chan_) chan_->mark_closed();
  if (ping_) ping_->cancel();
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.socket().close(ec);
}

void Session::start_sse(Response res) {
  sse_ = true;
  stream_.expires_never();
  std::string head = "HTTP/1.1 " + std::to_string(res.status) +
                     " OK\r\nServer: ork-host\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "Connection: close\r\nX-Accel-Buffering: no\r\n";
  for (auto& [k, v] : res.headers) head += k + ": " + v + "\r\n";
  head += "\r\n";
  chan_ = std::make_shared<Channel>(weak_from_this());
  sse_q_.push_back(std::move(head));
  sse_pump();
  sse_watch();
  ping_ = std::make_unique<asio::steady_timer>(stream_.get_executor());
  sse_ping();
  res.stream(chan_);
}

void Session::sse_send(std::string data) {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this(), data = std::move(data)]() mutable {
    if (self->closed_ || self->sse_closing_) return;
    self->sse_bytes_ += data.size();
    if (self->sse_bytes_ > kSseQueueLimit) {
      spdlog::warn("API: dropping a slow event-stream client");
      return self->close();
    }
    self->sse_q_.push_back(std::move(data));
    self->sse_pump();
  });
}

void Session::sse_close() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    self->sse_closing_ = true;
    if (self->sse_q_.empty() && !self->sse_writing_) self->close();
  });
}

void Session::sse_pump() {
  if (sse_writing_ || closed_) return;
  if (sse_q_.empty()) {
    if (sse_closing_) close();
    return;
  }
  sse_writing_ = true;
  asio::async_write(stream_.socket(), asio::buffer(sse_q_.front()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->sse_writing_ = false;
                      self->sse_bytes_ -= std::min(self->sse_bytes_, self->sse_q_.front().size());
                      self->sse_q_.pop_front();
                      if (ec) return self->close();
                      self->sse_pump();
                    });
}

// A read that completes only when the client goes away (or sends something, which is ignored).
void Session::sse_watch() {
  stream_.socket().async_read_some(asio::buffer(sink_), [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec) return self->close();
    self->sse_watch();
  });
}

void Session::sse_ping() {
  if (srv_.cfg.sse_ping_ms <= 0) return;
  ping_->expires_after(std::chrono::milliseconds(srv_.cfg.sse_ping_ms));
  ping_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->closed_) return;
    self->sse_q_.push_back(": ping\n\n");
    self->sse_pump();
    self->sse_ping();
  });
}

}  // namespace

ApiConfig ApiConfig::from_env() {
  ApiConfig c;
  c.bind = env_str("ORK_API_BIND", c.bind);
  c.port = static_cast<uint16_t>(env_int("ORK_API_PORT", c.port));
  c.threads = static_cast<int>(std::max<int64_t>(1, env_int("ORK_API_THREADS", c.threads)));
  c.max_body =
      static_cast<size_t>(std::max<int64_t>(1024, env_int("ORK_API_MAX_BODY", static_cast<int64_t>(c.max_body))));
  c.auth = env_str("ORK_API_AUTH", c.auth);
  c.keys_file = env_str("ORK_API_KEYS_FILE", c.keys_file);
  c.static_dir = env_str("ORK_API_STATIC_DIR", c.static_dir);
  c.cache_ms = env_int("ORK_API_CACHE_MS", c.cache_ms);
  return c;
}

struct ApiServer::Impl {
  ApiConfig cfg;
  asio::io_context& engine_io;
  Engine& engine;
  PluginRegistry& plugins;
  std::shared_ptr<EventHub> hub = std::make_shared<EventHub>();
  asio::io_context io;
  std::unique_ptr<Service> service;
  std::unique_ptr<Server> server;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool running = false;

  Impl(asio::io_context& eio, Engine& e, PluginRegistry& p, ApiConfig c)
      : cfg(std::move(c)), engine_io(eio), engine(e), plugins(p) {}

  void accept() {
    acceptor->async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      if (!ec) {
        beast::error_code ignore;
        socket.set_option(tcp::no_delay(true), ignore);
        std::make_shared<Session>(std::move(socket), *server)->run();
      } else {
        spdlog::warn("API accept: {}", ec.message());
      }
      accept();
    });
  }
};

ApiServer::ApiServer(asio::io_context& engine_io, Engine& engine, PluginRegistry& plugins, ApiConfig cfg)
    : impl_(std::make_unique<Impl>(engine_io, engine, plugins, std::move(cfg))) {
  // Engine events reach SSE subscribers and invalidate list caches.
  engine.on_event([hub = impl_->hub](const EngineEvent& ev) { hub->publish(ev.kind, ev.data); });
}

ApiServer::~ApiServer() {
  stop();
}

void ApiServer::start() {
  Impl& m = *impl_;
  bool loopback = is_loopback_address(m.cfg.bind);
  if (m.cfg.auth != "auto" && m.cfg.auth != "on" && m.cfg.auth != "off")
    throw std::runtime_error("API auth must be auto, on or off, got '" + m.cfg.auth + "'");
  if (!loopback && m.cfg.auth == "off")
    throw std::runtime_error("refusing to serve the API on " + m.cfg.bind +
                             " without authentication: auth can be off only on a loopback address");
  if (!loopback) m.cfg.auth = "on";
  m.service = std::make_unique<Service>(m.engine_io, m.io, m.engine, m.plugins, m.cfg, m.hub);
  size_t keys = m.service->keys().active_count();
  if (!loopback && keys == 0)
    throw std::runtime_error("refusing to serve the API on " + m.cfg.bind +
                             " without API keys: create one with `ork-host apikey create --scope admin` (stored in " +
                             m.service->keys().path() + "), or bind to 127.0.0.1");
  m.server = std::make_unique<Server>(*m.service, m.cfg);
  std::string bind = m.cfg.bind == "localhost" ? "127.0.0.1" : m.cfg.bind;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(bind, ec);
  if (ec) throw std::runtime_error("API bind address '" + m.cfg.bind + "' is not an IP address");
  tcp::endpoint ep(addr, m.cfg.port);
  m.acceptor.emplace(m.io);
  m.acceptor->open(ep.protocol(), ec);
  if (!ec) m.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor->bind(ep, ec);
  if (!ec) m.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + bind + ":" + std::to_string(m.cfg.port) + ": " + ec.message() +
                             " (choose another with --port or ORK_API_PORT)");
  m.port = m.acceptor->local_endpoint().port();
  m.accept();
  m.work.emplace(m.io.get_executor());
  for (int i = 0; i < m.cfg.threads; ++i) m.threads.emplace_back([&m] { m.io.run(); });
  m.running = true;
  if (m.cfg.auth == "off" || (m.cfg.auth == "auto" && keys == 0))
    spdlog::warn("API auth is OFF: bound to loopback {} with {}; anyone on this machine can use the API", bind,
                 m.cfg.auth == "off" ? "--auth off" : "no API keys (create one: ork-host apikey create)");
  else
    spdlog::info("API auth on: {} active API key(s) in {}", keys, m.service->keys().path());
  spdlog::info("API listening on {}", url());
}

void ApiServer::stop() {
  Impl& m = *impl_;
  if (!m.running) return;
  m.running = false;
  if (m.service) m.service->shutdown();
  asio::post(m.io, [&m] {
    beast::error_code ec;
    if (m.acceptor) m.acceptor->close(ec);
  });
  m.hub->clear();
  m.work.reset();
  m.io.stop();
  for (auto& t : m.threads) t.join();
  m.threads.clear();
  if (m.server) {
    std::lock_guard lk(m.server->mu);
    m.server->awaiting.clear();
  }
}

uint16_t ApiServer::port() const {
  return impl_->port;
}

std::string ApiServer::url() const {
  std::string host = impl_->cfg.bind == "localhost" ? "127.0.0.1" : impl_->cfg.bind;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(impl_->port);
}

}  // namespace ork::api
