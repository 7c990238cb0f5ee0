// ork-state-firestore: the StateStore contract of docs/plugin-abi.md on Cloud Firestore (REST API v1). Every
// compare-and-swap is read + `:commit` with a `currentDocument.updateTime` precondition (retried on a lost race);
// creates use `exists: false`; a run and its tasks are one commit (chunked above the write limit, see README.md).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ork/plugin.hpp>
#include <ork/state_records.hpp>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "firestore_client.hpp"
#include "object_support.hpp"  // cfg_* readers
#include "web_util.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace ork::firestore {
namespace {

using namespace ork::records;
using common::cfg_bool;
using common::cfg_int;
using common::cfg_string;

constexpr const char* kName = "state-firestore";
constexpr int kMaxCasRounds = 200;  // lost precondition races before giving up with UNAVAILABLE

// ---- Document ids: any string; '/', '%' and the reserved shapes ("." "..", "__x__") are percent-escaped.

std::string doc_id(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool reserved = (s == "." || s == "..") || (i == 0 && c == '_' && s.size() > 1 && s[1] == '_');
    if (c == '/' || c == '%' || reserved) {
      static const char* hex = "0123456789ABCDEF";
      out += '%';
      out += hex[(static_cast<unsigned char>(c) >> 4) & 15];
      out += hex[static_cast<unsigned char>(c) & 15];
    } else {
      out += c;
    }
  }
  return out;
}

// ---- Values: Text/Time as strings (fixed-width timestamps sort as strings), Int as integers, Bool as booleans,
// Json as its compact text; a Json text over `inline_limit` bytes is split into part documents below the record
// (`<doc>/blobs/<field>.<gen>.<i>`) and the field holds {ork_blob: gen, parts: n}.

json null_value() {
  return {{"nullValue", nullptr}};
}
json str_value(const std::string& s) {
  return {{"stringValue", s}};
}

struct BlobRef {
  std::string gen;
  int64_t parts = 0;
};

std::optional<BlobRef> blob_ref(const json& v) {
  if (!v.is_object() || !v.contains("mapValue")) return std::nullopt;
  const json& f = v["mapValue"].value("fields", json::object());
  if (!f.contains("ork_blob") || !f.contains("parts")) return std::nullopt;
  return BlobRef{f["ork_blob"].value("stringValue", ""), std::stoll(f["parts"].value("integerValue", "0"))};
}

std::string part_name(const std::string& doc, const std::string& field, const std::string& gen, int64_t i) {
  return doc + "/blobs/" + field + "." + gen + "." + std::to_string(i);
}

json decode_value(const Field& f, const json& v, const std::map<std::string, std::string>& parts,
                  const std::string& doc) {
  if (!v.is_object() || v.contains("nullValue")) return nullptr;
  switch (f.kind) {
    case Kind::Text:
    case Kind::Time:
      return v.value("stringValue", "");
    case Kind::Int:
      return std::stoll(v.value("integerValue", "0"));
    case Kind::Bool:
      return v.value("booleanValue", false);
    case Kind::Json: {
      std::string text;
      if (auto ref = blob_ref(v)) {
        for (int64_t i = 0; i < ref->parts; ++i) {
          auto it = parts.find(part_name(doc, std::string(f.name), ref->gen, i));
          if (it == parts.end())
            throw PluginError(ORK_ERR_INTERNAL,
                              "state-firestore: a part of " + doc + " field " + std::string(f.name) + " is missing");
          text += it->second;
        }
      } else {
        text = v.value("stringValue", "null");
      }
      try {
        return json::parse(text);
      } catch (const json::exception& e) {
        throw PluginError(ORK_ERR_INTERNAL, "state-firestore: stored JSON in " + doc + " is unreadable: " + e.what());
      }
    }
  }
  return nullptr;
}

// A record's values in a fixed layout: every field of `t` present, defaults for absent or null ones, checked.
json normalize(const Table& t, const json& rec, const json& defaults) {
  json out = json::object();
  for (const auto& f : t.fields) {
    std::string key(f.name);
    auto it = rec.find(key);
    json v = it == rec.end() || it->is_null() ? defaults.value(key, json(nullptr)) : *it;
    check_value(t, f, v);
    out[key] = std::move(v);
  }
  return out;
}

// ---- Config

struct Config {
  std::string base_url, project, database = "(default)", prefix;
  bool emulator = false;
  int64_t page_size = 1000, max_writes = 500, inline_limit = 256 * 1024, part_size = 800 * 1000;
  int64_t max_commit_bytes = 3 * 1024 * 1024;  // a commit is one gRPC message of at most 4 MiB
};

bool valid_prefix(const std::string& p) {
  return p.size() <= 100 && std::all_of(p.begin(), p.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
         });
}

// ---- The store.

