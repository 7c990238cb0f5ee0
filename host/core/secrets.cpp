// Dotenv parsing, the local secret source and secret masking.
#include "secrets.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace ork {

namespace {

bool env_key_ok(const std::string& k, bool secret_names) {
  if (k.empty()) return false;
  if (!secret_names && std::isdigit(static_cast<unsigned char>(k[0]))) return false;
  return std::all_of(k.begin(), k.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
           (secret_names && (c == '.' || c == '-' || c == '/'));
  });
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

std::vector<DotenvEntry> parse_dotenv(const std::string& text, bool secret_names) {
  std::vector<DotenvEntry> out;
  std::map<std::string, size_t> index;
  size_t pos = 0;
  int line_no = 0;
  auto next_line = [&](std::string& line) {
    if (pos > text.size() || (pos == text.size() && !text.empty() && text.back() == '\n')) return false;
    size_t nl = text.find('\n', pos);
    line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    return true;
  };
  std::string line;
  while (next_line(line)) {
    const int start_line = line_no;
    std::string s = trim(line);
    if (s.empty() || s[0] == '#') continue;
    if (s.rfind("export ", 0) == 0) s = trim(s.substr(7));
    size_t eq = s.find('=');
    if (eq == std::string::npos) throw DotenvError(start_line, "expected KEY=value, got '" + s + "'");
    std::string key = trim(s.substr(0, eq));
    if (!env_key_ok(key, secret_names))
      throw DotenvError(start_line, "invalid name '" + key + "'" +
                                        (secret_names ? " (letters, digits, '_', '.', '-', '/')"
                                                      : " (letters, digits and '_', not starting with a digit)"));
    std::string rest = s.substr(eq + 1);
    size_t a = rest.find_first_not_of(" \t");
    rest = a == std::string::npos ? "" : rest.substr(a);
    std::string value;
    if (!rest.empty() && (rest[0] == '\'' || rest[0] == '"')) {
      const char q = rest[0];
      std::string body = rest.substr(1);
      size_t i = 0;
      bool closed = false;
      while (!closed) {
        for (; i < body.size(); ++i) {
          char c = body[i];
          if (q == '"' && c == '\\' && i + 1 < body.size()) {
            char n = body[++i];
            value += n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n;
          } else if (c == q) {
            closed = true;
            break;
          } else {
            value += c;
          }
        }
        if (closed) break;
        std::string more;
        if (!next_line(more)) throw DotenvError(start_line, std::string("unterminated ") + q + "quoted value" + q);
        value += '\n';
        body = more;
        i = 0;
      }
      std::string after = trim(body.substr(i + 1));
      if (!after.empty() && after[0] != '#')
        throw DotenvError(line_no, "unexpected text after the closing quote: '" + after + "'");
    } else {
      size_t hash = rest.find(" #");
      if (hash == std::string::npos) hash = rest.find("\t#");
      value = trim(hash == std::string::npos ? rest : rest.substr(0, hash));
    }
    if (auto it = index.find(key); it != index.end()) {
      out[it->second] = {key, value, start_line};
    } else {
      index[key] = out.size();
      out.push_back({key, value, start_line});
    }
  }
  return out;
}

std::map<std::string, std::string> read_dotenv_file(const std::string& path, bool secret_names) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  std::map<std::string, std::string> out;
  try {
    for (auto& e : parse_dotenv(ss.str(), secret_names)) out[e.key] = std::move(e.value);
  } catch (const DotenvError& e) {
    throw std::runtime_error(path + ":" + std::to_string(e.line()) + ": " + e.message());
  }
  return out;
}

// ---- SecretSource ----

SecretSource::SecretSource(const json& config, const std::string& base_dir) {
  if (!config.is_object()) return;
  if (auto f = config.find("file"); f != config.end() && f->is_string() && !f->get<std::string>().empty()) {
    std::filesystem::path p = f->get<std::string>();
    if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
    file_ = p.lexically_normal().string();
  }
  if (auto e = config.find("env_prefix"); e != config.end() && e->is_string()) prefix_ = e->get<std::string>();
}

