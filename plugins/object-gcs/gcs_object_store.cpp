// ork-object-gcs: an ObjectStore on Google Cloud Storage over the JSON API (storage/v1): media upload for small
// objects, resumable upload in chunks above a threshold, ifGenerationMatch=0 for conditional create, alt=media
// downloads, pageToken listing. Credentials come from plugins/common/google_auth (service account or metadata
// server); STORAGE_EMULATOR_HOST points it at an emulator (anonymous unless credentials are configured).
#include <algorithm>
#include <memory>
#include <optional>
#include <ork/plugin.hpp>
#include <string>
#include <vector>

#include "crypto.hpp"
#include "google_auth.hpp"
#include "http.hpp"
#include "object_support.hpp"
#include "web_util.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace {

using namespace ork::common;
using ork::json;
constexpr const char* kName = "object-gcs";
constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kChunkUnit = 256 * 1024;  // resumable chunks are multiples of 256 KiB

class GcsObjectStore : public ork::ObjectStore {
 public:
  static constexpr const char* kInfo =
      R"({"description": "Objects in a Google Cloud Storage bucket", "capabilities": ["if_none_match", "streaming", "resumable"]})";

  GcsObjectStore(const json& cfg, ork::HostServices host) : host_(host) {
    if (!cfg.is_object()) ork::throw_invalid("object-gcs: config must be an object");
    static const char* known[] = {"bucket",
                                  "prefix",
                                  "endpoint",
                                  "credentials_file",
                                  "credentials_json",
                                  "anonymous",
                                  "resumable_threshold",
                                  "chunk_size",
                                  "create_bucket",
                                  "project",
                                  "timeout_ms",
                                  "max_attempts",
                                  "list_page_size"};
    for (const auto& [k, v] : cfg.items())
      if (std::find(std::begin(known), std::end(known), k) == std::end(known))
        ork::throw_invalid("object-gcs: unknown config field \"" + k + "\"");
    bucket_ = cfg_string(cfg, kName, "bucket", "", true);
    if (bucket_.size() < 3 || bucket_.size() > 222 || bucket_.find('/') != std::string::npos)
      ork::throw_invalid("object-gcs: \"bucket\" must be a bucket name (3-222 characters, no '/')");
    prefix_ = cfg_prefix(cfg, kName);
    std::string endpoint = cfg_string(cfg, kName, "endpoint");
    bool emulator = false;
    if (endpoint.empty()) {
      const char* e = std::getenv("STORAGE_EMULATOR_HOST");
      if (e && *e) {
        endpoint = e;
        emulator = true;
      }
    }
    if (endpoint.empty()) endpoint = "https://storage.googleapis.com";
    try {
      Url u = parse_url(endpoint);
      endpoint_ = u.origin() + (u.path == "/" ? "" : u.path);
      while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
    } catch (const std::exception& e) {
      ork::throw_invalid(std::string("object-gcs: endpoint: ") + e.what());
    }
    GoogleAuthOptions go;
    go.credentials_file = cfg_string(cfg, kName, "credentials_file");
    go.credentials_json = cfg_string(cfg, kName, "credentials_json");
    bool given = !go.credentials_file.empty() || !go.credentials_json.empty();
    bool anonymous =
        cfg_bool(cfg, kName, "anonymous", (emulator || !cfg_string(cfg, kName, "endpoint").empty()) && !given);
    if (anonymous) {
      go.use_metadata_server = false;
      go.env = nullptr;
      go.credentials_file.clear();
      go.credentials_json.clear();
    }
    try {
      creds_ = std::make_unique<GoogleCredentials>(go);
    } catch (const std::exception& e) {
      ork::throw_invalid(std::string("object-gcs: ") + e.what());
    }
    threshold_ = cfg_int(cfg, kName, "resumable_threshold", 8 * kMiB, 0, 5LL * 1024 * 1024 * kMiB);
    chunk_ = cfg_int(cfg, kName, "chunk_size", 8 * kMiB, kChunkUnit, 1024 * kMiB);
    if (chunk_ % kChunkUnit) ork::throw_invalid("object-gcs: \"chunk_size\" must be a multiple of 262144 (256 KiB)");
    page_size_ = cfg_int(cfg, kName, "list_page_size", 1000, 1, 1000);
    HttpOptions ho;
    ho.timeout = std::chrono::milliseconds(cfg_int(cfg, kName, "timeout_ms", 60000, 100, 3600000));
    ho.retry.max_attempts = static_cast<int>(cfg_int(cfg, kName, "max_attempts", 5, 1, 20));
    http_ = std::make_unique<HttpClient>(ho);
    if (cfg_bool(cfg, kName, "create_bucket", false)) {
      std::string project = cfg_string(cfg, kName, "project", creds_->project_id());
      if (project.empty()) ork::throw_invalid("object-gcs: \"create_bucket\" needs \"project\"");
      ensure_bucket(project);
    }
    host_.log(ORK_LOG_DEBUG,
              "object-gcs: bucket " + bucket_ + " at " + endpoint_ + " (credentials: " + creds_->source() + ")");
  }

