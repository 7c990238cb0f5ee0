// ork-state-dynamodb: the StateStore contract of docs/plugin-abi.md on one DynamoDB table (layout, indexes and the
// consistency story in docs/state-dynamodb.md). Conditional writes for every compare-and-swap, TransactWriteItems for
// run creation (up to 100 items; larger runs are written in chunks behind an invisible "creating" run item), JSON
// values above 64 KB spilled to blob items.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ork/plugin.hpp>
#include <ork/state_records.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "crypto.hpp"
#include "dynamo_client.hpp"
#include "object_support.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace ork::dynamo {
namespace {

using namespace ork::records;
constexpr const char* kName = "state-dynamodb";
constexpr size_t kInlineMax = 64 * 1024;  // JSON values longer than this go to blob items
constexpr size_t kBlobPart = 300 * 1024;  // bytes of one blob item (the item limit is 400 KB)
constexpr size_t kTxItems = 100;          // TransactWriteItems limit
constexpr size_t kTxBytes = 3'500'000;    // below the 4 MB request limit
constexpr size_t kBatchItems = 25;        // BatchWriteItem limit
const char* const kSpill[] = {"__ref", "__n", "__h"};

// ---- Attribute values

json S(std::string s) {
  return {{"S", std::move(s)}};
}
json N(int64_t n) {
  return {{"N", std::to_string(n)}};
}
json B(bool b) {
  return {{"BOOL", b}};
}
json key(std::string pk, std::string sk) {
  return {{"pk", S(std::move(pk))}, {"sk", S(std::move(sk))}};
}
std::string str(const json& item, const char* attr) {
  auto it = item.find(attr);
  if (it == item.end() || !it->is_object() || !it->contains("S")) return "";
  return (*it)["S"].get<std::string>();
}
int64_t num(const json& item, const std::string& attr) {
  auto it = item.find(attr);
  if (it == item.end() || !it->is_object() || !it->contains("N")) return 0;
  return std::stoll((*it)["N"].get<std::string>());
}

// ---- Keys and index values

std::string run_pk(const std::string& run_id) {
  return "RUN#" + run_id;
}
std::string task_sk(const std::string& id) {
  return "TASK#" + id;
}
std::string slot_sk(const json& task) {
  const json& idx = task["parallel_index"];
  return "SLOT#" + (idx.is_null() ? std::string("-") : std::to_string(idx.get<int64_t>())) + "#" +
         common::sha256_hex(task["task_name"].get<std::string>());
}
// Runs sort newest created_at first, then id ascending: the index is read backwards, so the id is stored inverted
// (each byte as 255 - b in hex, "g" closing it so a shorter id sorts as the larger).
std::string run_order_key(const std::string& created_at, const std::string& id) {
  static const char* digits = "0123456789abcdef";
  std::string k = created_at + "|";
  for (unsigned char c : id) {
    unsigned char v = 255 - c;
    k += digits[v >> 4];
    k += digits[v & 15];
  }
  return k + "g";
}

// Every field of `t` from `rec` (missing or null ones from `defaults`, else null), each checked.
json normalize(const Table& t, const json& rec, const json& defaults) {
  json out = json::object();
  for (const auto& f : t.fields) {
    std::string k(f.name);
    auto it = rec.find(k);
    json v = it != rec.end() && !it->is_null() ? *it : defaults.value(k, json(nullptr));
    check_value(t, f, v);
    out[k] = std::move(v);
  }
  return out;
}

// A small expression builder: attribute names and values as placeholders.
struct Expr {
  std::map<std::string, std::string> name_of;
  json names = json::object(), values = json::object();
  std::string name(const std::string& attr) {
    auto it = name_of.find(attr);
    if (it != name_of.end()) return it->second;
    std::string k = "#a" + std::to_string(name_of.size());
    name_of[attr] = k;
    names[k] = attr;
    return k;
  }
  std::string value(json av) {
    std::string k = ":v" + std::to_string(values.size());
    values[k] = std::move(av);
    return k;
  }
  void into(json& req) const {
    if (!names.empty()) req["ExpressionAttributeNames"] = names;
    if (!values.empty()) req["ExpressionAttributeValues"] = values;
  }
};

std::string in_list(Expr& e, const std::string& attr, const json& list) {
  std::string s = e.name(attr) + " IN (";
  for (size_t i = 0; i < list.size(); ++i) s += (i ? ", " : "") + e.value(S(list[i].get<std::string>()));
  return s + ")";
}

// A status filter argument: null (none) or an array of strings.
json status_filter(const json& a, const char* op) {
  if (!a.contains("status") || a["status"].is_null()) return nullptr;
  const json& st = a["status"];
  if (!st.is_array()) throw_invalid(std::string(op) + ": 'status' must be an array of strings");
  for (const auto& s : st)
    if (!s.is_string()) throw_invalid(std::string(op) + ": 'status' must be an array of strings");
  return st;
}

// Items to write for one record: the record's attributes and the blob items its large JSON values spilled to.
struct Encoded {
  json item = json::object();
  std::vector<json> blobs;
};

class DynamoStateStore final : public StateStore {
 public:
  static constexpr const char* kInfo =
      R"({"description": "Workflow state in one Amazon DynamoDB table", "capabilities": ["conditional_writes", "transactions", "multi_host"]})";

  DynamoStateStore(const json& cfg, HostServices host) : host_(host) {
    if (!cfg.is_object()) throw_invalid("state-dynamodb: config must be an object");
    static const char* known[] = {"table",         "table_prefix",      "region",        "endpoint",
                                  "access_key_id", "secret_access_key", "session_token", "profile",
                                  "create_tables", "timeout_ms",        "max_attempts",  "transactions"};
    for (const auto& [k, v] : cfg.items())
      if (std::find(std::begin(known), std::end(known), k) == std::end(known))
        throw_invalid("state-dynamodb: unknown config field \"" + k +
                      "\" (known: table, table_prefix, region, endpoint, access_key_id, secret_access_key, "
                      "session_token, profile, create_tables, timeout_ms, max_attempts, transactions)");
    using common::cfg_bool, common::cfg_int, common::cfg_string;
    table_ = cfg_string(cfg, kName, "table_prefix") + cfg_string(cfg, kName, "table", "ork");
    if (table_.size() < 3 || table_.size() > 255 || !std::all_of(table_.begin(), table_.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        }))
      throw_invalid("state-dynamodb: table name '" + table_ +
                    "' (table_prefix + table) must be 3-255 characters of a-z A-Z 0-9 _ - .");
    ClientOptions co;
    co.endpoint = cfg_string(cfg, kName, "endpoint");
    co.region = cfg_string(cfg, kName, "region");
    co.credentials.access_key_id = cfg_string(cfg, kName, "access_key_id");
    co.credentials.secret_access_key = cfg_string(cfg, kName, "secret_access_key");
    co.credentials.session_token = cfg_string(cfg, kName, "session_token");
    co.credentials.profile = cfg_string(cfg, kName, "profile");
    if (co.credentials.access_key_id.empty() != co.credentials.secret_access_key.empty())
      throw_invalid("state-dynamodb: access_key_id and secret_access_key go together");
    co.timeout = std::chrono::milliseconds(cfg_int(cfg, kName, "timeout_ms", 10000, 100, 600000));
    co.max_attempts = static_cast<int>(cfg_int(cfg, kName, "max_attempts", 8, 1, 30));
    transactions_ = cfg_bool(cfg, kName, "transactions", true);
    client_ = std::make_unique<Client>(co);
    if (cfg_bool(cfg, kName, "create_tables", false))
      create_table();
    else
      describe_table(false);
    host_.log(ORK_LOG_INFO,
              "state-dynamodb: table " + table_ + " at " + client_->endpoint() + " (region " + client_->region() + ")");
  }

