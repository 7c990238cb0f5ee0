// Environment files and secrets: the dotenv parser (`env_file:` and the local secrets file), the local secret source
// (ORK_SECRET_<NAME> variables, then a 0600 secrets file) and masking of secret values in text and JSON.
#pragma once

#include <sys/types.h>

#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ork {

using json = nlohmann::json;

// A dotenv syntax error at a 1-based line.
class DotenvError : public std::runtime_error {
 public:
  DotenvError(int line, const std::string& message)
      : std::runtime_error("line " + std::to_string(line) + ": " + message), line_(line), msg_(message) {}
  int line() const { return line_; }
  const std::string& message() const { return msg_; }

 private:
  int line_;
  std::string msg_;
};

struct DotenvEntry {
  std::string key, value;
  int line = 0;
};

// Parses dotenv text: `KEY=value` lines, optional `export `, `#` comments, 'single-quoted' (literal) and
// "double-quoted" values (\n \t \" \\ escapes, may span lines), unquoted values trimmed with ` #` comments cut. No
// variable expansion. Keys are environment names ([A-Za-z_][A-Za-z0-9_]*), or with `secret_names` also '.', '-', '/'.
// A repeated key keeps the last value. Throws DotenvError.
std::vector<DotenvEntry> parse_dotenv(const std::string& text, bool secret_names = false);

// Reads and parses a dotenv file; errors say "path:line: message". Throws std::runtime_error.
std::map<std::string, std::string> read_dotenv_file(const std::string& path, bool secret_names = false);

// Where secret values come from when no cloud secret manager is configured: the host's environment
// (`<env_prefix><NAME>`, NAME upper-cased with other characters than letters and digits as '_'), then `file` (dotenv,
// must not be readable by group or others). Configured by the `secrets:` block of plugins.yaml.
class SecretSource {
 public:
  SecretSource() = default;
  // config: {"file": "/path/secrets.env" (optional), "env_prefix": "ORK_SECRET_" (default)}; relative `file` paths
  // resolve against `base_dir`.
  SecretSource(const json& config, const std::string& base_dir);

  // The value, or nullopt when no source has it. Throws std::runtime_error when the file is unsafe or malformed.
  std::optional<std::string> get(const std::string& name) const;
  // get(), or an error naming the variable and the file where it could have been set.
  std::string require(const std::string& name) const;
  std::string env_name(const std::string& name) const;
  const std::string& file() const { return file_; }
  const std::string& env_prefix() const { return prefix_; }

 private:
  std::string file_;
  std::string prefix_ = "ORK_SECRET_";
  // The file's parsed contents, re-read when its modification time or size changes.
  mutable std::map<std::string, std::string> cache_;
  mutable std::timespec cached_mtime_{};
  mutable off_t cached_size_ = -1;
};

inline constexpr const char* kMask = "***";

// Replaces every occurrence of known secret values with "***". Multi-line secrets are masked line by line too.
class Masker {
 public:
  Masker() = default;
  explicit Masker(const std::vector<std::string>& secrets);
  bool empty() const { return secrets_.empty(); }
  std::string mask(std::string_view text) const;
  json mask(const json& value) const;  // strings and object keys, recursively
  const std::vector<std::string>& secrets() const { return secrets_; }

 private:
  std::vector<std::string> secrets_;  // longest first
};

// Masks a stream cut into arbitrary chunks: text that could be the start of a secret is held back until the next
// chunk shows whether it is one. feed() returns what may be written now; finish() returns the rest.
class MaskStream {
 public:
  explicit MaskStream(Masker m) : m_(std::move(m)) {}
  std::string feed(std::string_view chunk);
  std::string finish();

 private:
  Masker m_;
  std::string pending_;
};

}  // namespace ork
