// dbt end to end: ork-host imports a dbt project (tests/fixtures/dbt/jaffle) through ork-dbt-import and runs its
// models, seeds, snapshot and tests with the worker's dbt runtimes, dbt played by tests/fakes/dbt_standin (dbt itself
// cannot be installed here). Also failures, a missing dbt, validate errors, and examples/dbt.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

const std::string kStandin = std::string(ORK_SOURCE_DIR) + "/tests/fakes/dbt_standin";

struct DbtEnv {
  TempDir dir;
  std::string home = dir / "home";
  std::string calls = dir / "calls.jsonl";

  DbtEnv() {
    fs::copy(std::string(ORK_SOURCE_DIR) + "/tests/fixtures/dbt/jaffle", dir / "transform",
             fs::copy_options::recursive);
  }
  CmdResult host(const std::string& args, const std::string& env = "ORK_DBT=" + kStandin) const {
    return run("ORK_HOME=" + home + " DBT_STANDIN_LOG=" + calls + " " + env + " " + kHost + " " + args + " 2>&1",
               std::chrono::seconds(240));
  }
  std::map<std::string, json> tasks() const {
    std::map<std::string, json> out;
    json r = last_run(home);
    for (auto& t : r.value("tasks", json::array())) out[t["task_name"]] = t;
    return out;
  }
  // The stand-in's recorded argument lists, in call order.
  std::vector<std::vector<std::string>> dbt_calls() const {
    std::vector<std::vector<std::string>> out;
    std::istringstream in(read_file(calls));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(json::parse(line)["argv"].get<std::vector<std::string>>());
    return out;
  }
};

const char* kWorkflow = R"(name: jaffle
import:
  - dbt: ./transform
    profiles_dir: ./transform
    target: dev
tasks:
  extract:
    command: |
      echo '{"loaded": true}'
  dbt.staging.stg_orders:
    depends_on: [extract]
  report:
    command: cat "$ORK_INPUT_FILE"
    depends_on: [dbt.marts.fct_sales]
)";

int non_empty_lines(const std::string& path) {
  std::istringstream in(read_file(path));
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) ++n;
  return n;
}

size_t index_of(const std::vector<std::vector<std::string>>& calls, const std::string& verb, const std::string& sel) {
  for (size_t i = 0; i < calls.size(); ++i)
    if (calls[i].size() > 2 && calls[i][0] == verb && calls[i][2] == sel) return i;
  ADD_FAILURE() << "no call dbt " << verb << " --select " << sel;
  return calls.size();
}

