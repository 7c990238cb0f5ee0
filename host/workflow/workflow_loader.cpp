// Workflow YAML loader: walks the yaml-cpp tree once, fills WorkflowDefinition and collects every diagnostic.
#include "workflow_loader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <ork/suggest.hpp>
#include <queue>
#include <set>
#include <sstream>
#include <string_view>
#include <tuple>

#include "core/expressions.hpp"
#include "core/secrets.hpp"
#include "scheduler/cron.hpp"
#include "workflow/type_check.hpp"

namespace ork {

namespace fs = std::filesystem;

std::string Diagnostic::str() const {
  std::string s = file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
  if (!field.empty()) s += field + ": ";
  return s + message;
}

namespace {

std::string join_diagnostics(const std::vector<Diagnostic>& d) {
  std::string out;
  for (const auto& x : d) {
    if (!out.empty()) out += '\n';
    out += x.str();
  }
  return out;
}

}  // namespace

WorkflowError::WorkflowError(std::vector<Diagnostic> d)
    : std::runtime_error(join_diagnostics(d)), diagnostics_(std::move(d)) {}

namespace {

const std::vector<std::string> kTopFields = {"name", "schedule", "concurrency", "import", "types", "env_file", "tasks"};
const std::vector<std::string> kTaskFields = {
    "executor",   "worker",  "file",        "config_file",     "command",     "function", "image",
    "input",      "inputs",  "input_type",  "depends_on",      "timeout",     "retries",  "retry_delay",
    "parallel",   "foreach", "concurrency", "resources",       "env",         "env_file", "secrets",
    "on_failure", "output",  "output_type", "validate_output", "description", "meta"};

// ---- Small lexical matchers (hand-written: std::regex trips GCC 12's -Wmaybe-uninitialized at -O2) ----

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_word(char c) {
  return is_alpha(c) || is_digit(c) || c == '_';
}

// Non-empty and every character satisfies `ok`.
template <typename Pred>
bool all_chars(std::string_view s, Pred ok) {
  return !s.empty() && std::all_of(s.begin(), s.end(), ok);
}

bool is_digits(std::string_view s) {
  return all_chars(s, is_digit);
}
bool is_workflow_name(std::string_view s) {  // [A-Za-z0-9_.-]+
  return all_chars(s, [](char c) { return is_word(c) || c == '.' || c == '-'; });
}
bool is_task_name(std::string_view s) {  // [A-Za-z0-9_-]+
  return all_chars(s, [](char c) { return is_word(c) || c == '-'; });
}
bool is_env_key(std::string_view s) {  // [A-Za-z_][A-Za-z0-9_]*
  return all_chars(s, is_word) && !is_digit(s[0]);
}

// [-+]?[0-9]+
bool is_decimal_int(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return is_digits(s);
}

// 0x[0-9a-fA-F]+ | 0o[0-7]+
bool is_radix_int(std::string_view s) {
  if (s.size() < 3 || s[0] != '0') return false;
  std::string_view body = s.substr(2);
  if (s[1] == 'x') return all_chars(body, [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
  if (s[1] == 'o') return all_chars(body, [](char c) { return c >= '0' && c <= '7'; });
  return false;
}

// Skips a run of digits; returns how many were skipped.
size_t skip_digits(std::string_view s, size_t& i) {
  size_t start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  return i - start;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?  (YAML 1.2 core float, without .inf/.nan)
bool is_float(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t whole = skip_digits(s, i);
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t frac = skip_digits(s, i);
    if (whole == 0 && frac == 0) return false;
  } else if (whole == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (skip_digits(s, i) == 0) return false;
  }
  return i == s.size();
}

// [0-9]+(\.[0-9]+)? | \.[0-9]+  (unsigned decimal, for CPU cores)
bool is_unsigned_decimal(std::string_view s) {
  size_t i = 0;
  size_t whole = skip_digits(s, i);
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (skip_digits(s, i) == 0) return false;
  } else if (whole == 0) {
    return false;
  }
  return i == s.size();
}

// Splits on '.'; every part must be a task-name-like word. Returns {} when malformed.
std::vector<std::string> dotted_parts(std::string_view s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!is_task_name(part)) return {};
    parts.emplace_back(part);
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

// ---- YAML scalar typing (YAML 1.2 core schema; quoted scalars are always strings) ----

enum class Kind { Null, Bool, Int, Float, String, Sequence, Map };

Kind kind_of(const YAML::Node& n) {
  if (n.IsNull()) return Kind::Null;
  if (n.IsSequence()) return Kind::Sequence;
  if (n.IsMap()) return Kind::Map;
  // "?" = plain scalar, resolved by content; "!" = quoted or block scalar; other explicit tags (except the core
  // schema's !!int, !!float, !!bool) are strings.
  const std::string& tag = n.Tag();
  static const std::string core = "tag:yaml.org,2002:";
  if (tag != "?" && (tag.rfind(core, 0) != 0 || tag == core + "str")) return Kind::String;
  const std::string& s = n.Scalar();
  if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") return Kind::Bool;
  if (is_decimal_int(s) || is_radix_int(s)) return Kind::Int;
  if (is_float(s)) return Kind::Float;
  return Kind::String;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Null:
      return "null";
    case Kind::Bool:
      return "a boolean";
    case Kind::Int:
      return "an integer";
    case Kind::Float:
      return "a number";
    case Kind::String:
      return "a string";
    case Kind::Sequence:
      return "a list";
    case Kind::Map:
      return "a map";
  }
  return "?";
}

// Short description of what was found, for "expected X, got Y" messages.
std::string got(const YAML::Node& n) {
  Kind k = kind_of(n);
  if (k == Kind::Null || k == Kind::Sequence || k == Kind::Map) return kind_name(k);
  return std::string(kind_name(k)) + " '" + n.Scalar() + "'";
}

std::optional<int64_t> parse_int64(const std::string& s) {
  int64_t v = 0;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  int base = 10;
  if (!s.empty() && s[0] == '+') ++b;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    base = s[1] == 'x' ? 16 : 8;
    b += 2;
  }
  auto [p, ec] = std::from_chars(b, e, v, base);
  if (ec != std::errc() || p != e) return std::nullopt;
  return v;
}

bool is_bool_true(const std::string& s) {
  return s == "true" || s == "True" || s == "TRUE";
}

// " (did you mean 'x'?)" for the closest candidate within edit distance 2 (and at most half the word), else "".
std::string suggest(const std::string& word, const std::vector<std::string>& candidates) {
  return did_you_mean(word, candidates);
}

// ---- Diagnostics collection ----

class Ctx {
 public:
  explicit Ctx(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& m, const std::string& field, const std::string& msg) {
    Diagnostic d{file_, 0, 0, field, msg};
    if (!m.is_null()) {
      d.line = m.line + 1;
      d.column = m.column + 1;
    }
    diags_.push_back(std::move(d));
  }
  void error(const YAML::Node& at, const std::string& field, const std::string& msg) { error(at.Mark(), field, msg); }

  const std::string& file() const { return file_; }
  std::vector<Diagnostic>& diags() { return diags_; }

 private:
  std::string file_;
  std::vector<Diagnostic> diags_;
};

// One key/value pair of a YAML map. `at()` is where value errors point (the key when the value is empty).
struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
  YAML::Mark at() const { return value.IsNull() ? key_node.Mark() : value.Mark(); }
};

std::string join_path(const std::string& base, const std::string& key) {
  return base.empty() ? key : base + "." + key;
}

