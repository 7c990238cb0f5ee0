#include "api/service.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "api/static_files.hpp"
#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "scheduler/cron.hpp"
#include "scheduler/engine.hpp"
#include "workflow/workflow_loader.hpp"

namespace ork::api {

namespace fs = std::filesystem;
namespace asio = boost::asio;

namespace {

const std::set<std::string> kRunStatuses = {"pending", "running", "success", "failed", "cancelled"};
const std::set<std::string> kTaskStatuses = {"pending", "dispatched", "running",  "success",
                                             "failed",  "skipped",    "cancelled"};

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool is_terminal(const std::string& s) {
  return s == "success" || s == "failed" || s == "cancelled" || s == "skipped";
}

std::string str_of(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Response error_from(const std::exception& e) {
  if (auto* a = dynamic_cast<const ApiError*>(&e)) return error_response(a->status, a->code, a->what(), a->details);
  if (auto* p = dynamic_cast<const PluginCallError*>(&e)) {
    switch (p->code()) {
      case ORK_ERR_NOT_FOUND:
        return error_response(404, "not_found", p->what());
      case ORK_ERR_CONFLICT:
        return error_response(409, "conflict", p->what());
      case ORK_ERR_INVALID:
        return error_response(400, "bad_request", p->what());
      case ORK_ERR_UNAVAILABLE:
        return error_response(503, "unavailable", p->what());
      case ORK_ERR_UNSUPPORTED:
        return error_response(501, "unsupported", p->what());
      default:
        break;
    }
    spdlog::error("API: {}", p->what());
    return error_response(500, "internal", "internal error in a plugin call (details in the host log)");
  }
  spdlog::error("API: {}", e.what());
  return error_response(500, "internal", "internal error (details in the host log)");
}

namespace {

// A workflow record as listed: the definition summarized to its task names.
json workflow_summary(const json& rec) {
  json tasks = json::array();
  const json& def = rec.contains("definition") ? rec["definition"] : json::object();
  if (def.contains("tasks") && def["tasks"].is_array())
    for (const auto& t : def["tasks"]) tasks.push_back(t.value("name", ""));
  return {{"id", rec.value("id", json(nullptr))},
          {"name", rec.value("name", "")},
          {"version", rec.value("version", json(nullptr))},
          {"schedule", rec.value("schedule", json(nullptr))},
          {"tasks", tasks},
          {"created_at", rec.value("created_at", json(nullptr))},
          {"updated_at", rec.value("updated_at", json(nullptr))}};
}

}  // namespace

// ---- Shared helpers

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = dump_json(body);
  return r;
}

Response error_response(int status, const std::string& code, const std::string& message, const json& details) {
  return json_response(status, {{"error", {{"code", code}, {"message", message}, {"details", details}}}});
}

json parse_json_body(const Request& r, bool allow_empty) {
  if (r.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (allow_empty) return json::object();
    throw ApiError(400, "invalid_json", "the request body is empty; expected a JSON object");
  }
  const std::string& ct = r.content_type;
  // curl -d sends application/x-www-form-urlencoded: taken as the JSON it carries. Multipart, HTML... are refused.
  bool ok = ct.empty() || ct == "application/json" || ct == "text/plain" || ct == "application/x-www-form-urlencoded" ||
            (ct.size() > 5 && ct.compare(ct.size() - 5, 5, "+json") == 0);
  if (!ok) throw ApiError(415, "unsupported_media_type", "expected Content-Type: application/json, got " + ct);
  json j;
  try {
    j = json::parse(r.body);
  } catch (const json::parse_error& e) {
    size_t byte = e.byte == 0 ? 0 : e.byte - 1;  // nlohmann counts from 1
    int line = 1, col = 1;
    for (size_t i = 0; i < byte && i < r.body.size(); ++i) {
      if (r.body[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    if (auto p = what.find(": "); what.rfind("parse error", 0) == 0 && p != std::string::npos)
      what = what.substr(p + 2);  // nlohmann's own "parse error at line L, column C:
    throw ApiError(400, "invalid_json",
                   "malformed JSON at line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what,
                   {{"line", line}, {"column", col}, {"byte", e.byte}});
  }
  if (!j.is_object()) throw ApiError(400, "invalid_json", "expected a JSON object, got " + std::string(j.type_name()));
  return j;
}

std::string encode_cursor(const json& c) {
  return ork::base64url_encode(c.dump());
}

json decode_cursor(const std::string& s) {
  if (s.empty()) return nullptr;
  auto raw = ork::base64url_decode(s);
  json c = raw ? json::parse(*raw, nullptr, false) : json(json::value_t::discarded);
  if (!c.is_object()) throw ApiError(400, "invalid_cursor", "cursor '" + s + "' is not one this API returned");
  return c;
}

int parse_int_param(const Request& r, const char* key, int dflt, int min, int max) {
  if (!r.has(key)) return dflt;
  std::string v = r.q(key);
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || !end || *end != '\0' || n < min || n > max)
    throw ApiError(400, "invalid_parameter",
                   std::string("query parameter '") + key + "' must be an integer from " + std::to_string(min) +
                       " to " + std::to_string(max) + ", got '" + v + "'",
                   {{"parameter", key}});
  return static_cast<int>(n);
}

bool parse_bool_param(const Request& r, const char* key) {
  if (!r.has(key)) return false;
  std::string v = r.q(key);
  if (v == "true" || v == "1" || v.empty()) return true;
  if (v == "false" || v == "0") return false;
  throw ApiError(400, "invalid_parameter", std::string("query parameter '") + key + "' must be true or false",
                 {{"parameter", key}});
}

std::vector<std::string> parse_list_param(const Request& r, const char* key) {
  std::vector<std::string> out;
  auto [a, b] = r.query.equal_range(key);
  for (auto it = a; it != b; ++it) {
    std::stringstream ss(it->second);
    std::string part;
    while (std::getline(ss, part, ','))
      if (!part.empty()) out.push_back(part);
  }
  return out;
}

bool is_loopback_address(const std::string& bind) {
  if (bind == "localhost") return true;
  boost::system::error_code ec;
  auto a = asio::ip::make_address(bind, ec);
  return !ec && a.is_loopback();
}

// ---- ListCache

std::shared_ptr<const std::string> ListCache::get(const std::string& key, uint64_t gen) {
  if (ttl_ms_ <= 0) return nullptr;
  std::lock_guard lk(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.gen != gen || it->second.expires <= steady_ms()) return nullptr;
  return it->second.body;
}

void ListCache::put(const std::string& key, uint64_t gen, std::shared_ptr<const std::string> body) {
  if (ttl_ms_ <= 0) return;
  std::lock_guard lk(mu_);
  if (entries_.size() >= 256) entries_.clear();
  entries_[key] = Entry{std::move(body), gen, steady_ms() + ttl_ms_};
}

// ---- Service

Service::Service(asio::io_context& engine_io, asio::io_context& http_io, Engine& engine, PluginRegistry& plugins,
                 const ApiConfig& cfg, std::shared_ptr<EventHub> hub)
    : engine_io_(engine_io),
      http_io_(http_io),
      engine_(engine),
      plugins_(plugins),
      cfg_(cfg),
      hub_(std::move(hub)),
      keys_(cfg.keys_file.empty() ? cfg.home + "/api-keys.json" : cfg.keys_file),
      cache_(cfg.cache_ms) {}

Service::~Service() {
  *alive_ = false;
}

std::string Service::data_dir() const {
  return cfg_.home.empty() ? fs::current_path().string() : cfg_.home;
}

bool Service::auth_required() {
  if (cfg_.auth == "on") return true;
  if (cfg_.auth == "off") return false;
  return keys_.active_count() > 0;
}

void Service::handle(Request req, Reply reply) {
  spdlog::debug("API {} {} from {}", req.method, req.path, req.remote);
  try {
    RouteMatch m = match_route(req.method, req.path);
    if (!m.route) {
      if (!m.allowed.empty()) {
        std::string allow;
        for (const auto& a : m.allowed) allow += (allow.empty() ? "" : ", ") + a;
        Response res = error_response(405, "method_not_allowed",
                                      req.method + " is not allowed on " + req.path + " (allowed: " + allow + ")");
        res.headers.emplace_back("Allow", allow);
        return reply(std::move(res));
      }
      bool api = req.path == "/api" || req.path.rfind("/api/", 0) == 0;
      if (!api && !cfg_.static_dir.empty() && (req.method == "GET" || req.method == "HEAD"))
        return reply(static_file(req));
      return reply(error_response(404, "route_not_found", "no route " + req.method + " " + req.path,
                                  {{"method", req.method}, {"path", req.path}}));
    }
    for (const auto& [k, v] : req.query) {
      bool known = false;
      for (const auto& q : m.route->query) known = known || q == k;
      if (!known) {
        std::string accepted;
        for (const auto& q : m.route->query) accepted += (accepted.empty() ? "" : ", ") + q;
        throw ApiError(400, "unknown_parameter",
                       "unknown query parameter '" + k + "'" +
                           (accepted.empty() ? " (this route takes none)" : " (accepted: " + accepted + ")"),
                       {{"parameter", k}});
      }
    }
    if (m.route->scope != Scope::none && auth_required()) {
      const std::string& h = req.authorization;
      if (h.size() < 8 || strncasecmp(h.c_str(), "Bearer ", 7) != 0) {
        Response res = error_response(401, "unauthorized", "this route needs an API key: Authorization: Bearer <key>");
        res.headers.emplace_back("WWW-Authenticate", "Bearer");
        return reply(std::move(res));
      }
      std::string key = h.substr(7);
      key.erase(0, key.find_first_not_of(' '));
      key.erase(key.find_last_not_of(" \t") + 1);
      auto scope = keys_.verify(key);
      if (!scope) {
        Response res = error_response(401, "unauthorized", "unknown or revoked API key");
        res.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        return reply(std::move(res));
      }
      if (static_cast<int>(*scope) < static_cast<int>(m.route->scope))
        return reply(error_response(403, "forbidden",
                                    std::string("this route needs the '") + scope_name(m.route->scope) +
                                        "' scope; the key has '" + scope_name(*scope) + "'",
                                    {{"required", scope_name(m.route->scope)}, {"granted", scope_name(*scope)}}));
    }
    req.params = std::move(m.params);
    dispatch(m.route->operation_id, req, reply);
  } catch (const std::exception& e) {
    if (reply) reply(error_from(e));
  }
}

void Service::dispatch(const std::string& op, Request& r, Reply& reply) {
  using Sync = Response (Service::*)(const Request&);
  using Async = void (Service::*)(Request&, Reply&);
  static const std::unordered_map<std::string, Sync> sync = {
      {"getHealth", &Service::health},         {"listWorkflows", &Service::list_workflows},
      {"getWorkflow", &Service::get_workflow}, {"listRuns", &Service::list_runs},
      {"getRun", &Service::get_run},           {"listRunTasks", &Service::list_run_tasks},
      {"getTaskLogs", &Service::task_logs},    {"streamEvents", &Service::events},
      {"getTask", &Service::get_task},         {"listApiKeys", &Service::list_keys},
      {"createApiKey", &Service::create_key},  {"revokeApiKey", &Service::revoke_key},
  };
  static const std::unordered_map<std::string, Async> async = {
      {"deployWorkflow", &Service::deploy_workflow},
      {"deleteWorkflow", &Service::delete_workflow},
      {"startRun", &Service::start_run},
      {"cancelRun", &Service::cancel_run},
      {"retryRun", &Service::retry_run},
      {"submitTask", &Service::submit_task},
  };
  if (op == "getOpenApi") {
    Response res;
    res.body = openapi_json();
    return reply(std::move(res));
  }
  if (auto it = sync.find(op); it != sync.end()) return reply((this->*(it->second))(r));
  if (auto it = async.find(op); it != async.end()) return (this->*(it->second))(r, reply);
  throw ApiError(501, "not_implemented", "no handler for " + op);
}

// ---- Health

Response Service::health(const Request&) {
  return json_response(200, {{"status", "ok"},
                             {"auth", auth_required()},
                             {"state", plugins_.state().name()},
                             {"objects", plugins_.objects().name()},
                             {"abi", std::to_string(ORK_ABI_MAJOR) + "." + std::to_string(ORK_ABI_MINOR)}});
}

// ---- Workflows

Response Service::list_workflows(const Request& r) {
  int limit = parse_int_param(r, "limit", 100, 1, 1000);
  json c = decode_cursor(r.q("cursor"));
  std::string after = c.is_object() ? c.value("after", "") : "";
  json all = plugins_.state().list_workflows(json::object())["workflows"];
  json items = json::array();
  json next = nullptr;
  for (const auto& w : all) {
    std::string name = str_of(w, "name");
    if (name.empty() || name[0] == '@' || (!after.empty() && name <= after)) continue;  // '@': submitted tasks
    if (static_cast<int>(items.size()) == limit) {
      next = encode_cursor({{"after", items.back()["name"]}});
      break;
    }
    items.push_back(workflow_summary(w));
  }
  return json_response(200, {{"workflows", items}, {"next_cursor", next}});
}

void Service::deploy_workflow(Request& r, Reply& reply) {
  const std::string& ct = r.content_type;
  static const std::set<std::string> ok_types = {"",
                                                 "application/yaml",
                                                 "application/x-yaml",
                                                 "text/yaml",
                                                 "text/x-yaml",
                                                 "text/plain",
                                                 "application/json",
                                                 "application/x-www-form-urlencoded"};
  if (!ok_types.count(ct))
    throw ApiError(415, "unsupported_media_type", "expected a YAML (or JSON) workflow body, got Content-Type " + ct);
  if (r.body.find_first_not_of(" \t\r\n") == std::string::npos)
    throw ApiError(400, "invalid_workflow", "the request body is empty; expected a workflow YAML document");
  std::string base_dir = r.q("base_dir");
  if (base_dir.empty()) base_dir = fs::current_path().string();
  std::error_code ec;
  if (!fs::path(base_dir).is_absolute() || !fs::is_directory(base_dir, ec))
    throw ApiError(400, "invalid_parameter", "base_dir must be an absolute directory on the server: " + base_dir,
                   {{"parameter", "base_dir"}});
  WorkflowDefinition wf;
  try {
    wf = load_workflow_string(r.body, "<request body>", base_dir, [this](const std::string& name, const json& req) {
      return plugins_.import_tasks(name, req);
    });
  } catch (const WorkflowError& e) {
    json errors = json::array();
    for (const auto& d : e.diagnostics())
      errors.push_back({{"line", d.line}, {"column", d.column}, {"field", d.field}, {"message", d.message}});
    std::string first = e.diagnostics().empty() ? e.what() : e.diagnostics().front().str();
    throw ApiError(400, "invalid_workflow", first, {{"errors", errors}});
  }
  std::string version = fnv1a_hex(json(wf).dump());
  on_engine(std::move(reply), [this, wf = std::move(wf), version] {
    bool existed = plugins_.state().get_workflow({{"name", wf.name}}).has_value();
    json rec;
    try {
      rec = engine_.deploy(wf, version);
    } catch (const CronError& e) {
      throw ApiError(400, "invalid_workflow", std::string("schedule: ") + e.what());
    }
    wrote();
    Response res = json_response(existed ? 200 : 201, {{"workflow", workflow_summary(rec)}, {"created", !existed}});
    res.headers.emplace_back("Location", "/api/v1/workflows/" + wf.name);
    return res;
  });
}

Response Service::get_workflow(const Request& r) {
  const std::string& name = r.params.at("name");
  auto rec = plugins_.state().get_workflow({{"name", name}});
  if (!rec) throw ApiError(404, "workflow_not_found", "no workflow named '" + name + "'", {{"name", name}});
  json out = *rec;
  out["next_run"] = nullptr;
  if (rec->value("schedule", json(nullptr)).is_string()) {
    json all = plugins_.state().get_due_schedules({{"now", "9999-12-31T23:59:59.999Z"}})["schedules"];
    for (const auto& s : all)
      if (s.value("workflow_name", "") == name) out["next_run"] = s["next_run"];
  }
  return json_response(200, {{"workflow", out}});
}

void Service::delete_workflow(Request& r, Reply& reply) {
  std::string name = r.params.at("name");
  on_engine(std::move(reply), [this, name] {
    try {
      plugins_.state().delete_workflow({{"name", name}});
    } catch (const PluginCallError& e) {
      if (e.code() == ORK_ERR_NOT_FOUND)
        throw ApiError(404, "workflow_not_found", "no workflow named '" + name + "'", {{"name", name}});
      throw;
    }
    wrote();
    Response res;
    res.status = 204;
    res.content_type.clear();
    return res;
  });
}

// ---- Runs

void Service::start_run(Request& r, Reply& reply) {
  std::string name = r.params.at("name");
  json body = parse_json_body(r, true);
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "input")
      throw ApiError(400, "invalid_body", "unknown field '" + it.key() + "' (a run takes {\"input\": {...}})",
                     {{"field", it.key()}});
  json input = body.value("input", json::object());
  if (input.is_null()) input = json::object();
  if (!input.is_object())
    throw ApiError(400, "invalid_body", "'input' must be a JSON object of run inputs", {{"field", "input"}});
  if (!plugins_.state().get_workflow({{"name", name}}))
    throw ApiError(404, "workflow_not_found", "no workflow named '" + name + "'", {{"name", name}});
  on_engine(std::move(reply), [this, name, input] {
    std::string id = engine_.start_run(name, input, "api");
    wrote();
    auto run = plugins_.state().get_run({{"id", id}});
    Response res = json_response(201, {{"run", run ? *run : json{{"id", id}}}});
    res.headers.emplace_back("Location", "/api/v1/runs/" + id);
    return res;
  });
}

Response Service::list_runs(const Request& r) {
  int limit = parse_int_param(r, "limit", 50, 1, 1000);
  std::vector<std::string> statuses = parse_list_param(r, "status");
  for (const auto& s : statuses)
    if (!kRunStatuses.count(s))
      throw ApiError(400, "invalid_parameter",
                     "unknown run status '" + s + "' (pending, running, success, failed, cancelled)",
                     {{"parameter", "status"}});
  std::string wf = r.q("workflow"), cursor = r.q("cursor");
  std::string key = std::to_string(limit) + "\n" + wf + "\n" + cursor + "\n";
  for (const auto& s : statuses) key += s + ",";
  uint64_t gen = generation();
  if (auto hit = cache_.get(key, gen)) {
    Response res;
    res.body = *hit;
    return res;
  }
  json c = decode_cursor(cursor);
  json args{{"limit", limit}};
  if (!wf.empty()) args["workflow_name"] = wf;
  if (!statuses.empty()) args["status"] = statuses;
  json runs, next = nullptr;
  bool done = false;
  if (!legacy_list_ && (c.is_null() || c.contains("c"))) {
    if (c.is_object()) {
      if (!c["c"].is_string() || !c.contains("i") || !c["i"].is_string())
        throw ApiError(400, "invalid_cursor", "cursor '" + cursor + "' is not one this API returned");
      args["after"] = {{"created_at", c["c"]}, {"id", c["i"]}};
    }
    try {
      json page = plugins_.state().list_runs_page(args);
      runs = std::move(page["runs"]);
      if (page["next"].is_object())
        next = encode_cursor({{"c", page["next"]["created_at"]}, {"i", page["next"]["id"]}});
      done = true;
    } catch (const PluginCallError& e) {
      if (e.code() != ORK_ERR_UNSUPPORTED) throw;
      spdlog::info("state plugin {} (ABI {}) has no list_runs_page: run lists page by offset", plugins_.state().name(),
                   plugins_.state().abi());
      legacy_list_ = true;
      args.erase("after");
    }
  }
  if (!done) {
    // State plugins older than ABI 1.3: offset pages (a run created meanwhile shifts them by one).
    if (c.is_object() && !c.contains("o"))
      throw ApiError(400, "invalid_cursor", "cursor '" + cursor + "' is not one this API returned");
    int64_t offset = c.is_object() && c["o"].is_number_integer() ? c["o"].get<int64_t>() : 0;
    args["offset"] = offset;
    json page = plugins_.state().list_runs(args);
    runs = std::move(page["runs"]);
    int64_t total = page.value("total", int64_t(0));
    int64_t end = offset + static_cast<int64_t>(runs.size());
    if (end < total && !runs.empty()) next = encode_cursor({{"o", end}});
  }
  auto body = std::make_shared<const std::string>(dump_json({{"runs", runs}, {"next_cursor", next}}));
  cache_.put(key, gen, body);
  Response res;
  res.body = *body;
  return res;
}

Response Service::get_run(const Request& r) {
  const std::string& id = r.params.at("id");
  auto run = plugins_.state().get_run({{"id", id}});
  if (!run) throw ApiError(404, "run_not_found", "no run " + id, {{"id", id}});
  json counts = json::object();
  json tasks = plugins_.state().get_task_runs({{"run_id", id}})["tasks"];
  for (const auto& t : tasks) {
    std::string s = str_of(t, "status");
    counts[s] = counts.value(s, 0) + 1;
  }
  json out = *run;
  out["task_counts"] = counts;
  out["tasks_total"] = tasks.size();
  return json_response(200, {{"run", out}});
}

namespace {

// Shared checks of cancel and retry, on the engine thread: the run exists, the task (if named) is in its workflow.
json load_run_for_change(PluginRegistry& plugins, const std::string& id, const std::string& task) {
  auto run = plugins.state().get_run({{"id", id}});
  if (!run) throw ApiError(404, "run_not_found", "no run " + id, {{"id", id}});
  if (!task.empty()) {
    auto wf = plugins.state().get_workflow({{"name", (*run)["workflow_name"]}});
    bool found = false;
    if (wf)
      for (const auto& t : (*wf)["definition"].value("tasks", json::array()))
        found = found || t.value("name", "") == task;
    if (!found) throw ApiError(404, "task_not_found", "run " + id + " has no task '" + task + "'", {{"task", task}});
  }
  return *run;
}

std::string task_field(const Request& r) {
  json body = parse_json_body(r, true);
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "task")
      throw ApiError(400, "invalid_body", "unknown field '" + it.key() + "' (this takes {\"task\": \"name\"})",
                     {{"field", it.key()}});
  if (!body.contains("task") || body["task"].is_null()) return "";
  if (!body["task"].is_string() || body["task"].get<std::string>().empty())
    throw ApiError(400, "invalid_body", "'task' must be a task name", {{"field", "task"}});
  return body["task"];
}

}  // namespace

void Service::cancel_run(Request& r, Reply& reply) {
  std::string id = r.params.at("id"), task = task_field(r);
  on_engine(std::move(reply), [this, id, task] {
    json run = load_run_for_change(plugins_, id, task);
    std::string status = run["status"];
    if (is_terminal(status))
      throw ApiError(409, "run_finished", "run " + id + " already ended (" + status + ")", {{"status", status}});
    engine_.take(id);  // no live host drives it: this one does now, so its tasks really stop
    try {
      engine_.cancel(id, task);
    } catch (const PluginCallError&) {
      throw;
    } catch (const std::runtime_error& e) {
      throw ApiError(409, "conflict", e.what());
    }
    wrote();
    return json_response(202, {{"run", plugins_.state().get_run({{"id", id}}).value_or(run)}});
  });
}

void Service::retry_run(Request& r, Reply& reply) {
  std::string id = r.params.at("id"), task = task_field(r);
  on_engine(std::move(reply), [this, id, task] {
    json run = load_run_for_change(plugins_, id, task);
    std::string status = run["status"];
    if (!is_terminal(status))
      throw ApiError(409, "run_active", "run " + id + " is still " + status + "; retry a finished run",
                     {{"status", status}});
    if (task.empty() && status == "success")
      throw ApiError(409, "nothing_to_retry", "run " + id + " succeeded: nothing to retry (name a task to re-run)");
    try {
      engine_.retry(id, task);
    } catch (const PluginCallError&) {
      throw;
    } catch (const std::runtime_error& e) {
      throw ApiError(409, "conflict", e.what());
    }
    wrote();
    return json_response(202, {{"run", plugins_.state().get_run({{"id", id}}).value_or(run)}});
  });
}

Response Service::list_run_tasks(const Request& r) {
  const std::string& id = r.params.at("id");
  int limit = parse_int_param(r, "limit", 1000, 1, 10000);
  std::vector<std::string> statuses = parse_list_param(r, "status");
  for (const auto& s : statuses)
    if (!kTaskStatuses.count(s))
      throw ApiError(400, "invalid_parameter", "unknown task status '" + s + "'", {{"parameter", "status"}});
  json c = decode_cursor(r.q("cursor"));
  int64_t offset = 0;
  if (c.is_object()) {
    if (!c.contains("o") || !c["o"].is_number_integer() || c["o"].get<int64_t>() < 0)
      throw ApiError(400, "invalid_cursor", "cursor '" + r.q("cursor") + "' is not one this API returned");
    offset = c["o"];
  }
  json args{{"run_id", id}};
  if (!statuses.empty()) args["status"] = statuses;
  json rows;
  try {
    rows = plugins_.state().get_task_runs(args)["tasks"];
  } catch (const PluginCallError& e) {
    if (e.code() == ORK_ERR_NOT_FOUND) throw ApiError(404, "run_not_found", "no run " + id, {{"id", id}});
    throw;
  }
  std::string name = r.q("name");
  json items = json::array();
  int64_t seen = 0;
  json next = nullptr;
  for (auto& t : rows) {
    if (!name.empty() && str_of(t, "task_name") != name) continue;
    if (seen++ < offset) continue;
    if (static_cast<int>(items.size()) == limit) {
      next = encode_cursor({{"o", offset + limit}});
      break;
    }
    items.push_back(std::move(t));
  }
  return json_response(200, {{"tasks", items}, {"next_cursor", next}});
}

// ---- API keys

Response Service::list_keys(const Request&) {
  json keys = json::array();
  for (const auto& k : keys_.list()) keys.push_back(k.to_json());
  return json_response(200, {{"keys", keys}});
}

Response Service::create_key(const Request& r) {
  json body = parse_json_body(r, false);
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "scope" && it.key() != "name")
      throw ApiError(400, "invalid_body", "unknown field '" + it.key() + "' (a key takes scope and name)",
                     {{"field", it.key()}});
  auto scope = body.contains("scope") && body["scope"].is_string() ? parse_scope(body["scope"].get<std::string>())
                                                                   : std::nullopt;
  if (!scope) throw ApiError(400, "invalid_body", "'scope' must be read, write or admin", {{"field", "scope"}});
  if (body.contains("name") && !body["name"].is_string())
    throw ApiError(400, "invalid_body", "'name' must be a string", {{"field", "name"}});
  auto [info, key] = keys_.create(*scope, body.value("name", ""));
  json out = info.to_json();
  out["key"] = key;
  return json_response(201, out);
}

Response Service::revoke_key(const Request& r) {
  const std::string& id = r.params.at("id");
  if (!keys_.revoke(id)) throw ApiError(404, "key_not_found", "no active API key " + id, {{"id", id}});
  Response res;
  res.status = 204;
  res.content_type.clear();
  return res;
}

// ---- Static files (the web UI)

Response Service::static_file(const Request& r) {
  return serve_static(cfg_.static_dir, r);
}

}  // namespace ork::api
