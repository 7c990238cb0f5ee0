// The output a finished ork-worker attempt left in the object store: inside its final status.json when small, else
// in output.json (docs/plugin-abi.md, "Files the worker reads and writes").
#pragma once

#include <optional>
#include <string>

#include "loader/plugin_loader.hpp"

namespace ork::test {

inline std::optional<json> attempt_output(const ObjectProxy& store, const json& status, const std::string& output_key) {
  if (status.is_object() && status.contains("output")) return status["output"];
  return store.get_json(output_key);
}

}  // namespace ork::test
