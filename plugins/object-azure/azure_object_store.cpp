// ork-object-azure: an ObjectStore on Azure Blob Storage (or azurite) over the Blob REST API: Put/Get/Delete Blob,
// Put Block + Put Block List above a threshold, List Blobs with markers, conditional create (If-None-Match: *).
// Auth: SharedKey with the account key, or a SAS token; connection strings as the Azure tools print them.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <ork/plugin.hpp>
#include <string>
#include <vector>

#include "azure_storage.hpp"
#include "crypto.hpp"
#include "http.hpp"
#include "object_support.hpp"
#include "web_util.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace {

using namespace ork::common;
using ork::json;
constexpr const char* kName = "object-azure";
constexpr int64_t kMiB = 1024 * 1024;

class AzureObjectStore : public ork::ObjectStore {
 public:
  static constexpr const char* kInfo =
      R"({"description": "Objects in an Azure Blob Storage container", "capabilities": ["if_none_match", "streaming", "blocks"]})";

  AzureObjectStore(const json& cfg, ork::HostServices host) : host_(host) {
    if (!cfg.is_object()) ork::throw_invalid("object-azure: config must be an object");
    static const char* known[] = {"connection_string", "account",          "account_key", "sas_token",
                                  "endpoint",          "container",        "prefix",      "block_threshold",
                                  "block_size",        "create_container", "timeout_ms",  "max_attempts",
                                  "list_page_size",    "api_version"};
    for (const auto& [k, v] : cfg.items())
      if (std::find(std::begin(known), std::end(known), k) == std::end(known))
        ork::throw_invalid("object-azure: unknown config field \"" + k + "\"");
    std::string cs = cfg_string(cfg, kName, "connection_string");
    if (!cs.empty()) {
      try {
        acct_ = parse_azure_connection_string(cs);
      } catch (const std::invalid_argument& e) {
        ork::throw_invalid(std::string("object-azure: ") + e.what());
      }
    }
    if (auto v = cfg_string(cfg, kName, "account"); !v.empty()) acct_.account = v;
    if (auto v = cfg_string(cfg, kName, "account_key"); !v.empty()) acct_.key = v;
    if (auto v = cfg_string(cfg, kName, "sas_token"); !v.empty()) acct_.sas = v[0] == '?' ? v.substr(1) : v;
    if (auto v = cfg_string(cfg, kName, "endpoint"); !v.empty()) acct_.blob_endpoint = v;
    if (acct_.blob_endpoint.empty() && !acct_.account.empty())
      acct_.blob_endpoint = "https://" + acct_.account + ".blob.core.windows.net";
    while (!acct_.blob_endpoint.empty() && acct_.blob_endpoint.back() == '/') acct_.blob_endpoint.pop_back();
    if (acct_.blob_endpoint.empty())
      ork::throw_invalid("object-azure: config needs \"connection_string\", or \"account\" (or \"endpoint\")");
    if (acct_.key.empty() && acct_.sas.empty())
      ork::throw_invalid(
          "object-azure: config needs an account key or a SAS token (connection_string, "
          "\"account_key\" or \"sas_token\")");
    if (!acct_.key.empty()) {
      try {
        if (base64_decode(acct_.key).empty()) throw std::invalid_argument("empty");
      } catch (const std::invalid_argument&) {
        ork::throw_invalid("object-azure: the account key is not base64");
      }
    }
    try {
      parse_url(acct_.blob_endpoint);
    } catch (const std::exception& e) {
      ork::throw_invalid("object-azure: blob endpoint: " + std::string(e.what()));
    }
    container_ = cfg_string(cfg, kName, "container", "", true);
    bool name_ok = container_.size() >= 3 && container_.size() <= 63;
    for (char c : container_) name_ok &= (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!name_ok) ork::throw_invalid("object-azure: \"container\" must be 3-63 lowercase letters, digits or '-'");
    prefix_ = cfg_prefix(cfg, kName);
    threshold_ = cfg_int(cfg, kName, "block_threshold", 8 * kMiB, 1, 5000 * kMiB);
    block_size_ = cfg_int(cfg, kName, "block_size", 8 * kMiB, 64 * 1024, 4000 * kMiB);
    page_size_ = cfg_int(cfg, kName, "list_page_size", 5000, 1, 5000);
    api_version_ = cfg_string(cfg, kName, "api_version", "2021-08-06");
    HttpOptions ho;
    ho.timeout = std::chrono::milliseconds(cfg_int(cfg, kName, "timeout_ms", 60000, 100, 3600000));
    ho.retry.max_attempts = static_cast<int>(cfg_int(cfg, kName, "max_attempts", 5, 1, 20));
    http_ = std::make_unique<HttpClient>(ho);
    if (cfg_bool(cfg, kName, "create_container", false)) ensure_container();
    host_.log(ORK_LOG_DEBUG, "object-azure: container " + container_ + " at " + acct_.blob_endpoint + " (" +
                                 (acct_.key.empty() ? "SAS" : "SharedKey") + ")");
  }

