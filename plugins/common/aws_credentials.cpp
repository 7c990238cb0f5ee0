#include "aws_credentials.hpp"

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "web_util.hpp"

namespace ork::common {

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

HttpOptions metadata_http(std::chrono::milliseconds timeout) {
  HttpOptions o;
  o.timeout = timeout;
  o.retry.max_attempts = 2;
  o.retry.base_delay = std::chrono::milliseconds(50);
  return o;
}

// {AccessKeyId, SecretAccessKey, Token, Expiration} as the container and instance endpoints return them.
AwsCredentials from_metadata_json(const std::string& body, const std::string& source) {
  auto j = nlohmann::json::parse(body);
  AwsCredentials c;
  c.access_key_id = j.value("AccessKeyId", "");
  c.secret_access_key = j.value("SecretAccessKey", "");
  c.session_token = j.value("Token", "");
  if (auto e = j.value("Expiration", ""); !e.empty()) c.expires_ms = std::max<int64_t>(0, parse_iso8601(e));
  c.source = source;
  if (c.empty()) throw std::runtime_error(source + ": no AccessKeyId/SecretAccessKey in the answer");
  return c;
}

}  // namespace

EnvFn process_env() {
  return [](const std::string& n) -> std::optional<std::string> {
    const char* v = std::getenv(n.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::map<std::string, std::map<std::string, std::string>> parse_ini(const std::string& text) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::string section, line;
  std::istringstream in(text);
  while (std::getline(in, line)) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = trim(t.substr(1, t.size() - 2));
      out[section];
      continue;
    }
    size_t eq = t.find('=');
    if (eq == std::string::npos) continue;
    out[section][to_lower(trim(t.substr(0, eq)))] = trim(t.substr(eq + 1));
  }
  return out;
}

AwsCredentialsProvider::AwsCredentialsProvider(AwsCredentialsOptions options)
    : o_(std::move(options)), http_(metadata_http(o_.metadata_timeout)) {}

std::string AwsCredentialsProvider::env(const std::string& name) const {
  auto v = o_.env ? o_.env(name) : std::nullopt;
  return v ? *v : "";
}

AwsCredentials AwsCredentialsProvider::get() {
  std::lock_guard lk(mu_);
  // Refresh five minutes before expiry.
  if (!cached_.empty() && (cached_.expires_ms == 0 || cached_.expires_ms - now_epoch_ms() > 5 * 60 * 1000))
    return cached_;
  cached_ = resolve();
  return cached_;
}

AwsCredentials AwsCredentialsProvider::resolve() {
  if (!o_.access_key_id.empty() || !o_.secret_access_key.empty()) {
    if (o_.access_key_id.empty() || o_.secret_access_key.empty())
      throw std::runtime_error("AWS credentials in the config need both access_key_id and secret_access_key");
    return {o_.access_key_id, o_.secret_access_key, o_.session_token, 0, "config"};
  }
  std::string tried;
  if (auto id = env("AWS_ACCESS_KEY_ID"), secret = env("AWS_SECRET_ACCESS_KEY"); !id.empty() && !secret.empty())
    return {id, secret, env("AWS_SESSION_TOKEN"), 0, "env"};
  tried += "environment (AWS_ACCESS_KEY_ID unset)";
  if (auto c = from_profile(tried)) return *c;
  if (auto c = from_container(tried)) return *c;
  if (auto c = from_imds(tried)) return *c;
  throw std::runtime_error("no AWS credentials found; tried " + tried);
}

std::optional<AwsCredentials> AwsCredentialsProvider::from_profile(std::string& tried) const {
  std::string home = env("HOME");
  std::string profile = !o_.profile.empty() ? o_.profile : !env("AWS_PROFILE").empty() ? env("AWS_PROFILE") : "default";
  std::string cred_file = !o_.credentials_file.empty()                  ? o_.credentials_file
                          : !env("AWS_SHARED_CREDENTIALS_FILE").empty() ? env("AWS_SHARED_CREDENTIALS_FILE")
                                                                        : home + "/.aws/credentials";
  std::string cfg_file = !o_.config_file.empty()           ? o_.config_file
                         : !env("AWS_CONFIG_FILE").empty() ? env("AWS_CONFIG_FILE")
                                                           : home + "/.aws/config";
  auto creds = parse_ini(read_text(cred_file));
  auto cfg = parse_ini(read_text(cfg_file));
  std::map<std::string, std::string> sec;
  if (auto it = creds.find(profile); it != creds.end()) sec = it->second;
  auto cit = cfg.find(profile == "default" ? "default" : "profile " + profile);
  if (cit != cfg.end())
    for (const auto& [k, v] : cit->second) sec.emplace(k, v);  // the credentials file wins
  if (!sec["aws_access_key_id"].empty() && !sec["aws_secret_access_key"].empty())
    return AwsCredentials{sec["aws_access_key_id"], sec["aws_secret_access_key"], sec["aws_session_token"], 0,
                          "profile " + profile};
  tried += ", profile '" + profile + "' in " + cred_file + " and " + cfg_file;
  return std::nullopt;
}

