// "hello": a minimal third-party executor. It starts ork-worker as a child process and is polled for status
// (kPollIntervalMs), which shows the path for executors that cannot push events. Optionally appends one line per
// dispatch to `marker_file` so you can see it ran.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <ork/plugin.hpp>

extern char** environ;

class HelloExecutor : public ork::Executor {
 public:
  static constexpr uint32_t kPollIntervalMs = 200;
  static constexpr const char* kInfo = R"json({"description": "example out-of-tree executor (fork/exec, polled)"})json";

  HelloExecutor(const ork::json& config, ork::HostServices host)
      : marker_(config.value("marker_file", "")), host_(host) {
    host_.log(ORK_LOG_INFO, "hello executor ready");
  }

  ork::json dispatch(const ork::json& cfg) override {
    std::vector<std::string> args = cfg.at("worker_command").get<std::vector<std::string>>();
    if (args.empty()) ork::throw_invalid("worker_command is empty");
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    const ork::json extra = cfg.value("env", ork::json::object());
    for (const auto& [k, v] : extra.items()) env.push_back(k + "=" + v.get<std::string>());
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    if (int rc = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data()); rc != 0)
      ork::throw_unavailable("cannot start " + args[0] + ": " + std::strerror(rc));
    if (!marker_.empty()) std::ofstream(marker_, std::ios::app) << cfg.value("task_name", "") << "\n";
    std::lock_guard lock(mu_);
    std::string id = "hello-" + std::to_string(pid);
    pids_[id] = pid;
    return {{"executor_id", id}};
  }

  ork::json status(const ork::json& a) override {
    std::lock_guard lock(mu_);
    std::string id = a.at("executor_id");
    if (auto d = done_.find(id); d != done_.end()) return d->second;
    auto it = pids_.find(id);
    if (it == pids_.end()) return {{"state", "unknown"}};
    int st = 0;
    if (waitpid(it->second, &st, WNOHANG) != it->second) return {{"state", "running"}};
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    ork::json r{{"state", code == 0 ? "succeeded" : "failed"}, {"exit_code", code}};
    done_[id] = r;
    pids_.erase(it);
    return r;
  }

  ork::json cancel(const ork::json& a) override {
    std::lock_guard lock(mu_);
    if (auto it = pids_.find(a.at("executor_id")); it != pids_.end()) kill(it->second, SIGTERM);
    return ork::json::object();
  }

 private:
  std::string marker_;
  ork::HostServices host_;
  std::mutex mu_;
  std::map<std::string, pid_t> pids_;
  std::map<std::string, ork::json> done_;
};

ORK_EXECUTOR_PLUGIN(HelloExecutor, "hello", HELLO_VERSION)
