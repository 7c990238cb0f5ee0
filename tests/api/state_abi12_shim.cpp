// A state plugin as one built against ABI 1.2 looks to the host (no list_runs_page): it forwards the 1.2 operations
// to the state plugin library named in its config. Lets the API tests check the fallback for older plugins.
#include <dlfcn.h>
#include <ork/plugin.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace {

struct Shim {
  void* lib = nullptr;
  const ork_plugin_descriptor* d = nullptr;
  ork_plugin_instance* inst = nullptr;
  ~Shim() {
    if (inst) d->destroy(inst);
    if (lib) dlclose(lib);
  }
};

Shim* shim(ork_plugin_instance* self) {
  return reinterpret_cast<Shim*>(self);
}

const ork_state_vtable* inner(Shim* s) {
  return static_cast<const ork_state_vtable*>(s->d->vtable);
}

void set_error(ork_buf* out, const std::string& m) {
  std::string text = nlohmann::json{{"message", m}}.dump();
  out->data = static_cast<char*>(std::malloc(text.size() + 1));
  std::memcpy(out->data, text.c_str(), text.size() + 1);
  out->size = text.size();
}

#define ORK_SHIM_FORWARD(op)                                                           \
  ork_status op(ork_plugin_instance* self, const char* args, size_t n, ork_buf* out) { \
    return inner(shim(self))->op(shim(self)->inst, args, n, out);                      \
  }
ORK_SHIM_FORWARD(put_workflow)
ORK_SHIM_FORWARD(get_workflow)
ORK_SHIM_FORWARD(list_workflows)
ORK_SHIM_FORWARD(delete_workflow)
ORK_SHIM_FORWARD(create_run)
ORK_SHIM_FORWARD(get_run)
ORK_SHIM_FORWARD(list_runs)
ORK_SHIM_FORWARD(update_run)
ORK_SHIM_FORWARD(get_task_runs)
ORK_SHIM_FORWARD(update_task_run)
ORK_SHIM_FORWARD(try_acquire_task)
ORK_SHIM_FORWARD(acquire_lease)
ORK_SHIM_FORWARD(renew_lease)
ORK_SHIM_FORWARD(release_lease)
ORK_SHIM_FORWARD(get_due_schedules)
ORK_SHIM_FORWARD(put_schedule)
ORK_SHIM_FORWARD(claim_schedule)
ORK_SHIM_FORWARD(add_task_runs)

const ork_state_vtable kVtable = {static_cast<uint32_t>(offsetof(ork_state_vtable, list_runs_page)),
                                  put_workflow,
                                  get_workflow,
                                  list_workflows,
                                  delete_workflow,
                                  create_run,
                                  get_run,
                                  list_runs,
                                  update_run,
                                  get_task_runs,
                                  update_task_run,
                                  try_acquire_task,
                                  acquire_lease,
                                  renew_lease,
                                  release_lease,
                                  get_due_schedules,
                                  put_schedule,
                                  claim_schedule,
                                  add_task_runs,
                                  nullptr};  // beyond struct_size: never read

// config: {"library": "/path/libork-state-sqlite.so", "config": {...}}
ork_status create(const char* config_json, const ork_host_services* host, ork_plugin_instance** out, ork_buf* err) {
  auto s = std::make_unique<Shim>();
  nlohmann::json cfg = nlohmann::json::parse(config_json ? config_json : "{}", nullptr, false);
  std::string lib = cfg.is_object() ? cfg.value("library", "") : "";
  s->lib = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  auto entry = s->lib ? reinterpret_cast<ork_plugin_entry_fn>(dlsym(s->lib, ORK_PLUGIN_ENTRY_SYMBOL)) : nullptr;
  if (!entry) {
    set_error(err, "cannot load inner state plugin '" + lib + "'");
    return ORK_ERR_INVALID;
  }
  s->d = entry();
  ork_status st = s->d->create(cfg.value("config", nlohmann::json::object()).dump().c_str(), host, &s->inst, err);
  if (st != ORK_OK) {
    s->inst = nullptr;
    return st;
  }
  *out = reinterpret_cast<ork_plugin_instance*>(s.release());
  return ORK_OK;
}

void destroy(ork_plugin_instance* self) {
  std::unique_ptr<Shim> owned(shim(self));
}

void free_buffer(char* p) {
  std::free(p);  // the inner plugin (plugin.hpp) allocates with malloc too
}

const ork_plugin_descriptor kDescriptor = {1,
                                           2,
                                           sizeof(ork_plugin_descriptor),
                                           ORK_KIND_STATE,
                                           "abi12-shim",
                                           "1.2.0",
                                           &create,
                                           &destroy,
                                           &kVtable,
                                           &free_buffer,
                                           nullptr};

}  // namespace

extern "C" ORK_PLUGIN_EXPORT const ork_plugin_descriptor* ork_plugin_v1(void) {
  return &kDescriptor;
}