// Lists a map's entries in file order, reporting non-scalar keys, duplicates and (if `allowed` is given) unknown
// keys. Only the first of duplicated keys is returned.
std::vector<Entry> entries(const YAML::Node& map, const std::string& path, Ctx& ctx,
                           const std::vector<std::string>* allowed, const char* what = "field") {
  std::vector<Entry> out;
  std::map<std::string, YAML::Mark> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    // Copies: yaml-cpp's operator-> returns a temporary proxy, so references into it would dangle.
    const YAML::Node k = it->first;
    const YAML::Node v = it->second;
    if (!k.IsScalar()) {
      ctx.error(k, path, std::string("expected a string key, got ") + kind_name(kind_of(k)));
      continue;
    }
    const std::string key = k.Scalar();
    const std::string field = join_path(path, key);
    if (auto s = seen.find(key); s != seen.end()) {
      ctx.error(k, field,
                std::string("duplicate ") + what + " '" + key + "' (first defined at line " +
                    std::to_string(s->second.line + 1) + ")");
      continue;
    }
    seen.emplace(key, k.Mark());
    if (allowed && std::find(allowed->begin(), allowed->end(), key) == allowed->end()) {
      ctx.error(k, field, "unknown " + std::string(what) + " '" + key + "'" + suggest(key, *allowed));
      continue;
    }
    out.push_back({key, k, v});
  }
  return out;
}

