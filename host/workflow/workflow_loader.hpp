// Workflow YAML loader: parses a workflow file into a WorkflowDefinition and validates it, reporting every
// problem at once with file:line:column and the field path.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/model.hpp"

namespace ork {

// One validation problem. line/column are 1-based; 0 when unknown (e.g. the file could not be read).
struct Diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string field;  // dotted path such as "tasks.fetch.timeout"; empty for file-level problems
  std::string message;

  std::string str() const;  // "file:line:column: field: message"
};

// Thrown by the loaders; carries every problem found. what() is all diagnostics joined with '\n'.
class WorkflowError : public std::runtime_error {
 public:
  explicit WorkflowError(std::vector<Diagnostic> d);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

// Expands one `import:` entry: (importer name = the entry's first key, {"source": entry, "base_dir": dir}) →
// {"tasks": {name: task fields as YAML-JSON}}; throws with one problem per line. ork-host calls the importer plugin
// of that logical name from plugins.yaml (PluginRegistry::import_tasks).
using ImportFn = std::function<json(const std::string& importer, const json& request)>;

// Loads and validates a workflow file. base_dir is the file's directory (absolute); `file:`/`config_file:` must exist.
// `import:` entries are expanded through `importer` first; without one they are only kept in `imports` (tools that
// need no tasks from them; ork-host always passes its importer plugins).
WorkflowDefinition load_workflow_file(const std::string& path, const ImportFn& importer = {});

// Loads and validates YAML text. `filename` only labels diagnostics. When base_dir is non-empty, `file:` and
// `config_file:` are resolved against it and must exist; an empty base_dir skips those checks.
WorkflowDefinition load_workflow_string(const std::string& yaml, const std::string& filename,
                                        const std::string& base_dir, const ImportFn& importer = {});

// Duration in whole seconds from a YAML scalar: an integer (seconds) or a string such as "30s", "5m", "1h30m",
// "500ms" (rounded up to 1s). Returns nullopt when the node is not a valid duration; may return 0 or negatives
// for plain integers so callers can report range errors precisely.
std::optional<int> parse_duration_seconds(const YAML::Node& node);

// Same for duration text only: "90", "30s", "1h30m", "1d", "250ms". Negative values are rejected.
std::optional<int> parse_duration_seconds(const std::string& text);

// Task names with dependencies first; among ready tasks, file order wins. Throws std::invalid_argument on a
// cycle or an unknown dependency (validated workflows have neither).
std::vector<std::string> topological_order(const WorkflowDefinition& wf);

}  // namespace ork
