// Type schemas: a small recursive-descent parser for type expressions, a validator that reports field paths, static
// assignability (coinductive over recursive named types) and the JSON Schema mapping.
#include "types.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <ork/suggest.hpp>
#include <set>

namespace ork {

namespace {

using Kind = Type::Kind;

bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_ident_char(char c) {
  return is_ident_start(c) || (c >= '0' && c <= '9');
}
bool is_identifier(const std::string& s) {
  return !s.empty() && is_ident_start(s[0]) && std::all_of(s.begin(), s.end(), is_ident_char);
}

TypePtr make(Kind k) {
  auto t = std::make_shared<Type>();
  t->kind = k;
  return t;
}

const std::map<std::string, Kind>& builtins() {
  static const std::map<std::string, Kind> b = {{"any", Kind::Any},
                                                {"int", Kind::Int},
                                                {"float", Kind::Float},
                                                {"str", Kind::Str},
                                                {"bool", Kind::Bool},
                                                {"date", Kind::Date},
                                                {"datetime", Kind::DateTime},
                                                {"datetime_notz", Kind::DateTimeNoTz},
                                                {"datetime_tz", Kind::DateTimeTz},
                                                {"datetime_utc", Kind::DateTimeUtc},
                                                {"None", Kind::Null},
                                                {"null", Kind::Null}};
  return b;
}

// Names users bring from other systems, with the spelling this grammar uses.
const std::map<std::string, std::string>& legacy_names() {
  static const std::map<std::string, std::string> m = {{"string", "str"},
                                                       {"integer", "int"},
                                                       {"number", "float"},
                                                       {"boolean", "bool"},
                                                       {"double", "float"},
                                                       {"long", "int"},
                                                       {"timestamp", "datetime_tz"},
                                                       {"object", "dict"},
                                                       {"array", "list"},
                                                       {"List", "list"},
                                                       {"Dict", "dict"},
                                                       {"Any", "any"},
                                                       {"String", "str"},
                                                       {"Int", "int"},
                                                       {"Float", "float"},
                                                       {"Bool", "bool"}};
  return m;
}

const std::set<std::string>& reserved_names() {
  static const std::set<std::string> r = {
      "any",  "int",  "float", "str",  "bool",     "date",  "datetime", "datetime_notz", "datetime_tz", "datetime_utc",
      "None", "null", "list",  "dict", "Optional", "Union", "Literal",  "enum",          "types"};
  return r;
}

bool is_null_type(const TypePtr& t) {
  return t->kind == Kind::Null;
}

// A union of `opts`, flattened, without duplicate None; a single option stands alone.
TypePtr make_union(std::vector<TypePtr> opts) {
  std::vector<TypePtr> flat;
  bool has_null = false;
  std::function<void(const TypePtr&)> add = [&](const TypePtr& t) {
    if (t->kind == Kind::Union) {
      for (const auto& o : t->options) add(o);
    } else if (is_null_type(t)) {
      has_null = true;
    } else {
      flat.push_back(t);
    }
  };
  for (const auto& o : opts) add(o);
  if (has_null) flat.push_back(make(Kind::Null));
  if (flat.size() == 1) return flat[0];
  auto u = std::make_shared<Type>();
  u->kind = Kind::Union;
  u->options = std::move(flat);
  return u;
}

TypePtr make_optional(TypePtr t) {
  return make_union({std::move(t), make(Kind::Null)});
}

// Splits "T = default" at the first '=' outside brackets and quotes. Returns false when there is no default.
bool split_default(const std::string& s, std::string& type, std::string& dflt) {
  int depth = 0;
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == '\\')
        ++i;
      else if (c == quote)
        quote = 0;
      continue;
    }
    if (c == '"' || c == '\'')
      quote = c;
    else if (c == '[' || c == '(' || c == '{')
      ++depth;
    else if (c == ']' || c == ')' || c == '}')
      --depth;
    else if (c == '=' && depth == 0) {
      type = s.substr(0, i);
      dflt = s.substr(i + 1);
      auto trim = [](std::string& x) {
        size_t a = x.find_first_not_of(" \t"), b = x.find_last_not_of(" \t");
        x = a == std::string::npos ? "" : x.substr(a, b - a + 1);
      };
      trim(type);
      trim(dflt);
      return true;
    }
  }
  return false;
}