const Entry* get(const std::vector<Entry>& es, const std::string& key) {
  for (const auto& e : es) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

// ---- Value conversions ----

json to_json_value(const YAML::Node& n, const std::string& path, Ctx& ctx) {
  switch (kind_of(n)) {
    case Kind::Null:
      return nullptr;
    case Kind::Bool:
      return is_bool_true(n.Scalar());
    case Kind::Int: {
      if (auto v = parse_int64(n.Scalar())) return *v;
      return std::strtod(n.Scalar().c_str(), nullptr);  // beyond int64: keep as a double
    }
    case Kind::Float:
      return std::strtod(n.Scalar().c_str(), nullptr);
    case Kind::String:
      return n.Scalar();
    case Kind::Sequence: {
      json arr = json::array();
      size_t i = 0;
      for (const auto& item : n) arr.push_back(to_json_value(item, path + "[" + std::to_string(i++) + "]", ctx));
      return arr;
    }
    case Kind::Map: {
      json obj = json::object();
      for (const auto& e : entries(n, path, ctx, nullptr, "key"))
        obj[e.key] = to_json_value(e.value, join_path(path, e.key), ctx);
      return obj;
    }
  }
  return nullptr;
}

// A string-typed scalar (quoted, or plain text that is not a number/bool/null).
std::optional<std::string> expect_string(const Entry& e, const std::string& field, Ctx& ctx, bool allow_empty = false) {
  if (kind_of(e.value) != Kind::String) {
    ctx.error(e.at(), field, "expected a string, got " + got(e.value));
    return std::nullopt;
  }
  if (!allow_empty && e.value.Scalar().empty()) {
    ctx.error(e.at(), field, "must not be empty");
    return std::nullopt;
  }
  return e.value.Scalar();
}

// Free text: any non-empty scalar, kept verbatim (so `command: 5` or `LEVEL: 1.0` keep their spelling).
std::optional<std::string> expect_text(const Entry& e, const std::string& field, Ctx& ctx, bool allow_empty) {
  if (!e.value.IsScalar()) {
    ctx.error(e.at(), field, "expected a string, got " + got(e.value));
    return std::nullopt;
  }
  if (!allow_empty && e.value.Scalar().empty()) {
    ctx.error(e.at(), field, "must not be empty");
    return std::nullopt;
  }
  return e.value.Scalar();
}

// An integer >= min that fits in int.
std::optional<int> expect_int(const Entry& e, const std::string& field, Ctx& ctx, int min) {
  if (kind_of(e.value) != Kind::Int) {
    ctx.error(e.at(), field, "expected an integer, got " + got(e.value));
    return std::nullopt;
  }
  auto v = parse_int64(e.value.Scalar());
  if (!v || *v > INT_MAX || *v < INT_MIN) {
    ctx.error(e.at(), field, "integer out of range: " + e.value.Scalar());
    return std::nullopt;
  }
  if (*v < min) {
    ctx.error(e.at(), field, "must be >= " + std::to_string(min) + ", got " + std::to_string(*v));
    return std::nullopt;
  }
  return static_cast<int>(*v);
}

std::optional<int> expect_duration(const Entry& e, const std::string& field, Ctx& ctx, int min) {
  Kind k = kind_of(e.value);
  auto v = (k == Kind::Int || k == Kind::String) ? parse_duration_seconds(e.value) : std::nullopt;
  if (!v) {
    ctx.error(e.at(), field,
              "expected a duration (integer seconds or text like 30s, 5m, 1h30m, 500ms), got " + got(e.value));
    return std::nullopt;
  }
  if (*v < min) {
    ctx.error(e.at(), field, std::string("must be ") + (min == 1 ? "> 0" : ">= 0") + ", got " + e.value.Scalar());
    return std::nullopt;
  }
  return v;
}

std::optional<bool> expect_bool(const Entry& e, const std::string& field, Ctx& ctx) {
  if (kind_of(e.value) != Kind::Bool) {
    ctx.error(e.at(), field, "expected true or false, got " + got(e.value));
    return std::nullopt;
  }
  return is_bool_true(e.value.Scalar());
}

bool expect_map(const Entry& e, const std::string& field, Ctx& ctx) {
  if (e.value.IsMap()) return true;
  ctx.error(e.at(), field, "expected a map, got " + got(e.value));
  return false;
}

// CPU: integer cores (< 100) or millicores (>= 100); decimal cores (0.5); or text "500m" / "2" / "1.5".
std::optional<int64_t> parse_cpu(const YAML::Node& n) {
  Kind k = kind_of(n);
  if (k != Kind::Int && k != Kind::Float && k != Kind::String) return std::nullopt;
  std::string s = n.Scalar();
  if (k == Kind::Int) {
    auto v = parse_int64(s);
    if (!v || *v <= 0 || *v > INT64_C(1) << 40) return std::nullopt;
    return *v < 100 ? *v * 1000 : *v;
  }
  bool millis = k == Kind::String && !s.empty() && s.back() == 'm';
  if (millis) {
    s.pop_back();
    if (!is_digits(s)) return std::nullopt;
    auto v = parse_int64(s);
    if (!v || *v <= 0) return std::nullopt;
    return *v;
  }
  if (!is_unsigned_decimal(s)) return std::nullopt;
  double cores = std::strtod(s.c_str(), nullptr);
  if (cores <= 0 || cores > 1e9) return std::nullopt;
  return static_cast<int64_t>(std::ceil(cores * 1000 - 1e-9));
}

// Memory in MiB: plain integer = MiB; text "512Mi", "4Gi", "1G", "256M", "64Ki", "1Ti" (decimal units converted
// exactly and rounded up to whole MiB).
std::optional<int64_t> parse_memory_mb(const YAML::Node& n) {
  Kind k = kind_of(n);
  if (k != Kind::Int && k != Kind::String) return std::nullopt;
  const std::string& s = n.Scalar();
  size_t i = 0;
  skip_digits(s, i);
  const std::string number = s.substr(0, i);
  const std::string unit = s.substr(i);
  static const std::set<std::string> units = {"", "Ki", "Mi", "Gi", "Ti", "K", "M", "G", "T"};
  if (number.empty() || !units.count(unit)) return std::nullopt;
  auto v = parse_int64(number);
  if (!v || *v <= 0 || *v > INT64_C(1) << 40) return std::nullopt;
  const long double mib = 1024.0L * 1024.0L;
  long double bytes = 0;
  if (unit.empty() || unit == "Mi") return *v;
  if (unit == "Ki") bytes = *v * 1024.0L;
  if (unit == "Gi") return *v * 1024;
  if (unit == "Ti") return *v * 1024 * 1024;
  if (unit == "K") bytes = *v * 1e3L;
  if (unit == "M") bytes = *v * 1e6L;
  if (unit == "G") bytes = *v * 1e9L;
  if (unit == "T") bytes = *v * 1e12L;
  return static_cast<int64_t>(std::ceil(bytes / mib));
}

// ---- Cron (syntax, zone and "never fires" checks by the scheduler's parser) ----

// Returns "" when valid, else a message naming the field and the offending text.
std::string check_cron(const std::string& expr) {
  try {
    CronExpr::parse(expr);
    return "";
  } catch (const CronError& e) {
    return e.what();
  }
}

// ---- YAML positions ----

// The mark of the node at `path` (map keys; list indexes as digits), or of the deepest ancestor that exists. An
// empty value points at its key.
YAML::Mark mark_at(const YAML::Node& root, const std::vector<std::string>& path) {
  YAML::Node cur;
  cur.reset(root);
  YAML::Mark best = root.Mark();
  for (const auto& k : path) {
    bool found = false;
    YAML::Node next;
    if (cur.IsMap()) {
      for (auto it = cur.begin(); it != cur.end(); ++it) {
        const YAML::Node key = it->first;
        if (key.IsScalar() && key.Scalar() == k) {
          next.reset(it->second);
          best = next.IsNull() ? key.Mark() : next.Mark();
          found = true;
          break;
        }
      }
    } else if (cur.IsSequence() && is_digits(k) && k.size() < 9 && std::stoul(k) < cur.size()) {
      next.reset(cur[std::stoul(k)]);
      best = next.Mark();
      found = true;
    }
    if (!found) break;
    cur.reset(next);
  }
  return best;
}

std::string path_text(const std::vector<std::string>& path) {
  std::string out;
  for (const auto& k : path) {
    if (is_digits(k) && !out.empty())
      out += "[" + k + "]";
    else
      out += (out.empty() ? "" : ".") + k;
  }
  return out;
}

// ---- Tasks ----

// Side information about one task that the model does not keep: marks of fields for graph diagnostics.
struct TaskMarks {
  YAML::Mark depends_on;        // the depends_on value, or the task name when absent
  std::vector<YAML::Mark> dep;  // per depends_on entry (implicit ones get the mark of what caused them)
  std::vector<bool> implicit;   // per depends_on entry: added by foreach/parallel/inputs refs and expressions
  TaskTypeSources types;        // where the typed parts are, for contract diagnostics
};

// A `task.field` reference found while parsing, checked once all task names are known.
struct PendingRef {
  size_t task;
  std::string target;
  std::string field;  // e.g. tasks.x.foreach
  YAML::Mark mark;
  std::string what;  // "foreach", "parallel", "inputs.a"
};

class Parser {
 public:
  Parser(Ctx& ctx, std::string base_dir, std::set<std::string> imported = {}, bool imports_failed = false)
      : ctx_(ctx), base_dir_(std::move(base_dir)), imported_(std::move(imported)), imports_failed_(imports_failed) {}

  WorkflowDefinition parse(const YAML::Node& root) {
    WorkflowDefinition wf;
    wf.base_dir = base_dir_;
    if (!root.IsMap()) {
      ctx_.error(root.IsNull() ? YAML::Mark() : root.Mark(), "",
                 root.IsNull() ? "workflow is empty; expected a map with 'name' and 'tasks'"
                               : "expected a map with 'name' and 'tasks', got " + got(root));
      return wf;
    }
    auto es = entries(root, "", ctx_, &kTopFields);
    if (const Entry* e = get(es, "name")) {
      if (auto s = expect_string(*e, "name", ctx_)) {
        if (!is_workflow_name(*s)) {
          ctx_.error(e->at(), "name", "invalid workflow name '" + *s + "' (allowed: letters, digits, '_', '.', '-')");
        }
        wf.name = *s;
      }
    } else {
      ctx_.error(root, "name", "missing required field 'name'");
    }
    if (const Entry* e = get(es, "schedule")) {
      if (auto s = expect_string(*e, "schedule", ctx_)) {
        if (auto msg = check_cron(*s); !msg.empty()) ctx_.error(e->at(), "schedule", msg);
        wf.schedule = *s;
      }
    }
    if (const Entry* e = get(es, "concurrency")) wf.concurrency = expect_int(*e, "concurrency", ctx_, 1);
    if (const Entry* e = get(es, "import")) parse_imports(*e, wf);
    if (const Entry* e = get(es, "types")) {
      if (expect_map(*e, "types", ctx_)) wf.types = to_json_value(e->value, "types", ctx_);
    }
    if (const Entry* e = get(es, "env_file")) wf.env_file = parse_env_file(*e, "env_file");
    if (const Entry* e = get(es, "tasks")) {
      parse_tasks(*e, wf);
    } else if (!imports_failed_) {
      ctx_.error(root, "tasks", "missing required field 'tasks'");
    }
    return wf;
  }

 private:
  void parse_imports(const Entry& e, WorkflowDefinition& wf) {
    if (!e.value.IsSequence()) {
      ctx_.error(e.at(), "import", "expected a list of maps (e.g. '- dbt: ./path'), got " + got(e.value));
      return;
    }
    size_t i = 0;
    for (const auto& item : e.value) {
      const std::string field = "import[" + std::to_string(i++) + "]";
      if (!item.IsMap() || item.size() == 0) {
        ctx_.error(item, field, "expected a map such as '{dbt: ./path}', got " + got(item));
        continue;
      }
      wf.imports.push_back(to_json_value(item, field, ctx_));
    }
  }

  void parse_tasks(const Entry& e, WorkflowDefinition& wf) {
    if (!e.value.IsMap()) {
      ctx_.error(e.at(), "tasks", "expected a map of task name to task, got " + got(e.value));
      return;
    }
    if (e.value.size() == 0) {
      ctx_.error(e.at(), "tasks", "must define at least one task");
      return;
    }
    for (const auto& te : entries(e.value, "tasks", ctx_, nullptr, "task")) {
      const std::string path = "tasks." + te.key;
      if (!is_task_name(te.key) && !imported_.count(te.key)) {
        ctx_.error(te.key_node, path,
                   "invalid task name '" + te.key + "' (allowed: letters, digits, '_', '-'" +
                       (te.key.find('.') != std::string::npos ? "; dotted names only for imported tasks, and no import "
                                                                "provides this one)"
                                                              : ")"));
      }
      if (!te.value.IsMap()) {
        ctx_.error(te.at(), path, "expected a map of task fields, got " + got(te.value));
        continue;
      }
      TaskDefinition t;
      TaskMarks marks;
      t.name = te.key;
      t.loc = {ctx_.file(), te.key_node.Mark().line + 1, te.key_node.Mark().column + 1};
      marks.depends_on = te.key_node.Mark();
      wf.tasks.push_back(std::move(t));
      marks_.push_back(std::move(marks));
      parse_task(te, wf.tasks.back(), marks_.back());
    }
  }

  void parse_task(const Entry& te, TaskDefinition& t, TaskMarks& marks) {
    const std::string path = "tasks." + te.key;
    const size_t index = marks_.size() - 1;
    auto f = [&](const char* k) { return path + "." + k; };
    auto es = entries(te.value, path, ctx_, &kTaskFields);

    auto str_field = [&](const char* key, std::optional<std::string>& out) {
      if (const Entry* e = get(es, key)) out = expect_text(*e, f(key), ctx_, false);
    };
    str_field("file", t.file);
    str_field("config_file", t.config_file);
    if (const Entry* e = get(es, "command"); e && e->value.IsSequence())
      parse_command_list(*e, f("command"), t);
    else
      str_field("command", t.command);
    str_field("function", t.function);
    str_field("image", t.image);

    if (const Entry* e = get(es, "executor")) {
      if (auto s = expect_string(*e, f("executor"), ctx_)) {
        if (!is_workflow_name(*s)) {
          ctx_.error(e->at(), f("executor"), "invalid executor name '" + *s + "'");
        }
        t.executor = *s;
      }
    } else if (t.image) {
      t.executor = "container";
    } else if (t.command || !t.command_args.empty()) {
      t.executor = "shell";
    } else {
      ctx_.error(te.key_node, f("executor"),
                 "missing required field 'executor' (optional only when 'image' or 'command' is set)");
    }
    if (const Entry* e = get(es, "worker")) {
      if (auto s = expect_string(*e, f("worker"), ctx_)) t.worker = *s;
    }
    if (const Entry* e = get(es, "description")) {
      if (auto s = expect_string(*e, f("description"), ctx_, true)) t.description = *s;
    }
    if (const Entry* e = get(es, "meta")) {
      if (expect_map(*e, f("meta"), ctx_)) t.meta = to_json_value(e->value, f("meta"), ctx_);
    }

    if (const Entry* e = get(es, "input")) {
      if (kind_of(e->value) == Kind::String) {  // `input: TypeName` declares the input type
        t.input_type = e->value.Scalar();
        marks.types.input_type = {"tasks", t.name, "input"};
      } else if (!e->value.IsNull() && expect_map(*e, f("input"), ctx_)) {
        t.input = to_json_value(e->value, f("input"), ctx_);
        for (const auto& [k, v] : t.input.items()) marks.types.input_keys[k] = {"tasks", t.name, "input", k};
      }
    }
    if (const Entry* e = get(es, "input_type")) {
      if (!t.input_type.is_null()) {
        ctx_.error(e->key_node, f("input_type"), "the input type is given twice ('input: <type>' and 'input_type')");
      } else if (auto spec = type_spec(*e, f("input_type"))) {
        t.input_type = *spec;
        marks.types.input_type = {"tasks", t.name, "input_type"};
      }
    }

    if (const Entry* e = get(es, "depends_on")) parse_depends_on(*e, f("depends_on"), t, marks);

    if (const Entry* e = get(es, "timeout")) {
      if (auto v = expect_duration(*e, f("timeout"), ctx_, 1)) t.timeout_seconds = *v;
    }
    if (const Entry* e = get(es, "retries")) {
      if (auto v = expect_int(*e, f("retries"), ctx_, 0)) t.retries = *v;
    }
    if (const Entry* e = get(es, "retry_delay")) {
      if (auto v = expect_duration(*e, f("retry_delay"), ctx_, 0)) t.retry_delay_seconds = *v;
    }

    const Entry* par = get(es, "parallel");
    const Entry* fe = get(es, "foreach");
    if (par && fe) {
      ctx_.error(fe->key_node, f("foreach"), "cannot combine 'parallel' and 'foreach' in one task");
    } else if (par) {
      Kind k = kind_of(par->value);
      if (k == Kind::Int) {
        if (auto v = expect_int(*par, f("parallel"), ctx_, 1)) {
          t.parallel.kind = Parallelism::Kind::Static;
          t.parallel.count = *v;
        }
      } else if (k == Kind::String) {
        if (parse_ref(*par, f("parallel"), "parallel", index)) {
          t.parallel.kind = Parallelism::Kind::CountRef;
          t.parallel.ref = par->value.Scalar();
        }
      } else {
        ctx_.error(par->at(), f("parallel"),
                   "expected a positive integer or a reference like 'task.field', got " + got(par->value));
      }
    } else if (fe) {
      if (kind_of(fe->value) != Kind::String) {
        ctx_.error(fe->at(), f("foreach"), "expected a reference like 'task.field', got " + got(fe->value));
      } else if (parse_ref(*fe, f("foreach"), "foreach", index)) {
        t.parallel.kind = Parallelism::Kind::ForEach;
        t.parallel.ref = fe->value.Scalar();
      }
    }
    if (const Entry* e = get(es, "concurrency")) t.concurrency = expect_int(*e, f("concurrency"), ctx_, 1);

    if (const Entry* e = get(es, "resources")) parse_resources(*e, f("resources"), t);
    if (const Entry* e = get(es, "env")) parse_env(*e, f("env"), t);
    if (const Entry* e = get(es, "env_file")) t.env_file = parse_env_file(*e, f("env_file"));
    if (const Entry* e = get(es, "secrets")) parse_secrets(*e, f("secrets"), t);

    if (const Entry* e = get(es, "on_failure")) {
      if (auto s = expect_string(*e, f("on_failure"), ctx_)) {
        if (*s == "skip" || *s == "run") {
          t.on_failure = *s == "run" ? OnFailure::Run : OnFailure::Skip;
        } else {
          ctx_.error(e->at(), f("on_failure"), "expected 'skip' or 'run', got '" + *s + "'");
        }
      }
    }
    if (const Entry* e = get(es, "input"); t.image && e && e->value.IsMap() && e->value["to_file"]) {
      parse_io_file(*e, f("input"), "to_file", t, t.input_to_file);
      marks.types.input_keys.erase("to_file");
    }
    if (t.executor == "container" && !t.image)
      ctx_.error(te.key_node, f("image"), "executor 'container' needs 'image' (the container image to run)");
    const Entry* out = get(es, "output");
    if (out && out->value.IsMap() && out->value["from_file"]) {  // a container task's output file, not a type
      parse_io_file(*out, f("output"), "from_file", t, t.output_from_file);
      out = nullptr;
    }
    const Entry* out_type = get(es, "output_type");
    if (out && out_type) {
      ctx_.error(out_type->key_node, f("output_type"), "'output' and 'output_type' both give the output type");
    } else if (out || out_type) {
      const char* key = out ? "output" : "output_type";
      if (auto spec = type_spec(out ? *out : *out_type, f(key))) {
        t.output_type = *spec;
        marks.types.output_type = {"tasks", t.name, key};
      }
    }
    if (const Entry* e = get(es, "validate_output")) {
      if (auto b = expect_bool(*e, f("validate_output"), ctx_)) t.validate_output = *b;
    }
    if (const Entry* e = get(es, "inputs")) parse_inputs(*e, f("inputs"), t, index);

    if (t.executor == "rust") check_rust(te, es, t);

    if (base_dir_.empty()) return;
    for (const char* key : {"file", "config_file"}) {
      const auto& v = std::string(key) == "file" ? t.file : t.config_file;
      if (!v) continue;
      fs::path p = fs::path(*v).is_absolute() ? fs::path(*v) : fs::path(base_dir_) / *v;
      std::error_code ec;
      if (!fs::exists(p, ec)) {
        ctx_.error(get(es, key)->at(), f(key),
                   std::string(key) + " '" + *v + "' not found (looked for " + p.lexically_normal().string() + ")");
      }
    }
  }

  // `command: [argv...]`: the exec form (no shell), e.g. a container task's command.
  void parse_command_list(const Entry& e, const std::string& field, TaskDefinition& t) {
    if (e.value.size() == 0) ctx_.error(e.at(), field, "must not be an empty list");
    size_t i = 0;
    for (const auto& item : e.value) {
      const std::string item_field = field + "[" + std::to_string(i++) + "]";
      if (!item.IsScalar()) {
        ctx_.error(item, item_field, "expected a string, got " + got(item));
        continue;
      }
      t.command_args.push_back(item.Scalar());
    }
  }

  // Container file I/O: `input: {to_file: /path}` (the input JSON is written there before the image starts; other
  // input keys stay input values) and `output: {from_file: /path}` (the output is read from there afterwards).
  void parse_io_file(const Entry& e, const std::string& field, const char* key, TaskDefinition& t,
                     std::optional<std::string>& out) {
    const YAML::Node v = e.value[key];
    const std::string kf = field + "." + key;
    if (std::string(key) == "from_file") {
      for (const auto& kv : e.value) {
        if (kv.first.Scalar() != "from_file")
          ctx_.error(kv.first, field + "." + kv.first.Scalar(),
                     "unknown field '" + kv.first.Scalar() + "' (a container output map has only 'from_file')");
      }
    } else {
      t.input.erase(key);
    }
    if (!t.image) {
      ctx_.error(v, kf, std::string("'") + key + "' is for container tasks (set 'image')");
      return;
    }
    if (kind_of(v) != Kind::String || v.Scalar().empty()) {
      ctx_.error(v, kf, "expected a path inside the container, got " + got(v));
    } else if (v.Scalar()[0] != '/') {
      ctx_.error(v, kf, "expected an absolute path inside the container, got '" + v.Scalar() + "'");
    } else {
      out = v.Scalar();
    }
  }

  // A type spec: an expression string, an inline map of fields or a one-element list. Names are checked later.
  std::optional<json> type_spec(const Entry& e, const std::string& field) {
    Kind k = kind_of(e.value);
    if (k == Kind::String && !e.value.Scalar().empty()) return json(e.value.Scalar());
    if (k == Kind::Map || k == Kind::Sequence) return to_json_value(e.value, field, ctx_);
    ctx_.error(e.at(), field,
               "expected a type (a name such as 'int' or 'list[User]', or a map of fields), got " + got(e.value));
    return std::nullopt;
  }

  // `env_file:`: a dotenv file relative to the workflow file. Checked now; read again at each dispatch.
  std::optional<std::string> parse_env_file(const Entry& e, const std::string& field) {
    auto v = expect_text(e, field, ctx_, false);
    if (!v || base_dir_.empty()) return v;
    fs::path p = fs::path(*v).is_absolute() ? fs::path(*v) : fs::path(base_dir_) / *v;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) {
      ctx_.error(e.at(), field, "env file '" + *v + "' not found (looked for " + p.lexically_normal().string() + ")");
      return v;
    }
    try {
      read_dotenv_file(p.string());
    } catch (const std::exception& x) {
      ctx_.error(e.at(), field, std::string("bad env file: ") + x.what());
    }
    return v;
  }

  // `executor: rust`: `file` (required unless `config_file` is set) is a .rs task file, a crate directory or its
  // Cargo.toml; `function` names a binary of a crate given as a directory / Cargo.toml.
  void check_rust(const Entry& te, const std::vector<Entry>& es, const TaskDefinition& t) {
    const std::string path = "tasks." + te.key;
    if (!t.file) {  // a task with only a `config_file` is for a custom executor
      if (!get(es, "file") && !t.config_file)
        ctx_.error(te.key_node, path + ".file",
                   "executor 'rust' needs 'file': a .rs task file, or a crate directory or its Cargo.toml");
      return;
    }
    const fs::path file(*t.file);
    const bool rs = file.extension() == ".rs", toml = file.filename() == "Cargo.toml";
    if (const Entry* e = get(es, "function"); e && t.function) {
      if (rs) {
        ctx_.error(e->at(), path + ".function",
                   "'function' names a binary of a crate: give 'file' as the crate directory or its Cargo.toml "
                   "(or drop 'function' and point 'file' at the binary's .rs source)");
      } else if (!all_chars(*t.function, [](char c) { return is_word(c) || c == '-'; })) {
        ctx_.error(e->at(), path + ".function", "invalid binary name '" + *t.function + "'");
      }
    }
    if (base_dir_.empty()) return;
    const fs::path p = file.is_absolute() ? file : fs::path(base_dir_) / file;
    std::error_code ec;
    const Entry* fe = get(es, "file");
    if (fs::is_directory(p, ec)) {
      if (!fs::is_regular_file(p / "Cargo.toml", ec))
        ctx_.error(fe->at(), path + ".file", "'" + *t.file + "' is a directory without a Cargo.toml");
    } else if (fs::exists(p, ec) && !rs && !toml) {
      ctx_.error(
          fe->at(), path + ".file",
          "expected a .rs task file, a crate directory or a Cargo.toml for executor 'rust', got '" + *t.file + "'");
    }
  }

  void parse_depends_on(const Entry& e, const std::string& field, TaskDefinition& t, TaskMarks& marks) {
    marks.depends_on = e.at();
    auto add = [&](const YAML::Node& n, const std::string& item_field) {
      if (kind_of(n) != Kind::String || n.Scalar().empty()) {
        ctx_.error(n, item_field, "expected a task name, got " + got(n));
        return;
      }
      const std::string& dep = n.Scalar();
      if (std::find(t.depends_on.begin(), t.depends_on.end(), dep) != t.depends_on.end()) {
        ctx_.error(n, item_field, "duplicate dependency '" + dep + "'");
        return;
      }
      t.depends_on.push_back(dep);
      marks.dep.push_back(n.Mark());
      marks.implicit.push_back(false);
    };
    if (e.value.IsNull()) return;
    if (e.value.IsSequence()) {
      size_t i = 0;
      for (const auto& item : e.value) add(item, field + "[" + std::to_string(i++) + "]");
    } else if (kind_of(e.value) == Kind::String) {
      add(e.value, field);
    } else {
      ctx_.error(e.at(), field, "expected a task name or a list of task names, got " + got(e.value));
    }
  }

  // Checks `task.field` syntax now; the target task is checked in resolve_refs once every task is known.
  bool parse_ref(const Entry& e, const std::string& field, const std::string& what, size_t index) {
    const std::string& s = e.value.Scalar();
    auto parts = dotted_parts(s);
    if (parts.size() < 2) {
      ctx_.error(e.at(), field, "invalid reference '" + s + "' (expected 'task.field')");
      return false;
    }
    refs_.push_back({index, parts[0], field, e.value.Mark(), what});
    return true;
  }

  void parse_resources(const Entry& e, const std::string& field, TaskDefinition& t) {
    if (e.value.IsNull() || !expect_map(e, field, ctx_)) return;
    static const std::vector<std::string> allowed = {"cpu", "memory"};
    auto es = entries(e.value, field, ctx_, &allowed);
    if (const Entry* c = get(es, "cpu")) {
      if (auto v = parse_cpu(c->value)) {
        t.resources.cpu_millis = *v;
      } else {
        ctx_.error(c->at(), field + ".cpu",
                   "expected a positive CPU amount (cores like 2 or 0.5, millicores like 500 or \"500m\"), got " +
                       got(c->value));
      }
    }
    if (const Entry* m = get(es, "memory")) {
      if (auto v = parse_memory_mb(m->value)) {
        t.resources.memory_mb = *v;
      } else {
        ctx_.error(
            m->at(), field + ".memory",
            "expected a positive memory size (MiB as an integer, or 512Mi, 4Gi, 1G, 256M), got " + got(m->value));
      }
    }
  }

  void parse_env(const Entry& e, const std::string& field, TaskDefinition& t) {
    if (e.value.IsNull() || !expect_map(e, field, ctx_)) return;
    for (const auto& ke : entries(e.value, field, ctx_, nullptr, "variable")) {
      const std::string kf = field + "." + ke.key;
      if (!is_env_key(ke.key)) {
        ctx_.error(ke.key_node, kf, "invalid environment variable name '" + ke.key + "'");
        continue;
      }
      if (ke.value.IsScalar()) {
        t.env[ke.key] = EnvValue{ke.value.Scalar(), std::nullopt};
      } else if (ke.value.IsMap()) {
        static const std::vector<std::string> allowed = {"secret"};
        auto ses = entries(ke.value, kf, ctx_, &allowed);
        const Entry* s = get(ses, "secret");
        if (!s) {
          if (ses.size() == ke.value.size()) ctx_.error(ke.value, kf, "missing required field 'secret'");
          continue;
        }
        if (auto ref = expect_string(*s, kf + ".secret", ctx_)) t.env[ke.key] = EnvValue{"", *ref};
      } else {
        ctx_.error(ke.at(), kf, "expected a literal value or {secret: ref}, got " + got(ke.value));
      }
    }
  }

  void parse_secrets(const Entry& e, const std::string& field, TaskDefinition& t) {
    if (e.value.IsNull()) return;
    if (!e.value.IsSequence()) {
      ctx_.error(e.at(), field, "expected a list of {name, secret, path}, got " + got(e.value));
      return;
    }
    static const std::vector<std::string> allowed = {"name", "secret", "path"};
    size_t i = 0;
    for (const auto& item : e.value) {
      const std::string sf = field + "[" + std::to_string(i++) + "]";
      if (!item.IsMap()) {
        ctx_.error(item, sf, "expected a map {name, secret, path}, got " + got(item));
        continue;
      }
      auto es = entries(item, sf, ctx_, &allowed);
      SecretFile s;
      bool ok = true;
      for (const auto& key : allowed) {
        const Entry* x = get(es, key);
        if (!x) {
          ctx_.error(item, sf + "." + key, "missing required field '" + key + "'");
          ok = false;
          continue;
        }
        auto v = expect_text(*x, sf + "." + key, ctx_, false);
        if (!v) {
          ok = false;
          continue;
        }
        (key == "name" ? s.name : key == "secret" ? s.secret : s.path) = *v;
      }
      if (ok) t.secrets.push_back(std::move(s));
    }
  }

  // Strict-schema bindings: {arg: {const: v}} -> input[arg] = v; {arg: {ref: tasks.x.output.f}} -> "{{ x.f }}".
  void parse_inputs(const Entry& e, const std::string& field, TaskDefinition& t, size_t index) {
    if (e.value.IsNull() || !expect_map(e, field, ctx_)) return;
    static const std::vector<std::string> allowed = {"const", "ref"};
    for (const auto& ie : entries(e.value, field, ctx_, nullptr, "input")) {
      const std::string inf = field + "." + ie.key;
      if (t.input.contains(ie.key)) {
        ctx_.error(ie.key_node, inf, "input '" + ie.key + "' is set in both 'input' and 'inputs'");
        continue;
      }
      if (!ie.value.IsMap() || ie.value.size() != 1) {
        ctx_.error(ie.at(), inf, "expected exactly one of {const: value} or {ref: tasks.<task>.output[.field]}");
        continue;
      }
      auto bes = entries(ie.value, inf, ctx_, &allowed);
      if (const Entry* c = get(bes, "const")) {
        t.input[ie.key] = to_json_value(c->value, inf + ".const", ctx_);
        marks_[index].types.input_keys[ie.key] = {"tasks", t.name, "inputs", ie.key, "const"};
      } else if (const Entry* r = get(bes, "ref")) {
        // tasks.<task>.output[.<field>...]
        auto parts = kind_of(r->value) == Kind::String ? dotted_parts(r->value.Scalar()) : std::vector<std::string>{};
        if (parts.size() < 3 || parts[0] != "tasks" || parts[2] != "output") {
          ctx_.error(r->at(), inf + ".ref",
                     "invalid reference " + got(r->value) +
                         " (expected 'tasks.<task>.output' or 'tasks.<task>.output.<field>')");
          continue;
        }
        std::string path = parts[1];
        for (size_t i = 3; i < parts.size(); ++i) path += "." + parts[i];
        t.input[ie.key] = "{{ " + path + " }}";
        marks_[index].types.input_keys[ie.key] = {"tasks", t.name, "inputs", ie.key, "ref"};
        refs_.push_back({index, parts[1], inf + ".ref", r->value.Mark(), "inputs." + ie.key});
      }
    }
  }

 public:
  // Checks every `{{ ... }}` in input and env values: valid syntax and a known name (a task, input, item in foreach
  // tasks, ctx fields). A task named in an expression becomes an implicit dependency (via resolve_refs).
  void check_expressions(const WorkflowDefinition& wf, const YAML::Node& root) {
    std::vector<std::string> names;
    for (const auto& t : wf.tasks) names.push_back(t.name);
    std::vector<std::string> all = names;
    for (const char* r : {"input", "item", "ctx", "context"}) all.push_back(r);
    for (size_t i = 0; i < wf.tasks.size(); ++i) {
      const TaskDefinition& t = wf.tasks[i];
      auto check_string = [&](const std::string& s, const std::vector<std::string>& where) {
        for (const auto& e : find_expressions(s)) {
          const YAML::Mark m = mark_at(root, where);
          const std::string field = path_text(where);
          if (!e.error.empty()) {
            ctx_.error(m, field, "invalid expression '{{ " + e.text + " }}': " + e.error);
            continue;
          }
          if (e.is_literal) continue;
          const std::string& r = e.root();
          const bool is_ctx_field =
              std::find(context_fields().begin(), context_fields().end(), r) != context_fields().end();
          if (r == "input") continue;
          if (r == "item") {
            if (t.parallel.kind != Parallelism::Kind::ForEach)
              ctx_.error(m, field, "'" + e.source() + "': 'item' is defined only in foreach tasks");
            continue;
          }
          if (r == "ctx" || r == "context") {
            std::string fields;
            for (const auto& c : context_fields()) fields += (fields.empty() ? "" : ", ") + c;
            if (e.path.size() >= 2 && (e.path[1].is_index || std::find(context_fields().begin(), context_fields().end(),
                                                                       e.path[1].key) == context_fields().end()))
              ctx_.error(
                  m, field,
                  "'" + e.source() + "': unknown context field '" + e.path[1].key + "' (fields: " + fields + ")");
            continue;
          }
          if (r == t.name) {
            ctx_.error(m, field, "'" + e.source() + "' refers to the task's own output");
            continue;
          }
          if (wf.find(r)) {
            refs_.push_back({i, r, field, m, "expression '" + e.source() + "'"});
            continue;
          }
          if (is_ctx_field) continue;
          ctx_.error(m, field,
                     "'" + e.source() + "': unknown name '" + r + "'" + suggest(r, all) +
                         " (an expression starts with a task name, input, item, or ctx)");
        }
      };
      std::function<void(const json&, const std::vector<std::string>&)> walk = [&](const json& v,
                                                                                   const std::vector<std::string>& w) {
        if (v.is_string()) {
          check_string(v.get_ref<const std::string&>(), w);
        } else if (v.is_object()) {
          for (auto it = v.begin(); it != v.end(); ++it) {
            auto next = w;
            next.push_back(it.key());
            walk(it.value(), next);
          }
        } else if (v.is_array()) {
          for (size_t k = 0; k < v.size(); ++k) {
            auto next = w;
            next.push_back(std::to_string(k));
            walk(v[k], next);
          }
        }
      };
      for (auto it = t.input.begin(); it != t.input.end(); ++it) {
        auto o = marks_[i].types.input_keys.find(it.key());
        if (o != marks_[i].types.input_keys.end() && o->second.size() > 2 && o->second[2] == "inputs") {
          if (o->second.back() == "ref") continue;  // checked as an `inputs` ref
        }
        walk(it.value(), o != marks_[i].types.input_keys.end()
                             ? o->second
                             : std::vector<std::string>{"tasks", t.name, "input", it.key()});
      }
      for (const auto& [k, v] : t.env)
        if (!v.secret) walk(json(v.value), {"tasks", t.name, "env", k});
    }
  }

  // Type declarations and the contracts between producers and consumers (type_check.hpp).
  void check_types(const WorkflowDefinition& wf, const YAML::Node& root) {
    std::vector<TaskTypeSources> src;
    for (const auto& m : marks_) src.push_back(m.types);
    for (const auto& p : check_workflow_types(wf, src)) ctx_.error(mark_at(root, p.path), path_text(p.path), p.message);
  }

  // Checks refs (parallel/foreach/inputs) against known tasks and adds implicit dependencies.
  void resolve_refs(WorkflowDefinition& wf) {
    std::vector<std::string> names;
    for (const auto& t : wf.tasks) names.push_back(t.name);
    for (const auto& r : refs_) {
      TaskDefinition& t = wf.tasks[r.task];
      if (r.target == t.name) {
        ctx_.error(r.mark, r.field, r.what + " references the task itself");
        continue;
      }
      if (!wf.find(r.target)) {
        ctx_.error(r.mark, r.field, r.what + " references unknown task '" + r.target + "'" + suggest(r.target, names));
        continue;
      }
      if (std::find(t.depends_on.begin(), t.depends_on.end(), r.target) == t.depends_on.end()) {
        t.depends_on.push_back(r.target);
        marks_[r.task].dep.push_back(r.mark);
        marks_[r.task].implicit.push_back(true);
      }
    }
  }

  void check_graph(const WorkflowDefinition& wf) {
    std::map<std::string, size_t> index;
    std::vector<std::string> names;
    for (size_t i = 0; i < wf.tasks.size(); ++i) {
      index.emplace(wf.tasks[i].name, i);  // duplicates were dropped while parsing
      names.push_back(wf.tasks[i].name);
    }
    // Edges i -> j mean "task i depends on task j"; unknown and self edges are reported and left out.
    std::vector<std::vector<size_t>> edges(wf.tasks.size());
    for (size_t i = 0; i < wf.tasks.size(); ++i) {
      const auto& t = wf.tasks[i];
      for (size_t d = 0; d < t.depends_on.size(); ++d) {
        const std::string& dep = t.depends_on[d];
        const std::string field = "tasks." + t.name + ".depends_on";
        if (marks_[i].implicit[d]) {
          if (auto it = index.find(dep); it != index.end()) edges[i].push_back(it->second);
          continue;
        }
        if (dep == t.name) {
          ctx_.error(marks_[i].dep[d], field, "task '" + t.name + "' depends on itself");
        } else if (auto it = index.find(dep); it == index.end()) {
          ctx_.error(marks_[i].dep[d], field, "unknown task '" + dep + "'" + suggest(dep, names));
        } else {
          edges[i].push_back(it->second);
        }
      }
    }
    // Recursive DFS in file order (depth = longest chain); one diagnostic per back edge, i.e. per cycle found.
    enum Color { White, Grey, Black };
    std::vector<Color> color(wf.tasks.size(), White);
    std::vector<size_t> stack;
    std::function<void(size_t)> visit = [&](size_t u) {
      color[u] = Grey;
      stack.push_back(u);
      for (size_t v : edges[u]) {
        if (color[v] == Grey) {
          auto from = std::find(stack.begin(), stack.end(), v);
          std::string path;
          for (auto it = from; it != stack.end(); ++it) path += wf.tasks[*it].name + " -> ";
          path += wf.tasks[v].name;
          ctx_.error(marks_[v].depends_on, "tasks." + wf.tasks[v].name + ".depends_on", "dependency cycle: " + path);
        } else if (color[v] == White) {
          visit(v);
        }
      }
      stack.pop_back();
      color[u] = Black;
    };
    for (size_t i = 0; i < wf.tasks.size(); ++i) {
      if (color[i] == White) visit(i);
    }
  }

 private:
  Ctx& ctx_;
  std::string base_dir_;
  std::set<std::string> imported_;  // task names that imports provided (dots allowed)
  bool imports_failed_ = false;     // an import failed: a workflow of imported tasks only may have none
  std::vector<TaskMarks> marks_;    // parallel to wf.tasks
  std::vector<PendingRef> refs_;
};

