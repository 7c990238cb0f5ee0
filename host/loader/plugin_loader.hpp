// Loads plugin shared libraries through the C ABI (plugin.h) and wraps them in typed proxies for the host.
#pragma once

#include <ork/plugin.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "loader/plugins_config.hpp"

namespace ork {

using json = nlohmann::json;

// A plugin call that returned an error status; code() is the ork_status.
class PluginCallError : public std::runtime_error {
 public:
  PluginCallError(ork_status code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ork_status code() const noexcept { return code_; }

 private:
  ork_status code_;
};

// A plugin that cannot be loaded (not found, not a plugin, ABI mismatch, wrong kind, create failed).
class PluginLoadError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Receives events a plugin pushes through host notify; called from any thread.
using NotifyFn = std::function<void(const std::string& plugin_name, const json& event)>;

const char* kind_name(int32_t kind);

// One loaded plugin instance: owns the library handle, the descriptor and the instance (destroyed first).
class LoadedPlugin {
 public:
  virtual ~LoadedPlugin();
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;

  const std::string& kind() const { return kind_; }
  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  std::string plugin_name() const { return desc_->name ? desc_->name : ""; }
  std::string version() const { return desc_->version ? desc_->version : ""; }
  // The plugin's static info JSON (ABI >= 1.1), or "" for older plugins.
  std::string info() const;
  std::string abi() const { return std::to_string(desc_->abi_major) + "." + std::to_string(desc_->abi_minor); }

  LoadedPlugin();
  // Loads `spec`, expecting `kind`; throws PluginLoadError naming the file, the symbol and both ABI versions.
  void open(const PluginSpec& spec, int32_t kind, NotifyFn notify);

 protected:
  // Calls a JSON vtable member at byte `offset`; UNSUPPORTED if the plugin's vtable is too small to have it.
  json call(size_t offset, const char* op, const json& args) const;
  const void* vtable() const { return desc_->vtable; }
  uint32_t vtable_size() const { return *static_cast<const uint32_t*>(desc_->vtable); }
  [[noreturn]] void fail(ork_status st, ork_buf& buf, const char* op) const;
  void free_buf(ork_buf& b) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
  const ork_plugin_descriptor* desc_ = nullptr;
  ork_plugin_instance* inst_ = nullptr;
  std::string kind_, name_, path_;
};

class StateProxy : public LoadedPlugin {
 public:
  json put_workflow(const json& a) const { return op(&ork_state_vtable::put_workflow, "put_workflow", a); }
  std::optional<json> get_workflow(const json& a) const {
    return maybe(&ork_state_vtable::get_workflow, "get_workflow", a);
  }
  json list_workflows(const json& a) const { return op(&ork_state_vtable::list_workflows, "list_workflows", a); }
  json delete_workflow(const json& a) const { return op(&ork_state_vtable::delete_workflow, "delete_workflow", a); }
  json create_run(const json& a) const { return op(&ork_state_vtable::create_run, "create_run", a); }
  std::optional<json> get_run(const json& a) const { return maybe(&ork_state_vtable::get_run, "get_run", a); }
  json list_runs(const json& a) const { return op(&ork_state_vtable::list_runs, "list_runs", a); }
  json update_run(const json& a) const { return op(&ork_state_vtable::update_run, "update_run", a); }
  json get_task_runs(const json& a) const { return op(&ork_state_vtable::get_task_runs, "get_task_runs", a); }
  json update_task_run(const json& a) const { return op(&ork_state_vtable::update_task_run, "update_task_run", a); }
  json try_acquire_task(const json& a) const { return op(&ork_state_vtable::try_acquire_task, "try_acquire_task", a); }
  json acquire_lease(const json& a) const { return op(&ork_state_vtable::acquire_lease, "acquire_lease", a); }
  json renew_lease(const json& a) const { return op(&ork_state_vtable::renew_lease, "renew_lease", a); }
  json release_lease(const json& a) const { return op(&ork_state_vtable::release_lease, "release_lease", a); }
  json get_due_schedules(const json& a) const {
    return op(&ork_state_vtable::get_due_schedules, "get_due_schedules", a);
  }
  json put_schedule(const json& a) const { return op(&ork_state_vtable::put_schedule, "put_schedule", a); }
  json add_task_runs(const json& a) const { return op(&ork_state_vtable::add_task_runs, "add_task_runs", a); }
  json claim_schedule(const json& a) const { return op(&ork_state_vtable::claim_schedule, "claim_schedule", a); }
  // ABI >= 1.3; UNSUPPORTED (PluginCallError) from older plugins.
  json list_runs_page(const json& a) const { return op(&ork_state_vtable::list_runs_page, "list_runs_page", a); }

