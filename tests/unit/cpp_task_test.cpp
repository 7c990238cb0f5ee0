// The C++ task SDK (ork/task.hpp) and ork-worker's `cpp` runtime: the real worker against object-local in a temp dir.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "support/plugin_support.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kWorker = ORK_BINARY_DIR "/bin/ork-worker";

// Input/Output, Context, TaskError (n < 0) and a plain exception (n == 0).
const char* kTask = R"(#include <ork/task.hpp>
#include <stdexcept>
struct Input { std::string url; int n = 1; };
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Input, url, n)
struct Output { int total; std::string url; int attempt; int index; std::string task; };
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Output, total, url, attempt, index, task)
Output run(const Input& in, const ork::Context& ctx) {
  ctx.log.info("hello from " + ctx.task_name);
  ctx.metrics.record("n", in.n);
  if (in.n < 0) throw ork::TaskError("negative n", {{"n", in.n}});
  if (in.n == 0) throw std::runtime_error("zero");
  return {in.n * 2, in.url, ctx.attempt, ctx.parallel_index.value_or(-1), ctx.task_name};
}
ORK_TASK(run)
)";

struct Result {
  int exit_code = -1;
  json status;
  std::optional<json> output;
  std::string log;
};

class CppTaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("ORK_PLUGIN_PATH", ORK_BINARY_DIR "/lib", 0);
    root_ = fs::temp_directory_path() / ("ork-cpp-test-" + ork::new_uuid());
    fs::create_directories(root_ / "store");
    fs::create_directories(root_ / "project" / "tasks");
    store_config_ = {{"root", (root_ / "store").string()}};
    store_ = ork::load_plugin<ork::ObjectProxy>("object", "ork-object-local", store_config_);
    std::ofstream(root_ / "project" / "tasks" / "t.cpp") << kTask;
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  fs::path cache() const { return root_ / "cache"; }

  // Runs ork-worker on a cpp spec with `fields` on top; ORK_CPP_CACHE is the test's own cache dir.
  Result run(const json& fields) {
    std::string run = ork::new_uuid(), task = ork::new_uuid(), dir = "runs/" + run + "/" + task + "/";
    json spec = {{"task_id", task},
                 {"run_id", run},
                 {"task_name", "doubler"},
                 {"workflow_name", "wf"},
                 {"executor", "cpp"},
                 {"file", "tasks/t.cpp"},
                 {"base_dir", (root_ / "project").string()},
                 {"input", {{"url", "u"}, {"n", 21}}},
                 {"env", json::object()},
                 {"timeout_seconds", 120},
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
    kv.push_back("ORK_CPP_CACHE=" + cache().string());
    std::vector<char*> envp, argv{const_cast<char*>(kWorker.c_str()), nullptr};
    for (auto& s : kv) envp.push_back(s.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, kWorker.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    Result r;
    EXPECT_EQ(rc, 0) << std::strerror(rc);
    if (rc != 0) return r;
    int st = 0;
    ::waitpid(pid, &st, 0);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.status = store_->get_json(spec["status_key"]).value_or(json());
    r.output = ork::test::attempt_output(*store_, r.status, spec["output_key"]);
    r.log = store_->get(spec["log_key"]).value_or("");
    return r;
  }

  fs::path root_;
  json store_config_;
  std::unique_ptr<ork::ObjectProxy> store_;
};

#define EXPECT_FAILED(r, type)                                                                \
  do {                                                                                        \
    EXPECT_EQ((r).exit_code, 1) << (r).log;                                                   \
    EXPECT_EQ((r).status.value("status", ""), "failed") << (r).status.dump();                 \
    EXPECT_EQ((r).status["error"].value("type", ""), std::string(type)) << (r).status.dump(); \
  } while (0)

TEST_F(CppTaskTest, CompilesOnceRunsWithContextThenHitsTheCache) {
  Result r = run(json::object());
  ASSERT_EQ(r.exit_code, 0) << r.log << r.status.dump();
  EXPECT_EQ(r.status.value("status", ""), "success");
  ASSERT_TRUE(r.output);
  EXPECT_EQ(*r.output, json({{"total", 42}, {"url", "u"}, {"attempt", 2}, {"index", 3}, {"task", "doubler"}}));
  EXPECT_NE(r.log.find("cpp: compiling"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("[info] hello from doubler"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("ORK_METRIC {"), std::string::npos) << r.log;

  std::vector<fs::path> bins;
  for (const auto& e : fs::directory_iterator(cache())) bins.push_back(e.path());
  ASSERT_EQ(bins.size(), 1u);
  const auto mtime = fs::last_write_time(bins[0]);

  Result again = run({{"input", {{"url", "v"}, {"n", 5}}}, {"parallel_index", nullptr}});
  ASSERT_EQ(again.exit_code, 0) << again.log;
  ASSERT_TRUE(again.output);
  EXPECT_EQ((*again.output)["total"], 10);
  EXPECT_EQ((*again.output)["index"], -1) << "a null parallel_index is std::nullopt";
  EXPECT_NE(again.log.find("cpp: cached"), std::string::npos) << again.log;
  EXPECT_EQ(again.log.find("cpp: compiling"), std::string::npos) << again.log;
  EXPECT_EQ(fs::last_write_time(bins[0]), mtime);

  // Task failures reuse the same binary.
  Result te = run({{"input", {{"n", -3}}}});
  EXPECT_FAILED(te, "task_error");
  EXPECT_EQ(te.status["error"]["message"], "negative n");
  EXPECT_EQ(te.status["error"]["details"], json({{"n", -3}}));

  Result ex = run({{"input", {{"n", 0}}}});
  EXPECT_FAILED(ex, "exception");
  EXPECT_EQ(ex.status["error"]["message"], "zero");

  Result bad = run({{"input", {{"url", 7}}}});
  EXPECT_FAILED(bad, "input_validation");
  EXPECT_NE(bad.status["error"].value("message", "").find("invalid input"), std::string::npos) << bad.status.dump();
  EXPECT_NE(bad.log.find("cpp: cached"), std::string::npos) << bad.log;
}

TEST_F(CppTaskTest, CompileErrorFailsWithTheCompilerMessage) {
  std::ofstream(root_ / "project" / "tasks" / "broken.cpp")
      << "#include <ork/task.hpp>\nint run(const int& x) { return undefined_name + x; }\nORK_TASK(run)\n";
  Result r = run({{"file", "tasks/broken.cpp"}});
  EXPECT_FAILED(r, "compile_error");
  EXPECT_NE(r.status["error"]["details"].value("stderr_tail", "").find("undefined_name"), std::string::npos)
      << r.status.dump();
  EXPECT_NE(r.log.find("undefined_name"), std::string::npos) << "compiler output is in the task log";
  EXPECT_FALSE(r.output);
  bool any = fs::exists(cache()) && !fs::is_empty(cache());
  EXPECT_FALSE(any) << "nothing is cached for a failed compile";
}

TEST_F(CppTaskTest, MissingFileIsASpecError) {
  Result r = run({{"file", "tasks/nope.cpp"}});
  EXPECT_FAILED(r, "spec_error");
}

}  // namespace
