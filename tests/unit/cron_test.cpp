// CronExpr: a table of expressions x reference times -> next fires (syntax, names, dom/dow rule, macros, calendar
// edges, time zones and DST), error messages with offsets, a brute-force cross-check and a speed measurement.
#include "scheduler/cron.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace ork {
namespace {

namespace chr = std::chrono;

int num(const std::string& s, size_t pos, size_t len) {
  return std::stoi(s.substr(pos, len));
}

// "YYYY-MM-DDTHH:MM[:SS[.mmm]][Z|+hh:mm|-hh:mm]" -> Unix epoch ms (no suffix = UTC).
int64_t ms(const std::string& iso) {
  const chr::sys_days day{chr::year{num(iso, 0, 4)} / num(iso, 5, 2) / num(iso, 8, 2)};
  int64_t t = day.time_since_epoch().count() * 86400000LL + num(iso, 11, 2) * 3600000LL + num(iso, 14, 2) * 60000LL;
  size_t i = 16;
  if (i < iso.size() && iso[i] == ':') t += num(iso, 17, 2) * 1000LL, i = 19;
  if (i < iso.size() && iso[i] == '.') t += num(iso, 20, 3), i = 23;
  if (i < iso.size() && (iso[i] == '+' || iso[i] == '-')) {
    const int64_t off = num(iso, i + 1, 2) * 3600000LL + num(iso, i + 4, 2) * 60000LL;
    t -= iso[i] == '+' ? off : -off;
  }
  return t;
}

// Unix epoch ms -> "YYYY-MM-DDTHH:MM:SSZ" (UTC), for readable comparisons.
std::string iso(int64_t t) {
  const chr::sys_time<chr::milliseconds> tp{chr::milliseconds{t}};
  const auto day = chr::floor<chr::days>(tp);
  const chr::year_month_day ymd{day};
  const chr::hh_mm_ss hms{chr::floor<chr::seconds>(tp - day)};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

TEST(CronHelpers, IsoRoundTrip) {
  EXPECT_EQ(ms("1970-01-01T00:00"), 0);
  EXPECT_EQ(iso(ms("2024-02-29T23:59:58")), "2024-02-29T23:59:58Z");
  EXPECT_EQ(iso(ms("2024-03-10T03:00-04:00")), "2024-03-10T07:00:00Z");
  EXPECT_EQ(iso(ms("2024-06-01T09:00+05:30")), "2024-06-01T03:30:00Z");
  EXPECT_EQ(iso(ms("1969-12-31T23:59")), "1969-12-31T23:59:00Z");
}

struct Case {
  const char* expr;
  const char* tz;        // the parse() argument
  const char* after;     // reference time (ISO, UTC unless it has an offset)
  const char* expected;  // next fire strictly after it (ISO, UTC unless it has an offset)
};

const Case kCases[] = {
    // Basics: strictly after, seconds and milliseconds of the reference ignored.
    {"* * * * *", "", "2024-01-01T00:00", "2024-01-01T00:01"},
    {"* * * * *", "", "2024-01-01T00:00:30", "2024-01-01T00:01"},
    {"* * * * *", "", "2024-01-01T00:00:59.999", "2024-01-01T00:01"},
    {"0 * * * *", "", "2024-01-01T00:00", "2024-01-01T01:00"},
    {"0 * * * *", "", "2023-12-31T23:59:59.999", "2024-01-01T00:00"},
    {"30 2 * * *", "", "2024-01-01T03:00", "2024-01-02T02:30"},
    {"  30\t2 * *  * ", "", "2024-01-01T01:00", "2024-01-01T02:30"},
    // Lists, ranges, steps.
    {"5,10,15 * * * *", "", "2024-01-01T00:10", "2024-01-01T00:15"},
    {"10-12 * * * *", "", "2024-01-01T00:12", "2024-01-01T01:10"},
    {"*/15 * * * *", "", "2024-01-01T00:46", "2024-01-01T01:00"},
    {"10-40/15 * * * *", "", "2024-01-01T00:26", "2024-01-01T00:40"},
    {"10-40/15 * * * *", "", "2024-01-01T00:40", "2024-01-01T01:10"},
    {"0 */6 * * *", "", "2024-01-01T07:00", "2024-01-01T12:00"},
    {"0 9-17/4 * * *", "", "2024-01-01T17:00", "2024-01-02T09:00"},
    {"1-3,57-59/2 * * * *", "", "2024-01-01T00:03", "2024-01-01T00:57"},
    {"*/100 * * * *", "", "2024-01-01T00:30", "2024-01-01T01:00"},
    {"0 0 1,15 * *", "", "2024-01-15T00:00", "2024-02-01T00:00"},
    {"0 0 */10 * *", "", "2024-01-21T00:00", "2024-01-31T00:00"},
    // Month names (case-insensitive), ranges of names, year rollover.
    {"0 0 1 jan,Jul *", "", "2024-02-01T00:00", "2024-07-01T00:00"},
    {"0 0 1 MAR-may *", "", "2024-05-02T00:00", "2025-03-01T00:00"},
    {"0 0 1 */3 *", "", "2024-04-01T00:00", "2024-07-01T00:00"},
    {"0 0 * * *", "", "2024-12-31T00:00", "2025-01-01T00:00"},
    {"59 23 31 12 *", "", "2024-12-31T23:59", "2025-12-31T23:59"},
    // Weekday names; 0 and 7 are Sunday (2024-01-01 is a Monday).
    {"0 9 * * MON-FRI", "", "2024-01-05T09:00", "2024-01-08T09:00"},
    {"0 0 * * 0", "", "2024-01-01T00:00", "2024-01-07T00:00"},
    {"0 0 * * 7", "", "2024-01-01T00:00", "2024-01-07T00:00"},
    {"0 0 * * sun", "", "2024-01-01T00:00", "2024-01-07T00:00"},
    {"0 0 * * 5-7", "", "2024-01-06T00:00", "2024-01-07T00:00"},
    {"0 0 * * Tue,thu", "", "2024-01-04T00:00", "2024-01-09T00:00"},
    {"0 0 * * */2", "", "2024-01-02T00:00", "2024-01-04T00:00"},
    // Both day fields restricted: a day matches if EITHER does (Vixie). A field starting with '*' is unrestricted,
    // and then both must match.
    {"0 0 13 * FRI", "", "2024-01-01T00:00", "2024-01-05T00:00"},
    {"0 0 13 * FRI", "", "2024-01-12T00:00", "2024-01-13T00:00"},
    {"0 0 1 * MON", "", "2024-01-01T00:00", "2024-01-08T00:00"},
    {"0 0 1 * MON", "", "2024-01-29T00:00", "2024-02-01T00:00"},
    {"0 0 */2 * MON", "", "2024-01-01T00:00", "2024-01-15T00:00"},
    {"0 0 * * MON", "", "2024-01-01T00:00", "2024-01-08T00:00"},
    {"0 0 31 2,4 MON", "", "2024-01-01T00:00", "2024-02-05T00:00"},
    // Macros.
    {"@yearly", "", "2024-03-01T00:00", "2025-01-01T00:00"},
    {"@annually", "", "2024-01-01T00:00", "2025-01-01T00:00"},
    {"@monthly", "", "2024-01-31T12:00", "2024-02-01T00:00"},
    {"@weekly", "", "2024-01-01T00:00", "2024-01-07T00:00"},
    {"@daily", "", "2024-01-01T00:00", "2024-01-02T00:00"},
    {"@DAILY ", "", "2024-01-01T00:00", "2024-01-02T00:00"},
    {"@midnight", "", "2024-01-01T23:59", "2024-01-02T00:00"},
    {"@hourly", "", "2024-01-01T10:59", "2024-01-01T11:00"},
    // Leap days, ends of months (2100 is not a leap year).
    {"0 0 29 2 *", "", "2024-02-29T00:00", "2028-02-29T00:00"},
    {"0 0 29 2 *", "", "2097-01-01T00:00", "2104-02-29T00:00"},
    {"0 0 29 2 */7", "", "2004-03-01T00:00", "2032-02-29T00:00"},  // a leap day that is a Sunday
    {"0 0 29 2 */7", "", "2088-03-01T00:00", "2128-02-29T00:00"},  // ... 40 years later across 2100
    {"0 0 31 * *", "", "2024-01-31T00:00", "2024-03-31T00:00"},
    {"59 23 30 * *", "", "2024-01-30T23:59", "2024-03-30T23:59"},
    {"0 12 28-31 2 *", "", "2023-02-28T12:00", "2024-02-28T12:00"},
    {"0 0 1 1 *", "", "1969-06-01T00:00", "1970-01-01T00:00"},
    // Time zones: the prefix wins over the argument.
    {"CRON_TZ=Europe/Berlin 0 9 * * *", "", "2024-01-10T00:00", "2024-01-10T09:00+01:00"},
    {"CRON_TZ=Europe/Berlin 0 9 * * *", "America/New_York", "2024-07-10T00:00", "2024-07-10T09:00+02:00"},
    {"0 9 * * *", "Europe/Berlin", "2024-07-10T08:00", "2024-07-11T09:00+02:00"},
    {"TZ=Asia/Kolkata 0 9 * * *", "", "2024-06-01T00:00", "2024-06-01T09:00+05:30"},
    {"30 9 * * *", "Asia/Kolkata", "2024-06-01T03:59:59", "2024-06-01T09:30+05:30"},
    {"30 9 * * *", "Asia/Kolkata", "2024-06-01T04:00", "2024-06-02T09:30+05:30"},
    {"0 0 1 1 *", "Asia/Kolkata", "2024-12-31T18:30", "2025-12-31T18:30Z"},
    {"0 9 * * *", "UTC", "2024-06-01T09:00", "2024-06-02T09:00"},
    // Berlin DST: 2024-03-31 02:00 -> 03:00, 2024-10-27 03:00 -> 02:00.
    {"30 2 * * *", "Europe/Berlin", "2024-03-30T12:00", "2024-03-31T03:00+02:00"},
    {"30 2 * * *", "Europe/Berlin", "2024-03-31T01:00", "2024-04-01T02:30+02:00"},
    {"30 2 * * *", "Europe/Berlin", "2024-10-26T12:00", "2024-10-27T02:30+02:00"},
    {"30 2 * * *", "Europe/Berlin", "2024-10-27T00:30", "2024-10-28T02:30+01:00"},
    // New York DST: 2024-03-10 02:00 EST -> 03:00 EDT (02:xx does not exist), 2024-11-03 02:00 EDT -> 01:00 EST.
    {"0 2 * * *", "America/New_York", "2024-03-09T12:00", "2024-03-10T03:00-04:00"},
    {"*/15 2 * * *", "America/New_York", "2024-03-10T06:00", "2024-03-10T03:00-04:00"},
    {"*/15 2 * * *", "America/New_York", "2024-03-10T07:00", "2024-03-11T02:00-04:00"},
    {"0 * * * *", "America/New_York", "2024-03-10T06:00", "2024-03-10T03:00-04:00"},
    {"0 * * * *", "America/New_York", "2024-03-10T07:00", "2024-03-10T04:00-04:00"},
    {"30 1 * * *", "America/New_York", "2024-11-03T04:00", "2024-11-03T01:30-04:00"},
    {"30 1 * * *", "America/New_York", "2024-11-03T05:30", "2024-11-04T01:30-05:00"},
    {"0 * * * *", "America/New_York", "2024-11-03T05:00", "2024-11-03T02:00-05:00"},
    {"0 * * * *", "America/New_York", "2024-11-03T05:59", "2024-11-03T02:00-05:00"},
    // Past the tz data's last listed transition (2037) the zone's POSIX rule continues DST.
    {"0 9 1 7 *", "America/New_York", "2040-01-01T00:00", "2040-07-01T09:00-04:00"},
    {"0 9 1 12 *", "America/New_York", "2040-01-01T00:00", "2040-12-01T09:00-05:00"},
    {"0 2 * * *", "America/New_York", "2040-03-10T12:00", "2040-03-11T03:00-04:00"},
    {"30 1 4 11 *", "America/New_York", "2040-11-01T00:00", "2040-11-04T01:30-04:00"},
    {"30 2 2 4 *", "Australia/Sydney", "2045-01-01T00:00", "2045-04-02T02:30+11:00"},
    {"30 2 1 10 *", "Australia/Sydney", "2045-01-01T00:00", "2045-10-01T03:00+11:00"},
    {"0 12 1 7 *", "Europe/Berlin", "2100-01-01T00:00", "2100-07-01T12:00+02:00"},
};

TEST(CronExpr, NextFireTable) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(std::string(c.expr) + " [" + c.tz + "] after " + c.after);
    try {
      const auto e = CronExpr::parse(c.expr, c.tz);
      EXPECT_EQ(iso(e.next_after(ms(c.after))), iso(ms(c.expected)));
    } catch (const CronError& err) {
      ADD_FAILURE() << err.what();
    }
  }
}

