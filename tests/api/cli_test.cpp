// The `ork` CLI run as a binary against a real `ork-host serve`: every verb, --json, exit codes, config resolution,
// auth, live --wait and --follow, and `dev` re-deploying an edited workflow.
#include <gtest/gtest.h>

#include <sstream>

#include "api/api_support.hpp"

namespace {

using namespace ork::test;
using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kOrk = std::string(ORK_BINARY_DIR) + "/bin/ork";

// A port nothing listens on right now (bound to 0, read back, released).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free port");
  ::close(fd);
  return ntohs(a.sin_port);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Server>(dir_ / "home");
    wf_ = dir_ / "wf.yaml";
    write_file(wf_, R"(name: cli_demo
tasks:
  hello:
    command: |
      echo '{"greeting": "hi"}'
  slow:
    depends_on: [hello]
    command: |
      echo "line one"; sleep 0.5; echo "line two"; [ -e )" +
                        dir_ / "ok" + R"( ] || exit 3
)");
  }
  CmdResult ork(const std::string& args, const std::string& env = "") {
    return run("env HOME=" + dir_.str() + " " + env + " " + kOrk +
               " --server 127.0.0.1:" + std::to_string(server_->port()) + " " + args + " 2>&1");
  }
  json ork_json(const std::string& args) {
    auto r = ork(args + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    json j = json::parse(r.output, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.output;
    return j;
  }
  TempDir dir_;
  std::string wf_;
  std::unique_ptr<Server> server_;
};

TEST_F(CliTest, DeployRunWaitStatusLogsRetryAndDelete) {
  auto r = ork("workflow deploy " + wf_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("deployed cli_demo"), std::string::npos) << r.output;
  EXPECT_NE(ork("workflow list").output.find("cli_demo"), std::string::npos);

  // --wait follows the run live and exits 1 when it fails.
  r = ork("run start cli_demo --wait --input day=2024-01-15 --input n=3");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("slow: failed"), std::string::npos) << r.output;
  json runs = ork_json("run list --workflow cli_demo");
  ASSERT_EQ(runs["runs"].size(), 1u);
  std::string id = runs["runs"][0]["id"];
  EXPECT_EQ(runs["runs"][0]["status"], "failed");
  EXPECT_EQ(runs["runs"][0]["input"], json({{"day", "2024-01-15"}, {"n", 3}}));

  r = ork("run status " + id);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("hello  success"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("command exited with code 3"), std::string::npos) << r.output;
  r = ork("run logs " + id + " --task slow");
  EXPECT_NE(r.output.find("line two"), std::string::npos) << r.output;
  EXPECT_NE(ork("run logs " + id).output.find("=== hello"), std::string::npos);

  // Retry once the task can pass: --wait exits 0 and the log of the latest attempt follows live.
  write_file(dir_ / "ok", "");
  r = ork("run retry " + id + " --wait");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  json st = ork_json("run status " + id);
  EXPECT_EQ(st["run"]["status"], "success");
  r = ork("run logs " + id + " --task slow --follow");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("line one"), std::string::npos) << r.output;

  EXPECT_EQ(ork("workflow delete cli_demo").exit_code, 0);
  EXPECT_EQ(ork("workflow status cli_demo").exit_code, 4);
}

TEST_F(CliTest, CancelAWaitingRun) {
  write_file(wf_, "name: long\ntasks:\n  sleepy:\n    command: sleep 30\n");
  ASSERT_EQ(ork("workflow deploy " + wf_).exit_code, 0);
  auto r = ork("run start long");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string id = r.output.substr(0, r.output.find('\n'));
  ASSERT_TRUE(eventually([&] { return ork_json("run status " + id)["tasks"][0]["status"] == "running"; }, 20s));
  EXPECT_EQ(ork("run cancel " + id).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return ork_json("run status " + id)["run"]["status"] == "cancelled"; }, 20s));
  EXPECT_EQ(ork("run cancel " + id).exit_code, 4);  // 409 run_finished
}