// The default's text as JSON: JSON literals as such ('single quotes' allowed for strings), anything else is a string.
json parse_default(const std::string& text) {
  if (text.size() >= 2 && text.front() == '\'' && text.back() == '\'') return text.substr(1, text.size() - 2);
  json j = json::parse(text, nullptr, false);
  if (!j.is_discarded()) return j;
  if (text == "None" || text == "~") return nullptr;
  if (text == "True") return true;
  if (text == "False") return false;
  return text;
}

// Recursive-descent parser for one type-expression string.
class ExprParser {
 public:
  ExprParser(const std::string& s, const std::string& path, const std::set<std::string>& known)
      : s_(s), path_(path), known_(known) {}

  TypePtr parse_all() {
    TypePtr t = parse_union();
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected '" + s_.substr(pos_) + "'");
    return t;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { throw TypeError(path_, "invalid type '" + s_ + "': " + msg); }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  bool peek(char c) {
    skip_ws();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  void expect(char c) {
    if (!peek(c))
      fail(std::string("expected '") + c + "'" + (pos_ < s_.size() ? " at '" + s_.substr(pos_) + "'" : " at the end"));
    ++pos_;
  }

  TypePtr parse_union() {
    std::vector<TypePtr> opts{parse_postfix()};
    while (peek('|')) {
      ++pos_;
      opts.push_back(parse_postfix());
    }
    return opts.size() == 1 ? opts[0] : make_union(std::move(opts));
  }

  TypePtr parse_postfix() {
    TypePtr t = parse_primary();
    while (peek('?')) {
      ++pos_;
      t = make_optional(t);
    }
    return t;
  }

  std::string ident() {
    skip_ws();
    size_t start = pos_;
    while (pos_ < s_.size() && (is_ident_char(s_[pos_]) || s_[pos_] == '.')) ++pos_;
    return s_.substr(start, pos_ - start);
  }

  std::vector<TypePtr> args() {
    expect('[');
    std::vector<TypePtr> out{parse_union()};
    while (peek(',')) {
      ++pos_;
      out.push_back(parse_union());
    }
    expect(']');
    return out;
  }

  // Literal["a", 'b', 3, true] / enum[a, b]: JSON literals, quoted strings or bare words.
  std::vector<json> literals() {
    expect('[');
    std::vector<json> out;
    while (true) {
      skip_ws();
      if (pos_ >= s_.size()) fail("unterminated list of values");
      char c = s_[pos_];
      if (c == '"' || c == '\'') {
        size_t end = pos_ + 1;
        std::string v;
        while (end < s_.size() && s_[end] != c) {
          if (s_[end] == '\\' && end + 1 < s_.size()) ++end;
          v += s_[end++];
        }
        if (end >= s_.size()) fail("unterminated string");
        out.emplace_back(v);
        pos_ = end + 1;
      } else {
        size_t start = pos_;
        while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != ']') ++pos_;
        std::string word = s_.substr(start, pos_ - start);
        while (!word.empty() && (word.back() == ' ' || word.back() == '\t')) word.pop_back();
        if (word.empty()) fail("empty value in a list of values");
        json j = json::parse(word, nullptr, false);
        out.push_back(j.is_discarded() || j.is_structured() ? json(word) : j);
      }
      if (peek(',')) {
        ++pos_;
        continue;
      }
      expect(']');
      return out;
    }
  }

  TypePtr parse_primary() {
    skip_ws();
    if (pos_ >= s_.size()) fail("a type is missing");
    if (s_[pos_] == '(') {
      ++pos_;
      TypePtr t = parse_union();
      expect(')');
      return t;
    }
    if (s_[pos_] == '[') {
      ++pos_;
      auto t = std::make_shared<Type>();
      t->kind = Kind::List;
      t->elem = parse_union();
      expect(']');
      return t;
    }
    std::string name = ident();
    if (name.empty()) fail("expected a type name at '" + s_.substr(pos_) + "'");
    if (name.rfind("types.", 0) == 0) {
      std::string alias = name.substr(6);
      if (!known_.count(alias)) fail("unknown type '" + alias + "' (not declared under 'types')");
      return named(alias);
    }
    if (auto b = builtins().find(name); b != builtins().end()) return make(b->second);
    if (name == "list") {
      auto t = std::make_shared<Type>();
      t->kind = Kind::List;
      if (peek('[')) {
        auto a = args();
        if (a.size() != 1) fail("list takes one element type: list[T]");
        t->elem = a[0];
      } else {
        t->elem = make(Kind::Any);
      }
      return t;
    }
    if (name == "dict") {
      auto t = std::make_shared<Type>();
      t->kind = Kind::Dict;
      t->key = make(Kind::Str);
      t->elem = make(Kind::Any);
      if (peek('[')) {
        auto a = args();
        if (a.size() != 2) fail("dict takes a key and a value type: dict[K, V]");
        if (a[0]->kind != Kind::Str && a[0]->kind != Kind::Int) fail("dict keys must be str or int");
        t->key = a[0];
        t->elem = a[1];
      }
      return t;
    }
    if (name == "Optional") {
      auto a = args();
      if (a.size() != 1) fail("Optional takes one type: Optional[T]");
      return make_optional(a[0]);
    }
    if (name == "Union") return make_union(args());
    if (name == "Literal" || name == "enum") {
      auto t = std::make_shared<Type>();
      t->kind = Kind::Enum;
      t->values = literals();
      return t;
    }
    if (known_.count(name)) return named(name);
    std::string hint;
    if (auto l = legacy_names().find(name); l != legacy_names().end()) {
      hint = l->second;
    } else {
      std::vector<std::string> candidates(known_.begin(), known_.end());
      for (const auto& [b, k] : builtins()) candidates.push_back(b);
      for (const char* c : {"list", "dict", "Optional", "Literal"}) candidates.push_back(c);
      hint = closest_name(name, candidates);
    }
    throw TypeError(path_, "unknown type '" + name + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                               (s_ == name ? "" : " in '" + s_ + "'") +
                               " (not declared under 'types' and not a builtin)");
  }

  static TypePtr named(const std::string& alias) {
    auto t = std::make_shared<Type>();
    t->kind = Kind::Named;
    t->name = alias;
    return t;
  }

  const std::string& s_;
  const std::string& path_;
  const std::set<std::string>& known_;
  size_t pos_ = 0;
};

struct PendingDefault {
  std::string path;
  TypePtr type;
  json value;
};

// Compiles JSON type specs against the set of declared names.
class SpecCompiler {
 public:
  explicit SpecCompiler(const std::set<std::string>& known) : known_(known) {}

