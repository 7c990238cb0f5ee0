// API tests' tools: a real `ork-host serve` on a free port, and a minimal HTTP/1.1 client over POSIX sockets
// (plain requests, and Server-Sent Events read event by event with deadlines).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "support/test_support.hpp"

namespace ork::test {

using json = nlohmann::json;

inline const std::string kHost = std::string(ORK_BINARY_DIR) + "/bin/ork-host";

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  // The body as JSON (discarded when it is not), parsed once: `for (x : r.j()["runs"])` is safe while r lives.
  const json& j() const {
    if (!parsed_) parsed_ = json::parse(body, nullptr, false);
    return *parsed_;
  }
  std::string code() const {  // error.code of a JSON error body
    const json& b = j();
    return b.is_object() && b.contains("error") ? b["error"].value("code", "") : "";
  }

 private:
  mutable std::optional<json> parsed_;
};

class Socket {
 public:
  explicit Socket(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  void write_all(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      ssize_t n = ::send(fd_, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may close early (413): the response tells
      done += static_cast<size_t>(n);
    }
  }
  // Reads more into buf_; false on EOF, error or timeout.
  bool fill(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char b[16384];
    ssize_t n = ::recv(fd_, b, sizeof b, 0);
    if (n <= 0) return false;
    buf_.append(b, static_cast<size_t>(n));
    return true;
  }
  std::string& buf() { return buf_; }

 private:
  int fd_ = -1;
  std::string buf_;
};

inline std::string request_text(const std::string& method, const std::string& target, const std::string& body,
                                const std::map<std::string, std::string>& headers, bool close) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (close) r += "Connection: close\r\n";
  return r + "\r\n" + body;
}

// Parses one response from the socket (Content-Length or close-delimited).
inline HttpResponse read_response(Socket& s, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  };
  std::string& b = s.buf();
  size_t end;
  while ((end = b.find("\r\n\r\n")) == std::string::npos)
    if (!s.fill(left())) throw std::runtime_error("no response head; got: " + b);
  HttpResponse res;
  std::string head = b.substr(0, end);
  b.erase(0, end + 4);
  size_t sp = head.find(' ');
  res.status = std::stoi(head.substr(sp + 1, 3));
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos < head.size()) {
    size_t next = head.find("\r\n", pos + 2);
    std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string k = line.substr(0, colon), v = line.substr(colon + 1);
      for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      res.headers[k] = v;
    }
    pos = next;
  }
  if (res.headers.count("content-length")) {
    size_t n = std::stoul(res.headers["content-length"]);
    while (b.size() < n)
      if (!s.fill(left())) throw std::runtime_error("short body");
    res.body = b.substr(0, n);
    b.erase(0, n);
  } else {
    while (s.fill(left())) {
    }
    res.body = std::move(b);
    b.clear();
  }
  return res;
}

// One SSE event: its `event:` name and its data lines joined by '\n'.
struct SseEvent {
  std::string event, data;
  json j() const { return json::parse(data, nullptr, false); }
};

