// The plugin ABI as the host sees it: version checks, missing symbols, older plugins, exceptions at the boundary.
#include <gtest/gtest.h>

#include "loader/plugin_loader.hpp"

using ork::json;

namespace {

std::string lib(const std::string& name) {
  return std::string(ORK_BINARY_DIR) + "/lib/libork-test-" + name + ".so";
}

std::string load_error(const std::string& kind, const std::string& library) {
  try {
    ork::load_plugin<ork::ExecutorProxy>(kind, library, json::object());
  } catch (const ork::PluginLoadError& e) {
    return e.what();
  }
  return "";
}

TEST(Abi, WrongMajorIsRefusedNamingBothVersionsAndTheFile) {
  std::string m = load_error("executor", lib("wrong-major"));
  EXPECT_NE(m.find("2.0"), std::string::npos) << m;
  EXPECT_NE(m.find("ABI " + std::to_string(ORK_ABI_MAJOR) + "." + std::to_string(ORK_ABI_MINOR)), std::string::npos)
      << m;
  EXPECT_NE(m.find("libork-test-wrong-major.so"), std::string::npos) << m;
  EXPECT_NE(m.find("ork_plugin_v1"), std::string::npos) << m;
}

TEST(Abi, MissingSymbolIsRefused) {
  std::string m = load_error("executor", lib("no-symbol"));
  EXPECT_NE(m.find("does not export the symbol 'ork_plugin_v1'"), std::string::npos) << m;
  EXPECT_NE(m.find("libork-test-no-symbol.so"), std::string::npos) << m;
}

TEST(Abi, MissingLibraryNamesWhereItLooked) {
  std::string m = load_error("executor", "ork-no-such-plugin");
  EXPECT_NE(m.find("'ork-no-such-plugin' not found"), std::string::npos) << m;
}

TEST(Abi, WrongKindIsRefused) {
  std::string m;
  try {
    ork::load_plugin<ork::StateProxy>("state", lib("throwing"), json::object());
  } catch (const ork::PluginLoadError& e) {
    m = e.what();
  }
  EXPECT_NE(m.find("is a executor plugin, expected state"), std::string::npos) << m;
}

TEST(Abi, OlderMinorLoadsAndMissingMembersAreUnsupported) {
  auto p = ork::load_plugin<ork::ExecutorProxy>("executor", lib("old-minor"), json::object());
  EXPECT_EQ(p->abi(), "1.0");
  EXPECT_EQ(p->info(), "");
  EXPECT_EQ(p->poll_interval_ms(), 100u);
  EXPECT_EQ(p->dispatch({{"task_id", "t"}})["executor_id"], "old-1");
  EXPECT_EQ(p->status({{"executor_id", "old-1"}})["state"], "succeeded");
  try {
    p->cancel({{"executor_id", "old-1"}});
    FAIL() << "cancel should be unsupported";
  } catch (const ork::PluginCallError& e) {
    EXPECT_EQ(e.code(), ORK_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(e.what()).find("does not implement cancel"), std::string::npos) << e.what();
  }
}

TEST(Abi, ExceptionsAreContainedAtTheBoundary) {
  auto p = ork::load_plugin<ork::ExecutorProxy>("executor", lib("throwing"), json::object());
  EXPECT_EQ(p->abi(), std::to_string(ORK_ABI_MAJOR) + "." + std::to_string(ORK_ABI_MINOR));
  EXPECT_NE(p->info().find("throws on purpose"), std::string::npos);
  auto code_of = [&](auto fn) -> std::pair<ork_status, std::string> {
    try {
      fn();
    } catch (const ork::PluginCallError& e) {
      return {e.code(), e.what()};
    }
    return {ORK_OK, ""};
  };
  auto [c1, m1] = code_of([&] { p->dispatch(json::object()); });
  EXPECT_EQ(c1, ORK_ERR_INTERNAL);
  EXPECT_NE(m1.find("dispatch exploded"), std::string::npos) << m1;
  auto [c2, m2] = code_of([&] { p->status({{"kind", "int"}}); });
  EXPECT_EQ(c2, ORK_ERR_INTERNAL);
  EXPECT_NE(m2.find("unknown exception"), std::string::npos) << m2;
  auto [c3, m3] = code_of([&] { p->status({{"kind", "json"}}); });
  EXPECT_EQ(c3, ORK_ERR_INVALID);
  auto [c4, m4] = code_of([&] { p->status(json::object()); });
  EXPECT_EQ(c4, ORK_ERR_NOT_FOUND);
  auto [c5, m5] = code_of([&] { p->cancel(json::object()); });
  EXPECT_EQ(c5, ORK_ERR_UNAVAILABLE);
  EXPECT_NE(m5.find("backend down"), std::string::npos) << m5;
  // The plugin still answers after all of that.
  auto [c6, m6] = code_of([&] { p->status(json::object()); });
  EXPECT_EQ(c6, ORK_ERR_NOT_FOUND);
}

TEST(Abi, FailingCreateIsRefusedWithThePluginsMessage) {
  try {
    ork::load_plugin<ork::ExecutorProxy>("executor", lib("throwing"), {{"fail_create", true}});
    FAIL();
  } catch (const ork::PluginLoadError& e) {
    EXPECT_NE(std::string(e.what()).find("refusing to start: fail_create is set"), std::string::npos) << e.what();
  }
}

TEST(Abi, RegistryReportsThePluginsYamlEntryOfABadPlugin) {
  auto cfg = ork::parse_plugins_config(
      "plugins:\n  - kind: state\n    library: ork-state-sqlite\n    config: {path: /tmp/x.db}\n"
      "  - kind: executor\n    name: future\n    library: " +
          lib("wrong-major") + "\n",
      "plugins.yaml", "/tmp");
  try {
    ork::PluginRegistry reg(cfg, {});
    FAIL();
  } catch (const ork::PluginLoadError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("plugins.yaml:5:5"), std::string::npos) << m;
    EXPECT_NE(m.find("executor plugin 'future'"), std::string::npos) << m;
  }
}

