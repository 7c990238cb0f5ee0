// Load-time contract checks: the workflow's types compile, every expression names a field its producer declares,
// and each consumer's declared input fields accept what is bound to them (a literal, `{{ producer.field }}`, the
// implicit upstream output, the foreach item).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/model.hpp"

namespace ork {

// Where one task's typed parts sit in the YAML, as key paths from the document root.
struct TaskTypeSources {
  std::vector<std::string> input_type;                         // {"tasks", t, "input_type"}; empty when untyped
  std::vector<std::string> output_type;                        // {"tasks", t, "output"} or "output_type"
  std::map<std::string, std::vector<std::string>> input_keys;  // input key -> {"tasks", t, "input", k} / inputs.k.ref
};

struct TypeProblem {
  std::vector<std::string> path;  // YAML key path of the offending node (may stop at an ancestor)
  std::string message;
};

// `sources` is parallel to wf.tasks. Expects a workflow whose graph is valid (dependencies exist, no cycle).
std::vector<TypeProblem> check_workflow_types(const WorkflowDefinition& wf,
                                              const std::vector<TaskTypeSources>& sources);

// Splits a TypeError path ("types.User.tags[0]") into YAML keys ({"types", "User", "tags", "0"}).
std::vector<std::string> split_type_path(const std::string& path);

}  // namespace ork
