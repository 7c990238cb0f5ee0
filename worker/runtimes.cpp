#include "runtimes.hpp"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#ifndef ORK_SOURCE_DIR
#define ORK_SOURCE_DIR ""
#endif

extern char** environ;

namespace ork::worker {

namespace fs = std::filesystem;

namespace {

using EnvMap = std::map<std::string, std::string>;
constexpr size_t kMaxInputEnv = 100 * 1024;  // larger inputs exceed the kernel's per-variable limit (128 KiB)
constexpr size_t kStderrTail = 2048;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A string field of the spec; "" when missing, null or not a string.
std::string str(const json& spec, const char* key) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string env_value(const json& v) {
  if (v.is_null()) return "";
  return v.is_string() ? v.get<std::string>() : dump(v);
}

// Where task temporary files go: ORK_WORKER_TMPDIR, else TMPDIR, else /dev/shm when writable (tmpfs: no disk inode
// churn for two tiny files per task), else /tmp.
std::string temp_root() {
  for (const char* var : {"ORK_WORKER_TMPDIR", "TMPDIR"})
    if (const char* t = std::getenv(var); t && *t) return t;
  if (::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
  return "/tmp";
}

// A private temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = temp_root() + "/ork-worker-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary directory: " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const char* name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
  if (!f.flush()) throw std::runtime_error("cannot write " + path);
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string trim(std::string_view s) {
  const char* ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

std::optional<std::string> lookup(const EnvMap& env, const std::string& key) {
  auto it = env.find(key);
  if (it == env.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

// The worker's environment without the object-store reference, plus spec.env and the task context variables.
EnvMap task_env(const json& spec) {
  EnvMap env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos) env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  env.erase("ORK_OBJECT_STORE");
  if (auto it = spec.find("env"); it != spec.end() && it->is_object())
    for (const auto& [k, v] : it->items()) env[k] = env_value(v);
  const std::pair<const char*, const char*> ctx[] = {{"ORK_TASK_ID", "task_id"},
                                                     {"ORK_RUN_ID", "run_id"},
                                                     {"ORK_TASK_NAME", "task_name"},
                                                     {"ORK_WORKFLOW_NAME", "workflow_name"},
                                                     {"ORK_ATTEMPT", "attempt"},
                                                     {"ORK_PARALLEL_INDEX", "parallel_index"},
                                                     {"ORK_PARALLEL_COUNT", "parallel_count"}};
  for (const auto& [var, field] : ctx) env[var] = env_value(spec.value(field, json()));
  return env;
}

std::vector<std::string> envp(const EnvMap& env) {
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// The task's SIGTERM → SIGKILL grace on cancel: shorter than the executor's own grace for the worker
// (ORK_TASK_CANCEL_GRACE_MS, set by the host), so the task is gone before the worker could be killed.
ProcessSpec process_spec(std::vector<std::string> argv, const EnvMap& env, const std::string& base_dir,
                         std::optional<std::string> input, double timeout) {
  ProcessSpec ps{std::move(argv), envp(env), base_dir, std::move(input), timeout};
  if (const char* g = std::getenv("ORK_TASK_CANCEL_GRACE_MS"); g && *g) {
    char* end = nullptr;
    long v = std::strtol(g, &end, 10);
    if (end && *end == '\0' && v >= 0) ps.cancel_grace_ms = static_cast<int>(v);
  }
  return ps;
}

double timeout_of(const json& spec) {
  auto it = spec.find("timeout_seconds");
  return it != spec.end() && it->is_number() ? it->get<double>() : 0;
}

// The error for a process that did not exit 0 (what: "command" or "python").
TaskOutcome process_failure(const ProcessResult& r, const std::string& what, double timeout) {
  using End = ProcessResult::End;
  switch (r.end) {
    case End::timed_out:
      return failure("timeout", "execution timeout", {{"timeout_seconds", timeout}});
    case End::cancelled:
      return failure("cancelled", "cancelled");
    case End::spawn_failed:
      return failure("spawn_error", "cannot start " + what + ": " + r.spawn_error);
    case End::signaled: {
      const char* name = sigabbrev_np(r.signal);
      return failure(
          "exit_code",
          what + " killed by signal " + std::to_string(r.signal) + (name ? " (SIG" + std::string(name) + ")" : ""),
          {{"exit_code", r.exit_code}, {"signal", r.signal}, {"stderr_tail", utf8_tail(r.stderr_tail, kStderrTail)}});
    }
    case End::exited:
      break;
  }
  return failure("exit_code", what + " exited with code " + std::to_string(r.exit_code),
                 {{"exit_code", r.exit_code}, {"stderr_tail", utf8_tail(r.stderr_tail, kStderrTail)}});
}

// Output of a shell task: the last `ORK_OUTPUT:` stdout line, else the last non-empty line if it is JSON, else null.
TaskOutcome stdout_output(const std::string& out) {
  std::optional<std::string> last;
  size_t end = out.size();
  while (end > 0) {
    size_t nl = out.rfind('\n', end - 1);
    size_t begin = nl == std::string::npos ? 0 : nl + 1;
    std::string line = trim(std::string_view(out).substr(begin, end - begin));
    if (line.rfind("ORK_OUTPUT:", 0) == 0) {
      json j = json::parse(line.substr(11), nullptr, false);
      if (j.is_discarded()) return failure("output_error", "the ORK_OUTPUT: line is not valid JSON");
      return {true, j, nullptr};
    }
    if (!last && !line.empty()) last = line;
    if (nl == std::string::npos) break;
    end = nl;
  }
  if (!last) return {true, nullptr, nullptr};
  json j = json::parse(*last, nullptr, false);
  return {true, j.is_discarded() ? json() : j, nullptr};
}

TaskOutcome run_command(const json& spec, const std::string& base_dir, EnvMap env, std::vector<std::string> argv,
                        const TempDir& tmp, TaskLog& log, SignalWatch& signals, bool error_file);

// The input and output files and variables of a shell-style task, in `tmp`.
void io_env(const json& spec, EnvMap& env, const TempDir& tmp, TaskLog& log) {
  const std::string input_text = dump(spec.value("input", json()));
  const std::string out_file = tmp.file("output.json"), in_file = tmp.file("input.json");
  write_file(out_file, "");
  write_file(in_file, input_text);
  env["ORK_OUTPUT_FILE"] = out_file;
  env["ORK_INPUT_FILE"] = in_file;
  if (input_text.size() <= kMaxInputEnv)
    env["ORK_INPUT_JSON"] = input_text;
  else
    log.note("input is " + std::to_string(input_text.size()) +
             " bytes: ORK_INPUT_JSON not set (use stdin or ORK_INPUT_FILE)");
}

// A command with no shell syntax (as GNU make decides: no quotes, expansions, redirections, globs, separators, and
// not a shell builtin) as argv with the program resolved on the task's PATH, so it runs without a /bin/sh in between;
// empty when the shell is needed.
std::vector<std::string> simple_command(const std::string& cmd, const EnvMap& env, const std::string& base_dir) {
  static constexpr std::string_view kShellChars = "#;\"*?[]&|<>(){}$`'~!\\\n\r^";
  static constexpr std::string_view kBuiltins[] = {
      ".",    ":",      "alias",    "bg",      "break", "case",  "cd",   "command", "continue", "do",
      "done", "echo",   "elif",     "else",    "esac",  "eval",  "exec", "exit",    "export",   "fc",
      "fg",   "fi",     "for",      "getopts", "hash",  "if",    "jobs", "kill",    "local",    "printf",
      "pwd",  "read",   "readonly", "return",  "set",   "shift", "test", "then",    "times",    "trap",
      "type", "ulimit", "umask",    "unalias", "unset", "until", "wait", "while",   "["};
  if (cmd.find_first_of(kShellChars) != std::string::npos) return {};
  std::vector<std::string> argv;
  size_t i = 0;
  while (i < cmd.size()) {
    while (i < cmd.size() && (cmd[i] == ' ' || cmd[i] == '\t')) ++i;
    size_t b = i;
    while (i < cmd.size() && cmd[i] != ' ' && cmd[i] != '\t') ++i;
    if (i > b) argv.push_back(cmd.substr(b, i - b));
  }
  if (argv.empty()) return {};
  for (auto b : kBuiltins)
    if (argv[0] == b) return {};
  if (argv[0].find('=') != std::string::npos) return {};  // VAR=value prefix
  if (argv[0].find('/') != std::string::npos) {
    fs::path p = fs::path(argv[0]).is_absolute() ? fs::path(argv[0]) : fs::path(base_dir) / argv[0];
    std::error_code ec;
    return ::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p, ec) ? argv : std::vector<std::string>{};
  }
  std::string path = lookup(env, "PATH").value_or("/usr/local/bin:/usr/bin:/bin");
  for (size_t start = 0; start <= path.size();) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = end > start ? path.substr(start, end - start) : ".";
    std::string candidate = dir + "/" + argv[0];
    std::error_code ec;
    if (::access(candidate.c_str(), X_OK) == 0 && fs::is_regular_file(candidate, ec)) {
      argv[0] = candidate;
      return argv;
    }
    start = end + 1;
  }
  return {};  // not found: let the shell say so, with its usual exit code 127
}

TaskOutcome run_shell(const json& spec, const std::string& base_dir, EnvMap env, TaskLog& log, SignalWatch& signals) {
  TempDir tmp;
  io_env(spec, env, tmp, log);

  std::vector<std::string> argv;
  const json command = spec.value("command", json());
  const std::string file = str(spec, "file");
  if (command.is_string() && !command.get<std::string>().empty()) {
    argv = simple_command(command.get<std::string>(), env, base_dir);
    if (argv.empty()) argv = {"/bin/sh", "-c", command.get<std::string>()};
  } else if (command.is_array() && !command.empty()) {
    for (const auto& a : command) argv.push_back(env_value(a));
  } else if (!file.empty()) {
    fs::path p = fs::path(file).is_absolute() ? fs::path(file) : fs::path(base_dir) / file;
    if (!fs::is_regular_file(p)) return failure("spec_error", "task file not found: " + file);
    argv = ::access(p.c_str(), X_OK) == 0 ? std::vector<std::string>{p.string()}
                                          : std::vector<std::string>{"/bin/sh", p.string()};
  } else {
    return failure("spec_error", "a shell task needs `command` or `file`");
  }

  return run_command(spec, base_dir, std::move(env), std::move(argv), tmp, log, signals, false);
}

// Runs argv as a shell task: input on stdin, ORK_OUTPUT_FILE / stdout for the output. With `error_file`, a failing
// program's {"type","message","details"} in ORK_ERROR_FILE (the C++ SDK writes it) becomes the error.
TaskOutcome run_command(const json& spec, const std::string& base_dir, EnvMap env, std::vector<std::string> argv,
                        const TempDir& tmp, TaskLog& log, SignalWatch& signals, bool error_file) {
  const std::string out_file = env["ORK_OUTPUT_FILE"], err_file = tmp.file("error.json");
  const std::string input_text = dump(spec.value("input", json()));
  if (error_file) {
    write_file(err_file, "");
    env["ORK_ERROR_FILE"] = err_file;
  }
  const double timeout = timeout_of(spec);
  ProcessSpec ps = process_spec(argv, env, base_dir, input_text, timeout);
  ProcessResult r = run_process(ps, log, signals);
  if (r.end != ProcessResult::End::exited || r.exit_code != 0) {
    if (error_file && r.end == ProcessResult::End::exited) {
      json err = json::parse(read_file(err_file).value_or(""), nullptr, false);
      if (err.is_object() && err.value("type", json()).is_string())
        return failure(err["type"].get<std::string>(), err.value("message", std::string("task failed")),
                       err.value("details", json()));
    }
    return process_failure(r, "command", timeout);
  }

  auto written = read_file(out_file);
  if (written && !trim(*written).empty()) {
    json j = json::parse(*written, nullptr, false);
    if (j.is_discarded()) return failure("output_error", "ORK_OUTPUT_FILE does not contain valid JSON");
    return {true, j, nullptr};
  }
  return stdout_output(r.stdout_tail);
}

// The SDK include dir holding ork/task.hpp: ORK_SDK_INCLUDE, else <exe>/../include when installed, else the source.
std::string cpp_sdk_include(const EnvMap& env) {
  if (auto p = lookup(env, "ORK_SDK_INCLUDE")) return *p;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path installed = exe.parent_path().parent_path() / "include";
    if (fs::exists(installed / "ork" / "task.hpp", ec)) return installed.string();
  }
  return std::string(ORK_SOURCE_DIR) + "/sdk/include";
}

std::string cpp_cache_dir(const EnvMap& env) {
  if (auto p = lookup(env, "ORK_CPP_CACHE")) return *p;
  if (auto x = lookup(env, "XDG_CACHE_HOME")) return *x + "/ork/cpp";
  return lookup(env, "HOME").value_or("/tmp") + "/.cache/ork/cpp";
}

// 64-bit FNV-1a, hex: the cache key of a compiled task (stable across builds, unlike std::hash).
std::string fnv1a_hex(std::string_view data) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// `cpp`: compiles `file` (with the C++ SDK) into the cache once per (source, SDK header, compiler, flags), then runs
// the binary like a shell task.
TaskOutcome run_cpp(const json& spec, const std::string& base_dir, EnvMap env, TaskLog& log, SignalWatch& signals) {
  const std::string file = str(spec, "file");
  if (file.empty()) return failure("spec_error", "a cpp task needs `file` (a .cpp source)");
  fs::path src = fs::path(file).is_absolute() ? fs::path(file) : fs::path(base_dir) / file;
  auto source = read_file(src.string());
  if (!fs::is_regular_file(src) || !source) return failure("spec_error", "task file not found: " + file);

  const std::string cxx = lookup(env, "CXX").value_or("g++"), include = cpp_sdk_include(env);
  const std::vector<std::string> flags = {"-std=c++20", "-O1", "-I" + include};
  std::string key_text = *source + '\0' + cxx;
  for (const auto& f : flags) key_text += '\0' + f;
  key_text += '\0' + read_file(include + "/ork/task.hpp").value_or("");
  const fs::path cache = cpp_cache_dir(env);
  const fs::path bin = cache / (src.stem().string() + "-" + fnv1a_hex(key_text));
  const double timeout = timeout_of(spec);

  if (::access(bin.c_str(), X_OK) == 0) {
    log.note("cpp: cached " + bin.string());
  } else {
    std::error_code ec;
    fs::create_directories(cache, ec);
    if (ec) return failure("worker_error", "cannot create the cpp cache " + cache.string() + ": " + ec.message());
    // Compile to a private name, then rename: concurrent workers never run a half-written binary.
    const std::string part = bin.string() + ".tmp-" + std::to_string(::getpid());
    std::vector<std::string> argv{cxx};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.insert(argv.end(), {"-o", part, src.string()});
    log.note("cpp: compiling " + file + " with " + cxx + " → " + bin.string());
    ProcessResult r = run_process(process_spec(argv, env, base_dir, std::nullopt, timeout), log, signals);
    using End = ProcessResult::End;
    if (r.end == End::exited && r.exit_code == 0) {
      fs::rename(part, bin, ec);
      if (ec) return failure("worker_error", "cannot store the compiled task: " + ec.message());
    } else {
      fs::remove(part, ec);
      if (r.end != End::exited) return process_failure(r, "compiler (" + cxx + ")", timeout);
      return failure(
          "compile_error", "compiling " + file + " failed (exit code " + std::to_string(r.exit_code) + ")",
          {{"exit_code", r.exit_code}, {"compiler", cxx}, {"stderr_tail", utf8_tail(r.stderr_tail, kStderrTail)}});
    }
  }
  TempDir tmp;
  io_env(spec, env, tmp, log);
  return run_command(spec, base_dir, std::move(env), {bin.string()}, tmp, log, signals, true);
}

std::string python_interpreter(const EnvMap& env) {
  if (auto p = lookup(env, "ORK_PYTHON")) return *p;
  std::string root;
  if (auto r = lookup(env, "PYENV_ROOT"))
    root = *r;
  else if (auto h = lookup(env, "HOME"))
    root = *h + "/.pyenv";
  std::string pyenv = root + "/versions/3.11.7/bin/python3";
  if (!root.empty() && ::access(pyenv.c_str(), X_OK) == 0) return pyenv;
  return "python3";
}

std::string python_sdk_dir(const EnvMap& env) {
  if (auto p = lookup(env, "ORK_PYTHON_SDK")) return *p;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path installed = exe.parent_path().parent_path() / "share" / "ork" / "python";
    if (fs::exists(installed / "ork" / "__init__.py", ec)) return installed.string();
  }
  return std::string(ORK_SOURCE_DIR) + "/sdk/python";
}

TaskOutcome run_python(const json& spec, const std::string& base_dir, EnvMap env, TaskLog& log, SignalWatch& signals) {
  if (str(spec, "file").empty() && str(spec, "function").empty())
    return failure("spec_error", "a python task needs `file` or `function`");
  TempDir tmp;
  const std::string req_file = tmp.file("request.json"), res_file = tmp.file("result.json");
  json context = json::object();
  for (const char* k :
       {"task_id", "run_id", "task_name", "workflow_name", "attempt", "parallel_index", "parallel_count"})
    context[k] = spec.value(k, json());
  json request = {{"file", spec.value("file", json())},
                  {"function", spec.value("function", json())},
                  {"input", spec.value("input", json())},
                  {"context", context}};
  write_file(req_file, dump(request));

  const std::string python = python_interpreter(env), sdk = python_sdk_dir(env);
  auto old_path = lookup(env, "PYTHONPATH");
  env["PYTHONPATH"] = sdk + ":" + base_dir + (old_path ? ":" + *old_path : "");
  env["ORK_TASK_REQUEST"] = req_file;
  env["ORK_TASK_RESULT"] = res_file;
  if (!lookup(env, "PYTHONUNBUFFERED")) env["PYTHONUNBUFFERED"] = "1";
  log.note("python: " + python + " -m ork.runner (sdk " + sdk + ")");

  const double timeout = timeout_of(spec);
  ProcessSpec ps = process_spec({python, "-m", "ork.runner"}, env, base_dir, std::nullopt, timeout);
  ProcessResult r = run_process(ps, log, signals);
  using End = ProcessResult::End;
  if (r.end == End::timed_out || r.end == End::cancelled || r.end == End::spawn_failed)
    return process_failure(r, "python (" + python + ")", timeout);

  auto text = read_file(res_file);
  json res = text ? json::parse(*text, nullptr, false) : json(json::value_t::discarded);
  if (res.is_discarded() || !res.is_object()) {
    if (r.end != End::exited || r.exit_code != 0) return process_failure(r, "python", timeout);
    return failure("runtime_error", "the python runner wrote no result");
  }
  TaskOutcome o;
  o.metrics = res.value("metrics", json::array());
  if (res.value("ok", false)) {
    o.ok = true;
    o.output = res.value("output", json());
    return o;
  }
  json err = res.value("error", json::object());
  if (!err.is_object()) err = json::object();
  o.error = {{"type", err.value("type", std::string("exception"))},
             {"message", err.value("message", std::string("task failed"))},
             {"details", err.value("details", json())}};
  return o;
}

}  // namespace

TaskOutcome failure(const std::string& type, const std::string& message, json details) {
  TaskOutcome o;
  o.error = {{"type", type}, {"message", message}, {"details", std::move(details)}};
  return o;
}

TaskOutcome run_runtime(const json& spec, TaskLog& log, SignalWatch& signals) {
  try {
    std::string executor = str(spec, "executor");
    if (executor.empty()) {  // infer from the task's shape
      const std::string file = str(spec, "file");
      bool py = !str(spec, "function").empty() || (file.size() > 3 && file.substr(file.size() - 3) == ".py");
      bool cpp = file.size() > 4 && file.substr(file.size() - 4) == ".cpp";
      executor = py ? "python" : cpp ? "cpp" : "shell";
    }
    std::string base_dir = str(spec, "base_dir");
    if (base_dir.empty()) base_dir = fs::current_path().string();
    std::error_code ec;
    if (!fs::is_directory(base_dir, ec)) return failure("spec_error", "base_dir is not a directory: " + base_dir);
    if (executor == "shell" || executor == "process") return run_shell(spec, base_dir, task_env(spec), log, signals);
    if (executor == "python") return run_python(spec, base_dir, task_env(spec), log, signals);
    if (executor == "cpp") return run_cpp(spec, base_dir, task_env(spec), log, signals);
    return failure("spec_error", "unknown executor '" + executor + "' (this worker runs: shell, python, cpp)");
  } catch (const std::exception& e) {
    return failure("worker_error", e.what());
  }
}

}  // namespace ork::worker
