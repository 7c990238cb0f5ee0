// API keys: created once (the secret is shown only then), stored salted and SHA-256-hashed in a JSON file under the
// host's home (api-keys.json, mode 0600), verified per request; the server re-reads the file when it changes.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "api/routes.hpp"

namespace ork::api {

struct ApiKeyInfo {
  std::string id;  // public part of the key ("k" + 12 hex digits), used to list and revoke it
  std::string name;
  Scope scope = Scope::read;
  std::string created_at;
  std::string revoked_at;  // "" while active
  nlohmann::json to_json() const;
};

class ApiKeyStore {
 public:
  explicit ApiKeyStore(std::string path);

  // Creates a key; returns its record and the secret key text (ork_<id>_<secret>), which is not stored.
  std::pair<ApiKeyInfo, std::string> create(Scope scope, const std::string& name);
  std::vector<ApiKeyInfo> list();
  // Marks a key revoked; false when no such key (or already revoked).
  bool revoke(const std::string& id);
  // The scope of a presented key, or nullopt when it is unknown, malformed or revoked.
  std::optional<Scope> verify(const std::string& key);
  size_t active_count();
  const std::string& path() const { return path_; }

 private:
  struct Record {
    ApiKeyInfo info;
    std::string salt_hex, hash_hex;
  };
  void reload_if_changed();  // mu_ held
  std::vector<Record> read_file() const;
  void write_file(const std::vector<Record>& recs) const;
  template <class F>
  auto locked_update(F&& f);  // read-modify-write under an flock on <path>.lock

  std::string path_;
  std::mutex mu_;
  std::vector<Record> cache_;
  struct stat seen_ {};
  bool loaded_ = false;
};

// sha256(salt || key) as lower-case hex.
std::string api_key_hash(const std::string& salt_hex, const std::string& key);

}  // namespace ork::api
