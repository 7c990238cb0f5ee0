// ork: the command-line client of the Ork REST API (workflows, runs, logs, schema export, dev loop). See docs/cli.md.
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"

namespace {

namespace fs = std::filesystem;
using ork::cli::Client;
using ork::cli::json;
using ork::cli::Response;
using ork::cli::url_encode;

// Exit codes (docs/cli.md).
constexpr int kOk = 0, kRunFailed = 1, kUsage = 2, kUnreachable = 3, kApiError = 4, kAuth = 5;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// An error response of the API, already printed; carries the exit code.
struct ApiFailure {
  int code;
};

struct Settings {
  std::string server, api_key, config_file;
  bool json_out = false;
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

fs::path default_config_file() {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return fs::path(x) / "ork" / "config.yaml";
  return fs::path(env_or("HOME", ".")) / ".config" / "ork" / "config.yaml";
}

// Flags, then ORK_SERVER / ORK_API_KEY, then the config file (`server:`, `api_key:`), then the default server.
void resolve(Settings& s) {
  fs::path file = s.config_file.empty() ? default_config_file() : fs::path(s.config_file);
  std::string file_server, file_key;
  std::error_code ec;
  if (fs::exists(file, ec)) {
    try {
      YAML::Node doc = YAML::LoadFile(file.string());
      if (doc["server"]) file_server = doc["server"].as<std::string>();
      if (doc["api_key"]) file_key = doc["api_key"].as<std::string>();
    } catch (const YAML::Exception& e) {
      throw UsageError(file.string() + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
  } else if (!s.config_file.empty()) {
    throw UsageError("config file " + s.config_file + " not found");
  }
  if (s.server.empty()) s.server = env_or("ORK_SERVER", file_server.empty() ? "http://127.0.0.1:4000" : file_server);
  if (s.api_key.empty()) s.api_key = env_or("ORK_API_KEY", file_key);
  while (!s.server.empty() && s.server.back() == '/') s.server.pop_back();
  if (s.server.find("://") == std::string::npos) s.server = "http://" + s.server;
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// Prints the API's error body and throws the exit code for it.
[[noreturn]] void fail(const Response& r) {
  json e = r.parsed().value("error", json::object());
  std::string code = str(e, "code"), msg = str(e, "message");
  std::cerr << "ork: error " << r.status << (code.empty() ? "" : " " + code) << ": " << (msg.empty() ? r.body : msg)
            << "\n";
  if (e.contains("details") && e["details"].is_object() && e["details"].contains("errors"))
    for (const auto& d : e["details"]["errors"])
      std::cerr << "  line " << str(d, "line") << ", column " << str(d, "column") << " (" << str(d, "field")
                << "): " << str(d, "message") << "\n";
  throw ApiFailure{r.status == 401 || r.status == 403 ? kAuth : kApiError};
}

json call(Client& c, const std::string& method, const std::string& path, const std::string& body = "",
          const std::string& type = "application/json") {
  Response r = c.request(method, path, body, type);
  if (r.status >= 400) fail(r);
  return r.parsed();
}

// Left-aligned columns; the last column is not padded.
void table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); ++i) {
      std::cout << r[i];
      if (i + 1 < r.size()) std::cout << std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::cout << "\n";
  };
  line(head);
  for (const auto& r : rows) line(r);
}

void print_json(const json& j) {
  std::cout << j.dump(2) << "\n";
}

json parse_inputs(const std::vector<std::string>& kvs, const std::string& input_file) {
  json in = json::object();
  if (!input_file.empty()) {
    std::ifstream f(input_file);
    if (!f) throw UsageError("cannot read " + input_file);
    in = json::parse(f, nullptr, false);
    if (!in.is_object()) throw UsageError(input_file + " must hold a JSON object");
  }
  for (const auto& kv : kvs) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("--input expects key=value, got '" + kv + "'");
    json v = json::parse(kv.substr(eq + 1), nullptr, false);  // numbers, booleans, JSON; anything else is a string
    in[kv.substr(0, eq)] = v.is_discarded() ? json(kv.substr(eq + 1)) : v;
  }
  return in;
}

bool terminal_run(const std::string& s) {
  return s == "success" || s == "failed" || s == "cancelled";
}

std::string clock_now() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&t));
  return buf;
}

