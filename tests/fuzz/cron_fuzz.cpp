// Fuzz target for CronExpr: parsing any bytes must either succeed or throw CronError, and a parsed expression's
// next fires must exist, move strictly forward and be reproducible. Anything else (crash, hang, other exception) is
// a bug.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "scheduler/cron.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::unique_ptr<ork::CronExpr> parsed;
  try {
    parsed = std::make_unique<ork::CronExpr>(ork::CronExpr::parse(text));
  } catch (const ork::CronError& err) {
    check(err.offset() <= text.size());
    return 0;
  }
  const ork::CronExpr& e = *parsed;
  // References between 1970 and ~2200, one derived from the input.
  uint64_t h = 1469598103934665603ULL;
  for (uint8_t b : text) h = (h ^ b) * 1099511628211ULL;
  const int64_t refs[] = {0, 1709999999999, 2240611200000, static_cast<int64_t>(h % 7258118400000ULL)};
  for (int64_t t : refs) {
    int64_t prev = t;
    for (int k = 0; k < 3; ++k) {
      const int64_t next = e.next_after(prev);  // throws (and aborts the fuzzer) on "never fires"
      check(next > prev && next % 1000 == 0);
      prev = next;
    }
    check(ork::CronExpr::parse(e.text()).next_after(t) == e.next_after(t));
  }
  return 0;
}
