// Cron parsing (hand-written scanner with character offsets) and next-fire search that skips by fields, with local
// times resolved through the tz database (date/tz.h) extended past its last transition by the file's POSIX rule.
#include "scheduler/cron.hpp"

#include <date/tz.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <chrono>
#include <fstream>
#include <iterator>
#include <string_view>
#include <utility>

namespace ork {

namespace {

// ---- Civil calendar (proleptic Gregorian, days since 1970-01-01; H. Hinnant's algorithms) ----

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = floor_div(y, 400);
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct Civil {
  int64_t y;
  int m;
  int d;
};

Civil civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = floor_div(z, 146097);
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (m <= 2), m, d};
}

int weekday_from_days(int64_t z) {  // 0 = Sunday
  return static_cast<int>(((z + 4) % 7 + 7) % 7);
}

bool is_leap(int64_t y) {
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

int days_in_month(int64_t y, int m) {
  static constexpr std::array<int, 13> kDays = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[static_cast<size_t>(m)];
}

// ---- POSIX TZ rule (the TZif footer, e.g. "EST5EDT,M3.2.0,M11.1.0"), used past the tz data's last transition ----

struct PosixDate {
  char kind =
      'M';  // 'J': Julian day a (1-365, Feb 29 never counted); 'D': zero-based day a; 'M': month a, week b, day c
  int a = 0, b = 0, c = 0;
  int64_t time = 7200;  // local time of day of the change, seconds (may be negative or beyond 24h)
};

struct PosixRule {
  bool has_dst = false;
  int64_t std_off = 0;  // UTC offsets, seconds east
  int64_t dst_off = 0;
  PosixDate start, end;  // std -> dst, dst -> std
};

class PosixParser {
 public:
  explicit PosixParser(std::string_view s) : s_(s) {}

  bool parse(PosixRule& r) {
    int64_t v = 0;
    if (!name() || !hms(v, 24)) return false;
    r.std_off = -v;
    if (done()) return true;
    if (!name()) return false;
    r.dst_off = r.std_off + 3600;
    if (i_ < s_.size() && s_[i_] != ',') {
      if (!hms(v, 24)) return false;
      r.dst_off = -v;
    }
    if (done()) {  // no rule: the POSIX default (US rules)
      r.start = {'M', 3, 2, 0, 7200};
      r.end = {'M', 11, 1, 0, 7200};
    } else if (!eat(',') || !date(r.start) || !eat(',') || !date(r.end) || !done()) {
      return false;
    }
    r.has_dst = true;
    return true;
  }

 private:
  bool done() const { return i_ == s_.size(); }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool name() {
    if (eat('<')) {
      size_t start = i_;
      while (i_ < s_.size() && s_[i_] != '>') ++i_;
      return i_ > start && eat('>');
    }
    size_t start = i_;
    while (i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]))) ++i_;
    return i_ - start >= 3;
  }
  bool num(int64_t& out, int64_t max) {
    size_t start = i_;
    out = 0;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_])) && i_ - start < 4) {
      out = out * 10 + (s_[i_++] - '0');
    }
    return i_ > start && out <= max;
  }
  bool hms(int64_t& out, int64_t max_hours) {  // [+-]h[:mm[:ss]] in seconds
    int64_t sign = eat('-') ? -1 : (eat('+'), 1);
    int64_t h = 0, m = 0, s = 0;
    if (!num(h, max_hours)) return false;
    if (eat(':') && (!num(m, 59) || (eat(':') && !num(s, 59)))) return false;
    out = sign * (h * 3600 + m * 60 + s);
    return true;
  }
  bool date(PosixDate& d) {
    int64_t a = 0, b = 0, c = 0;
    if (eat('M')) {
      if (!num(a, 12) || a < 1 || !eat('.') || !num(b, 5) || b < 1 || !eat('.') || !num(c, 6)) return false;
      d = {'M', static_cast<int>(a), static_cast<int>(b), static_cast<int>(c), 7200};
    } else if (eat('J')) {
      if (!num(a, 365) || a < 1) return false;
      d = {'J', static_cast<int>(a), 0, 0, 7200};
    } else {
      if (!num(a, 365)) return false;
      d = {'D', static_cast<int>(a), 0, 0, 7200};
    }
    return !eat('/') || hms(d.time, 167);
  }

  std::string_view s_;
  size_t i_ = 0;
};

