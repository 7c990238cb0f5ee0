// URL encoding and parsing, HTTP dates and small XML readers for the cloud plugins (no HTTP library needed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ork::common {

// RFC 3986 percent-encoding: everything except A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash) as %XX (uppercase).
std::string uri_encode(std::string_view s, bool keep_slash = false);
// Decodes %XX (and '+' as space when plus_is_space). Malformed escapes stay as they are.
std::string uri_decode(std::string_view s, bool plus_is_space = false);
// "a=1&b=x%20y" from pairs, each name and value uri_encode()d.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& pairs);

// scheme://host[:port]/path?query, as given (path and query keep their encoding).
struct Url {
  std::string scheme, host, port, path = "/", query;
  // host[:port], the port left out when it is the scheme's default.
  std::string authority() const;
  std::string origin() const { return scheme + "://" + authority(); }
  std::string target() const { return query.empty() ? path : path + "?" + query; }
  std::string str() const { return origin() + target(); }
};
// Throws std::invalid_argument on anything but http(s)://host[:port][/path][?query]. "host:port" alone gets http://.
Url parse_url(std::string_view url);

// Epoch milliseconds as 20150830T123600Z (AWS), Sun, 06 Nov 1994 08:49:37 GMT (RFC 1123), 2015-08-30T12:36:00Z.
std::string amz_date(int64_t epoch_ms);
std::string rfc1123_date(int64_t epoch_ms);
std::string iso8601_seconds(int64_t epoch_ms);
// 2015-08-30T12:36:00Z / 2015-08-30T12:36:00.123Z (UTC only) -> epoch ms; -1 when malformed.
int64_t parse_iso8601(std::string_view s);
int64_t now_epoch_ms();

// Replaces &amp; &lt; &gt; &quot; &apos; &#N; &#xN; by their characters.
std::string xml_unescape(std::string_view s);
std::string xml_escape(std::string_view s);
// The text of every <tag>...</tag> (no attributes, not nested in itself) in order, unescaped.
std::vector<std::string> xml_all(std::string_view xml, std::string_view tag);
// The first one, or "" when absent.
std::string xml_first(std::string_view xml, std::string_view tag);

std::string to_lower(std::string_view s);
std::string trim(std::string_view s);

}  // namespace ork::common