  TypePtr spec(const json& j, const std::string& path) {
    if (j.is_string()) {
      std::string t, d;
      if (split_default(j.get<std::string>(), t, d))
        throw TypeError(path, "a default ('= value') is only allowed on an object field");
      return ExprParser(j.get_ref<const std::string&>(), path, known_).parse_all();
    }
    if (j.is_object()) return object(j, path);
    if (j.is_array()) {
      if (j.size() != 1) throw TypeError(path, "a list type is written [T] with exactly one element type");
      auto t = std::make_shared<Type>();
      t->kind = Kind::List;
      t->elem = spec(j[0], path + "[0]");
      return t;
    }
    throw TypeError(path, "expected a type (a name such as 'int' or 'list[User]', a map of fields, or [T]), got " +
                              describe_value(j));
  }

  std::vector<PendingDefault>& defaults() { return defaults_; }

 private:
  TypePtr object(const json& j, const std::string& path) {
    auto t = std::make_shared<Type>();
    t->kind = Kind::Object;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string fpath = path + "." + it.key();
      Field f;
      f.name = it.key();
      const json& v = it.value();
      std::string type_text, dflt;
      if (v.is_string() && split_default(v.get<std::string>(), type_text, dflt)) {
        if (type_text.empty()) throw TypeError(fpath, "a type is missing before '='");
        f.type = ExprParser(type_text, fpath, known_).parse_all();
        f.fallback = parse_default(dflt);
        defaults_.push_back({fpath, f.type, *f.fallback});
      } else {
        f.type = spec(v, fpath);
      }
      t->fields.push_back(std::move(f));
    }
    return t;
  }

  const std::set<std::string>& known_;
  std::vector<PendingDefault> defaults_;
};

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::Any:
      return "any";
    case Kind::Null:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::Str:
      return "str";
    case Kind::Date:
      return "date";
    case Kind::DateTime:
      return "datetime";
    case Kind::DateTimeNoTz:
      return "datetime_notz";
    case Kind::DateTimeTz:
      return "datetime_tz";
    case Kind::DateTimeUtc:
      return "datetime_utc";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Object:
      return "object";
    case Kind::Union:
      return "union";
    case Kind::Enum:
      return "Literal";
    case Kind::Named:
      return "named";
  }
  return "?";
}

bool is_temporal(Kind k) {
  return k == Kind::Date || k == Kind::DateTime || k == Kind::DateTimeNoTz || k == Kind::DateTimeTz ||
         k == Kind::DateTimeUtc;
}

// ---- Temporal formats ----

