/* An executor as a plugin built against SDK 1.0 would be: abi_minor 0, a descriptor without info_json, and
 * (as if cancel had been appended later) a vtable that ends before `cancel`. The host must load and use it. */
#include <ork/plugin.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct ork_plugin_instance {
  int dispatched;
};

static struct ork_plugin_instance the_instance;

static void set(ork_buf* out, const char* s) {
  size_t n = strlen(s);
  out->data = malloc(n + 1);
  memcpy(out->data, s, n + 1);
  out->size = n;
}

static ork_status create(const char* cfg, const ork_host_services* host, ork_plugin_instance** out, ork_buf* err) {
  (void)cfg;
  (void)host;
  (void)err;
  the_instance.dispatched = 0;
  *out = &the_instance;
  return ORK_OK;
}

static void destroy(ork_plugin_instance* self) {
  (void)self;
}

static ork_status dispatch(ork_plugin_instance* self, const char* a, size_t n, ork_buf* out) {
  (void)a;
  (void)n;
  self->dispatched++;
  set(out, "{\"executor_id\":\"old-1\"}");
  return ORK_OK;
}

static ork_status status(ork_plugin_instance* self, const char* a, size_t n, ork_buf* out) {
  (void)a;
  (void)n;
  set(out, self->dispatched ? "{\"state\":\"succeeded\",\"exit_code\":0}" : "{\"state\":\"unknown\"}");
  return ORK_OK;
}

static void free_buffer(char* p) {
  free(p);
}

static const ork_executor_vtable vt = {offsetof(ork_executor_vtable, cancel), 100, dispatch, status, NULL};

static const ork_plugin_descriptor desc = {1,
                                           0,
                                           offsetof(ork_plugin_descriptor, info_json),
                                           ORK_KIND_EXECUTOR,
                                           "old",
                                           "1.0.0",
                                           create,
                                           destroy,
                                           &vt,
                                           free_buffer,
                                           NULL};

ORK_PLUGIN_EXPORT const ork_plugin_descriptor* ork_plugin_v1(void) {
  return &desc;
}