  // -- Workflows

  json put_workflow(const json& a) override {
    require_object(a, "put_workflow");
    std::string name = req_string(a, "name");
    if (!a.contains("definition") || a["definition"].is_null()) throw_invalid("put_workflow: 'definition' is required");
    std::string now = now_str();
    json rec = normalize(kWorkflows, a, {{"id", new_uuid()}, {"created_at", now}, {"updated_at", now}});
    rec["updated_at"] = now;
    Expr e;
    std::vector<std::string> sets, removes;
    std::vector<json> blobs;
    for (const char* f : {"definition", "schedule", "version", "updated_at", "name"})
      assign(kWorkflows, *find_field(kWorkflows, f), rec[f], e, sets, removes, blobs);
    sets.push_back(e.name("id") + " = if_not_exists(" + e.name("id") + ", " + e.value(S(rec["id"])) + ")");
    sets.push_back(e.name("created_at") + " = if_not_exists(" + e.name("created_at") + ", " + e.value(S(now)) + ")");
    sets.push_back(e.name("gpk") + " = " + e.value(S("WFS")));
    sets.push_back(e.name("gsk") + " = " + e.value(S(name)));
    write_blobs(blobs);
    json old = update_item(key("WF#" + name, "WF"), e, sets, removes, "", blobs);
    if (old.is_null() || old.empty()) {
      put({{"pk", S("WFID#" + rec["id"].get<std::string>())}, {"sk", S("WF")}, {"name", S(name)}});
    } else {
      rec["id"] = str(old, "id");
      rec["created_at"] = str(old, "created_at");
      drop_old_blobs(old, {"definition"});
    }
    return rec;
  }

  json get_workflow(const json& a) override {
    require_object(a, "get_workflow");
    if (a.contains("id") && !a["id"].is_null()) {
      std::string id = req_string(a, "id");
      json alias = get_item(key("WFID#" + id, "WF"));
      json w = alias.is_null() ? json(nullptr) : read_record(kWorkflows, key("WF#" + str(alias, "name"), "WF"));
      if (w.is_null() || w["id"] != id) throw_not_found("workflow id '" + id + "' not found");
      return w;
    }
    std::string name = req_string(a, "name");
    json w = read_record(kWorkflows, key("WF#" + name, "WF"));
    if (w.is_null()) throw_not_found("workflow '" + name + "' not found");
    return w;
  }

  json list_workflows(const json& a) override {
    require_object(a, "list_workflows");
    json out = json::array();
    query_index("gsi1", "gpk", "WFS", "", json(nullptr), [&](const json& item) {
      out.push_back(decode_fresh(kWorkflows, item));
      return true;
    });
    std::sort(out.begin(), out.end(), [](const json& x, const json& y) {
      return x["name"].get_ref<const std::string&>() < y["name"].get_ref<const std::string&>();
    });
    return {{"workflows", std::move(out)}};
  }

  json delete_workflow(const json& a) override {
    require_object(a, "delete_workflow");
    std::string name = req_string(a, "name");
    json old;
    try {
      old = call("DeleteItem", {{"TableName", table_},
                                {"Key", key("WF#" + name, "WF")},
                                {"ConditionExpression", "attribute_exists(pk)"},
                                {"ReturnValues", "ALL_OLD"}})
                .value("Attributes", json::object());
    } catch (const DynamoError& e) {
      if (e.type == "ConditionalCheckFailedException") throw_not_found("workflow '" + name + "' not found");
      throw;
    }
    best_effort_delete({key("WFID#" + str(old, "id"), "WF")});
    drop_old_blobs(old, {"definition"});
    json sched =
        call("DeleteItem", {{"TableName", table_}, {"Key", key("SCHED#" + name, "SCHED")}, {"ReturnValues", "ALL_OLD"}})
            .value("Attributes", json::object());
    if (!sched.empty()) best_effort_delete({key("SCHEDID#" + str(sched, "id"), "SCHED")});
    return json::object();
  }

  // -- Runs and task runs

  json create_run(const json& a) override {
    auto [run_in, run_id, tasks] = create_run_args(a);
    std::string now = now_str();
    json run = normalize(kRuns, run_in, {{"status", "pending"}, {"created_at", now}});
    std::vector<json> rows = task_rows("create_run", tasks, run_id, run["created_at"]);

    Encoded r = encode(kRuns, run, key(run_pk(run_id), "RUN"));
    std::vector<json> items = r.blobs;  // blobs first, then tasks and their slots
    for (const auto& t : rows) append_task(items, t);
    size_t bytes = r.item.dump().size();
    for (const auto& i : items) bytes += i.dump().size();

    if (transactions_ && items.size() + 1 <= kTxItems && bytes <= kTxBytes) {
      json tx = json::array();
      tx.push_back({{"Put",
                     {{"TableName", table_},
                      {"Item", visible_run(r.item, run)},
                      {"ConditionExpression", "attribute_not_exists(pk)"}}}});
      for (auto& i : items) tx.push_back({{"Put", {{"TableName", table_}, {"Item", i}}}});
      try {
        transact(tx);
        return json::object();
      } catch (const DynamoError& e) {
        if (e.type == "TransactionCanceledException" && reason(e, 0) == "ConditionalCheckFailed")
          throw_conflict("run '" + run_id + "' already exists");
        if (e.type != "UnknownOperationException") throw;
        no_transactions();
      }
    }

    // Chunked: claim the id with an invisible run item, write the rest (BatchWriteItem: nobody else writes under a
    // claimed id, and it costs half a transaction's write units), then make the run visible.
    json claim = r.item;
    claim["creating"] = N(host_.now_ms());
    if (!put_new(claim)) throw_conflict("run '" + run_id + "' already exists");
    try {
      write_all(items);
      Expr e;
      json vis = visible_run(json::object(), run);
      std::string set;
      for (const char* f : {"gpk", "wpk", "gsk"})
        set += (set.empty() ? "" : ", ") + e.name(f) + " = " + e.value(vis[f]);
      json req{{"TableName", table_},
               {"Key", key(run_pk(run_id), "RUN")},
               {"UpdateExpression", "SET " + set + " REMOVE " + e.name("creating")},
               {"ConditionExpression", "attribute_exists(" + e.name("creating") + ")"}};
      e.into(req);
      call("UpdateItem", req);
    } catch (...) {
      std::vector<json> keys;
      for (const auto& i : items) keys.push_back(key(str(i, "pk"), str(i, "sk")));
      keys.push_back(key(run_pk(run_id), "RUN"));
      best_effort_delete(keys);
      throw;
    }
    return json::object();
  }

