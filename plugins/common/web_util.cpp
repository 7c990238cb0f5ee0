#include "web_util.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace ork::common {

namespace {
bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}
int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
std::tm utc(int64_t epoch_ms) {
  std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}
std::string fmt(int64_t epoch_ms, const char* f) {
  std::tm tm = utc(epoch_ms);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, f, &tm);
  return std::string(buf, n);
}
}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char d[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(d[c >> 4]);
      out.push_back(d[c & 15]);
    }
  }
  return out;
}

std::string uri_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string out;
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) out.push_back('&');
    out += uri_encode(k) + "=" + uri_encode(v);
  }
  return out;
}

std::string Url::authority() const {
  bool def = port.empty() || (scheme == "http" && port == "80") || (scheme == "https" && port == "443");
  return def ? host : host + ":" + port;
}

Url parse_url(std::string_view in) {
  Url u;
  std::string_view rest = in;
  size_t sep = rest.find("://");
  if (sep == std::string_view::npos) {
    u.scheme = "http";
  } else {
    u.scheme = to_lower(rest.substr(0, sep));
    rest.remove_prefix(sep + 3);
  }
  if (u.scheme != "http" && u.scheme != "https") throw std::invalid_argument("URL scheme must be http or https");
  size_t end = rest.find_first_of("/?");
  std::string_view auth = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (auth.empty()) throw std::invalid_argument("URL has no host");
  if (auth.front() == '[') {  // [v6]:port
    size_t close = auth.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument("bad IPv6 host");
    u.host = std::string(auth.substr(0, close + 1));
    if (close + 1 < auth.size() && auth[close + 1] == ':') u.port = std::string(auth.substr(close + 2));
  } else {
    size_t colon = auth.rfind(':');
    u.host = std::string(auth.substr(0, colon));
    if (colon != std::string_view::npos) u.port = std::string(auth.substr(colon + 1));
  }
  for (char c : u.port)
    if (c < '0' || c > '9') throw std::invalid_argument("URL port is not a number");
  size_t q = rest.find('?');
  u.path = std::string(rest.substr(0, q));
  if (u.path.empty()) u.path = "/";
  if (q != std::string_view::npos) u.query = std::string(rest.substr(q + 1));
  return u;
}

std::string amz_date(int64_t ms) {
  return fmt(ms, "%Y%m%dT%H%M%SZ");
}
std::string rfc1123_date(int64_t ms) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm = utc(ms);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}
std::string iso8601_seconds(int64_t ms) {
  return fmt(ms, "%Y-%m-%dT%H:%M:%SZ");
}

int64_t parse_iso8601(std::string_view s) {
  int y, mo, d, h, mi, sec;
  char tail[32] = {0};
  std::string str(s.substr(0, 40));
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%31s", &y, &mo, &d, &h, &mi, &sec, tail) < 6) return -1;
  int64_t ms = 0;
  std::string t = tail;
  if (!t.empty() && t[0] == '.') {
    size_t i = 1;
    int64_t frac = 0, scale = 1000;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) {
      if (scale > 1) {
        scale /= 10;
        frac += (t[i] - '0') * scale;
      }
    }
    ms = frac;
    t = t.substr(i);
  }
  if (t != "Z" && t != "+00:00" && !t.empty()) return -1;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

int64_t now_epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out.push_back('&');
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp")
      out.push_back('&');
    else if (ent == "lt")
      out.push_back('<');
    else if (ent == "gt")
      out.push_back('>');
    else if (ent == "quot")
      out.push_back('"');
    else if (ent == "apos")
      out.push_back('\'');
    else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X')
                             ? std::strtoul(std::string(ent.substr(2)).c_str(), nullptr, 16)
                             : std::strtoul(std::string(ent.substr(1)).c_str(), nullptr, 10);
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    } else {
      out.append(s.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::vector<std::string> xml_all(std::string_view xml, std::string_view tag) {
  std::vector<std::string> out;
  std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  std::string empty = "<" + std::string(tag) + "/>";
  size_t pos = 0;
  for (;;) {
    size_t a = xml.find(open, pos), e = xml.find(empty, pos);
    if (e != std::string_view::npos && (a == std::string_view::npos || e < a)) {
      out.emplace_back();
      pos = e + empty.size();
      continue;
    }
    if (a == std::string_view::npos) break;
    size_t b = xml.find(close, a + open.size());
    if (b == std::string_view::npos) break;
    out.push_back(xml_unescape(xml.substr(a + open.size(), b - a - open.size())));
    pos = b + close.size();
  }
  return out;
}

std::string xml_first(std::string_view xml, std::string_view tag) {
  auto all = xml_all(xml, tag);
  return all.empty() ? std::string() : all.front();
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

}  // namespace ork::common
