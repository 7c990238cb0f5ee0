// ork-object-local through the C ABI: CRUD, binary and large objects, listing, if_none_match races, key escapes and
// atomic rewrites.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "loader/plugin_loader.hpp"

namespace {

namespace fs = std::filesystem;
using ork::json;

class ObjectLocalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ork-object-local-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    root_ = dir_ / "root";
    store_ = ork::load_plugin<ork::ObjectProxy>("object", "ork-object-local", json{{"root", root_.string()}});
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // The ork_status of a failing call, or ORK_OK.
  template <class F>
  static int code_of(F&& f) {
    try {
      f();
      return ORK_OK;
    } catch (const ork::PluginCallError& e) {
      return e.code();
    }
  }

  fs::path dir_, root_;
  std::unique_ptr<ork::ObjectProxy> store_;
};

TEST_F(ObjectLocalTest, RootIsCreatedAndReported) {
  EXPECT_TRUE(fs::is_directory(root_));
  EXPECT_EQ(store_->plugin_name(), "local");
  EXPECT_FALSE(store_->version().empty());
}

TEST_F(ObjectLocalTest, MissingRootConfigFailsToLoad) {
  EXPECT_THROW(ork::load_plugin<ork::ObjectProxy>("object", "ork-object-local", json::object()), ork::PluginLoadError);
}

TEST_F(ObjectLocalTest, PutGetOverwriteDelete) {
  EXPECT_EQ(store_->get("runs/r1/t1/spec.json"), std::nullopt);
  store_->put("runs/r1/t1/spec.json", R"({"a":1})");
  EXPECT_EQ(store_->get("runs/r1/t1/spec.json"), std::optional<std::string>(R"({"a":1})"));
  store_->put("runs/r1/t1/spec.json", "second");
  EXPECT_EQ(store_->get("runs/r1/t1/spec.json"), std::optional<std::string>("second"));
  store_->put("empty", "");
  EXPECT_EQ(store_->get("empty"), std::optional<std::string>(""));
  store_->del("runs/r1/t1/spec.json");
  EXPECT_EQ(store_->get("runs/r1/t1/spec.json"), std::nullopt);
  EXPECT_NO_THROW(store_->del("runs/r1/t1/spec.json"));  // deleting a missing key is fine
  EXPECT_NO_THROW(store_->del("no/such/dir/key"));
  EXPECT_EQ(store_->get("runs"), std::nullopt);  // a directory of keys is not an object
  EXPECT_EQ(store_->get("empty/below"), std::nullopt);
}

TEST_F(ObjectLocalTest, JsonHelpers) {
  store_->put_json("runs/r/t/output.json", json{{"rows", 3}});
  EXPECT_EQ(store_->get_json("runs/r/t/output.json"), std::optional<json>(json{{"rows", 3}}));
}

TEST_F(ObjectLocalTest, BinaryDataWithNuls) {
  std::string bin;
  for (int i = 0; i < 1024; ++i) bin.push_back(static_cast<char>(i % 256));
  bin += std::string("\0\0\0end", 6);
  store_->put("bin/blob", bin);
  auto got = store_->get("bin/blob");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), bin.size());
  EXPECT_EQ(*got, bin);
}

TEST_F(ObjectLocalTest, LargeObject) {
  std::string big(20 * 1024 * 1024, '\0');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + (i / 4096) % 26);
  store_->put("big/object", big);
  auto got = store_->get("big/object");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), big.size());
  EXPECT_TRUE(*got == big);
}

TEST_F(ObjectLocalTest, UnicodeAndSpaceKeys) {
  const std::string key = "runs/données 2026/tâche 東京/spec file.json";
  store_->put(key, "unicode");
  EXPECT_EQ(store_->get(key), std::optional<std::string>("unicode"));
  EXPECT_EQ(store_->list("runs/données"), std::vector<std::string>{key});
  store_->del(key);
  EXPECT_EQ(store_->get(key), std::nullopt);
}