bool digits(const std::string& s, size_t at, size_t n) {
  if (at + n > s.size()) return false;
  for (size_t i = at; i < at + n; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}
int num(const std::string& s, size_t at, size_t n) {
  return std::stoi(s.substr(at, n));
}

bool valid_date_at(const std::string& s, size_t at) {
  if (!digits(s, at, 4) || s.size() < at + 10 || s[at + 4] != '-' || !digits(s, at + 5, 2) || s[at + 7] != '-' ||
      !digits(s, at + 8, 2))
    return false;
  int y = num(s, at, 4), m = num(s, at + 5, 2), d = num(s, at + 8, 2);
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= days[m - 1] + (m == 2 && leap ? 1 : 0);
}

// HH:MM[:SS[.fraction]] starting at `at`; seconds required unless `seconds_optional`. Returns the end or npos.
size_t time_end(const std::string& s, size_t at, bool seconds_optional) {
  if (!digits(s, at, 2) || s.size() < at + 5 || s[at + 2] != ':' || !digits(s, at + 3, 2)) return std::string::npos;
  if (num(s, at, 2) > 23 || num(s, at + 3, 2) > 59) return std::string::npos;
  size_t i = at + 5;
  if (i < s.size() && s[i] == ':') {
    if (!digits(s, i + 1, 2) || num(s, i + 1, 2) > 60) return std::string::npos;  // 60: leap second
    i += 3;
    if (i < s.size() && s[i] == '.') {
      size_t f = ++i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
      if (i == f) return std::string::npos;
    }
  } else if (!seconds_optional) {
    return std::string::npos;
  }
  return i;
}

// "Z" or ±HH:MM (±HHMM when `lenient`) at `at`, ending the string. 0 = none present, 1 = Z, 2 = offset, -1 = bad.
int offset_kind(const std::string& s, size_t at, bool lenient) {
  if (at == s.size()) return 0;
  if (s[at] == 'Z' || (lenient && s[at] == 'z')) return at + 1 == s.size() ? 1 : -1;
  if (s[at] != '+' && s[at] != '-') return -1;
  if (!digits(s, at + 1, 2) || num(s, at + 1, 2) > 23) return -1;
  size_t i = at + 3;
  if (i < s.size() && s[i] == ':')
    ++i;
  else if (!lenient)
    return -1;
  if (!digits(s, i, 2) || num(s, i, 2) > 59) return -1;
  return i + 2 == s.size() ? 2 : -1;
}

}  // namespace

bool is_date(const std::string& s) {
  return s.size() == 10 && valid_date_at(s, 0);
}

bool is_datetime(const std::string& s, Type::Kind kind) {
  if (kind == Kind::Date) return is_date(s);
  const bool lenient = kind == Kind::DateTime;
  if (s.size() < 16 || !valid_date_at(s, 0)) return false;
  if (s[10] != 'T' && !(lenient && (s[10] == ' ' || s[10] == 't'))) return false;
  size_t end = time_end(s, 11, lenient);
  if (end == std::string::npos) return false;
  int off = offset_kind(s, end, lenient);
  switch (kind) {
    case Kind::DateTime:
      return off >= 0;
    case Kind::DateTimeNoTz:
      return off == 0;
    case Kind::DateTimeTz:
      return off > 0;
    case Kind::DateTimeUtc:
      return off == 1;
    default:
      return false;
  }
}

std::string describe_value(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return std::string("bool ") + (v.get<bool>() ? "true" : "false");
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "int " + v.dump();
    case json::value_t::number_float:
      return "float " + v.dump();
    case json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      std::string shown = s.size() > 40 ? s.substr(0, 37) + "..." : s;
      return "str " + json(shown).dump(-1, ' ', false, json::error_handler_t::replace);
    }
    case json::value_t::array: {
      if (v.empty()) return "list (empty)";
      std::string first;
      for (const auto& e : v) {
        std::string k = describe_value(e);
        k = k.substr(0, k.find(' '));
        if (k.rfind("list", 0) == 0) k = "list";
        if (first.empty())
          first = k;
        else if (first != k)
          return "list[mixed]";
      }
      return "list[" + first + "]";
    }
    case json::value_t::object: {
      std::string keys;
      size_t n = 0;
      for (auto it = v.begin(); it != v.end() && n < 4; ++it, ++n) keys += (n ? ", " : "") + it.key();
      if (v.size() > 4) keys += ", ...";
      return v.empty() ? "object {}" : "object {" + keys + "}";
    }
    default:
      return "value";
  }
}

// ---- TypeSystem ----