TEST(CronExpr, Accessors) {
  const auto a = CronExpr::parse("CRON_TZ=Europe/Berlin 0 9 * * *", "Asia/Kolkata");
  EXPECT_EQ(a.text(), "CRON_TZ=Europe/Berlin 0 9 * * *");
  EXPECT_EQ(a.zone(), "Europe/Berlin");
  EXPECT_EQ(CronExpr::parse("@daily", "Asia/Kolkata").zone(), "Asia/Kolkata");
  EXPECT_EQ(CronExpr::parse("@daily").zone(), "UTC");
  const auto copy = a;  // copies share the zone
  EXPECT_EQ(copy.next_after(ms("2024-01-10T00:00")), a.next_after(ms("2024-01-10T00:00")));
}

// Every hour of 2024 in New York: the spring-forward 02:00 collapses onto 03:00, the repeated 01:00 fires once.
TEST(CronExpr, HourlyAcrossDstYear) {
  const auto e = CronExpr::parse("0 * * * *", "America/New_York");
  std::vector<int64_t> fires;
  for (int64_t t = ms("2024-01-01T00:00-05:00"); (t = e.next_after(t)) <= ms("2025-01-01T00:00-05:00");) {
    ASSERT_TRUE(fires.empty() || t > fires.back());
    fires.push_back(t);
  }
  EXPECT_EQ(fires.size(), 366u * 24 - 1);
  EXPECT_EQ(std::count(fires.begin(), fires.end(), ms("2024-03-10T07:00")), 1);
  EXPECT_EQ(std::count(fires.begin(), fires.end(), ms("2024-11-03T05:00")), 1);  // 01:00 EDT
  EXPECT_EQ(std::count(fires.begin(), fires.end(), ms("2024-11-03T06:00")), 0);  // 01:00 EST
}

