// Header-only C++ wrapper over plugin.h: derive from ork::StateStore / ObjectStore / Executor / Importer and
// export with ORK_STATE_PLUGIN / ORK_OBJECT_PLUGIN / ORK_EXECUTOR_PLUGIN / ORK_IMPORTER_PLUGIN.
#pragma once

#include <ork/plugin.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ork {

using json = nlohmann::json;

// Thrown inside a plugin; becomes the matching ork_status at the C boundary.
class PluginError : public std::runtime_error {
 public:
  PluginError(ork_status code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ork_status code() const noexcept { return code_; }

 private:
  ork_status code_;
};

[[noreturn]] inline void throw_not_found(const std::string& m) {
  throw PluginError(ORK_ERR_NOT_FOUND, m);
}
[[noreturn]] inline void throw_conflict(const std::string& m) {
  throw PluginError(ORK_ERR_CONFLICT, m);
}
[[noreturn]] inline void throw_invalid(const std::string& m) {
  throw PluginError(ORK_ERR_INVALID, m);
}
[[noreturn]] inline void throw_unavailable(const std::string& m) {
  throw PluginError(ORK_ERR_UNAVAILABLE, m);
}
[[noreturn]] inline void throw_unsupported(const std::string& m) {
  throw PluginError(ORK_ERR_UNSUPPORTED, m);
}

// The host's services as seen from a plugin instance.
class HostServices {
 public:
  HostServices() = default;
  explicit HostServices(const ork_host_services* s) : s_(s) {}
  void log(ork_log_level level, const std::string& msg) const {
    if (s_ && s_->log) s_->log(s_->host_ctx, level, msg.c_str());
  }
  int64_t now_ms() const {
    if (s_ && s_->now_ms) return s_->now_ms(s_->host_ctx);
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void notify(const json& event) const {
    if (s_ && s_->notify) s_->notify(s_->host_ctx, event.dump().c_str());
  }

 private:
  const ork_host_services* s_ = nullptr;
};

class PluginBase {
 public:
  virtual ~PluginBase() = default;
};

// Each operation takes and returns the JSON documented in docs/plugin-abi.md.
class StateStore : public PluginBase {
 public:
  virtual json put_workflow(const json& a) = 0;
  virtual json get_workflow(const json& a) = 0;
  virtual json list_workflows(const json& a) = 0;
  virtual json delete_workflow(const json& a) = 0;
  virtual json create_run(const json& a) = 0;
  virtual json get_run(const json& a) = 0;
  virtual json list_runs(const json& a) = 0;
  virtual json update_run(const json& a) = 0;
  virtual json get_task_runs(const json& a) = 0;
  virtual json update_task_run(const json& a) = 0;
  virtual json try_acquire_task(const json& a) = 0;
  virtual json acquire_lease(const json& a) = 0;
  virtual json renew_lease(const json& a) = 0;
  virtual json release_lease(const json& a) = 0;
  virtual json get_due_schedules(const json& a) = 0;
  virtual json put_schedule(const json& a) = 0;
  virtual json claim_schedule(const json& a) = 0;
  virtual json add_task_runs(const json& a) = 0;
  // Since ABI 1.3. Plugins that do not override it answer UNSUPPORTED and the host falls back to list_runs.
  virtual json list_runs_page(const json&) { throw_unsupported("list_runs_page is not implemented"); }
};

class ObjectStore : public PluginBase {
 public:
  virtual std::optional<std::string> get(const std::string& key) = 0;
  virtual void put(const std::string& key, std::string_view data, const json& opts) = 0;
  virtual void del(const std::string& key) = 0;
  virtual std::vector<std::string> list(const std::string& prefix) = 0;
  // Streaming (ABI 1.4): the object from / to a local file in bounded memory. get_file returns false when the key
  // does not exist (leaving `path` untouched). Not overridden: UNSUPPORTED, and the host goes through memory.
  virtual void put_file(const std::string& key, const std::string& path, const json& opts) {
    (void)key, (void)path, (void)opts;
    throw_unsupported("put_file is not implemented by this plugin");
  }
  virtual bool get_file(const std::string& key, const std::string& path) {
    (void)key, (void)path;
    throw_unsupported("get_file is not implemented by this plugin");
  }
};

class Executor : public PluginBase {
 public:
  virtual json dispatch(const json& config) = 0;
  virtual json status(const json& a) = 0;
  virtual json cancel(const json& a) = 0;
};

class Importer : public PluginBase {
 public:
  virtual json import_tasks(const json& a) = 0;
};

namespace detail {

inline void set_buf(ork_buf* out, std::string_view s) {
  if (!out) return;
  out->data = static_cast<char*>(std::malloc(s.size() + 1));
  if (!out->data) {
    out->size = 0;
    return;
  }
  std::memcpy(out->data, s.data(), s.size());
  out->data[s.size()] = '\0';
  out->size = s.size();
}

inline void set_error(ork_buf* out, const std::string& message) {
  set_buf(out, json{{"message", message}}.dump(-1, ' ', false, json::error_handler_t::replace));
}

inline void free_buffer(char* p) {
  std::free(p);
}

template <class F>
ork_status guard(ork_buf* out, F&& f) noexcept {
  if (out) *out = ork_buf{nullptr, 0};
  try {
    f();
    return ORK_OK;
  } catch (const PluginError& e) {
    set_error(out, e.what());
    return e.code();
  } catch (const json::exception& e) {
    set_error(out, std::string("invalid JSON: ") + e.what());
    return ORK_ERR_INVALID;
  } catch (const std::exception& e) {
    set_error(out, e.what());
    return ORK_ERR_INTERNAL;
  } catch (...) {
    set_error(out, "unknown exception");
    return ORK_ERR_INTERNAL;
  }
}

inline std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

template <class Base>
Base* self_as(ork_plugin_instance* self) {
  return static_cast<Base*>(reinterpret_cast<PluginBase*>(self));
}

template <class Base, json (Base::*M)(const json&)>
ork_status json_call(ork_plugin_instance* self, const char* args, size_t n, ork_buf* out) {
  return guard(out, [&] {
    json a = n ? json::parse(args, args + n) : json::object();
    set_buf(out, dump((self_as<Base>(self)->*M)(a)));
  });
}

template <class T>
ork_status create(const char* config_json, const ork_host_services* host, ork_plugin_instance** out, ork_buf* err) {
  return guard(err, [&] {
    json cfg = (config_json && *config_json) ? json::parse(config_json) : json::object();
    std::unique_ptr<PluginBase> p = std::make_unique<T>(cfg, HostServices(host));
    *out = reinterpret_cast<ork_plugin_instance*>(p.release());
  });
}

inline void destroy(ork_plugin_instance* self) {
  std::unique_ptr<PluginBase> owned(reinterpret_cast<PluginBase*>(self));
}

// A plugin may declare `static constexpr const char* kInfo = R"({"description": "..."})";`.
template <class T>
constexpr const char* info_json() {
  if constexpr (requires { T::kInfo; })
    return T::kInfo;
  else
    return nullptr;
}

template <class T>
const ork_plugin_descriptor* make_descriptor(int32_t kind, const char* name, const char* version, const void* vtable) {
  static const ork_plugin_descriptor d{
      ORK_ABI_MAJOR, ORK_ABI_MINOR, sizeof(ork_plugin_descriptor), kind, name, version, &create<T>, &destroy, vtable,
      &free_buffer,  info_json<T>()};
  return &d;
}

template <class T>
const ork_plugin_descriptor* state_descriptor(const char* name, const char* version) {
  using B = StateStore;
  static const ork_state_vtable vt{sizeof(ork_state_vtable),           &json_call<B, &B::put_workflow>,
                                   &json_call<B, &B::get_workflow>,    &json_call<B, &B::list_workflows>,
                                   &json_call<B, &B::delete_workflow>, &json_call<B, &B::create_run>,
                                   &json_call<B, &B::get_run>,         &json_call<B, &B::list_runs>,
                                   &json_call<B, &B::update_run>,      &json_call<B, &B::get_task_runs>,
                                   &json_call<B, &B::update_task_run>, &json_call<B, &B::try_acquire_task>,
                                   &json_call<B, &B::acquire_lease>,   &json_call<B, &B::renew_lease>,
                                   &json_call<B, &B::release_lease>,   &json_call<B, &B::get_due_schedules>,
                                   &json_call<B, &B::put_schedule>,    &json_call<B, &B::claim_schedule>,
                                   &json_call<B, &B::add_task_runs>,   &json_call<B, &B::list_runs_page>};
  return make_descriptor<T>(ORK_KIND_STATE, name, version, &vt);
}

template <class T>
const ork_plugin_descriptor* object_descriptor(const char* name, const char* version) {
  static const ork_object_vtable vt{
      sizeof(ork_object_vtable),
      [](ork_plugin_instance* self, const char* key, ork_buf* out) -> ork_status {
        std::optional<std::string> v;
        ork_status st = guard(out, [&] { v = self_as<ObjectStore>(self)->get(key); });
        if (st != ORK_OK) return st;
        if (!v) return ORK_ERR_NOT_FOUND;
        set_buf(out, *v);
        return ORK_OK;
      },
      [](ork_plugin_instance* self, const char* key, const char* data, size_t size, const char* opts,
         ork_buf* err) -> ork_status {
        return guard(err, [&] {
          json o = (opts && *opts) ? json::parse(opts) : json::object();
          self_as<ObjectStore>(self)->put(key, std::string_view(data ? data : "", size), o);
        });
      },
      [](ork_plugin_instance* self, const char* key, ork_buf* err) -> ork_status {
        return guard(err, [&] { self_as<ObjectStore>(self)->del(key); });
      },
      [](ork_plugin_instance* self, const char* prefix, ork_buf* out) -> ork_status {
        return guard(out, [&] { set_buf(out, dump(json(self_as<ObjectStore>(self)->list(prefix ? prefix : "")))); });
      },
      [](ork_plugin_instance* self, const char* key, const char* path, const char* opts, ork_buf* err) -> ork_status {
        return guard(err, [&] {
          json o = (opts && *opts) ? json::parse(opts) : json::object();
          self_as<ObjectStore>(self)->put_file(key, path ? path : "", o);
        });
      },
      [](ork_plugin_instance* self, const char* key, const char* path, ork_buf* err) -> ork_status {
        bool found = true;
        ork_status st = guard(err, [&] { found = self_as<ObjectStore>(self)->get_file(key, path ? path : ""); });
        return st == ORK_OK && !found ? ORK_ERR_NOT_FOUND : st;
      }};
  return make_descriptor<T>(ORK_KIND_OBJECT, name, version, &vt);
}

template <class T>
constexpr uint32_t poll_interval() {
  if constexpr (requires { T::kPollIntervalMs; })
    return T::kPollIntervalMs;
  else
    return 0;
}

// An executor that cannot push state changes declares `static constexpr uint32_t kPollIntervalMs = N;`.
template <class T>
const ork_plugin_descriptor* executor_descriptor(const char* name, const char* version) {
  using B = Executor;
  static const ork_executor_vtable vt{sizeof(ork_executor_vtable), poll_interval<T>(), &json_call<B, &B::dispatch>,
                                      &json_call<B, &B::status>, &json_call<B, &B::cancel>};
  return make_descriptor<T>(ORK_KIND_EXECUTOR, name, version, &vt);
}

template <class T>
const ork_plugin_descriptor* importer_descriptor(const char* name, const char* version) {
  using B = Importer;
  static const ork_importer_vtable vt{sizeof(ork_importer_vtable), &json_call<B, &B::import_tasks>};
  return make_descriptor<T>(ORK_KIND_IMPORTER, name, version, &vt);
}

}  // namespace detail
}  // namespace ork

#define ORK_DEFINE_PLUGIN_ENTRY_(factory, Class, Name, Version)                   \
  extern "C" ORK_PLUGIN_EXPORT const ork_plugin_descriptor* ork_plugin_v1(void) { \
    return ::ork::detail::factory<Class>(Name, Version);                          \
  }

#define ORK_STATE_PLUGIN(Class, Name, Version) ORK_DEFINE_PLUGIN_ENTRY_(state_descriptor, Class, Name, Version)
#define ORK_OBJECT_PLUGIN(Class, Name, Version) ORK_DEFINE_PLUGIN_ENTRY_(object_descriptor, Class, Name, Version)
#define ORK_EXECUTOR_PLUGIN(Class, Name, Version) ORK_DEFINE_PLUGIN_ENTRY_(executor_descriptor, Class, Name, Version)
#define ORK_IMPORTER_PLUGIN(Class, Name, Version) ORK_DEFINE_PLUGIN_ENTRY_(importer_descriptor, Class, Name, Version)