// The UTC instant (seconds) of a rule change in year y; `before` is the UTC offset in effect before it.
int64_t posix_change(const PosixDate& pd, int64_t y, int64_t before) {
  int64_t day = days_from_civil(y, 1, 1);
  if (pd.kind == 'J') {
    day += pd.a - 1 + (is_leap(y) && pd.a >= 60 ? 1 : 0);
  } else if (pd.kind == 'D') {
    day += pd.a;
  } else {
    const int64_t first = days_from_civil(y, pd.a, 1);
    day = first + (pd.c - weekday_from_days(first) + 7) % 7 + (pd.b - 1) * 7;
    if (day - first >= days_in_month(y, pd.a)) day -= 7;  // week 5 = the last such weekday
  }
  return day * 86400 + pd.time - before;
}

// The changes of years y-1..y+1 as (UTC instant, offset from then on).
std::array<std::pair<int64_t, int64_t>, 6> posix_changes(const PosixRule& r, int64_t y) {
  std::array<std::pair<int64_t, int64_t>, 6> out{};
  for (int k = 0; k < 3; ++k) {
    out[2 * k] = {posix_change(r.start, y - 1 + k, r.std_off), r.dst_off};
    out[2 * k + 1] = {posix_change(r.end, y - 1 + k, r.dst_off), r.std_off};
  }
  return out;
}

int64_t posix_offset(const PosixRule& r, int64_t t) {
  const auto changes = posix_changes(r, civil_from_days(floor_div(t, 86400)).y);
  int64_t best = INT64_MIN, off = r.std_off;
  for (const auto& [at, o] : changes) {
    if (at <= t && (at > best || (at == best && o == r.dst_off))) best = at, off = o;
  }
  return off;
}

// The TZif footer (last line) of a zone file, or "" when absent.
std::string tzif_footer(const std::string& name) {
  std::ifstream in("/usr/share/zoneinfo/" + name, std::ios::binary);
  std::string data;
  if (in) data.assign(std::istreambuf_iterator<char>(in), {});
  if (data.size() < 6 || data.compare(0, 4, "TZif") != 0 || data[4] < '2' || data.back() != '\n') return "";
  const size_t nl = data.rfind('\n', data.size() - 2);
  return nl == std::string::npos ? "" : data.substr(nl + 1, data.size() - nl - 2);
}

}  // namespace

namespace detail {

// A zone: the tz database's transitions, continued by the POSIX rule past the last one (the database's own reader
// stops at the last listed transition, 2037 in "fat" files, and would freeze DST from then on).
struct CronZone {
  const date::time_zone* tz = nullptr;
  int64_t cutover = INT64_MAX;  // start of the database's final period; the POSIX rule applies from here
  bool extend = false;
  PosixRule rule;

  int64_t offset_at(int64_t t) const {
    if (extend && t >= cutover) return posix_offset(rule, t);
    return tz->get_info(date::sys_seconds{std::chrono::seconds{t}}).offset.count();
  }

  // The UTC instant a local time fires at: itself when unique, its first occurrence when repeated (fall back), the
  // end of the gap when skipped (spring forward).
  int64_t resolve(int64_t local) const {
    const auto li = tz->get_info(date::local_seconds{std::chrono::seconds{local}});
    switch (li.result) {
      case date::local_info::nonexistent:
        return li.second.begin.time_since_epoch().count();
      case date::local_info::ambiguous:
        return local - li.first.offset.count();
      default:
        break;
    }
    if (!extend || li.first.begin.time_since_epoch().count() < cutover) return local - li.first.offset.count();
    const int64_t hi = std::max(rule.std_off, rule.dst_off), lo = std::min(rule.std_off, rule.dst_off);
    if (posix_offset(rule, local - hi) == hi) return local - hi;  // unique, or the first of two
    if (posix_offset(rule, local - lo) == lo) return local - lo;
    for (const auto& [at, o] : posix_changes(rule, civil_from_days(floor_div(local, 86400)).y)) {
      if (at > local - hi && at <= local - lo) return at;  // the gap's end
    }
    return local - lo;
  }
};

}  // namespace detail

