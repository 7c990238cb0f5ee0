// A third party builds an executor plugin out of tree against the installed SDK; ork-host loads and uses it
// from plugins.yaml without being rebuilt.
#include <gtest/gtest.h>

#include "support/test_support.hpp"

using namespace ork::test;

TEST(ThirdPartyPlugin, BuiltAgainstInstalledSdkAndUsedFromPluginsYaml) {
  TempDir dir;
  std::string prefix = dir / "prefix", build = dir / "build";
  auto inst = run("cmake --install " + std::string(ORK_BINARY_DIR) + " --prefix " + prefix + " 2>&1");
  ASSERT_EQ(inst.exit_code, 0) << inst.output;
  ASSERT_TRUE(fs::exists(prefix + "/include/ork/plugin.hpp"));
  ASSERT_TRUE(fs::exists(prefix + "/lib/cmake/OrkSDK/OrkSDKConfig.cmake"));
  // Configure with nothing from the source tree: only the installed prefix.
  auto cfg = run("cmake -S " + std::string(ORK_SOURCE_DIR) + "/examples/third-party-executor -B " + build +
                 " -DCMAKE_PREFIX_PATH=" + prefix + " -DCMAKE_BUILD_TYPE=Release 2>&1 && cmake --build " + build +
                 " -j2 2>&1");
  ASSERT_EQ(cfg.exit_code, 0) << cfg.output;
  std::string so = build + "/libork-exec-hello.so";
  ASSERT_TRUE(fs::exists(so));

  std::string marker = dir / "hello.log";
  write_file(dir / "plugins.yaml",
             "plugins:\n"
             "  - {kind: state, name: sqlite, library: ork-state-sqlite, config: {path: '${CONFIG_DIR}/state.db'}}\n"
             "  - {kind: object, name: local, library: ork-object-local, config: {root: '${CONFIG_DIR}/objects'}}\n"
             "  - {kind: executor, name: local, library: ork-exec-subprocess, default: true}\n"
             "  - {kind: executor, name: hello, library: " +
                 so + ", config: {marker_file: " + marker + "}}\n");
  write_file(dir / "wf.yaml",
             "name: custom\ntasks:\n"
             "  on_local:\n    command: |\n      echo '{\"where\": \"local\"}'\n"
             "  on_hello:\n    worker: hello\n    depends_on: [on_local]\n    command: cat\n");
  std::string host = std::string(ORK_BINARY_DIR) + "/bin/ork-host --plugins " + (dir / "plugins.yaml");
  auto plugins = run(host + " plugins 2>&1");
  ASSERT_EQ(plugins.exit_code, 0) << plugins.output;
  EXPECT_NE(plugins.output.find("hello"), std::string::npos) << plugins.output;
  EXPECT_NE(plugins.output.find("1.0.0"), std::string::npos) << plugins.output;
  auto r = run(host + " run " + (dir / "wf.yaml") + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("on_hello success"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(marker), "on_hello\n");
}
