// AWS Signature Version 4 (one implementation for S3, DynamoDB, ECS, ...): canonical request, string to sign,
// signature and the Authorization header, over OpenSSL. Tested against AWS's published test vectors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http.hpp"

namespace ork::common {

struct AwsCredentials {
  std::string access_key_id, secret_access_key, session_token;
  int64_t expires_ms = 0;  // 0 = does not expire
  std::string source;      // where they came from ("env", "profile default", "container", "imds", "config")
  bool empty() const { return access_key_id.empty() || secret_access_key.empty(); }
};

// Everything signed, as it goes on the wire.
struct SigV4Input {
  std::string method;
  std::string path = "/";    // the request path as sent (already percent-encoded)
  std::string query;         // the query string as sent (without '?'), may be ""
  Headers headers;           // every header to sign (host included); names in any case
  std::string payload_hash;  // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
  std::string amz_date;      // 20150830T123600Z
  std::string region, service;
};

struct SigV4Result {
  std::string canonical_request, string_to_sign, credential_scope, signed_headers, signature, authorization;
};

// S3 signs the path as sent; every other service normalizes it (., .., //) and encodes it once more.
SigV4Result sigv4_sign(const SigV4Input& in, const AwsCredentials& creds);
std::string sigv4_canonical_query(std::string_view query);

// Signs `req` in place for `service` in `region` at `now_ms`: sets Host, X-Amz-Date, X-Amz-Security-Token (with a
// session token), X-Amz-Content-Sha256 (when add_content_sha256, as S3 requires) and Authorization. The payload hash
// is computed from req.body unless given.
void sigv4_sign_request(HttpRequest& req, const AwsCredentials& creds, std::string_view region,
                        std::string_view service, int64_t now_ms, bool add_content_sha256,
                        std::string payload_hash = "");

}  // namespace ork::common