namespace {

std::shared_ptr<const detail::CronZone> load_zone(const std::string& name) {
  auto z = std::make_shared<detail::CronZone>();
  z->tz = date::locate_zone(name);  // throws std::runtime_error when unknown
  const auto last = z->tz->get_info(date::sys_seconds{std::chrono::seconds{days_from_civil(3000, 1, 1) * 86400}});
  z->cutover = last.begin.time_since_epoch().count();
  if (PosixParser(tzif_footer(name)).parse(z->rule) && z->rule.has_dst) {
    z->extend = posix_offset(z->rule, z->cutover) == last.offset.count();  // the rule must continue the data
  }
  return z;
}

// ---- Parsing ----

constexpr std::array<const char*, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char*, 7> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct FieldSpec {
  const char* name;
  int lo, hi;
  const char* const* names;  // null: numbers only
  int name_count, name_base;
  const char* hint;
};

constexpr std::array<FieldSpec, 5> kFields = {{
    {"minute", 0, 59, nullptr, 0, 0, "values must be 0-59"},
    {"hour", 0, 23, nullptr, 0, 0, "values must be 0-23"},
    {"day-of-month", 1, 31, nullptr, 0, 0, "values must be 1-31"},
    {"month", 1, 12, kMonthNames.data(), 12, 1, "values must be 1-12 or JAN-DEC"},
    {"day-of-week", 0, 7, kDayNames.data(), 7, 0, "values must be 0-7 or SUN-SAT, 0 and 7 = Sunday"},
}};

const char* const kFieldsHint =
    "expected 5 fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * MON', or a macro such as @daily";

struct Macro {
  const char* name;
  const char* fields;
};
constexpr std::array<Macro, 7> kMacros = {{{"@yearly", "0 0 1 1 *"},
                                           {"@annually", "0 0 1 1 *"},
                                           {"@monthly", "0 0 1 * *"},
                                           {"@weekly", "0 0 * * 0"},
                                           {"@daily", "0 0 * * *"},
                                           {"@midnight", "0 0 * * *"},
                                           {"@hourly", "0 * * * *"}}};

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
char upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

// Printable form of a piece of input for messages (control and non-ASCII bytes as \xNN).
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

// Scans one expression; every error names the field and the offending text, at a 0-based offset into `expr`.
class CronParser {
 public:
  explicit CronParser(const std::string& expr) : expr_(expr) {}

  [[noreturn]] void fail(size_t offset, const std::string& why) const {
    throw CronError("invalid cron expression '" + printable(expr_) + "': " + why, offset);
  }

  // Parses field `f` spanning [begin, end) of `text` into a bit set (weekday 7 folded onto 0).
  uint64_t field(const std::string& text, size_t begin, size_t end, const FieldSpec& f) const {
    const std::string_view all(text.data() + begin, end - begin);
    auto bad = [&](size_t at, size_t at_end, const std::string& why) {
      std::string msg = std::string("bad ") + f.name + " field '" + printable(all) + "'";
      const std::string_view tok(text.data() + at, std::min(at_end, end) - std::min(at, end));
      if (!tok.empty() && tok != all) msg += " at '" + printable(tok) + "'";
      fail(at, msg + " (" + why + ")");
    };
    uint64_t bits = 0;
    for (size_t i = begin;;) {
      const size_t item = i;
      if (i == end || text[i] == ',') bad(i, i, "empty list item");
      int a = f.lo, b = f.hi;
      const bool star = text[i] == '*';
      bool range = false;
      if (star) {
        ++i;
      } else {
        a = b = value(text, i, end, f, bad);
        if (i < end && text[i] == '-') {
          ++i;
          range = true;
          b = value(text, i, end, f, bad);
          if (a > b) {
            bad(item, i, "range start " + std::to_string(a) + " is after its end " + std::to_string(b));
          }
        }
      }
      int step = 1;
      if (i < end && text[i] == '/') {
        if (!star && !range) bad(item, i + 1, "a step needs a range: write '*/n' or 'a-b/n'");
        const size_t s = ++i;
        int64_t n = 0;
        while (i < end && is_digit(text[i])) n = std::min<int64_t>(n * 10 + (text[i++] - '0'), 1000000);
        if (i == s || n == 0) bad(s, i == s ? s + 1 : i, "step must be a positive number");
        step = static_cast<int>(n);
      }
      if (i < end && text[i] != ',') bad(i, i + 1, "unexpected character");
      for (int v = a; v <= b; v += step) bits |= uint64_t{1} << (f.hi == 7 && v == 7 ? 0 : v);  // weekday 7 = 0
      if (i == end) return bits;
      if (++i == end) bad(i - 1, i, "empty list item");
    }
  }

