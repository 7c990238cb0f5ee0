#include "azure_storage.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <vector>

#include "crypto.hpp"
#include "web_util.hpp"

namespace ork::common {

AzureAccount parse_azure_connection_string(std::string_view cs) {
  std::map<std::string, std::string> kv;  // lowercase key -> value
  size_t i = 0;
  while (i < cs.size()) {
    size_t semi = cs.find(';', i);
    if (semi == std::string_view::npos) semi = cs.size();
    std::string part = trim(cs.substr(i, semi - i));
    i = semi + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string::npos)
      throw std::invalid_argument("connection string: '" + part.substr(0, 40) + "' has no '='");
    std::string k = to_lower(trim(part.substr(0, eq)));
    static const char* known[] = {"defaultendpointsprotocol",
                                  "accountname",
                                  "accountkey",
                                  "endpointsuffix",
                                  "blobendpoint",
                                  "sharedaccesssignature",
                                  "usedevelopmentstorage",
                                  "developmentstorageproxyuri",
                                  "queueendpoint",
                                  "tableendpoint",
                                  "fileendpoint"};
    if (std::find(std::begin(known), std::end(known), k) == std::end(known))
      throw std::invalid_argument("connection string: unknown part '" + part.substr(0, eq) + "'");
    kv[k] = trim(part.substr(eq + 1));
  }
  AzureAccount a;
  if (to_lower(kv["usedevelopmentstorage"]) == "true") {
    std::string base = kv["developmentstorageproxyuri"].empty() ? "http://127.0.0.1" : kv["developmentstorageproxyuri"];
    while (!base.empty() && base.back() == '/') base.pop_back();
    a.account = kAzuriteAccount;
    a.key = kAzuriteKey;
    a.blob_endpoint = base + ":10000/" + kAzuriteAccount;
    return a;
  }
  a.account = kv["accountname"];
  a.key = kv["accountkey"];
  a.sas = kv["sharedaccesssignature"];
  if (!a.sas.empty() && a.sas.front() == '?') a.sas.erase(0, 1);
  a.blob_endpoint = kv["blobendpoint"];
  if (a.blob_endpoint.empty()) {
    if (a.account.empty()) throw std::invalid_argument("connection string: needs AccountName or BlobEndpoint");
    std::string proto = kv["defaultendpointsprotocol"].empty() ? "https" : to_lower(kv["defaultendpointsprotocol"]);
    std::string suffix = kv["endpointsuffix"].empty() ? "core.windows.net" : kv["endpointsuffix"];
    a.blob_endpoint = proto + "://" + a.account + ".blob." + suffix;
  }
  while (!a.blob_endpoint.empty() && a.blob_endpoint.back() == '/') a.blob_endpoint.pop_back();
  if (a.account.empty()) {  // BlobEndpoint + SAS: the account is the first label of the host
    Url u = parse_url(a.blob_endpoint);
    a.account = u.host.substr(0, u.host.find('.'));
  }
  if (a.key.empty() && a.sas.empty())
    throw std::invalid_argument("connection string: needs AccountKey or SharedAccessSignature");
  if (!a.key.empty()) {
    try {
      if (base64_decode(a.key).empty()) throw std::invalid_argument("empty");
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument("connection string: AccountKey is not base64");
    }
  }
  return a;
}

std::string azure_shared_key_string_to_sign(const HttpRequest& req, std::string_view account) {
  Url u = parse_url(req.url);
  auto h = [&](const char* n) { return req.header(n); };
  std::string len = req.body.empty() ? "" : std::to_string(req.body.size());
  std::string s = req.method + "\n" + h("content-encoding") + "\n" + h("content-language") + "\n" + len + "\n" +
                  h("content-md5") + "\n" + h("content-type") + "\n" + h("date") + "\n" + h("if-modified-since") +
                  "\n" + h("if-match") + "\n" + h("if-none-match") + "\n" + h("if-unmodified-since") + "\n" +
                  h("range") + "\n";
  std::map<std::string, std::string> ms;
  for (const auto& [k, v] : req.headers) {
    std::string lk = to_lower(k);
    if (lk.rfind("x-ms-", 0) == 0) ms[lk] = trim(v);
  }
  for (const auto& [k, v] : ms) s += k + ":" + v + "\n";
  s += "/" + std::string(account) + u.path;
  std::map<std::string, std::vector<std::string>> q;
  size_t i = 0;
  while (i < u.query.size()) {
    size_t amp = u.query.find('&', i);
    if (amp == std::string::npos) amp = u.query.size();
    std::string kv = u.query.substr(i, amp - i);
    i = amp + 1;
    if (kv.empty()) continue;
    size_t eq = kv.find('=');
    q[to_lower(uri_decode(kv.substr(0, eq)))].push_back(eq == std::string::npos ? "" : uri_decode(kv.substr(eq + 1)));
  }
  for (auto& [k, vs] : q) {
    std::sort(vs.begin(), vs.end());
    std::string joined;
    for (const auto& v : vs) joined += (joined.empty() ? "" : ",") + v;
    s += "\n" + k + ":" + joined;
  }
  return s;
}

void azure_sign_shared_key(HttpRequest& req, std::string_view account, std::string_view base64_key, int64_t now_ms) {
  req.set_header("x-ms-date", rfc1123_date(now_ms));
  std::string sig =
      base64_encode(hmac_sha256(base64_decode(base64_key), azure_shared_key_string_to_sign(req, account)));
  req.set_header("Authorization", "SharedKey " + std::string(account) + ":" + sig);
}

std::string azure_account_sas(std::string_view account, std::string_view base64_key, std::string_view services,
                              std::string_view resource_types, std::string_view permissions, int64_t expiry_ms,
                              std::string_view protocol) {
  const std::string version = "2019-12-12";
  std::string se = iso8601_seconds(expiry_ms);
  std::string to_sign = std::string(account) + "\n" + std::string(permissions) + "\n" + std::string(services) + "\n" +
                        std::string(resource_types) + "\n" + "\n" + se + "\n" + "\n" + std::string(protocol) + "\n" +
                        version + "\n";
  std::string sig = base64_encode(hmac_sha256(base64_decode(base64_key), to_sign));
  return "sv=" + version + "&ss=" + std::string(services) + "&srt=" + std::string(resource_types) +
         "&sp=" + std::string(permissions) + "&se=" + uri_encode(se) + "&spr=" + uri_encode(protocol) +
         "&sig=" + uri_encode(sig);
}

}  // namespace ork::common
