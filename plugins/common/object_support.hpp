// Pieces every cloud ObjectStore plugin shares: the key rules of docs/plugin-abi.md, reading an object's bytes
// from memory or from a file in bounded chunks, and config helpers. Header-only, never part of the ABI.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <ork/plugin.hpp>
#include <string>
#include <string_view>

#include "aws_credentials.hpp"
#include "unique_fd.hpp"

namespace ork::common {

// Refuses keys that are empty, absolute, or have empty, "." or ".." segments, NUL or backslashes (INVALID), the
// same rules as object-local, so a workflow behaves alike on every store. A list prefix may end in '/' or be "".
inline void check_object_key(std::string_view key, bool is_prefix, const char* plugin) {
  auto bad = [&](const char* why) {
    ork::throw_invalid(std::string(plugin) + ": " + (is_prefix ? "prefix '" : "key '") + std::string(key) + "' " + why);
  };
  if (key.empty()) {
    if (is_prefix) return;
    bad("is empty");
  }
  if (key.find('\0') != std::string_view::npos) bad("contains NUL");
  if (key.find('\\') != std::string_view::npos) bad("contains a backslash");
  if (key.front() == '/') bad("is absolute");
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    bool last = end == std::string_view::npos;
    std::string_view seg = key.substr(start, last ? std::string_view::npos : end - start);
    if (seg.empty() && !(last && is_prefix)) bad("has an empty segment");
    if (seg == "..") bad("has a '..' segment");
    if (seg == "." && !(last && is_prefix)) bad("has a '.' segment");
    if (last) break;
    start = end + 1;
  }
}

// The bytes of an object being uploaded: a memory view, or a file read piece by piece.
class ObjectSource {
 public:
  explicit ObjectSource(std::string_view data) : mem_(data), size_(data.size()) {}
  explicit ObjectSource(const std::string& path, const char* plugin) {
    fd_ = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_) ork::throw_invalid(std::string(plugin) + ": cannot open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0 || !S_ISREG(st.st_mode))
      ork::throw_invalid(std::string(plugin) + ": " + path + " is not a regular file");
    size_ = static_cast<size_t>(st.st_size);
    from_file_ = true;
  }
  size_t size() const { return size_; }
  // Bytes [offset, offset+len) (clamped), viewing memory or read into `scratch`.
  std::string_view read(size_t offset, size_t len, std::string& scratch) const {
    if (offset >= size_) return {};
    len = std::min(len, size_ - offset);
    if (!from_file_) return mem_.substr(offset, len);
    scratch.resize(len);
    size_t got = 0;
    while (got < len) {
      ssize_t n = ::pread(fd_.get(), scratch.data() + got, len - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        throw std::runtime_error(std::string("read failed: ") + (n < 0 ? std::strerror(errno) : "file shrank"));
      got += static_cast<size_t>(n);
    }
    return scratch;
  }

 private:
  std::string_view mem_;
  UniqueFd fd_;
  size_t size_ = 0;
  bool from_file_ = false;
};

inline bool opt_true(const nlohmann::json& opts, const char* name) {
  return opts.is_object() && opts.contains(name) && opts[name].is_boolean() && opts[name].get<bool>();
}
inline std::string opt_string(const nlohmann::json& opts, const char* name, std::string def = "") {
  return opts.is_object() && opts.contains(name) && opts[name].is_string() ? opts[name].get<std::string>() : def;
}

// Config readers that fail with INVALID naming the plugin and field.
inline std::string cfg_string(const nlohmann::json& cfg, const char* plugin, const char* field, std::string def = "",
                              bool required = false) {
  if (!cfg.contains(field) || cfg[field].is_null()) {
    if (required) ork::throw_invalid(std::string(plugin) + ": config needs \"" + field + "\"");
    return def;
  }
  if (!cfg[field].is_string()) ork::throw_invalid(std::string(plugin) + ": config \"" + field + "\" must be a string");
  return cfg[field].get<std::string>();
}
inline int64_t cfg_int(const nlohmann::json& cfg, const char* plugin, const char* field, int64_t def, int64_t min,
                       int64_t max) {
  if (!cfg.contains(field) || cfg[field].is_null()) return def;
  if (!cfg[field].is_number_integer())
    ork::throw_invalid(std::string(plugin) + ": config \"" + field + "\" must be an integer");
  int64_t v = cfg[field].get<int64_t>();
  if (v < min || v > max)
    ork::throw_invalid(std::string(plugin) + ": config \"" + field + "\" must be between " + std::to_string(min) +
                       " and " + std::to_string(max));
  return v;
}
inline bool cfg_bool(const nlohmann::json& cfg, const char* plugin, const char* field, bool def) {
  if (!cfg.contains(field) || cfg[field].is_null()) return def;
  if (!cfg[field].is_boolean())
    ork::throw_invalid(std::string(plugin) + ": config \"" + field + "\" must be a boolean");
  return cfg[field].get<bool>();
}
// A key prefix from config: "" or "a/b/" (a trailing '/' added); checked like a key.
inline std::string cfg_prefix(const nlohmann::json& cfg, const char* plugin) {
  std::string p = cfg_string(cfg, plugin, "prefix");
  if (p.empty()) return p;
  if (p.back() != '/') p += '/';
  check_object_key(p, true, plugin);
  return p;
}

// The AWS credentials fields of a plugin's config (access_key_id, secret_access_key, session_token, profile): the
// chain starts with them when given.
inline AwsCredentialsOptions aws_credentials_options(const nlohmann::json& cfg, const char* plugin) {
  AwsCredentialsOptions co;
  co.access_key_id = cfg_string(cfg, plugin, "access_key_id");
  co.secret_access_key = cfg_string(cfg, plugin, "secret_access_key");
  co.session_token = cfg_string(cfg, plugin, "session_token");
  co.profile = cfg_string(cfg, plugin, "profile");
  return co;
}
// The region: config "region", else what the environment / profile says, else us-east-1.
inline std::string aws_region(const nlohmann::json& cfg, const char* plugin, const AwsCredentialsProvider& creds) {
  std::string region = cfg_string(cfg, plugin, "region");
  if (region.empty()) region = creds.region_hint();
  return region.empty() ? "us-east-1" : region;
}

}  // namespace ork::common
