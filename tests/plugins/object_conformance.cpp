// ObjectStore conformance suite (docs/plugin-abi.md): any object plugin, loaded through the host's loader exactly as
// ork-host loads it. ORK_CONFORMANCE_LIBRARY (default ork-object-local) and ORK_CONFORMANCE_CONFIG (JSON; every
// "{tmpdir}" becomes a fresh directory per test, every "{file:PATH}" the trimmed contents of PATH) choose the backend.
// Cloud stores cannot be reset between tests, so every test works under a fresh key prefix and asserts only about it.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"

namespace {

namespace fs = std::filesystem;
using ork::json;
using ork::ObjectProxy;
using ork::PluginCallError;
using Clock = std::chrono::steady_clock;

struct Backend {
  std::string library;
  std::string config;
};

void PrintTo(const Backend& b, std::ostream* os) {
  *os << b.library << " " << b.config;
}

Backend backend_from_env() {
  const char* lib = std::getenv("ORK_CONFORMANCE_LIBRARY");
  const char* cfg = std::getenv("ORK_CONFORMANCE_CONFIG");
  return {lib && *lib ? lib : "ork-object-local", cfg && *cfg ? cfg : R"({"root": "{tmpdir}/objects"})"};
}

size_t env_size(const char* name, size_t def) {
  const char* v = std::getenv(name);
  return v && *v ? static_cast<size_t>(std::strtoull(v, nullptr, 10)) : def;
}

std::string test_name(const ::testing::TestParamInfo<Backend>& info) {
  std::string n = fs::path(info.param.library).stem().string();
  for (auto& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n.empty() ? "backend" : n;
}

// Deterministic pseudo-random bytes (xorshift64*), so big objects need no reference copy in memory.
class ByteStream {
 public:
  explicit ByteStream(uint64_t seed) : s_(seed ? seed : 0x9e3779b97f4a7c15ULL) {}
  void fill(char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (left_ == 0) {
        s_ ^= s_ >> 12;
        s_ ^= s_ << 25;
        s_ ^= s_ >> 27;
        word_ = s_ * 0x2545F4914F6CDD1DULL;
        left_ = 8;
      }
      p[i] = static_cast<char>(word_ & 0xff);
      word_ >>= 8;
      --left_;
    }
  }
  std::string bytes(size_t n) {
    std::string s(n, '\0');
    fill(s.data(), n);
    return s;
  }

 private:
  uint64_t s_, word_ = 0;
  int left_ = 0;
};

// FNV-1a over a stream of chunks.
struct Fnv {
  uint64_t h = 1469598103934665603ULL;
  void add(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ULL;
  }
};

// Writes `size` bytes of ByteStream(seed) to `path` in 1 MB chunks; returns their hash.
uint64_t write_pattern_file(const std::string& path, size_t size, uint64_t seed) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  ByteStream bs(seed);
  Fnv f;
  std::vector<char> buf(1 << 20);
  for (size_t done = 0; done < size;) {
    size_t n = std::min(buf.size(), size - done);
    bs.fill(buf.data(), n);
    f.add(buf.data(), n);
    out.write(buf.data(), static_cast<std::streamsize>(n));
    done += n;
  }
  out.flush();
  if (!out) throw std::runtime_error("cannot write " + path);
  return f.h;
}

std::pair<uint64_t, size_t> hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Fnv f;
  size_t total = 0;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = static_cast<size_t>(in.gcount());
    f.add(buf.data(), n);
    total += n;
  }
  return {f.h, total};
}

// kB from a /proc/self/status line ("VmRSS:", "VmHWM:"); 0 when unavailable.
size_t proc_status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  size_t len = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, len, field) == 0) return static_cast<size_t>(std::strtoull(line.c_str() + len, nullptr, 10));
  return 0;
}

