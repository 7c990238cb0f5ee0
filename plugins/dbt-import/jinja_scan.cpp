// A small scanner over dbt's Jinja-in-SQL: tags and expressions are tokenized just enough to read the literal
// arguments of ref/source/config/var calls with their line numbers.
#include "jinja_scan.hpp"

#include <algorithm>
#include <cctype>

namespace ork::dbt {

namespace {

using json = nlohmann::json;

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// Tokenizer over one tag or expression body; tracks line and column of the current position.
class Expr {
 public:
  Expr(std::string_view s, int line, int column) : s_(s), line_(line), col_(column) {}

  void scan(std::vector<JinjaCall>& out) {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '\'' || c == '"') {
        read_string();
      } else if (ident_start(c)) {
        bool after_dot = i_ > 0 && s_[i_ - 1] == '.';
        int line = line_, col = col_;
        std::string id = read_ident();
        if (!after_dot && (id == "ref" || id == "source" || id == "config" || id == "var")) {
          skip_space();
          if (i_ < s_.size() && s_[i_] == '(') {
            advance();
            JinjaCall call{id, read_args(), line, col};
            out.push_back(std::move(call));
          }
        }
      } else {
        advance();
      }
    }
  }

 private:
  void advance() {
    if (s_[i_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++i_;
  }
  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) advance();
  }
  std::string read_ident() {
    size_t b = i_;
    while (i_ < s_.size() && ident_char(s_[i_])) advance();
    return std::string(s_.substr(b, i_ - b));
  }
  std::string read_string() {
    char q = s_[i_];
    advance();
    std::string out;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) advance();
      out += s_[i_];
      advance();
    }
    if (i_ < s_.size()) advance();
    return out;
  }
  // A literal value, or null after skipping anything else up to the next top-level ',' or ')'.
  json read_value() {
    skip_space();
    if (i_ >= s_.size()) return nullptr;
    char c = s_[i_];
    if (c == '\'' || c == '"') return read_string();
    if (c == '[') {
      advance();
      json list = json::array();
      for (;;) {
        skip_space();
        if (i_ >= s_.size()) return list;
        if (s_[i_] == ']') {
          advance();
          return list;
        }
        if (s_[i_] == ',') {
          advance();
          continue;
        }
        json v = read_value();
        if (!v.is_null())
          list.push_back(v);
        else if (i_ < s_.size() && s_[i_] != ',' && s_[i_] != ']')
          advance();
      }
    }
    if (ident_start(c)) {
      size_t b = i_;
      std::string id = read_ident();
      skip_space();
      if (id == "True" || id == "true") return true;
      if (id == "False" || id == "false") return false;
      if (i_ < s_.size() && (s_[i_] == ',' || s_[i_] == ')')) return nullptr;
      i_ = b;  // an expression: fall through to skipping
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-') {
      size_t b = i_;
      advance();
      while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.')) advance();
      skip_space();
      if (i_ < s_.size() && (s_[i_] == ',' || s_[i_] == ')')) {
        std::string num(s_.substr(b, i_ - b));
        while (!num.empty() && std::isspace(static_cast<unsigned char>(num.back()))) num.pop_back();
        json v = json::parse(num, nullptr, false);
        return v.is_discarded() ? json() : v;
      }
    }
    int depth = 0;
    while (i_ < s_.size()) {
      char d = s_[i_];
      if (d == '\'' || d == '"') {
        read_string();
        continue;
      }
      if (depth == 0 && (d == ',' || d == ')')) break;
      if (d == '(' || d == '[' || d == '{') ++depth;
      if (d == ')' || d == ']' || d == '}') --depth;
      advance();
    }
    return nullptr;
  }
  std::vector<JinjaArg> read_args() {
    std::vector<JinjaArg> args;
    for (;;) {
      skip_space();
      if (i_ >= s_.size()) return args;
      if (s_[i_] == ')') {
        advance();
        return args;
      }
      if (s_[i_] == ',') {
        advance();
        continue;
      }
      JinjaArg a;
      if (ident_start(s_[i_])) {  // keyword argument?
        size_t b = i_;
        int line = line_, col = col_;
        std::string id = read_ident();
        skip_space();
        if (i_ < s_.size() && s_[i_] == '=' && (i_ + 1 >= s_.size() || s_[i_ + 1] != '=')) {
          advance();
          a.key = id;
        } else {
          i_ = b;
          line_ = line;
          col_ = col;
        }
      }
      size_t before = i_;
      a.value = read_value();
      if (i_ == before && i_ < s_.size() && s_[i_] != ')' && s_[i_] != ',') advance();  // always progress
      args.push_back(std::move(a));
    }
  }

  std::string_view s_;
  size_t i_ = 0;
  int line_, col_;
};

}  // namespace