TypeSystem TypeSystem::compile(const json& types) {
  TypeSystem ts;
  if (types.is_null()) return ts;
  if (!types.is_object()) throw TypeError("types", "expected a map of type name to type, got " + describe_value(types));
  std::set<std::string> known;
  for (auto it = types.begin(); it != types.end(); ++it) {
    const std::string& name = it.key();
    if (!is_identifier(name))
      throw TypeError("types." + name, "invalid type name '" + name + "' (letters, digits, '_')");
    if (reserved_names().count(name))
      throw TypeError("types." + name, "'" + name + "' is a builtin type name and cannot be redefined");
    known.insert(name);
  }
  SpecCompiler c(known);
  for (auto it = types.begin(); it != types.end(); ++it) ts.named_[it.key()] = c.spec(it.value(), "types." + it.key());
  // An alias that reaches itself through unions and other aliases alone has no finite value: A = B | None, B = A.
  for (const auto& [name, t] : ts.named_) {
    std::set<std::string> seen{name};
    std::function<void(const TypePtr&)> walk = [&](const TypePtr& x) {
      if (x->kind == Kind::Named) {
        if (x->name == name) {
          throw TypeError("types." + name,
                          "type '" + name + "' refers to itself without a list or an object in between");
        }
        if (seen.insert(x->name).second) walk(ts.named_.at(x->name));
      } else if (x->kind == Kind::Union) {
        for (const auto& o : x->options) walk(o);
      }
    };
    walk(t);
  }
  for (auto& d : c.defaults()) {
    json v = d.value;
    auto issues = ts.validate(*d.type, v, "default");
    if (!issues.empty())
      throw TypeError(d.path, "default " + d.value.dump() + " is not a valid " + ts.display(*d.type) + " (" +
                                  issues[0].str() + ")");
  }
  return ts;
}

TypePtr TypeSystem::parse(const json& spec, const std::string& path) const {
  std::set<std::string> known;
  for (const auto& [k, v] : named_) known.insert(k);
  SpecCompiler c(known);
  TypePtr t = c.spec(spec, path);
  for (auto& d : c.defaults()) {
    json v = d.value;
    auto issues = validate(*d.type, v, "default");
    if (!issues.empty())
      throw TypeError(
          d.path, "default " + d.value.dump() + " is not a valid " + display(*d.type) + " (" + issues[0].str() + ")");
  }
  return t;
}

const Type& TypeSystem::resolve(const Type& t) const {
  const Type* cur = &t;
  for (int hops = 0; cur->kind == Kind::Named && hops < 1000; ++hops) {
    auto it = named_.find(cur->name);
    if (it == named_.end()) throw std::runtime_error("unknown type '" + cur->name + "'");
    cur = it->second.get();
  }
  return *cur;
}

bool TypeSystem::nullable(const Type& t) const {
  const Type& r = resolve(t);
  if (r.kind == Kind::Null || r.kind == Kind::Any) return true;
  if (r.kind == Kind::Union)
    return std::any_of(r.options.begin(), r.options.end(), [&](const TypePtr& o) { return nullable(*o); });
  return false;
}

std::string TypeSystem::display(const Type& t) const {
  switch (t.kind) {
    case Kind::Named:
      return t.name;
    case Kind::List:
      return "list[" + display(*t.elem) + "]";
    case Kind::Dict:
      return "dict[" + display(*t.key) + ", " + display(*t.elem) + "]";
    case Kind::Object: {
      std::string s = "{";
      for (size_t i = 0; i < t.fields.size(); ++i) {
        if (i == 4) {
          s += ", ...";
          break;
        }
        s += (i ? ", " : "") + t.fields[i].name + ": " + display(*t.fields[i].type);
      }
      return s + "}";
    }
    case Kind::Union: {
      std::string s;
      for (size_t i = 0; i < t.options.size(); ++i) s += (i ? " | " : "") + display(*t.options[i]);
      return s;
    }
    case Kind::Enum: {
      std::string s = "Literal[";
      for (size_t i = 0; i < t.values.size(); ++i) s += (i ? ", " : "") + t.values[i].dump();
      return s + "]";
    }
    default:
      return kind_name(t.kind);
  }
}

namespace {

class Validator {
 public:
  Validator(const TypeSystem& ts, std::vector<TypeIssue>& out, size_t max) : ts_(ts), out_(out), max_(max) {}

