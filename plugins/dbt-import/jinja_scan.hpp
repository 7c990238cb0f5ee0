// Finds the dbt Jinja calls that shape the DAG (ref, source, config, var) and `{% snapshot name %}` blocks in a
// model or snapshot file, without rendering it: `{# #}` comments and `{% raw %}` bodies are skipped.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace ork::dbt {

struct JinjaArg {
  std::string key;       // empty for positional arguments
  nlohmann::json value;  // string, list of strings, bool, number; null when not a literal
};

struct JinjaCall {
  std::string fn;  // ref | source | config | var
  std::vector<JinjaArg> args;
  int line = 0;  // 1-based
  int column = 0;
};

struct SnapshotBlock {
  std::string name;
  int line = 0;
};

struct JinjaScan {
  std::vector<JinjaCall> calls;
  std::vector<SnapshotBlock> snapshots;
  std::string error;  // an unterminated tag or comment ("line N: ..."); the calls before it are kept
};

JinjaScan scan_jinja(std::string_view text);

// The positional argument `i` (or keyword `key`) as a string, "" when absent or not a string.
std::string arg_string(const JinjaCall& c, size_t i, const std::string& key = "");

}  // namespace ork::dbt
