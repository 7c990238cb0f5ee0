// Task logs (GET .../logs, one attempt) and their live following over SSE (follow=true), plus the event stream.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <climits>

#include "api/service.hpp"
#include "loader/plugin_loader.hpp"

namespace ork::api {

namespace asio = boost::asio;

namespace {

bool terminal(const std::string& s) {
  return s == "success" || s == "failed" || s == "cancelled" || s == "skipped";
}

std::string log_key(const std::string& run_id, const std::string& task_id, int64_t attempt) {
  return "runs/" + run_id + "/" + task_id + "/attempt-" + std::to_string(attempt) + ".log";
}

// The head of an event stream's body: the client's reconnection delay and a comment saying it is subscribed.
const char* kReady = "retry: 3000\n: ready\n\n";

// Follows one task's log: re-reads the log object when the engine reports a change of the task and, while the task
// runs, every `poll_ms` (the worker uploads its log at its heartbeat period, so reading faster gains nothing).
// Sends complete lines as `log` events, `attempt` when a retry starts, and `end` (then closes) when the task is done.
class LogFollower : public std::enable_shared_from_this<LogFollower> {
 public:
  LogFollower(asio::io_context& io, PluginRegistry& plugins, std::shared_ptr<EventHub> hub,
              std::shared_ptr<EventChannel> ch, json row, int64_t fixed_attempt, int64_t poll_ms)
      : strand_(asio::make_strand(io)),
        timer_(strand_),
        plugins_(plugins),
        hub_(std::move(hub)),
        ch_(std::move(ch)),
        row_(std::move(row)),
        fixed_(fixed_attempt),
        poll_ms_(std::max<int64_t>(poll_ms, 50)) {
    run_id_ = row_.value("run_id", "");
    task_id_ = row_.value("id", "");
    attempt_ = fixed_ ? fixed_ : row_.value("attempt", int64_t(0));
  }

  void start() {
    std::weak_ptr<LogFollower> weak = weak_from_this();
    sub_ = hub_->subscribe([weak](const HubEvent& ev) {
      auto self = weak.lock();
      if (!self || !self->ch_->is_open()) return false;
      if (ev.kind == "task" && ev.data.value("task_id", "") == self->task_id_) {
        json d = ev.data;
        asio::post(self->strand_, [self, d] {
          for (const char* k : {"status", "attempt", "error"})
            if (d.contains(k)) self->row_[k] = d[k];
          self->check(false);
        });
      }
      return true;
    });
    auto self = shared_from_this();
    asio::post(strand_, [self] { self->check(false); });
  }

 private:
  void stop() {
    done_ = true;
    timer_.cancel();
    hub_->unsubscribe(sub_);
    ch_->close();
  }

  // Sends the new part of the current attempt's log; `final` also sends a last line without its newline.
  void pump(bool final) {
    if (attempt_ <= 0) return;
    std::optional<std::string> text;
    try {
      text = plugins_.objects().get(log_key(run_id_, task_id_, attempt_));
    } catch (const std::exception& e) {
      spdlog::warn("following the log of task {}: {}", task_id_, e.what());
      return;
    }
    if (!text) return;
    if (text->size() < sent_) sent_ = 0;  // rewritten from scratch: start over
    size_t end = text->size();
    if (!final) {
      size_t nl = text->rfind('\n');
      end = nl == std::string::npos ? 0 : nl + 1;  // complete lines only while the attempt runs
    }
    if (end <= sent_) return;
    std::string chunk = text->substr(sent_, end - sent_);
    if (!chunk.empty() && chunk.back() == '\n') chunk.pop_back();
    ch_->send(sse_event("log", chunk));
    sent_ = end;
  }

  void check(bool from_timer) {
    if (done_) return;
    if (!ch_->is_open()) return stop();
    if (from_timer) {
      // No event may come for a run another host drives: the store says how the task is doing.
      try {
        json rows = plugins_.state().get_task_runs({{"run_id", run_id_}})["tasks"];
        for (const auto& t : rows)
          if (t.value("id", "") == task_id_) row_ = t;
      } catch (const std::exception& e) {
        spdlog::warn("following the log of task {}: {}", task_id_, e.what());
      }
    }
    std::string status = row_.value("status", "");
    int64_t latest = row_.value("attempt", int64_t(0));
    if (!fixed_ && latest > attempt_) {
      pump(true);  // the rest of the previous attempt
      attempt_ = latest;
      sent_ = 0;
      ch_->send(sse_event("attempt", dump_json({{"attempt", attempt_}})));
    }
    bool over = terminal(status) || (fixed_ && fixed_ < latest) || (status == "pending" && fixed_ && fixed_ == latest);
    pump(over);
    if (over) {
      ch_->send(sse_event("end", dump_json({{"status", fixed_ && fixed_ < latest ? "retried" : status},
                                            {"attempt", attempt_},
                                            {"error", row_.value("error", json(nullptr))}})));
      return stop();
    }
    timer_.expires_after(std::chrono::milliseconds(poll_ms_));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->check(true);
    });
  }

  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;
  PluginRegistry& plugins_;
  std::shared_ptr<EventHub> hub_;
  std::shared_ptr<EventChannel> ch_;
  json row_;
  int64_t fixed_, poll_ms_;
  std::string run_id_, task_id_;
  int64_t attempt_ = 0;
  size_t sent_ = 0;
  uint64_t sub_ = 0;
  bool done_ = false;
};

}  // namespace