  json add_task_runs(const json& a) override {
    require_object(a, "add_task_runs");
    std::string run_id = req_string(a, "run_id");
    if (!a.contains("tasks") || !a["tasks"].is_array()) throw_invalid("add_task_runs: 'tasks' must be an array");
    std::vector<json> rows = task_rows("add_task_runs", a["tasks"], run_id, json(now_str()));
    if (!run_visible(run_id)) throw_not_found("run '" + run_id + "' does not exist");
    std::vector<json> blobs, tasks, slots;
    for (const auto& t : rows) {
      std::vector<json> three;
      append_task(three, t);
      for (auto& i : three) {
        std::string sk = str(i, "sk");
        (sk.rfind("TASK#", 0) == 0 ? tasks : sk.rfind("SLOT#", 0) == 0 ? slots : blobs).push_back(std::move(i));
      }
    }
    auto conflict = [&] {
      throw_conflict("add_task_runs: duplicate task id or (task_name, parallel_index) in run '" + run_id +
                     "'; nothing was written");
    };
    if (transactions_ && 1 + blobs.size() + tasks.size() + slots.size() <= kTxItems) {
      json tx = json::array();
      Expr e;
      json check{{"TableName", table_},
                 {"Key", key(run_pk(run_id), "RUN")},
                 {"ConditionExpression", "attribute_exists(pk) AND attribute_not_exists(" + e.name("creating") + ")"}};
      e.into(check);
      tx.push_back({{"ConditionCheck", check}});
      for (auto* group : {&slots, &tasks})
        for (auto& i : *group)
          tx.push_back(
              {{"Put", {{"TableName", table_}, {"Item", i}, {"ConditionExpression", "attribute_not_exists(pk)"}}}});
      for (auto& i : blobs) tx.push_back({{"Put", {{"TableName", table_}, {"Item", i}}}});
      try {
        transact(tx);
        return json::object();
      } catch (const DynamoError& e) {
        if (e.type == "TransactionCanceledException") {
          if (reason(e, 0) == "ConditionalCheckFailed") throw_not_found("run '" + run_id + "' does not exist");
          if (cancelled_by_condition(e)) conflict();
        }
        if (e.type != "UnknownOperationException") throw;
        no_transactions();
      }
    }
    // Without one transaction: blobs, then each slot and task as a conditional put; undone on a conflict.
    std::vector<json> written;
    bool clash = false;
    try {
      write_all(blobs);
      for (auto* group : {&slots, &tasks})
        for (auto& i : *group) {
          if (!put_new(i)) {
            clash = true;
            break;
          }
          written.push_back(key(str(i, "pk"), str(i, "sk")));
        }
    } catch (...) {
      for (const auto& b : blobs) written.push_back(key(str(b, "pk"), str(b, "sk")));
      best_effort_delete(written);
      throw;
    }
    if (clash) {
      for (const auto& b : blobs) written.push_back(key(str(b, "pk"), str(b, "sk")));
      best_effort_delete(written);
      conflict();
    }
    return json::object();
  }

  json get_run(const json& a) override {
    require_object(a, "get_run");
    std::string id = req_string(a, "id");
    json r = read_record(kRuns, key(run_pk(id), "RUN"));
    if (r.is_null()) throw_not_found("run '" + id + "' not found");
    return r;
  }

  json list_runs(const json& a) override {
    require_object(a, "list_runs");
    json st = status_filter(a, "list_runs");
    std::string wf = a.contains("workflow_name") && !a["workflow_name"].is_null() ? req_string(a, "workflow_name") : "";
    int64_t limit = opt_int(a, "limit", 100, 0), offset = opt_int(a, "offset", 0, 0);
    json runs = json::array();
    int64_t total = 0;
    if (!(st.is_array() && st.empty()))
      query_runs(wf, st, "", [&](const json& item) {
        if (total >= offset && total - offset < limit) runs.push_back(item);
        ++total;
        return true;
      });
    for (auto& r : runs) r = decode_fresh(kRuns, r);
    return {{"runs", std::move(runs)}, {"total", total}};
  }

  json list_runs_page(const json& a) override {
    require_object(a, "list_runs_page");
    json st = status_filter(a, "list_runs_page");
    std::string wf = a.contains("workflow_name") && !a["workflow_name"].is_null() ? req_string(a, "workflow_name") : "";
    std::string before;
    if (a.contains("after") && !a["after"].is_null()) {
      const json& after = a["after"];
      if (!after.is_object()) throw_invalid("list_runs_page: 'after' must be {created_at, id}");
      before = run_order_key(req_time(after, "created_at"), req_string(after, "id"));
    }
    int64_t limit = std::min<int64_t>(opt_int(a, "limit", 100, 0), INT64_MAX - 1);
    json runs = json::array();
    json next = nullptr;
    if (!(st.is_array() && st.empty()))
      query_runs(wf, st, before, [&](const json& item) {
        if (static_cast<int64_t>(runs.size()) == limit) {
          if (!runs.empty()) next = {{"created_at", runs.back()["created_at"]}, {"id", runs.back()["id"]}};
          return false;
        }
        runs.push_back(decode_fresh(kRuns, item));
        return true;
      });
    return {{"runs", std::move(runs)}, {"next", std::move(next)}};
  }

  json update_run(const json& a) override {
    require_object(a, "update_run");
    return update(kRuns, a, false);
  }