// An open event stream. next() returns the next event (comments skipped) or nullopt at the deadline / end.
class SseStream {
 public:
  SseStream(int port, const std::string& target, const std::map<std::string, std::string>& headers = {}) : s_(port) {
    s_.write_all(request_text("GET", target, "", headers, false));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((s_.buf().find("\r\n\r\n")) == std::string::npos)
      if (std::chrono::steady_clock::now() > deadline || !s_.fill(std::chrono::seconds(30)))
        throw std::runtime_error("no event-stream head");
    size_t end = s_.buf().find("\r\n\r\n");
    head_ = s_.buf().substr(0, end);
    s_.buf().erase(0, end + 4);
    status_ = std::stoi(head_.substr(head_.find(' ') + 1, 3));
  }
  int status() const { return status_; }
  const std::string& head() const { return head_; }
  // Waits for the ": ready" comment the server sends once the subscription is in place.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (s_.buf().find(": ready") == std::string::npos && raw_.find(": ready") == std::string::npos)
      if (!s_.fill(left(deadline))) return false;
    return true;
  }
  std::optional<SseEvent> next(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      std::string& b = s_.buf();
      size_t end = b.find("\n\n");
      if (end != std::string::npos) {
        std::string block = b.substr(0, end);
        b.erase(0, end + 2);
        raw_ += block + "\n\n";
        SseEvent ev;
        bool any = false, has_data = false;
        size_t pos = 0;
        while (pos <= block.size()) {
          size_t nl = block.find('\n', pos);
          std::string line = block.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
          if (line.rfind("event: ", 0) == 0) {
            ev.event = line.substr(7);
            any = true;
          } else if (line.rfind("data: ", 0) == 0) {
            if (has_data) ev.data += '\n';
            ev.data += line.substr(6);
            has_data = any = true;
          }
          if (nl == std::string::npos) break;
          pos = nl + 1;
        }
        if (any) return ev;
        continue;
      }
      if (!s_.fill(left(deadline))) return std::nullopt;
    }
  }
  // Next event named `name` whose data satisfies `pred`, skipping others.
  template <class P>
  std::optional<SseEvent> next_where(const std::string& name, P pred,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (auto ev = next(left(deadline)))
      if (ev->event == name && pred(*ev)) return ev;
    return std::nullopt;
  }
  // True when the server closed the stream (after what was buffered).
  bool closed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (s_.fill(left(deadline))) {
    }
    return std::chrono::steady_clock::now() < deadline;
  }

 private:
  static std::chrono::milliseconds left(std::chrono::steady_clock::time_point d) {
    auto l = std::chrono::duration_cast<std::chrono::milliseconds>(d - std::chrono::steady_clock::now());
    return l.count() > 0 ? l : std::chrono::milliseconds(0);
  }
  Socket s_;
  std::string head_, raw_;
  int status_ = 0;
};

// A running `ork-host serve` with its own home; the port is the one it announces ("API listening on ...").
class Server {
 public:
  explicit Server(const std::string& home, const std::string& args = "", const std::string& env = "")
      : home_(home), log_(home + ".serve.log") {
    fs::create_directories(home);
    proc_ = std::make_unique<Process>(
        "exec env ORK_HOME=" + home + " ORK_HEARTBEAT_INTERVAL_MS=200 " + env + " " + kHost + " serve --port 0 " + args,
        log_);
    bool up = eventually(
        [&] {
          std::string out = read_file(log_);
          size_t p = out.find("API listening on http://127.0.0.1:");
          if (p == std::string::npos) return false;
          port_ = std::stoi(out.substr(p + 34));
          return true;
        },
        std::chrono::seconds(30));
    if (!up) throw std::runtime_error("ork-host serve did not start: " + read_file(log_));
  }
  ~Server() {
    if (proc_) {
      proc_->kill_group(SIGINT);
      proc_->wait(std::chrono::seconds(10));
    }
  }
  int port() const { return port_; }
  std::string log() const { return read_file(log_); }
  const std::string& home() const { return home_; }

  HttpResponse call(const std::string& method, const std::string& target, const std::string& body = "",
                    std::map<std::string, std::string> headers = {}) const {
    if (!body.empty() && !headers.count("Content-Type")) headers["Content-Type"] = "application/json";
    if (!key.empty() && !headers.count("Authorization")) headers["Authorization"] = "Bearer " + key;
    Socket s(port_);
    s.write_all(request_text(method, target, body, headers, true));
    return read_response(s);
  }
  HttpResponse get(const std::string& target) const { return call("GET", target); }
  HttpResponse post(const std::string& target, const json& body = json::object()) const {
    return call("POST", target, body.dump());
  }

  std::string key;  // sent as a Bearer token when set

 private:
  std::string home_, log_;
  std::unique_ptr<Process> proc_;
  int port_ = 0;
};

}  // namespace ork::test
