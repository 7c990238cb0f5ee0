// Expressions: a hand-written scanner and path parser (no <regex>: GCC 12 -Wmaybe-uninitialized) and a renderer
// whose errors say which name or field is missing and what was there instead.
#include "expressions.hpp"

#include <algorithm>

namespace ork {

namespace {

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string step_label(const PathStep& s) {
  return s.is_index ? "[" + std::to_string(s.index) + "]" : s.key;
}

std::string join_path(const std::vector<PathStep>& path, size_t n) {
  std::string out;
  for (size_t i = 0; i < n && i < path.size(); ++i) {
    if (path[i].is_index)
      out += step_label(path[i]);
    else
      out += (out.empty() ? "" : ".") + path[i].key;
  }
  return out;
}

std::string value_text(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

bool parse_path(const std::string& text, std::vector<PathStep>& path, std::string& error) {
  path.clear();
  size_t i = 0;
  auto key = [&]() {
    size_t start = i;
    while (i < text.size() && is_key_char(text[i])) ++i;
    return text.substr(start, i - start);
  };
  std::string root = key();
  if (root.empty()) {
    error = text.empty() ? "empty expression" : "expected a name at '" + text.substr(i) + "'";
    return false;
  }
  path.push_back({root, false, 0});
  while (i < text.size()) {
    if (text[i] == '.') {
      ++i;
      std::string k = key();
      if (k.empty()) {
        error = "expected a field name after '.'" + (i < text.size() ? " at '" + text.substr(i) + "'" : "");
        return false;
      }
      path.push_back({k, false, 0});
    } else if (text[i] == '[') {
      size_t close = text.find(']', i);
      std::string n = close == std::string::npos ? "" : text.substr(i + 1, close - i - 1);
      if (!all_digits(n) || n.size() > 9) {
        error = "expected a list index like [0] at '" + text.substr(i) + "'";
        return false;
      }
      path.push_back({n, true, static_cast<size_t>(std::stoul(n))});
      i = close + 1;
    } else {
      error = "unexpected '" + text.substr(i) +
              "' (only name paths like task.field, task.list[0], input.key, item, ctx.run_id, or a quoted text, are "
              "supported)";
      return false;
    }
  }
  return true;
}

std::vector<Expression> find_expressions(const std::string& s) {
  std::vector<Expression> out;
  size_t from = 0;
  while (true) {
    size_t open = s.find("{{", from);
    if (open == std::string::npos) break;
    size_t search = open + 2;
    const size_t first = s.find_first_not_of(" \t", open + 2);
    if (first != std::string::npos && (s[first] == '\'' || s[first] == '"')) {
      size_t q = s.find(s[first], first + 1);  // a quoted literal may contain "}}"
      if (q != std::string::npos) search = q + 1;
    }
    size_t close = s.find("}}", search);
    if (close == std::string::npos) break;
    Expression e;
    e.begin = open;
    e.end = close + 2;
    std::string inner = s.substr(open + 2, close - open - 2);
    size_t a = inner.find_first_not_of(" \t"), b = inner.find_last_not_of(" \t");
    e.text = a == std::string::npos ? "" : inner.substr(a, b - a + 1);
    const std::string& t = e.text;
    if (t.size() >= 2 && (t[0] == '\'' || t[0] == '"') && t.back() == t[0] && t.find(t[0], 1) == t.size() - 1) {
      e.is_literal = true;
      e.literal = t.substr(1, t.size() - 2);
    } else if (!parse_path(e.text, e.path, e.error)) {
      e.path.clear();
    }
    out.push_back(std::move(e));
    from = close + 2;
  }
  return out;
}

const std::vector<std::string>& context_fields() {
  static const std::vector<std::string> f = {"run_id",  "task_id",        "task_name",     "workflow_name",
                                             "attempt", "parallel_index", "parallel_count"};
  return f;
}

bool is_reserved_root(const std::string& name) {
  return name == "input" || name == "item" || name == "ctx" || name == "context";
}

json expression_scope(const json& run_input, const json& upstream, const json& ctx, const json* item) {
  json scope = json::object();
  for (const auto& f : context_fields())
    if (ctx.is_object() && ctx.contains(f)) scope[f] = ctx[f];
  if (upstream.is_object())
    for (auto it = upstream.begin(); it != upstream.end(); ++it) scope[it.key()] = it.value();
  scope["input"] = run_input.is_null() ? json::object() : run_input;
  scope["ctx"] = ctx;
  scope["context"] = ctx;
  if (item) scope["item"] = *item;
  return scope;
}

namespace {

// The value `e` names in `scope`, or an ExpressionError saying which step failed and why.
json lookup(const Expression& e, const json& scope, const std::string& where) {
  const std::string pre = (where.empty() ? "" : where + ": ") + "'" + e.source() + "': ";
  const std::string& root = e.root();
  auto it = scope.find(root);
  if (it == scope.end()) {
    std::string known;
    for (auto k = scope.begin(); k != scope.end(); ++k) {
      const std::string& n = k.key();
      if (n == "context" || std::find(context_fields().begin(), context_fields().end(), n) != context_fields().end())
        continue;
      known += (known.empty() ? "" : ", ") + n;
    }
    std::string hint = root == "item" ? " ('item' exists only in foreach tasks)" : "";
    throw ExpressionError(pre + "unknown name '" + root + "'" + hint + " (known here: " + known +
                          "; a task's output is visible only to tasks that depend on it)");
  }
  const json* cur = &*it;
  for (size_t i = 1; i < e.path.size(); ++i) {
    const PathStep& step = e.path[i];
    const std::string at = join_path(e.path, i);
    if (cur->is_object()) {
      auto f = cur->find(step.key);
      if (f == cur->end()) {
        std::string names;
        size_t n = 0;
        for (auto k = cur->begin(); k != cur->end() && n < 8; ++k, ++n) names += (n ? ", " : "") + k.key();
        if (cur->size() > 8) names += ", ...";
        throw ExpressionError(pre + at + " has no field '" + step.key + "'" +
                              (names.empty() ? " (it is an empty object)" : " (fields: " + names + ")"));
      }
      cur = &*f;
    } else if (cur->is_array()) {
      if (!step.is_index && !all_digits(step.key))
        throw ExpressionError(pre + at + " is a list; use an index like [0], not '" + step.key + "'");
      size_t idx = step.is_index ? step.index : std::stoul(step.key);
      if (idx >= cur->size())
        throw ExpressionError(pre + at + " has " + std::to_string(cur->size()) + " item(s), no index " +
                              std::to_string(idx));
      cur = &(*cur)[idx];
    } else {
      throw ExpressionError(pre + at + " is " + describe_value(*cur) + ", which has no field '" + step_label(step) +
                            "'");
    }
  }
  return *cur;
}

json render_string(const std::string& s, const json& scope, const std::string& where) {
  auto exprs = find_expressions(s);
  std::vector<const Expression*> valid;
  for (const auto& e : exprs)
    if (e.error.empty()) valid.push_back(&e);
  if (valid.empty()) return s;
  auto value = [&](const Expression& e) { return e.is_literal ? json(e.literal) : lookup(e, scope, where); };
  if (valid.size() == 1 && valid[0]->begin == 0 && valid[0]->end == s.size()) return value(*valid[0]);
  std::string out;
  size_t pos = 0;
  for (const Expression* e : valid) {
    out.append(s, pos, e->begin - pos);
    out += value_text(value(*e));
    pos = e->end;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

}  // namespace

json render(const json& value, const json& scope, const std::string& where) {
  if (value.is_object()) {
    json out = json::object();
    for (auto it = value.begin(); it != value.end(); ++it)
      out[it.key()] = render(it.value(), scope, where.empty() ? it.key() : where + "." + it.key());
    return out;
  }
  if (value.is_array()) {
    json out = json::array();
    for (size_t i = 0; i < value.size(); ++i)
      out.push_back(render(value[i], scope, where + "[" + std::to_string(i) + "]"));
    return out;
  }
  if (!value.is_string()) return value;
  return render_string(value.get_ref<const std::string&>(), scope, where);
}

json resolve_templates(const json& value, const json& scope) {
  return render(value, scope, "");
}

}  // namespace ork
