#include "api/api_keys.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/util.hpp"

namespace ork::api {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string to_hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = d[p[i] >> 4];
    out[2 * i + 1] = d[p[i] & 15];
  }
  return out;
}

std::string random_bytes_hex(size_t n) {
  std::vector<unsigned char> b(n);
  if (RAND_bytes(b.data(), static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
  return to_hex(b.data(), n);
}

struct LockFile {
  int fd = -1;
  explicit LockFile(const std::string& path) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot open " + path);
    ::flock(fd, LOCK_EX);
  }
  ~LockFile() {
    if (fd >= 0) ::close(fd);  // releases the lock
  }
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
};

}  // namespace

std::string api_key_hash(const std::string& salt_hex, const std::string& key) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  std::string msg = salt_hex + key;
  if (EVP_Digest(msg.data(), msg.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  return to_hex(md, len);
}

json ApiKeyInfo::to_json() const {
  return {{"id", id},
          {"name", name},
          {"scope", scope_name(scope)},
          {"created_at", created_at},
          {"revoked_at", revoked_at.empty() ? json(nullptr) : json(revoked_at)}};
}

ApiKeyStore::ApiKeyStore(std::string path) : path_(std::move(path)) {}

std::vector<ApiKeyStore::Record> ApiKeyStore::read_file() const {
  std::vector<Record> out;
  std::ifstream in(path_);
  if (!in) return out;
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const std::exception& e) {
    throw std::runtime_error("API keys file " + path_ + " is not valid JSON: " + e.what());
  }
  for (const auto& k : j.value("keys", json::array())) {
    Record r;
    r.info.id = k.value("id", "");
    r.info.name = k.value("name", "");
    r.info.scope = parse_scope(k.value("scope", "read")).value_or(Scope::read);
    r.info.created_at = k.value("created_at", "");
    r.info.revoked_at =
        k.contains("revoked_at") && k["revoked_at"].is_string() ? k["revoked_at"].get<std::string>() : "";
    r.salt_hex = k.value("salt", "");
    r.hash_hex = k.value("hash", "");
    if (!r.info.id.empty() && !r.hash_hex.empty()) out.push_back(std::move(r));
  }
  return out;
}

void ApiKeyStore::write_file(const std::vector<Record>& recs) const {
  json keys = json::array();
  for (const auto& r : recs) {
    json k = r.info.to_json();
    k["salt"] = r.salt_hex;
    k["hash"] = r.hash_hex;
    keys.push_back(std::move(k));
  }
  fs::path p(path_);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp);
  std::string text = json{{"keys", keys}}.dump(2) + "\n";
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("cannot write " + tmp);
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) throw std::runtime_error("cannot replace " + path_);
}

template <class F>
auto ApiKeyStore::locked_update(F&& f) {
  if (fs::path p(path_); p.has_parent_path()) fs::create_directories(p.parent_path());
  LockFile lock(path_ + ".lock");
  std::vector<Record> recs = read_file();
  return f(recs);
}

std::pair<ApiKeyInfo, std::string> ApiKeyStore::create(Scope scope, const std::string& name) {
  if (scope == Scope::none) throw std::invalid_argument("a key needs the scope read, write or admin");
  return locked_update([&](std::vector<Record>& recs) {
    Record r;
    r.info.id = "k";  // appended: GCC 12 -O3 -Wrestrict false positive on "k" + std::string
    r.info.id += random_bytes_hex(6);
    r.info.name = name;
    r.info.scope = scope;
    r.info.created_at = now_str();
    unsigned char secret[32];
    if (RAND_bytes(secret, sizeof secret) != 1) throw std::runtime_error("RAND_bytes failed");
    std::string key = "ork_";
    key += r.info.id;
    key += '_';
    key += ork::base64url_encode(std::string_view(reinterpret_cast<const char*>(secret), sizeof secret));
    OPENSSL_cleanse(secret, sizeof secret);
    r.salt_hex = random_bytes_hex(16);
    r.hash_hex = api_key_hash(r.salt_hex, key);
    recs.push_back(r);
    write_file(recs);
    return std::make_pair(r.info, key);
  });
}

std::vector<ApiKeyInfo> ApiKeyStore::list() {
  std::vector<ApiKeyInfo> out;
  for (auto& r : read_file()) out.push_back(r.info);
  return out;
}

bool ApiKeyStore::revoke(const std::string& id) {
  return locked_update([&](std::vector<Record>& recs) {
    for (auto& r : recs) {
      if (r.info.id != id || !r.info.revoked_at.empty()) continue;
      r.info.revoked_at = now_str();
      write_file(recs);
      return true;
    }
    return false;
  });
}

void ApiKeyStore::reload_if_changed() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    cache_.clear();
    seen_ = {};
    loaded_ = true;
    return;
  }
  if (loaded_ && st.st_ino == seen_.st_ino && st.st_size == seen_.st_size &&
      st.st_mtim.tv_sec == seen_.st_mtim.tv_sec && st.st_mtim.tv_nsec == seen_.st_mtim.tv_nsec)
    return;
  cache_ = read_file();
  seen_ = st;
  loaded_ = true;
}

std::optional<Scope> ApiKeyStore::verify(const std::string& key) {
  // ork_<id>_<secret>: the id finds the record, the salted hash of the whole key must match.
  if (key.size() < 10 || key.compare(0, 4, "ork_") != 0) return std::nullopt;
  size_t us = key.find('_', 4);
  if (us == std::string::npos) return std::nullopt;
  std::string id = key.substr(4, us - 4);
  std::lock_guard lk(mu_);
  reload_if_changed();
  for (const auto& r : cache_) {
    if (r.info.id != id) continue;
    if (!r.info.revoked_at.empty()) return std::nullopt;
    std::string h = api_key_hash(r.salt_hex, key);
    if (h.size() != r.hash_hex.size() || CRYPTO_memcmp(h.data(), r.hash_hex.data(), h.size()) != 0) return std::nullopt;
    return r.info.scope;
  }
  return std::nullopt;
}

size_t ApiKeyStore::active_count() {
  std::lock_guard lk(mu_);
  reload_if_changed();
  size_t n = 0;
  for (const auto& r : cache_) n += r.info.revoked_at.empty();
  return n;
}

}  // namespace ork::api