// Follows a run's events until it ends; prints task changes as they happen. Returns the run's final status.
std::string wait_run(Client& c, const std::string& id, bool quiet) {
  std::string final_status;
  auto check = [&] {
    json run = call(c, "GET", "/api/v1/runs/" + url_encode(id)).value("run", json::object());
    std::string s = str(run, "status");
    if (terminal_run(s)) final_status = s;
    return !final_status.empty();
  };
  Response err;
  int status = c.stream(
      "/api/v1/events?run=" + url_encode(id),
      [&](const std::string& event, const std::string& data) {
        if (event == "ready") return !check();  // subscribed: the run may have ended before
        json d = json::parse(data, nullptr, false);
        if (d.is_discarded()) return true;
        if (event == "task" && !quiet) {
          std::string name = str(d, "task_name");
          if (!d.value("parallel_index", json()).is_null()) name += "[" + str(d, "parallel_index") + "]";
          std::cerr << clock_now() << "  " << name << ": " << str(d, "status");
          if (d.value("attempt", 1) > 1) std::cerr << " (attempt " << str(d, "attempt") << ")";
          if (d.contains("error") && d["error"].is_object()) std::cerr << " - " << str(d["error"], "message");
          std::cerr << std::endl;
        }
        if (event == "run" && terminal_run(str(d, "status"))) {
          final_status = str(d, "status");
          return false;
        }
        return true;
      },
      &err);
  if (status != 200) fail(err);
  if (final_status.empty() && !check()) throw ork::cli::Unreachable("the event stream ended before the run did");
  return final_status;
}

int finish_wait(Client& c, const Settings& s, const std::string& id) {
  std::string st = wait_run(c, id, s.json_out);
  json run = call(c, "GET", "/api/v1/runs/" + url_encode(id));
  if (s.json_out)
    print_json(run);
  else
    std::cout << "run " << id << ": " << st << "\n";
  return st == "success" ? kOk : kRunFailed;
}

// --- commands ---------------------------------------------------------------------------------------------------

int workflow_deploy(Client& c, const Settings& s, const std::vector<std::string>& files) {
  json all = json::array();
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw UsageError("cannot read " + f);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string base = fs::absolute(fs::path(f)).parent_path().string();
    Response r = c.request("POST", "/api/v1/workflows?base_dir=" + url_encode(base), ss.str(), "application/yaml");
    if (r.status >= 400) {
      std::cerr << f << ":\n";
      fail(r);
    }
    json j = r.parsed();
    all.push_back(j);
    if (!s.json_out)
      std::cout << (j.value("created", false) ? "deployed " : "updated ") << str(j["workflow"], "name") << " (version "
                << str(j["workflow"], "version") << ") from " << f << std::endl;
  }
  if (s.json_out) print_json(all.size() == 1 ? all[0] : all);
  return kOk;
}

int workflow_list(Client& c, const Settings& s) {
  json all = json::array();
  std::string cursor;
  do {
    json page =
        call(c, "GET", "/api/v1/workflows?limit=1000" + (cursor.empty() ? "" : "&cursor=" + url_encode(cursor)));
    for (auto& w : page.value("workflows", json::array())) all.push_back(w);
    cursor = str(page, "next_cursor");
  } while (!cursor.empty());
  if (s.json_out) {
    print_json(json{{"workflows", all}});
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& w : all)
    rows.push_back({str(w, "name"), str(w, "version").substr(0, 12),
                    str(w, "schedule").empty() ? "-" : str(w, "schedule"),
                    std::to_string(w.value("tasks", json::array()).size()), str(w, "updated_at")});
  table({"NAME", "VERSION", "SCHEDULE", "TASKS", "UPDATED"}, rows);
  return kOk;
}

