// Acquire+complete throughput of state plugins: one run of N tasks; H hosts (one plugin instance and one thread
// each) walk the task ids from different offsets, try_acquire_task each, and on success update_task_run it to
// success (CAS on status/attempt), as the engine does. Prints a markdown table of tasks/s, then one of per-operation
// latency (median and p95 of single calls from one thread).
//   state_bench [--tasks N] [--hosts 1,4] [--pg URL | --pg @FILE] [--sqlite-dir DIR]
//               [--dynamodb NAME=ENDPOINT|NAME=@FILE ...] [--dynamodb-tasks N] [--firestore ENDPOINT|@FILE]
//               [--firestore-tasks N]
// Without --pg (or ORK_BENCH_PG_URL) the postgres rows are skipped; the sqlite database goes to a temp dir.
// Each --dynamodb adds "dynamodb (NAME)" rows against that endpoint (an emulator: keys test/test, a fresh table).
// --firestore (an emulator's http://host:port) adds Firestore rows (fewer tasks: every call is HTTP).
// Built as `state_bench` by tests/plugins/CMakeLists.txt; not a ctest test.
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"

namespace {

using ork::json;
using ork::StateProxy;
using Clock = std::chrono::steady_clock;

struct Row {
  std::string backend;
  int hosts = 0;
  size_t tasks = 0;
  double create_ms = 0, run_s = 0;
  size_t completed = 0, lost = 0;
};

Row measure(const std::string& backend, const std::string& library, const json& config, int hosts, size_t n) {
  std::vector<std::unique_ptr<StateProxy>> inst;
  for (int h = 0; h < hosts; ++h) inst.push_back(ork::load_plugin<StateProxy>("state", library, config));
  std::string run_id = ork::new_uuid();
  json tasks = json::array();
  std::vector<std::string> ids;
  std::string now = ork::now_str();
  for (size_t i = 0; i < n; ++i) {
    ids.push_back(ork::new_uuid());
    tasks.push_back({{"id", ids.back()},
                     {"run_id", run_id},
                     {"task_name", "t" + std::to_string(i)},
                     {"status", "pending"},
                     {"attempt", 0},
                     {"max_retries", 0},
                     {"executor", "local"},
                     {"input", {{"i", i}}},
                     {"created_at", now},
                     {"seq", static_cast<int64_t>(i)}});
  }
  Row row{backend, hosts, n};
  auto c0 = Clock::now();
  inst[0]->create_run({{"run",
                        {{"id", run_id},
                         {"workflow_name", "bench"},
                         {"status", "running"},
                         {"input", json::object()},
                         {"created_at", now}}},
                       {"tasks", std::move(tasks)}});
  row.create_ms = std::chrono::duration<double, std::milli>(Clock::now() - c0).count();

  std::atomic<size_t> completed{0}, lost{0};
  std::barrier start(hosts + 1);
  std::vector<std::thread> threads;
  for (int h = 0; h < hosts; ++h) {
    threads.emplace_back([&, h] {
      StateProxy& st = *inst[static_cast<size_t>(h)];
      size_t offset = n * static_cast<size_t>(h) / static_cast<size_t>(hosts);
      start.arrive_and_wait();
      for (size_t k = 0; k < n; ++k) {
        const std::string& id = ids[(offset + k) % n];
        json r = st.try_acquire_task({{"run_id", run_id}, {"id", id}});
        if (!r["acquired"].get<bool>()) {
          ++lost;
          continue;
        }
        json u = st.update_task_run(
            {{"run_id", run_id},
             {"id", id},
             {"set", {{"status", "success"}, {"finished_at", ork::now_str()}, {"output", {{"ok", true}}}}},
             {"expect", {{"status", "dispatched"}, {"attempt", 1}}}});
        if (u["updated"].get<bool>()) ++completed;
      }
    });
  }
  start.arrive_and_wait();
  auto t0 = Clock::now();
  for (auto& t : threads) t.join();
  row.run_s = std::chrono::duration<double>(Clock::now() - t0).count();
  row.completed = completed;
  row.lost = lost;
  json left = inst[0]->get_task_runs({{"run_id", run_id}, {"status", {"pending", "dispatched"}}})["tasks"];
  if (!left.empty() || row.completed != n)
    std::cerr << backend << ": " << left.size() << " tasks not completed, " << row.completed << " of " << n << "\n";
  return row;
}

// ---- Per-operation latency

struct Latency {
  std::string backend, op;
  double p50_ms = 0, p95_ms = 0;
  size_t calls = 0;
};

void latencies(const std::string& backend, const std::string& library, const json& config, std::vector<Latency>& out) {
  auto st = ork::load_plugin<StateProxy>("state", library, config);
  constexpr int kCalls = 100;
  auto task = [](const std::string& run_id, int i) {
    return json{{"id", ork::new_uuid()}, {"run_id", run_id}, {"task_name", "t" + std::to_string(i)},
                {"status", "pending"},   {"seq", i},         {"input", {{"i", i}}}};
  };
  std::string run_id = ork::new_uuid(), now = ork::now_str();
  json tasks = json::array();
  for (int i = 0; i < kCalls; ++i) tasks.push_back(task(run_id, i));
  st->create_run({{"run", {{"id", run_id}, {"workflow_name", "bench-lat"}, {"status", "running"}, {"created_at", now}}},
                  {"tasks", tasks}});
  auto measure_op = [&](const std::string& op, const std::function<void(int)>& call) {
    std::vector<double> ms;
    for (int i = 0; i < kCalls; ++i) {
      auto t0 = Clock::now();
      call(i);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    out.push_back({backend, op, ms[ms.size() / 2], ms[ms.size() * 95 / 100], ms.size()});
  };
  measure_op("create_run (10 tasks)", [&](int) {
    std::string id = ork::new_uuid();
    json t = json::array();
    for (int i = 0; i < 10; ++i) t.push_back(task(id, i));
    st->create_run(
        {{"run", {{"id", id}, {"workflow_name", "bench-lat"}, {"status", "pending"}, {"created_at", ork::now_str()}}},
         {"tasks", t}});
  });
  measure_op("get_run", [&](int) { st->get_run({{"id", run_id}}); });
  measure_op("try_acquire_task", [&](int i) { st->try_acquire_task({{"run_id", run_id}, {"id", tasks[i]["id"]}}); });
  measure_op("update_task_run (CAS)", [&](int i) {
    st->update_task_run({{"run_id", run_id},
                         {"id", tasks[i]["id"]},
                         {"set", {{"status", "success"}, {"output", {{"ok", true}}}}},
                         {"expect", {{"status", "dispatched"}}}});
  });
  measure_op("get_task_runs (100 tasks)", [&](int) { st->get_task_runs({{"run_id", run_id}}); });
  measure_op("acquire_lease", [&](int) {
    st->acquire_lease({{"run_id", run_id}, {"owner", "bench"}, {"ttl_ms", 60000}});
  });
  measure_op("list_runs_page (20)", [&](int) { st->list_runs_page({{"workflow_name", "bench-lat"}, {"limit", 20}}); });
}

std::string arg_value(int& i, int argc, char** argv) {
  if (i + 1 >= argc) {
    std::cerr << "missing value for " << argv[i] << "\n";
    std::exit(2);
  }
  return argv[++i];
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 5000;
  std::vector<int> host_counts{1, 4};
  std::string pg = getenv("ORK_BENCH_PG_URL") ? getenv("ORK_BENCH_PG_URL") : "";
  std::string sqlite_dir;
  std::vector<std::pair<std::string, std::string>> dynamo;  // name, endpoint
  size_t dynamo_tasks = 2000;
  std::string firestore;  // emulator endpoint
  size_t firestore_tasks = 1000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tasks") {
      n = std::stoul(arg_value(i, argc, argv));
    } else if (a == "--pg") {
      pg = arg_value(i, argc, argv);
    } else if (a == "--sqlite-dir") {
      sqlite_dir = arg_value(i, argc, argv);
    } else if (a == "--dynamodb") {
      std::string v = arg_value(i, argc, argv);
      size_t eq = v.find('=');
      std::string name = v.substr(0, eq), endpoint = eq == std::string::npos ? "" : v.substr(eq + 1);
      if (!endpoint.empty() && endpoint[0] == '@') {
        std::ifstream in(endpoint.substr(1));
        std::getline(in, endpoint);
      }
      if (name.empty() || endpoint.empty()) {
        std::cerr << "--dynamodb wants NAME=ENDPOINT or NAME=@FILE\n";
        return 2;
      }
      dynamo.emplace_back(name, endpoint);
    } else if (a == "--dynamodb-tasks") {
      dynamo_tasks = std::stoul(arg_value(i, argc, argv));
    } else if (a == "--firestore") {
      firestore = arg_value(i, argc, argv);
    } else if (a == "--firestore-tasks") {
      firestore_tasks = std::stoul(arg_value(i, argc, argv));
    } else if (a == "--hosts") {
      host_counts.clear();
      std::stringstream ss(arg_value(i, argc, argv));
      for (std::string h; std::getline(ss, h, ',');) host_counts.push_back(std::stoi(h));
    } else {
      std::cerr << "usage: state_bench [--tasks N] [--hosts 1,4] [--pg URL|@FILE] [--sqlite-dir DIR] "
                   "[--dynamodb NAME=ENDPOINT|NAME=@FILE ...] [--dynamodb-tasks N] [--firestore ENDPOINT|@FILE] "
                   "[--firestore-tasks N]\n";
      return 2;
    }
  }
  if (!pg.empty() && pg[0] == '@') {
    std::ifstream in(pg.substr(1));
    std::getline(in, pg);
  }
  if (!firestore.empty() && firestore[0] == '@') {
    std::ifstream in(firestore.substr(1));
    std::getline(in, firestore);
  }
  // Firestore: a fresh collection prefix per measurement, so runs never see each other's documents.
  auto firestore_config = [&] {
    return json{{"project", "ork-bench"},
                {"emulator_host", firestore},
                {"collection_prefix", "b" + ork::new_uuid().substr(0, 8) + "_"}};
  };
  spdlog::set_level(spdlog::level::warn);
  std::string tmp;
  if (sqlite_dir.empty()) {
    tmp = (std::filesystem::temp_directory_path() / "ork-state-bench-XXXXXX").string();
    if (!mkdtemp(tmp.data())) return 1;
    sqlite_dir = tmp;
  }