  json get_task_runs(const json& a) override {
    require_object(a, "get_task_runs");
    std::string run_id = req_string(a, "run_id");
    json st = status_filter(a, "get_task_runs");
    json out = json::array();
    if (!(st.is_array() && st.empty())) {
      Expr e;
      json req{{"TableName", table_},
               {"KeyConditionExpression",
                "pk = " + e.value(S(run_pk(run_id))) + " AND begins_with(sk, " + e.value(S("TASK#")) + ")"},
               {"ConsistentRead", true}};
      if (st.is_array()) req["FilterExpression"] = in_list(e, "status", st);
      e.into(req);
      query(req, [&](const json& item) {
        out.push_back(decode_fresh(kTasks, item));
        return true;
      });
    }
    if (out.empty() && !run_visible(run_id)) throw_not_found("run '" + run_id + "' not found");
    std::stable_sort(out.begin(), out.end(), [](const json& x, const json& y) {
      auto pi = [](const json& t) {
        return t["parallel_index"].is_null() ? INT64_MIN : t["parallel_index"].get<int64_t>();
      };
      int64_t sx = x["seq"].get<int64_t>(), sy = y["seq"].get<int64_t>();
      return sx != sy ? sx < sy : pi(x) < pi(y);
    });
    return {{"tasks", std::move(out)}};
  }

  json update_task_run(const json& a) override {
    require_object(a, "update_task_run");
    return update(kTasks, a, true);
  }

  json try_acquire_task(const json& a) override {
    require_object(a, "try_acquire_task");
    std::string run_id = req_string(a, "run_id"), id = req_string(a, "id");
    std::string now = now_str(), token = new_uuid();
    Expr e;
    std::string set = e.name("status") + " = " + e.value(S("dispatched")) + ", " + e.name("attempt") + " = " +
                      e.name("attempt") + " + " + e.value(N(1)) + ", " + e.name("dispatched_at") + " = " +
                      e.value(S(now)) + ", " + e.name("wtok") + " = " + e.value(S(token));
    std::string remove;
    for (const char* f : {"executor_id", "heartbeat_at", "started_at", "finished_at", "error"})
      remove += (remove.empty() ? "" : ", ") + e.name(f);
    for (const char* s : kSpill) remove += ", " + e.name(std::string("error") + s);
    json req{{"TableName", table_},
             {"Key", key(run_pk(run_id), task_sk(id))},
             {"UpdateExpression", "SET " + set + " REMOVE " + remove},
             {"ConditionExpression", e.name("status") + " = " + e.value(S("pending"))},
             {"ReturnValues", "ALL_OLD"}};
    e.into(req);
    json old;
    try {
      old = call("UpdateItem", req).value("Attributes", json::object());
    } catch (const DynamoError& err) {
      if (err.type != "ConditionalCheckFailedException") throw;
      json cur = get_item(key(run_pk(run_id), task_sk(id)));
      if (cur.is_null()) throw_not_found("task run '" + id + "' of run '" + run_id + "' not found");
      if (err.resent && str(cur, "wtok") == token)  // our earlier attempt won; its answer was lost
        return {{"acquired", true}, {"task", decode_fresh(kTasks, cur)}};
      return {{"acquired", false}, {"task", nullptr}};
    }
    json task = decode_fresh(kTasks, old);
    task["status"] = "dispatched";
    task["attempt"] = task["attempt"].get<int64_t>() + 1;
    task["dispatched_at"] = now;
    for (const char* f : {"executor_id", "heartbeat_at", "started_at", "finished_at", "error"}) task[f] = nullptr;
    drop_old_blobs(old, {"error"});
    return {{"acquired", true}, {"task", std::move(task)}};
  }

  // -- Leases

