// state-dynamodb beyond the conformance suite, against the emulator named by ORK_EMULATOR_DIR (moto or dynalite):
// two instances racing for tasks and leases, chunked run creation and its cleanup when a chunk fails, retries of
// throttling answers, the credentials chain from ~/.aws in a temp HOME, large values in blob items, config errors.
// Faults and request logs come from tests/support/dynamodb_proxy.py in front of the emulator.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "core/util.hpp"
#include "crypto.hpp"
#include "http.hpp"
#include "loader/plugin_loader.hpp"
#include "sigv4.hpp"
#include "support/test_support.hpp"
#include "web_util.hpp"

namespace {

using ork::json;
using ork::PluginCallError;
using ork::StateProxy;
namespace t = ork::test;

using ork::test::emulator_file;
using ork::test::ScopedEnv;

std::unique_ptr<StateProxy> open(const json& cfg) {
  return ork::load_plugin<StateProxy>("state", "ork-state-dynamodb", cfg);
}

ork_status code_of(const std::function<void()>& f, std::string* msg = nullptr) {
  try {
    f();
    return ORK_OK;
  } catch (const PluginCallError& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
}

std::string load_error(const json& cfg) {
  try {
    open(cfg);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// tests/support/dynamodb_proxy.py in front of the emulator, stopped by its PID at scope end.
class FaultProxy {
 public:
  explicit FaultProxy(const std::string& options) {
    std::string port_file = dir_ / "port";
    log_ = dir_ / "requests.log";
    proc_ = std::make_unique<t::Process>("exec python3 " ORK_SOURCE_DIR "/tests/support/dynamodb_proxy.py --upstream " +
                                             emulator_file("endpoint") + " --port-file " + port_file + " --log " +
                                             log_ + " " + options,
                                         dir_ / "proxy.out");
    if (!t::eventually([&] { return std::filesystem::exists(port_file); }, std::chrono::seconds(20)))
      throw std::runtime_error("dynamodb_proxy did not start: " + t::read_file(dir_ / "proxy.out"));
    endpoint_ = "http://127.0.0.1:" + t::read_file(port_file);
  }
  const std::string& endpoint() const { return endpoint_; }
  std::string log() const { return t::read_file(log_); }
  size_t requests() const {
    std::string l = log();
    return static_cast<size_t>(std::count(l.begin(), l.end(), '\n'));
  }

 private:
  t::TempDir dir_;
  std::string log_, endpoint_;
  std::unique_ptr<t::Process> proc_;
};

json run_record(const std::string& id, const std::string& wf) {
  return {{"id", id},
          {"workflow_name", wf},
          {"status", "pending"},
          {"input", {{"k", 1}}},
          {"created_at", ork::format_time(ork::now_ms())}};
}
json task_record(const std::string& run_id, const std::string& name, int64_t seq, json input = json::object()) {
  return {{"id", ork::new_uuid()}, {"run_id", run_id}, {"task_name", name}, {"seq", seq}, {"input", std::move(input)}};
}

class StateDynamo : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = "dyntest-" + ork::common::random_hex(4) + "-";
    cfg_ = {{"endpoint", emulator_file("endpoint")}, {"region", "us-east-1"},   {"access_key_id", "test"},
            {"secret_access_key", "test"},           {"table_prefix", prefix_}, {"create_tables", true}};
    store_ = open(cfg_);
  }

  // A signed DynamoDB call straight to the emulator, to look at the items the plugin wrote.
  json raw(const std::string& op, const json& body) {
    ork::common::HttpClient http;
    std::string text = body.dump();
    ork::common::HttpRequest req{
        "POST",
        emulator_file("endpoint") + "/",
        {{"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Target", "DynamoDB_20120810." + op}},
        text,
        ""};
    ork::common::AwsCredentials c{"test", "test", "", 0, "test"};
    auto r = http.send(req, [&](ork::common::HttpRequest& q) {
      ork::common::sigv4_sign_request(q, c, "us-east-1", "dynamodb", ork::common::now_epoch_ms(), false);
    });
    if (!r.ok()) throw std::runtime_error(op + ": " + r.body);
    return json::parse(r.body);
  }
  std::string table() const { return prefix_ + "ork"; }
  size_t items_under(const std::string& pk) {
    json req{{"TableName", table()},
             {"KeyConditionExpression", "pk = :p"},
             {"ExpressionAttributeValues", {{":p", {{"S", pk}}}}},
             {"ConsistentRead", true}};
    size_t n = 0;
    for (;;) {  // pages of at most 1 MB
      json r = raw("Query", req);
      n += r["Count"].get<size_t>();
      if (!r.contains("LastEvaluatedKey")) return n;
      req["ExclusiveStartKey"] = r["LastEvaluatedKey"];
    }
  }

  void failed_chunk_leaves_nothing(const json& cfg, const std::string& fail);

  std::string prefix_;
  json cfg_;
  std::unique_ptr<StateProxy> store_;
};

TEST_F(StateDynamo, TwoInstancesRacingAcquireEachTaskAndLeaseExactlyOnce) {
  auto other = open(cfg_);
  constexpr int kTasks = 30;
  std::string run_id = ork::new_uuid();
  json tasks = json::array();
  for (int i = 0; i < kTasks; ++i) tasks.push_back(task_record(run_id, "t" + std::to_string(i), i));
  store_->create_run({{"run", run_record(run_id, "race")}, {"tasks", tasks}});
  std::barrier round(2);
  std::vector<int> wins_a(kTasks), wins_b(kTasks);
  std::atomic<int> errors{0};
  auto host = [&](StateProxy& s, std::vector<int>& wins) {
    for (int i = 0; i < kTasks; ++i) {
      round.arrive_and_wait();
      try {
        json r = s.try_acquire_task({{"run_id", run_id}, {"id", tasks[i]["id"]}});
        wins[i] = r["acquired"].get<bool>() ? 1 : 0;
        if (wins[i]) {
          EXPECT_EQ(r["task"]["attempt"], 1);
        }
      } catch (const std::exception& e) {
        if (errors++ < 3) ADD_FAILURE() << e.what();
      }
    }
  };
  std::thread ta([&] { host(*store_, wins_a); });
  std::thread tb([&] { host(*other, wins_b); });
  ta.join();
  tb.join();
  EXPECT_EQ(errors.load(), 0);
  for (int i = 0; i < kTasks; ++i) EXPECT_EQ(wins_a[i] + wins_b[i], 1) << "task " << i;
  for (const auto& t : store_->get_task_runs({{"run_id", run_id}})["tasks"]) {
    EXPECT_EQ(t["status"], "dispatched");
    EXPECT_EQ(t["attempt"], 1) << "acquired twice";
  }

  // Leases: both hosts race for ten runs; exactly one owns each.
  for (int i = 0; i < 10; ++i) {
    std::string rid = ork::new_uuid();
    store_->create_run({{"run", run_record(rid, "race")}, {"tasks", json::array()}});
    bool got_a = false, got_b = false;
    std::thread la([&] {
      round.arrive_and_wait();
      got_a = store_->acquire_lease({{"run_id", rid}, {"owner", "host-a"}, {"ttl_ms", 60000}})["acquired"];
    });
    std::thread lb([&] {
      round.arrive_and_wait();
      got_b = other->acquire_lease({{"run_id", rid}, {"owner", "host-b"}, {"ttl_ms", 60000}})["acquired"];
    });
    la.join();
    lb.join();
    EXPECT_NE(got_a, got_b) << "run " << i;
    EXPECT_EQ(store_->get_run({{"id", rid}}).value()["owner"], got_a ? "host-a" : "host-b");
  }
}

void create_and_check_big_run(StateProxy& s, int n) {
  std::string run_id = ork::new_uuid(), wf = "big-" + ork::new_uuid();
  json tasks = json::array();
  for (int i = 0; i < n; ++i)
    tasks.push_back(
        task_record(run_id, "t" + std::to_string(i), i, {{"blob", std::string(i % 7 == 0 ? 2000 : 10, 'x')}}));
  s.create_run({{"run", run_record(run_id, wf)}, {"tasks", tasks}});
  json got = s.get_task_runs({{"run_id", run_id}})["tasks"];
  ASSERT_EQ(got.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(got[i]["id"], tasks[i]["id"]);
    EXPECT_EQ(got[i]["input"], tasks[i]["input"]);
  }
  EXPECT_EQ(s.list_runs({{"workflow_name", wf}})["total"], 1);
  // The same id again conflicts and leaves the run as it was.
  json again = json::array({task_record(run_id, "other", 0)});
  EXPECT_EQ(code_of([&] { s.create_run({{"run", run_record(run_id, wf)}, {"tasks", again}}); }), ORK_ERR_CONFLICT);
  EXPECT_EQ(s.get_task_runs({{"run_id", run_id}})["tasks"].size(), static_cast<size_t>(n));
}

TEST_F(StateDynamo, RunCreationOverAHundredItemsIsChunked) {
  create_and_check_big_run(*store_, 260);  // 521 items: run, 260 tasks, 260 slot items
  json no_tx = cfg_;
  no_tx["transactions"] = false;
  create_and_check_big_run(*open(no_tx), 130);
}

// A chunk failing half way: the call fails, the run never becomes visible, its items are removed and the id is free.
void StateDynamo::failed_chunk_leaves_nothing(const json& cfg, const std::string& fail) {
  StateProxy& direct = *store_;
  FaultProxy proxy("--fail " + fail);
  json c = cfg;
  c["endpoint"] = proxy.endpoint();
  auto s = open(c);
  std::string run_id = ork::new_uuid(), wf = "fail-" + ork::new_uuid();
  json tasks = json::array();
  for (int i = 0; i < 200; ++i) tasks.push_back(task_record(run_id, "t" + std::to_string(i), i));
  std::string msg;
  EXPECT_NE(code_of([&] { s->create_run({{"run", run_record(run_id, wf)}, {"tasks", tasks}}); }, &msg), ORK_OK);
  EXPECT_NE(msg.find("injected"), std::string::npos) << msg;
  EXPECT_FALSE(direct.get_run({{"id", run_id}}));
  EXPECT_EQ(direct.list_runs({{"workflow_name", wf}})["total"], 0);
  EXPECT_EQ(items_under("RUN#" + run_id), 0u) << "the written chunks were not cleaned up";
  EXPECT_EQ(items_under("SLOT#" + run_id), 0u) << "the written slot items were not cleaned up";
  EXPECT_EQ(direct.create_run({{"run", run_record(run_id, wf)}, {"tasks", tasks}}), json::object());
  EXPECT_EQ(direct.get_task_runs({{"run_id", run_id}})["tasks"].size(), 200u);
}

TEST_F(StateDynamo, AFailedChunkLeavesNoVisibleRunAndFreesTheId) {
  json no_tx = cfg_;
  no_tx["transactions"] = false;
  failed_chunk_leaves_nothing(no_tx, "BatchWriteItem:3");
  failed_chunk_leaves_nothing(cfg_, "BatchWriteItem:5");
}

TEST_F(StateDynamo, ThrottlingAnswersAreRetriedWithBackoff) {
  for (const char* type : {"ThrottlingException", "ProvisionedThroughputExceededException"}) {
    FaultProxy proxy(std::string("--throttle 3:") + type);
    json c = cfg_;
    c["endpoint"] = proxy.endpoint();
    auto s = open(c);  // DescribeTable meets the throttling first
    std::string name = "wf-" + ork::new_uuid();
    s->put_workflow({{"name", name}, {"definition", {{"tasks", json::object()}}}});
    EXPECT_EQ(s->get_workflow({{"name", name}}).value()["name"], name);
    EXPECT_GE(proxy.requests(), 3u + 1 + 2) << type;  // 3 throttled + DescribeTable + the calls
  }
  FaultProxy proxy("--throttle 50");
  json c = cfg_;
  c["endpoint"] = proxy.endpoint();
  c["max_attempts"] = 2;
  std::string err = load_error(c);
  EXPECT_NE(err.find("ThrottlingException"), std::string::npos) << err;
  EXPECT_EQ(proxy.requests(), 2u) << "max_attempts bounds the retries";
}

// A conditional write that took effect but whose answer was lost (HTTP 500, then resent): the resent request fails
// its condition, and the plugin recognizes its own earlier write instead of reporting a lost race.
TEST_F(StateDynamo, AConditionalWriteWhoseAnswerWasLostStillCounts) {
  std::string run_id = ork::new_uuid();
  json task = task_record(run_id, "t", 0);
  store_->create_run({{"run", run_record(run_id, "lost")}, {"tasks", {task}}});
  FaultProxy proxy("--lose UpdateItem:1 --lose UpdateItem:3 --lose PutItem:1");
  json c = cfg_;
  c["endpoint"] = proxy.endpoint();
  auto s = open(c);
  json r = s->try_acquire_task({{"run_id", run_id}, {"id", task["id"]}});
  EXPECT_TRUE(r["acquired"].get<bool>()) << r.dump();
  EXPECT_EQ(r["task"]["attempt"], 1);
  EXPECT_EQ(r["task"]["status"], "dispatched");
  json u = s->update_task_run({{"run_id", run_id},
                               {"id", task["id"]},
                               {"set", {{"status", "success"}}},
                               {"expect", {{"status", "dispatched"}, {"attempt", 1}}}});
  EXPECT_TRUE(u["updated"].get<bool>());
  EXPECT_EQ(store_->get_task_runs({{"run_id", run_id}})["tasks"][0]["status"], "success");
  std::string log = proxy.log();
  size_t updates = 0;
  for (size_t p = log.find("UpdateItem"); p != std::string::npos; p = log.find("UpdateItem", p + 1)) ++updates;
  EXPECT_EQ(updates, 4u) << "each write was sent twice: " << log;
  // A condition that really fails stays a failure.
  EXPECT_FALSE(s->try_acquire_task({{"run_id", run_id}, {"id", task["id"]}})["acquired"].get<bool>());
  // The run claim of a chunked create_run (a conditional PutItem) whose answer was lost.
  std::string big = ork::new_uuid();
  json many = json::array();
  for (int i = 0; i < 120; ++i) many.push_back(task_record(big, "t" + std::to_string(i), i));
  EXPECT_EQ(s->create_run({{"run", run_record(big, "lost")}, {"tasks", many}}), json::object());
  EXPECT_EQ(store_->get_task_runs({{"run_id", big}})["tasks"].size(), 120u);
}

TEST_F(StateDynamo, CredentialsComeFromTheSharedFilesInHome) {
  t::TempDir home;
  t::write_file(home / ".aws/credentials",
                "[default]\naws_access_key_id = AKIDFROMHOMEFILE\naws_secret_access_key = secret1\n\n"
                "[other]\naws_access_key_id = AKIDOTHERPROFILE\naws_secret_access_key = secret2\n");
  t::write_file(home / ".aws/config", "[default]\nregion = us-east-1\n[profile other]\nregion = eu-west-1\n");
  ScopedEnv h("HOME", home.str());
  std::vector<std::unique_ptr<ScopedEnv>> cleared;
  for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"})
    cleared.push_back(std::make_unique<ScopedEnv>(v, std::nullopt));
  FaultProxy proxy("");
  json c{{"endpoint", proxy.endpoint()}, {"table_prefix", prefix_}, {"create_tables", true}};
  auto s = open(c);
  s->put_workflow({{"name", "cred"}, {"definition", json::object()}});
  std::string log = proxy.log();
  EXPECT_NE(log.find("Credential=AKIDFROMHOMEFILE/"), std::string::npos) << log;
  EXPECT_NE(log.find("/us-east-1/dynamodb/aws4_request"), std::string::npos) << log;

  FaultProxy proxy2("");
  c["endpoint"] = proxy2.endpoint();
  c["profile"] = "other";
  auto s2 = open(c);  // a profile's region from ~/.aws/config
  log = proxy2.log();
  EXPECT_NE(log.find("Credential=AKIDOTHERPROFILE/"), std::string::npos) << log;
  EXPECT_NE(log.find("/eu-west-1/dynamodb/aws4_request"), std::string::npos) << log;
  EXPECT_EQ(log.find("AKIDFROMHOMEFILE"), std::string::npos);
}

TEST_F(StateDynamo, LargeValuesLiveInBlobItemsThatAreRemovedWhenReplaced) {
  std::string run_id = ork::new_uuid();
  json task = task_record(run_id, "t", 0);
  store_->create_run({{"run", run_record(run_id, "blob")}, {"tasks", {task}}});
  json big = json::array();
  for (int i = 0; i < 4000; ++i) big.push_back(std::string(250, static_cast<char>('a' + i % 26)) + "漢😀");
  ASSERT_TRUE(store_->update_task_run({{"run_id", run_id}, {"id", task["id"]}, {"set", {{"output", big}}}})["updated"]
                  .get<bool>());
  json item = raw(
      "GetItem", {{"TableName", table()},
                  {"Key", {{"pk", {{"S", "RUN#" + run_id}}}, {"sk", {{"S", "TASK#" + task["id"].get<std::string>()}}}}},
                  {"ConsistentRead", true}})["Item"];
  ASSERT_TRUE(item.contains("output__ref")) << "a 1 MB output is not spilled";
  EXPECT_FALSE(item.contains("output"));
  std::string ref = item["output__ref"]["S"];
  size_t parts = std::stoul(item["output__n"]["N"].get<std::string>());
  EXPECT_GE(parts, 3u);
  EXPECT_EQ(items_under("BLOB#" + ref), parts);
  EXPECT_EQ(store_->get_task_runs({{"run_id", run_id}})["tasks"][0]["output"], big);
  // expect on the large value is a real compare-and-swap.
  EXPECT_FALSE(store_
                   ->update_task_run({{"run_id", run_id},
                                      {"id", task["id"]},
                                      {"set", {{"status", "success"}}},
                                      {"expect", {{"output", json::array({1})}}}})["updated"]
                   .get<bool>());
  EXPECT_TRUE(store_
                  ->update_task_run({{"run_id", run_id},
                                     {"id", task["id"]},
                                     {"set", {{"output", {{"small", true}}}}},
                                     {"expect", {{"output", big}}}})["updated"]
                  .get<bool>());
  EXPECT_EQ(items_under("BLOB#" + ref), 0u) << "the replaced value's blob items stay";
  EXPECT_EQ(store_->get_task_runs({{"run_id", run_id}})["tasks"][0]["output"], json({{"small", true}}));
}

TEST_F(StateDynamo, BadConfigIsRefusedWithClearErrors) {
  auto with = [&](const char* k, json v) {
    json c = cfg_;
    c[k] = std::move(v);
    return load_error(c);
  };
  EXPECT_NE(with("tabel", "x").find("unknown config field \"tabel\""), std::string::npos);
  EXPECT_NE(with("table", "a b").find("table name"), std::string::npos);
  EXPECT_NE(with("timeout_ms", "soon").find("\"timeout_ms\" must be an integer"), std::string::npos);
  EXPECT_NE(with("endpoint", "ftp://x").find("\"endpoint\""), std::string::npos);
  json c = cfg_;
  c.erase("secret_access_key");
  EXPECT_NE(load_error(c).find("go together"), std::string::npos);
  c = cfg_;
  c["create_tables"] = false;
  c["table"] = "missing-" + ork::common::random_hex(4);
  std::string err = load_error(c);
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
  EXPECT_NE(err.find("create_tables"), std::string::npos) << err;
  c = cfg_;
  c["endpoint"] = "http://127.0.0.1:1";
  c["create_tables"] = false;
  c["max_attempts"] = 1;
  c["timeout_ms"] = 1000;
  auto t0 = std::chrono::steady_clock::now();
  err = load_error(c);
  EXPECT_NE(err.find("DescribeTable"), std::string::npos) << err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "client timeouts are not applied";
  EXPECT_EQ(err.find("secret_access_key\": \"test"), std::string::npos) << "secrets in the error";
}

}  // namespace