TEST_F(CliTest, SchemaExportRunsLocally) {
  std::string out = dir_ / "schema.json";
  auto r = run(kOrk + " schema export " + std::string(ORK_SOURCE_DIR) + "/examples/typed-contracts/workflow.yaml -o " +
               out + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json schema = json::parse(read_file(out), nullptr, false);
  ASSERT_TRUE(schema.is_object()) << read_file(out);
  EXPECT_TRUE(schema.contains("$defs"));
  EXPECT_FALSE(schema["$defs"].empty());
}

TEST_F(CliTest, ErrorsAndExitCodes) {
  write_file(dir_ / "bad.yaml", "name: bad\ntasks:\n  a:\n    depends_on: [nope]\n    command: 'true'\n");
  auto r = ork("workflow deploy " + dir_ / "bad.yaml");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("invalid_workflow"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("line 4"), std::string::npos) << r.output;
  EXPECT_EQ(ork("run status 00000000-0000-0000-0000-000000000000").exit_code, 4);
  EXPECT_EQ(ork("run start").exit_code, 2);                    // usage
  EXPECT_EQ(ork("run start x --input novalue").exit_code, 2);  // usage
  auto down = run("env HOME=" + dir_.str() + " " + kOrk + " --server 127.0.0.1:1 run list 2>&1");
  EXPECT_EQ(down.exit_code, 3) << down.output;  // unreachable
  EXPECT_NE(down.output.find("cannot reach"), std::string::npos) << down.output;
}

TEST_F(CliTest, ServerAndKeyFromTheConfigFileAndAuthErrors) {
  // A key exists now: requests without one are refused (exit 5), with it they work.
  auto created = run("env ORK_HOME=" + server_->home() + " " + kHost + " apikey create --scope read 2>/dev/null");
  ASSERT_EQ(created.exit_code, 0) << created.output;
  std::string key = created.output.substr(0, created.output.find_first_of(" \n"));
  EXPECT_EQ(ork("run list").exit_code, 5);
  EXPECT_EQ(ork("run list", "ORK_API_KEY=" + key).exit_code, 0);
  EXPECT_EQ(ork("workflow deploy " + wf_, "ORK_API_KEY=" + key).exit_code, 5);  // read scope cannot deploy
  fs::create_directories(dir_ / ".config/ork");
  write_file(dir_ / ".config/ork/config.yaml",
             "server: http://127.0.0.1:" + std::to_string(server_->port()) + "\napi_key: " + key + "\n");
  auto r = run("env HOME=" + dir_.str() + " " + kOrk + " run list --json 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(json::parse(r.output, nullptr, false).contains("runs")) << r.output;
}

TEST_F(CliTest, DevRedeploysAnEditedWorkflow) {
  server_.reset();  // `ork dev` runs its own server
  int port = free_port();
  write_file(wf_, "name: devwf\ntasks:\n  a:\n    command: echo one\n");
  Process dev("exec env HOME=" + dir_.str() + " ORK_HOME=" + (dir_ / "devhome") + " " + kOrk + " dev " + wf_ +
                  " --port " + std::to_string(port),
              dir_ / "dev.log");
  auto version = [&]() -> std::string {
    auto r = run(kOrk + " --server 127.0.0.1:" + std::to_string(port) + " workflow status devwf --json 2>/dev/null");
    json j = json::parse(r.output, nullptr, false);
    return j.is_object() && j.contains("workflow") ? j["workflow"].value("version", "") : "";
  };
  ASSERT_TRUE(eventually([&] { return !version().empty(); }, 30s)) << read_file(dir_ / "dev.log");
  ASSERT_TRUE(eventually([&] { return read_file(dir_ / "dev.log").find("watching") != std::string::npos; }, 30s));
  std::string v1 = version();
  write_file(wf_, "name: devwf\ntasks:\n  a:\n    command: echo two\n");
  EXPECT_TRUE(eventually([&] { return !version().empty() && version() != v1; }, 20s)) << read_file(dir_ / "dev.log");
  dev.kill_group(SIGINT);
  dev.wait(10s);
}

TEST(CliDocs, EveryCommandAndOptionOfHelpIsInDocsCliMd) {
  std::string doc = read_file(std::string(ORK_SOURCE_DIR) + "/docs/cli.md");
  ASSERT_FALSE(doc.empty());
  for (std::string cmd :
       {"", "workflow", "workflow deploy", "workflow list", "workflow status", "workflow delete", "run", "run start",
        "run status", "run list", "run logs", "run cancel", "run retry", "schema", "schema export", "dev"}) {
    auto r = run(kOrk + " " + cmd + " --help 2>&1");
    ASSERT_EQ(r.exit_code, 0) << cmd << ": " << r.output;
    if (!cmd.empty()) {
      EXPECT_NE(doc.find("ork " + cmd.substr(0, cmd.find(' '))), std::string::npos) << cmd;
    }
    std::istringstream lines(r.output);
    std::string line;
    bool subcommands = false;
    while (std::getline(lines, line)) {
      if (line.rfind("Subcommands:", 0) == 0) subcommands = true;
      size_t dash = line.find("--");
      if (line.rfind("  ", 0) == 0 && dash != std::string::npos && line.find("--help") == std::string::npos) {
        std::string opt = line.substr(dash, line.find_first_of(" ,", dash) - dash);
        EXPECT_NE(doc.find(opt), std::string::npos) << "`ork " << cmd << "` option " << opt << " is not in docs/cli.md";
      } else if (subcommands && line.rfind("  ", 0) == 0) {
        std::string sub = line.substr(2, line.find(' ', 2) - 2);
        EXPECT_NE(doc.find(cmd.empty() ? "ork " + sub : cmd + " " + sub), std::string::npos)
            << "`ork " << cmd << " " << sub << "` is not in docs/cli.md";
      }
    }
  }
}

}  // namespace
