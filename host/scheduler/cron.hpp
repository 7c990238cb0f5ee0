// Cron expressions for workflow schedules: parsing with precise error offsets, and "next fire after" evaluation in
// an IANA time zone (DST-aware). Semantics and the scheduler's missed-fire policy are in docs/schedules.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace ork {

// A syntax error (offset = 0-based character offset into the parsed text), an unknown zone, or "never fires".
class CronError : public std::runtime_error {
 public:
  CronError(const std::string& message, size_t offset) : std::runtime_error(message), offset_(offset) {}
  size_t offset() const { return offset_; }

 private:
  size_t offset_;
};

namespace detail {
struct CronZone;  // the zone's rules (tz database + POSIX rule past its last transition); defined in cron.cpp
}

// A parsed 5-field cron expression with an optional IANA time zone. Immutable; copies are cheap and thread-safe.
class CronExpr {
 public:
  // Parses "m h dom mon dow" (Vixie cron syntax), a macro (@daily, ...), optionally prefixed by "CRON_TZ=Area/City "
  // or "TZ=Area/City "; `tz` is the zone when there is no prefix ("" = UTC). Throws CronError.
  static CronExpr parse(const std::string& expr, const std::string& tz = "");

  // The first fire strictly after `after_ms` (Unix epoch ms), evaluated in the expression's zone. Throws CronError
  // when there is none within 400 years or `after_ms` is outside years 1..9999.
  int64_t next_after(int64_t after_ms) const;

  const std::string& text() const { return text_; }  // as given to parse()
  const std::string& zone() const { return zone_; }  // IANA name in effect; "UTC" when none was given

 private:
  CronExpr() = default;

  std::string text_;
  std::string zone_;
  std::shared_ptr<const detail::CronZone> tz_;  // null = UTC
  uint64_t minutes_ = 0;                        // bit n = minute n (0-59)
  uint32_t hours_ = 0;                          // bit n = hour n (0-23)
  uint32_t doms_ = 0;                           // bit n = day of month n (1-31)
  uint32_t months_ = 0;                         // bit n = month n (1-12)
  uint32_t dows_ = 0;                           // bit n = weekday n (0 = Sunday - 6)
  bool dom_star_ = false;                       // field starts with '*' (Vixie: then dom AND dow, else dom OR dow)
  bool dow_star_ = false;
};

}  // namespace ork
