// Single-task submission as Tork offers it (seed 004): POST /api/v1/tasks runs one task (with optional pre/post
// tasks around it) as a run of a hidden workflow named "@task.<uuid>"; GET /api/v1/tasks/{id} reports it.
#include <filesystem>
#include <fstream>

#include "api/service.hpp"
#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "scheduler/engine.hpp"
#include "workflow/workflow_loader.hpp"

namespace ork::api {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

const char* kPrefix = "@task.";

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  out += '\'';
  return out;
}

std::string argv_command(const json& v, const std::string& field) {
  if (!v.is_array() || v.empty()) throw ApiError(400, "invalid_task", field + ": expected a non-empty list of strings");
  std::string cmd;
  for (const auto& a : v) {
    if (!a.is_string()) throw ApiError(400, "invalid_task", field + ": expected a list of strings");
    if (!cmd.empty()) cmd += ' ';
    cmd += shell_quote(a.get<std::string>());
  }
  return cmd;
}

bool has_container_executor(PluginRegistry& plugins, const std::string& worker) {
  for (const auto& [name, ex] : plugins.executors()) {
    if (!worker.empty() ? name != worker : !ex->is_default) continue;
    json info = json::parse(ex->info().empty() ? "{}" : ex->info(), nullptr, false);
    if (info.is_object())
      for (const auto& c : info.value("capabilities", json::array()))
        if (c == "container") return true;
  }
  return false;
}

// One task body → a workflow task (YAML-shaped JSON) for the workflow loader. `path` names it in errors.
ojson to_task(PluginRegistry& plugins, const json& body, const std::string& path, const std::string& task_name,
              const std::string& dir, bool top) {
  if (!body.is_object()) throw ApiError(400, "invalid_task", path + ": expected a task object", {{"field", path}});
  auto field = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
  ojson t = ojson::object();
  int kinds = 0;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (k == "name") {
      if (!v.is_string()) throw ApiError(400, "invalid_task", field(k) + ": expected a string", {{"field", field(k)}});
    } else if (k == "command") {
      t["command"] = v.is_array() ? json(argv_command(v, field(k))) : v;
      ++kinds;
    } else if (k == "cmd") {
      t["command"] = argv_command(v, field(k));
      ++kinds;
    } else if (k == "run") {
      if (!v.is_string()) throw ApiError(400, "invalid_task", field(k) + ": expected a script", {{"field", field(k)}});
      t["command"] = v;
      ++kinds;
    } else if (k == "code") {
      if (!v.is_string() || v.get<std::string>().empty())
        throw ApiError(400, "invalid_task", field(k) + ": expected Python source", {{"field", field(k)}});
      fs::create_directories(dir);
      std::ofstream(dir + "/" + task_name + ".py", std::ios::binary) << v.get<std::string>();
      t["file"] = task_name + ".py";
      if (!body.contains("executor")) t["executor"] = "python";
      ++kinds;
    } else if (k == "function") {
      t["function"] = v;
      if (!body.contains("executor")) t["executor"] = "python";
      if (!body.contains("code")) ++kinds;
    } else if (k == "image") {
      std::string worker = body.value("worker", "");
      if (!has_container_executor(plugins, worker))
        throw ApiError(400, "unsupported",
                       field(k) + ": container tasks need an executor plugin with the 'container' capability; " +
                           (worker.empty() ? "the default executor" : "executor '" + worker + "'") + " has none",
                       {{"field", field(k)}});
      t["image"] = v;
      ++kinds;
    } else if (k == "executor" || k == "input" || k == "env" || k == "retries" || k == "retry_delay" ||
               k == "timeout" || k == "worker" || k == "on_failure") {
      t[k] = v;
    } else if (top && (k == "pre" || k == "post")) {
      continue;
    } else {
      throw ApiError(400, "invalid_task",
                     "unknown field '" + field(k) +
                         "' (a task takes name, command|cmd|run|code|function|image, executor, input, env, retries, "
                         "retry_delay, timeout, worker, on_failure" +
                         (top ? ", pre, post)" : ")"),
                     {{"field", field(k)}});
    }
  }
  if (kinds == 0)
    throw ApiError(400, "invalid_task",
                   (path.empty() ? std::string("the task") : path) +
                       " needs one of command, cmd, run (shell), code, function (python) or image",
                   {{"field", path}});
  if (kinds > 1 && !(body.contains("code") && body.contains("function")))
    throw ApiError(
        400, "invalid_task",
        (path.empty() ? std::string("the task") : path) + " has several of command, cmd, run, code, image: give one",
        {{"field", path}});
  return t;
}

// "tasks.pre-2.timeout" → "pre[1].timeout", "tasks.main.x" → "x".
std::string body_field(const std::string& f) {
  if (f.rfind("tasks.", 0) != 0) return f;
  std::string rest = f.substr(6);
  size_t dot = rest.find('.');
  std::string task = rest.substr(0, dot), tail = dot == std::string::npos ? "" : rest.substr(dot + 1);
  if (task == "main") return tail;
  for (const char* kind : {"pre", "post"}) {
    std::string p = std::string(kind) + "-";
    if (task.rfind(p, 0) == 0) {
      std::string idx = std::to_string(std::stoi(task.substr(p.size())) - 1);
      return std::string(kind) + "[" + idx + "]" + (tail.empty() ? "" : "." + tail);
    }
  }
  return f;
}