// ---- Imports (`import: - dbt: ./path`): importer tasks merged into the `tasks:` map before parsing ----

// A YAML node for JSON from an importer; strings stay strings whatever they look like.
YAML::Node yaml_of(const json& j) {
  if (j.is_null()) return YAML::Node(YAML::NodeType::Null);
  if (j.is_array()) {
    YAML::Node n(YAML::NodeType::Sequence);
    for (const auto& x : j) n.push_back(yaml_of(x));
    return n;
  }
  if (j.is_object()) {
    YAML::Node n(YAML::NodeType::Map);
    for (const auto& [k, v] : j.items()) n.force_insert(k, yaml_of(v));  // JSON keys are unique
    return n;
  }
  YAML::Node n(j.is_string() ? j.get<std::string>() : j.dump());
  n.SetTag(j.is_string() ? "!" : "?");
  return n;
}

// What the imports added: task names and, per task, the import entry that brought it (for its diagnostics).
struct Imported {
  std::set<std::string> names;
  std::set<std::string> user_defined;  // imported names the workflow also defines (merged)
  std::map<std::string, YAML::Mark> origin;
  bool failed = false;  // an importer reported errors: no second error for what it would have provided
};

// Merges an imported task into a user task of the same name: the user's fields win, except `depends_on`, which is
// the union (imported edges first kept, user's added).
void merge_imported(YAML::Node user, const YAML::Node& imported) {
  for (auto it = imported.begin(); it != imported.end(); ++it) {
    const std::string key = it->first.Scalar();
    YAML::Node mine = user[key];
    if (key == "depends_on" && mine && mine.IsSequence()) {
      std::set<std::string> have;
      for (const auto& d : mine)
        if (d.IsScalar()) have.insert(d.Scalar());
      for (const auto& d : it->second)
        if (!have.count(d.Scalar())) mine.push_back(d);
    } else if (!mine || mine.IsNull()) {
      user[key] = it->second;
    }
  }
}

