// A libFuzzer-free driver for the fuzz targets (GCC builds, ctest): runs the target over every file of a seed corpus,
// then over a fixed number of inputs generated from the grammar, mutated from the seeds, or random bytes, from a
// fixed-seed PRNG (reproducible).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int run(const std::string& input) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

// Pieces that make mutations likely to stay close to the grammar.
const char* const kTokens[] = {"*",
                               "/",
                               ",",
                               "-",
                               " ",
                               "\t",
                               "0",
                               "7",
                               "59",
                               "60",
                               "31",
                               "12",
                               "99999",
                               "JAN",
                               "dec",
                               "MON",
                               "sun",
                               "@",
                               "@daily",
                               "@yearly",
                               "CRON_TZ=",
                               "TZ=",
                               "Europe/Berlin",
                               "America/New_York",
                               "Asia/Kolkata",
                               "UTC",
                               "*/",
                               "-/",
                               "\xff",
                               ""};

std::string mutate(std::mt19937_64& rng, std::string s, const std::vector<std::string>& seeds) {
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < edits; ++k) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 6) {
      case 0:  // flip a byte
        if (!s.empty()) s[rng() % s.size()] = static_cast<char>(rng() % 256);
        break;
      case 1:  // delete a run
        if (!s.empty()) s.erase(rng() % s.size(), 1 + rng() % 4);
        break;
      case 2:  // insert a token
        s.insert(pos, kTokens[rng() % std::size(kTokens)]);
        break;
      case 3:  // insert a printable byte
        s.insert(pos, 1, static_cast<char>(32 + rng() % 95));
        break;
      case 4: {  // splice another seed
        const std::string& o = seeds[rng() % seeds.size()];
        if (!o.empty()) s = s.substr(0, pos) + o.substr(rng() % o.size());
        break;
      }
      default: {  // insert a random number (built apart: GCC 12 -O3 -Wrestrict false positive on insert)
        std::string head = s.substr(0, pos);
        head += std::to_string(rng() % 100);
        s = head + s.substr(pos);
        break;
      }
    }
  }
  return s;
}

// A mostly valid expression: random fields (values sometimes out of range), sometimes a zone prefix or a macro.
std::string generate(std::mt19937_64& rng) {
  static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
  static const char* const zones[] = {"Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC"};
  static const char* const names[] = {"JAN", "feb", "Mar", "SEP", "DEC", "SUN", "mon", "Fri", "SAT", "thu"};
  static const char* const macros[] = {"@yearly", "@monthly", "@weekly", "@daily", "@hourly", "@midnight"};
  std::string out;
  if (rng() % 5 == 0) out += std::string(rng() % 2 ? "CRON_TZ=" : "TZ=") + zones[rng() % std::size(zones)] + " ";
  if (rng() % 20 == 0) return out + macros[rng() % std::size(macros)];
  auto number = [&](int k) {
    const int span = hi[k] - lo[k] + 1 + (rng() % 100 == 0 ? 5 : 0);  // now and then out of range
    return lo[k] + static_cast<int>(rng() % static_cast<uint64_t>(span));
  };
  auto value = [&](int k) {
    if (k >= 3 && rng() % 3 == 0) return std::string(names[(k == 3 ? 0 : 5) + rng() % 5]);
    return std::to_string(number(k));
  };
  auto range = [&](int k) {  // ordered, except now and then
    int a = number(k), b = number(k);
    if (a > b && rng() % 20 != 0) std::swap(a, b);
    return std::to_string(a) + "-" + std::to_string(b);
  };
  for (int k = 0; k < 5; ++k) {
    if (k > 0) out += ' ';
    const int items = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < items; ++i) {
      if (i > 0) out += ',';
      switch (rng() % 5) {
        case 0:
          out += '*';
          break;
        case 1:
          out += "*/" + std::to_string(1 + rng() % 20);
          break;
        case 2:
          out += value(k);
          break;
        case 3:
          out += range(k);
          break;
        default:
          out += range(k) + "/" + std::to_string(1 + rng() % 10);
          break;
      }
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [RANDOM_INPUTS]\n", argv[0]);
    return 2;
  }
  const long random_inputs = argc > 2 ? std::atol(argv[2]) : 20000;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> seeds;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    run(seeds.back());
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds in %s\n", argv[1]);
    return 2;
  }
  std::mt19937_64 rng(0x0c0ffee);
  for (long i = 0; i < random_inputs; ++i) {
    std::string input;
    const long kind = i % 10;
    if (kind < 5) {  // generated from the grammar, sometimes mutated
      input = generate(rng);
      if (kind == 4) input = mutate(rng, input, seeds);
    } else if (kind < 9) {  // a mutated seed
      input = mutate(rng, seeds[rng() % seeds.size()], seeds);
    } else {  // random bytes
      input.resize(rng() % 48);
      for (auto& c : input) c = static_cast<char>(rng() % 256);
    }
    run(input);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu seeds + %ld generated inputs in %.2f s\n", seeds.size(), random_inputs, secs);
  return 0;
}