std::string tork_state(const std::string& run_status, const json& tasks) {
  if (run_status == "success") return "COMPLETED";
  if (run_status == "failed") return "FAILED";
  if (run_status == "cancelled") return "CANCELLED";
  for (const auto& t : tasks) {
    std::string s = t.value("status", "");
    if (s == "running") return "RUNNING";
    if (t.value("task_name", "") == "main" && s == "dispatched") return "SCHEDULED";
  }
  return "PENDING";
}

}  // namespace

void Service::submit_task(Request& r, Reply& reply) {
  json body = parse_json_body(r, false);
  std::string uuid = new_uuid();
  std::string dir = data_dir() + "/tasks/" + uuid;
  try {
    ojson doc = ojson::object();
    doc["name"] = "task";
    ojson tasks = ojson::object();
    std::string prev;
    auto add = [&](const json& b, const std::string& path, const std::string& name, bool top) {
      ojson t = to_task(plugins_, b, path, name, dir, top);
      if (!prev.empty()) t["depends_on"] = ojson::array({prev});
      tasks[name] = std::move(t);
      prev = name;
    };
    for (const char* kind : {"pre", "post"})
      if (body.contains(kind) && !body[kind].is_array())
        throw ApiError(400, "invalid_task", std::string(kind) + ": expected a list of tasks", {{"field", kind}});
    int i = 0;
    for (const auto& p : body.value("pre", json::array())) {
      add(p, "pre[" + std::to_string(i) + "]", "pre-" + std::to_string(i + 1), false);
      ++i;
    }
    add(body, "", "main", true);
    i = 0;
    for (const auto& p : body.value("post", json::array())) {
      add(p, "post[" + std::to_string(i) + "]", "post-" + std::to_string(i + 1), false);
      ++i;
    }
    doc["tasks"] = std::move(tasks);
    fs::create_directories(dir);
    WorkflowDefinition wf;
    try {
      wf = load_workflow_string(doc.dump(), "<request body>", dir);
    } catch (const WorkflowError& e) {
      json errors = json::array();
      for (const auto& d : e.diagnostics()) errors.push_back({{"field", body_field(d.field)}, {"message", d.message}});
      const auto& d0 = e.diagnostics().front();
      throw ApiError(400, "invalid_task", body_field(d0.field) + ": " + d0.message, {{"errors", errors}});
    }
    wf.name = kPrefix + uuid;
    json def = wf;
    def["submission"] = {{"name", body.value("name", json(nullptr))},
                         {"pre", body.value("pre", json::array()).size()},
                         {"post", body.value("post", json::array()).size()}};
    plugins_.state().put_workflow(
        {{"name", wf.name}, {"definition", def}, {"schedule", nullptr}, {"version", "submitted"}});
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  }
  std::string wf_name = kPrefix + uuid;
  on_engine(std::move(reply), [this, wf_name] {
    std::string id = engine_.start_run(wf_name, json::object(), "api");
    wrote();
    Request q;
    q.params["id"] = id;
    Response res = get_task(q);
    res.status = 201;
    res.headers.emplace_back("Location", "/api/v1/tasks/" + id);
    return res;
  });
}

Response Service::get_task(const Request& r) {
  const std::string& id = r.params.at("id");
  auto run = plugins_.state().get_run({{"id", id}});
  std::string wf = run ? run->value("workflow_name", "") : "";
  if (!run || wf.rfind(kPrefix, 0) != 0) throw ApiError(404, "task_not_found", "no submitted task " + id, {{"id", id}});
  json tasks = plugins_.state().get_task_runs({{"run_id", id}})["tasks"];
  auto rec = plugins_.state().get_workflow({{"name", wf}});
  json meta = rec ? (*rec)["definition"].value("submission", json::object()) : json::object();
  json main = json::object(), pre = json::array(), post = json::array();
  for (const auto& t : tasks) {
    std::string n = t.value("task_name", "");
    json brief{{"task_name", n},
               {"status", t["status"]},
               {"attempt", t["attempt"]},
               {"output", t["output"]},
               {"error", t["error"]}};
    if (n == "main")
      main = t;
    else if (n.rfind("pre-", 0) == 0)
      pre.push_back(brief);
    else if (n.rfind("post-", 0) == 0)
      post.push_back(brief);
  }
  std::string status = run->value("status", "");
  json error = main.value("error", json(nullptr));
  if (error.is_null() || status == "failed") error = run->value("error", json(nullptr));
  return json_response(200, {{"task",
                              {{"id", id},
                               {"name", meta.value("name", json(nullptr))},
                               {"status", status},
                               {"state", tork_state(status, tasks)},
                               {"task_status", main.value("status", json(nullptr))},
                               {"result", main.value("output", json(nullptr))},
                               {"error", error},
                               {"attempt", main.value("attempt", 0)},
                               {"retries", main.value("max_retries", 0)},
                               {"pre", pre},
                               {"post", post},
                               {"created_at", run->value("created_at", json(nullptr))},
                               {"started_at", run->value("started_at", json(nullptr))},
                               {"finished_at", run->value("finished_at", json(nullptr))},
                               {"run", "/api/v1/runs/" + id},
                               {"logs", "/api/v1/runs/" + id + "/tasks/main/logs"}}}});
}

}  // namespace ork::api
