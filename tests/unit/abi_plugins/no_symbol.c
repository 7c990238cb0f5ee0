/* A shared library that is not an Ork plugin: no ork_plugin_v1 symbol. */
#include <ork/plugin.h>

ORK_PLUGIN_EXPORT int some_other_function(void) {
  return 42;
}
