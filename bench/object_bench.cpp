// Object-store benchmark: put+get round trips of 1 KB and 10 MB objects through one plugin (loaded like ork-host
// loads it), p50/p99 latency of the pair and MB/s moved. Prints markdown rows; appends bench rows to $BENCH_ROWS.
// Usage: object_bench --library L --config JSON --label TEXT [--small N] [--large N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string fmt(double v, int prec) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::string lib, config = "{}", label;
  int small = 200, large = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--library")
      lib = argv[i + 1];
    else if (a == "--config")
      config = argv[i + 1];
    else if (a == "--label")
      label = argv[i + 1];
    else if (a == "--small")
      small = std::atoi(argv[i + 1]);
    else if (a == "--large")
      large = std::atoi(argv[i + 1]);
  }
  if (lib.empty() || small < 1 || large < 1) {
    std::cerr << "usage: object_bench --library L --config JSON --label TEXT [--small N] [--large N]\n";
    return 2;
  }
  auto store = ork::load_plugin<ork::ObjectProxy>("object", lib, ork::json::parse(config));
  std::string ns = "bench/" + ork::new_uuid() + "/";
  const char* rows = std::getenv("BENCH_ROWS");
  for (auto [size, n, name] : {std::tuple<size_t, int, const char*>{1024, small, "1 KB"},
                               std::tuple<size_t, int, const char*>{10u << 20, large, "10 MB"}}) {
    std::string data(size, 'x');
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 131) & 0xff);
    std::vector<double> pair_ms;
    auto start = Clock::now();
    for (int i = 0; i < n + 1; ++i) {
      std::string key = ns + std::to_string(size) + "/" + std::to_string(i);
      auto t0 = Clock::now();
      store->put(key, data);
      auto got = store->get(key);
      auto t1 = Clock::now();
      if (!got || got->size() != size) {
        std::cerr << "object_bench: " << lib << " returned a different object for " << key << "\n";
        return 1;
      }
      if (i == 0) {  // warm-up (connections, bucket caches)
        start = Clock::now();
        continue;
      }
      pair_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    double mbps = 2.0 * static_cast<double>(size) * n / (1024.0 * 1024.0) / secs;
    double p50 = pct(pair_ms, 0.5), p99 = pct(pair_ms, 0.99);
    std::cout << "| " << label << " | " << name << " | " << n << " | " << fmt(p50, 2) << " | " << fmt(p99, 2) << " | "
              << fmt(mbps, 1) << " |\n";
    if (rows && *rows) {
      std::ofstream out(rows, std::ios::app);
      std::string w = std::string("object put+get ") + name;
      out << w << " p50|" << label << "|" << fmt(p50, 2) << "|ms|-|report|\n";
      out << w << " p99|" << label << "|" << fmt(p99, 2) << "|ms|-|report|\n";
      out << w << " throughput|" << label << "|" << fmt(mbps, 1) << "|MB/s|-|report|\n";
    }
  }
  for (const auto& k : store->list(ns)) store->del(k);
  return 0;
}