 private:
  // A number or (month/weekday) name at text[i]; advances i.
  template <typename Bad>
  int value(const std::string& text, size_t& i, size_t end, const FieldSpec& f, Bad& bad) const {
    const size_t start = i;
    if (i < end && is_digit(text[i])) {
      int64_t n = 0;
      while (i < end && is_digit(text[i])) n = std::min<int64_t>(n * 10 + (text[i++] - '0'), 1000000);
      if (n < f.lo || n > f.hi) bad(start, i, f.hint);
      return static_cast<int>(n);
    }
    if (i < end && is_alpha(text[i])) {
      while (i < end && is_alpha(text[i])) ++i;
      if (f.names == nullptr) bad(start, i, std::string("names are not allowed here; ") + f.hint);
      if (i - start == 3) {
        for (int k = 0; k < f.name_count; ++k) {
          const char* n = f.names[k];
          if (upper(text[start]) == n[0] && upper(text[start + 1]) == n[1] && upper(text[start + 2]) == n[2]) {
            return k + f.name_base;
          }
        }
      }
      bad(start, i, std::string("unknown name; ") + f.hint);
    }
    bad(start, start + 1, i < end ? "unexpected character" : "missing value");
    return 0;  // not reached
  }

  const std::string& expr_;
};

size_t skip_space(const std::string& s, size_t i) {
  while (i < s.size() && is_space(s[i])) ++i;
  return i;
}

size_t skip_word(const std::string& s, size_t i) {
  while (i < s.size() && !is_space(s[i])) ++i;
  return i;
}

bool starts_with_at(const std::string& s, size_t i, std::string_view prefix) {
  return s.compare(i, prefix.size(), prefix) == 0;
}

int next_bit(uint64_t mask, int from) {
  if (from >= 64) return -1;
  const uint64_t m = mask & (~uint64_t{0} << from);
  return m == 0 ? -1 : std::countr_zero(m);
}

constexpr int64_t kMinMs = -62135596800000;  // 0001-01-01T00:00:00Z
constexpr int64_t kMaxMs = 253402300799999;  // 9999-12-31T23:59:59.999Z
constexpr int64_t kHorizonYears = 401;       // the Gregorian calendar repeats every 400 years

}  // namespace

CronExpr CronExpr::parse(const std::string& expr, const std::string& tz) {
  CronParser p(expr);
  CronExpr e;
  e.text_ = expr;
  size_t i = skip_space(expr, 0);
  std::string zone = tz;
  size_t zone_at = 0;
  for (std::string_view prefix : {"CRON_TZ=", "TZ="}) {
    if (!starts_with_at(expr, i, prefix)) continue;
    zone_at = i + prefix.size();
    i = skip_word(expr, zone_at);
    zone = expr.substr(zone_at, i - zone_at);
    if (zone.empty()) p.fail(zone_at, "missing time zone after '" + std::string(prefix) + "'");
    i = skip_space(expr, i);
    break;
  }
  if (!zone.empty()) {
    try {
      e.tz_ = load_zone(zone);
    } catch (const std::exception&) {
      p.fail(zone_at, "unknown time zone '" + printable(zone) + "' (expected an IANA name such as Europe/Berlin)");
    }
  }
  e.zone_ = zone.empty() ? "UTC" : zone;

  // The five fields as [begin, end) of `text` (the expression itself, or a macro's expansion).
  std::string text = expr;
  std::array<std::pair<size_t, size_t>, 5> spans{};
  if (i < expr.size() && expr[i] == '@') {
    const size_t end = skip_word(expr, i);
    std::string name = expr.substr(i, end - i);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const Macro* m = nullptr;
    for (const auto& mac : kMacros) {
      if (name == mac.name) m = &mac;
    }
    if (m == nullptr) {
      p.fail(i, "unknown macro '" + printable(expr.substr(i, end - i)) +
                    "' (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)");
    }
    if (const size_t rest = skip_space(expr, end); rest < expr.size()) {
      p.fail(rest, "unexpected text after " + std::string(m->name));
    }
    text = m->fields;
    for (size_t k = 0, j = 0; k < 5; ++k) {
      const size_t end = skip_word(text, j);
      spans[k] = {j, end};
      j = skip_space(text, end);
    }
  } else {
    size_t count = 0, extra_at = expr.size();
    for (size_t j = i; j < expr.size(); j = skip_space(expr, j)) {
      const size_t end = skip_word(expr, j);
      if (count < 5) spans[count] = {j, end};
      if (count == 5) extra_at = j;
      ++count;
      j = end;
    }
    if (count != 5) {
      p.fail(count > 5 ? extra_at : expr.size(),
             "has " + std::to_string(count) + " field" + (count == 1 ? "" : "s") + " (" + kFieldsHint + ")");
    }
  }
  std::array<uint64_t, 5> bits{};
  for (size_t k = 0; k < 5; ++k) bits[k] = p.field(text, spans[k].first, spans[k].second, kFields[k]);
  e.minutes_ = bits[0];
  e.hours_ = static_cast<uint32_t>(bits[1]);
  e.doms_ = static_cast<uint32_t>(bits[2]);
  e.months_ = static_cast<uint32_t>(bits[3]);
  e.dows_ = static_cast<uint32_t>(bits[4]);
  e.dom_star_ = text[spans[2].first] == '*';
  e.dow_star_ = text[spans[4].first] == '*';

  // Only "day-of-month AND a '*' weekday" can be impossible: some selected month must have some selected day.
  if (!e.dom_star_ && e.dow_star_) {
    bool possible = false;
    for (int m = 1; m <= 12; ++m) {
      const uint32_t days = (uint32_t{2} << (m == 2 ? 29 : days_in_month(2001, m))) - 2;  // bits 1..max
      if ((e.months_ >> m & 1) && (e.doms_ & days)) possible = true;
    }
    if (!possible) {
      const std::string_view dom(text.data() + spans[2].first, spans[2].second - spans[2].first);
      const std::string_view mon(text.data() + spans[3].first, spans[3].second - spans[3].first);
      p.fail(spans[2].first,
             "never fires: day-of-month '" + printable(dom) + "' does not occur in month '" + printable(mon) + "'");
    }
  }
  e.next_after(0);  // a safety net: throws "never fires" if the search finds nothing
  return e;
}