class FirestoreStateStore final : public StateStore {
 public:
  FirestoreStateStore(const json& cfg, HostServices host) : host_(host), rng_(std::random_device{}()) {
    if (!cfg.is_object()) throw_invalid("state-firestore: config must be a JSON object");
    static const char* known[] = {"project",       "database",         "collection_prefix",     "endpoint",
                                  "emulator_host", "credentials_file", "credentials_json",      "timeout_ms",
                                  "max_attempts",  "page_size",        "max_writes_per_commit", "inline_json_limit"};
    for (const auto& [k, v] : cfg.items())
      if (std::find(std::begin(known), std::end(known), k) == std::end(known))
        throw_invalid("state-firestore: unknown config field \"" + k +
                      "\" (known: project, database, collection_prefix, endpoint, emulator_host, credentials_file, "
                      "credentials_json, timeout_ms, max_attempts, page_size, max_writes_per_commit, "
                      "inline_json_limit)");
    c_.database = cfg_string(cfg, kName, "database", "(default)");
    if (c_.database.empty() || c_.database.find('/') != std::string::npos)
      throw_invalid("state-firestore: \"database\" must be a database id like (default)");
    c_.prefix = cfg_string(cfg, kName, "collection_prefix");
    if (!valid_prefix(c_.prefix))
      throw_invalid("state-firestore: \"collection_prefix\" may hold only letters, digits, '_' and '-' (<= 100)");
    std::string emu = cfg_string(cfg, kName, "emulator_host");
    if (emu.empty()) {
      const char* e = std::getenv("FIRESTORE_EMULATOR_HOST");
      if (e && *e) emu = e;
    }
    std::string endpoint = cfg_string(cfg, kName, "endpoint");
    c_.emulator = !emu.empty() && endpoint.empty();
    if (endpoint.empty()) endpoint = emu.empty() ? "https://firestore.googleapis.com" : emu;
    try {
      common::Url u = common::parse_url(endpoint);
      if (u.path != "/" || !u.query.empty()) throw std::invalid_argument("no path or query allowed");
      c_.base_url = u.origin();
    } catch (const std::exception& e) {
      throw_invalid(std::string("state-firestore: endpoint / emulator_host '") + endpoint + "': " + e.what());
    }
    c_.page_size = cfg_int(cfg, kName, "page_size", 1000, 1, 10000);
    c_.max_writes = cfg_int(cfg, kName, "max_writes_per_commit", 500, 3, 500);
    c_.inline_limit = cfg_int(cfg, kName, "inline_json_limit", 256 * 1024, 16, 900 * 1000);
    c_.part_size = std::min<int64_t>(c_.part_size, 4 * c_.inline_limit);  // 800 kB, smaller only in tests

    ClientOptions co;
    co.base_url = c_.base_url;
    co.database = c_.database;
    co.http.timeout = std::chrono::milliseconds(cfg_int(cfg, kName, "timeout_ms", 30000, 100, 600000));
    co.http.retry.max_attempts = static_cast<int>(cfg_int(cfg, kName, "max_attempts", 5, 1, 20));
    co.aborted_attempts = co.http.retry.max_attempts;
    std::string source = "none (emulator)";
    common::GoogleAuthOptions go;
    go.credentials_file = cfg_string(cfg, kName, "credentials_file");
    go.credentials_json = cfg_string(cfg, kName, "credentials_json");
    go.scope = "https://www.googleapis.com/auth/datastore";
    bool given = !go.credentials_file.empty() || !go.credentials_json.empty();
    if (!c_.emulator || given) {
      try {
        co.credentials = std::make_unique<common::GoogleCredentials>(go);
      } catch (const std::exception& e) {
        throw_invalid(std::string("state-firestore: ") + e.what());
      }
      source = co.credentials->source();
    }
    c_.project = cfg_string(cfg, kName, "project", co.credentials ? co.credentials->project_id() : "");
    if (c_.project.empty()) {
      const char* p = std::getenv("GOOGLE_CLOUD_PROJECT");
      if (p && *p) c_.project = p;
    }
    if (c_.project.empty() || c_.project.find('/') != std::string::npos)
      throw_invalid(
          "state-firestore: config needs \"project\" (or $GOOGLE_CLOUD_PROJECT, or a key file naming project_id)");
    co.project = c_.project;
    client_ = std::make_unique<Client>(std::move(co));
    host_.log(ORK_LOG_INFO, "state-firestore: project " + c_.project + " database " + c_.database + " at " +
                                c_.base_url + (c_.prefix.empty() ? "" : ", collections prefixed '" + c_.prefix + "'") +
                                " (credentials: " + source + ")");
  }

  // -- Workflows

  json put_workflow(const json& a) override {
    require_object(a, "put_workflow");
    std::string name = req_string(a, "name");
    if (!a.contains("definition") || a["definition"].is_null()) throw_invalid("put_workflow: 'definition' is required");
    std::string path = wf_path(name);
    for (int round = 0; round < kMaxCasRounds; ++round) {
      Document old = read(path);
      json prev = old.update_time.empty() ? json(nullptr) : load(kWorkflows, old);
      std::string now = now_str();
      json defaults{{"id", prev.is_null() ? json(new_uuid()) : prev["id"]}, {"created_at", now}};
      json in = a;
      if (!prev.is_null()) {
        in["id"] = prev["id"];
        in["created_at"] = prev["created_at"];
      }
      in["updated_at"] = now;
      json rec = normalize(kWorkflows, in, defaults);
      std::string token = new_token();
      json writes = json::array(), parts = json::array();
      json fields = encode(kWorkflows, rec, doc(path), parts, token);
      delete_parts(kWorkflows, old, {}, writes);
      writes.push_back(upsert(doc(path), fields, old));
      if (commit_with_parts(parts, writes, path, token)) return rec;
    }
    throw_unavailable("state-firestore: put_workflow: too much contention on workflow '" + name + "'");
  }