  std::optional<std::string> get(const std::string& key) override {
    check_object_key(key, false, kName);
    HttpResponse r = call("GET", object_url(key, "alt=media"));
    if (r.status == 404) return not_found_or_throw(r, key);
    if (!r.ok()) fail(r, "get " + key);
    return std::move(r.body);
  }

  bool get_file(const std::string& key, const std::string& path) override {
    check_object_key(key, false, kName);
    HttpRequest req{"GET", object_url(key, "alt=media"), {}, {}, path};
    HttpResponse r = call(req);
    if (r.status == 404) return not_found_or_throw(r, key).has_value();
    if (!r.ok()) fail(r, "get " + key);
    return true;
  }

  void put(const std::string& key, std::string_view data, const json& opts) override {
    check_object_key(key, false, kName);
    upload(key, ObjectSource(data), opts);
  }

  void put_file(const std::string& key, const std::string& path, const json& opts) override {
    check_object_key(key, false, kName);
    upload(key, ObjectSource(path, kName), opts);
  }

  void del(const std::string& key) override {
    check_object_key(key, false, kName);
    HttpResponse r = call("DELETE", object_url(key));
    if (r.ok()) return;
    if (r.status == 404 && !bucket_missing(r)) return;
    fail(r, "delete " + key);
  }

