// Small shared helpers: clocks, RFC 3339 timestamps, UUIDs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ork {

int64_t now_ms();                           // wall clock, Unix epoch ms
std::string format_time(int64_t epoch_ms);  // 2026-01-01T00:00:00.000Z
int64_t parse_time(const std::string& s);   // inverse of format_time; accepts seconds-only and offsets; throws
std::string new_uuid();                     // random UUID v4
std::string now_str();                      // format_time(now_ms())
std::string fnv1a_hex(const std::string& s);
std::string base64url_encode(std::string_view in);                 // RFC 4648 §5, no padding
std::optional<std::string> base64url_decode(std::string_view in);  // nullopt on a character outside the alphabet  //
                                                                   // 64-bit FNV-1a as 16 hex digits (workflow versions)

}  // namespace ork