  json get_workflow(const json& a) override {
    require_object(a, "get_workflow");
    bool by_id = a.contains("id") && !a["id"].is_null();
    std::string key = req_string(a, by_id ? "id" : "name");
    std::optional<Document> d;
    if (by_id) {
      auto found = client_->run_query("", query(coll("workflows"), eq("id", str_value(key))), 1, 1);
      if (!found.empty()) d = std::move(found[0]);
    } else {
      Document r = read(wf_path(key));
      if (!r.update_time.empty()) d = std::move(r);
    }
    if (!d) throw_not_found(std::string(by_id ? "workflow id '" : "workflow '") + key + "' not found");
    return load(kWorkflows, *d);
  }

  json list_workflows(const json& a) override {
    require_object(a, "list_workflows");
    json q = query(coll("workflows"), nullptr);
    q["orderBy"] = {order("name", "ASCENDING")};
    return {{"workflows", load_all(kWorkflows, client_->run_query("", q, c_.page_size))}};
  }

  json delete_workflow(const json& a) override {
    require_object(a, "delete_workflow");
    std::string name = req_string(a, "name");
    std::string path = wf_path(name);
    for (int round = 0; round < kMaxCasRounds; ++round) {
      Document old = read(path);
      if (old.update_time.empty()) throw_not_found("workflow '" + name + "' not found");
      json writes = json::array();
      delete_parts(kWorkflows, old, {}, writes);
      writes.push_back({{"delete", old.name}, {"currentDocument", {{"updateTime", old.update_time}}}});
      writes.push_back({{"delete", doc(sched_path(name))}});
      ApiError err;
      if (client_->commit(writes, &err)) return json::object();
      if (err.attempts > 1 && read(path).update_time.empty()) return json::object();  // our retry had applied
    }
    throw_unavailable("state-firestore: delete_workflow: too much contention on workflow '" + name + "'");
  }

  // -- Runs and task runs

  json create_run(const json& a) override {
    auto [run_in, run_id, tasks] = create_run_args(a);
    std::string now = now_str();
    json run = normalize(kRuns, run_in, {{"status", "pending"}, {"created_at", now}});
    std::vector<json> rows = task_rows("create_run", tasks, run_id, run["created_at"]);
    check_unique("create_run", rows, {}, run_id);

    std::string token = new_token(), rpath = run_path(run_id);
    json writes = json::array(), parts = json::array();
    json fields = encode(kRuns, run, doc(rpath), parts, token);
    writes.push_back(
        {{"update", {{"name", doc(rpath)}, {"fields", fields}}}, {"currentDocument", {{"exists", false}}}});
    for (const json& t : rows) add_task_writes(rpath, t, token, writes, parts);
    auto chunks = chunk(writes, 1);
    if (chunks.size() == 1) {
      writes[0]["update"]["fields"]["ork_ready"] = {{"booleanValue", true}};
      ApiError err;
      if (commit_with_parts(parts, writes, rpath, token, &err)) return json::object();
      throw_conflict("create_run: run '" + run_id + "' (or one of its task ids) already exists: " + err.message);
    }
    // Too many writes for one commit: the run document goes first, hidden (ork_ready false: every read treats it as
    // missing), the tasks follow, and the last commit makes the run visible. A failure removes what was written.
    chunks[0][0]["update"]["fields"]["ork_ready"] = {{"booleanValue", false}};
    chunks.back().push_back({{"update", {{"name", doc(rpath)}, {"fields", {{"ork_ready", {{"booleanValue", true}}}}}}},
                             {"updateMask", {{"fieldPaths", {"ork_ready"}}}},
                             {"currentDocument", {{"exists", true}}}});
    write_chunks(chunks, parts, rpath, token, "create_run", [&](const ApiError& err) {
      throw_conflict("create_run: run '" + run_id + "' (or one of its task ids) already exists: " + err.message);
    });
    return json::object();
  }

  json add_task_runs(const json& a) override {
    require_object(a, "add_task_runs");
    std::string run_id = req_string(a, "run_id");
    if (!a.contains("tasks") || !a["tasks"].is_array()) throw_invalid("add_task_runs: 'tasks' must be an array");
    std::vector<json> rows = task_rows("add_task_runs", a["tasks"], run_id, json(now_str()));
    check_unique("add_task_runs", rows, {}, run_id);
    std::string rpath = run_path(run_id);
    for (int round = 0; round < kMaxCasRounds; ++round) {
      Document run = read(rpath);
      if (!visible(run)) throw_not_found("run '" + run_id + "' does not exist");
      if (rows.empty()) return json::object();
      check_unique("add_task_runs", rows, existing_slots(rpath, rows), run_id);
      // Touching the run document under its updateTime serializes expansions of one run: a racing one fails the
      // precondition, reads again and then sees these tasks.
      std::string token = new_token();
      json writes = json::array(), parts = json::array();
      writes.push_back({{"update", {{"name", run.name}, {"fields", {{"ork_w", str_value(token)}}}}},
                        {"updateMask", {{"fieldPaths", {"ork_w"}}}},
                        {"currentDocument", {{"updateTime", run.update_time}}}});
      for (const json& t : rows) add_task_writes(rpath, t, token, writes, parts);
      auto chunks = chunk(writes, 0);
      if (chunks.size() == 1) {
        ApiError err;
        if (commit_with_parts(parts, writes, rpath, token, &err)) return json::object();
        if (err.status == "ALREADY_EXISTS")
          throw_conflict("add_task_runs: a task id already exists in run '" + run_id + "'; nothing was written");
        continue;  // the run changed meanwhile: check again
      }
      bool lost = false;
      write_chunks(chunks, parts, rpath, token, "add_task_runs", [&](const ApiError& err) {
        if (err.status == "ALREADY_EXISTS")
          throw_conflict("add_task_runs: a task id already exists in run '" + run_id + "'; nothing was written");
        lost = true;
      });
      if (!lost) return json::object();
    }
    throw_unavailable("state-firestore: add_task_runs: too much contention on run '" + run_id + "'");
  }

