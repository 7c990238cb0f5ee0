// Google credentials shared by the GCP plugins (GCS, Firestore, Cloud Run): a service-account JSON key (RS256 JWT
// exchanged at its token_uri), an authorized_user refresh token, or the metadata server. Tokens are cached until a
// minute before expiry.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "aws_credentials.hpp"  // EnvFn
#include "http.hpp"

namespace ork::common {

struct GoogleAuthOptions {
  std::string credentials_file;  // a JSON key file; default $GOOGLE_APPLICATION_CREDENTIALS
  std::string credentials_json;  // or its contents inline
  std::string scope = "https://www.googleapis.com/auth/cloud-platform";
  bool use_metadata_server = true;  // when no key is given: $GCE_METADATA_HOST or metadata.google.internal
  std::chrono::milliseconds metadata_timeout{2000};
  EnvFn env = process_env();
};

// header.claims.signature with RS256 (the signing input is base64url(header) "." base64url(claims)).
std::string make_jwt_rs256(const std::string& header_json, const std::string& claims_json,
                           const std::string& private_key_pem);

class GoogleCredentials {
 public:
  explicit GoogleCredentials(GoogleAuthOptions options);
  // A bearer token for the Authorization header; throws std::runtime_error naming the source that failed.
  std::string access_token();
  // "service_account <email>", "authorized_user", "metadata server" or "none".
  std::string source() const { return source_; }
  // The key's project_id, when the key names one.
  std::string project_id() const { return project_id_; }

 private:
  std::string fetch(int64_t& expires_ms);

  GoogleAuthOptions o_;
  HttpClient http_;
  std::string type_, source_, project_id_;
  std::string client_email_, private_key_, private_key_id_, token_uri_;
  std::string client_id_, client_secret_, refresh_token_;
  std::mutex mu_;
  std::string token_;
  int64_t expires_ms_ = 0;
};

}  // namespace ork::common