int workflow_status(Client& c, const Settings& s, const std::string& name) {
  json wf = call(c, "GET", "/api/v1/workflows/" + url_encode(name));
  json runs = call(c, "GET", "/api/v1/runs?limit=10&workflow=" + url_encode(name));
  if (s.json_out) {
    print_json(json{{"workflow", wf.value("workflow", wf)}, {"runs", runs.value("runs", json::array())}});
    return kOk;
  }
  json w = wf.value("workflow", wf);
  std::cout << "workflow  " << str(w, "name") << "\nversion   " << str(w, "version") << "\nschedule  "
            << (str(w, "schedule").empty() ? "-" : str(w, "schedule")) << "\nnext run  "
            << (str(w, "next_run").empty() ? "-" : str(w, "next_run")) << "\ntasks     ";
  bool first = true;
  for (const auto& t : w.value("tasks", json::array())) {
    std::cout << (first ? "" : ", ") << (t.is_string() ? t.get<std::string>() : str(t, "name"));
    first = false;
  }
  std::cout << "\n\nrecent runs:\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs.value("runs", json::array()))
    rows.push_back({str(r, "id"), str(r, "status"), str(r, "created_at"), str(r, "triggered_by")});
  table({"RUN", "STATUS", "CREATED", "TRIGGER"}, rows);
  return kOk;
}

int workflow_delete(Client& c, const Settings& s, const std::string& name) {
  call(c, "DELETE", "/api/v1/workflows/" + url_encode(name));
  if (s.json_out)
    print_json(json{{"deleted", name}});
  else
    std::cout << "deleted " << name << "\n";
  return kOk;
}

int run_start(Client& c, const Settings& s, const std::string& wf, const json& input, bool wait) {
  json r = call(c, "POST", "/api/v1/workflows/" + url_encode(wf) + "/runs", json{{"input", input}}.dump());
  std::string id = str(r.value("run", json::object()), "id");
  if (!wait) {
    if (s.json_out)
      print_json(r);
    else
      std::cout << id << "\n";
    return kOk;
  }
  if (!s.json_out) std::cerr << "run " << id << " started; waiting (Ctrl-C stops waiting, not the run)" << std::endl;
  return finish_wait(c, s, id);
}

int run_list(Client& c, const Settings& s, const std::string& status, const std::string& workflow, int limit) {
  std::string q = "/api/v1/runs?limit=" + std::to_string(limit);
  if (!status.empty()) q += "&status=" + url_encode(status);
  if (!workflow.empty()) q += "&workflow=" + url_encode(workflow);
  json page = call(c, "GET", q);
  if (s.json_out) {
    print_json(page);
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : page.value("runs", json::array()))
    rows.push_back({str(r, "id"), str(r, "workflow_name"), str(r, "status"), str(r, "created_at"),
                    str(r, "finished_at").empty() ? "-" : str(r, "finished_at")});
  table({"RUN", "WORKFLOW", "STATUS", "CREATED", "FINISHED"}, rows);
  if (!str(page, "next_cursor").empty()) std::cout << "(more: raise --limit)\n";
  return kOk;
}

json all_tasks(Client& c, const std::string& id) {
  json all = json::array();
  std::string cursor;
  do {
    json page = call(c, "GET",
                     "/api/v1/runs/" + url_encode(id) + "/tasks?limit=10000" +
                         (cursor.empty() ? "" : "&cursor=" + url_encode(cursor)));
    for (auto& t : page.value("tasks", json::array())) all.push_back(t);
    cursor = str(page, "next_cursor");
  } while (!cursor.empty());
  return all;
}

int run_status(Client& c, const Settings& s, const std::string& id) {
  json run = call(c, "GET", "/api/v1/runs/" + url_encode(id));
  json tasks = all_tasks(c, id);
  if (s.json_out) {
    print_json(json{{"run", run.value("run", run)}, {"tasks", tasks}});
    return kOk;
  }
  json r = run.value("run", run);
  std::cout << "run       " << str(r, "id") << "\nworkflow  " << str(r, "workflow_name") << "\nstatus    "
            << str(r, "status") << "\ncreated   " << str(r, "created_at") << "\nfinished  "
            << (str(r, "finished_at").empty() ? "-" : str(r, "finished_at")) << "\n";
  if (r.contains("error") && r["error"].is_object()) std::cout << "error     " << str(r["error"], "message") << "\n";
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : tasks) {
    std::string name = str(t, "task_name");
    if (!t.value("parallel_index", json()).is_null()) name += "[" + str(t, "parallel_index") + "]";
    std::string err = t.contains("error") && t["error"].is_object() ? str(t["error"], "message") : "";
    rows.push_back({name, str(t, "status"), str(t, "attempt"), err});
  }
  table({"TASK", "STATUS", "ATTEMPT", "ERROR"}, rows);
  return kOk;
}