  // True when `v` is a valid `t` (defaults filled in).
  bool check(const Type& declared, json& v, const std::string& path) {
    if (out_.size() >= max_) return false;
    const Type& t = ts_.resolve(declared);
    auto bad = [&] {
      out_.push_back({path, ts_.display(declared), describe_value(v)});
      return false;
    };
    switch (t.kind) {
      case Kind::Any:
        return true;
      case Kind::Null:
        return v.is_null() ? true : bad();
      case Kind::Bool:
        return v.is_boolean() ? true : bad();
      case Kind::Int:
        if (v.is_number_integer()) return true;
        if (v.is_number_float()) {
          double d = v.get<double>();
          if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) {
            v = static_cast<int64_t>(d);
            return true;
          }
        }
        return bad();
      case Kind::Float:
        return v.is_number() ? true : bad();
      case Kind::Str:
        return v.is_string() ? true : bad();
      case Kind::Date:
      case Kind::DateTime:
      case Kind::DateTimeNoTz:
      case Kind::DateTimeTz:
      case Kind::DateTimeUtc:
        return v.is_string() && is_datetime(v.get_ref<const std::string&>(), t.kind) ? true : bad();
      case Kind::Enum:
        return std::find(t.values.begin(), t.values.end(), v) != t.values.end() ? true : bad();
      case Kind::List: {
        if (!v.is_array()) return bad();
        bool ok = true;
        for (size_t i = 0; i < v.size(); ++i) ok = check(*t.elem, v[i], path + "[" + std::to_string(i) + "]") && ok;
        return ok;
      }
      case Kind::Dict: {
        if (!v.is_object()) return bad();
        bool ok = true;
        for (auto it = v.begin(); it != v.end(); ++it) {
          if (t.key->kind == Kind::Int) {
            const std::string& k = it.key();
            size_t s = !k.empty() && k[0] == '-' ? 1 : 0;
            if (s == k.size() || !std::all_of(k.begin() + s, k.end(), [](char c) { return c >= '0' && c <= '9'; })) {
              out_.push_back({path + "." + k, "an int key", "key " + json(k).dump()});
              ok = false;
              continue;
            }
          }
          ok = check(*t.elem, it.value(), path + "." + it.key()) && ok;
        }
        return ok;
      }
      case Kind::Object: {
        if (!v.is_object()) return bad();
        bool ok = true;
        for (const auto& f : t.fields) {
          auto it = v.find(f.name);
          if (it == v.end()) {
            if (f.fallback) {
              v[f.name] = *f.fallback;
            } else if (!ts_.nullable(*f.type)) {
              out_.push_back({path + "." + f.name, ts_.display(*f.type), "nothing (the field is missing)"});
              ok = false;
            }
            continue;
          }
          ok = check(*f.type, *it, path + "." + f.name) && ok;
        }
        return ok;
      }
      case Kind::Union: {
        for (const auto& o : t.options) {
          std::vector<TypeIssue> scratch;
          Validator sub(ts_, scratch, 1);
          json copy = v;
          if (sub.check(*o, copy, path)) {
            v = std::move(copy);
            return true;
          }
        }
        // One non-null option and a non-null value: its own, more precise, problems.
        std::vector<const TypePtr*> non_null;
        for (const auto& o : t.options)
          if (ts_.resolve(*o).kind != Kind::Null) non_null.push_back(&o);
        if (non_null.size() == 1 && !v.is_null()) return check(**non_null[0], v, path);
        return bad();
      }
      case Kind::Named:
        return bad();  // resolve() never returns a Named
    }
    return bad();
  }

 private:
  const TypeSystem& ts_;
  std::vector<TypeIssue>& out_;
  size_t max_;
};

}  // namespace

std::vector<TypeIssue> TypeSystem::validate(const Type& t, json& value, const std::string& root,
                                            size_t max_issues) const {
  std::vector<TypeIssue> out;
  Validator(*this, out, max_issues).check(t, value, root);
  return out;
}

namespace {

class Assign {
 public:
  explicit Assign(const TypeSystem& ts) : ts_(ts) {}

  std::optional<std::string> check(const Type& s_decl, const Type& d_decl, const std::string& path) {
    auto key = std::make_pair(&s_decl, &d_decl);
    if (active_.count(key)) return std::nullopt;  // recursive types: assume the cycle holds
    active_.insert(key);
    auto r = check_inner(s_decl, d_decl, path);
    active_.erase(key);
    return r;
  }

 private:
  std::string at(const std::string& path) const { return path.empty() ? "" : path + ": "; }

  std::optional<std::string> mismatch(const Type& s, const Type& d, const std::string& path) const {
    return at(path) + ts_.display(s) + " is not " + ts_.display(d);
  }