  json get_run(const json& a) override {
    require_object(a, "get_run");
    std::string id = req_string(a, "id");
    Document d = read(run_path(id));
    if (!visible(d)) throw_not_found("run '" + id + "' not found");
    return load(kRuns, d);
  }

  json list_runs(const json& a) override {
    require_object(a, "list_runs");
    json where = run_filters(a, "list_runs");
    int64_t limit = opt_int(a, "limit", 100, 0), offset = opt_int(a, "offset", 0, 0);
    if (where.is_null()) return {{"runs", json::array()}, {"total", 0}};
    json q = query(coll("runs"), where);
    int64_t total = client_->count("", q);
    json runs = json::array();
    if (limit > 0 && offset < total) {
      q["orderBy"] = {order("created_at", "DESCENDING"), order("id", "ASCENDING")};
      if (offset > 0) q["offset"] = std::min<int64_t>(offset, INT32_MAX);
      runs = load_all(kRuns, client_->run_query("", q, std::min(c_.page_size, limit), limit));
    }
    return {{"runs", std::move(runs)}, {"total", total}};
  }

  json list_runs_page(const json& a) override {
    require_object(a, "list_runs_page");
    json where = run_filters(a, "list_runs_page");
    json after = nullptr;
    if (a.contains("after") && !a["after"].is_null()) {
      if (!a["after"].is_object()) throw_invalid("list_runs_page: 'after' must be {created_at, id}");
      after = {{"values", {str_value(req_time(a["after"], "created_at")), str_value(req_string(a["after"], "id"))}},
               {"before", false}};
    }
    int64_t limit = std::min<int64_t>(opt_int(a, "limit", 100, 0), INT32_MAX - 1);
    if (where.is_null()) return {{"runs", json::array()}, {"next", nullptr}};
    json q = query(coll("runs"), where);
    q["orderBy"] = {order("created_at", "DESCENDING"), order("id", "ASCENDING")};
    if (!after.is_null()) q["startAt"] = after;
    json runs = load_all(kRuns, client_->run_query("", q, std::min(c_.page_size, limit + 1), limit + 1));
    return keyset_page(std::move(runs), limit);
  }

  json update_run(const json& a) override {
    require_object(a, "update_run");
    return update(kRuns, a, false);
  }

  json get_task_runs(const json& a) override {
    require_object(a, "get_task_runs");
    std::string run_id = req_string(a, "run_id");
    json where = nullptr;
    if (a.contains("status") && !a["status"].is_null()) {
      where = status_in(a["status"], "get_task_runs");
      if (where.is_null()) return {{"tasks", json::array()}};
    }
    std::string rpath = run_path(run_id);
    json q = query("tasks", where);
    q["orderBy"] = {order("seq", "ASCENDING"), order("parallel_index", "ASCENDING")};
    json tasks = load_all(kTasks, client_->run_query(rpath, q, c_.page_size));
    if (tasks.empty() && !visible(read(rpath))) throw_not_found("run '" + run_id + "' not found");
    return {{"tasks", std::move(tasks)}};
  }

  json update_task_run(const json& a) override {
    require_object(a, "update_task_run");
    return update(kTasks, a, true);
  }

  json try_acquire_task(const json& a) override {
    require_object(a, "try_acquire_task");
    std::string run_id = req_string(a, "run_id"), id = req_string(a, "id");
    auto rec = cas(
        kTasks, task_path(run_id, id), [](const json& t) { return t["status"] == "pending"; },
        [&](const json& t) {
          return json{{"status", "dispatched"},     {"attempt", t["attempt"].get<int64_t>() + 1},
                      {"dispatched_at", now_str()}, {"executor_id", nullptr},
                      {"heartbeat_at", nullptr},    {"started_at", nullptr},
                      {"finished_at", nullptr},     {"error", nullptr}};
        },
        "task run '" + id + "' of run '" + run_id + "'");
    if (!rec) return {{"acquired", false}, {"task", nullptr}};
    return {{"acquired", true}, {"task", std::move(*rec)}};
  }

  // -- Leases

