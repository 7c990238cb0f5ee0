/* Ork plugin ABI: the C boundary between ork-host / ork-worker and plugin shared libraries.
 * Records cross as UTF-8 JSON; memory a plugin returns is freed with its descriptor's free_buffer.
 * History: 1.0 first release; 1.1 appended ork_plugin_descriptor.info_json; 1.2 appended
 * ork_state_vtable.add_task_runs; 1.3 appended ork_state_vtable.list_runs_page; 1.4 appended
 * ork_object_vtable.put_file and get_file (streaming). */
#ifndef ORK_PLUGIN_H
#define ORK_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ORK_ABI_MAJOR 1
#define ORK_ABI_MINOR 4

/* The one symbol every plugin exports. The name is fixed for every ABI version; abi_major says which. */
#define ORK_PLUGIN_ENTRY_SYMBOL "ork_plugin_v1"

#if defined(_WIN32)
#define ORK_PLUGIN_EXPORT __declspec(dllexport)
#else
#define ORK_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

typedef enum ork_plugin_kind {
  ORK_KIND_STATE = 1,
  ORK_KIND_OBJECT = 2,
  ORK_KIND_EXECUTOR = 3,
  ORK_KIND_IMPORTER = 4
} ork_plugin_kind;

/* Result codes. On anything but ORK_OK the out buffer (if any) holds {"message": "..."}. */
typedef enum ork_status {
  ORK_OK = 0,
  ORK_ERR_NOT_FOUND = 1,   /* the record / object does not exist */
  ORK_ERR_CONFLICT = 2,    /* a precondition failed (already exists, CAS lost) */
  ORK_ERR_INVALID = 3,     /* bad arguments or configuration */
  ORK_ERR_UNAVAILABLE = 4, /* backend unreachable or throttled: the call may be retried */
  ORK_ERR_UNSUPPORTED = 5, /* the operation is not implemented by this plugin */
  ORK_ERR_INTERNAL = 6     /* anything else, including exceptions caught at the boundary */
} ork_status;

/* A plugin-allocated byte buffer; release with the descriptor's free_buffer(data). */
typedef struct ork_buf {
  char* data;
  size_t size;
} ork_buf;

typedef enum ork_log_level { ORK_LOG_DEBUG = 0, ORK_LOG_INFO = 1, ORK_LOG_WARN = 2, ORK_LOG_ERROR = 3 } ork_log_level;

/* Services the host lends a plugin instance for its lifetime. Every callback is thread-safe. */
typedef struct ork_host_services {
  uint32_t struct_size;
  void* host_ctx;
  void (*log)(void* host_ctx, int32_t level, const char* message);
  int64_t (*now_ms)(void* host_ctx); /* wall clock, Unix epoch milliseconds */
  /* Push an event (JSON object) to the host, from any thread, e.g. an executor's
   * {"type":"executor.exited","executor_id":"..","exit_code":0}. */
  void (*notify)(void* host_ctx, const char* event_json);
} ork_host_services;

typedef struct ork_plugin_instance ork_plugin_instance; /* opaque, owned by the plugin */

/* Every JSON operation has this shape: JSON arguments in, JSON result (or error) out. */
typedef ork_status (*ork_json_fn)(ork_plugin_instance* self, const char* args_json, size_t args_len, ork_buf* out);

/* StateStore: workflows, runs, task runs, schedules, leases. Argument and result shapes: docs/plugin-abi.md. */
typedef struct ork_state_vtable {
  uint32_t struct_size;
  ork_json_fn put_workflow;
  ork_json_fn get_workflow;
  ork_json_fn list_workflows;
  ork_json_fn delete_workflow;
  ork_json_fn create_run;
  ork_json_fn get_run;
  ork_json_fn list_runs;
  ork_json_fn update_run;
  ork_json_fn get_task_runs;
  ork_json_fn update_task_run;
  ork_json_fn try_acquire_task;
  ork_json_fn acquire_lease;
  ork_json_fn renew_lease;
  ork_json_fn release_lease;
  ork_json_fn get_due_schedules;
  ork_json_fn put_schedule;
  ork_json_fn claim_schedule;
  ork_json_fn add_task_runs; /* since 1.2: {run_id, tasks} -> {} (fan-out instances, atomically) */
  /* since 1.3: {workflow_name?, status?, limit?, after?: {created_at, id}} -> {runs, next} (keyset pages) */
  ork_json_fn list_runs_page;
} ork_state_vtable;

