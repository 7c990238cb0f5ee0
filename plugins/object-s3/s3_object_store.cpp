// ork-object-s3: an ObjectStore on Amazon S3 (or any S3-compatible service) over its REST API: SigV4-signed
// requests, path-style or virtual-host addressing, multipart upload above a threshold, ListObjectsV2 with
// continuation tokens, conditional create with If-None-Match: *. HTTP and signing live in plugins/common.
#include <algorithm>
#include <memory>
#include <optional>
#include <ork/plugin.hpp>
#include <string>
#include <vector>

#include "aws_credentials.hpp"
#include "crypto.hpp"
#include "http.hpp"
#include "object_support.hpp"
#include "sigv4.hpp"
#include "web_util.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace {

using namespace ork::common;
using ork::json;
constexpr const char* kName = "object-s3";
constexpr int64_t kMiB = 1024 * 1024;

class S3ObjectStore : public ork::ObjectStore {
 public:
  static constexpr const char* kInfo =
      R"({"description": "Objects in an Amazon S3 (or S3-compatible) bucket", "capabilities": ["if_none_match", "streaming", "multipart"]})";

  S3ObjectStore(const json& cfg, ork::HostServices host) : host_(host) {
    if (!cfg.is_object()) ork::throw_invalid("object-s3: config must be an object");
    static const char* known[] = {"bucket",
                                  "prefix",
                                  "region",
                                  "endpoint",
                                  "addressing",
                                  "access_key_id",
                                  "secret_access_key",
                                  "session_token",
                                  "profile",
                                  "multipart_threshold",
                                  "part_size",
                                  "create_bucket",
                                  "timeout_ms",
                                  "max_attempts",
                                  "connect_to",
                                  "list_page_size"};
    for (const auto& [k, v] : cfg.items())
      if (std::find(std::begin(known), std::end(known), k) == std::end(known))
        ork::throw_invalid("object-s3: unknown config field \"" + k + "\"");
    bucket_ = cfg_string(cfg, kName, "bucket", "", true);
    if (bucket_.size() < 3 || bucket_.size() > 63 || bucket_.find('/') != std::string::npos)
      ork::throw_invalid("object-s3: \"bucket\" must be a bucket name (3-63 characters, no '/')");
    prefix_ = cfg_prefix(cfg, kName);
    creds_ = std::make_unique<AwsCredentialsProvider>(aws_credentials_options(cfg, kName));
    region_ = aws_region(cfg, kName, *creds_);
    std::string endpoint = cfg_string(cfg, kName, "endpoint");
    std::string addressing = cfg_string(cfg, kName, "addressing", endpoint.empty() ? "virtual" : "path");
    if (addressing != "path" && addressing != "virtual")
      ork::throw_invalid("object-s3: \"addressing\" must be \"path\" or \"virtual\"");
    virtual_host_ = addressing == "virtual";
    try {
      endpoint_ = parse_url(endpoint.empty() ? "https://s3." + region_ + ".amazonaws.com" : endpoint);
    } catch (const std::exception& e) {
      ork::throw_invalid(std::string("object-s3: \"endpoint\": ") + e.what());
    }
    while (endpoint_.path.size() > 1 && endpoint_.path.back() == '/') endpoint_.path.pop_back();
    if (endpoint_.path == "/") endpoint_.path.clear();
    threshold_ = cfg_int(cfg, kName, "multipart_threshold", 8 * kMiB, 5 * kMiB, 5LL * 1024 * kMiB);
    part_size_ = cfg_int(cfg, kName, "part_size", 8 * kMiB, 5 * kMiB, 5LL * 1024 * kMiB);
    page_size_ = cfg_int(cfg, kName, "list_page_size", 1000, 1, 1000);
    HttpOptions ho;
    ho.timeout = std::chrono::milliseconds(cfg_int(cfg, kName, "timeout_ms", 60000, 100, 3600000));
    ho.retry.max_attempts = static_cast<int>(cfg_int(cfg, kName, "max_attempts", 5, 1, 20));
    ho.connect_to = cfg_string(cfg, kName, "connect_to");
    http_ = std::make_unique<HttpClient>(ho);
    if (cfg_bool(cfg, kName, "create_bucket", false)) ensure_bucket();
    host_.log(ORK_LOG_DEBUG, "object-s3: bucket " + bucket_ + " at " + endpoint_.origin() + " (" + addressing +
                                 "-style, region " + region_ + ")");
  }

