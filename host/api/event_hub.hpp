// Fans engine status events out to API subscribers (SSE streams, log followers) on any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace ork::api {

struct HubEvent {
  std::string kind;     // "run" | "task"
  nlohmann::json data;  // as EngineEvent::data, without task outputs
  uint64_t seq = 0;     // increasing per hub
  std::string sse;      // the event as SSE text, formatted once for every subscriber
};

class EventHub {
 public:
  // Called on the publishing thread; returning false unsubscribes. Must not block.
  using Fn = std::function<bool(const HubEvent&)>;

  uint64_t subscribe(Fn fn);
  void unsubscribe(uint64_t id);
  void publish(const std::string& kind, const nlohmann::json& data);
  void clear();  // drops every subscriber (shutdown)
  size_t subscribers();
  // Bumped on every published event: list caches compare it.
  uint64_t generation() const { return seq_.load(); }

 private:
  std::mutex mu_;
  std::map<uint64_t, Fn> subs_;
  uint64_t next_id_ = 1;
  std::atomic<uint64_t> seq_{0};
};

// "event: <kind>\nid: <id>\ndata: <json>\n\n" (data split on newlines as SSE requires).
std::string sse_event(const std::string& kind, const std::string& data, uint64_t id = 0);

}  // namespace ork::api
