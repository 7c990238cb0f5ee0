// Helpers for StateStore plugin authors: the ABI's record layouts (fields, kinds, nullability, allowed statuses, as
// docs/plugin-abi.md defines them) and its fixed-width timestamp format. Header-only; not part of the C ABI.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <ork/plugin.hpp>
#include <random>
#include <span>
#include <string>
#include <string_view>

namespace ork::records {

// Timestamps cross the ABI as RFC 3339 UTC with milliseconds, fixed width, so they sort as strings.

inline std::string format_time(int64_t ms) {
  int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  int millis = static_cast<int>(ms - secs * 1000);
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

inline bool is_timestamp(std::string_view s) {
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (s.size() != kShape.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (kShape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != kShape[i]) return false;
  }
  return true;
}

// ---- Record layout: one Field per column, in SELECT order.

enum class Kind { Text, Time, Int, Json, Bool };

struct Field {
  std::string_view name;
  Kind kind;
  bool nullable;
};

struct Table {
  std::string_view name;
  std::span<const Field> fields;
  std::span<const std::string_view> statuses;  // allowed values of `status`; empty when the table has none
};

constexpr Field kWorkflowFields[] = {{"id", Kind::Text, false},         {"name", Kind::Text, false},
                                     {"definition", Kind::Json, false}, {"schedule", Kind::Text, true},
                                     {"version", Kind::Text, true},     {"created_at", Kind::Time, false},
                                     {"updated_at", Kind::Time, false}};

constexpr Field kRunFields[] = {{"id", Kind::Text, false},
                                {"workflow_id", Kind::Text, true},
                                {"workflow_name", Kind::Text, false},
                                {"workflow_version", Kind::Text, true},
                                {"status", Kind::Text, false},
                                {"triggered_by", Kind::Text, true},
                                {"input", Kind::Json, true},
                                {"owner", Kind::Text, true},
                                {"lease_expires", Kind::Time, true},
                                {"error", Kind::Json, true},
                                {"started_at", Kind::Time, true},
                                {"finished_at", Kind::Time, true},
                                {"created_at", Kind::Time, false}};

constexpr Field kTaskFields[] = {{"id", Kind::Text, false},           {"run_id", Kind::Text, false},
                                 {"task_name", Kind::Text, false},    {"status", Kind::Text, false},
                                 {"attempt", Kind::Int, false},       {"max_retries", Kind::Int, false},
                                 {"parallel_index", Kind::Int, true}, {"parallel_count", Kind::Int, true},
                                 {"executor", Kind::Text, true},      {"executor_id", Kind::Text, true},
                                 {"input", Kind::Json, true},         {"output", Kind::Json, true},
                                 {"error", Kind::Json, true},         {"not_before", Kind::Time, true},
                                 {"heartbeat_at", Kind::Time, true},  {"dispatched_at", Kind::Time, true},
                                 {"started_at", Kind::Time, true},    {"finished_at", Kind::Time, true},
                                 {"created_at", Kind::Time, false},   {"seq", Kind::Int, false}};

constexpr Field kScheduleFields[] = {{"id", Kind::Text, false},        {"workflow_name", Kind::Text, false},
                                     {"cron_expr", Kind::Text, false}, {"next_run", Kind::Time, false},
                                     {"enabled", Kind::Bool, false},   {"created_at", Kind::Time, false}};

constexpr std::string_view kRunStatuses[] = {"pending", "running", "success", "failed", "cancelled"};
constexpr std::string_view kTaskStatuses[] = {"pending", "dispatched", "running",  "success",
                                              "failed",  "skipped",    "cancelled"};

constexpr Table kWorkflows{"workflows", kWorkflowFields, {}};
constexpr Table kRuns{"runs", kRunFields, kRunStatuses};
constexpr Table kTasks{"task_runs", kTaskFields, kTaskStatuses};
constexpr Table kSchedules{"schedules", kScheduleFields, {}};

// "table.field", for error messages.
inline std::string what(const Table& t, const Field& f) {
  return std::string(t.name) + "." + std::string(f.name);
}

// The field of `t` named `name`, or nullptr.
inline const Field* find_field(const Table& t, std::string_view name) {
  for (const auto& f : t.fields)
    if (f.name == name) return &f;
  return nullptr;
}

// Checks one value for field `f` of `t` (kind, nullability, allowed statuses), INVALID naming the field. `guard`
// values (compare-and-swap expectations) may always be null and any string.
inline void check_value(const Table& t, const Field& f, const json& v, bool guard = false) {
  if (v.is_null()) {
    if (!f.nullable && !guard) throw_invalid(what(t, f) + " may not be null");
    return;
  }
  switch (f.kind) {
    case Kind::Text:
      if (!v.is_string()) throw_invalid(what(t, f) + " must be a string");
      if (!guard && f.name == "status" && !t.statuses.empty()) {
        bool known = false;
        for (auto s : t.statuses) known = known || s == v.get_ref<const std::string&>();
        if (!known) throw_invalid(what(t, f) + ": unknown status '" + v.get<std::string>() + "'");
      }
      return;
    case Kind::Time:
      if (!v.is_string() || !is_timestamp(v.get_ref<const std::string&>()))
        throw_invalid(what(t, f) + " must be an RFC 3339 UTC timestamp like 2026-01-01T00:00:00.000Z, got " + v.dump());
      return;
    case Kind::Int:
      if (!v.is_number_integer()) throw_invalid(what(t, f) + " must be an integer");
      if ((v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)) ||
          (!v.is_number_unsigned() && (v.get<int64_t>() > INT32_MAX || v.get<int64_t>() < INT32_MIN)))
        throw_invalid(what(t, f) + " is out of range (32-bit integer)");
      return;
    case Kind::Bool:
      if (!v.is_boolean()) throw_invalid(what(t, f) + " must be a boolean");
      return;
    case Kind::Json:
      return;
  }
}

// list_runs_page's result from up to limit + 1 runs in page order: the extra run only says that a next page exists.
inline json keyset_page(json runs, int64_t limit) {
  json next = nullptr;
  if (static_cast<int64_t>(runs.size()) > limit) {
    runs.erase(runs.size() - 1);
    if (!runs.empty()) next = {{"created_at", runs.back()["created_at"]}, {"id", runs.back()["id"]}};
  }
  return {{"runs", std::move(runs)}, {"next", std::move(next)}};
}

// A UUID v4 string from 128 random bits (ids a plugin assigns itself).
inline std::string uuid_v4(uint64_t hi, uint64_t lo) {
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

// Argument checks for the operations (ORK_ERR_INVALID naming the field).

inline void require_object(const json& a, const char* op) {
  if (!a.is_object()) throw_invalid(std::string(op) + ": arguments must be a JSON object");
}

inline std::string req_string(const json& a, const char* key) {
  auto it = a.find(key);
  if (it == a.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
    throw_invalid(std::string("'") + key + "' is required and must be a non-empty string");
  return it->get<std::string>();
}

// create_run's arguments, checked: the run object (with `id` and `workflow_name`) and its tasks (empty when absent).
struct CreateRunArgs {
  const json& run;
  std::string run_id;
  const json& tasks;
};
inline CreateRunArgs create_run_args(const json& a) {
  static const json kNoTasks = json::array();
  require_object(a, "create_run");
  if (!a.contains("run") || !a["run"].is_object()) throw_invalid("create_run: 'run' must be an object");
  const json& run = a["run"];
  std::string run_id = req_string(run, "id");
  req_string(run, "workflow_name");
  const json& tasks = a.contains("tasks") && !a["tasks"].is_null() ? a["tasks"] : kNoTasks;
  if (!tasks.is_array()) throw_invalid("create_run: 'tasks' must be an array");
  return {run, std::move(run_id), tasks};
}

inline int64_t opt_int(const json& a, const char* key, int64_t dflt, int64_t min) {
  auto it = a.find(key);
  if (it == a.end() || it->is_null()) return dflt;
  if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
    throw_invalid(std::string("'") + key + "' must be an integer");
  int64_t v = it->get<int64_t>();
  if (v < min) throw_invalid(std::string("'") + key + "' must be >= " + std::to_string(min));
  return v;
}

// The required 'ttl_ms' argument of the lease operations (>= 0).
inline int64_t req_ttl_ms(const json& a) {
  if (!a.contains("ttl_ms")) throw_invalid("'ttl_ms' is required");
  return opt_int(a, "ttl_ms", 0, 0);
}

inline std::string req_time(const json& a, const char* key) {
  auto it = a.find(key);
  if (it == a.end() || !it->is_string() || !is_timestamp(it->get_ref<const std::string&>()))
    throw_invalid(std::string("'") + key + "' must be an RFC 3339 UTC timestamp like 2026-01-01T00:00:00.000Z");
  return it->get<std::string>();
}

// Random UUID v4 strings for rows the host did not name; thread-safe.
class UuidSource {
 public:
  std::string next() {
    std::lock_guard lk(mu_);
    uint64_t hi = rng_(), lo = rng_();
    return uuid_v4(hi, lo);
  }

 private:
  std::mutex mu_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace ork::records
