#include "util.hpp"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <ork/state_records.hpp>
#include <random>
#include <stdexcept>

namespace ork {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string format_time(int64_t ms) {
  return records::format_time(ms);
}

int64_t parse_time(const std::string& s) {
  int Y, M, D, h, m, sec;
  int n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6)
    throw std::invalid_argument("not an RFC 3339 timestamp: '" + s + "'");
  size_t i = static_cast<size_t>(n);
  int64_t frac_ms = 0;
  if (i < s.size() && s[i] == '.') {
    int digits = 0;
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (digits < 3) frac_ms = frac_ms * 10 + (s[i] - '0');
      ++digits;
      ++i;
    }
    for (int d = digits; d < 3; ++d) frac_ms *= 10;
  }
  int64_t offset_s = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &oh, &om) != 2)
      throw std::invalid_argument("bad timestamp offset: '" + s + "'");
    offset_s = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
  } else if (i >= s.size() || (s[i] != 'Z' && s[i] != 'z')) {
    throw std::invalid_argument("timestamp without zone: '" + s + "'");
  }
  std::tm tm{};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  int64_t epoch = static_cast<int64_t>(timegm(&tm));
  return (epoch - offset_s) * 1000 + frac_ms;
}

std::string new_uuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  return records::uuid_v4(a, b);
}

std::string now_str() {
  return format_time(now_ms());
}

std::string fnv1a_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string base64url_encode(std::string_view in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      out += a[(acc >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) out += a[(acc << (6 - bits)) & 63];
  return out;
}

std::optional<std::string> base64url_decode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-')
      v = 62;
    else if (c == '_')
      v = 63;
    else
      return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      out += static_cast<char>((acc >> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return out;
}

}  // namespace ork