std::string SecretSource::env_name(const std::string& name) const {
  std::string out = prefix_;
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::toupper(c)) : '_';
  return out;
}

std::optional<std::string> SecretSource::get(const std::string& name) const {
  if (!prefix_.empty()) {
    if (const char* v = std::getenv(env_name(name).c_str())) return std::string(v);
  }
  if (file_.empty()) return std::nullopt;
  struct stat st {};
  if (::stat(file_.c_str(), &st) != 0) return std::nullopt;  // an absent file holds no secrets
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::runtime_error("secrets file " + file_ + " is readable by group or others (mode " + mode +
                             "); run: chmod 600 " + file_);
  }
  if (st.st_mtim.tv_sec != cached_mtime_.tv_sec || st.st_mtim.tv_nsec != cached_mtime_.tv_nsec ||
      st.st_size != cached_size_) {
    cache_ = read_dotenv_file(file_, true);
    cached_mtime_ = st.st_mtim;
    cached_size_ = st.st_size;
  }
  auto it = cache_.find(name);
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::string SecretSource::require(const std::string& name) const {
  if (auto v = get(name)) return *v;
  std::string where = prefix_.empty() ? "" : "set " + env_name(name) + " in the host's environment";
  if (!file_.empty()) where += (where.empty() ? "" : " or ") + std::string("add '") + name + "=...' to " + file_;
  if (where.empty()) where = "configure a secrets file under 'secrets:' in plugins.yaml";
  throw std::runtime_error("secret '" + name + "' not found (" + where + ")");
}

// ---- Masking ----

Masker::Masker(const std::vector<std::string>& secrets) {
  auto add = [&](const std::string& s) {
    if (s.empty() || s.find_first_not_of('*') == std::string::npos) return;
    if (std::find(secrets_.begin(), secrets_.end(), s) == secrets_.end()) secrets_.push_back(s);
  };
  for (const auto& s : secrets) {
    add(s);
    if (s.find('\n') != std::string::npos) {
      std::stringstream ss(s);
      std::string line;
      while (std::getline(ss, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        add(line);
      }
    }
  }
  std::sort(secrets_.begin(), secrets_.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
}

std::string Masker::mask(std::string_view text) const {
  std::string out(text);
  for (const auto& s : secrets_) {
    size_t pos = 0;
    while ((pos = out.find(s, pos)) != std::string::npos) {
      out.replace(pos, s.size(), kMask);
      pos += 3;
    }
  }
  return out;
}

json Masker::mask(const json& value) const {
  if (secrets_.empty()) return value;
  if (value.is_string()) return mask(std::string_view(value.get_ref<const std::string&>()));
  if (value.is_array()) {
    json out = json::array();
    for (const auto& v : value) out.push_back(mask(v));
    return out;
  }
  if (value.is_object()) {
    json out = json::object();
    for (auto it = value.begin(); it != value.end(); ++it) out[mask(std::string_view(it.key()))] = mask(it.value());
    return out;
  }
  return value;
}

std::string MaskStream::feed(std::string_view chunk) {
  pending_.append(chunk);
  if (m_.empty()) return std::exchange(pending_, std::string());
  // Hold back the longest tail that is a proper prefix of some secret...
  size_t hold = 0;
  for (const auto& s : m_.secrets())
    for (size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n)
      if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  // ...but never cut through a whole occurrence.
  size_t cut = pending_.size() - hold;
  for (bool moved = true; moved;) {
    moved = false;
    for (const auto& s : m_.secrets()) {
      size_t from = cut >= s.size() ? cut - s.size() + 1 : 0;
      for (size_t p = pending_.find(s, from); p != std::string::npos && p < cut; p = pending_.find(s, p + 1))
        if (p + s.size() > cut) {
          cut = p + s.size();
          moved = true;
        }
    }
  }
  std::string out = m_.mask(std::string_view(pending_).substr(0, cut));
  pending_.erase(0, cut);
  return out;
}

std::string MaskStream::finish() {
  return m_.mask(std::string_view(std::exchange(pending_, std::string())));
}

}  // namespace ork