Imported expand_imports(YAML::Node& root, Ctx& ctx, const std::string& base_dir, const ImportFn& importer) {
  Imported out;
  if (!importer || !root.IsMap() || !root["import"] || !root["import"].IsSequence()) return out;
  const bool had_tasks = static_cast<bool>(root["tasks"]);
  if (!had_tasks) root["tasks"] = YAML::Node(YAML::NodeType::Map);
  YAML::Node tasks = root["tasks"];
  if (!tasks.IsMap()) return out;  // reported by the parser
  std::set<std::string> user;
  for (auto it = tasks.begin(); it != tasks.end(); ++it)
    if (it->first.IsScalar()) user.insert(it->first.Scalar());
  size_t i = 0;
  bool failed = false;
  for (const auto& item : root["import"]) {
    const std::string field = "import[" + std::to_string(i++) + "]";
    if (!item.IsMap() || item.size() == 0 || !item.begin()->first.IsScalar()) continue;  // reported by the parser
    const std::string name = item.begin()->first.Scalar();
    const YAML::Mark mark = item.begin()->first.Mark();
    Ctx scratch(ctx.file());
    const json source = to_json_value(item, field, scratch);
    json result;
    try {
      result = importer(name, {{"source", source}, {"base_dir", base_dir}});
    } catch (const std::exception& e) {
      std::string text = e.what();
      const std::string prefix = "importer plugin '" + name + "' import_tasks: ";
      if (text.rfind(prefix, 0) == 0) text = text.substr(prefix.size());
      std::stringstream lines(text);
      for (std::string line; std::getline(lines, line);)
        if (!line.empty()) ctx.error(mark, field + "." + name, line);
      failed = true;
      continue;
    }
    if (!result.is_object() || !result.contains("tasks") || !result["tasks"].is_object()) {
      ctx.error(mark, field + "." + name, "the importer returned no 'tasks' map");
      continue;
    }
    if (result.contains("types") && result["types"].is_object()) {  // types the imported tasks name
      if (!root["types"]) root["types"] = YAML::Node(YAML::NodeType::Map);
      YAML::Node types = root["types"];
      if (types.IsMap())
        for (const auto& [tname, spec] : result["types"].items())
          if (!types[tname]) types.force_insert(tname, yaml_of(spec));  // a workflow's own type of that name wins
    }
    for (const auto& [tname, def] : result["tasks"].items()) {
      if (!def.is_object()) {
        ctx.error(mark, field + "." + name, "imported task '" + tname + "' is not a map");
        continue;
      }
      if (out.names.count(tname)) {
        ctx.error(mark, field + "." + name, "task '" + tname + "' is imported twice");
        continue;
      }
      out.names.insert(tname);
      out.origin[tname] = mark;
      if (user.count(tname)) {
        out.user_defined.insert(tname);
        YAML::Node mine = tasks[tname];
        if (mine.IsNull()) {
          tasks[tname] = yaml_of(def);
        } else if (mine.IsMap()) {
          merge_imported(mine, yaml_of(def));
        }  // anything else is reported by the parser
      } else {
        tasks.force_insert(tname, yaml_of(def));  // no lookup: operator[] is linear in the map's size
      }
    }
  }
  if (failed) {  // the import's own errors say why; no second error per dotted task name
    for (const auto& u : user)
      if (u.find('.') != std::string::npos) out.names.insert(u);
    if (!had_tasks && tasks.size() == 0) root.remove("tasks");
  }
  out.failed = failed;
  return out;
}