  json acquire_lease(const json& a) override {
    require_object(a, "acquire_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    int64_t ttl = ttl_ms(a);
    auto rec = cas(
        kRuns, run_path(run_id),
        [&](const json& r) {
          std::string now = format_time(host_.now_ms());
          return (r["status"] == "pending" || r["status"] == "running") &&
                 (r["owner"].is_null() || r["owner"] == owner ||
                  (r["lease_expires"].is_string() && r["lease_expires"].get<std::string>() < now));
        },
        [&](const json&) {
          return json{{"owner", owner}, {"lease_expires", format_time(host_.now_ms() + ttl)}};
        },
        "run '" + run_id + "'");
    return {{"acquired", rec.has_value()}};
  }

  json renew_lease(const json& a) override {
    require_object(a, "renew_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    int64_t ttl = ttl_ms(a);
    auto rec = cas(
        kRuns, run_path(run_id), [&](const json& r) { return r["owner"] == owner; },
        [&](const json&) {
          return json{{"lease_expires", format_time(host_.now_ms() + ttl)}};
        },
        "run '" + run_id + "'");
    return {{"renewed", rec.has_value()}};
  }

  json release_lease(const json& a) override {
    require_object(a, "release_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    cas(
        kRuns, run_path(run_id), [&](const json& r) { return r["owner"] == owner; },
        [](const json&) {
          return json{{"owner", nullptr}, {"lease_expires", nullptr}};
        },
        "run '" + run_id + "'");
    return json::object();
  }

  // -- Schedules

  json put_schedule(const json& a) override {
    require_object(a, "put_schedule");
    std::string name = req_string(a, "workflow_name");
    req_string(a, "cron_expr");
    req_time(a, "next_run");
    std::string path = sched_path(name);
    for (int round = 0; round < kMaxCasRounds; ++round) {
      Document old = read(path);
      json in = a;
      if (!old.update_time.empty()) {
        json prev = load(kSchedules, old);
        in["id"] = prev["id"];
        in["created_at"] = prev["created_at"];
      }
      json rec = normalize(kSchedules, in, {{"id", new_uuid()}, {"enabled", true}, {"created_at", now_str()}});
      std::string token = new_token();
      json writes = json::array(), parts = json::array();
      json fields = encode(kSchedules, rec, doc(path), parts, token);
      writes.push_back(upsert(doc(path), fields, old));
      if (commit_with_parts(parts, writes, path, token)) return rec;
    }
    throw_unavailable("state-firestore: put_schedule: too much contention on '" + name + "'");
  }

  json get_due_schedules(const json& a) override {
    require_object(a, "get_due_schedules");
    std::string now = req_time(a, "now");
    json q = query(coll("schedules"), all_of({eq("enabled", {{"booleanValue", true}}),
                                              field_filter("next_run", "LESS_THAN_OR_EQUAL", str_value(now))}));
    q["orderBy"] = {order("next_run", "ASCENDING"), order("id", "ASCENDING")};
    return {{"schedules", load_all(kSchedules, client_->run_query("", q, c_.page_size))}};
  }

  json claim_schedule(const json& a) override {
    require_object(a, "claim_schedule");
    std::string id = req_string(a, "id");
    std::string expect = req_time(a, "expect_next_run"), next = req_time(a, "next_run");
    auto found = client_->run_query("", query(coll("schedules"), eq("id", str_value(id))), 1, 1);
    if (found.empty()) throw_not_found("schedule '" + id + "' not found");
    std::string path = found[0].name.substr(client_->root().size() + 1);
    auto rec = cas(
        kSchedules, path, [&](const json& s) { return s["id"] == id && s["next_run"] == expect; },
        [&](const json&) {
          return json{{"next_run", next}};
        },
        "schedule '" + id + "'");
    return {{"claimed", rec.has_value()}};
  }

 private:
  // ---- Paths (below the documents root) and names (full resource names).

  std::string coll(const char* c) const { return c_.prefix + c; }
  std::string wf_path(const std::string& name) const { return coll("workflows") + "/" + doc_id(name); }
  std::string sched_path(const std::string& name) const { return coll("schedules") + "/" + doc_id(name); }
  std::string run_path(const std::string& id) const { return coll("runs") + "/" + doc_id(id); }
  std::string task_path(const std::string& run, const std::string& id) const {
    return run_path(run) + "/tasks/" + doc_id(id);
  }
  std::string doc(const std::string& path) const { return client_->doc_name(path); }

  Document read(const std::string& path) const { return std::move(client_->batch_get({doc(path)})[0]); }

  static bool visible(const Document& d) {
    if (d.update_time.empty()) return false;
    auto it = d.fields.find("ork_ready");
    return it == d.fields.end() || it->value("booleanValue", true);
  }

  // ---- Queries

  static json order(const char* field, const char* dir) {
    return {{"field", {{"fieldPath", field}}}, {"direction", dir}};
  }
  static json field_filter(const char* field, const char* op, json value) {
    return {{"fieldFilter", {{"field", {{"fieldPath", field}}}, {"op", op}, {"value", std::move(value)}}}};
  }
  static json eq(const char* field, json value) { return field_filter(field, "EQUAL", std::move(value)); }
  static json all_of(json filters) {
    if (filters.size() == 1) return filters[0];
    return {{"compositeFilter", {{"op", "AND"}, {"filters", std::move(filters)}}}};
  }
  static json query(const std::string& collection, json where) {
    json q{{"from", {{{"collectionId", collection}}}}};
    if (!where.is_null()) q["where"] = std::move(where);
    return q;
  }

  // `status IN [...]`, or null when the list is empty (matches nothing).
  static json status_in(const json& st, const char* op) {
    if (!st.is_array()) throw_invalid(std::string(op) + ": 'status' must be an array of strings");
    json values = json::array();
    for (const auto& s : st) {
      if (!s.is_string()) throw_invalid(std::string(op) + ": 'status' must be an array of strings");
      values.push_back(str_value(s.get<std::string>()));
    }
    if (values.empty()) return nullptr;
    if (values.size() > 30) throw_invalid(std::string(op) + ": at most 30 statuses");
    return field_filter("status", "IN", {{"arrayValue", {{"values", values}}}});
  }

  // The filters of list_runs / list_runs_page; null when they match nothing.
  static json run_filters(const json& a, const char* op) {
    json filters = json::array({eq("ork_ready", {{"booleanValue", true}})});
    if (a.contains("workflow_name") && !a["workflow_name"].is_null())
      filters.push_back(eq("workflow_name", str_value(req_string(a, "workflow_name"))));
    if (a.contains("status") && !a["status"].is_null()) {
      json in = status_in(a["status"], op);
      if (in.is_null()) return nullptr;
      filters.push_back(std::move(in));
    }
    return all_of(std::move(filters));
  }

  // ---- Records <-> documents

  // The Firestore fields of `rec` (a normalized record), adding the part documents of big JSON fields to `parts`.
  json encode(const Table& t, const json& rec, const std::string& name, json& parts, const std::string& token) {
    json fields = json::object();
    for (const auto& f : t.fields) {
      std::string key(f.name);
      auto it = rec.find(key);
      if (it == rec.end()) continue;
      fields[key] = encode_value(f, *it, name, parts);
    }
    fields["ork_w"] = str_value(token);
    return fields;
  }

  json encode_value(const Field& f, const json& v, const std::string& name, json& parts) {
    if (v.is_null()) return null_value();
    switch (f.kind) {
      case Kind::Text:
      case Kind::Time:
        return str_value(v.get<std::string>());
      case Kind::Int:
        return {{"integerValue", std::to_string(v.get<int64_t>())}};
      case Kind::Bool:
        return {{"booleanValue", v.get<bool>()}};
      case Kind::Json:
        break;
    }
    std::string text = v.dump();
    if (static_cast<int64_t>(text.size()) <= c_.inline_limit) return str_value(text);
    std::string gen = new_token();
    int64_t n = 0;
    for (size_t pos = 0; pos < text.size(); ++n) {
      size_t end = std::min(text.size(), pos + static_cast<size_t>(c_.part_size));
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;  // whole UTF-8
      parts.push_back({{"update",
                        {{"name", part_name(name, std::string(f.name), gen, n)},
                         {"fields", {{"data", str_value(text.substr(pos, end - pos))}}}}}});
      pos = end;
    }
    return {
        {"mapValue", {{"fields", {{"ork_blob", str_value(gen)}, {"parts", {{"integerValue", std::to_string(n)}}}}}}}};
  }

  // Deletes of the part documents `old` refers to, for the fields in `only` (all when empty).
  static void delete_parts(const Table& t, const Document& old, const std::set<std::string>& only, json& writes) {
    if (old.update_time.empty()) return;
    for (const auto& f : t.fields) {
      if (f.kind != Kind::Json || (!only.empty() && !only.count(std::string(f.name)))) continue;
      auto it = old.fields.find(std::string(f.name));
      if (it == old.fields.end()) continue;
      if (auto ref = blob_ref(*it))
        for (int64_t i = 0; i < ref->parts; ++i)
          writes.push_back({{"delete", part_name(old.name, std::string(f.name), ref->gen, i)}});
    }
  }

  // A write of `fields` to `name`: created when `old` is missing, else replaced under old's updateTime.
  static json upsert(const std::string& name, const json& fields, const Document& old) {
    json pre = old.update_time.empty() ? json{{"exists", false}} : json{{"updateTime", old.update_time}};
    return {{"update", {{"name", name}, {"fields", fields}}}, {"currentDocument", pre}};
  }

  json load(const Table& t, const Document& d) { return load_all(t, {d})[0]; }

  json load_all(const Table& t, const std::vector<Document>& docs) {
    std::vector<std::string> names;
    for (const auto& d : docs)
      for (const auto& f : t.fields) {
        if (f.kind != Kind::Json) continue;
        auto it = d.fields.find(std::string(f.name));
        if (it == d.fields.end()) continue;
        if (auto ref = blob_ref(*it))
          for (int64_t i = 0; i < ref->parts; ++i) names.push_back(part_name(d.name, std::string(f.name), ref->gen, i));
      }
    std::map<std::string, std::string> parts;
    constexpr size_t kPartsPerRead = 4;  // answers stay under the 4 MiB message limit
    for (size_t from = 0; from < names.size(); from += kPartsPerRead) {
      std::vector<std::string> some(
          names.begin() + static_cast<std::ptrdiff_t>(from),
          names.begin() + static_cast<std::ptrdiff_t>(std::min(names.size(), from + kPartsPerRead)));
      for (auto& p : client_->batch_get(some))
        if (!p.update_time.empty()) parts[p.name] = p.fields.value("data", json::object()).value("stringValue", "");
    }
    json out = json::array();
    for (const auto& d : docs) {
      json rec = json::object();
      for (const auto& f : t.fields) {
        auto it = d.fields.find(std::string(f.name));
        rec[std::string(f.name)] = it == d.fields.end() ? json(nullptr) : decode_value(f, *it, parts, d.name);
      }
      out.push_back(std::move(rec));
    }
    return out;
  }

  // ---- Compare-and-swap

  // After a failed precondition on a request that was sent more than once: did an earlier attempt of ours apply?
  bool applied(const std::string& path, const std::string& token, const ApiError& err) const {
    if (err.attempts <= 1) return false;
    Document d = read(path);
    auto it = d.fields.find("ork_w");
    return it != d.fields.end() && it->value("stringValue", "") == token;
  }

  // Reads the record at `path`; when `pred` holds, writes `change(record)` under the read's updateTime and returns
  // the record after the change; std::nullopt when `pred` does not hold. A lost race reads again.
  std::optional<json> cas(const Table& t, const std::string& path, const std::function<bool(const json&)>& pred,
                          const std::function<json(const json&)>& change, const std::string& what) {
    for (int round = 0; round < kMaxCasRounds; ++round) {
      Document d = read(path);
      if (!visible(d)) throw_not_found(what + " not found");
      json rec = load(t, d);
      if (!pred(rec)) return std::nullopt;
      json set = change(rec);
      if (set.empty()) return rec;
      std::string token = new_token();
      json writes = json::array(), parts = json::array();
      json fields = json::object(), mask = json::array();
      std::set<std::string> replaced;
      for (const auto& [k, v] : set.items()) {
        const Field* f = find_field(t, k);
        fields[k] = encode_value(*f, v, d.name, parts);
        mask.push_back(k);
        replaced.insert(k);
        rec[k] = v;
      }
      delete_parts(t, d, replaced, writes);
      fields["ork_w"] = str_value(token);
      mask.push_back("ork_w");
      writes.push_back({{"update", {{"name", d.name}, {"fields", fields}}},
                        {"updateMask", {{"fieldPaths", mask}}},
                        {"currentDocument", {{"updateTime", d.update_time}}}});
      if (commit_with_parts(parts, writes, path, token)) return rec;
    }
    throw_unavailable("state-firestore: too much contention on " + what);
  }

  // `{id, [run_id,] set, expect?}`; NOT_FOUND only when the record does not exist.
  json update(const Table& t, const json& a, bool task) {
    std::string id = req_string(a, "id");
    std::string path = task ? task_path(req_string(a, "run_id"), id) : run_path(id);
    auto sit = a.find("set");
    if (sit == a.end() || !sit->is_object()) throw_invalid("'set' is required and must be an object");
    for (const auto& [k, v] : sit->items()) {
      const Field* f = find_field(t, k);
      if (!f || k == "id" || k == "run_id")
        throw_invalid("'set' names unknown or read-only field '" + k + "' of " + std::string(t.name));
      check_value(t, *f, v);
    }
    json expect = json::object();
    if (auto eit = a.find("expect"); eit != a.end() && !eit->is_null()) {
      if (!eit->is_object()) throw_invalid("'expect' must be an object");
      for (const auto& [k, v] : eit->items()) {
        const Field* f = find_field(t, k);
        if (!f) throw_invalid("'expect' names unknown field '" + k + "' of " + std::string(t.name));
        check_value(t, *f, v, true);
      }
      expect = *eit;
    }
    std::string what = std::string(task ? "task run '" : "run '") + id + "'";
    auto rec = cas(
        t, path,
        [&](const json& r) {
          for (const auto& [k, v] : expect.items())
            if (r[k] != v) return false;
          return true;
        },
        [&](const json&) { return *sit; }, what);
    return {{"updated", rec.has_value()}};
  }

  // ---- Task rows

  std::vector<json> task_rows(const std::string& op, const json& tasks, const std::string& run_id,
                              const json& created) {
    std::vector<json> rows;
    rows.reserve(tasks.size());
    json defaults{{"run_id", run_id}, {"status", "pending"},   {"attempt", 0},
                  {"max_retries", 0}, {"created_at", created}, {"seq", 0}};
    for (size_t i = 0; i < tasks.size(); ++i) {
      const json& t = tasks[i];
      std::string where = op + ": tasks[" + std::to_string(i) + "]";
      if (!t.is_object()) throw_invalid(where + " must be an object");
      auto rid = t.find("run_id");
      if (rid != t.end() && !rid->is_null() && *rid != run_id)
        throw_invalid(where + ".run_id differs from the run's id");
      try {
        req_string(t, "id");
        req_string(t, "task_name");
        defaults["seq"] = static_cast<int64_t>(i);
        json row = normalize(kTasks, t, defaults);
        row["run_id"] = run_id;
        rows.push_back(std::move(row));
      } catch (const PluginError& e) {
        throw_invalid(where + ": " + e.what());
      }
    }
    return rows;
  }

  static std::string slot(const json& t) {
    return t["task_name"].get<std::string>() + '\x1f' +
           (t["parallel_index"].is_null() ? std::string("null") : std::to_string(t["parallel_index"].get<int64_t>()));
  }

  // CONFLICT when two rows (or a row and `taken`, ids and slots already in the run) share an id or a slot.
  static void check_unique(const std::string& op, const std::vector<json>& rows, std::set<std::string> taken,
                           const std::string& run_id) {
    for (const auto& t : rows) {
      if (!taken.insert("id\x1f" + t["id"].get<std::string>()).second || !taken.insert(slot(t)).second)
        throw_conflict(op + ": duplicate task id or (task_name, parallel_index) in run '" + run_id + "' (task '" +
                       t["task_name"].get<std::string>() + "'); nothing was written");
    }
  }

  // Ids and slots of the run's existing tasks whose names appear in `rows` (IN queries of up to 30 names).
  std::set<std::string> existing_slots(const std::string& rpath, const std::vector<json>& rows) {
    std::set<std::string> names;
    for (const auto& t : rows) names.insert(t["task_name"].get<std::string>());
    std::set<std::string> out;
    std::vector<std::string> all(names.begin(), names.end());
    for (size_t from = 0; from < all.size(); from += 30) {
      json values = json::array();
      for (size_t i = from; i < std::min(all.size(), from + 30); ++i) values.push_back(str_value(all[i]));
      json q = query("tasks", field_filter("task_name", "IN", {{"arrayValue", {{"values", values}}}}));
      q["select"] = {
          {"fields", {{{"fieldPath", "id"}}, {{"fieldPath", "task_name"}}, {{"fieldPath", "parallel_index"}}}}};
      for (const auto& d : client_->run_query(rpath, q, c_.page_size)) {
        json t{{"id", d.fields.value("id", json::object()).value("stringValue", "")},
               {"task_name", d.fields.value("task_name", json::object()).value("stringValue", "")},
               {"parallel_index", nullptr}};
        const json& pi = d.fields.value("parallel_index", json::object());
        if (pi.contains("integerValue")) t["parallel_index"] = std::stoll(pi["integerValue"].get<std::string>());
        out.insert("id\x1f" + t["id"].get<std::string>());
        out.insert(slot(t));
      }
    }
    return out;
  }

  void add_task_writes(const std::string& rpath, const json& t, const std::string& token, json& writes, json& parts) {
    std::string name = doc(rpath + "/tasks/" + doc_id(t["id"].get<std::string>()));
    json fields = encode(kTasks, t, name, parts, token);
    writes.push_back({{"update", {{"name", name}, {"fields", fields}}}, {"currentDocument", {{"exists", false}}}});
  }

  // `writes` cut into commits of at most max_writes writes and about max_commit_bytes; `reserve` writes of room are
  // left in the last one.
  std::vector<json> chunk(const json& writes, size_t reserve) const {
    std::vector<json> out{json::array()};
    size_t bytes = 0;
    for (const auto& w : writes) {
      size_t size = w.dump().size();
      if (!out.back().empty() && (out.back().size() + 1 > static_cast<size_t>(c_.max_writes) ||
                                  bytes + size > static_cast<size_t>(c_.max_commit_bytes))) {
        out.push_back(json::array());
        bytes = 0;
      }
      out.back().push_back(w);
      bytes += size;
    }
    if (out.back().size() + reserve > static_cast<size_t>(c_.max_writes)) out.push_back(json::array());
    return out;
  }

  // Writes `parts`, then commits `chunks` in order. A precondition failure of the first calls `on_first_lost` (the
  // caller throws or retries); a failure of a later one deletes what the earlier ones wrote (best effort) and
  // throws. The parts are deleted again on any failure.
  void write_chunks(const std::vector<json>& chunks, const json& parts, const std::string& rpath,
                    const std::string& token, const std::string& op,
                    const std::function<void(const ApiError&)>& on_first_lost) {
    write_parts(parts);
    for (size_t i = 0; i < chunks.size(); ++i) {
      ApiError err;
      bool ok = false;
      std::string failure;
      try {
        ok = client_->commit(chunks[i], &err) || (i == 0 && applied(rpath, token, err));
        if (!ok) failure = err.status + ": " + err.message;
      } catch (const PluginError& e) {
        if (i == 0) {
          drop(parts);
          throw;
        }
        failure = e.what();
      }
      if (ok) continue;
      drop(parts);
      if (i == 0) return on_first_lost(err);
      undo(std::vector<json>(chunks.begin(), chunks.begin() + static_cast<std::ptrdiff_t>(i)));
      throw PluginError(err.status == "ALREADY_EXISTS" ? ORK_ERR_CONFLICT : ORK_ERR_UNAVAILABLE,
                        "state-firestore: " + op + ": commit " + std::to_string(i + 1) + " of " +
                            std::to_string(chunks.size()) + " failed (" + failure +
                            "); the earlier ones were rolled back");
    }
  }

  // Part documents are written in commits of their own before the commit that refers to them (together they may
  // exceed a commit's 4 MiB limit); until then nothing refers to them. On failure they are deleted again.
  void write_parts(const json& parts) {
    try {
      for (const auto& c : chunk(parts, 0))
        if (!c.empty()) client_->commit(c, nullptr);
    } catch (...) {
      drop(parts);
      throw;
    }
  }

  void drop(const json& parts) {
    if (parts.empty()) return;
    undo({parts});
  }

  // `parts`, then `writes` in one commit (counted as done when a lost answer's retry finds our token at `path`).
  bool commit_with_parts(const json& parts, const json& writes, const std::string& path, const std::string& token,
                         ApiError* error = nullptr) {
    write_parts(parts);
    ApiError err;
    if (client_->commit(writes, &err) || applied(path, token, err)) return true;
    drop(parts);
    if (error) *error = err;
    return false;
  }

  // Deletes the documents that `chunks` created (whole-document writes; masked updates touch existing ones).
  void undo(const std::vector<json>& chunks) {
    json deletes = json::array();
    for (const auto& c : chunks)
      for (const auto& w : c) {
        if (!w.contains("update") || w.contains("updateMask")) continue;
        deletes.push_back({{"delete", w["update"]["name"]}});
      }
    try {
      for (const auto& c : chunk(deletes, 0))
        if (!c.empty()) client_->commit(c, nullptr);
    } catch (const std::exception& e) {
      host_.log(ORK_LOG_WARN, std::string("state-firestore: rolling back a chunked write failed: ") + e.what());
    }
  }

  int64_t ttl_ms(const json& a) const {
    if (!a.contains("ttl_ms")) throw_invalid("'ttl_ms' is required");
    return opt_int(a, "ttl_ms", 0, 0);
  }

  std::string now_str() const { return format_time(host_.now_ms()); }

  std::string new_uuid() {
    std::lock_guard lk(rng_mu_);
    uint64_t hi = rng_(), lo = rng_();
    return uuid_v4(hi, lo);
  }

  // A random 64-bit token in hex: write markers and part generations.
  std::string new_token() {
    std::lock_guard lk(rng_mu_);
    char buf[20];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng_()));
    return buf;
  }

  HostServices host_;
  Config c_;
  std::unique_ptr<Client> client_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

}  // namespace
}  // namespace ork::firestore

ORK_STATE_PLUGIN(ork::firestore::FirestoreStateStore, "firestore", ORK_PLUGIN_VERSION)