  std::vector<Row> rows;
  std::vector<Latency> lat;
  // DynamoDB: a fresh table per endpoint and bench invocation.
  std::vector<std::pair<std::string, json>> dynamo_cfgs;
  for (const auto& [name, endpoint] : dynamo)
    dynamo_cfgs.emplace_back("dynamodb (" + name + ")",
                             json{{"endpoint", endpoint},
                                  {"region", "us-east-1"},
                                  {"access_key_id", "test"},
                                  {"secret_access_key", "test"},
                                  {"table_prefix", "bench-" + ork::new_uuid().substr(0, 8) + "-"},
                                  {"create_tables", true}});
  try {
    latencies("sqlite", "ork-state-sqlite", {{"path", sqlite_dir + "/latency.db"}}, lat);
    if (!pg.empty()) latencies("postgres", "ork-state-postgres", {{"url", pg}, {"schema", "ork_bench_lat"}}, lat);
    for (const auto& [backend, cfg] : dynamo_cfgs) latencies(backend, "ork-state-dynamodb", cfg, lat);
    if (!firestore.empty()) latencies("firestore (emulator)", "ork-state-firestore", firestore_config(), lat);
    for (int hosts : host_counts) {
      std::string db = sqlite_dir + "/bench-" + std::to_string(hosts) + ".db";
      for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db + suffix);
      rows.push_back(measure("sqlite", "ork-state-sqlite", {{"path", db}}, hosts, n));
      if (!pg.empty())
        rows.push_back(measure("postgres", "ork-state-postgres", {{"url", pg}, {"schema", "ork_bench"}}, hosts, n));
      for (const auto& [backend, cfg] : dynamo_cfgs)
        rows.push_back(measure(backend, "ork-state-dynamodb", cfg, hosts, dynamo_tasks));
      if (!firestore.empty())
        rows.push_back(measure("firestore (emulator)", "ork-state-firestore", firestore_config(), hosts,
                               std::min(n, firestore_tasks)));
    }
  } catch (const std::exception& e) {
    std::cerr << "state_bench: " << e.what() << "\n";
    return 1;
  }
  if (!tmp.empty()) std::filesystem::remove_all(tmp);

  std::printf("| backend | hosts | tasks | create_run | acquire+complete | tasks/s | refused acquires |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows)
    std::printf("| %s | %d | %zu | %.0f ms | %.2f s | %.0f | %zu |\n", r.backend.c_str(), r.hosts, r.tasks, r.create_ms,
                r.run_s, static_cast<double>(r.completed) / r.run_s, r.lost);
  if (pg.empty()) std::printf("\n(postgres skipped: pass --pg URL or set ORK_BENCH_PG_URL)\n");

  std::printf("\nPer-operation latency (one thread, %zu calls each):\n\n", lat.empty() ? size_t{0} : lat[0].calls);
  std::printf("| backend | operation | p50 | p95 |\n|---|---|---:|---:|\n");
  for (const auto& l : lat)
    std::printf("| %s | %s | %.2f ms | %.2f ms |\n", l.backend.c_str(), l.op.c_str(), l.p50_ms, l.p95_ms);
  return 0;
}
