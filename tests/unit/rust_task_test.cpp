// The Rust task SDK (sdk/rust) and ork-worker's `rust` runtime: real cargo builds (offline, Debian's crates) and the
// real worker against object-local. One cache per test binary run, so each task is built once here; the cargo target
// dir lives in the build folder, so the dependencies (serde, syn, ...) are built once per build folder.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "support/plugin_support.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kWorker = ORK_BINARY_DIR "/bin/ork-worker";

// Typed Input/Output with Context, TaskError with details (n < 0), a std error through `?` (bad `text`).
const char* kTask = R"(use ork::{task, Context, TaskError};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input { url: String, #[serde(default)] n: i64, #[serde(default)] text: Option<String> }

#[derive(Serialize)]
struct Output { total: i64, url: String, attempt: u32, index: Option<u32>, task: String }

#[task]
fn double(ctx: &Context, input: Input) -> ork::Result<Output> {
    ctx.log.info(format!("hello from {}", ctx.task_name));
    ctx.metrics.record("n", input.n as f64, &[]);
    if input.n < 0 {
        return Err(TaskError::with_details("negative n", serde_json::json!({"n": input.n, "hint": "use n >= 0"})));
    }
    let extra: i64 = match input.text { Some(t) => t.parse()?, None => 0 };
    Ok(Output { total: input.n * 2 + extra, url: input.url, attempt: ctx.attempt, index: ctx.parallel_index,
                task: ctx.task_name.clone() })
}
)";

struct Result {
  int exit_code = -1;
  json status;
  std::optional<json> output;
  std::string log;
};

class RustTaskTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cache_ = fs::temp_directory_path() / ("ork-rust-cache-" + ork::new_uuid());
    fs::create_directories(cache_);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(cache_, ec);
  }
  void SetUp() override {
    ::setenv("ORK_PLUGIN_PATH", ORK_BINARY_DIR "/lib", 0);
    root_ = fs::temp_directory_path() / ("ork-rust-test-" + ork::new_uuid());
    fs::create_directories(root_ / "store");
    fs::create_directories(root_ / "project" / "tasks");
    store_config_ = {{"root", (root_ / "store").string()}};
    store_ = ork::load_plugin<ork::ObjectProxy>("object", "ork-object-local", store_config_);
    std::ofstream(root_ / "project" / "tasks" / "double.rs") << kTask;
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  static std::vector<fs::path> binaries() {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(cache_ / "bin", ec)) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }

  struct Started {
    pid_t pid = -1;
    json spec;
  };

  // Starts ork-worker on a rust spec with `fields` on top; the suite's ORK_RUST_CACHE, the build folder's target dir.
  Started start(const json& fields) {
    std::string run = ork::new_uuid(), task = ork::new_uuid(), dir = "runs/" + run + "/" + task + "/";
    json spec = {{"task_id", task},
                 {"run_id", run},
                 {"task_name", "doubler"},
                 {"workflow_name", "wf"},
                 {"executor", "rust"},
                 {"file", "tasks/double.rs"},
                 {"base_dir", (root_ / "project").string()},
                 {"input", {{"url", "u"}, {"n", 21}}},
                 {"env", json::object()},
                 {"timeout_seconds", 240},
                 {"parallel_index", 3},
                 {"parallel_count", 4},
                 {"attempt", 2},
                 {"output_key", dir + "output.json"},
                 {"status_key", dir + "status.json"},
                 {"log_key", dir + "attempt-2.log"}};
    if (fields.is_object()) spec.update(fields);
    const std::string key = dir + "spec.json";
    store_->put_json(key, spec);

    std::vector<std::string> kv;
    for (char** e = environ; *e; ++e) kv.emplace_back(*e);
    kv.push_back("ORK_TASK_SPEC_PATH=" + key);
    kv.push_back("ORK_OBJECT_STORE=" + json{{"library", "ork-object-local"}, {"config", store_config_}}.dump());
    kv.push_back("ORK_RUST_CACHE=" + cache_.string());
    kv.push_back("CARGO_TARGET_DIR=" ORK_BINARY_DIR "/rust-task-target");
    std::vector<char*> envp, argv{const_cast<char*>(kWorker.c_str()), nullptr};
    for (auto& s : kv) envp.push_back(s.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    Started s{-1, spec};
    int rc = posix_spawn(&s.pid, kWorker.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    EXPECT_EQ(rc, 0) << std::strerror(rc);
    return s;
  }

  Result wait(const Started& s) {
    Result r;
    if (s.pid < 0) return r;
    int st = 0;
    ::waitpid(s.pid, &st, 0);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.status = store_->get_json(s.spec["status_key"]).value_or(json());
    r.output = ork::test::attempt_output(*store_, r.status, s.spec["output_key"]);
    r.log = store_->get(s.spec["log_key"]).value_or("");
    return r;
  }

  Result run(const json& fields) { return wait(start(fields)); }

  static fs::path cache_;
  fs::path root_;
  json store_config_;
  std::unique_ptr<ork::ObjectProxy> store_;
};

fs::path RustTaskTest::cache_;

#define EXPECT_FAILED(r, type)                                                                \
  do {                                                                                        \
    EXPECT_EQ((r).exit_code, 1) << (r).log;                                                   \
    EXPECT_EQ((r).status.value("status", ""), "failed") << (r).status.dump();                 \
    EXPECT_EQ((r).status["error"].value("type", ""), std::string(type)) << (r).status.dump(); \
  } while (0)

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST_F(RustTaskTest, SingleFileBuildsOnceRunsWithContextThenHitsTheCache) {
  Result r = run(json::object());
  ASSERT_EQ(r.exit_code, 0) << r.log << r.status.dump();
  EXPECT_EQ(r.status.value("status", ""), "success");
  ASSERT_TRUE(r.output);
  EXPECT_EQ(*r.output, json({{"total", 42}, {"url", "u"}, {"attempt", 2}, {"index", 3}, {"task", "doubler"}}));
  EXPECT_NE(r.log.find("rust: building tasks/double.rs"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("[info] hello from doubler"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("ORK_METRIC {"), std::string::npos) << r.log;

  const auto bins = binaries();
  ASSERT_EQ(bins.size(), 1u);
  EXPECT_EQ(bins[0].filename().string().rfind("double-", 0), 0u) << bins[0];
  const auto mtime = fs::last_write_time(bins[0]);

  Result again = run({{"input", {{"url", "v"}, {"n", 5}, {"text", "1"}}}, {"parallel_index", nullptr}});
  ASSERT_EQ(again.exit_code, 0) << again.log;
  ASSERT_TRUE(again.output);
  EXPECT_EQ((*again.output)["total"], 11);
  EXPECT_EQ((*again.output)["index"], nullptr) << "a null parallel_index is None";
  EXPECT_NE(again.log.find("rust: cached"), std::string::npos) << again.log;
  EXPECT_EQ(again.log.find("rust: building"), std::string::npos) << again.log;
  EXPECT_EQ(binaries(), bins);
  EXPECT_EQ(fs::last_write_time(bins[0]), mtime);

  // Task failures reuse the same binary.
  Result te = run({{"input", {{"url", "w"}, {"n", -3}}}});
  EXPECT_FAILED(te, "task_error");
  EXPECT_EQ(te.status["error"]["message"], "negative n");
  EXPECT_EQ(te.status["error"]["details"], json({{"n", -3}, {"hint", "use n >= 0"}}));
  EXPECT_FALSE(te.output);

  Result ex = run({{"input", {{"url", "w"}, {"text", "x1"}}}});
  EXPECT_FAILED(ex, "exception");
  EXPECT_EQ(ex.status["error"]["message"], "invalid digit found in string");

  for (const json& bad : {json{{"url", 7}}, json{{"n", 1}}}) {
    Result b = run({{"input", bad}});
    EXPECT_FAILED(b, "input_validation");
    EXPECT_NE(b.status["error"].value("message", "").find("invalid input"), std::string::npos) << b.status.dump();
    EXPECT_NE(b.log.find("rust: cached"), std::string::npos) << b.log;
  }
  EXPECT_EQ(binaries(), bins) << "no rebuild for any of these runs";
}

TEST_F(RustTaskTest, CompileErrorFailsWithTheCompilerMessage) {
  std::ofstream(root_ / "project" / "tasks" / "broken.rs")
      << "#[ork::task]\nfn run(x: i64) -> i64 { undefined_name + x }\n";
  const auto before = binaries();
  Result r = run({{"file", "tasks/broken.rs"}});
  EXPECT_FAILED(r, "compile_error");
  EXPECT_NE(r.status["error"]["details"].value("stderr_tail", "").find("undefined_name"), std::string::npos)
      << r.status.dump();
  EXPECT_NE(r.log.find("cannot find value `undefined_name`"), std::string::npos) << "cargo's output is in the log";
  EXPECT_FALSE(r.output);
  EXPECT_EQ(binaries(), before) << "nothing is cached for a failed build";
}

// A crate with a library module and two binaries: `file:` names a binary's source, or the crate plus `function:`.
TEST_F(RustTaskTest, CrateBinariesByFileOrFunction) {
  const fs::path c = root_ / "project" / "etl";
  fs::create_directories(c / "src" / "bin");
  std::ofstream(c / "Cargo.toml") << "[package]\nname = \"etl\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n"
                                     "[dependencies]\nork = \"0.1\"\nserde = { version = \"1\", features = "
                                     "[\"derive\"] }\n";
  std::ofstream(c / "src" / "lib.rs") << "pub fn shout(s: &str) -> String { s.to_uppercase() }\n";
  std::ofstream(c / "src" / "bin" / "shout.rs")
      << "#[ork::task]\nfn main(input: String) -> ork::Result<String> { Ok(etl::shout(&input)) }\n";
  std::ofstream(c / "src" / "bin" / "count.rs")
      << "#[ork::task]\nfn count(ctx: ork::Context, input: Vec<i32>) -> (usize, String) {\n"
         "    (input.len(), ctx.workflow_name)\n}\n";

  Result s = run({{"file", "etl/src/bin/shout.rs"}, {"input", "quiet"}});
  ASSERT_EQ(s.exit_code, 0) << s.log << s.status.dump();
  EXPECT_EQ(s.output, json("QUIET"));

  Result n = run({{"file", "etl"}, {"function", "count"}, {"input", {1, 2, 3}}});
  ASSERT_EQ(n.exit_code, 0) << n.log << n.status.dump();
  EXPECT_EQ(n.output, json({3, "wf"}));

  Result again = run({{"file", "etl/Cargo.toml"}, {"function", "count"}, {"input", json::array()}});
  ASSERT_EQ(again.exit_code, 0) << again.log;
  EXPECT_EQ(again.output, json({0, "wf"}));

  Result both = run({{"file", "etl"}, {"input", json::array()}});
  EXPECT_FAILED(both, "spec_error");
  EXPECT_NE(both.status["error"].value("message", "").find("several binaries"), std::string::npos)
      << both.status.dump();

  Result none = run({{"file", "etl"}, {"function", "nope"}});
  EXPECT_FAILED(none, "spec_error");
  EXPECT_NE(none.status["error"].value("message", "").find("no binary 'nope'"), std::string::npos)
      << none.status.dump();

  // An edit anywhere in the crate (here the library) is a new build.
  std::ofstream(c / "src" / "lib.rs") << "pub fn shout(s: &str) -> String { s.to_uppercase() + \"!\" }\n";
  Result edited = run({{"file", "etl/src/bin/shout.rs"}, {"input", "quiet"}});
  ASSERT_EQ(edited.exit_code, 0) << edited.log;
  EXPECT_EQ(edited.output, json("QUIET!"));
  EXPECT_NE(edited.log.find("rust: building"), std::string::npos) << edited.log;
}

TEST_F(RustTaskTest, ConcurrentFirstBuildsShareOneBinary) {
  std::ofstream(root_ / "project" / "tasks" / "race.rs") << "#[ork::task]\nfn race(n: u64) -> u64 { n + 1 }\n";
  std::vector<Started> started;
  for (int i = 0; i < 3; ++i) started.push_back(start({{"file", "tasks/race.rs"}, {"input", i}}));
  int built = 0;
  for (int i = 0; i < 3; ++i) {
    Result r = wait(started[i]);
    ASSERT_EQ(r.exit_code, 0) << r.log << r.status.dump();
    EXPECT_EQ(r.output, json(i + 1));
    built += static_cast<int>(count(r.log, "rust: building"));
  }
  EXPECT_EQ(built, 1) << "one worker builds, the others wait for it and reuse the binary";
  size_t race = 0;
  for (const auto& b : binaries()) {
    EXPECT_EQ(b.filename().string().find(".tmp-"), std::string::npos) << b;
    race += b.filename().string().rfind("race-", 0) == 0;
  }
  EXPECT_EQ(race, 1u);
}

// While another build holds the target dir's lock, a worker waits, within its timeout, and builds nothing.
TEST_F(RustTaskTest, WaitingForTheBuildLockRespectsTheTimeout) {
  const fs::path target = ORK_BINARY_DIR "/rust-task-target";
  fs::create_directories(target);
  const int fd = ::open((target / ".ork-build.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  std::ofstream(root_ / "project" / "tasks" / "locked.rs") << "#[ork::task]\nfn locked() -> u8 { 1 }\n";
  Result r = run({{"file", "tasks/locked.rs"}, {"timeout_seconds", 1}});
  ::close(fd);
  EXPECT_FAILED(r, "timeout");
  EXPECT_NE(r.status["error"].value("message", "").find("waiting for the build lock"), std::string::npos)
      << r.status.dump();
  EXPECT_NE(r.log.find("rust: waiting for another build"), std::string::npos) << r.log;
  EXPECT_EQ(r.log.find("rust: building"), std::string::npos) << r.log;
}

TEST_F(RustTaskTest, SpecErrors) {
  Result missing = run({{"file", "tasks/nope.rs"}});
  EXPECT_FAILED(missing, "spec_error");
  Result none = run({{"file", nullptr}});
  EXPECT_FAILED(none, "spec_error");
  fs::create_directories(root_ / "project" / "empty");
  Result no_toml = run({{"file", "empty"}});
  EXPECT_FAILED(no_toml, "spec_error");
  EXPECT_NE(no_toml.status["error"].value("message", "").find("no Cargo.toml"), std::string::npos);
}

}  // namespace
