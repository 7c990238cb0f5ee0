#include "api/event_hub.hpp"

#include <vector>

namespace ork::api {

std::string sse_event(const std::string& kind, const std::string& data, uint64_t id) {
  std::string out = "event: " + kind + "\n";
  if (id) out += "id: " + std::to_string(id) + "\n";
  size_t start = 0;
  while (true) {
    size_t nl = data.find('\n', start);
    out += "data: ";
    out.append(data, start, nl == std::string::npos ? std::string::npos : nl - start);
    out += "\n";
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  out += "\n";
  return out;
}

uint64_t EventHub::subscribe(Fn fn) {
  std::lock_guard lk(mu_);
  uint64_t id = next_id_++;
  subs_.emplace(id, std::move(fn));
  return id;
}

void EventHub::unsubscribe(uint64_t id) {
  std::lock_guard lk(mu_);
  subs_.erase(id);
}

void EventHub::clear() {
  std::map<uint64_t, Fn> gone;
  {
    std::lock_guard lk(mu_);
    gone.swap(subs_);
  }
}

size_t EventHub::subscribers() {
  std::lock_guard lk(mu_);
  return subs_.size();
}

void EventHub::publish(const std::string& kind, const nlohmann::json& data) {
  {
    std::lock_guard lk(mu_);
    if (subs_.empty()) {  // nobody listens: only list caches need to know something changed
      ++seq_;
      return;
    }
  }
  HubEvent ev;
  ev.kind = kind;
  ev.data = data;
  ev.data.erase("output");  // outputs can be large: subscribers read them from the store
  ev.seq = ++seq_;
  ev.sse = sse_event(kind, ev.data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), ev.seq);
  std::vector<std::pair<uint64_t, Fn>> subs;
  {
    std::lock_guard lk(mu_);
    subs.assign(subs_.begin(), subs_.end());
  }
  std::vector<uint64_t> done;
  for (auto& [id, fn] : subs)
    if (!fn(ev)) done.push_back(id);
  if (!done.empty()) {
    std::lock_guard lk(mu_);
    for (auto id : done) subs_.erase(id);
  }
}

}  // namespace ork::api