// Peak resident-set growth over a piece of work: resets the kernel's high-water mark (clear_refs 5) and also samples
// VmRSS every 5 ms, in case the reset is refused.
class RssWatch {
 public:
  RssWatch() {
    std::ofstream("/proc/self/clear_refs") << "5";
    base_kb_ = proc_status_kb("VmRSS:");
    peak_kb_ = base_kb_;
    sampler_ = std::thread([this] {
      while (!stop_) {
        size_t now = proc_status_kb("VmRSS:");
        if (now > peak_kb_) peak_kb_ = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  ~RssWatch() { finish(); }
  // Peak growth in MB.
  double finish() {
    if (sampler_.joinable()) {
      stop_ = true;
      sampler_.join();
    }
    size_t hwm = proc_status_kb("VmHWM:");
    size_t peak = std::max<size_t>(peak_kb_, hwm);
    return peak > base_kb_ ? static_cast<double>(peak - base_kb_) / 1024.0 : 0.0;
  }

 private:
  size_t base_kb_ = 0;
  std::atomic<size_t> peak_kb_{0};
  std::atomic<bool> stop_{false};
  std::thread sampler_;
};

ork_status code_of(const std::function<void()>& f) {
  try {
    f();
    return ORK_OK;
  } catch (const PluginCallError& e) {
    return e.code();
  }
}

void run_threads(size_t n, const std::function<void(size_t)>& body) {
  std::vector<std::thread> ts;
  for (size_t i = 0; i < n; ++i) ts.emplace_back([&, i] { body(i); });
  for (auto& t : ts) t.join();
}

class ObjectConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    tmpdir_ = fresh_dir();
    config_ = config_for(tmpdir_);
    store_ = open(config_);
    ASSERT_TRUE(store_);
    ns_ = "conformance/" + ork::new_uuid() + "/";
  }

  void TearDown() override {
    if (store_) {
      try {  // best effort: cloud stores keep what a test leaves
        auto keys = store_->list(ns_);
        std::atomic<size_t> next{0};
        run_threads(8, [&](size_t) {
          for (size_t i; (i = next++) < keys.size();) store_->del(keys[i]);
        });
      } catch (const std::exception& e) {
        std::cerr << "cleanup of " << ns_ << " failed: " << e.what() << "\n";
      }
    }
    store_.reset();
    std::error_code ec;
    for (const auto& d : dirs_) fs::remove_all(d, ec);
  }

  std::string fresh_dir() {
    std::string tmpl = (fs::temp_directory_path() / "ork-object-conformance-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dirs_.push_back(tmpl);
    return tmpl;
  }

  static json config_for(const std::string& dir) {
    auto escaped = [](const std::string& s) {
      std::string e = json(s).dump();
      return e.substr(1, e.size() - 2);
    };
    std::string text = GetParam().config, esc = escaped(dir);
    for (size_t p = text.find("{tmpdir}"); p != std::string::npos; p = text.find("{tmpdir}", p + esc.size()))
      text.replace(p, 8, esc);
    for (size_t p = text.find("{file:"); p != std::string::npos; p = text.find("{file:", p)) {
      size_t end = text.find('}', p);
      if (end == std::string::npos) throw std::runtime_error("ORK_CONFORMANCE_CONFIG: unterminated {file:...}");
      std::string path = text.substr(p + 6, end - p - 6), contents;
      std::ifstream in(path);
      if (!in) throw std::runtime_error("ORK_CONFORMANCE_CONFIG: cannot read " + path);
      contents.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      size_t b = contents.find_first_not_of(" \t\r\n"), e = contents.find_last_not_of(" \t\r\n");
      contents = escaped(b == std::string::npos ? "" : contents.substr(b, e - b + 1));
      text.replace(p, end - p + 1, contents);
      p += contents.size();
    }
    return json::parse(text);
  }

  static std::unique_ptr<ObjectProxy> open(const json& config) {
    return ork::load_plugin<ObjectProxy>("object", GetParam().library, config);
  }

  ObjectProxy& s() { return *store_; }
  std::string k(const std::string& rel) const { return ns_ + rel; }

  std::vector<std::string> dirs_;
  std::string tmpdir_, ns_;
  json config_;
  std::unique_ptr<ObjectProxy> store_;
};

TEST_P(ObjectConformance, LoadsAsAnObjectPluginThatStreams) {
  EXPECT_EQ(s().kind(), "object");
  EXPECT_FALSE(s().plugin_name().empty());
  EXPECT_FALSE(s().version().empty());
  EXPECT_EQ(s().abi().substr(0, 2), "1.");
  EXPECT_TRUE(s().streams()) << "put_file/get_file (ABI 1.4) are needed for objects larger than memory";
}

TEST_P(ObjectConformance, PutGetDelete) {
  s().put(k("a.json"), R"({"x": 1})", {{"content_type", "application/json"}});
  auto v = s().get(k("a.json"));
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, R"({"x": 1})");
  s().del(k("a.json"));
  EXPECT_FALSE(s().get(k("a.json")));
  EXPECT_TRUE(s().list(k("")).empty());
}

TEST_P(ObjectConformance, MissingKeyIsNotFoundNotAnError) {
  EXPECT_FALSE(s().get(k("never/written.txt")));
  std::string path = tmpdir_ + "/missing.out";
  EXPECT_FALSE(s().get_file(k("never/written.txt"), path));
  EXPECT_FALSE(fs::exists(path)) << "get_file of a missing key must leave the path untouched";
  EXPECT_NO_THROW(s().del(k("never/written.txt")));
  EXPECT_NO_THROW(s().del(k("never/written.txt")));
}

TEST_P(ObjectConformance, OverwriteReplacesTheWholeObject) {
  s().put(k("o"), std::string(5000, 'a'));
  s().put(k("o"), "short");
  EXPECT_EQ(s().get(k("o")).value_or("<none>"), "short");
  s().put(k("o"), "");
  auto v = s().get(k("o"));
  ASSERT_TRUE(v) << "an empty object exists";
  EXPECT_EQ(*v, "");
  EXPECT_EQ(s().list(k("")), std::vector<std::string>{k("o")});
}

TEST_P(ObjectConformance, BinaryDataRoundTrips) {
  std::string all;
  for (int rep = 0; rep < 4; ++rep)
    for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  all += std::string("\0\0\r\n\x80\xff", 6);
  s().put(k("bin/all-bytes"), all);
  EXPECT_EQ(s().get(k("bin/all-bytes")).value_or(""), all);
  std::string random = ByteStream(42).bytes(1 << 20);
  s().put(k("bin/random"), random, {{"content_type", "application/octet-stream"}});
  EXPECT_TRUE(s().get(k("bin/random")).value_or("") == random);
}

// Above every cloud plugin's single-request threshold (multipart / blocks / resumable), through memory.
TEST_P(ObjectConformance, LargeObjectThroughMemory) {
  size_t mb = env_size("ORK_CONFORMANCE_MEMORY_MB", 20);
  std::string data = ByteStream(7).bytes(mb << 20);
  s().put(k("large/mem.bin"), data);
  auto v = s().get(k("large/mem.bin"));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->size(), data.size());
  EXPECT_TRUE(*v == data);
  // Conditional create also holds on the multi-request path.
  EXPECT_EQ(code_of([&] { s().put(k("large/mem.bin"), data.substr(1), {{"if_none_match", true}}); }), ORK_ERR_CONFLICT);
  EXPECT_EQ(s().get(k("large/mem.bin")).value_or("").size(), data.size());
}

// 100 MB from a file and back to a file, with resident memory growth measured (the plugin must stream).
TEST_P(ObjectConformance, HundredMegabyteObjectStreamsInBoundedMemory) {
  size_t mb = env_size("ORK_CONFORMANCE_LARGE_MB", 100);
  size_t limit_mb = env_size("ORK_CONFORMANCE_MAX_RSS_MB", 64);
  size_t size = (mb << 20) + 12345;  // not a multiple of any part size
  std::string src = tmpdir_ + "/large.src", dst = tmpdir_ + "/large.dst";
  uint64_t h = write_pattern_file(src, size, 1234);

  auto t0 = Clock::now();
  double up_mb;
  {
    RssWatch w;
    s().put_file(k("large/file.bin"), src, {{"content_type", "application/octet-stream"}});
    up_mb = w.finish();
  }
  auto t1 = Clock::now();
  double down_mb;
  {
    RssWatch w;
    ASSERT_TRUE(s().get_file(k("large/file.bin"), dst));
    down_mb = w.finish();
  }
  auto t2 = Clock::now();
  auto [h2, n2] = hash_file(dst);
  EXPECT_EQ(n2, size);
  EXPECT_EQ(h2, h) << "downloaded bytes differ";
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::cout << "[ timing ] " << mb << " MB put_file " << ms(t1 - t0) << " ms (RSS +" << up_mb << " MB), get_file "
            << ms(t2 - t1) << " ms (RSS +" << down_mb << " MB)\n";
  EXPECT_LT(up_mb, static_cast<double>(limit_mb)) << "put_file held too much of the object in memory";
  EXPECT_LT(down_mb, static_cast<double>(limit_mb)) << "get_file held too much of the object in memory";

  // The in-memory get agrees with the streamed one for a smaller file, and a second get_file replaces dst.
  std::string small = ByteStream(5).bytes(3000);
  std::ofstream(src, std::ios::binary | std::ios::trunc) << small;
  s().put_file(k("large/small.bin"), src);
  EXPECT_EQ(s().get(k("large/small.bin")).value_or(""), small);
  ASSERT_TRUE(s().get_file(k("large/small.bin"), dst));
  EXPECT_EQ(hash_file(dst).second, small.size());
  EXPECT_EQ(code_of([&] { s().put_file(k("large/small.bin"), src, {{"if_none_match", true}}); }), ORK_ERR_CONFLICT);
}

TEST_P(ObjectConformance, UnicodeAndSpaceKeys) {
  std::vector<std::string> rel = {"dir with space/file name.txt",
                                  "unicode/файл-ü-日本語.json",
                                  "emoji/🎉 party",
                                  "punct/a+b=c&d;e,f@g$h!'(x)*",
                                  "punct/100% sure",
                                  "punct/tilde~under_dot.dash-"};
  for (size_t i = 0; i < rel.size(); ++i) s().put(k(rel[i]), "v" + std::to_string(i));
  for (size_t i = 0; i < rel.size(); ++i) EXPECT_EQ(s().get(k(rel[i])).value_or("<none>"), "v" + std::to_string(i));
  std::vector<std::string> want;
  for (auto& r : rel) want.push_back(k(r));
  std::sort(want.begin(), want.end());
  EXPECT_EQ(s().list(k("")), want);
  EXPECT_EQ(s().list(k("unicode/файл")), std::vector<std::string>{k("unicode/файл-ü-日本語.json")});
  EXPECT_EQ(s().list(k("dir with space/")), std::vector<std::string>{k("dir with space/file name.txt")});
  s().del(k("emoji/🎉 party"));
  EXPECT_FALSE(s().get(k("emoji/🎉 party")));
}

TEST_P(ObjectConformance, ListByPrefixIsSortedAndPlain) {
  for (const char* r : {"runs/r1/t1/spec.json", "runs/r1/t1/status.json", "runs/r1/t2/spec.json", "runs/r10/x",
                        "runs/r2/y", "other/z", "runs-file"})
    s().put(k(r), r);
  EXPECT_EQ(s().list(k("runs/r1/")), (std::vector<std::string>{k("runs/r1/t1/spec.json"), k("runs/r1/t1/status.json"),
                                                               k("runs/r1/t2/spec.json")}));
  EXPECT_EQ(s().list(k("runs/r1")), (std::vector<std::string>{k("runs/r1/t1/spec.json"), k("runs/r1/t1/status.json"),
                                                              k("runs/r1/t2/spec.json"), k("runs/r10/x")}));
  EXPECT_EQ(s().list(k("runs")).size(), 6u);
  EXPECT_EQ(s().list(k("runs/r1/t1/status")), std::vector<std::string>{k("runs/r1/t1/status.json")});
  EXPECT_TRUE(s().list(k("nothing/")).empty());
  EXPECT_TRUE(s().list(k("runs/r3")).empty());
  auto all = s().list(k(""));
  EXPECT_EQ(all.size(), 7u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
}

// More keys than one listing page of any cloud store (S3, GCS: 1,000).
TEST_P(ObjectConformance, ListPaginatesBeyondOneThousandKeys) {
  size_t n = env_size("ORK_CONFORMANCE_MANY_KEYS", 1100);
  std::vector<std::string> want;
  for (size_t i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "many/%05zu", (i * 7919) % n);  // written out of order
    want.push_back(k(name));
  }
  std::atomic<size_t> next{0};
  run_threads(8, [&](size_t) {
    for (size_t i; (i = next++) < want.size();) s().put(want[i], "x");
  });
  s().put(k("manyx"), "outside");
  std::sort(want.begin(), want.end());
  auto got = s().list(k("many/"));
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(got, want);
  EXPECT_EQ(s().list(k("many/0010")).size(), 10u);
}

TEST_P(ObjectConformance, ConcurrentWritersToDistinctKeysAndOneKey) {
  const size_t threads = 8, per = 12;
  std::barrier sync(static_cast<std::ptrdiff_t>(threads));
  std::mutex m;
  std::vector<std::string> errors;
  run_threads(threads, [&](size_t t) {
    sync.arrive_and_wait();
    for (size_t i = 0; i < per; ++i) {
      try {
        std::string body = "writer " + std::to_string(t) + " #" + std::to_string(i) +
                           std::string(1000 + t, static_cast<char>('a' + t));
        s().put(k("distinct/" + std::to_string(t) + "/" + std::to_string(i)), body);
        s().put(k("shared"), body);
      } catch (const std::exception& e) {
        std::lock_guard lk(m);
        errors.push_back(e.what());
      }
    }
  });
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(s().list(k("distinct/")).size(), threads * per);
  auto v = s().get(k("shared"));
  ASSERT_TRUE(v);
  bool whole = false;
  for (size_t t = 0; t < threads; ++t)
    for (size_t i = 0; i < per; ++i)
      whole |= *v == "writer " + std::to_string(t) + " #" + std::to_string(i) +
                         std::string(1000 + t, static_cast<char>('a' + t));
  EXPECT_TRUE(whole) << "the shared key holds a mix of writes: " << v->substr(0, 40);
}

TEST_P(ObjectConformance, ReadersSeeTheOldOrTheNewObjectNeverPart) {
  const std::string a(256 << 10, 'A'), b(256 << 10, 'B');
  s().put(k("flip"), a);
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread writer([&] {
    for (int i = 0; i < 20; ++i) s().put(k("flip"), i % 2 ? a : b);
    stop = true;
  });
  run_threads(2, [&](size_t) {
    while (!stop) {
      auto v = s().get(k("flip"));
      ++reads;
      if (!v || !(*v == a || *v == b)) ++torn;
    }
  });
  writer.join();
  EXPECT_EQ(torn.load(), 0) << "of " << reads.load() << " reads";
}

TEST_P(ObjectConformance, IfNoneMatchCreatesOnlyOnce) {
  s().put(k("once"), "first", {{"if_none_match", true}});
  EXPECT_EQ(code_of([&] { s().put(k("once"), "second", {{"if_none_match", true}}); }), ORK_ERR_CONFLICT);
  EXPECT_EQ(s().get(k("once")).value_or(""), "first");
  s().put(k("once"), "third");  // unconditional overwrite still works
  EXPECT_EQ(s().get(k("once")).value_or(""), "third");
  s().del(k("once"));
  s().put(k("once"), "after delete", {{"if_none_match", true}});
  EXPECT_EQ(s().get(k("once")).value_or(""), "after delete");
}

TEST_P(ObjectConformance, IfNoneMatchRaceHasExactlyOneWinner) {
  for (int round = 0; round < 3; ++round) {
    const size_t threads = 8;
    std::string key = k("race/" + std::to_string(round));
    std::barrier sync(static_cast<std::ptrdiff_t>(threads));
    std::atomic<int> won{-1}, wins{0}, conflicts{0}, other{0};
    run_threads(threads, [&](size_t t) {
      sync.arrive_and_wait();
      ork_status st = code_of([&] { s().put(key, "winner " + std::to_string(t), {{"if_none_match", true}}); });
      if (st == ORK_OK) {
        ++wins;
        won = static_cast<int>(t);
      } else if (st == ORK_ERR_CONFLICT) {
        ++conflicts;
      } else {
        ++other;
      }
    });
    EXPECT_EQ(wins.load(), 1) << "round " << round;
    EXPECT_EQ(conflicts.load(), static_cast<int>(threads) - 1);
    EXPECT_EQ(other.load(), 0);
    EXPECT_EQ(s().get(key).value_or(""), "winner " + std::to_string(won.load()));
  }
}

TEST_P(ObjectConformance, BadKeysAreInvalid) {
  for (const std::string& bad : std::vector<std::string>{"", "/abs", k("a/../b"), k("a//b"), k("./x"), ".."}) {
    EXPECT_EQ(code_of([&] { s().put(bad, "x"); }), ORK_ERR_INVALID) << "'" << bad << "'";
    EXPECT_EQ(code_of([&] { (void)s().get(bad); }), ORK_ERR_INVALID) << "'" << bad << "'";
  }
}

TEST_P(ObjectConformance, SecondInstanceSharesTheStore) {
  auto other = open(config_);
  s().put(k("shared/a"), "from one");
  EXPECT_EQ(other->get(k("shared/a")).value_or(""), "from one");
  other->put(k("shared/b"), "from two");
  EXPECT_EQ(s().list(k("shared/")), (std::vector<std::string>{k("shared/a"), k("shared/b")}));
  other->del(k("shared/a"));
  EXPECT_FALSE(s().get(k("shared/a")));
}

INSTANTIATE_TEST_SUITE_P(Env, ObjectConformance, ::testing::Values(backend_from_env()), test_name);

}  // namespace