/* ObjectStore: byte objects under '/'-separated keys (runs/{run_id}/{task_id}/spec.json, ...). */
typedef struct ork_object_vtable {
  uint32_t struct_size;
  /* ORK_ERR_NOT_FOUND (with an empty buffer) when the key does not exist. */
  ork_status (*get)(ork_plugin_instance* self, const char* key, ork_buf* out);
  /* opts_json: {"if_none_match": true, "content_type": "..."} (all optional); CONFLICT if it exists. */
  ork_status (*put)(ork_plugin_instance* self, const char* key, const char* data, size_t size, const char* opts_json,
                    ork_buf* err);
  /* Deleting a missing key is OK. */
  ork_status (*del)(ork_plugin_instance* self, const char* key, ork_buf* err);
  /* out: JSON array of keys starting with prefix, sorted. */
  ork_status (*list)(ork_plugin_instance* self, const char* prefix, ork_buf* out);
  /* since 1.4: streaming through local files, in memory bounded by the plugin (not by the object size).
   * put_file: the object's bytes are the contents of the file at `path`; opts as for put.
   * get_file: writes the object to `path`, replacing it only once the whole object arrived; on NOT_FOUND `path` is
   * left as it was. A plugin without streaming returns ORK_ERR_UNSUPPORTED (or leaves these NULL, or is older than
   * 1.4): the host then goes through get/put in memory. */
  ork_status (*put_file)(ork_plugin_instance* self, const char* key, const char* path, const char* opts_json,
                         ork_buf* err);
  ork_status (*get_file)(ork_plugin_instance* self, const char* key, const char* path, ork_buf* err);
} ork_object_vtable;

/* Executor: starts ork-worker somewhere for one task attempt, reports and cancels it. */
typedef struct ork_executor_vtable {
  uint32_t struct_size;
  /* 0: the plugin pushes every state change through host notify; otherwise poll status() this often. */
  uint32_t poll_interval_ms;
  ork_json_fn dispatch; /* ExecutionConfig -> {"executor_id": "..."} */
  ork_json_fn status;   /* {"executor_id"} -> {"state": "pending|running|succeeded|failed|cancelled|unknown", ...} */
  ork_json_fn cancel;   /* {"executor_id", "grace_ms"} -> {} */
} ork_executor_vtable;

/* Importer: turns an external project (e.g. dbt) into workflow task definitions. */
typedef struct ork_importer_vtable {
  uint32_t struct_size;
  ork_json_fn import_tasks; /* {"source": {...}, "base_dir": "..."} -> {"tasks": {name: TaskDefinition}} */
} ork_importer_vtable;

typedef struct ork_plugin_descriptor {
  uint32_t abi_major;   /* must equal the host's ORK_ABI_MAJOR */
  uint32_t abi_minor;   /* may be older than the host's; members are only appended */
  uint32_t struct_size; /* sizeof(ork_plugin_descriptor) the plugin was built with */
  int32_t kind;         /* ork_plugin_kind */
  const char* name;     /* e.g. "sqlite" */
  const char* version;  /* the plugin's own semver */
  /* Creates an instance from its plugins.yaml config block (JSON). On failure *err holds {"message"}. */
  ork_status (*create)(const char* config_json, const ork_host_services* host, ork_plugin_instance** out, ork_buf* err);
  void (*destroy)(ork_plugin_instance* self);
  const void* vtable; /* ork_state_vtable* / ork_object_vtable* / ork_executor_vtable* / ork_importer_vtable* */
  void (*free_buffer)(char* data);
  /* since 1.1: static JSON {"description": "...", "capabilities": [...]} or NULL */
  const char* info_json;
} ork_plugin_descriptor;

typedef const ork_plugin_descriptor* (*ork_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* ORK_PLUGIN_H */
