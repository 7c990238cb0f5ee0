// ork-worker: runs one task attempt described by spec.json in the object store (see docs/worker.md).
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "server.hpp"

extern char** environ;

namespace {

constexpr const char* kUsage =
    "usage: ork-worker [--spec KEY] | --serve\n"
    "  Runs one task attempt. Environment:\n"
    "    ORK_TASK_SPEC_PATH        object key of spec.json (--spec overrides)\n"
    "    ORK_OBJECT_STORE          {\"library\": \"...\", \"config\": {...}}: the object-store plugin to load\n"
    "    ORK_HEARTBEAT_INTERVAL_MS heartbeat period (default 10000)\n"
    "  --serve: a resident worker for a local executor; forks per attempt (see worker/server.hpp)\n"
    "  Exit codes: 0 success, 1 task failed, 2 usage/configuration error, 143 cancelled.\n";

int usage_error(const std::string& msg) {
  std::cerr << "ork-worker: " << msg << "\n" << kUsage;
  return ork::worker::kExitUsage;
}

// Makes sure fds 0-2 are open, so pipes never land on them.
void ensure_std_fds() {
  for (int fd = 0; fd <= 2; ++fd)
    if (::fcntl(fd, F_GETFD) == -1) ::open("/dev/null", O_RDWR);
}

}  // namespace

namespace ork::worker {

int run_attempt(const std::string& spec_key, SignalWatch& signals, const ObjectProxy* preloaded, json* read_spec) {
  if (spec_key.empty()) return usage_error("ORK_TASK_SPEC_PATH is not set (or pass --spec KEY)");
  const char* store_env = std::getenv("ORK_OBJECT_STORE");
  if (!store_env || !*store_env) return usage_error("ORK_OBJECT_STORE is not set");
  auto ref = ork::json::parse(store_env, nullptr, false);
  if (ref.is_discarded() || !ref.is_object() || !ref.contains("library") || !ref["library"].is_string())
    return usage_error("ORK_OBJECT_STORE must be JSON {\"library\": \"...\", \"config\": {...}}");

  // The host's own secret variables (ORK_SECRET_*) may reach us through an executor that passes its environment on:
  // a task sees only the secrets its definition names.
  const char* prefix_env = std::getenv("ORK_SECRET_ENV_PREFIX");
  const std::string prefix = prefix_env ? prefix_env : "ORK_SECRET_";
  std::vector<std::string> hidden;
  for (char** e = environ; !prefix.empty() && *e; ++e)
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) == 0)
      if (const char* eq = std::strchr(*e, '=')) hidden.emplace_back(*e, static_cast<size_t>(eq - *e));
  for (const auto& name : hidden) ::unsetenv(name.c_str());
  ::unsetenv("ORK_SECRET_ENV_PREFIX");

  // Secret values (from the host, never in spec.json): read once and removed from the environment, so neither the
  // task nor a plugin inherits the bundle as such.
  ork::json secrets;
  if (const char* s = std::getenv("ORK_TASK_SECRETS"); s && *s) {
    secrets = ork::json::parse(s, nullptr, false);
    ::unsetenv("ORK_TASK_SECRETS");
    if (secrets.is_discarded() || !secrets.is_object()) return usage_error("ORK_TASK_SECRETS must be a JSON object");
  }

  std::unique_ptr<ork::ObjectProxy> loaded;
  const ork::ObjectProxy* store = preloaded;
  ork::json spec;
  if (!store) {
    try {
      loaded = ork::load_plugin<ork::ObjectProxy>("object", ref["library"].get<std::string>(),
                                                  ref.value("config", ork::json::object()));
    } catch (const std::exception& e) {
      std::cerr << "ork-worker: cannot load the object store: " << e.what() << std::endl;
      return kExitUsage;
    }
    store = loaded.get();
  }
  if (read_spec) {
    spec = std::move(*read_spec);
  } else {
    try {
      auto text = store->get(spec_key);
      if (!text) {
        std::cerr << "ork-worker: spec not found: " << spec_key << std::endl;
        return kExitUsage;
      }
      spec = ork::json::parse(*text);
      if (!spec.is_object()) throw std::runtime_error("not a JSON object");
    } catch (const std::exception& e) {
      std::cerr << "ork-worker: cannot read the spec " << spec_key << ": " << e.what() << std::endl;
      return kExitUsage;
    }
  }
  try {
    return Worker(*store, std::move(spec), spec_key, signals,
                  heartbeat_interval(std::getenv("ORK_HEARTBEAT_INTERVAL_MS")), std::move(secrets))
        .run();
  } catch (const std::exception& e) {
    std::cerr << "ork-worker: " << e.what() << std::endl;
    return kExitFailed;
  }
}

}  // namespace ork::worker

int main(int argc, char** argv) {
  using namespace ork::worker;
  ensure_std_fds();
  std::string spec_key;
  if (const char* v = std::getenv("ORK_TASK_SPEC_PATH")) spec_key = v;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--serve") {
      if (argc != 2) return usage_error("--serve takes no other arguments");
      return serve();
    }
    if (a == "--spec" && i + 1 < argc) {
      spec_key = argv[++i];
    } else if (a.rfind("--spec=", 0) == 0) {
      spec_key = a.substr(7);
    } else {
      return usage_error("unknown argument '" + a + "'");
    }
  }
  SignalWatch signals;  // before any thread starts (plugins may start some)
  return run_attempt(spec_key, signals, nullptr, nullptr);
}
