// The LISTEN thread: poll() on the libpq socket and an eventfd, PQconsumeInput + PQnotifies, reconnect with backoff.
#include "pg_listener.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace ork::pg {

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Listener::Listener(const Target& target, std::string channel, std::string schema, Sink sink, LogFn log)
    : target_(target),
      channel_(std::move(channel)),
      schema_(std::move(schema)),
      sink_(std::move(sink)),
      log_(std::move(log)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (wake_.get() < 0) throw PluginError(ORK_ERR_INTERNAL, std::string("eventfd: ") + std::strerror(errno));
  connect();
  thread_ = std::thread([this] { loop(); });
}

Listener::~Listener() {
  uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof one) < 0) {  // cannot fail for a fresh eventfd; nothing else to do
  }
  if (thread_.joinable()) thread_.join();
}

bool Listener::listening() const {
  return up_.load();
}

bool Listener::connect() {
  try {
    auto c = std::make_unique<Conn>(target_);
    c->run("LISTEN " + channel_);
    conn_ = std::move(c);
    up_ = true;
    return true;
  } catch (const std::exception& e) {
    log_(ORK_LOG_WARN, std::string("state-postgres: LISTEN ") + channel_ + " failed: " + e.what());
    return false;
  }
}

void Listener::forward(const char* payload) {
  json ev;
  try {
    ev = json::parse(payload ? payload : "");
  } catch (const json::exception&) {
    log_(ORK_LOG_DEBUG, "state-postgres: ignored a non-JSON notification on " + channel_);
    return;
  }
  if (!ev.is_object()) return;
  auto s = ev.find("schema");
  if (s != ev.end() && *s != schema_) return;  // another store sharing the database
  ev["type"] = "state.changed";
  try {
    sink_(ev);
  } catch (const std::exception& e) {
    log_(ORK_LOG_WARN, std::string("state-postgres: host notify failed: ") + e.what());
  }
}

void Listener::loop() {
  int backoff_ms = 100;
  for (;;) {
    if (!conn_) {
      pollfd w{wake_.get(), POLLIN, 0};
      int n = ::poll(&w, 1, backoff_ms);  // the backoff before the next attempt; the eventfd ends it early
      if (n > 0) return;
      if (!connect()) {
        backoff_ms = std::min(backoff_ms * 2, 5000);
        continue;
      }
      backoff_ms = 100;
      log_(ORK_LOG_INFO, "state-postgres: LISTEN " + channel_ + " re-established on " + target_.display);
      forward(json{{"what", "reconnected"}, {"schema", schema_}}.dump().c_str());
    }
    PGconn* c = conn_->raw();
    pollfd p[2] = {{wake_.get(), POLLIN, 0}, {PQsocket(c), POLLIN, 0}};
    int n = ::poll(p, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log_(ORK_LOG_ERROR, std::string("state-postgres: listener poll: ") + std::strerror(errno));
      return;
    }
    if (p[0].revents) return;
    bool ok = PQconsumeInput(c) == 1;
    while (PGnotify* note = PQnotifies(c)) {
      std::unique_ptr<PGnotify, decltype(&PQfreemem)> owned(note, &PQfreemem);
      forward(note->extra);
    }
    if (!ok || PQstatus(c) != CONNECTION_OK) {
      std::string why = target_.mask(one_line(PQerrorMessage(c)));
      log_(ORK_LOG_WARN, "state-postgres: LISTEN connection to " + target_.display + " lost (" + why +
                             "); reconnecting with backoff");
      conn_.reset();
      up_ = false;
    }
  }
}

}  // namespace ork::pg