  std::optional<std::string> get(const std::string& key) override {
    check_object_key(key, false, kName);
    HttpResponse r = call("GET", blob_url(key));
    if (r.status == 404) return not_found_or_throw(r, key);
    if (!r.ok()) fail(r, "get " + key);
    return std::move(r.body);
  }

  bool get_file(const std::string& key, const std::string& path) override {
    check_object_key(key, false, kName);
    HttpRequest req{"GET", blob_url(key), {}, {}, path};
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
    HttpResponse r = call("DELETE", blob_url(key));
    if (r.ok()) return;
    if (r.status == 404 && error_code(r) != "ContainerNotFound") return;
    fail(r, "delete " + key);
  }

  std::vector<std::string> list(const std::string& prefix) override {
    check_object_key(prefix, true, kName);
    std::vector<std::string> keys;
    std::string marker;
    for (;;) {
      std::string q = "restype=container&comp=list&maxresults=" + std::to_string(page_size_) +
                      "&prefix=" + uri_encode(prefix_ + prefix);
      if (!marker.empty()) q += "&marker=" + uri_encode(marker);
      HttpResponse r = call("GET", container_url(q));
      if (!r.ok()) fail(r, "list " + prefix);
      for (auto& n : xml_all(r.body, "Name"))
        if (n.size() >= prefix_.size()) keys.push_back(n.substr(prefix_.size()));
      marker = xml_first(r.body, "NextMarker");
      if (marker.empty()) break;
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

 private:
  std::string with_sas(std::string url, const std::string& query) const {
    std::string q = query;
    if (acct_.key.empty() && !acct_.sas.empty()) q += (q.empty() ? "" : "&") + acct_.sas;
    return q.empty() ? url : url + "?" + q;
  }
  std::string container_url(const std::string& query) const {
    return with_sas(acct_.blob_endpoint + "/" + container_, query);
  }
  std::string blob_url(const std::string& key, const std::string& query = "") const {
    return with_sas(acct_.blob_endpoint + "/" + container_ + "/" + uri_encode(prefix_ + key, true), query);
  }

  HttpResponse call(const std::string& method, const std::string& url, std::string_view body = {}, Headers h = {}) {
    HttpRequest req{method, url, std::move(h), body, ""};
    return call(req);
  }

  HttpResponse call(const HttpRequest& req) {
    try {
      return http_->send(req, [&](HttpRequest& r) {
        r.set_header("x-ms-version", api_version_);
        if (!acct_.key.empty())
          azure_sign_shared_key(r, acct_.account, acct_.key, now_epoch_ms());
        else
          r.set_header("x-ms-date", rfc1123_date(now_epoch_ms()));
      });
    } catch (const HttpError& e) {
      ork::throw_unavailable(std::string("object-azure: ") + e.what());
    }
  }

  static std::string error_code(const HttpResponse& r) {
    std::string c = r.header("x-ms-error-code");
    return c.empty() ? xml_first(r.body, "Code") : c;
  }

  std::optional<std::string> not_found_or_throw(const HttpResponse& r, const std::string& key) {
    if (error_code(r) == "ContainerNotFound") fail(r, "get " + key);
    return std::nullopt;
  }

  [[noreturn]] void fail(const HttpResponse& r, const std::string& what) {
    std::string code = error_code(r), msg = xml_first(r.body, "Message");
    msg = msg.substr(0, msg.find('\n'));
    std::string text = "object-azure: " + what + ": HTTP " + std::to_string(r.status) +
                       (code.empty() ? "" : " " + code) + (msg.empty() ? "" : ": " + msg);
    if (code == "ContainerNotFound") ork::throw_invalid(text + " (container " + container_ + ")");
    if (r.status == 409 || r.status == 412) ork::throw_conflict(text);
    if (r.status == 404) ork::throw_not_found(text);
    if (r.status == 400 || r.status == 401 || r.status == 403) ork::throw_invalid(text);
    if (HttpClient::retryable_status(r.status)) ork::throw_unavailable(text);
    throw std::runtime_error(text);
  }

  [[noreturn]] void conflict(const std::string& key) {
    ork::throw_conflict("object-azure: '" + key + "' already exists");
  }

  void upload(const std::string& key, const ObjectSource& src, const json& opts) {
    bool exclusive = opt_true(opts, "if_none_match");
    std::string type = opt_string(opts, "content_type", "application/octet-stream");
    std::string scratch;
    if (static_cast<int64_t>(src.size()) <= threshold_) {
      Headers h{{"x-ms-blob-type", "BlockBlob"}, {"Content-Type", type}};
      if (exclusive) h.emplace_back("If-None-Match", "*");
      std::string_view body = src.read(0, src.size(), scratch);
      HttpResponse r = call("PUT", blob_url(key), body, h);
      if (r.ok()) return;
      // A conflict after a retry: the first attempt may have created it (its answer lost). Ours if the bytes match.
      if (exclusive && (r.status == 409 || r.status == 412) && r.attempts > 1 &&
          call("HEAD", blob_url(key)).header("content-md5") == base64_encode(md5(body)))
        return;
      if (exclusive && (r.status == 409 || r.status == 412)) conflict(key);
      fail(r, "put " + key);
    }
    if (exclusive && call("HEAD", blob_url(key)).ok()) conflict(key);  // fail fast; the block list decides
    // Block ids: one length for the whole blob, unique per upload so concurrent writers never mix blocks.
    std::string tag = random_hex(8);
    std::string list = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
    size_t n = 0;
    for (size_t off = 0; off < src.size(); off += static_cast<size_t>(block_size_), ++n) {
      char idx[16];
      std::snprintf(idx, sizeof idx, "%06zu", n);
      std::string id = base64_encode(tag + "-" + idx);
      HttpResponse r = call("PUT", blob_url(key, "comp=block&blockid=" + uri_encode(id)),
                            src.read(off, static_cast<size_t>(block_size_), scratch), {});
      if (!r.ok()) fail(r, "put block " + std::to_string(n) + " of " + key);
      list += "<Latest>" + id + "</Latest>";
    }
    list += "</BlockList>";
    Headers h{{"Content-Type", "application/xml"}, {"x-ms-blob-content-type", type}};
    if (exclusive) h.emplace_back("If-None-Match", "*");
    HttpResponse r = call("PUT", blob_url(key, "comp=blocklist"), list, h);
    if (r.ok()) return;
    if (exclusive && (r.status == 409 || r.status == 412)) conflict(key);
    fail(r, "put block list of " + key);
  }

  void ensure_container() {
    HttpResponse r = call("PUT", container_url("restype=container"));
    if (r.ok() || (r.status == 409 && error_code(r) == "ContainerAlreadyExists")) return;
    fail(r, "create container " + container_);
  }

  ork::HostServices host_;
  AzureAccount acct_;
  std::string container_, prefix_, api_version_;
  int64_t threshold_ = 0, block_size_ = 0, page_size_ = 5000;
  std::unique_ptr<HttpClient> http_;
};

}  // namespace

ORK_OBJECT_PLUGIN(AzureObjectStore, "azure", ORK_PLUGIN_VERSION)