int run_logs(Client& c, const Settings& s, const std::string& id, const std::string& task, std::optional<int> index,
             std::optional<int> attempt, bool follow) {
  auto query = [&](const std::string& name, std::optional<int> idx) {
    std::string q = "/api/v1/runs/" + url_encode(id) + "/tasks/" + url_encode(name) + "/logs?format=json";
    if (idx) q += "&index=" + std::to_string(*idx);
    if (attempt) q += "&attempt=" + std::to_string(*attempt);
    return q;
  };
  if (follow) {
    if (task.empty()) throw UsageError("--follow needs --task");
    std::string end_status;
    Response err;
    int status = c.stream(
        query(task, index) + "&follow=true",
        [&](const std::string& event, const std::string& data) {
          json d = json::parse(data, nullptr, false);
          if (event == "log") {
            if (s.json_out)
              std::cout << json{{"event", "log"}, {"data", d}}.dump() << std::endl;
            else
              std::cout << (d.is_string()            ? d.get<std::string>()
                            : str(d, "line").empty() ? data
                                                     : str(d, "line"))
                        << std::endl;
          } else if (event == "attempt" && !s.json_out) {
            std::cerr << "--- attempt " << str(d, "attempt") << " ---" << std::endl;
          } else if (event == "end") {
            end_status = str(d, "status");
            if (s.json_out) std::cout << json{{"event", "end"}, {"data", d}}.dump() << std::endl;
            return false;
          }
          return true;
        },
        &err);
    if (status != 200) fail(err);
    return end_status.empty() || end_status == "success" || end_status == "retried" ? kOk : kRunFailed;
  }
  std::vector<std::pair<std::string, std::optional<int>>> which;
  if (!task.empty()) {
    which.emplace_back(task, index);
  } else {
    for (const auto& t : all_tasks(c, id)) {
      std::optional<int> idx;
      if (!t.value("parallel_index", json()).is_null()) idx = t["parallel_index"].get<int>();
      which.emplace_back(str(t, "task_name"), idx);
    }
  }
  json out = json::array();
  for (const auto& [name, idx] : which) {
    Response r = c.request("GET", query(name, idx));
    if (r.status == 404 && task.empty()) continue;  // a task that never ran has no log
    if (r.status >= 400) fail(r);
    json j = r.parsed();
    if (s.json_out) {
      out.push_back(j);
      continue;
    }
    if (which.size() > 1)
      std::cout << "=== " << name << (idx ? "[" + std::to_string(*idx) + "]" : "") << " (attempt " << str(j, "attempt")
                << ", " << str(j, "status") << ") ===\n";
    std::cout << str(j, "content");
    if (!str(j, "content").empty() && str(j, "content").back() != '\n') std::cout << "\n";
  }
  if (s.json_out) print_json(task.empty() ? out : (out.empty() ? json::object() : out[0]));
  return kOk;
}

int run_action(Client& c, const Settings& s, const std::string& id, const std::string& action, const std::string& task,
               bool wait) {
  json body = json::object();
  if (!task.empty()) body["task"] = task;
  json r = call(c, "POST", "/api/v1/runs/" + url_encode(id) + "/" + action, body.dump());
  if (wait) return finish_wait(c, s, id);
  if (s.json_out)
    print_json(r);
  else
    std::cout << (action == "cancel" ? "cancelling " : "retrying ")
              << (task.empty() ? "run " + id : task + " of run " + id) << "\n";
  return kOk;
}

// Runs `ork-host` (installed beside this binary, or on PATH) with `args`; its exit code.
int run_host(std::vector<std::string> args) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  fs::path host = !ec && fs::exists(self.parent_path() / "ork-host") ? self.parent_path() / "ork-host" : "ork-host";
  args.insert(args.begin(), host.string());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execvp(argv[0], argv.data());
    std::cerr << "ork: cannot run " << argv[0] << ": " << std::strerror(errno) << "\n";
    ::_exit(127);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// `ork dev`: a local ork-host serve with these workflows deployed, re-deployed through the API whenever a file changes.