  std::vector<std::string> list(const std::string& prefix) override {
    check_object_key(prefix, true, kName);
    std::vector<std::string> keys;
    std::string token;
    for (;;) {
      std::string q = "prefix=" + uri_encode(prefix_ + prefix) + "&maxResults=" + std::to_string(page_size_) +
                      "&fields=" + uri_encode("items(name),nextPageToken");
      if (!token.empty()) q += "&pageToken=" + uri_encode(token);
      HttpResponse r = call("GET", endpoint_ + "/storage/v1/b/" + uri_encode(bucket_) + "/o?" + q);
      if (!r.ok()) fail(r, "list " + prefix);
      json j = json::parse(r.body, nullptr, false);
      if (!j.is_object()) throw std::runtime_error("object-gcs: list " + prefix + ": the answer is not JSON");
      if (j.contains("items") && j["items"].is_array())
        for (const auto& it : j["items"]) {
          std::string n = it.value("name", "");
          if (n.size() >= prefix_.size()) keys.push_back(n.substr(prefix_.size()));
        }
      token = j.value("nextPageToken", "");
      if (token.empty()) break;
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

 private:
  std::string object_url(const std::string& key, const std::string& query = "") const {
    std::string u = endpoint_ + "/storage/v1/b/" + uri_encode(bucket_) + "/o/" + uri_encode(prefix_ + key);
    return query.empty() ? u : u + "?" + query;
  }

  HttpResponse call(const std::string& method, const std::string& url, std::string_view body = {}, Headers h = {}) {
    HttpRequest req{method, url, std::move(h), body, ""};
    return call(req);
  }

  HttpResponse call(const HttpRequest& req) {
    std::string token;
    try {
      token = creds_->access_token();
    } catch (const std::exception& e) {
      ork::throw_unavailable(std::string("object-gcs: ") + e.what());
    }
    try {
      return http_->send(req, [&](HttpRequest& r) {
        if (!token.empty()) r.set_header("Authorization", "Bearer " + token);
      });
    } catch (const HttpError& e) {
      ork::throw_unavailable(std::string("object-gcs: ") + e.what());
    }
  }

  static std::string error_message(const HttpResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_object()) return j["error"].value("message", "");
    return r.body.substr(0, 200);
  }
  static bool bucket_missing(const HttpResponse& r) {
    std::string m = error_message(r);
    return m.find("bucket") != std::string::npos && m.find("does not exist") != std::string::npos;
  }

  std::optional<std::string> not_found_or_throw(const HttpResponse& r, const std::string& key) {
    if (bucket_missing(r)) fail(r, "get " + key);
    return std::nullopt;
  }

  [[noreturn]] void fail(const HttpResponse& r, const std::string& what) {
    std::string text = "object-gcs: " + what + ": HTTP " + std::to_string(r.status) + ": " + error_message(r);
    if (r.status == 404 && bucket_missing(r)) ork::throw_invalid(text);
    if (r.status == 409 || r.status == 412) ork::throw_conflict(text);
    if (r.status == 404) ork::throw_not_found(text);
    if (r.status == 400 || r.status == 401 || r.status == 403) ork::throw_invalid(text);
    if (HttpClient::retryable_status(r.status)) ork::throw_unavailable(text);
    throw std::runtime_error(text);
  }

  void upload(const std::string& key, const ObjectSource& src, const json& opts) {
    bool exclusive = opt_true(opts, "if_none_match");
    std::string type = opt_string(opts, "content_type", "application/octet-stream");
    std::string base =
        endpoint_ + "/upload/storage/v1/b/" + uri_encode(bucket_) + "/o?name=" + uri_encode(prefix_ + key);
    if (exclusive) base += "&ifGenerationMatch=0";
    std::string scratch;
    if (static_cast<int64_t>(src.size()) <= threshold_) {
      std::string_view body = src.read(0, src.size(), scratch);
      HttpResponse r = call("POST", base + "&uploadType=media", body, {{"Content-Type", type}});
      if (r.ok()) return;
      // 412 after a retry: the first attempt may have created it (its answer lost). Ours if the bytes match.
      if (r.status == 412 && r.attempts > 1 && stored_md5(key) == base64_encode(md5(body))) return;
      if (r.status == 412) ork::throw_conflict("object-gcs: '" + key + "' already exists");
      fail(r, "put " + key);
    }
    std::string meta = json{{"name", prefix_ + key}, {"contentType", type}}.dump();
    HttpResponse init = call("POST", base + "&uploadType=resumable", meta,
                             {{"Content-Type", "application/json; charset=UTF-8"},
                              {"X-Upload-Content-Type", type},
                              {"X-Upload-Content-Length", std::to_string(src.size())}});
    if (init.status == 412) ork::throw_conflict("object-gcs: '" + key + "' already exists");
    if (!init.ok()) fail(init, "start resumable upload of " + key);
    std::string session = init.header("location");
    if (session.empty()) throw std::runtime_error("object-gcs: no session URI for the upload of " + key);
    size_t off = 0, total = src.size();
    int stalls = 0;
    for (;;) {
      std::string_view chunk = src.read(off, static_cast<size_t>(chunk_), scratch);
      std::string range = chunk.empty() ? "bytes */" + std::to_string(total)
                                        : "bytes " + std::to_string(off) + "-" +
                                              std::to_string(off + chunk.size() - 1) + "/" + std::to_string(total);
      HttpResponse r = call("PUT", session, chunk, {{"Content-Range", range}});
      if (r.ok()) return;
      if (r.status == 412) ork::throw_conflict("object-gcs: '" + key + "' already exists");
      if (r.status != 308) {
        call("DELETE", session);  // cancel the session (best effort: 499 is its normal answer)
        fail(r, "upload " + key);
      }
      // 308 Resume Incomplete: Range says what the service has ("bytes=0-N"); absent = nothing yet.
      std::string have = r.header("range");
      size_t next = 0;
      if (size_t dash = have.rfind('-'); dash != std::string::npos) next = std::stoull(have.substr(dash + 1)) + 1;
      stalls = next > off ? 0 : stalls + 1;
      if (stalls > 3) throw std::runtime_error("object-gcs: the resumable upload of " + key + " makes no progress");
      off = next;
    }
  }

  // The object's md5Hash (base64), "" when missing.
  std::string stored_md5(const std::string& key) {
    HttpResponse r = call("GET", object_url(key, "fields=md5Hash"));
    json j = json::parse(r.body, nullptr, false);
    return r.ok() && j.is_object() ? j.value("md5Hash", "") : "";
  }

  void ensure_bucket(const std::string& project) {
    HttpResponse head = call("GET", endpoint_ + "/storage/v1/b/" + uri_encode(bucket_));
    if (head.ok()) return;
    if (head.status != 404) fail(head, "check bucket " + bucket_);
    HttpResponse r = call("POST", endpoint_ + "/storage/v1/b?project=" + uri_encode(project),
                          json{{"name", bucket_}}.dump(), {{"Content-Type", "application/json"}});
    if (r.ok() || r.status == 409) return;
    fail(r, "create bucket " + bucket_);
  }

  ork::HostServices host_;
  std::string bucket_, prefix_, endpoint_;
  int64_t threshold_ = 0, chunk_ = 0, page_size_ = 1000;
  std::unique_ptr<GoogleCredentials> creds_;
  std::unique_ptr<HttpClient> http_;
};

}  // namespace

ORK_OBJECT_PLUGIN(GcsObjectStore, "gcs", ORK_PLUGIN_VERSION)
