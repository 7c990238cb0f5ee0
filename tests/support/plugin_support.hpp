// Helpers for tests that call plugins through the loader: the status a call failed with, and the output a finished
// ork-worker attempt left in the object store.
#pragma once

#include <optional>
#include <string>

#include "loader/plugin_loader.hpp"

namespace ork::test {

// The ork_status a plugin call failed with, or ORK_OK.
template <class F>
int code_of(F&& f) {
  try {
    f();
    return ORK_OK;
  } catch (const PluginCallError& e) {
    return e.code();
  }
}

// An attempt's output: inside its final status.json when small, else in output.json (docs/plugin-abi.md, "Files the
// worker reads and writes").
inline std::optional<json> attempt_output(const ObjectProxy& store, const json& status, const std::string& output_key) {
  if (status.is_object() && status.contains("output")) return status["output"];
  return store.get_json(output_key);
}

}  // namespace ork::test