TEST_F(ObjectLocalTest, ListByPrefixSortedAndNested) {
  for (const char* k : {"runs/r2/t1/status.json", "runs/r1/t2/spec.json", "runs/r1/t1/spec.json",
                        "runs/r1/t1/logs/attempt-1.log", "runs/r10/t/spec.json", "other/x", "runs/r1/t1/status.json"})
    store_->put(k, "x");
  EXPECT_EQ(store_->list("runs/r1/"), (std::vector<std::string>{"runs/r1/t1/logs/attempt-1.log", "runs/r1/t1/spec.json",
                                                                "runs/r1/t1/status.json", "runs/r1/t2/spec.json"}));
  // A prefix is a string prefix, not only a directory.
  EXPECT_EQ(store_->list("runs/r1"),
            (std::vector<std::string>{"runs/r1/t1/logs/attempt-1.log", "runs/r1/t1/spec.json", "runs/r1/t1/status.json",
                                      "runs/r1/t2/spec.json", "runs/r10/t/spec.json"}));
  EXPECT_EQ(store_->list("runs/r1/t1/s"), (std::vector<std::string>{"runs/r1/t1/spec.json", "runs/r1/t1/status.json"}));
  auto all = store_->list("");
  EXPECT_EQ(all.size(), 7u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_EQ(all.front(), "other/x");
  EXPECT_TRUE(store_->list("missing/").empty());
  EXPECT_TRUE(store_->list("runs/r1/t1/spec.json/").empty());
}

TEST_F(ObjectLocalTest, ListSkipsTempFiles) {
  store_->put("d/real", "x");
  std::ofstream(root_ / "d" / ".ork-tmp-leftover") << "partial";
  EXPECT_EQ(store_->list("d/"), std::vector<std::string>{"d/real"});
  EXPECT_EQ(store_->list(""), std::vector<std::string>{"d/real"});
}

TEST_F(ObjectLocalTest, NoTempFilesLeftBehind) {
  for (int i = 0; i < 20; ++i) store_->put("k/obj", std::to_string(i));
  EXPECT_EQ(code_of([&] { store_->put("k/obj", "x", {{"if_none_match", true}}); }), ORK_ERR_CONFLICT);
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(root_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

TEST_F(ObjectLocalTest, IfNoneMatchConflicts) {
  store_->put("once", "first", {{"if_none_match", true}});
  EXPECT_EQ(code_of([&] { store_->put("once", "second", {{"if_none_match", true}}); }), ORK_ERR_CONFLICT);
  EXPECT_EQ(store_->get("once"), std::optional<std::string>("first"));
  store_->put("once", "forced");  // without the guard it overwrites
  EXPECT_EQ(store_->get("once"), std::optional<std::string>("forced"));
}

TEST_F(ObjectLocalTest, IfNoneMatchRaceHasExactlyOneWinner) {
  constexpr int kThreads = 8;
  for (int round = 0; round < 25; ++round) {
    std::string key = "race/" + std::to_string(round);
    std::atomic<int> wins{0}, conflicts{0}, winner{-1};
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        int c = code_of([&] { store_->put(key, "writer-" + std::to_string(t), {{"if_none_match", true}}); });
        if (c == ORK_OK) {
          ++wins;
          winner = t;
        } else if (c == ORK_ERR_CONFLICT) {
          ++conflicts;
        }
      });
    for (auto& th : threads) th.join();
    ASSERT_EQ(wins.load(), 1) << "round " << round;
    ASSERT_EQ(conflicts.load(), kThreads - 1);
    EXPECT_EQ(store_->get(key), std::optional<std::string>("writer-" + std::to_string(winner.load())));
  }
}

TEST_F(ObjectLocalTest, EscapingKeysAreRefused) {
  for (const std::string key : {"../x", "/etc/passwd", "a/../../x", "a/..", "..", "a//b", "a/", "/", "", "a/./b", ".",
                                "a\\b", "a/.ork-tmp-x"}) {
    EXPECT_EQ(code_of([&] { store_->put(key, "x"); }), ORK_ERR_INVALID) << "put " << key;
    EXPECT_EQ(code_of([&] { store_->get(key); }), ORK_ERR_INVALID) << "get " << key;
    EXPECT_EQ(code_of([&] { store_->del(key); }), ORK_ERR_INVALID) << "del " << key;
  }
  for (const std::string prefix : {"../", "/etc", "a/../../", "a//", "..", "a\\"})
    EXPECT_EQ(code_of([&] { store_->list(prefix); }), ORK_ERR_INVALID) << "list " << prefix;
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

TEST_F(ObjectLocalTest, SymlinkEscapeIsRefused) {
  fs::path outside = dir_ / "outside";
  fs::create_directories(outside);
  std::ofstream(outside / "secret") << "secret";
  fs::create_directory_symlink(outside, root_ / "evil");
  fs::create_symlink(outside / "secret", root_ / "leak");

  EXPECT_EQ(code_of([&] { store_->put("evil/new", "x"); }), ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] { store_->put("evil/sub/new", "x"); }), ORK_ERR_INVALID);
  EXPECT_FALSE(fs::exists(outside / "new"));
  EXPECT_FALSE(fs::exists(outside / "sub"));
  EXPECT_EQ(code_of([&] { store_->get("evil/secret"); }), ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] { store_->get("leak"); }), ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] { store_->del("evil/secret"); }), ORK_ERR_INVALID);
  EXPECT_EQ(code_of([&] { store_->list("evil/"); }), ORK_ERR_INVALID);
  EXPECT_TRUE(fs::exists(outside / "secret"));
  EXPECT_TRUE(store_->list("").empty());  // neither link is listed

  // A symlink that stays inside the root is followed.
  store_->put("real/obj", "inside");
  fs::create_directory_symlink(root_ / "real", root_ / "alias");
  EXPECT_EQ(store_->get("alias/obj"), std::optional<std::string>("inside"));
}

TEST_F(ObjectLocalTest, ReadersNeverSeePartialObjects) {
  constexpr size_t kSize = 5 * 1024 * 1024;
  const std::string a(kSize, 'a'), b(kSize, 'b');
  store_->put("atomic/obj", a);
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, bad{0};
  std::thread reader([&] {
    while (!done.load()) {
      auto v = store_->get("atomic/obj");
      ++reads;
      if (!v || v->size() != kSize || (*v != a && *v != b)) ++bad;
    }
  });
  for (int i = 0; i < 60; ++i) store_->put("atomic/obj", i % 2 ? a : b);
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
}

TEST_F(ObjectLocalTest, FsyncOption) {
  auto synced = ork::load_plugin<ork::ObjectProxy>("object", "ork-object-local",
                                                   json{{"root", (dir_ / "synced").string()}, {"fsync", true}});
  synced->put("a/b", "durable");
  EXPECT_EQ(synced->get("a/b"), std::optional<std::string>("durable"));
  synced->del("a/b");
  EXPECT_EQ(synced->get("a/b"), std::nullopt);
}

TEST_F(ObjectLocalTest, ObjectAndPrefixCollisions) {
  store_->put("p/file", "x");
  EXPECT_EQ(code_of([&] { store_->put("p/file/child", "y"); }), ORK_ERR_CONFLICT);
  EXPECT_EQ(code_of([&] { store_->put("p", "y"); }), ORK_ERR_CONFLICT);
  EXPECT_EQ(store_->get("p/file"), std::optional<std::string>("x"));
}

}  // namespace