struct ErrCase {
  const char* expr;
  const char* tz;
  size_t offset;
  const char* text;  // a substring of what()
};

const ErrCase kErrors[] = {
    {"60 * * * *", "", 0, "bad minute field '60' (values must be 0-59)"},
    {"0 24 * * *", "", 2, "bad hour field '24' (values must be 0-23)"},
    {"0 0 0 * *", "", 4, "bad day-of-month field '0' (values must be 1-31)"},
    {"0 0 * 13 *", "", 6, "bad month field '13' (values must be 1-12 or JAN-DEC)"},
    {"0 0 * * 8", "", 8, "bad day-of-week field '8'"},
    {"1,60 * * * *", "", 2, "bad minute field '1,60' at '60' (values must be 0-59)"},
    {"* * * * * *", "", 10, "has 6 fields (expected 5 fields"},
    {"every day", "", 9, "has 2 fields"},
    {"", "", 0, "has 0 fields"},
    {"*/0 * * * *", "", 2, "bad minute field '*/0' at '0' (step must be a positive number)"},
    {"*/ * * * *", "", 2, "step must be a positive number"},
    {"5-1 * * * *", "", 0, "bad minute field '5-1' (range start 5 is after its end 1)"},
    {"0 0 * * FRI-MON", "", 8, "range start 5 is after its end 1"},
    {"FOO * * * *", "", 0, "bad minute field 'FOO' (names are not allowed here"},
    {"0 0 * FOO *", "", 6, "bad month field 'FOO' (unknown name; values must be 1-12 or JAN-DEC)"},
    {"0 0 * * MONDAY", "", 8, "unknown name"},
    {"0 0 * JAN-FOO *", "", 10, "bad month field 'JAN-FOO' at 'FOO'"},
    {"0 0 * * MON?", "", 11, "bad day-of-week field 'MON?' at '?' (unexpected character)"},
    {"1,,2 * * * *", "", 2, "empty list item"},
    {"1, * * * *", "", 1, "empty list item"},
    {",1 * * * *", "", 0, "empty list item"},
    {"5/15 * * * *", "", 0, "a step needs a range"},
    {"1- * * * *", "", 2, "missing value"},
    {"-1 * * * *", "", 0, "unexpected character"},
    {"@reboot", "", 0, "unknown macro '@reboot'"},
    {"@daily 5", "", 7, "unexpected text after @daily"},
    {"CRON_TZ=Mars/Olympus 0 0 * * *", "", 8, "unknown time zone 'Mars/Olympus'"},
    {"CRON_TZ= 0 0 * * *", "", 8, "missing time zone after 'CRON_TZ='"},
    {"TZ=europe/berlin 0 0 * * *", "", 3, "unknown time zone 'europe/berlin'"},
    {"0 0 * * *", "Nope/Zone", 0, "unknown time zone 'Nope/Zone'"},
    {"0 0 30 2 *", "", 4, "never fires: day-of-month '30' does not occur in month '2'"},
    {"0 0 31 4,6,9,11 *", "", 4, "never fires"},
    {"0 0 30-31 FEB *", "", 4, "never fires"},
    {"0 0 31 APR */7", "", 4, "never fires"},
    {"0 0 1\x01 * *", "", 5, "at '\\x01' (unexpected character)"},
};