int dev(const Settings& s, const std::vector<std::string>& files, int port) {
  std::vector<std::string> args = {"serve", "--port", std::to_string(port)};
  for (const auto& f : files) {
    args.push_back("--deploy");
    args.push_back(f);
  }
  // Watched before the server starts, so no save is missed.
  int fd = ::inotify_init1(IN_CLOEXEC);
  std::map<int, std::string> dirs;  // watch descriptor → folder; editors replace files, so folders are watched
  for (const auto& f : files) {
    std::string dir = fs::absolute(f).parent_path().string();
    int wd = ::inotify_add_watch(fd, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
    if (wd >= 0) dirs[wd] = dir;
  }
  pid_t server = ::fork();
  if (server == 0) ::_exit(run_host(args));
  Client c("http://127.0.0.1:" + std::to_string(port), s.api_key);
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    try {
      up = c.request("GET", "/api/v1/health").status == 200;
    } catch (const ork::cli::Unreachable&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    int st = 0;
    if (::waitpid(server, &st, WNOHANG) == server) return WIFEXITED(st) ? WEXITSTATUS(st) : kUsage;
  }
  std::cerr << "ork dev: serving http://127.0.0.1:" << port << "; watching " << files.size()
            << " workflow file(s) (Ctrl-C stops)" << std::endl;
  alignas(inotify_event) char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    std::vector<std::string> changed;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      if (ev->len)
        for (const auto& f : files)
          if (fs::absolute(f) == fs::path(dirs[ev->wd]) / ev->name &&
              std::find(changed.begin(), changed.end(), f) == changed.end())
            changed.push_back(f);
      p += sizeof(inotify_event) + ev->len;
    }
    for (const auto& f : changed) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let a multi-step save finish
      try {
        Settings quiet = s;
        quiet.json_out = false;
        workflow_deploy(c, quiet, {f});
      } catch (const ApiFailure&) {
        std::cerr << "ork dev: " << f << " not deployed (fix it and save again)" << std::endl;
      }
    }
    int st = 0;
    if (::waitpid(server, &st, WNOHANG) == server) return WIFEXITED(st) ? WEXITSTATUS(st) : kUsage;
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ork: the Ork client (REST API at --server, default http://127.0.0.1:4000)", "ork"};
  app.require_subcommand(1);
  app.fallthrough();  // --json, --server ... are accepted after the subcommands too
  Settings s;
  app.add_option("--server", s.server, "API base URL (env ORK_SERVER, config `server:`)");
  app.add_option("--api-key", s.api_key, "API key (env ORK_API_KEY, config `api_key:`)");
  app.add_option("--config", s.config_file, "config file (default ~/.config/ork/config.yaml)");
  app.add_flag("--json", s.json_out, "JSON output");

  auto* wf = app.add_subcommand("workflow", "deploy, list, inspect and delete workflows")->require_subcommand(1);
  std::vector<std::string> files;
  std::string name, id, task, status, workflow, input_file, out_file;
  std::vector<std::string> inputs;
  bool wait = false, follow = false;
  int limit = 50, port = 4000;
  std::optional<int> index, attempt;
  auto* wf_deploy = wf->add_subcommand("deploy", "deploy (or update) workflow YAML files");
  wf_deploy->add_option("file", files, "workflow YAML files")->required();
  auto* wf_list = wf->add_subcommand("list", "list deployed workflows");
  auto* wf_status = wf->add_subcommand("status", "a workflow's definition, schedule and recent runs");
  wf_status->add_option("name", name)->required();
  auto* wf_delete = wf->add_subcommand("delete", "delete a workflow (its runs stay)");
  wf_delete->add_option("name", name)->required();

  auto* run = app.add_subcommand("run", "start, watch, cancel and retry runs")->require_subcommand(1);
  auto* run_start_cmd = run->add_subcommand("start", "start a run of a deployed workflow");
  run_start_cmd->add_option("workflow", workflow)->required();
  run_start_cmd->add_option("--input", inputs, "run input key=value (JSON values parsed; repeatable)");
  run_start_cmd->add_option("--input-file", input_file, "run input from a JSON file (--input entries override)");
  run_start_cmd->add_flag("--wait", wait, "follow the run live and exit with its result (0 success, 1 failed)");
  auto* run_status_cmd = run->add_subcommand("status", "a run and its tasks");
  run_status_cmd->add_option("id", id)->required();
  auto* run_list_cmd = run->add_subcommand("list", "recent runs, newest first");
  run_list_cmd->add_option("--status", status, "only these statuses (comma-separated)");
  run_list_cmd->add_option("--workflow", workflow, "only this workflow");
  run_list_cmd->add_option("--limit", limit, "how many (1..1000, default 50)");
  auto* run_logs_cmd = run->add_subcommand("logs", "task logs of a run");
  run_logs_cmd->add_option("id", id)->required();
  run_logs_cmd->add_option("--task", task, "one task (default: every task)");
  run_logs_cmd->add_option("--index", index, "the instance of a fan-out task");
  run_logs_cmd->add_option("--attempt", attempt, "an attempt (default: the latest)");
  run_logs_cmd->add_flag("--follow,-f", follow, "stream the log live until the task ends (needs --task)");
  auto* run_cancel_cmd = run->add_subcommand("cancel", "cancel a run, or one task of it");
  run_cancel_cmd->add_option("id", id)->required();
  run_cancel_cmd->add_option("--task", task, "cancel only this task");
  auto* run_retry_cmd = run->add_subcommand("retry", "retry a run's failed tasks, or one task and what follows it");
  run_retry_cmd->add_option("id", id)->required();
  run_retry_cmd->add_option("--task", task, "re-run this task and everything downstream of it");
  run_retry_cmd->add_flag("--wait", wait, "follow the run live and exit with its result");

  auto* schema = app.add_subcommand("schema", "JSON Schema of a workflow's types")->require_subcommand(1);
  auto* schema_export = schema->add_subcommand("export", "write JSON Schema for every type of a workflow (local)");
  schema_export->add_option("file", name, "workflow YAML")->required();
  schema_export->add_option("-o,--output", out_file, "output file (default: stdout)");

  auto* dev_cmd = app.add_subcommand("dev", "serve locally and re-deploy workflows whenever their files change");
  dev_cmd->add_option("file", files, "workflow YAML files")->required();
  dev_cmd->add_option("--port", port, "API port (default 4000)");

  for (auto* group : {wf, run, schema}) group->fallthrough();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }
  try {
    if (*schema_export) {
      std::vector<std::string> args = {"schema", "export", name};
      if (!out_file.empty()) args.insert(args.end(), {"-o", out_file});
      return run_host(args);
    }
    resolve(s);
    if (*dev_cmd) return dev(s, files, port);
    Client c(s.server, s.api_key);
    if (*wf_deploy) return workflow_deploy(c, s, files);
    if (*wf_list) return workflow_list(c, s);
    if (*wf_status) return workflow_status(c, s, name);
    if (*wf_delete) return workflow_delete(c, s, name);
    if (*run_start_cmd) return run_start(c, s, workflow, parse_inputs(inputs, input_file), wait);
    if (*run_status_cmd) return run_status(c, s, id);
    if (*run_list_cmd) return run_list(c, s, status, workflow, limit);
    if (*run_logs_cmd) return run_logs(c, s, id, task, index, attempt, follow);
    if (*run_cancel_cmd) return run_action(c, s, id, "cancel", task, false);
    if (*run_retry_cmd) return run_action(c, s, id, "retry", task, wait);
  } catch (const ApiFailure& f) {
    return f.code;
  } catch (const UsageError& e) {
    std::cerr << "ork: " << e.what() << "\n";
    return kUsage;
  } catch (const std::invalid_argument& e) {
    std::cerr << "ork: " << e.what() << "\n";
    return kUsage;
  } catch (const ork::cli::Unreachable& e) {
    std::cerr << "ork: " << e.what() << " (is `ork-host serve` running? set --server or ORK_SERVER)\n";
    return kUnreachable;
  } catch (const std::exception& e) {
    std::cerr << "ork: " << e.what() << "\n";
    return kApiError;
  }
  return kUsage;
}