std::optional<AwsCredentials> AwsCredentialsProvider::from_container(std::string& tried) const {
  std::string rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (rel.empty() && full.empty()) {
    tried += ", container endpoint (AWS_CONTAINER_CREDENTIALS_*_URI unset)";
    return std::nullopt;
  }
  HttpRequest req;
  req.url = !rel.empty() ? "http://169.254.170.2" + rel : full;
  std::string token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  if (std::string tf = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); !tf.empty()) token = trim(read_text(tf));
  if (!token.empty()) req.set_header("Authorization", token);
  try {
    HttpResponse r = http_.send(req);
    if (!r.ok()) throw std::runtime_error("HTTP " + std::to_string(r.status));
    return from_metadata_json(r.body, "container");
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("AWS container credentials endpoint: ") + e.what());
  }
}

std::optional<AwsCredentials> AwsCredentialsProvider::from_imds(std::string& tried) const {
  if (to_lower(env("AWS_EC2_METADATA_DISABLED")) == "true") {
    tried += ", instance metadata (AWS_EC2_METADATA_DISABLED)";
    return std::nullopt;
  }
  std::string base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (base.empty()) base = "http://169.254.169.254";
  while (!base.empty() && base.back() == '/') base.pop_back();
  try {
    HttpRequest tok;
    tok.method = "PUT";
    tok.url = base + "/latest/api/token";
    tok.set_header("X-aws-ec2-metadata-token-ttl-seconds", "21600");
    HttpResponse t = http_.send(tok);
    if (!t.ok()) throw std::runtime_error("token: HTTP " + std::to_string(t.status));
    HttpRequest role;
    role.url = base + "/latest/meta-data/iam/security-credentials/";
    role.set_header("X-aws-ec2-metadata-token", t.body);
    HttpResponse rr = http_.send(role);
    if (!rr.ok()) throw std::runtime_error("role: HTTP " + std::to_string(rr.status));
    std::string name = trim(rr.body.substr(0, rr.body.find('\n')));
    if (name.empty()) throw std::runtime_error("no instance role");
    HttpRequest cr;
    cr.url = base + "/latest/meta-data/iam/security-credentials/" + uri_encode(name);
    cr.set_header("X-aws-ec2-metadata-token", t.body);
    HttpResponse c = http_.send(cr);
    if (!c.ok()) throw std::runtime_error("credentials: HTTP " + std::to_string(c.status));
    return from_metadata_json(c.body, "imds");
  } catch (const std::exception& e) {
    tried += ", instance metadata at " + base + " (" + e.what() + ")";
    return std::nullopt;
  }
}

std::string AwsCredentialsProvider::region_hint() const {
  if (auto r = env("AWS_REGION"); !r.empty()) return r;
  if (auto r = env("AWS_DEFAULT_REGION"); !r.empty()) return r;
  std::string home = env("HOME");
  std::string profile = !o_.profile.empty() ? o_.profile : !env("AWS_PROFILE").empty() ? env("AWS_PROFILE") : "default";
  std::string cfg_file = !o_.config_file.empty()           ? o_.config_file
                         : !env("AWS_CONFIG_FILE").empty() ? env("AWS_CONFIG_FILE")
                                                           : home + "/.aws/config";
  auto cfg = parse_ini(read_text(cfg_file));
  auto it = cfg.find(profile == "default" ? "default" : "profile " + profile);
  if (it != cfg.end() && it->second.count("region")) return it->second.at("region");
  return "";
}

}  // namespace ork::common