TEST(CronExpr, Errors) {
  for (const auto& c : kErrors) {
    SCOPED_TRACE(std::string("'") + c.expr + "' [" + c.tz + "]");
    try {
      CronExpr::parse(c.expr, c.tz);
      ADD_FAILURE() << "no error";
    } catch (const CronError& e) {
      EXPECT_EQ(e.offset(), c.offset) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.text), std::string::npos) << e.what() << "\nwanted: " << c.text;
      EXPECT_NE(std::string(e.what()).find("cron expression"), std::string::npos) << e.what();
    }
  }
}

TEST(CronExpr, NextAfterRejectsTimesOutsideYears1To9999) {
  const auto e = CronExpr::parse("* * * * *");
  EXPECT_THROW(e.next_after(INT64_MAX), CronError);
  EXPECT_THROW(e.next_after(INT64_MIN), CronError);
  EXPECT_EQ(iso(e.next_after(ms("9999-12-31T23:58"))), "9999-12-31T23:59:00Z");
}

// ---- Brute-force cross-check (UTC): random field sets rendered as lists, compared with a day-by-day scan ----

struct Sets {
  std::set<int> f[5];
  bool star[5] = {};
};

std::string render(std::mt19937_64& rng, Sets& s) {
  static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
  std::string out;
  for (int k = 0; k < 5; ++k) {
    if (!out.empty()) out += ' ';
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {  // '*'
      s.star[k] = true;
      for (int v = lo[k]; v <= hi[k]; ++v) s.f[k].insert(v);
      out += '*';
    } else if (kind == 1) {  // '*/n'
      const int step = 1 + static_cast<int>(rng() % 13);
      s.star[k] = true;
      for (int v = lo[k]; v <= hi[k]; v += step) s.f[k].insert(v);
      out += "*/" + std::to_string(step);
    } else {  // a list of values and a-b/n ranges
      const int items = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < items; ++i) {
        const int a = lo[k] + static_cast<int>(rng() % (hi[k] - lo[k] + 1));
        const int b = a + static_cast<int>(rng() % (hi[k] - a + 1));
        const int step = 1 + static_cast<int>(rng() % 5);
        if (i > 0) out += ',';
        if (kind == 2) {
          s.f[k].insert(a);
          out += std::to_string(a);
        } else {
          for (int v = a; v <= b; v += step) s.f[k].insert(v);
          out += std::to_string(a) + "-" + std::to_string(b) + "/" + std::to_string(step);
        }
      }
    }
  }
  if (s.f[4].count(7)) s.f[4].insert(0);
  return out;
}