  json acquire_lease(const json& a) override {
    require_object(a, "acquire_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    int64_t ttl = req_ttl_ms(a), now = host_.now_ms();
    Expr e;
    std::string o = e.name("owner"), le = e.name("lease_expires"), ov = e.value(S(owner));
    std::string set = "SET " + o + " = " + ov + ", " + le + " = " + e.value(S(format_time(now + ttl)));
    std::string cond = "attribute_exists(pk) AND attribute_not_exists(" + e.name("creating") + ") AND " +
                       in_list(e, "status", {"pending", "running"}) + " AND (attribute_not_exists(" + o + ") OR " + o +
                       " = " + ov + " OR " + le + " < " + e.value(S(format_time(now))) + ")";
    return {{"acquired", run_cas(run_id, e, set, cond)}};
  }

  json renew_lease(const json& a) override {
    require_object(a, "renew_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    int64_t ttl = req_ttl_ms(a), now = host_.now_ms();
    Expr e;
    std::string set = "SET " + e.name("lease_expires") + " = " + e.value(S(format_time(now + ttl)));
    return {{"renewed", run_cas(run_id, e, set, e.name("owner") + " = " + e.value(S(owner)))}};
  }

  json release_lease(const json& a) override {
    require_object(a, "release_lease");
    std::string run_id = req_string(a, "run_id"), owner = req_string(a, "owner");
    Expr e;
    std::string set = "REMOVE " + e.name("owner") + ", " + e.name("lease_expires");
    run_cas(run_id, e, set, e.name("owner") + " = " + e.value(S(owner)));
    return json::object();
  }

  // -- Schedules

  json put_schedule(const json& a) override {
    require_object(a, "put_schedule");
    std::string name = req_string(a, "workflow_name");
    req_string(a, "cron_expr");
    req_time(a, "next_run");
    std::string now = now_str();
    json rec = normalize(kSchedules, a, {{"id", new_uuid()}, {"enabled", true}, {"created_at", now}});
    Expr e;
    std::vector<std::string> sets, removes;
    std::vector<json> blobs;
    for (const char* f : {"workflow_name", "cron_expr", "next_run", "enabled"})
      assign(kSchedules, *find_field(kSchedules, f), rec[f], e, sets, removes, blobs);
    sets.push_back(e.name("id") + " = if_not_exists(" + e.name("id") + ", " + e.value(S(rec["id"])) + ")");
    sets.push_back(e.name("created_at") + " = if_not_exists(" + e.name("created_at") + ", " +
                   e.value(S(rec["created_at"])) + ")");
    sets.push_back(e.name("gpk") + " = " + e.value(S(rec["enabled"].get<bool>() ? "SCHED#1" : "SCHED#0")));
    sets.push_back(e.name("gsk") + " = " + e.value(S(rec["next_run"].get<std::string>() + "|" + name)));
    json old = update_item(key("SCHED#" + name, "SCHED"), e, sets, removes, "", blobs);
    if (old.is_null() || old.empty()) {
      put({{"pk", S("SCHEDID#" + rec["id"].get<std::string>())}, {"sk", S("SCHED")}, {"name", S(name)}});
    } else {
      rec["id"] = str(old, "id");
      rec["created_at"] = str(old, "created_at");
    }
    return rec;
  }

  json get_due_schedules(const json& a) override {
    require_object(a, "get_due_schedules");
    std::string now = req_time(a, "now");
    json out = json::array();
    query_index("gsi1", "gpk", "SCHED#1", now + "}", json(nullptr), [&](const json& item) {
      json s = decode_fresh(kSchedules, item);
      if (s["next_run"].get_ref<const std::string&>() <= now) out.push_back(std::move(s));
      return true;
    });
    std::sort(out.begin(), out.end(), [](const json& x, const json& y) {
      return std::tie(x["next_run"].get_ref<const std::string&>(), x["id"].get_ref<const std::string&>()) <
             std::tie(y["next_run"].get_ref<const std::string&>(), y["id"].get_ref<const std::string&>());
    });
    return {{"schedules", std::move(out)}};
  }

  json claim_schedule(const json& a) override {
    require_object(a, "claim_schedule");
    std::string id = req_string(a, "id");
    std::string expect = req_time(a, "expect_next_run"), next = req_time(a, "next_run");
    json alias = get_item(key("SCHEDID#" + id, "SCHED"));
    if (alias.is_null()) throw_not_found("schedule '" + id + "' not found");
    std::string name = str(alias, "name"), token = new_uuid();
    Expr e;
    json req{
        {"TableName", table_},
        {"Key", key("SCHED#" + name, "SCHED")},
        {"UpdateExpression", "SET " + e.name("next_run") + " = " + e.value(S(next)) + ", " + e.name("gsk") + " = " +
                                 e.value(S(next + "|" + name)) + ", " + e.name("wtok") + " = " + e.value(S(token))},
        {"ConditionExpression",
         e.name("id") + " = " + e.value(S(id)) + " AND " + e.name("next_run") + " = " + e.value(S(expect))}};
    e.into(req);
    try {
      call("UpdateItem", req);
      return {{"claimed", true}};
    } catch (const DynamoError& err) {
      if (err.type != "ConditionalCheckFailedException") throw;
      json cur = get_item(key("SCHED#" + name, "SCHED"));
      if (cur.is_null() || str(cur, "id") != id) throw_not_found("schedule '" + id + "' not found");
      return {{"claimed", err.resent && str(cur, "wtok") == token}};  // true: our lost answer had won
    }
  }

 private:
  // ---- Table

  json table_definition() const {
    auto gsi = [](const char* name, const char* hash) {
      return json{{"IndexName", name},
                  {"KeySchema",
                   {{{"AttributeName", hash}, {"KeyType", "HASH"}}, {{"AttributeName", "gsk"}, {"KeyType", "RANGE"}}}},
                  {"Projection", {{"ProjectionType", "ALL"}}}};
    };
    json attrs = json::array();
    for (const char* n : {"pk", "sk", "gpk", "wpk", "gsk"})
      attrs.push_back({{"AttributeName", n}, {"AttributeType", "S"}});
    return {{"TableName", table_},
            {"AttributeDefinitions", attrs},
            {"KeySchema",
             {{{"AttributeName", "pk"}, {"KeyType", "HASH"}}, {{"AttributeName", "sk"}, {"KeyType", "RANGE"}}}},
            {"GlobalSecondaryIndexes", {gsi("gsi1", "gpk"), gsi("gsi2", "wpk")}},
            {"BillingMode", "PAY_PER_REQUEST"}};
  }

  void create_table() {
    try {
      call("CreateTable", table_definition());
      host_.log(ORK_LOG_INFO, "state-dynamodb: created table " + table_);
    } catch (const DynamoError& e) {
      if (e.type != "ResourceInUseException") throw_invalid(std::string(e.what()));
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!describe_table(true)) {
      if (std::chrono::steady_clock::now() > deadline)
        throw_unavailable("state-dynamodb: table " + table_ + " did not become ACTIVE within 120 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // True when the table and its indexes are ACTIVE; a missing table is INVALID unless `creating`.
  bool describe_table(bool creating) {
    json t;
    try {
      t = call("DescribeTable", {{"TableName", table_}}).value("Table", json::object());
    } catch (const DynamoError& e) {
      if (e.type == "ResourceNotFoundException") {
        if (creating) return false;
        throw_invalid("state-dynamodb: table '" + table_ + "' does not exist at " + client_->endpoint() +
                      " (create it as docs/state-dynamodb.md shows, or set create_tables: true)");
      }
      throw_invalid(std::string(e.what()));
    }
    if (t.value("TableStatus", "") != "ACTIVE") return false;
    std::set<std::string> indexes;
    for (const auto& g : t.value("GlobalSecondaryIndexes", json::array())) {
      if (g.value("IndexStatus", "ACTIVE") != "ACTIVE") return false;
      indexes.insert(g.value("IndexName", ""));
    }
    if (!indexes.count("gsi1") || !indexes.count("gsi2"))
      throw_invalid("state-dynamodb: table '" + table_ +
                    "' lacks the global secondary indexes gsi1 and gsi2 (see docs/state-dynamodb.md)");
    return true;
  }

  // ---- Calls

  json call(std::string_view op, const json& body) const { return client_->call(op, body); }

  void transact(const json& items) {
    call("TransactWriteItems", {{"TransactItems", items}, {"ClientRequestToken", new_uuid()}});
  }

  void no_transactions() {
    if (transactions_.exchange(false))
      host_.log(ORK_LOG_INFO, "state-dynamodb: the service has no TransactWriteItems; using conditional writes");
  }

  // The cancellation reason code of transaction item `i` ("" when unknown).
  static std::string reason(const DynamoError& e, size_t i) {
    const json& r = e.body.value("CancellationReasons", json::array());
    if (r.is_array() && i < r.size() && r[i].is_object()) return r[i].value("Code", "");
    std::string msg = e.body.value("message", e.body.value("Message", std::string()));
    size_t open = msg.rfind('[');
    if (open == std::string::npos) return "";
    std::vector<std::string> codes;
    std::string cur;
    for (size_t p = open + 1; p < msg.size() && msg[p] != ']'; ++p) {
      if (msg[p] == ',') {
        codes.push_back(common::trim(cur));
        cur.clear();
      } else {
        cur += msg[p];
      }
    }
    codes.push_back(common::trim(cur));
    return i < codes.size() ? codes[i] : "";
  }
  static bool cancelled_by_condition(const DynamoError& e) {
    std::string msg = e.body.value("message", e.body.value("Message", std::string()));
    if (msg.find("ConditionalCheckFailed") != std::string::npos) return true;
    for (const auto& r : e.body.value("CancellationReasons", json::array()))
      if (r.is_object() && r.value("Code", "") == "ConditionalCheckFailed") return true;
    return false;
  }

  json get_item(const json& k) const {
    json r = call("GetItem", {{"TableName", table_}, {"Key", k}, {"ConsistentRead", true}});
    return r.contains("Item") ? r["Item"] : json(nullptr);
  }

  void put(const json& item) { call("PutItem", {{"TableName", table_}, {"Item", item}}); }

  // PutItem only where no item is: false when one exists. A resent put whose first attempt had landed (the item
  // carries this call's token) counts as written.
  bool put_new(json item) {
    std::string token = new_uuid();
    item["wtok"] = S(token);
    try {
      call("PutItem", {{"TableName", table_}, {"Item", item}, {"ConditionExpression", "attribute_not_exists(pk)"}});
      return true;
    } catch (const DynamoError& e) {
      if (e.type != "ConditionalCheckFailedException") throw;
      return e.resent && str(get_item(key(str(item, "pk"), str(item, "sk"))), "wtok") == token;
    }
  }

  bool run_visible(const std::string& run_id) const {
    json r = get_item(key(run_pk(run_id), "RUN"));
    return !r.is_null() && !r.contains("creating");
  }

  // Pages through a Query; `each` returns false to stop.
  void query(json req, const std::function<bool(const json&)>& each) const {
    for (;;) {
      json r = call("Query", req);
      for (const auto& item : r.value("Items", json::array()))
        if (!each(item)) return;
      if (!r.contains("LastEvaluatedKey") || r["LastEvaluatedKey"].empty()) return;
      req["ExclusiveStartKey"] = r["LastEvaluatedKey"];
    }
  }

  // Items of index `index` whose `hash` attribute is `value` (and gsk < `below` when given), newest gsk first when
  // `backwards`, with an optional status filter.
  void query_index(const char* index, const char* hash, const std::string& value, const std::string& below,
                   const json& status, const std::function<bool(const json&)>& each, bool backwards = false) const {
    Expr e;
    std::string cond = e.name(hash) + " = " + e.value(S(value));
    if (!below.empty()) cond += " AND " + e.name("gsk") + " < " + e.value(S(below));
    json req{{"TableName", table_}, {"IndexName", index}, {"KeyConditionExpression", cond}};
    if (backwards) req["ScanIndexForward"] = false;
    if (status.is_array()) req["FilterExpression"] = in_list(e, "status", status);
    e.into(req);
    query(req, each);
  }

  void query_runs(const std::string& wf, const json& status, const std::string& before,
                  const std::function<bool(const json&)>& each) const {
    if (wf.empty())
      query_index("gsi1", "gpk", "RUNS", before, status, each, true);
    else
      query_index("gsi2", "wpk", "W#" + wf, before, status, each, true);
  }

  // Writes items without conditions in BatchWriteItem chunks (25 items, < 3.5 MB). Only used for items no one else
  // can be writing: under a run id claimed by this call, or fresh blob ids.
  void write_all(const std::vector<json>& items) {
    size_t i = 0;
    while (i < items.size()) {
      json reqs = json::array();
      size_t bytes = 0;
      while (i < items.size() && reqs.size() < kBatchItems) {
        size_t b = items[i].dump().size();
        if (!reqs.empty() && bytes + b > kTxBytes) break;
        bytes += b;
        reqs.push_back({{"PutRequest", {{"Item", items[i]}}}});
        ++i;
      }
      batch_write(std::move(reqs));
    }
  }

  // One BatchWriteItem, resending UnprocessedItems with backoff.
  void batch_write(json reqs) {
    for (int attempt = 0; !reqs.empty(); ++attempt) {
      if (attempt > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(20 << std::min(attempt, 7), 2000)));
      if (attempt > 20) throw_unavailable("state-dynamodb: BatchWriteItem kept leaving items unprocessed");
      json r = call("BatchWriteItem", {{"RequestItems", {{table_, reqs}}}});
      json un = r.value("UnprocessedItems", json::object());
      reqs = un.contains(table_) ? un[table_] : json::array();
    }
  }

  void best_effort_delete(const std::vector<json>& keys) {
    try {
      for (size_t i = 0; i < keys.size(); i += kBatchItems) {
        json reqs = json::array();
        for (size_t j = i; j < std::min(keys.size(), i + kBatchItems); ++j)
          reqs.push_back({{"DeleteRequest", {{"Key", keys[j]}}}});
        batch_write(std::move(reqs));
      }
    } catch (const std::exception& e) {
      host_.log(ORK_LOG_WARN, std::string("state-dynamodb: cleanup failed (orphan items stay): ") + e.what());
    }
  }

  // ---- Encoding

  // The attributes of JSON value `v` of field `f`: inline, or spilled to blob items (appended to `blobs`).
  std::vector<std::pair<std::string, json>> json_attrs(const std::string& f, const json& v, std::vector<json>& blobs) {
    std::string text = v.dump();
    if (text.size() <= kInlineMax) return {{f, S(std::move(text))}};
    std::string ref = new_uuid();
    size_t parts = 0;
    for (size_t pos = 0; pos < text.size(); ++parts) {
      size_t end = std::min(text.size(), pos + kBlobPart);
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;  // UTF-8 boundary
      char sk[32];
      std::snprintf(sk, sizeof sk, "P#%06zu", parts);
      blobs.push_back({{"pk", S("BLOB#" + ref)}, {"sk", S(sk)}, {"d", S(text.substr(pos, end - pos))}});
      pos = end;
    }
    return {
        {f + "__ref", S(ref)}, {f + "__n", N(static_cast<int64_t>(parts))}, {f + "__h", S(common::sha256_hex(text))}};
  }

  // A normalized record as an item under `k` (nulls are left out).
  Encoded encode(const Table& t, const json& rec, json k) {
    Encoded out;
    out.item = std::move(k);
    for (const auto& f : t.fields) {
      std::string name(f.name);
      const json& v = rec[name];
      if (v.is_null()) continue;
      switch (f.kind) {
        case Kind::Text:
        case Kind::Time:
          out.item[name] = S(v.get<std::string>());
          break;
        case Kind::Int:
          out.item[name] = N(v.get<int64_t>());
          break;
        case Kind::Bool:
          out.item[name] = B(v.get<bool>());
          break;
        case Kind::Json:
          for (auto& [an, av] : json_attrs(name, v, out.blobs)) out.item[an] = std::move(av);
          break;
      }
    }
    return out;
  }

  static json visible_run(json item, const json& run) {
    item["gpk"] = S("RUNS");
    item["wpk"] = S("W#" + run["workflow_name"].get<std::string>());
    item["gsk"] = S(run_order_key(run["created_at"], run["id"]));
    return item;
  }

  // Task item, slot item and blobs of one normalized task row.
  void append_task(std::vector<json>& items, const json& t) {
    std::string pk = run_pk(t["run_id"]);
    Encoded e = encode(kTasks, t, key(pk, task_sk(t["id"])));
    for (auto& b : e.blobs) items.push_back(std::move(b));
    items.push_back(std::move(e.item));
    items.push_back(
        {{"pk", S("SLOT#" + t["run_id"].get<std::string>())}, {"sk", S(slot_sk(t))}, {"task_id", S(t["id"])}});
  }

  // Validated, normalized task rows; duplicate ids or slots within the call are CONFLICT before anything is written.
  std::vector<json> task_rows(const std::string& op, const json& tasks, const std::string& run_id,
                              const json& created) {
    std::vector<json> rows;
    std::set<std::string> ids, slots;
    json defaults{{"run_id", run_id}, {"status", "pending"},   {"attempt", 0},
                  {"max_retries", 0}, {"created_at", created}, {"seq", 0}};
    for (size_t i = 0; i < tasks.size(); ++i) {
      const json& t = tasks[i];
      std::string at = op + ": tasks[" + std::to_string(i) + "]";
      if (!t.is_object()) throw_invalid(at + " must be an object");
      auto rid = t.find("run_id");
      if (rid != t.end() && !rid->is_null() && *rid != run_id) throw_invalid(at + ".run_id differs from the run's id");
      json row;
      try {
        req_string(t, "id");
        req_string(t, "task_name");
        defaults["seq"] = static_cast<int64_t>(i);
        row = normalize(kTasks, t, defaults);
      } catch (const PluginError& e) {
        throw_invalid(at + ": " + e.what());
      }
      row["run_id"] = run_id;
      if (!ids.insert(row["id"].get<std::string>()).second)
        throw_conflict(op + ": duplicate task id '" + row["id"].get<std::string>() + "'; nothing was written");
      if (!slots.insert(slot_sk(row)).second)
        throw_conflict(op + ": duplicate (task_name, parallel_index) at " + at + "; nothing was written");
      rows.push_back(std::move(row));
    }
    return rows;
  }

  // SET / REMOVE clauses writing field `f` = `v` (checked), spilling large JSON.
  void assign(const Table& t, const Field& f, const json& v, Expr& e, std::vector<std::string>& sets,
              std::vector<std::string>& removes, std::vector<json>& blobs) {
    check_value(t, f, v);
    std::string name(f.name);
    if (f.kind == Kind::Json) {
      std::vector<std::pair<std::string, json>> attrs;
      if (!v.is_null()) attrs = json_attrs(name, v, blobs);
      std::set<std::string> written;
      for (auto& [an, av] : attrs) {
        sets.push_back(e.name(an) + " = " + e.value(std::move(av)));
        written.insert(an);
      }
      for (std::string an : {name, name + kSpill[0], name + kSpill[1], name + kSpill[2]})
        if (!written.count(an)) removes.push_back(e.name(an));
      return;
    }
    if (v.is_null()) {
      removes.push_back(e.name(name));
      return;
    }
    json av = f.kind == Kind::Int    ? N(v.get<int64_t>())
              : f.kind == Kind::Bool ? B(v.get<bool>())
                                     : S(v.get<std::string>());
    sets.push_back(e.name(name) + " = " + e.value(std::move(av)));
  }

  // The condition that field `f` equals `v` (null = absent).
  static std::string equals(const Table& t, const Field& f, const json& v, Expr& e) {
    check_value(t, f, v, true);
    std::string name(f.name);
    if (v.is_null()) {
      std::string c = "attribute_not_exists(" + e.name(name) + ")";
      if (f.kind == Kind::Json) c += " AND attribute_not_exists(" + e.name(name + "__ref") + ")";
      return c;
    }
    switch (f.kind) {
      case Kind::Int:
        return e.name(name) + " = " + e.value(N(v.get<int64_t>()));
      case Kind::Bool:
        return e.name(name) + " = " + e.value(B(v.get<bool>()));
      case Kind::Json: {
        std::string text = v.dump();
        if (text.size() <= kInlineMax) return e.name(name) + " = " + e.value(S(text));
        return e.name(name + "__h") + " = " + e.value(S(common::sha256_hex(text)));
      }
      default:
        return e.name(name) + " = " + e.value(S(v.get<std::string>()));
    }
  }

  // UpdateItem with ReturnValues ALL_OLD; returns the old item (empty object when it did not exist). When it fails
  // for sure (not a resent request), the new blob items are deleted before the error is rethrown.
  json update_item(const json& k, Expr& e, const std::vector<std::string>& sets,
                   const std::vector<std::string>& removes, const std::string& cond, const std::vector<json>& blobs) {
    std::string expr;
    for (size_t i = 0; i < sets.size(); ++i) expr += (i ? ", " : "SET ") + sets[i];
    for (size_t i = 0; i < removes.size(); ++i)
      expr += (i ? ", " : (expr.empty() ? "REMOVE " : " REMOVE ")) + removes[i];
    json req{{"TableName", table_}, {"Key", k}, {"UpdateExpression", expr}, {"ReturnValues", "ALL_OLD"}};
    if (!cond.empty()) req["ConditionExpression"] = cond;
    e.into(req);
    try {
      return call("UpdateItem", req).value("Attributes", json::object());
    } catch (const DynamoError& err) {
      if (!err.resent) drop_blobs(blobs);
      throw;
    } catch (...) {
      drop_blobs(blobs);
      throw;
    }
  }

  void drop_blobs(const std::vector<json>& blobs) {
    std::vector<json> keys;
    for (const auto& b : blobs) keys.push_back(key(str(b, "pk"), str(b, "sk")));
    if (!keys.empty()) best_effort_delete(keys);
  }

  void write_blobs(const std::vector<json>& blobs) { write_all(blobs); }

  // Deletes the blob items `old` referenced for `fields` (after they were replaced).
  void drop_old_blobs(const json& old, std::initializer_list<const char*> fields) {
    std::vector<json> keys;
    for (const char* f : fields) {
      std::string ref = str(old, (std::string(f) + "__ref").c_str());
      if (ref.empty()) continue;
      int64_t n = num(old, std::string(f) + "__n");
      char sk[32];
      for (int64_t i = 0; i < n; ++i) {
        std::snprintf(sk, sizeof sk, "P#%06lld", static_cast<long long>(i));
        keys.push_back(key("BLOB#" + ref, sk));
      }
    }
    if (!keys.empty()) best_effort_delete(keys);
  }

  // ---- Decoding

  struct StaleBlob {};

  std::string read_blob(const std::string& ref, int64_t parts, const std::string& hash) const {
    std::string text;
    int64_t seen = 0;
    Expr e;
    json req{{"TableName", table_},
             {"KeyConditionExpression", "pk = " + e.value(S("BLOB#" + ref))},
             {"ConsistentRead", true}};
    e.into(req);
    query(req, [&](const json& item) {
      text += str(item, "d");
      ++seen;
      return true;
    });
    if (seen != parts || common::sha256_hex(text) != hash) throw StaleBlob{};
    return text;
  }

  json decode(const Table& t, const json& item) const {
    json rec = json::object();
    for (const auto& f : t.fields) {
      std::string name(f.name);
      auto it = item.find(name);
      if (f.kind == Kind::Json) {
        std::string text;
        if (it != item.end()) {
          text = (*it)["S"].get<std::string>();
        } else if (item.contains(name + "__ref")) {
          text = read_blob(str(item, (name + "__ref").c_str()), num(item, name + "__n"),
                           str(item, (name + "__h").c_str()));
        } else {
          rec[name] = nullptr;
          continue;
        }
        try {
          rec[name] = json::parse(text);
        } catch (const json::exception& e) {
          throw PluginError(ORK_ERR_INTERNAL, "stored JSON in " + what(t, f) + " is corrupt: " + e.what());
        }
        continue;
      }
      if (it == item.end()) {
        rec[name] = nullptr;
      } else if (f.kind == Kind::Int) {
        rec[name] = std::stoll((*it)["N"].get<std::string>());
      } else if (f.kind == Kind::Bool) {
        rec[name] = (*it)["BOOL"].get<bool>();
      } else {
        rec[name] = (*it)["S"];
      }
    }
    return rec;
  }

  // Decodes `item`; when a blob it references was replaced meanwhile, rereads the item (consistent) and retries.
  json decode_fresh(const Table& t, json item) const {
    for (int attempt = 0;; ++attempt) {
      try {
        return decode(t, item);
      } catch (const StaleBlob&) {
        if (attempt >= 5) throw_unavailable("state-dynamodb: a large value kept changing while being read");
      }
      item = get_item(key(str(item, "pk"), str(item, "sk")));
      if (item.is_null()) throw_not_found("the record was deleted while being read");
    }
  }

  // The record under `k`, or null (runs still being created count as missing).
  json read_record(const Table& t, const json& k) const {
    json item = get_item(k);
    if (item.is_null() || item.contains("creating")) return nullptr;
    return decode_fresh(t, item);
  }

  // ---- Updates

  // `{id, [run_id,] set, expect?}` as one conditional UpdateItem; NOT_FOUND only when the record does not exist.
  json update(const Table& t, const json& a, bool task) {
    std::string id = req_string(a, "id");
    std::string run_id = task ? req_string(a, "run_id") : id;
    json k = key(run_pk(run_id), task ? task_sk(id) : "RUN");
    auto sit = a.find("set");
    if (sit == a.end() || !sit->is_object()) throw_invalid("'set' is required and must be an object");
    Expr e;
    std::vector<std::string> sets, removes, conds{"attribute_exists(pk)"};
    std::vector<json> blobs;
    std::vector<const char*> json_fields;
    for (const auto& [name, v] : sit->items()) {
      const Field* f = find_field(t, name);
      if (!f || name == "id" || name == "run_id")
        throw_invalid("'set' names unknown or read-only field '" + name + "' of " + std::string(t.name));
      assign(t, *f, v, e, sets, removes, blobs);
      if (f->kind == Kind::Json) json_fields.push_back(f->name.data());
    }
    if (!task) {
      conds.push_back("attribute_not_exists(" + e.name("creating") + ")");
      auto& set = *sit;
      if (set.contains("created_at") || set.contains("workflow_name")) {
        json cur = read_record(t, k);  // the index keys follow created_at and workflow_name
        if (cur.is_null()) throw_not_found("run '" + id + "' not found");
        for (const char* f : {"created_at", "workflow_name"})
          if (set.contains(f)) cur[f] = set[f];
        json vis = visible_run(json::object(), cur);
        for (const char* f : {"wpk", "gsk"}) sets.push_back(e.name(f) + " = " + e.value(vis[f]));
      }
    }
    json expect = a.value("expect", json(nullptr));
    if (!expect.is_null()) {
      if (!expect.is_object()) throw_invalid("'expect' must be an object");
      for (const auto& [name, v] : expect.items()) {
        const Field* f = find_field(t, name);
        if (!f) throw_invalid("'expect' names unknown field '" + name + "' of " + std::string(t.name));
        conds.push_back(equals(t, *f, v, e));
      }
    }
    auto missing = [&] { throw_not_found(std::string(task ? "task run '" : "run '") + id + "' not found"); };
    if (sets.empty() && removes.empty()) {
      json cur = read_record(t, k);
      if (cur.is_null()) missing();
      bool ok = true;
      if (expect.is_object())
        for (const auto& [name, v] : expect.items())
          if (cur[name] != v) ok = false;
      return {{"updated", ok}};
    }
    std::string cond, token = new_uuid();
    for (const auto& c : conds) cond += (cond.empty() ? "" : " AND ") + c;
    sets.push_back(e.name("wtok") + " = " + e.value(S(token)));
    write_blobs(blobs);
    json old;
    try {
      old = update_item(k, e, sets, removes, cond, blobs);
    } catch (const DynamoError& err) {
      if (err.type != "ConditionalCheckFailedException") throw;
      json cur = get_item(k);
      if (cur.is_null() || (!task && cur.contains("creating"))) missing();
      bool ours = err.resent && str(cur, "wtok") == token;  // our earlier attempt won; its answer was lost
      if (err.resent && !ours) drop_blobs(blobs);
      return {{"updated", ours}};
    }
    for (const char* f : json_fields) drop_old_blobs(old, {f});
    return {{"updated", true}};
  }

  // A conditional UpdateItem on a run: true when written, false when the condition failed, NOT_FOUND when missing.
  bool run_cas(const std::string& run_id, Expr& e, const std::string& update, const std::string& cond) {
    json req{{"TableName", table_},
             {"Key", key(run_pk(run_id), "RUN")},
             {"UpdateExpression", update},
             {"ConditionExpression", cond}};
    e.into(req);
    try {
      call("UpdateItem", req);
      return true;
    } catch (const DynamoError& err) {
      if (err.type != "ConditionalCheckFailedException") throw;
    }
    if (!run_visible(run_id)) throw_not_found("run '" + run_id + "' not found");
    return false;
  }

  std::string now_str() const { return format_time(host_.now_ms()); }
  std::string new_uuid() { return uuids_.next(); }

  HostServices host_;
  std::string table_;
  std::atomic<bool> transactions_{true};
  std::unique_ptr<Client> client_;
  UuidSource uuids_;
};

}  // namespace
}  // namespace ork::dynamo

ORK_STATE_PLUGIN(ork::dynamo::DynamoStateStore, "dynamodb", ORK_PLUGIN_VERSION)