// Diagnostics about fields that came from an importer (no position of their own) point at the import entry.
void place_imported(std::vector<Diagnostic>& diags, const Imported& imp) {
  for (auto& d : diags) {
    if (!(d.line == 0 || (d.line == 1 && d.column == 1))) continue;
    for (const auto& [name, mark] : imp.origin) {
      const std::string p = "tasks." + name;
      if (d.field == p || d.field.rfind(p + ".", 0) == 0) {
        d.line = mark.line + 1;
        d.column = mark.column + 1;
        d.message += " (in the task imported here)";
        break;
      }
    }
  }
}

WorkflowDefinition load(const std::string& yaml, const std::string& filename, const std::string& base_dir,
                        const std::string& source_file, const ImportFn& importer) {
  Ctx ctx(filename);
  YAML::Node root;
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(yaml);
    if (!docs.empty()) root = docs[0];
    if (docs.size() > 1) {
      const YAML::Node& extra = docs[1];
      ctx.error(extra.IsNull() ? YAML::Mark::null_mark() : extra.Mark(), "",
                "a workflow file holds exactly one YAML document; found " + std::to_string(docs.size()));
    }
  } catch (const YAML::ParserException& e) {
    ctx.error(e.mark, "", "YAML syntax error: " + e.msg);
    throw WorkflowError(std::move(ctx.diags()));
  } catch (const YAML::Exception& e) {
    ctx.error(e.mark, "", std::string("YAML error: ") + e.msg);
    throw WorkflowError(std::move(ctx.diags()));
  }
  std::string abs_base;
  if (!base_dir.empty()) abs_base = fs::absolute(base_dir).lexically_normal().string();
  if (abs_base.size() > 1 && abs_base.back() == '/') abs_base.pop_back();
  Imported imported = expand_imports(root, ctx, abs_base, importer);
  Parser parser(ctx, abs_base, imported.names, imported.failed);
  WorkflowDefinition wf = parser.parse(root);
  for (auto& t : wf.tasks) {
    if (!imported.origin.count(t.name) || imported.user_defined.count(t.name)) continue;
    const YAML::Mark& m = imported.origin.at(t.name);
    t.loc = {ctx.file(), m.line + 1, m.column + 1};
  }
  parser.check_expressions(wf, root);
  const size_t before_graph = ctx.diags().size();
  parser.resolve_refs(wf);
  parser.check_graph(wf);
  if (ctx.diags().size() == before_graph) parser.check_types(wf, root);  // needs a sound graph
  if (!ctx.diags().empty()) {
    auto& d = ctx.diags();
    place_imported(d, imported);
    std::stable_sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    throw WorkflowError(std::move(d));
  }
  wf.source_file = source_file;
  return wf;
}

}  // namespace

