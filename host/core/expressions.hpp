// `{{ name.path }}` expressions in task input and env: parsing (for load-time checks) and rendering against a scope
// of upstream outputs, run input, context fields and the foreach item.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace ork {

using json = nlohmann::json;

// One `{{ ... }}` occurrence in a string.
struct Expression {
  size_t begin = 0, end = 0;   // [begin, end) of the whole `{{ ... }}` in the string
  std::string text;            // the trimmed inside, e.g. "fetch.rows[0].id"
  std::vector<PathStep> path;  // parsed path; empty when `error` is set
  std::string error;           // why the inside is not a valid path ("" when valid)
  bool is_literal = false;     // `{{ '...' }}` / `{{ "..." }}`: a quoted text, e.g. `{{ '{{' }}` for a literal "{{"
  std::string literal;         // its text
  const std::string& root() const { return path.front().key; }
  std::string source() const { return "{{ " + text + " }}"; }
};

// Every `{{ ... }}` in `s`, valid or not, in order. A `{{` without a closing `}}` is plain text. A quoted inside
// (`{{ '}}' }}`) may hold braces.
std::vector<Expression> find_expressions(const std::string& s);

// Parses the inside of an expression: `root(.key | .N | [N])*`, keys of letters, digits, '_' and '-'.
// Returns false with `error` set when it is not such a path.
bool parse_path(const std::string& text, std::vector<PathStep>& path, std::string& error);

// The fields tasks may name as `{{ ctx.<field> }}` (or bare, `{{ run_id }}`, when no task has that name).
const std::vector<std::string>& context_fields();

// Names an expression may start with besides task names: input (run input), item (foreach), ctx and context.
bool is_reserved_root(const std::string& name);

// A failed expression: unknown name, missing field, index out of range. what() names where and the expression.
class ExpressionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The scope a task's expressions see: `input` = run input, `ctx`/`context` = the context object (plus its fields
// bare, unless a task shadows them), each dependency's output by its name, and `item` when `item` is non-null.
json expression_scope(const json& run_input, const json& upstream, const json& ctx, const json* item);

// Replaces expressions in the strings inside `value`. A string that is exactly one expression takes the JSON value
// it names (any type); other expressions are substituted as text (strings as-is, other values as JSON). Invalid
// expressions (not a path) stay as text. `where` ("input", "env.API_URL") prefixes error messages. Throws
// ExpressionError.
json render(const json& value, const json& scope, const std::string& where);

// render() without a location; kept for the engine's callers and tests.
json resolve_templates(const json& value, const json& scope);

}  // namespace ork