int64_t CronExpr::next_after(int64_t after_ms) const {
  if (after_ms < kMinMs || after_ms > kMaxMs) {
    throw CronError(
        "cron expression '" + printable(text_) + "': time " + std::to_string(after_ms) + " ms is outside years 1-9999",
        0);
  }
  const int64_t after_s = floor_div(after_ms, 1000);
  const int64_t local = after_s + (tz_ ? tz_->offset_at(after_s) : 0);
  const int64_t minute = floor_div(local, 60) + 1;  // the first candidate: the next local minute
  const int64_t day = floor_div(minute, 1440);
  const Civil c = civil_from_days(day);
  int64_t y = c.y;
  int m = c.m, d = c.d;
  int h = static_cast<int>((minute - day * 1440) / 60), mi = static_cast<int>((minute - day * 1440) % 60);
  const int64_t last_year = y + kHorizonYears;

  auto next_day = [&] {
    h = mi = 0;
    if (++d > days_in_month(y, m)) {
      d = 1;
      if (++m > 12) m = 1, ++y;
    }
  };
  auto day_matches = [&] {
    const bool dom = doms_ >> d & 1;
    const bool dow = dows_ >> weekday_from_days(days_from_civil(y, m, d)) & 1;
    return (dom_star_ || dow_star_) ? (dom && dow) : (dom || dow);
  };

  for (;;) {
    // Move to the next local time that matches every field (skipping whole months, days and hours at a time).
    if (y > last_year) {
      throw CronError("cron expression '" + printable(text_) + "' never fires (no match within 400 years)", 0);
    }
    if (!(months_ >> m & 1)) {
      const int nm = next_bit(months_, m + 1);
      if (nm < 0) ++y;
      m = nm < 0 ? next_bit(months_, 1) : nm;
      d = 1, h = mi = 0;
      continue;
    }
    if (!day_matches()) {
      next_day();
      continue;
    }
    if (const int nh = next_bit(hours_, h); nh < 0) {
      next_day();
      continue;
    } else if (nh != h) {
      h = nh, mi = 0;
    }
    if (const int nmi = next_bit(minutes_, mi); nmi < 0) {
      mi = 0;
      if (++h == 24) next_day();
      continue;
    } else {
      mi = nmi;
    }

    const int64_t wall = ((days_from_civil(y, m, d) * 24 + h) * 60 + mi) * 60;
    const int64_t t = tz_ ? tz_->resolve(wall) : wall;
    if (t * 1000 > after_ms) return t * 1000;
    if (++mi == 60) {  // a repeated local time already fired, or a gap's end is not after `after_ms`
      mi = 0;
      if (++h == 24) next_day();
    }
  }
}

}  // namespace ork
