// The C++ task SDK (header-only): ORK_TASK(fn) turns `Output fn(const Input&[, const ork::Context&])` into a program
// the worker's `cpp` runtime runs. Input JSON on stdin → nlohmann from_json → fn → output JSON to $ORK_OUTPUT_FILE
// (else the last stdout line). ork::TaskError and other exceptions → {"type","message","details"} in $ORK_ERROR_FILE.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace ork {

// Thrown by a task to fail with type "task_error" and structured details.
class TaskError : public std::runtime_error {
 public:
  explicit TaskError(const std::string& message, nlohmann::json details = nullptr)
      : std::runtime_error(message), details_(std::move(details)) {}
  const nlohmann::json& details() const { return details_; }

 private:
  nlohmann::json details_;
};

// One line per message on stderr (the task log): "[level] message".
struct Logger {
  void debug(const std::string& m) const { line("debug", m); }
  void info(const std::string& m) const { line("info", m); }
  void warning(const std::string& m) const { line("warning", m); }
  void error(const std::string& m) const { line("error", m); }

 private:
  static void line(const char* level, const std::string& m) { std::cerr << '[' << level << "] " << m << std::endl; }
};

// Metrics as `ORK_METRIC {"name","value","labels"}` lines on stderr.
struct MetricsRecorder {
  void record(const std::string& name, double value, const nlohmann::json& labels = nullptr) const {
    nlohmann::json m = {{"name", name}, {"value", value}, {"labels", labels}};
    std::cerr << "ORK_METRIC " << m.dump() << std::endl;
  }
};

// Execution metadata, from the ORK_* variables the worker sets.
struct Context {
  std::string task_id, run_id, task_name, workflow_name;
  int attempt = 1;
  std::optional<int> parallel_index, parallel_count;
  Logger log;
  MetricsRecorder metrics;

  static Context from_env() {
    Context c;
    c.task_id = env("ORK_TASK_ID");
    c.run_id = env("ORK_RUN_ID");
    c.task_name = env("ORK_TASK_NAME");
    c.workflow_name = env("ORK_WORKFLOW_NAME");
    c.attempt = to_int(env("ORK_ATTEMPT")).value_or(1);
    c.parallel_index = to_int(env("ORK_PARALLEL_INDEX"));
    c.parallel_count = to_int(env("ORK_PARALLEL_COUNT"));
    return c;
  }

 private:
  static std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
  }
  static std::optional<int> to_int(const std::string& s) {
    if (s.empty()) return std::nullopt;
    try {
      size_t pos = 0;
      int v = std::stoi(s, &pos);
      if (pos == s.size()) return v;
    } catch (const std::exception&) {
    }
    return std::nullopt;
  }
};

namespace detail {

// The task function's input type: the first parameter, without const and reference.
template <class F>
struct first_arg;
template <class R, class A, class... Rest>
struct first_arg<R (*)(A, Rest...)> {
  using type = std::remove_cvref_t<A>;
};
template <class F>
using input_t = typename first_arg<F>::type;

inline std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Writes the error to $ORK_ERROR_FILE (when set) and a one-line summary to stderr; returns `code`.
inline int fail(int code, const std::string& type, const std::string& message, nlohmann::json details = nullptr) {
  nlohmann::json err = {{"type", type}, {"message", message}, {"details", std::move(details)}};
  if (const char* path = std::getenv("ORK_ERROR_FILE"); path && *path) std::ofstream(path) << dump(err);
  std::cerr << "[ork] " << type << ": " << message << std::endl;
  return code;
}

template <class F>
int main(F fn) {
  using Input = input_t<F>;
  Context ctx = Context::from_env();
  Input input{};
  try {
    std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    nlohmann::json j = text.empty() ? nlohmann::json::object() : nlohmann::json::parse(text);
    input = j.get<Input>();
  } catch (const std::exception& e) {
    return fail(2, "input_validation", std::string("invalid input: ") + e.what());
  }
  nlohmann::json out;
  try {
    if constexpr (std::is_invocable_v<F, const Input&, const Context&>)
      out = fn(input, ctx);
    else
      out = fn(input);
  } catch (const TaskError& e) {
    return fail(1, "task_error", e.what(), e.details());
  } catch (const std::exception& e) {
    return fail(1, "exception", e.what());
  } catch (...) {
    return fail(1, "exception", "unknown exception");
  }
  const std::string text = dump(out);
  if (const char* path = std::getenv("ORK_OUTPUT_FILE"); path && *path) {
    std::ofstream f(path, std::ios::trunc);
    f << text;
    if (!f.flush()) return fail(1, "output_error", std::string("cannot write ") + path);
  } else {
    std::cout << text << std::endl;
  }
  return 0;
}

}  // namespace detail
}  // namespace ork

// Defines main() for the task function `fn`.
#define ORK_TASK(fn)                 \
  int main() {                       \
    return ::ork::detail::main(&fn); \
  }