std::optional<int> parse_duration_seconds(const std::string& text) {
  if (text.empty()) return std::nullopt;
  if (is_decimal_int(text) && text[0] != '-') {
    auto v = parse_int64(text);
    if (!v || *v > INT_MAX) return std::nullopt;
    return static_cast<int>(*v);
  }
  // One or more <digits><unit> parts, unit one of ms, s, m, h, d.
  long double ms = 0;
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    if (skip_digits(text, i) == 0) return std::nullopt;
    auto n = parse_int64(text.substr(start, i - start));
    if (!n) return std::nullopt;
    long double factor = 0;
    if (text.compare(i, 2, "ms") == 0) {
      factor = 1;
      i += 2;
    } else if (i < text.size()) {
      char u = text[i++];
      factor = u == 's' ? 1e3L : u == 'm' ? 6e4L : u == 'h' ? 3.6e6L : u == 'd' ? 8.64e7L : 0;
    }
    if (factor == 0) return std::nullopt;
    ms += static_cast<long double>(*n) * factor;
  }
  long double secs = std::ceil(ms / 1000.0L);
  if (secs > INT_MAX) return std::nullopt;
  return static_cast<int>(secs);
}

std::optional<int> parse_duration_seconds(const YAML::Node& node) {
  Kind k = kind_of(node);
  if (k == Kind::Int) {
    auto v = parse_int64(node.Scalar());
    if (!v || *v > INT_MAX || *v < INT_MIN) return std::nullopt;
    return static_cast<int>(*v);
  }
  if (k == Kind::String) return parse_duration_seconds(node.Scalar());
  return std::nullopt;
}

