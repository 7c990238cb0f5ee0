// Hashes, HMAC, RSA signing and encodings over OpenSSL, shared by the cloud plugins (never part of the ABI).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ork::common {

std::string sha256(std::string_view data);                             // 32 raw bytes
std::string sha256_hex(std::string_view data);                         // 64 lowercase hex digits
std::string md5(std::string_view data);                                // 16 raw bytes
std::string hmac_sha256(std::string_view key, std::string_view data);  // 32 raw bytes
// RS256: RSASSA-PKCS1-v1_5 with SHA-256 over `data`, key as PEM (PKCS#8 or PKCS#1). Throws on a bad key.
std::string rsa_sha256_sign(std::string_view private_key_pem, std::string_view data);

std::string hex(std::string_view bytes);
std::string base64_encode(std::string_view bytes);
std::string base64url_encode(std::string_view bytes);  // no padding (JWT)
// Throws std::invalid_argument on characters outside the alphabet.
std::string base64_decode(std::string_view text);
std::string random_hex(size_t bytes);

// Incremental SHA-256 for data that arrives in pieces.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void update(std::string_view data);
  std::string hex_digest();

 private:
  void* ctx_;
};

}  // namespace ork::common