TEST(PluginsYaml, ErrorsNameFileLineAndField) {
  auto err = [](const std::string& y) {
    try {
      ork::parse_plugins_config(y, "p.yaml", "/d");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err("plugins:\n  - kind: stat\n    library: x\n").find("p.yaml:2:11: plugins[0].kind"), std::string::npos);
  EXPECT_NE(err("plugins:\n  - kind: state\n").find("plugins[0].library: missing"), std::string::npos);
  EXPECT_NE(
      err("plugins:\n  - kind: state\n    library: x\n    colour: red\n").find("plugins[0].colour: unknown field"),
      std::string::npos);
  EXPECT_NE(err("plugins: [\n").find("p.yaml:"), std::string::npos);
  setenv("ORK_TEST_ROOT", "/data", 1);
  auto cfg = ork::parse_plugins_config(
      "plugins:\n  - kind: object\n    library: x\n    config: {root: '${ORK_TEST_ROOT}/objs', d: '${CONFIG_DIR}/a', "
      "n: 3, u: '${ORK_UNSET_VAR:-dflt}'}\n",
      "p.yaml", "/cfgdir");
  EXPECT_EQ(cfg.plugins[0].config["root"], "/data/objs");
  EXPECT_EQ(cfg.plugins[0].config["d"], "/cfgdir/a");
  EXPECT_EQ(cfg.plugins[0].config["n"], 3);
  EXPECT_EQ(cfg.plugins[0].config["u"], "dflt");
  EXPECT_NE(err("plugins:\n  - kind: object\n    library: x\n    config: {root: '${ORK_UNSET_VAR}'}\n")
                .find("ORK_UNSET_VAR is not set"),
            std::string::npos);
}

}  // namespace
