// ork-state-postgres beyond the StateStore contract: config validation and password masking, several hosts
// migrating a fresh schema at once, LISTEN/NOTIFY between instances, and surviving connections killed by the server
// or a server stopped and started again (tests/support/pg_server.sh, dir ORK_PG_DIR, owned by the `pg` fixture).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "support/plugin_support.hpp"

using ork::test::code_of;

namespace {

using ork::json;
using ork::StateProxy;
using namespace std::chrono_literals;

std::string read_trimmed(const std::string& path) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string server_url() {
  return read_trimmed(std::string(ORK_PG_DIR) + "/url");
}

// The server's URL with a password added (trust auth accepts any): it must never show up in a message.
constexpr const char* kSecret = "Sup3rS3cretPw";
std::string url_with_password() {
  std::string u = server_url();  // postgresql://postgres@127.0.0.1:PORT/postgres
  return u.replace(u.find('@'), 1, std::string(":") + kSecret + "@");
}

void pg_server(const std::string& verb) {
  std::string cmd = std::string(ORK_PG_SCRIPT) + " " + verb + " " + ORK_PG_DIR + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

std::string fresh_schema() {
  std::string u = ork::new_uuid();
  return "ork_t_" + u.substr(0, 8) + u.substr(9, 4);
}

// Runs one SQL statement on a direct libpq connection; returns the first column of the first row ("" if none).
std::string psql(const std::string& sql) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> c(PQconnectdb(server_url().c_str()), &PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(c.get()));
  std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
  auto st = PQresultStatus(r.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) throw std::runtime_error(PQresultErrorMessage(r.get()));
  return PQntuples(r.get()) > 0 ? PQgetvalue(r.get(), 0, 0) : "";
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Collects the events an instance pushes through host notify.
class Events {
 public:
  ork::NotifyFn fn() {
    return [this](const std::string&, const json& ev) {
      std::lock_guard lk(mu_);
      events_.push_back(ev);
      cv_.notify_all();
    };
  }
  // Waits up to `deadline` for an event matching `pred`.
  bool wait_for(const std::function<bool(const json&)>& pred, std::chrono::milliseconds deadline = 5s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, deadline, [&] {
      for (const auto& e : events_)
        if (pred(e)) return true;
      return false;
    });
  }
  std::vector<json> all() {
    std::lock_guard lk(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<json> events_;
};

json run_record(const std::string& id) {
  return {{"id", id}, {"workflow_name", "wf-" + id}, {"status", "pending"}, {"created_at", ork::now_str()}};
}

json task_record(const std::string& run_id, const std::string& name, int64_t seq) {
  return {{"id", ork::new_uuid()}, {"run_id", run_id}, {"task_name", name}, {"seq", seq}};
}

// Captures what plugins log through the host (spdlog) while alive.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
    spdlog::set_level(spdlog::level::debug);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() {
    spdlog::default_logger()->flush();
    return out_.str();
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

class StatePostgres : public ::testing::Test {
 protected:
  std::unique_ptr<StateProxy> open(const json& config, ork::NotifyFn notify = {}) {
    return ork::load_plugin<StateProxy>("state", "ork-state-postgres", config, std::move(notify));
  }
  json config(const std::string& schema) { return {{"url", server_url()}, {"schema", schema}}; }
};

TEST_F(StatePostgres, ConfigIsValidatedAndThePasswordNeverShows) {
  auto load_error = [&](const json& cfg) { return message_of([&] { open(cfg); }); };
  EXPECT_NE(load_error({{"url", server_url()}, {"bogus", 1}}).find("unknown key 'bogus'"), std::string::npos);
  EXPECT_NE(load_error(json::object()).find("'url'"), std::string::npos);
  EXPECT_NE(load_error({{"url", server_url()}, {"schema", "Bad-Name"}}).find("schema"), std::string::npos);
  EXPECT_NE(load_error({{"url", server_url()}, {"pool_size", 0}}).find("pool_size"), std::string::npos);
  std::string bad = load_error({{"url", std::string("mysql://u:") + kSecret + "@h/db"}});
  EXPECT_NE(bad.find("postgresql://"), std::string::npos) << bad;
  EXPECT_EQ(bad.find(kSecret), std::string::npos) << bad;
  // Nothing listens on port 1: UNAVAILABLE at create, naming the server but not the password.
  std::string down = load_error(
      {{"url", std::string("postgresql://ork:") + kSecret + "@127.0.0.1:1/ork"}, {"connect_timeout_ms", 2000}});
  EXPECT_NE(down.find("postgresql://ork@127.0.0.1:1/ork"), std::string::npos) << down;
  EXPECT_EQ(down.find(kSecret), std::string::npos) << down;
  down = load_error(
      {{"url", std::string("postgresql://ork@127.0.0.1:1/ork?password=") + kSecret}, {"connect_timeout_ms", 2000}});
  EXPECT_NE(down.find("cannot connect"), std::string::npos) << down;
  EXPECT_EQ(down.find(kSecret), std::string::npos) << down;
  // String integers (from ${VAR} expansion) are accepted.
  EXPECT_TRUE(open({{"url", server_url()}, {"pool_size", "2"}, {"connect_timeout_ms", "3000"}}));
}

TEST_F(StatePostgres, SeveralHostsMigrateAFreshSchemaAtOnce) {
  json cfg = config(fresh_schema());
  constexpr int kHosts = 4;
  std::vector<std::unique_ptr<StateProxy>> hosts(kHosts);
  std::vector<std::string> errors(kHosts);
  std::vector<std::thread> threads;
  for (int i = 0; i < kHosts; ++i)
    threads.emplace_back([&, i] {
      try {
        hosts[i] = open(cfg);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kHosts; ++i) ASSERT_TRUE(hosts[i]) << errors[i];
  EXPECT_EQ(psql("SELECT count(*) FROM " + cfg["schema"].get<std::string>() + ".schema_version"), "1");
  std::string run_id = ork::new_uuid();
  hosts[0]->create_run({{"run", run_record(run_id)}, {"tasks", {task_record(run_id, "a", 0)}}});
  EXPECT_EQ(hosts[3]->get_task_runs({{"run_id", run_id}})["tasks"].size(), 1u);
}

TEST_F(StatePostgres, AnotherInstanceIsNotifiedOfNewWork) {
  std::string schema = fresh_schema();
  Events b_events, other_events;
  auto a = open(config(schema));
  auto b = open(config(schema), b_events.fn());
  auto other = open(config(fresh_schema()), other_events.fn());  // another store in the same database

  std::string run_id = ork::new_uuid();
  auto t0 = std::chrono::steady_clock::now();
  a->create_run({{"run", run_record(run_id)}, {"tasks", {task_record(run_id, "a", 0)}}});
  auto is_run = [&](const std::string& op) {
    return [&, op](const json& e) {
      return e.value("type", "") == "state.changed" && e.value("what", "") == "run" &&
             e.value("run_id", "") == run_id && e.value("op", "") == op;
    };
  };
  ASSERT_TRUE(b_events.wait_for(is_run("create_run"))) << json(b_events.all()).dump();
  std::cout << "[ timing ] create_run -> notify on another instance: "
            << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() << " ms"
            << std::endl;

  a->add_task_runs({{"run_id", run_id}, {"tasks", {task_record(run_id, "b", 1)}}});
  EXPECT_TRUE(b_events.wait_for(is_run("add_task_runs")));
  a->update_run({{"id", run_id}, {"set", {{"status", "running"}}}});
  EXPECT_TRUE(b_events.wait_for(is_run("update_run")));
  std::string wf = "wf-" + ork::new_uuid();
  a->put_schedule({{"workflow_name", wf}, {"cron_expr", "* * * * *"}, {"next_run", ork::now_str()}, {"enabled", true}});
  EXPECT_TRUE(b_events.wait_for(
      [&](const json& e) { return e.value("what", "") == "schedule" && e.value("workflow_name", "") == wf; }));

  // Writes that are not new work, and failed calls, notify nothing.
  size_t before = b_events.all().size();
  a->update_run({{"id", run_id}, {"set", {{"owner", "x"}}}});
  EXPECT_EQ(code_of([&] { a->create_run({{"run", run_record(run_id)}, {"tasks", json::array()}}); }), ORK_ERR_CONFLICT);
  a->update_run({{"id", run_id}, {"set", {{"status", "failed"}}}, {"expect", {{"status", "pending"}}}});
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(b_events.all().size(), before) << json(b_events.all()).dump();
  EXPECT_TRUE(other_events.all().empty()) << "another schema's events leaked: " << json(other_events.all()).dump();
}

TEST_F(StatePostgres, KilledConnectionsAreReplacedAndTheListenerReconnects) {
  std::string schema = fresh_schema();
  Events events;
  auto s = open(config(schema), events.fn());
  std::string run_id = ork::new_uuid();
  s->create_run({{"run", run_record(run_id)}, {"tasks", {task_record(run_id, "a", 0)}}});
  std::string killed = psql(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'ork-state-postgres'");
  EXPECT_NE(killed, "0");
  // The pooled connections are dead: the next calls notice it before sending and reconnect transparently.
  EXPECT_TRUE(s->get_run({{"id", run_id}}));
  auto tasks = s->get_task_runs({{"run_id", run_id}})["tasks"];
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_TRUE(s->try_acquire_task({{"run_id", run_id}, {"id", tasks[0]["id"]}})["acquired"].get<bool>());
  EXPECT_TRUE(events.wait_for([](const json& e) { return e.value("what", "") == "reconnected"; }, 10s));
  // And it listens again.
  std::string run2 = ork::new_uuid();
  s->create_run({{"run", run_record(run2)}, {"tasks", json::array()}});
  EXPECT_TRUE(events.wait_for([&](const json& e) { return e.value("run_id", "") == run2; }));
}

TEST_F(StatePostgres, ServerDownIsUnavailableAndCallsWorkAgainAfterItRestarts) {
  LogCapture logs;
  std::string schema = fresh_schema();
  Events events;
  json cfg{{"url", url_with_password()}, {"schema", schema}, {"connect_timeout_ms", 2000}};
  auto s = open(cfg, events.fn());
  std::string run_id = ork::new_uuid();
  json t = task_record(run_id, "a", 0);
  s->create_run({{"run", run_record(run_id)}, {"tasks", {t}}});

  pg_server("pause");
  std::vector<std::string> messages;
  auto down = [&](const std::function<void()>& call) {
    std::string m;
    int code = code_of([&] {
      try {
        call();
      } catch (const std::exception& e) {
        m = e.what();
        throw;
      }
    });
    messages.push_back(m);
    return code;
  };
  EXPECT_EQ(down([&] { s->get_run({{"id", run_id}}); }), ORK_ERR_UNAVAILABLE);
  EXPECT_EQ(down([&] { s->try_acquire_task({{"run_id", run_id}, {"id", t["id"]}}); }), ORK_ERR_UNAVAILABLE);
  std::string run2 = ork::new_uuid();
  EXPECT_EQ(down([&] { s->create_run({{"run", run_record(run2)}, {"tasks", json::array()}}); }), ORK_ERR_UNAVAILABLE);
  for (const auto& m : messages) {
    EXPECT_NE(m.find("cannot connect to postgresql://postgres@127.0.0.1:"), std::string::npos) << m;
    EXPECT_EQ(m.find(kSecret), std::string::npos) << m;
  }
  pg_server("resume");

  EXPECT_TRUE(s->get_run({{"id", run_id}}));
  auto got = s->try_acquire_task({{"run_id", run_id}, {"id", t["id"]}});
  EXPECT_TRUE(got["acquired"].get<bool>()) << "the failed acquire while down must not have taken effect";
  EXPECT_EQ(got["task"]["attempt"], 1);
  s->create_run({{"run", run_record(run2)}, {"tasks", json::array()}});
  // The listener re-LISTENs with backoff, says so, and events flow again.
  EXPECT_TRUE(events.wait_for([](const json& e) { return e.value("what", "") == "reconnected"; }, 15s));
  std::string run3 = ork::new_uuid();
  s->create_run({{"run", run_record(run3)}, {"tasks", json::array()}});
  EXPECT_TRUE(events.wait_for([&](const json& e) { return e.value("run_id", "") == run3; }));

  // A quick restart between two calls is invisible: the stale pooled connections are replaced before use.
  pg_server("restart");
  EXPECT_TRUE(s->get_run({{"id", run2}}));
  EXPECT_EQ(s->update_run({{"id", run2}, {"set", {{"status", "running"}}}, {"expect", {{"status", "pending"}}}}),
            json({{"updated", true}}));

  std::string log_text = logs.text();
  EXPECT_EQ(log_text.find(kSecret), std::string::npos) << log_text;
  EXPECT_NE(log_text.find("postgresql://postgres@127.0.0.1:"), std::string::npos) << log_text;
}

}  // namespace