JinjaScan scan_jinja(std::string_view text) {
  JinjaScan out;
  int line = 1;
  size_t line_start = 0;
  auto count_lines = [&](size_t from, size_t to) {
    for (size_t k = from; k < to && k < text.size(); ++k)
      if (text[k] == '\n') {
        ++line;
        line_start = k + 1;
      }
  };
  size_t i = 0;
  while (i + 1 < text.size()) {
    if (text[i] != '{' || (text[i + 1] != '#' && text[i + 1] != '%' && text[i + 1] != '{')) {
      if (text[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
      ++i;
      continue;
    }
    const char kind = text[i + 1];
    const std::string_view close = kind == '#' ? "#}" : kind == '%' ? "%}" : "}}";
    size_t end = text.find(close, i + 2);
    if (end == std::string_view::npos) {
      out.error = "line " + std::to_string(line) + ": unterminated " +
                  (kind == '#'   ? "comment '{#'"
                   : kind == '%' ? "tag '{%'"
                                 : "expression '{{'");
      return out;
    }
    std::string_view body = text.substr(i + 2, end - i - 2);
    const int body_line = line;
    const int body_col = static_cast<int>(i + 2 - line_start) + 1;
    if (kind != '#') {
      std::string_view t = body;
      while (!t.empty() &&
             (t.front() == '-' || t.front() == '+' || std::isspace(static_cast<unsigned char>(t.front()))))
        t.remove_prefix(1);
      size_t w = 0;
      while (w < t.size() && ident_char(t[w])) ++w;
      std::string_view word = t.substr(0, w);
      if (kind == '%' && word == "raw") {  // skip to {% endraw %}
        size_t stop = text.find("endraw", end);
        size_t after = stop == std::string_view::npos ? std::string_view::npos : text.find("%}", stop);
        if (after == std::string_view::npos) {
          out.error = "line " + std::to_string(line) + ": '{% raw %}' without '{% endraw %}'";
          return out;
        }
        count_lines(i, after + 2);
        i = after + 2;
        continue;
      }
      if (kind == '%' && word == "snapshot") {
        std::string_view rest = t.substr(w);
        while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front()))) rest.remove_prefix(1);
        size_t n = 0;
        while (n < rest.size() && ident_char(rest[n])) ++n;
        out.snapshots.push_back({std::string(rest.substr(0, n)), line});
      } else if (kind != '%' || word != "endsnapshot") {
        Expr(body, body_line, body_col).scan(out.calls);
      }
    }
    count_lines(i, end + 2);
    i = end + 2;
  }
  return out;
}

std::string arg_string(const JinjaCall& c, size_t i, const std::string& key) {
  size_t pos = 0;
  for (const auto& a : c.args) {
    if (!key.empty() && a.key == key) return a.value.is_string() ? a.value.get<std::string>() : "";
    if (a.key.empty()) {
      if (pos == i) return a.value.is_string() ? a.value.get<std::string>() : "";
      ++pos;
    }
  }
  return "";
}

}  // namespace ork::dbt
