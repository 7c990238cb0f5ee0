#include "sigv4.hpp"

#include <algorithm>
#include <map>
#include <vector>

#include "crypto.hpp"
#include "web_util.hpp"

namespace ork::common {

namespace {

// RFC 3986 dot-segment removal and slash collapsing, for non-S3 services.
std::string normalize_path(const std::string& path) {
  std::vector<std::string> segs;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string seg = path.substr(i, j - i);
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segs.push_back(seg);
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& s : segs) out += "/" + s;
  if (out.empty() || (path.size() > 1 && path.back() == '/')) out += "/";
  return out;
}

std::string canonical_value(std::string_view v) {
  std::string t = trim(v), out;
  for (char c : t) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string sigv4_canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t i = 0;
  while (i < query.size()) {
    size_t amp = query.find('&', i);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view kv = query.substr(i, amp - i);
    if (!kv.empty()) {
      size_t eq = kv.find('=');
      std::string k(kv.substr(0, eq)), v(eq == std::string_view::npos ? "" : kv.substr(eq + 1));
      params.emplace_back(uri_encode(uri_decode(k)), uri_encode(uri_decode(v)));
    }
    i = amp + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out.push_back('&');
    out += k + "=" + v;
  }
  return out;
}

SigV4Result sigv4_sign(const SigV4Input& in, const AwsCredentials& creds) {
  SigV4Result r;
  std::string uri;
  if (in.service == "s3") {
    uri = in.path.empty() ? "/" : in.path;
  } else {
    std::string decoded_norm = normalize_path(in.path.empty() ? "/" : in.path);
    uri = uri_encode(decoded_norm, true);
  }
  std::map<std::string, std::string> hs;  // lowercase name -> values joined with ','
  for (const auto& [k, v] : in.headers) {
    auto& slot = hs[to_lower(k)];
    slot += (slot.empty() ? "" : ",") + canonical_value(v);
  }
  std::string canon_headers;
  for (const auto& [k, v] : hs) {
    canon_headers += k + ":" + v + "\n";
    r.signed_headers += (r.signed_headers.empty() ? "" : ";") + k;
  }
  r.canonical_request = in.method + "\n" + uri + "\n" + sigv4_canonical_query(in.query) + "\n" + canon_headers + "\n" +
                        r.signed_headers + "\n" + in.payload_hash;
  std::string date = in.amz_date.substr(0, 8);
  r.credential_scope = date + "/" + in.region + "/" + in.service + "/aws4_request";
  r.string_to_sign =
      "AWS4-HMAC-SHA256\n" + in.amz_date + "\n" + r.credential_scope + "\n" + sha256_hex(r.canonical_request);
  std::string k = hmac_sha256("AWS4" + creds.secret_access_key, date);
  k = hmac_sha256(k, in.region);
  k = hmac_sha256(k, in.service);
  k = hmac_sha256(k, "aws4_request");
  r.signature = hex(hmac_sha256(k, r.string_to_sign));
  r.authorization = "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + r.credential_scope +
                    ", SignedHeaders=" + r.signed_headers + ", Signature=" + r.signature;
  return r;
}

void sigv4_sign_request(HttpRequest& req, const AwsCredentials& creds, std::string_view region,
                        std::string_view service, int64_t now_ms, bool add_content_sha256, std::string payload_hash) {
  Url u = parse_url(req.url);
  if (payload_hash.empty()) payload_hash = sha256_hex(req.body);
  std::string date = amz_date(now_ms);
  if (req.header("host").empty()) req.set_header("Host", u.authority());
  req.set_header("X-Amz-Date", date);
  if (!creds.session_token.empty()) req.set_header("X-Amz-Security-Token", creds.session_token);
  if (add_content_sha256) req.set_header("X-Amz-Content-Sha256", payload_hash);
  SigV4Input in;
  in.method = req.method;
  in.path = u.path;
  in.query = u.query;
  in.payload_hash = payload_hash;
  in.amz_date = date;
  in.region = std::string(region);
  in.service = std::string(service);
  static const char* skip[] = {"authorization", "user-agent",        "connection",
                               "expect",        "transfer-encoding", "content-length"};
  for (const auto& [k, v] : req.headers) {
    std::string lk = to_lower(k);
    if (std::find(std::begin(skip), std::end(skip), lk) == std::end(skip)) in.headers.emplace_back(k, v);
  }
  req.set_header("Authorization", sigv4_sign(in, creds).authorization);
}

}  // namespace ork::common