  std::optional<std::string> check_inner(const Type& s_decl, const Type& d_decl, const std::string& path) {
    const Type& s = ts_.resolve(s_decl);
    const Type& d = ts_.resolve(d_decl);
    if (d.kind == Kind::Any || s.kind == Kind::Any) return std::nullopt;
    if (s.kind == Kind::Union) {
      for (const auto& o : s.options) {
        if (auto why = check(*o, d_decl, path)) {
          if (ts_.resolve(*o).kind == Kind::Null)
            return at(path) + ts_.display(s_decl) + " may be None but " + ts_.display(d_decl) + " is not optional";
          return why;
        }
      }
      return std::nullopt;
    }
    if (d.kind == Kind::Union) {
      for (const auto& o : d.options)
        if (!check(s_decl, *o, path)) return std::nullopt;
      // One non-null option: its own, more precise, reason.
      std::vector<TypePtr> non_null;
      for (const auto& o : d.options)
        if (ts_.resolve(*o).kind != Kind::Null) non_null.push_back(o);
      if (non_null.size() == 1) return check(s_decl, *non_null[0], path);
      return mismatch(s_decl, d_decl, path);
    }
    if (s.kind == d.kind) {
      switch (s.kind) {
        case Kind::List:
          return check(*s.elem, *d.elem, path + "[]");
        case Kind::Dict:
          return check(*s.elem, *d.elem, path + ".*");
        case Kind::Enum:
          for (const auto& v : s.values)
            if (std::find(d.values.begin(), d.values.end(), v) == d.values.end())
              return at(path) + ts_.display(s_decl) + " allows " + v.dump() + ", which " + ts_.display(d_decl) +
                     " does not";
          return std::nullopt;
        case Kind::Object:
          return objects(s, d, path);
        default:
          return std::nullopt;
      }
    }
    if (s.kind == Kind::Int && d.kind == Kind::Float) return std::nullopt;
    if (is_temporal(s.kind) && d.kind == Kind::DateTime && s.kind != Kind::Date) return std::nullopt;
    if (s.kind == Kind::DateTimeUtc && d.kind == Kind::DateTimeTz) return std::nullopt;
    if (s.kind == Kind::Enum) {
      for (const auto& v : s.values) {
        json copy = v;
        if (!ts_.validate(d_decl, copy, "x", 1).empty())
          return at(path) + ts_.display(s_decl) + " allows " + v.dump() + ", which is not " + ts_.display(d_decl);
      }
      return std::nullopt;
    }
    if (s.kind == Kind::Object && d.kind == Kind::Dict) {
      for (const auto& f : s.fields)
        if (auto why = check(*f.type, *d.elem, path + "." + f.name)) return why;
      return std::nullopt;
    }
    return mismatch(s_decl, d_decl, path);
  }

  std::optional<std::string> objects(const Type& s, const Type& d, const std::string& path) {
    for (const auto& df : d.fields) {
      const std::string fp = path.empty() ? df.name : path + "." + df.name;
      auto sf = std::find_if(s.fields.begin(), s.fields.end(), [&](const Field& f) { return f.name == df.name; });
      const bool d_needs = !df.fallback && !ts_.nullable(*df.type);
      if (sf == s.fields.end()) {
        if (d_needs) return fp + ": required field '" + df.name + "' (" + ts_.display(*df.type) + ") is not produced";
        continue;
      }
      if (d_needs && !sf->fallback && ts_.nullable(*sf->type))
        return fp + ": may be missing or None but " + ts_.display(*df.type) + " is required";
      if (auto why = check(*sf->type, *df.type, fp)) return why;
    }
    return std::nullopt;
  }

  const TypeSystem& ts_;
  std::set<std::pair<const Type*, const Type*>> active_;
};

}  // namespace

std::optional<std::string> TypeSystem::assignable(const Type& src, const Type& dst) const {
  return Assign(*this).check(src, dst, "");
}