int64_t brute_next(const Sets& s, int64_t after_ms, int64_t limit_days) {
  const int64_t first_day =
      chr::floor<chr::days>(chr::sys_time<chr::milliseconds>{chr::milliseconds{after_ms}}).time_since_epoch().count();
  for (int64_t day = first_day; day < first_day + limit_days; ++day) {
    const chr::sys_days sd{chr::days{day}};
    const chr::year_month_day ymd{sd};
    const int dow = static_cast<int>(chr::weekday{sd}.c_encoding());
    const bool dom_ok = s.f[2].count(static_cast<int>(static_cast<unsigned>(ymd.day())));
    const bool dow_ok = s.f[4].count(dow);
    const bool day_ok = (s.star[2] || s.star[4]) ? (dom_ok && dow_ok) : (dom_ok || dow_ok);
    if (!day_ok || !s.f[3].count(static_cast<int>(static_cast<unsigned>(ymd.month())))) continue;
    for (int h : s.f[1]) {
      for (int m : s.f[0]) {
        const int64_t t = (day * 1440 + h * 60 + m) * 60000LL;
        if (t > after_ms) return t;
      }
    }
  }
  return -1;
}

TEST(CronExpr, MatchesBruteForce) {
  std::mt19937_64 rng(20240601);
  int compared = 0;
  for (int i = 0; i < 1500; ++i) {
    Sets s;
    const std::string text = render(rng, s);
    const int64_t after = ms("2020-01-01T00:00") + static_cast<int64_t>(rng() % (20LL * 365 * 86400000));
    const int64_t want = brute_next(s, after, 6 * 366);
    try {
      const auto e = CronExpr::parse(text);
      if (want < 0) continue;  // fires more than 6 years away: not checked here
      ASSERT_EQ(iso(e.next_after(after)), iso(want)) << text << " after " << iso(after);
      ++compared;
    } catch (const CronError& err) {
      // Only impossible day/month combinations may be rejected; the scan must agree.
      EXPECT_NE(std::string(err.what()).find("never fires"), std::string::npos) << err.what();
      EXPECT_EQ(want, -1) << text;
    }
  }
  EXPECT_GT(compared, 1000);
}