 private:
  json op(ork_json_fn ork_state_vtable::*m, const char* name, const json& a) const;
  std::optional<json> maybe(ork_json_fn ork_state_vtable::*m, const char* name, const json& a) const;
};

class ObjectProxy : public LoadedPlugin {
 public:
  std::optional<std::string> get(const std::string& key) const;
  void put(const std::string& key, std::string_view data, const json& opts = json::object()) const;
  void del(const std::string& key) const;
  std::vector<std::string> list(const std::string& prefix) const;
  // Streaming (ABI >= 1.4) from / to a local file; a plugin without it goes through memory (get/put) instead.
  // get_file returns false when the key does not exist (then `path` is untouched).
  void put_file(const std::string& key, const std::string& path, const json& opts = json::object()) const;
  bool get_file(const std::string& key, const std::string& path) const;
  // True when the plugin streams put_file/get_file itself (ABI >= 1.4, both members set).
  bool streams() const;
  std::optional<json> get_json(const std::string& key) const;
  void put_json(const std::string& key, const json& value) const {
    put(key, value.dump(), {{"content_type", "application/json"}});
  }
};

class ExecutorProxy : public LoadedPlugin {
 public:
  json dispatch(const json& cfg) const { return op(&ork_executor_vtable::dispatch, "dispatch", cfg); }
  json status(const json& a) const { return op(&ork_executor_vtable::status, "status", a); }
  json cancel(const json& a) const { return op(&ork_executor_vtable::cancel, "cancel", a); }
  uint32_t poll_interval_ms() const;
  bool is_default = false;

 private:
  json op(ork_json_fn ork_executor_vtable::*m, const char* name, const json& a) const;
};

class ImporterProxy : public LoadedPlugin {
 public:
  json import_tasks(const json& a) const;
};

// The plugins named in one plugins.yaml: exactly one state and one object store, executors by name, importers.
class PluginRegistry {
 public:
  // Loads every plugin; throws PluginLoadError naming the plugins.yaml entry on the first failure.
  PluginRegistry(const PluginsConfig& cfg, NotifyFn notify);

  StateProxy& state() const { return *state_; }
  ObjectProxy& objects() const { return *objects_; }
  // The executor named `name`, or the default one when name is empty; nullptr if unknown.
  ExecutorProxy* executor(const std::string& name) const;
  const std::map<std::string, std::unique_ptr<ExecutorProxy>>& executors() const { return executors_; }
  ImporterProxy* importer(const std::string& name) const;
  // Runs the importer with that logical name (a workflow's `import: - <name>: ...`); throws when none is configured.
  json import_tasks(const std::string& name, const json& request) const;
  std::vector<const LoadedPlugin*> all() const;
  const PluginsConfig& config() const { return cfg_; }
  // JSON for ORK_OBJECT_STORE: how a worker loads the same object store ({"library","config"}).
  json object_store_ref() const;

 private:
  PluginsConfig cfg_;
  std::unique_ptr<StateProxy> state_;
  std::unique_ptr<ObjectProxy> objects_;
  std::map<std::string, std::unique_ptr<ExecutorProxy>> executors_;
  std::map<std::string, std::unique_ptr<ImporterProxy>> importers_;
  std::string default_executor_;
};

// The importer plugins of one plugins.yaml, each loaded on first use (`validate` needs no other plugin).
class ImporterSet {
 public:
  explicit ImporterSet(PluginsConfig cfg) : cfg_(std::move(cfg)) {}
  json import_tasks(const std::string& name, const json& request);

 private:
  PluginsConfig cfg_;
  std::map<std::string, std::unique_ptr<ImporterProxy>> loaded_;
};

// Loads one plugin of the given kind directly (tests, the worker): `library` as in plugins.yaml.
template <class Proxy>
std::unique_ptr<Proxy> load_plugin(const std::string& kind, const std::string& library, const json& config,
                                   NotifyFn notify = {});

// Resolves a library name: a path (contains '/') as is; otherwise lib<name>.so / <name> on ORK_PLUGIN_PATH,
// then next to the running executable's ../lib. Returns "" when not found.
std::string find_plugin_library(const std::string& library, std::vector<std::string>* searched = nullptr);

}  // namespace ork
