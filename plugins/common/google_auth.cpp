#include "google_auth.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "crypto.hpp"
#include "web_util.hpp"

namespace ork::common {

using nlohmann::json;

std::string make_jwt_rs256(const std::string& header_json, const std::string& claims_json,
                           const std::string& private_key_pem) {
  std::string input = base64url_encode(header_json) + "." + base64url_encode(claims_json);
  return input + "." + base64url_encode(rsa_sha256_sign(private_key_pem, input));
}

GoogleCredentials::GoogleCredentials(GoogleAuthOptions options)
    : o_(std::move(options)), http_([&] {
        HttpOptions h;
        h.timeout = std::chrono::milliseconds(30000);
        h.retry.max_attempts = 3;
        return h;
      }()) {
  std::string text = o_.credentials_json, file = o_.credentials_file;
  if (text.empty() && file.empty() && o_.env) file = o_.env("GOOGLE_APPLICATION_CREDENTIALS").value_or("");
  if (text.empty() && !file.empty()) {
    std::ifstream in(file);
    if (!in) throw std::runtime_error("Google credentials: cannot read " + file);
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  if (text.empty()) {
    type_ = o_.use_metadata_server ? "metadata" : "none";
    source_ = o_.use_metadata_server ? "metadata server" : "none";
    return;
  }
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) throw std::runtime_error("Google credentials" + (file.empty() ? "" : " " + file) + ": not JSON");
  type_ = j.value("type", "");
  project_id_ = j.value("project_id", "");
  if (type_ == "service_account") {
    client_email_ = j.value("client_email", "");
    private_key_ = j.value("private_key", "");
    private_key_id_ = j.value("private_key_id", "");
    token_uri_ = j.value("token_uri", "https://oauth2.googleapis.com/token");
    if (client_email_.empty() || private_key_.empty())
      throw std::runtime_error("Google credentials: a service_account key needs client_email and private_key");
    source_ = "service_account " + client_email_;
  } else if (type_ == "authorized_user") {
    client_id_ = j.value("client_id", "");
    client_secret_ = j.value("client_secret", "");
    refresh_token_ = j.value("refresh_token", "");
    token_uri_ = j.value("token_uri", "https://oauth2.googleapis.com/token");
    if (refresh_token_.empty()) throw std::runtime_error("Google credentials: authorized_user needs refresh_token");
    source_ = "authorized_user";
  } else {
    throw std::runtime_error("Google credentials: unsupported type '" + type_ +
                             "' (service_account or authorized_user)");
  }
}

std::string GoogleCredentials::access_token() {
  if (type_ == "none") return "";
  std::lock_guard lk(mu_);
  int64_t now = now_epoch_ms();
  if (!token_.empty() && expires_ms_ - now > 60 * 1000) return token_;
  int64_t exp = 0;
  token_ = fetch(exp);
  expires_ms_ = exp;
  return token_;
}

std::string GoogleCredentials::fetch(int64_t& expires_ms) {
  int64_t now = now_epoch_ms();
  HttpRequest req;
  std::string body;
  if (type_ == "metadata") {
    std::string host = o_.env ? o_.env("GCE_METADATA_HOST").value_or("") : "";
    if (host.empty()) host = "metadata.google.internal";
    req.url = (host.find("://") == std::string::npos ? "http://" + host : host) +
              "/computeMetadata/v1/instance/service-accounts/default/token";
    req.set_header("Metadata-Flavor", "Google");
  } else {
    req.method = "POST";
    req.url = token_uri_;
    req.set_header("Content-Type", "application/x-www-form-urlencoded");
    if (type_ == "service_account") {
      json header{{"alg", "RS256"}, {"typ", "JWT"}};
      if (!private_key_id_.empty()) header["kid"] = private_key_id_;
      json claims{{"iss", client_email_},
                  {"scope", o_.scope},
                  {"aud", token_uri_},
                  {"iat", now / 1000},
                  {"exp", now / 1000 + 3600}};
      body = form_encode({{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
                          {"assertion", make_jwt_rs256(header.dump(), claims.dump(), private_key_)}});
    } else {
      body = form_encode({{"grant_type", "refresh_token"},
                          {"client_id", client_id_},
                          {"client_secret", client_secret_},
                          {"refresh_token", refresh_token_}});
    }
    req.body = body;
  }
  HttpResponse r;
  try {
    r = http_.send(req);
  } catch (const std::exception& e) {
    throw std::runtime_error("Google credentials (" + source_ + "): " + e.what());
  }
  json j = json::parse(r.body, nullptr, false);
  if (!r.ok() || !j.is_object() || !j.contains("access_token")) {
    std::string why = j.is_object() ? j.value("error_description", j.value("error", "")) : "";
    throw std::runtime_error("Google credentials (" + source_ + "): token request failed with HTTP " +
                             std::to_string(r.status) + (why.empty() ? "" : ": " + why));
  }
  expires_ms = now + j.value("expires_in", 3600) * 1000LL;
  return j["access_token"].get<std::string>();
}

}  // namespace ork::common