// ---- Speed (printed, not asserted) ----

TEST(CronExpr, Speed) {
  struct Bench {
    const char* expr;
    const char* tz;
  };
  for (const Bench b : {Bench{"*/5 * * * *", ""}, Bench{"0 9 * * MON-FRI", ""}, Bench{"0 0 29 2 *", ""},
                        Bench{"0 9 * * MON-FRI", "Europe/Berlin"}, Bench{"30 2 * * *", "America/New_York"}}) {
    const auto e = CronExpr::parse(b.expr, b.tz);
    constexpr int kCalls = 100000;
    int64_t t = ms("2024-01-01T00:00"), sum = 0;
    const auto start = chr::steady_clock::now();
    for (int i = 0; i < kCalls; ++i) {
      // Alternate chained calls with jumps, so the references spread over years as well as minutes.
      const int64_t next = e.next_after(t);
      sum += next;
      t = (i % 2 == 0) ? next : ms("2024-01-01T00:00") + (next * 7919) % (30LL * 365 * 86400000);
    }
    const double us = chr::duration<double, std::micro>(chr::steady_clock::now() - start).count();
    std::cout << "[ speed    ] " << kCalls << " next_after('" << b.expr << "'"
              << (*b.tz ? std::string(", ") + b.tz : "") << "): " << static_cast<int64_t>(us / 1000) << " ms, "
              << us / kCalls << " us/call\n";
    EXPECT_NE(sum, 0);
  }
}

}  // namespace
}  // namespace ork
