#include "runtimes.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <variant>

#include "project_config.hpp"
#include "python_forkserver.hpp"

#ifndef ORK_SOURCE_DIR
#define ORK_SOURCE_DIR ""
#endif

extern char** environ;

namespace ork::worker {

namespace fs = std::filesystem;

namespace {

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
std::string temp_root(const EnvMap& env) {
  for (const char* var : {"ORK_WORKER_TMPDIR", "TMPDIR"})
    if (auto it = env.find(var); it != env.end() && !it->second.empty()) return it->second;
  if (::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
  return "/tmp";
}

// A private temporary directory, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const EnvMap& env) {
    std::string tmpl = temp_root(env) + "/ork-worker-XXXXXX";
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
EnvMap task_env(const json& spec, const AttemptEnv* attempt) {
  EnvMap env = attempt ? attempt->env : process_env();
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
  if (auto g = lookup(env, "ORK_TASK_CANCEL_GRACE_MS")) {
    char* end = nullptr;
    long v = std::strtol(g->c_str(), &end, 10);
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
  TempDir tmp(env);
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
  TempDir tmp(env);
  io_env(spec, env, tmp, log);
  return run_command(spec, base_dir, std::move(env), {bin.string()}, tmp, log, signals, true);
}

// ---- rust ----

// Incremental 64-bit FNV-1a over many pieces (the rust cache key).
class Fnv {
 public:
  void add(std::string_view data) {
    for (unsigned char c : data) h_ = (h_ ^ c) * 1099511628211ull;
    for (int i = 0; i < 8; ++i) h_ = (h_ ^ 0xffu) * 1099511628211ull;  // separator: "ab","c" != "a","bc"
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  uint64_t h_ = 14695981039346656037ull;
};

// Every regular file under `dir` (relative path and content), sorted; skips dot entries, Cargo.lock (cargo writes it
// during the build) and the top-level target/.
void hash_tree(Fnv& h, const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code ignored;  // e.g. a dangling symlink: not a file to hash
    if (name.starts_with(".") || (it.depth() == 0 && name == "target")) {
      if (it->is_directory(ignored)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ignored) && name != "Cargo.lock") files.push_back(it->path());
  }
  if (ec) throw std::runtime_error("cannot read " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    h.add(f.lexically_relative(dir).string());
    h.add(read_file(f.string()).value_or(""));
  }
}

// The Rust SDK dir holding ork/ and ork-macros/: ORK_RUST_SDK, else <exe>/../share/ork/rust when installed, else the
// source tree's sdk/rust.
std::string rust_sdk_dir(const EnvMap& env) {
  if (auto p = lookup(env, "ORK_RUST_SDK")) return *p;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path installed = exe.parent_path().parent_path() / "share" / "ork" / "rust";
    if (fs::exists(installed / "ork" / "Cargo.toml", ec)) return installed.string();
  }
  return std::string(ORK_SOURCE_DIR) + "/sdk/rust";
}

std::string rust_cache_dir(const EnvMap& env) {
  if (auto p = lookup(env, "ORK_RUST_CACHE")) return *p;
  if (auto x = lookup(env, "XDG_CACHE_HOME")) return *x + "/ork/rust";
  return lookup(env, "HOME").value_or("/tmp") + "/.cache/ork/rust";
}

// `name` looked up on the PATH of `env` (as given when it holds a '/'); "" when not found.
std::string on_path(const EnvMap& env, const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::string_view path = env.count("PATH") ? std::string_view(env.at("PATH")) : "/usr/bin:/bin";
  while (!path.empty()) {
    auto colon = path.find(':');
    std::string dir(path.substr(0, colon));
    path = colon == std::string_view::npos ? "" : path.substr(colon + 1);
    std::string cand = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
  }
  return "";
}

// A crate's or generated file's name as a Cargo package/binary name: [A-Za-z0-9_-], not starting with a digit.
std::string cargo_name(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') ? c : '_';
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "t" + out;
  return out;
}

// The build cache's exclusive lock (flock, released with the fd), polled so a cancel or the timeout still ends it.
std::optional<TaskOutcome> lock_cache(Fd& lock, const fs::path& path, double timeout, TaskLog& log,
                                      SignalWatch& signals) {
  lock.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock) return failure("worker_error", "cannot open " + path.string() + ": " + std::strerror(errno));
  const auto start = std::chrono::steady_clock::now();
  bool told = false;
  while (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      return failure("worker_error", "flock: " + std::string(std::strerror(errno)));
    if (!told) log.note("rust: waiting for another build (" + path.string() + ")");
    told = true;
    if (signals.cancel_requested()) return failure("cancelled", "cancelled");
    std::chrono::duration<double> waited = std::chrono::steady_clock::now() - start;
    if (timeout > 0 && waited.count() > timeout)
      return failure("timeout", "execution timeout (waiting for the build lock)", {{"timeout_seconds", timeout}});
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

// What a rust task builds: a single .rs file (wrapped in a generated crate) or a binary of the user's crate.
struct RustTarget {
  fs::path source;      // the .rs file, or the crate's directory
  fs::path crate_root;  // the directory of the user's Cargo.toml; empty for a single file
  std::string bin;      // the binary target to select (`function:`); empty: find it
};

// `file:` → a crate directory or Cargo.toml; a .rs file inside a crate (the nearest Cargo.toml up to base_dir);
// else a single-file task.
std::variant<RustTarget, TaskOutcome> rust_target(const json& spec, const std::string& base_dir) {
  const std::string file = str(spec, "file");
  if (file.empty())
    return failure("spec_error", "a rust task needs `file`: a .rs task file, or a crate directory / Cargo.toml");
  fs::path p = (fs::path(file).is_absolute() ? fs::path(file) : fs::path(base_dir) / file).lexically_normal();
  std::error_code ec;
  RustTarget t{p, {}, str(spec, "function")};
  if (fs::is_directory(p, ec)) {
    if (!fs::is_regular_file(p / "Cargo.toml", ec)) return failure("spec_error", "no Cargo.toml in " + file);
    t.crate_root = p;
    return t;
  }
  if (!fs::is_regular_file(p, ec)) return failure("spec_error", "task file not found: " + file);
  if (p.filename() == "Cargo.toml") {
    t.crate_root = p.parent_path();
    t.source = t.crate_root;
    return t;
  }
  const fs::path stop = fs::path(base_dir).lexically_normal();
  for (fs::path d = p.parent_path(); !d.empty(); d = d.parent_path()) {
    if (fs::is_regular_file(d / "Cargo.toml", ec)) {
      t.crate_root = d;
      break;
    }
    if (d == stop || d == d.parent_path()) break;
  }
  return t;
}

// The cargo flags every build gets: offline, Debian's crates instead of crates.io.
std::vector<std::string> cargo_config(const std::string& registry) {
  return {"--offline", "--config", "source.crates-io.replace-with=\"ork-offline\"", "--config",
          "source.ork-offline.directory=\"" + registry + "\""};
}

// Writes the generated crate of a single-file task into `dir`: Cargo.toml + the source; returns the binary name.
std::string generate_crate(const fs::path& dir, const fs::path& source, const std::string& text,
                           const std::string& sdk) {
  const std::string bin = cargo_name(source.stem().string());
  fs::create_directories(dir);
  write_file((dir / (bin + ".rs")).string(), text);
  write_file((dir / "Cargo.toml").string(),
             "# Generated by ork-worker for " + source.string() + "\n[package]\nname = \"ork-task-" + bin +
                 "\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[[bin]]\nname = \"" + bin +
                 "\"\npath = \"" + bin + ".rs\"\n\n[dependencies]\nork = { path = \"" + sdk +
                 "/ork\" }\nserde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\n\n[workspace]\n");
  return bin;
}

// The (package, binary) of the user's crate to build, from `cargo metadata --no-deps`.
std::variant<std::pair<std::string, std::string>, TaskOutcome> crate_binary(const RustTarget& t,
                                                                            const std::string& cargo,
                                                                            const std::vector<std::string>& config,
                                                                            const EnvMap& env, double timeout,
                                                                            SignalWatch& signals) {
  std::vector<std::string> argv{cargo,
                                "metadata",
                                "--no-deps",
                                "--format-version",
                                "1",
                                "--manifest-path",
                                (t.crate_root / "Cargo.toml").string()};
  argv.insert(argv.end(), config.begin(), config.end());
  TaskLog quiet(size_t{64} << 10, false);  // not the task log: only the tails are read
  ProcessResult r = run_process(process_spec(argv, env, t.crate_root.string(), std::nullopt, timeout), quiet, signals);
  if (r.end != ProcessResult::End::exited || r.exit_code != 0) {
    if (r.end == ProcessResult::End::exited)
      return failure("compile_error", "cargo metadata failed for " + (t.crate_root / "Cargo.toml").string(),
                     {{"exit_code", r.exit_code}, {"stderr_tail", utf8_tail(r.stderr_tail, kStderrTail)}});
    return process_failure(r, "cargo (" + cargo + ")", timeout);
  }
  json meta = json::parse(r.stdout_tail, nullptr, false);
  if (meta.is_discarded() || !meta.contains("packages")) return failure("worker_error", "cargo metadata: bad JSON");
  const std::string manifest = fs::weakly_canonical(t.crate_root / "Cargo.toml").string();
  const std::string wanted = t.source == t.crate_root ? "" : fs::weakly_canonical(t.source).string();
  std::vector<std::pair<std::string, std::string>> bins, found;
  for (const auto& pkg : meta["packages"]) {
    const std::string name = pkg.value("name", ""), pkg_manifest = pkg.value("manifest_path", "");
    for (const auto& target : pkg.value("targets", json::array())) {
      const json kinds = target.value("kind", json::array());
      if (std::find(kinds.begin(), kinds.end(), "bin") == kinds.end()) continue;
      const std::string bin = target.value("name", ""), src = target.value("src_path", "");
      if (!wanted.empty() ? fs::weakly_canonical(src).string() == wanted
                          : (t.bin.empty() ? pkg_manifest == manifest : bin == t.bin))
        found.emplace_back(name, bin);
      if (pkg_manifest == manifest || !wanted.empty()) bins.emplace_back(name, bin);
    }
  }
  if (found.size() == 1) return found[0];
  std::string names;
  for (const auto& b : bins) names += (names.empty() ? "" : ", ") + b.second;
  if (!wanted.empty())
    return failure("spec_error", t.source.string() + " is not a binary target of " + manifest +
                                     " (use src/main.rs, src/bin/<name>.rs or a [[bin]] path); binaries: " +
                                     (names.empty() ? "none" : names));
  if (!t.bin.empty())
    return failure("spec_error",
                   "no binary '" + t.bin + "' in " + manifest + "; binaries: " + (names.empty() ? "none" : names));
  return failure("spec_error",
                 manifest + (found.empty() ? " has no binary target"
                                           : " has several binaries (" + names + "): name one with `function:`"));
}

// `rust`: builds the task (a single .rs file in a generated crate, or a binary of the user's crate) with
// `cargo build --release --offline` against Debian's crates, caches the binary per (sources, SDK, toolchain), then
// runs it like a cpp task.
TaskOutcome run_rust(const json& spec, const std::string& base_dir, EnvMap env, TaskLog& log, SignalWatch& signals) {
  auto target = rust_target(spec, base_dir);
  if (auto* o = std::get_if<TaskOutcome>(&target)) return std::move(*o);
  const RustTarget& t = std::get<RustTarget>(target);
  const double timeout = timeout_of(spec);

  const std::string cargo = lookup(env, "ORK_CARGO").value_or("cargo");
  const std::string cargo_path = on_path(env, cargo);
  if (cargo_path.empty())
    return failure("spawn_error", "cannot find " + cargo + " (apt-get install cargo, or set ORK_CARGO)");
  std::string rustc = lookup(env, "RUSTC").value_or("");
  if (rustc.empty()) {  // the rustc beside cargo, so a Debian cargo never picks up another toolchain's rustc
    const std::string sibling = (fs::path(cargo_path).parent_path() / "rustc").string();
    rustc = ::access(sibling.c_str(), X_OK) == 0 ? sibling : "rustc";
  }
  env["RUSTC"] = rustc;
  const std::string registry = lookup(env, "ORK_CARGO_REGISTRY").value_or("/usr/share/cargo/registry");
  const std::string sdk = rust_sdk_dir(env);
  std::error_code ec;
  if (!fs::is_directory(registry, ec))
    return failure("worker_error", "the crate registry " + registry +
                                       " is missing (apt-get install librust-serde-dev librust-serde-json-dev "
                                       "librust-serde-derive-dev librust-syn-dev, or set ORK_CARGO_REGISTRY)");

  TaskLog quiet(size_t{64} << 10, false);  // not the task log: only the tails are read
  ProcessResult v = run_process(process_spec({rustc, "-vV"}, env, base_dir, std::nullopt, timeout), quiet, signals);
  if (v.end != ProcessResult::End::exited || v.exit_code != 0)
    return process_failure(v, "rustc (" + rustc + ")", timeout);

  Fnv key;
  key.add(t.crate_root.empty() ? "file" : "crate");
  key.add(t.source.string());
  key.add(t.bin);
  std::optional<std::string> single_text;
  if (t.crate_root.empty()) {
    single_text = read_file(t.source.string());
    if (!single_text) return failure("spec_error", "cannot read " + t.source.string());
    key.add(*single_text);
  } else {
    hash_tree(key, t.crate_root);
  }
  hash_tree(key, fs::path(sdk) / "ork");
  hash_tree(key, fs::path(sdk) / "ork-macros");
  key.add(v.stdout_tail);
  key.add(cargo_path);
  key.add(registry);
  for (const auto& e : fs::directory_iterator(registry, ec)) key.add(e.path().filename().string());

  const fs::path cache = rust_cache_dir(env);
  const std::string stem = cargo_name((t.crate_root.empty() ? t.source.stem() : t.crate_root.filename()).string());
  const fs::path bin = cache / "bin" / (stem + "-" + key.hex());
  if (::access(bin.c_str(), X_OK) == 0) {
    log.note("rust: cached " + bin.string());
  } else {
    fs::create_directories(cache / "bin", ec);
    if (ec) return failure("worker_error", "cannot create the rust cache " + cache.string() + ": " + ec.message());
    // One build at a time per target dir, which every task shares (so the dependencies are built once).
    const fs::path target_dir = fs::absolute(lookup(env, "CARGO_TARGET_DIR").value_or((cache / "target").string()));
    fs::create_directories(target_dir, ec);
    Fd lock;
    if (auto o = lock_cache(lock, target_dir / ".ork-build.lock", timeout, log, signals)) return std::move(*o);
    if (::access(bin.c_str(), X_OK) == 0) {
      log.note("rust: built meanwhile by another worker: " + bin.string());
    } else {
      const auto config = cargo_config(registry);
      std::vector<std::string> argv{cargo_path, "build", "--release"};
      argv.insert(argv.end(), config.begin(), config.end());
      fs::path cwd;
      std::string built;
      if (t.crate_root.empty()) {
        cwd = cache / "gen" / stem;
        built = generate_crate(cwd, t.source, *single_text, sdk);
        argv.insert(argv.end(), {"--manifest-path", (cwd / "Cargo.toml").string()});
      } else {
        auto pb = crate_binary(t, cargo_path, config, env, timeout, signals);
        if (auto* o = std::get_if<TaskOutcome>(&pb)) return std::move(*o);
        const auto& [pkg, name] = std::get<std::pair<std::string, std::string>>(pb);
        cwd = t.crate_root;
        built = name;
        argv.insert(argv.end(), {"--manifest-path", (t.crate_root / "Cargo.toml").string(), "-p", pkg, "--bin", name,
                                 "--config", "patch.crates-io.ork.path=\"" + sdk + "/ork\""});
      }
      EnvMap build_env = env;
      build_env["CARGO_TARGET_DIR"] = target_dir.string();
      build_env["CARGO_TERM_COLOR"] = "never";
      log.note("rust: building " + str(spec, "file") + " with " + cargo_path + " (rustc " + rustc + ") → " +
               bin.string());
      ProcessResult r = run_process(process_spec(argv, build_env, cwd.string(), std::nullopt, timeout), log, signals);
      if (r.end != ProcessResult::End::exited) return process_failure(r, "cargo (" + cargo_path + ")", timeout);
      if (r.exit_code != 0)
        return failure("compile_error",
                       "building " + str(spec, "file") + " failed (exit code " + std::to_string(r.exit_code) + ")",
                       {{"exit_code", r.exit_code},
                        {"compiler", cargo_path},
                        {"stderr_tail", utf8_tail(r.stderr_tail, kStderrTail)}});
      // Copy to a private name, then rename: a concurrent worker never runs a half-written binary.
      const fs::path part = bin.string() + ".tmp-" + std::to_string(::getpid());
      fs::copy_file(target_dir / "release" / built, part, fs::copy_options::overwrite_existing, ec);
      if (!ec) fs::rename(part, bin, ec);
      if (ec) {
        fs::remove(part, ec);
        return failure("worker_error", "cannot store the built task in " + bin.string());
      }
    }
  }
  TempDir tmp(env);
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

// `python`: a @task file or a `function:`, or (with `custom`) a task of a Python @executor class from ork.yaml.
TaskOutcome run_python(const json& spec, const std::string& base_dir, EnvMap env, TaskLog& log, SignalWatch& signals,
                       const CustomExecutor* custom = nullptr) {
  if (!custom && str(spec, "file").empty() && str(spec, "function").empty())
    return failure("spec_error", "a python task needs `file` or `function`");
  TempDir tmp(env);
  const std::string req_file = tmp.file("request.json"), res_file = tmp.file("result.json");
  json context = json::object();
  for (const char* k :
       {"task_id", "run_id", "task_name", "workflow_name", "attempt", "parallel_index", "parallel_count"})
    context[k] = spec.value(k, json());
  json request = {{"file", spec.value("file", json())},
                  {"function", spec.value("function", json())},
                  {"input", spec.value("input", json())},
                  {"context", context}};
  if (custom) {
    request["executor"] = {{"name", custom->name}, {"type", custom->type}, {"config", custom->config}};
    request["config_file"] = spec.value("config_file", json());
    request["upstream"] = spec.value("upstream", json::object());
  }
  write_file(req_file, dump(request));

  const std::string python = python_interpreter(env), sdk = python_sdk_dir(env);
  auto old_path = lookup(env, "PYTHONPATH");
  std::string path = sdk + ":" + base_dir;
  if (custom && custom->project_dir != base_dir) path += ":" + custom->project_dir;
  env["PYTHONPATH"] = path + (old_path ? ":" + *old_path : "");
  if (custom) log.note("executor '" + custom->name + "': " + custom->type + " (" + custom->source + ")");
  env["ORK_TASK_REQUEST"] = req_file;
  env["ORK_TASK_RESULT"] = res_file;
  if (!lookup(env, "PYTHONUNBUFFERED")) env["PYTHONUNBUFFERED"] = "1";
  const bool warm = forkserver_enabled(env);
  log.note("python: " + python + " -m ork.runner (sdk " + sdk + (warm ? ", fork-server" : "") + ")");

  const double timeout = timeout_of(spec);
  ProcessSpec ps = process_spec({python, "-m", "ork.runner"}, env, base_dir, std::nullopt, timeout);
  std::optional<ProcessResult> forked;
  if (warm) {
    std::string why;
    forked = run_in_forkserver({python, sdk, env, base_dir, timeout, ps.timeout_grace_ms, ps.cancel_grace_ms}, log,
                               signals, why);
    if (!forked) log.note("python fork-server not used (" + why + "): starting the interpreter");
  }
  ProcessResult r = forked ? std::move(*forked) : run_process(ps, log, signals);
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

// ---- dbt, dbt-test, dbt-seed, dbt-snapshot ----

// The dbt verb each dbt runtime runs when the task gives no command.
const std::map<std::string, std::string> kDbtVerbs = {
    {"dbt", "run"}, {"dbt-test", "test"}, {"dbt-seed", "seed"}, {"dbt-snapshot", "snapshot"}};

// The value after `flag` in argv (also `--flag=value`), "" when absent.
std::string flag_value(const std::vector<std::string>& argv, const std::string& flag) {
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == flag && i + 1 < argv.size()) return argv[i + 1];
    if (argv[i].rfind(flag + "=", 0) == 0) return argv[i].substr(flag.size() + 1);
  }
  return "";
}

// The dbt arguments of a task: its `command` (list, or words of a string) without a leading "dbt", else
// `<verb> --select <input.select>` (a string or a list).
std::variant<std::vector<std::string>, TaskOutcome> dbt_args(const json& spec, const std::string& executor) {
  std::vector<std::string> args;
  const json command = spec.value("command", json());
  if (command.is_array()) {
    for (const auto& a : command) args.push_back(env_value(a));
  } else if (command.is_string()) {
    std::istringstream words(command.get<std::string>());
    for (std::string w; words >> w;) args.push_back(w);
  }
  if (!args.empty() && (args[0] == "dbt" || (args[0].size() > 4 && args[0].substr(args[0].size() - 4) == "/dbt")))
    args.erase(args.begin());
  if (!args.empty()) return args;
  const json input = spec.value("input", json::object());
  const json select = input.is_object() ? input.value("select", json()) : json();
  if (select.is_null())
    return failure("spec_error", "a " + executor + " task needs `command` (e.g. [dbt, " + kDbtVerbs.at(executor) +
                                     ", --select, my_model]) or `input: {select: ...}`");
  args = {kDbtVerbs.at(executor), "--select"};
  for (const auto& s : select.is_array() ? select : json::array({select})) args.push_back(env_value(s));
  if (input.contains("project_dir") && input["project_dir"].is_string())
    args.insert(args.end(), {"--project-dir", input["project_dir"].get<std::string>()});
  return args;
}

// run_results.json (dbt's documented artifact) → the task output: overall status, rows affected, failures, timing
// and one entry per node.
json dbt_output(const json& rr, const std::vector<std::string>& args) {
  json nodes = json::array();
  double exec_time = 0;
  std::optional<int64_t> rows, failures;
  bool ok = true;
  for (const auto& r : rr.value("results", json::array())) {
    auto number = [](const json& o, const char* k) {
      return o.contains(k) && o[k].is_number() ? o[k].get<double>() : 0.0;
    };
    const std::string status =
        r.contains("status") && r["status"].is_string() ? r["status"].get<std::string>() : std::string("unknown");
    if (status == "error" || status == "fail" || status == "runtime error") ok = false;
    json n = {{"unique_id", r.contains("unique_id") && r["unique_id"].is_string() ? r["unique_id"] : json("")},
              {"status", status},
              {"execution_time", number(r, "execution_time")},
              {"rows_affected", nullptr},
              {"failures", r.contains("failures") && r["failures"].is_number_integer() ? r["failures"] : json()},
              {"message", r.contains("message") && r["message"].is_string() ? r["message"] : json()},
              {"timing", json::array()}};
    exec_time += n["execution_time"].get<double>();
    const json ar = r.value("adapter_response", json::object());
    if (ar.is_object() && ar.contains("rows_affected") && ar["rows_affected"].is_number_integer()) {
      n["rows_affected"] = ar["rows_affected"];
      rows = rows.value_or(0) + ar["rows_affected"].get<int64_t>();
    }
    if (n["failures"].is_number_integer()) failures = failures.value_or(0) + n["failures"].get<int64_t>();
    for (const auto& t : r.value("timing", json::array()))
      if (t.is_object())
        n["timing"].push_back({{"name", t.contains("name") && t["name"].is_string() ? t["name"] : json("")},
                               {"started_at", t.value("started_at", json())},
                               {"completed_at", t.value("completed_at", json())}});
    nodes.push_back(std::move(n));
  }
  std::string select;
  for (const char* flag : {"--select", "-s", "--models", "-m"})
    for (size_t i = 0; i < args.size(); ++i)
      if (args[i] == flag)
        for (size_t j = i + 1; j < args.size() && args[j].rfind("-", 0) != 0; ++j)
          select += (select.empty() ? "" : " ") + args[j];
  const json meta = rr.value("metadata", json::object());
  return {{"status", ok ? "success" : "error"},
          {"command", args.empty() ? std::string() : args[0]},
          {"select", select},
          {"rows_affected", rows ? json(*rows) : json()},
          {"failures", failures ? json(*failures) : json()},
          {"execution_time", exec_time},
          {"elapsed_time", rr.contains("elapsed_time") && rr["elapsed_time"].is_number() ? rr["elapsed_time"] : json()},
          {"invocation_id", meta.is_object() && meta.contains("invocation_id") && meta["invocation_id"].is_string()
                                ? meta["invocation_id"]
                                : json()},
          {"nodes", std::move(nodes)}};
}

TaskOutcome run_dbt(const json& spec, const std::string& executor, const std::string& base_dir, EnvMap env,
                    TaskLog& log, SignalWatch& signals) {
  auto parsed = dbt_args(spec, executor);
  if (auto* f = std::get_if<TaskOutcome>(&parsed)) return *f;
  std::vector<std::string> args = std::get<std::vector<std::string>>(std::move(parsed));
  std::string dbt = lookup(env, "ORK_DBT").value_or("");
  if (dbt.empty()) dbt = on_path(env, "dbt");
  if (dbt.empty())
    return failure("spawn_error",
                   "dbt not found: install dbt (dbt-core and an adapter) on the worker's PATH or set ORK_DBT to it");
  // A private --target-path, so dbt tasks of one project running at once do not overwrite each other's artifacts.
  TempDir tmp(env);
  std::string target = flag_value(args, "--target-path");
  std::string project = flag_value(args, "--project-dir");
  if (project.empty()) project = lookup(env, "DBT_PROJECT_DIR").value_or(base_dir);
  if (fs::path(project).is_relative()) project = (fs::path(base_dir) / project).string();
  if (target.empty()) {
    target = tmp.file("target");
    args.insert(args.end(), {"--target-path", target});
  } else if (fs::path(target).is_relative()) {
    target = (fs::path(project) / target).string();
  }
  const std::string results = (fs::path(target) / "run_results.json").string();
  std::error_code ec;
  fs::remove(results, ec);  // a stale file must not pass for this run's results

  std::vector<std::string> argv{dbt};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string shown = "dbt";
  for (const auto& a : args) shown += " " + a;
  log.note("running " + shown + " (dbt: " + dbt + ")");
  const double timeout = timeout_of(spec);
  ProcessResult r = run_process(process_spec(argv, env, base_dir, std::nullopt, timeout), log, signals);
  auto text = read_file(results);
  json rr = text ? json::parse(*text, nullptr, false) : json();
  if (rr.is_discarded()) rr = nullptr;
  if (r.end != ProcessResult::End::exited || (r.exit_code != 0 && !rr.is_object())) {
    TaskOutcome f = process_failure(r, "dbt", timeout);
    if (r.end == ProcessResult::End::exited)
      f.error["message"] = "dbt exited with code " + std::to_string(r.exit_code) +
                           (r.exit_code == 2 ? " (dbt could not run: see the log)" : "") + " and wrote no run results";
    return f;
  }
  if (!rr.is_object()) return failure("dbt_error", "dbt exited 0 but wrote no valid " + results);
  json out = dbt_output(rr, args);
  const json& nodes = out["nodes"];
  if (r.exit_code == 0 && out["status"] == "success") {
    if (nodes.empty())
      return failure("dbt_error", "'" + shown + "' selected nothing: no model, test, seed or snapshot", out);
    return {true, std::move(out), nullptr};
  }
  std::string bad;
  size_t n_bad = 0;
  for (const auto& n : nodes) {
    const std::string st = n["status"].get<std::string>();
    if (st != "error" && st != "fail" && st != "runtime error") continue;
    ++n_bad;
    if (bad.size() < 400)
      bad += (bad.empty() ? "" : "; ") + n["unique_id"].get<std::string>() + " (" + st +
             (n["message"].is_string() ? ": " + n["message"].get<std::string>() : "") + ")";
  }
  json details = out;
  details["exit_code"] = r.exit_code;
  details["stderr_tail"] = utf8_tail(r.stderr_tail, kStderrTail);
  std::string msg = "dbt " + out["command"].get<std::string>() + " failed: ";
  if (n_bad)
    msg += std::to_string(n_bad) + " of " + std::to_string(nodes.size()) + " nodes failed: " + bad;
  else
    msg += "dbt exited with code " + std::to_string(r.exit_code);
  return failure("dbt_error", msg, details);
}

}  // namespace

EnvMap process_env() {
  EnvMap env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos) env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  return env;
}

TaskOutcome failure(const std::string& type, const std::string& message, json details) {
  TaskOutcome o;
  o.error = {{"type", type}, {"message", message}, {"details", std::move(details)}};
  return o;
}

// A plain container task, run by ork-worker inside the task's own image (a container executor mounts the worker
// there and sets ORK_CONTAINER_TASK=1): the input JSON goes to `input_to_file`, the output comes from
// `output_from_file`, else by the shell rules; no `command` runs the image's own ORK_CONTAINER_DEFAULT_COMMAND.
static TaskOutcome run_container(const json& spec, TaskLog& log, SignalWatch& signals) {
  EnvMap env = task_env(spec, nullptr);
  TempDir tmp(process_env());
  io_env(spec, env, tmp, log);
  json input = spec.value("input", json());
  if (input.is_object()) input.erase("to_file");
  if (auto to = str(spec, "input_to_file"); !to.empty()) {
    std::error_code ec;
    fs::create_directories(fs::path(to).parent_path(), ec);
    write_file(to, dump(input));
  }
  std::vector<std::string> argv;
  const json command = spec.value("command", json());
  if (command.is_string() && !command.get<std::string>().empty()) {
    argv = {"/bin/sh", "-c", command.get<std::string>()};
  } else if (command.is_array() && !command.empty()) {
    for (const auto& a : command) argv.push_back(env_value(a));
  } else {
    const char* def = std::getenv("ORK_CONTAINER_DEFAULT_COMMAND");
    json d = def ? json::parse(def, nullptr, false) : json();
    if (d.is_array())
      for (const auto& a : d) argv.push_back(env_value(a));
    if (argv.empty())
      return failure("spec_error", "task '" + str(spec, "task_name") + "' has no command and the image '" +
                                       str(spec, "image") + "' defines none");
  }
  std::error_code ec;
  std::string cwd = fs::current_path(ec).string();
  TaskOutcome o = run_command(spec, cwd.empty() ? "/" : cwd, std::move(env), std::move(argv), tmp, log, signals, false);
  if (auto from = str(spec, "output_from_file"); o.ok && !from.empty()) {
    auto text = read_file(from);
    if (!text) return failure("output_error", "the container wrote no output file " + from);
    json j = json::parse(*text, nullptr, false);
    if (j.is_discarded()) return failure("output_error", "the output file " + from + " is not valid JSON");
    o.output = std::move(j);
  }
  return o;
}

namespace {

// The runtime a spec names, or the one its shape implies.
std::string runtime_of(const json& spec) {
  std::string executor = str(spec, "executor");
  if (!executor.empty()) return executor;
  const std::string file = str(spec, "file");
  bool py = !str(spec, "function").empty() || (file.size() > 3 && file.substr(file.size() - 3) == ".py");
  bool cpp = file.size() > 4 && file.substr(file.size() - 4) == ".cpp";
  bool rs = file.size() > 3 && file.substr(file.size() - 3) == ".rs";
  return py ? "python" : cpp ? "cpp" : rs ? "rust" : "shell";
}

}  // namespace

bool is_shell_task(const json& spec) {
  const std::string executor = runtime_of(spec);
  return executor == "shell" || executor == "process";
}

TaskOutcome run_runtime(const json& spec, TaskLog& log, SignalWatch& signals, const AttemptEnv* ctx) {
  try {
    if (!ctx && str(spec, "executor") == "container" && std::getenv("ORK_CONTAINER_TASK") &&
        std::string(std::getenv("ORK_CONTAINER_TASK")) == "1")
      return run_container(spec, log, signals);
    std::string executor = runtime_of(spec);
    fs::path cwd = ctx && !ctx->cwd.empty() ? fs::path(ctx->cwd) : fs::current_path();
    fs::path base = str(spec, "base_dir");
    std::string base_dir = base.empty() ? cwd.string() : base.is_absolute() ? base.string() : (cwd / base).string();
    std::error_code ec;
    if (!fs::is_directory(base_dir, ec)) return failure("spec_error", "base_dir is not a directory: " + base_dir);
    EnvMap env = task_env(spec, ctx);
    if (executor == "container")  // a plain image: container executors run it themselves, never through ork-worker
      return failure("spec_error", "task '" + str(spec, "task_name") + "' runs the image '" + str(spec, "image") +
                                       "': it needs a container executor (docker, cloudrun, fargate, k8s); "
                                       "ork-worker runs shell, python, cpp, rust and custom executor tasks");
    std::optional<CustomExecutor> custom;
    if (kDbtVerbs.count(executor)) return run_dbt(spec, executor, base_dir, std::move(env), log, signals);
    if (executor != "shell" && executor != "process" && executor != "python" && executor != "cpp" &&
        executor != "rust") {
      const std::string config = find_project_config(base_dir, env);
      const std::string builtins =
          "not a built-in runtime (shell, python, cpp, rust, dbt, dbt-test, dbt-seed, dbt-snapshot)";
      if (config.empty())
        return failure("spec_error", "unknown executor '" + executor + "': " + builtins +
                                         ", and no ork.yaml defines it (none found from " + base_dir +
                                         " upwards; ORK_PROJECT_CONFIG names one)");
      try {
        custom = load_custom_executor(config, executor);
      } catch (const std::exception& e) {
        return failure("spec_error", e.what());
      }
      if (!custom)
        return failure("spec_error", "unknown executor '" + executor + "': " + builtins +
                                         ", and not under 'executors:' in " + config);
      if (custom->type.find(':') != std::string::npos)
        return run_python(spec, base_dir, std::move(env), log, signals, &*custom);
      executor = custom->type;  // an alias of a built-in runtime
    }
    if (executor == "shell" || executor == "process") return run_shell(spec, base_dir, std::move(env), log, signals);
    if (executor == "python") return run_python(spec, base_dir, std::move(env), log, signals);
    if (executor == "cpp") return run_cpp(spec, base_dir, std::move(env), log, signals);
    return run_rust(spec, base_dir, std::move(env), log, signals);
  } catch (const std::exception& e) {
    return failure("worker_error", e.what());
  }
}

}  // namespace ork::worker