TypePtr TypeSystem::at_path(const TypePtr& t, const std::vector<PathStep>& path, std::string* why,
                            const std::string& root) const {
  TypePtr cur = t;
  std::string walked = root;
  for (const auto& step : path) {
    const std::string label = step.is_index ? "[" + std::to_string(step.index) + "]" : step.key;
    // Look through None and aliases: a null at run time fails the lookup there, with its own message.
    TypePtr r = cur;
    while (r->kind == Kind::Named) r = named_.at(r->name);
    if (r->kind == Kind::Union) {
      std::vector<TypePtr> non_null;
      for (const auto& o : r->options) {
        TypePtr x = o;
        while (x->kind == Kind::Named) x = named_.at(x->name);
        if (x->kind != Kind::Null) non_null.push_back(x);
      }
      if (non_null.size() != 1) {
        if (why)
          *why = (walked.empty() ? "the value" : walked) + " is " + display(*cur) + ", a union: cannot look up '" +
                 label + "' statically";
        return make(Kind::Any);
      }
      r = non_null[0];
    }
    const std::string& here = walked;
    switch (r->kind) {
      case Kind::Any:
        return r;
      case Kind::Object: {
        auto f = std::find_if(r->fields.begin(), r->fields.end(), [&](const Field& x) { return x.name == step.key; });
        if (step.is_index || f == r->fields.end()) {
          if (why) {
            std::string names;
            for (const auto& x : r->fields) names += (names.empty() ? "" : ", ") + x.name;
            *why = here + " (" + display(*cur) + ") has no field '" + label + "'" +
                   (names.empty() ? "" : " (fields: " + names + ")");
          }
          return nullptr;
        }
        cur = f->type;
        break;
      }
      case Kind::List:
        if (!step.is_index &&
            !std::all_of(step.key.begin(), step.key.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          if (why) *why = here + " is " + display(*cur) + ": use an index like [0], not '" + label + "'";
          return nullptr;
        }
        cur = r->elem;
        break;
      case Kind::Dict:
        cur = r->elem;
        break;
      default:
        if (why) *why = here + " is " + display(*cur) + ", which has no field '" + label + "'";
        return nullptr;
    }
    walked += step.is_index ? label : "." + label;
  }
  return cur;
}

json TypeSystem::json_schema(const Type& t) const {
  switch (t.kind) {
    case Kind::Any:
      return json::object();
    case Kind::Null:
      return {{"type", "null"}};
    case Kind::Bool:
      return {{"type", "boolean"}};
    case Kind::Int:
      return {{"type", "integer"}};
    case Kind::Float:
      return {{"type", "number"}};
    case Kind::Str:
      return {{"type", "string"}};
    case Kind::Date:
      return {{"type", "string"}, {"format", "date"}, {"pattern", "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}};
    case Kind::DateTime:
      return {
          {"type", "string"},
          {"pattern",
           "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?$"}};
    case Kind::DateTimeNoTz:
      return {{"type", "string"}, {"pattern", "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?$"}};
    case Kind::DateTimeTz:
      return {
          {"type", "string"},
          {"format", "date-time"},
          {"pattern", "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"}};
    case Kind::DateTimeUtc:
      return {{"type", "string"},
              {"format", "date-time"},
              {"pattern", "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$"}};
    case Kind::List:
      return {{"type", "array"}, {"items", json_schema(*t.elem)}};
    case Kind::Dict: {
      json s{{"type", "object"}, {"additionalProperties", json_schema(*t.elem)}};
      if (t.key->kind == Kind::Int) s["propertyNames"] = {{"pattern", "^-?[0-9]+$"}};
      return s;
    }
    case Kind::Object: {
      json props = json::object(), required = json::array();
      for (const auto& f : t.fields) {
        json p = json_schema(*f.type);
        if (f.fallback) p["default"] = *f.fallback;
        props[f.name] = std::move(p);
        if (!f.fallback && !nullable(*f.type)) required.push_back(f.name);
      }
      json s{{"type", "object"}, {"properties", std::move(props)}};
      if (!required.empty()) s["required"] = std::move(required);
      return s;
    }
    case Kind::Union: {
      json any = json::array();
      for (const auto& o : t.options) any.push_back(json_schema(*o));
      return {{"anyOf", std::move(any)}};
    }
    case Kind::Enum:
      return {{"enum", t.values}};
    case Kind::Named:
      return {{"$ref", "#/$defs/" + t.name}};
  }
  return json::object();
}

json TypeSystem::schema_document(const std::string& title, const std::map<std::string, TypePtr>& extra) const {
  json defs = json::object();
  for (const auto& [name, t] : named_) {
    json s = json_schema(*t);
    s["title"] = name;
    defs[name] = std::move(s);
  }
  for (const auto& [name, t] : extra) {
    json s = json_schema(*t);
    if (s.contains("$ref")) s = {{"$ref", s["$ref"]}};
    s["title"] = name;
    defs[name] = std::move(s);
  }
  return {{"$schema", "https://json-schema.org/draft/2020-12/schema"}, {"title", title}, {"$defs", std::move(defs)}};
}

}  // namespace ork
