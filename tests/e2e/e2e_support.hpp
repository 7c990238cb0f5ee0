// Shared pieces of the end-to-end tests: the ork-host binary, the last run in a home's SQLite state, and a shell
// probe that records how many tasks ran at once.
#pragma once

#include "loader/plugin_loader.hpp"
#include "support/test_support.hpp"

namespace ork::test {

inline const std::string kHost = std::string(ORK_BINARY_DIR) + "/bin/ork-host";

// "0,1,...,n-1": a JSON list body for foreach tests.
inline std::string int_list(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(i);
  return s;
}

// The newest run in `home`'s SQLite state, with its task rows under "tasks" (in seq / parallel_index order).
inline json last_run(const std::string& home) {
  auto st = ork::load_plugin<ork::StateProxy>("state", "ork-state-sqlite", {{"path", home + "/state.db"}});
  json runs = st->list_runs({{"limit", 1}})["runs"];
  if (runs.empty()) return json::object();
  json run = runs[0];
  run["tasks"] = st->get_task_runs({{"run_id", run["id"]}})["tasks"];
  return run;
}

// A plugin config from an environment variable's JSON text (`dflt` when unset) in which every "{file:PATH}" becomes
// the trimmed contents of PATH (e.g. an emulator's endpoint written at run time).
inline json config_from_env(const char* var, const std::string& dflt = "{}") {
  const char* c = std::getenv(var);
  std::string text = c && *c ? c : dflt;
  for (size_t p = text.find("{file:"); p != std::string::npos; p = text.find("{file:", p)) {
    size_t end = text.find('}', p);
    std::string v = read_file(text.substr(p + 6, end - p - 6));
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
    text.replace(p, end - p + 1, v);
    p += v.size();
  }
  return json::parse(text);
}

// YAML block-scalar lines (indented for `command: |` under a task) that count this task as running for `sleep`
// seconds; probe_max(dir) is the most that ever ran at once.
inline std::string concurrency_probe(const std::string& dir, const std::string& sleep) {
  write_file(dir + "/cur", "0\n");
  if (!fs::exists(dir + "/max")) write_file(dir + "/max", "0\n");
  return "      ( flock 9; n=$(($(cat " + dir + "/cur) + 1)); echo $n > " + dir + "/cur\n" + "        [ $n -gt $(cat " +
         dir + "/max) ] && echo $n > " + dir + "/max ) 9>" + dir + "/lock\n" + "      sleep " + sleep + "\n" +
         "      ( flock 9; echo $(($(cat " + dir + "/cur) - 1)) > " + dir + "/cur ) 9>" + dir + "/lock\n";
}
inline int probe_max(const std::string& dir) {
  return std::stoi(read_file(dir + "/max"));
}
inline int probe_now(const std::string& dir) {
  return std::stoi(read_file(dir + "/cur"));
}

}  // namespace ork::test