Response Service::task_logs(const Request& r) {
  const std::string& id = r.params.at("id");
  const std::string& name = r.params.at("name");
  int attempt = parse_int_param(r, "attempt", 0, 1, INT_MAX);
  int index = r.has("index") ? parse_int_param(r, "index", 0, 0, INT_MAX) : -1;
  bool follow = parse_bool_param(r, "follow");
  std::string format = r.q("format", "json");
  if (format != "json" && format != "text")
    throw ApiError(400, "invalid_parameter", "format must be json or text", {{"parameter", "format"}});
  json rows;
  try {
    rows = plugins_.state().get_task_runs({{"run_id", id}})["tasks"];
  } catch (const PluginCallError& e) {
    if (e.code() == ORK_ERR_NOT_FOUND) throw ApiError(404, "run_not_found", "no run " + id, {{"id", id}});
    throw;
  }
  std::vector<json> mine;
  for (auto& t : rows)
    if (t.value("task_name", "") == name) mine.push_back(std::move(t));
  if (mine.empty())
    throw ApiError(404, "task_not_found", "run " + id + " has no task '" + name + "'", {{"task", name}});
  json row;
  if (index >= 0) {
    for (auto& t : mine)
      if (t["parallel_index"].is_number_integer() && t["parallel_index"].get<int>() == index) row = std::move(t);
    if (row.is_null())
      throw ApiError(404, "task_not_found", "task '" + name + "' has no instance " + std::to_string(index),
                     {{"task", name}, {"index", index}});
  } else if (mine.size() > 1) {
    throw ApiError(400, "index_required",
                   "task '" + name + "' has " + std::to_string(mine.size()) + " instances: pass index=0.." +
                       std::to_string(mine.size() - 1),
                   {{"task", name}, {"instances", mine.size()}});
  } else {
    row = std::move(mine.front());
  }
  int64_t latest = row.value("attempt", int64_t(0));
  if (attempt > latest)
    throw ApiError(
        404, "attempt_not_found",
        "task '" + name + "' has run " + std::to_string(latest) + " attempt(s); no attempt " + std::to_string(attempt),
        {{"attempts", latest}});
  if (follow) {
    Response res;
    res.content_type = "text/event-stream";
    res.stream = [this, row, attempt](std::shared_ptr<EventChannel> ch) {
      ch->send(kReady);
      std::make_shared<LogFollower>(http_io_, plugins_, hub_, std::move(ch), row, attempt, cfg_.log_poll_ms)->start();
    };
    return res;
  }
  int64_t sel = attempt ? attempt : latest;
  std::string content;
  bool available = false;
  if (sel > 0) {
    if (auto text = plugins_.objects().get(log_key(id, row.value("id", ""), sel))) {
      content = std::move(*text);
      available = true;
    }
  }
  if (format == "text") {
    Response res;
    res.content_type = "text/plain; charset=utf-8";
    res.body = std::move(content);
    return res;
  }
  return json_response(200, {{"run_id", id},
                             {"task_name", name},
                             {"task_id", row["id"]},
                             {"parallel_index", row["parallel_index"]},
                             {"status", row["status"]},
                             {"attempt", sel},
                             {"attempts", latest},
                             {"available", available},
                             {"content", content}});
}

Response Service::events(const Request& r) {
  std::string run = r.q("run"), wf = r.q("workflow");
  Response res;
  res.content_type = "text/event-stream";
  res.stream = [hub = hub_, run, wf](std::shared_ptr<EventChannel> ch) {
    hub->subscribe([ch, run, wf](const HubEvent& ev) {
      if (!ch->is_open()) return false;
      if (!run.empty() && ev.data.value("run_id", "") != run) return true;
      if (!wf.empty() && ev.data.value("workflow_name", "") != wf) return true;
      ch->send(ev.sse);
      return true;
    });
    ch->send(kReady);
  };
  return res;
}

}  // namespace ork::api