  std::optional<std::string> get(const std::string& key) override {
    check_object_key(key, false, kName);
    HttpResponse r = call("GET", object_url(key));
    if (r.status == 404) return not_found_or_throw(r, key);
    if (!r.ok()) fail(r, "get " + key);
    return std::move(r.body);
  }

  bool get_file(const std::string& key, const std::string& path) override {
    check_object_key(key, false, kName);
    HttpRequest req{"GET", object_url(key), {}, {}, path};
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
    if (r.ok() || r.status == 404) {
      if (r.status == 404 && xml_first(r.body, "Code") == "NoSuchBucket") fail(r, "delete " + key);
      return;
    }
    fail(r, "delete " + key);
  }

  std::vector<std::string> list(const std::string& prefix) override {
    check_object_key(prefix, true, kName);
    std::vector<std::string> keys;
    std::string token;
    for (;;) {
      std::string q = "list-type=2&max-keys=" + std::to_string(page_size_) + "&prefix=" + uri_encode(prefix_ + prefix);
      if (!token.empty()) q += "&continuation-token=" + uri_encode(token);
      HttpResponse r = call("GET", bucket_url(q));
      if (!r.ok()) fail(r, "list " + prefix);
      for (auto& k : xml_all(r.body, "Key"))
        if (k.size() >= prefix_.size()) keys.push_back(k.substr(prefix_.size()));
      token = xml_first(r.body, "NextContinuationToken");
      if (xml_first(r.body, "IsTruncated") != "true" || token.empty()) break;
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

 private:
  // ---- URLs

  std::string base(bool with_bucket) const {
    if (virtual_host_ && with_bucket) {
      std::string port = endpoint_.port.empty() ? "" : ":" + endpoint_.port;
      return endpoint_.scheme + "://" + bucket_ + "." + endpoint_.host + port + endpoint_.path;
    }
    return endpoint_.origin() + endpoint_.path;
  }
  std::string bucket_url(const std::string& query = "") const {
    std::string u = virtual_host_ ? base(true) + "/" : base(false) + "/" + bucket_;
    return query.empty() ? u : u + "?" + query;
  }
  std::string object_url(const std::string& key, const std::string& query = "") const {
    std::string u = (virtual_host_ ? base(true) : base(false) + "/" + bucket_) + "/" + uri_encode(prefix_ + key, true);
    return query.empty() ? u : u + "?" + query;
  }

  // ---- Requests

  HttpResponse call(const std::string& method, const std::string& url, std::string_view body = {}, Headers h = {}) {
    HttpRequest req{method, url, std::move(h), body, ""};
    return call(req);
  }

  HttpResponse call(const HttpRequest& req) {
    std::string hash = sha256_hex(req.body);
    AwsCredentials c;
    try {
      c = creds_->get();
    } catch (const std::exception& e) {
      ork::throw_invalid(std::string("object-s3: ") + e.what());
    }
    try {
      return http_->send(req,
                         [&](HttpRequest& r) { sigv4_sign_request(r, c, region_, "s3", now_epoch_ms(), true, hash); });
    } catch (const HttpError& e) {
      ork::throw_unavailable(std::string("object-s3: ") + e.what());
    }
  }

  std::optional<std::string> not_found_or_throw(const HttpResponse& r, const std::string& key) {
    if (xml_first(r.body, "Code") == "NoSuchBucket") fail(r, "get " + key);
    return std::nullopt;
  }

  [[noreturn]] void fail(const HttpResponse& r, const std::string& what) {
    std::string code = xml_first(r.body, "Code"), msg = xml_first(r.body, "Message");
    std::string text = "object-s3: " + what + ": HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code) +
                       (msg.empty() ? "" : ": " + msg);
    if (code == "NoSuchBucket") ork::throw_invalid(text + " (bucket " + bucket_ + ")");
    if (r.status == 409 || r.status == 412) ork::throw_conflict(text);
    if (r.status == 404) ork::throw_not_found(text);
    if (r.status == 400 || r.status == 401 || r.status == 403) ork::throw_invalid(text);
    if (HttpClient::retryable_status(r.status)) ork::throw_unavailable(text);
    throw std::runtime_error(text);
  }

  // ---- Uploads

  void upload(const std::string& key, const ObjectSource& src, const json& opts) {
    bool exclusive = opt_true(opts, "if_none_match");
    std::string type = opt_string(opts, "content_type", "application/octet-stream");
    std::string scratch;
    if (static_cast<int64_t>(src.size()) <= threshold_) {
      std::string_view body = src.read(0, src.size(), scratch);
      Headers h{{"Content-Type", type}};
      if (exclusive) h.emplace_back("If-None-Match", "*");
      for (int attempt = 0;; ++attempt) {
        HttpResponse r = call("PUT", object_url(key), body, h);
        if (r.ok()) return;
        // 412 after a retry: the first attempt may have created it (its answer lost). Ours if the bytes match.
        if (r.status == 412 && r.attempts > 1 && stored_md5_hex(key) == hex(md5(body))) return;
        if (r.status == 412) ork::throw_conflict("object-s3: '" + key + "' already exists");
        if (r.status == 409 && exclusive && attempt < 5) continue;  // ConditionalRequestConflict: retry
        fail(r, "put " + key);
      }
    }
    if (exclusive) {  // fail fast before sending every part; the condition on completion decides
      HttpResponse head = call("HEAD", object_url(key));
      if (head.ok()) ork::throw_conflict("object-s3: '" + key + "' already exists");
    }
    HttpResponse init = call("POST", object_url(key, "uploads"), {}, Headers{{"Content-Type", type}});
    if (!init.ok()) fail(init, "start multipart upload of " + key);
    std::string upload_id = xml_first(init.body, "UploadId");
    if (upload_id.empty()) throw std::runtime_error("object-s3: no UploadId in the answer for " + key);
    std::string q = "uploadId=" + uri_encode(upload_id);
    try {
      std::string done = "<CompleteMultipartUpload>";
      size_t part = 1;
      for (size_t off = 0; off < src.size(); off += static_cast<size_t>(part_size_), ++part) {
        std::string_view body = src.read(off, static_cast<size_t>(part_size_), scratch);
        HttpResponse r = call("PUT", object_url(key, "partNumber=" + std::to_string(part) + "&" + q), body);
        if (!r.ok()) fail(r, "upload part " + std::to_string(part) + " of " + key);
        done += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" + xml_escape(r.header("etag")) +
                "</ETag></Part>";
      }
      done += "</CompleteMultipartUpload>";
      Headers h{{"Content-Type", "application/xml"}};
      if (exclusive) h.emplace_back("If-None-Match", "*");
      HttpResponse r = call("POST", object_url(key, q), done, h);
      // S3 may answer 200 and still report an error in the body.
      if (r.ok() && r.body.find("<Error>") == std::string::npos) return;
      if (r.status == 412) ork::throw_conflict("object-s3: '" + key + "' already exists");
      if (r.ok()) r.status = 500;
      fail(r, "complete multipart upload of " + key);
    } catch (...) {
      try {
        call("DELETE", object_url(key, q));
      } catch (...) {
        // best effort: a lifecycle rule cleans up what an abort could not
      }
      throw;
    }
  }

  // The ETag of a single-part object is the hex MD5 of its bytes; "" when missing or multipart.
  std::string stored_md5_hex(const std::string& key) {
    HttpResponse head = call("HEAD", object_url(key));
    std::string etag = head.header("etag");
    if (!head.ok() || etag.size() < 2) return "";
    return etag.front() == '"' ? etag.substr(1, etag.size() - 2) : etag;
  }

  void ensure_bucket() {
    HttpResponse head = call("HEAD", bucket_url());
    if (head.ok()) return;
    if (head.status != 404) fail(head, "check bucket " + bucket_);
    std::string body;
    if (region_ != "us-east-1")
      body = "<CreateBucketConfiguration><LocationConstraint>" + region_ +
             "</LocationConstraint></CreateBucketConfiguration>";
    HttpResponse r =
        call("PUT", bucket_url(), body, body.empty() ? Headers{} : Headers{{"Content-Type", "application/xml"}});
    if (r.ok() || xml_first(r.body, "Code") == "BucketAlreadyOwnedByYou") return;
    fail(r, "create bucket " + bucket_);
  }

  ork::HostServices host_;
  std::string bucket_, prefix_, region_;
  Url endpoint_;
  bool virtual_host_ = false;
  int64_t threshold_ = 0, part_size_ = 0, page_size_ = 1000;
  std::unique_ptr<AwsCredentialsProvider> creds_;
  std::unique_ptr<HttpClient> http_;
};

}  // namespace

ORK_OBJECT_PLUGIN(S3ObjectStore, "s3", ORK_PLUGIN_VERSION)