WorkflowDefinition load_workflow_string(const std::string& yaml, const std::string& filename,
                                        const std::string& base_dir, const ImportFn& importer) {
  return load(yaml, filename, base_dir, "", importer);
}

WorkflowDefinition load_workflow_file(const std::string& path, const ImportFn& importer) {
  std::error_code ec;
  std::ifstream in(path, std::ios::binary);
  if (!fs::is_regular_file(path, ec) || !in)
    throw WorkflowError({Diagnostic{path, 0, 0, "", "cannot read workflow file"}});
  std::stringstream buf;
  buf << in.rdbuf();
  const fs::path abs = fs::absolute(path).lexically_normal();
  return load(buf.str(), path, abs.parent_path().string(), abs.string(), importer);
}

std::vector<std::string> topological_order(const WorkflowDefinition& wf) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < wf.tasks.size(); ++i) index.emplace(wf.tasks[i].name, i);
  std::vector<size_t> pending(wf.tasks.size(), 0);
  std::vector<std::vector<size_t>> dependents(wf.tasks.size());
  for (size_t i = 0; i < wf.tasks.size(); ++i) {
    for (const auto& dep : wf.tasks[i].depends_on) {
      auto it = index.find(dep);
      if (it == index.end()) {
        throw std::invalid_argument("task '" + wf.tasks[i].name + "' depends on unknown task '" + dep + "'");
      }
      ++pending[i];
      dependents[it->second].push_back(i);
    }
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < wf.tasks.size(); ++i) {
    if (pending[i] == 0) ready.push(i);
  }
  std::vector<std::string> order;
  while (!ready.empty()) {
    size_t u = ready.top();
    ready.pop();
    order.push_back(wf.tasks[u].name);
    for (size_t v : dependents[u]) {
      if (--pending[v] == 0) ready.push(v);
    }
  }
  if (order.size() != wf.tasks.size()) throw std::invalid_argument("workflow '" + wf.name + "' has a dependency cycle");
  return order;
}

}  // namespace ork