TEST(DbtE2E, ImportedProjectRunsEndToEnd) {
  DbtEnv e;
  write_file(e.dir / "wf.yaml", kWorkflow);
  auto r = e.host("run " + (e.dir / "wf.yaml"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto t = e.tasks();
  ASSERT_EQ(t.size(), 14u) << r.output;  // 12 imported + extract + report
  for (const auto& [name, task] : t) EXPECT_EQ(task["status"], "success") << name << ": " << task.dump();

  // Model outputs: run_results.json parsed (rows affected as the stand-in computes them, status, timing).
  const json fct = t["dbt.marts.fct_sales"]["output"];
  EXPECT_EQ(fct["status"], "success");
  EXPECT_EQ(fct["command"], "run");
  EXPECT_EQ(fct["select"], "fct_sales");
  EXPECT_EQ(fct["rows_affected"], non_empty_lines(e.dir / "transform/models/marts/fct_sales.sql"));
  ASSERT_EQ(fct["nodes"].size(), 1u);
  EXPECT_EQ(fct["nodes"][0]["unique_id"], "model.jaffle_shop.fct_sales");
  EXPECT_EQ(fct["nodes"][0]["timing"][1]["name"], "execute");
  EXPECT_TRUE(fct["invocation_id"].is_string());
  EXPECT_EQ(t["dbt.seeds.raw_customers"]["output"]["rows_affected"], 4);  // CSV data lines
  // Tests: one node per schema test of the model, all passed.
  const json tests = t["dbt.staging.stg_orders.test"]["output"];
  EXPECT_EQ(tests["command"], "test");
  EXPECT_EQ(tests["nodes"].size(), 4u);  // unique, not_null, relationships, accepted_values
  for (const auto& n : tests["nodes"]) EXPECT_EQ(n["status"], "pass");
  EXPECT_EQ(tests["failures"], 0);
  // The downstream shell task received the mart's output under its task name.
  EXPECT_EQ(t["report"]["output"]["dbt.marts.fct_sales"]["rows_affected"], fct["rows_affected"]);

  // The exact command lines, in dependency order.
  auto calls = e.dbt_calls();
  ASSERT_EQ(calls.size(), 12u);
  for (const auto& c : calls) {
    ASSERT_GE(c.size(), 11u);
    EXPECT_EQ(
        std::vector<std::string>(c.begin() + 3, c.begin() + 9),
        (std::vector<std::string>{"--project-dir", "transform", "--profiles-dir", "./transform", "--target", "dev"}));
    EXPECT_EQ(c[9], "--target-path");
  }
  EXPECT_LT(index_of(calls, "seed", "raw_customers"), index_of(calls, "run", "stg_customers"));
  EXPECT_LT(index_of(calls, "run", "stg_customers"), index_of(calls, "run", "dim_customers"));
  EXPECT_LT(index_of(calls, "run", "stg_orders"), index_of(calls, "snapshot", "orders_snapshot"));
  EXPECT_LT(index_of(calls, "run", "dim_customers"), index_of(calls, "run", "fct_sales"));
  EXPECT_LT(index_of(calls, "run", "fct_sales"), index_of(calls, "test", "fct_sales"));
  EXPECT_LT(index_of(calls, "run", "stg_customers"), index_of(calls, "test", "stg_orders"));  // relationships

  // dbt's stdout is in the task log.
  std::string log = read_file(e.home + "/objects/runs/" + t["dbt.marts.fct_sales"]["run_id"].get<std::string>() + "/" +
                              t["dbt.marts.fct_sales"]["id"].get<std::string>() + "/attempt-1.log");
  EXPECT_NE(log.find("1 of 1 OK model jaffle_shop.fct_sales"), std::string::npos) << log;
  EXPECT_NE(log.find("running dbt run --select fct_sales"), std::string::npos) << log;
}

TEST(DbtE2E, FailingModelAndFailingTestsBecomeDbtErrors) {
  DbtEnv e;
  write_file(e.dir / "wf.yaml", kWorkflow);
  auto r = e.host("run " + (e.dir / "wf.yaml"), "ORK_DBT=" + kStandin + " DBT_STANDIN_FAIL=stg_payments,not_null");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto t = e.tasks();
  const json& pay = t["dbt.staging.stg_payments"];
  EXPECT_EQ(pay["status"], "failed");
  EXPECT_EQ(pay["error"]["type"], "dbt_error");
  EXPECT_NE(pay["error"]["message"].get<std::string>().find(
                "dbt run failed: 1 of 1 nodes failed: model.jaffle_shop.stg_payments (error: Database Error"),
            std::string::npos)
      << pay.dump();
  EXPECT_EQ(pay["error"]["details"]["exit_code"], 1);
  EXPECT_EQ(t["dbt.marts.fct_sales"]["status"], "skipped");
  EXPECT_EQ(t["report"]["status"], "skipped");
  const json& test = t["dbt.staging.stg_orders.test"];
  EXPECT_EQ(test["status"], "failed");
  EXPECT_NE(test["error"]["message"].get<std::string>().find(
                "dbt test failed: 1 of 4 nodes failed: "
                "test.jaffle_shop.not_null_stg_orders_order_id (fail: Got 3 results"),
            std::string::npos)
      << test.dump();
  EXPECT_EQ(test["error"]["details"]["failures"], 3);
  EXPECT_EQ(t["dbt.staging.stg_customers"]["status"], "success");
}

TEST(DbtE2E, MissingDbtAndDbtThatCannotStart) {
  DbtEnv e;
  write_file(e.dir / "wf.yaml", "name: one\nimport:\n  - dbt: ./transform\n    models: [stg_payments]\n");
  auto r = e.host("run " + (e.dir / "wf.yaml"), "PATH=/usr/bin:/bin ORK_DBT=");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto t = e.tasks();
  EXPECT_EQ(t["dbt.staging.stg_payments"]["error"]["type"], "spawn_error");
  EXPECT_NE(t["dbt.staging.stg_payments"]["error"]["message"].get<std::string>().find("dbt not found"),
            std::string::npos);

  r = e.host("run " + (e.dir / "wf.yaml"), "ORK_DBT=" + kStandin + " DBT_STANDIN_EXIT=2");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  t = e.tasks();
  EXPECT_EQ(t["dbt.staging.stg_payments"]["error"]["message"],
            "dbt exited with code 2 (dbt could not run: see the log) and wrote no run results");
}

TEST(DbtE2E, ValidateReportsImportErrorsAtTheImportEntry) {
  DbtEnv e;
  fs::copy(std::string(ORK_SOURCE_DIR) + "/tests/fixtures/dbt/broken/unknown_ref", e.dir / "broken",
           fs::copy_options::recursive);
  write_file(e.dir / "wf.yaml",
             "name: w\nimport:\n  - dbt: ./transform\n  - dbt: ./broken\ntasks:\n  a:\n"
             "    command: echo\n    depends_on: [dbt.marts.fct_sales]\n");
  auto r = e.host("validate " + (e.dir / "wf.yaml"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("wf.yaml:4:5: import[1].dbt: broken/models/marts/fct_sales.sql:3:"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("ref('stg_ordrs'): unknown model (did you mean 'stg_orders'?)"), std::string::npos)
      << r.output;

  write_file(e.dir / "ok.yaml",
             "name: w\nimport:\n  - dbt: ./transform\ntasks:\n  a:\n"
             "    command: echo\n    depends_on: [dbt.marts.fct_sales]\n");
  r = e.host("validate " + (e.dir / "ok.yaml"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("13 tasks"), std::string::npos) << r.output;
}

TEST(DbtE2E, ExampleRunsWithTheStandIn) {
  TempDir dir;
  auto r = run("ORK_HOME=" + (dir / "home") + " ORK_DBT=" + kStandin + " " + std::string(ORK_SOURCE_DIR) +
                   "/examples/dbt/run.sh " + kHost + " 2>&1",
               std::chrono::seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::map<std::string, json> t;
  const json last = last_run(dir / "home");
  for (const auto& x : last["tasks"]) t[x["task_name"]] = x;
  EXPECT_EQ(t.size(), 8u);  // extract, 2 seeds, 3 models, the tests of fct_sales, report
  EXPECT_EQ(t["report"]["output"], json({{"mart", "fct_sales"}, {"tests_passed", 3}, {"tests_status", "success"}}));
  EXPECT_EQ(t["dbt.seeds.raw_orders"]["output"]["rows_affected"], 3);
}

}  // namespace
