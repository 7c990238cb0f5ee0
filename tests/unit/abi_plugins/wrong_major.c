/* A plugin built for a future ABI 2.0: the host must refuse it, naming both versions. */
#include <ork/plugin.h>

static const ork_plugin_descriptor desc = {
    2, 0, sizeof(ork_plugin_descriptor), ORK_KIND_EXECUTOR, "future", "9.0.0", NULL, NULL, NULL, NULL, NULL};

ORK_PLUGIN_EXPORT const ork_plugin_descriptor* ork_plugin_v1(void) {
  return &desc;
}
