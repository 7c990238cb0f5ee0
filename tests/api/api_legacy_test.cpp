// The API with a state plugin built against ABI 1.2 (no list_runs_page): run lists still page, by offset cursors.
#include <gtest/gtest.h>

#include "api/api_support.hpp"

using namespace ork::test;

namespace {

TEST(ApiLegacyState, RunListsPageByOffsetWithAnAbi12StatePlugin) {
  TempDir dir;
  std::string home = dir / "home", lib = std::string(ORK_BINARY_DIR) + "/lib/";
  write_file(home + "/plugins.yaml", R"(plugins:
  - kind: state
    name: old
    library: )" + lib + R"(libork-test-state-abi12.so
    config: {library: )" + lib + R"(libork-state-sqlite.so, config: {path: "${CONFIG_DIR}/state.db"}}
  - {kind: object, name: local, library: ork-object-local, config: {root: "${CONFIG_DIR}/objects"}}
  - {kind: executor, name: local, library: ork-exec-subprocess, default: true}
)");
  auto plugins = run("env ORK_HOME=" + home + " " + kHost + " plugins 2>&1");
  ASSERT_EQ(plugins.exit_code, 0) << plugins.output;
  EXPECT_NE(plugins.output.find("abi12-shim"), std::string::npos) << plugins.output;
  EXPECT_NE(plugins.output.find(" 1.2 "), std::string::npos) << plugins.output;

  Server s(home);
  auto d = s.call("POST", "/api/v1/workflows", "name: old\ntasks:\n  a:\n    command: \"true\"\n",
                  {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(d.status, 201) << d.body;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(s.post("/api/v1/workflows/old/runs").j()["run"]["id"]);
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    auto r = s.get("/api/v1/runs?limit=2&workflow=old" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r.body;
    for (const auto& run : r.j()["runs"]) seen.push_back(run["id"]);
    if (r.j()["next_cursor"].is_null()) break;
    cursor = r.j()["next_cursor"];
  }
  EXPECT_EQ(seen, std::vector<std::string>(ids.rbegin(), ids.rend()));
  EXPECT_NE(s.log().find("has no list_runs_page: run lists page by offset"), std::string::npos) << s.log();
  // A keyset cursor (from a newer plugin) is refused clearly rather than misread.
  EXPECT_EQ(s.get("/api/v1/runs?cursor=eyJjIjoiMjAyNi0wMS0wMVQwMDowMDowMC4wMDBaIiwiaSI6IngifQ").code(),
            "invalid_cursor");
}

}  // namespace
