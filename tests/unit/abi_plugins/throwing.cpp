// An executor whose every call throws something different; the C++ wrapper must turn each into an error code.
#include <ork/plugin.hpp>

class Throwing : public ork::Executor {
 public:
  static constexpr const char* kInfo = R"({"description": "throws on purpose"})";
  Throwing(const ork::json& cfg, ork::HostServices) {
    if (cfg.value("fail_create", false)) throw std::runtime_error("refusing to start: fail_create is set");
  }
  ork::json dispatch(const ork::json&) override { throw std::runtime_error("dispatch exploded"); }
  ork::json status(const ork::json& a) override {
    if (a.value("kind", "") == "int") throw 42;
    if (a.value("kind", "") == "json") return ork::json::parse("{not json");
    ork::throw_not_found("no such execution");
  }
  ork::json cancel(const ork::json&) override { throw ork::PluginError(ORK_ERR_UNAVAILABLE, "backend down"); }
};

ORK_EXECUTOR_PLUGIN(Throwing, "throwing", "0.0.1")
