// ork-dbt-import through the C ABI on the dbt projects in tests/fixtures/dbt, and the workflow loader expanding
// `import:` with it (merging user tasks, errors placed at the import entry).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include "loader/plugin_loader.hpp"
#include "support/test_support.hpp"
#include "workflow/workflow_loader.hpp"

namespace {

namespace fs = std::filesystem;
using ork::json;
using ork::test::TempDir;

const std::string kFixtures = std::string(ORK_SOURCE_DIR) + "/tests/fixtures/dbt";

class DbtImport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { plugin_ = ork::load_plugin<ork::ImporterProxy>("importer", "ork-dbt-import", {}); }
  static void TearDownTestSuite() { plugin_.reset(); }

  static json import(const json& source, const std::string& base = kFixtures) {
    return plugin_->import_tasks({{"source", source}, {"base_dir", base}})["tasks"];
  }
  // The error text of an import that must fail.
  static std::string import_error(const json& source, const std::string& base = kFixtures) {
    try {
      plugin_->import_tasks({{"source", source}, {"base_dir", base}});
    } catch (const ork::PluginCallError& e) {
      EXPECT_EQ(e.code(), ORK_ERR_INVALID);
      return e.what();
    }
    ADD_FAILURE() << "import of " << source.dump() << " succeeded";
    return "";
  }
  static std::set<std::string> deps(const json& task) {
    return task.contains("depends_on") ? task["depends_on"].get<std::set<std::string>>() : std::set<std::string>{};
  }
  static ork::ImportFn import_fn() {
    return [](const std::string& name, const json& req) {
      if (name != "dbt") throw std::runtime_error("no importer plugin named '" + name + "'");
      return plugin_->import_tasks(req);
    };
  }

  static std::unique_ptr<ork::ImporterProxy> plugin_;
};
std::unique_ptr<ork::ImporterProxy> DbtImport::plugin_;

TEST_F(DbtImport, DescriptorIsAnImporterNamedDbt) {
  EXPECT_EQ(plugin_->kind(), "importer");
  EXPECT_EQ(plugin_->plugin_name(), "dbt");
  EXPECT_FALSE(plugin_->version().empty());
}

TEST_F(DbtImport, ProjectBecomesTasksNamedByFolder) {
  json tasks = import({{"dbt", "./jaffle"}});
  std::set<std::string> names;
  for (const auto& [k, v] : tasks.items()) names.insert(k);
  const std::set<std::string> want = {"dbt.seeds.raw_customers",       "dbt.seeds.reference.country_codes",
                                      "dbt.staging.stg_customers",     "dbt.staging.stg_customers.test",
                                      "dbt.staging.stg_orders",        "dbt.staging.stg_orders.test",
                                      "dbt.staging.stg_payments",      "dbt.marts.core.dim_customers",
                                      "dbt.marts.fct_sales",           "dbt.marts.fct_sales.test",
                                      "dbt.snapshots.orders_snapshot", "dbt.sources.shop.orders.test"};
  EXPECT_EQ(names, want);

  // Edges from ref(): seeds and one- and two-argument refs; a package model and Jinja comments/raw blocks add none.
  EXPECT_EQ(deps(tasks["dbt.staging.stg_customers"]), std::set<std::string>{"dbt.seeds.raw_customers"});
  EXPECT_EQ(deps(tasks["dbt.staging.stg_orders"]), std::set<std::string>{});
  EXPECT_EQ(deps(tasks["dbt.staging.stg_payments"]), std::set<std::string>{});
  EXPECT_EQ(deps(tasks["dbt.marts.core.dim_customers"]),
            (std::set<std::string>{"dbt.staging.stg_customers", "dbt.staging.stg_orders"}));
  EXPECT_EQ(
      deps(tasks["dbt.marts.fct_sales"]),
      (std::set<std::string>{"dbt.staging.stg_orders", "dbt.staging.stg_payments", "dbt.marts.core.dim_customers"}));
  EXPECT_EQ(deps(tasks["dbt.snapshots.orders_snapshot"]), std::set<std::string>{"dbt.staging.stg_orders"});
  // Tests run after their model, and after what a relationships test points at.
  EXPECT_EQ(deps(tasks["dbt.staging.stg_orders.test"]),
            (std::set<std::string>{"dbt.staging.stg_orders", "dbt.staging.stg_customers"}));
  EXPECT_EQ(deps(tasks["dbt.marts.fct_sales.test"]), std::set<std::string>{"dbt.marts.fct_sales"});

  // Runtimes and the exact dbt command lines.
  const json& fct = tasks["dbt.marts.fct_sales"];
  EXPECT_EQ(fct["executor"], "dbt");
  EXPECT_EQ(fct["command"], json({"dbt", "run", "--select", "fct_sales", "--project-dir", "jaffle"}));
  EXPECT_EQ(tasks["dbt.staging.stg_orders.test"]["executor"], "dbt-test");
  EXPECT_EQ(tasks["dbt.staging.stg_orders.test"]["command"][1], "test");
  EXPECT_EQ(tasks["dbt.seeds.raw_customers"]["executor"], "dbt-seed");
  EXPECT_EQ(tasks["dbt.seeds.raw_customers"]["command"][3], "raw_customers");
  EXPECT_EQ(tasks["dbt.snapshots.orders_snapshot"]["executor"], "dbt-snapshot");
  EXPECT_EQ(tasks["dbt.sources.shop.orders.test"]["command"][3], "source:shop.orders");

  // Docs, config and typed output.
  EXPECT_EQ(fct["description"], "Sales per order, in the project currency");
  const json& meta = fct["meta"]["dbt"];
  EXPECT_EQ(meta["materialized"], "incremental");
  EXPECT_EQ(meta["columns"]["order_id"]["description"], "The order");
  EXPECT_EQ(meta["columns"]["order_id"]["data_type"], "integer");
  EXPECT_EQ(meta["vars"], json({{"currency", "EUR"}}));
  EXPECT_EQ(meta["file"], "jaffle/models/marts/fct_sales.sql");
  const json& dim = tasks["dbt.marts.core.dim_customers"]["meta"]["dbt"];
  EXPECT_EQ(dim["materialized"], "table");
  EXPECT_EQ(dim["tags"], json({"core", "daily"}));
  EXPECT_EQ(tasks["dbt.staging.stg_orders"]["meta"]["dbt"]["sources"], json({"shop.orders"}));
  EXPECT_EQ(fct["output_type"], "DbtRunResult");
  EXPECT_EQ(tasks["dbt.staging.stg_customers.test"]["meta"]["dbt"]["tests"],
            json({"unique(customer_id)", "not_null(customer_id)"}));
  EXPECT_EQ(tasks["dbt.marts.fct_sales.test"]["meta"]["dbt"]["tests"],
            json({"not_null(order_id)", "assert_positive_sales"}));
}

TEST_F(DbtImport, OptionsReachTheCommandLine) {
  json tasks = import({{"dbt", "jaffle/"},
                       {"target", "prod"},
                       {"profiles_dir", "./profiles"},
                       {"vars", {{"currency", "USD"}}},
                       {"tests", false}});
  EXPECT_FALSE(tasks.contains("dbt.marts.fct_sales.test"));
  EXPECT_EQ(tasks["dbt.marts.fct_sales"]["command"],
            json({"dbt", "run", "--select", "fct_sales", "--project-dir", "jaffle", "--profiles-dir", "./profiles",
                  "--target", "prod", "--vars", R"({"currency":"USD"})"}));
  EXPECT_EQ(tasks["dbt.marts.fct_sales"]["meta"]["dbt"]["vars"]["currency"], "USD");
}

TEST_F(DbtImport, PluginConfigGivesDefaults) {
  auto p = ork::load_plugin<ork::ImporterProxy>("importer", "ork-dbt-import", {{"target", "ci"}});
  json tasks = p->import_tasks({{"source", {{"dbt", "jaffle"}}}, {"base_dir", kFixtures}})["tasks"];
  json cmd = tasks["dbt.staging.stg_orders"]["command"];
  EXPECT_EQ(cmd[cmd.size() - 1], "ci");
  EXPECT_THROW(ork::load_plugin<ork::ImporterProxy>("importer", "ork-dbt-import", {{"thread", 4}}),
               ork::PluginLoadError);
}

TEST_F(DbtImport, ModelGlobsKeepTheEdgesThroughUnselectedModels) {
  json tasks = import({{"dbt", "jaffle"}, {"models", {"staging.stg_orders", "marts.*"}}});
  std::set<std::string> names;
  for (const auto& [k, v] : tasks.items()) names.insert(k);
  EXPECT_EQ(names, (std::set<std::string>{"dbt.staging.stg_orders", "dbt.staging.stg_orders.test",
                                          "dbt.marts.core.dim_customers", "dbt.marts.fct_sales",
                                          "dbt.marts.fct_sales.test", "dbt.sources.shop.orders.test"}));
  // stg_customers is not imported: dim_customers keeps only the selected upstream; stg_payments likewise.
  EXPECT_EQ(deps(tasks["dbt.marts.core.dim_customers"]), std::set<std::string>{"dbt.staging.stg_orders"});
  EXPECT_EQ(deps(tasks["dbt.marts.fct_sales"]),
            (std::set<std::string>{"dbt.staging.stg_orders", "dbt.marts.core.dim_customers"}));

  // fct_sales alone with a transitive edge: selecting seeds and fct_sales keeps seed -> ... -> fct_sales.
  tasks = import({{"dbt", "jaffle"}, {"models", {"seeds.raw_customers", "fct_sales"}}});
  EXPECT_EQ(deps(tasks["dbt.marts.fct_sales"]), std::set<std::string>{"dbt.seeds.raw_customers"});

  EXPECT_NE(import_error({{"dbt", "jaffle"}, {"models", {"stagin.*"}}}).find("'stagin.*' matches no model"),
            std::string::npos);
}

TEST_F(DbtImport, CustomFolderLayout) {
  json tasks = import({{"dbt", "custom_paths"}});
  EXPECT_TRUE(tasks.contains("dbt.raw.raw_events"));
  EXPECT_TRUE(tasks.contains("dbt.seeds.event_types"));
  EXPECT_EQ(deps(tasks["dbt.daily.daily_events"]),
            (std::set<std::string>{"dbt.raw.raw_events", "dbt.seeds.event_types"}));
  EXPECT_EQ(deps(tasks["dbt.snapshots.events_history"]), std::set<std::string>{"dbt.daily.daily_events"});
  EXPECT_EQ(deps(tasks["dbt.snapshots.raw_history"]), std::set<std::string>{"dbt.raw.raw_events"});  // same file
}

TEST_F(DbtImport, ErrorsNameTheFileAndLine) {
  std::string e = import_error({{"dbt", "broken/unknown_ref"}});
  EXPECT_NE(e.find("broken/unknown_ref/models/marts/fct_sales.sql:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("ref('stg_ordrs'): unknown model (did you mean 'stg_orders'?)"), std::string::npos) << e;

  e = import_error({{"dbt", "broken/cycle"}});
  EXPECT_NE(e.find("dependency cycle: a -> b -> c -> a"), std::string::npos) << e;

  e = import_error({{"dbt", "broken/duplicate"}});
  EXPECT_NE(e.find("duplicate model name 'customers'"), std::string::npos) << e;
  EXPECT_NE(e.find("broken/duplicate/models/marts/customers.sql"), std::string::npos) << e;
  EXPECT_NE(e.find("broken/duplicate/models/staging/customers.sql"), std::string::npos) << e;

  e = import_error({{"dbt", "broken/bad_yaml"}});
  EXPECT_NE(e.find("broken/bad_yaml/models/schema.yml:"), std::string::npos) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;

  e = import_error({{"dbt", "broken/not_a_project"}});
  EXPECT_NE(e.find("broken/not_a_project/dbt_project.yml: not found"), std::string::npos) << e;
  e = import_error({{"dbt", "no/such/dir"}});
  EXPECT_NE(e.find("no/such/dir: dbt project folder not found"), std::string::npos) << e;
  e = import_error({{"dbt", "jaffle"}, {"modles", {"x"}}});
  EXPECT_NE(e.find("unknown option 'modles'"), std::string::npos) << e;
  e = import_error({{"dbt", "jaffle"}, {"tests", "no"}, {"target", 3}});
  EXPECT_NE(e.find("tests: expected true or false, got \"no\""), std::string::npos) << e;
  EXPECT_NE(e.find("target: expected a string, got 3"), std::string::npos) << e;
}

// Copies a fixture into a temp dir so file times can be set.
std::string copy_fixture(const TempDir& dir, const std::string& name) {
  const std::string dst = dir / name;
  fs::copy(kFixtures + "/" + name, dst, fs::copy_options::recursive);
  return dst;
}

void set_age(const std::string& path, int seconds_ago) {
  fs::last_write_time(path, fs::file_time_type::clock::now() - std::chrono::seconds(seconds_ago));
}

TEST_F(DbtImport, FreshManifestIsPreferred) {
  TempDir dir;
  const std::string proj = copy_fixture(dir, "manifest");
  for (const auto& f : fs::recursive_directory_iterator(proj))
    if (f.is_regular_file()) set_age(f.path().string(), 600);
  set_age(proj + "/target/manifest.json", 10);  // newer than every project file

  json r = plugin_->import_tasks({{"source", {{"dbt", "manifest"}}}, {"base_dir", dir.str()}});
  EXPECT_EQ(r["from"], "manifest");
  json tasks = r["tasks"];
  EXPECT_EQ(tasks["dbt.staging.stg_orders"]["description"], "Orders as the shop records them (from the docs block)");
  EXPECT_EQ(deps(tasks["dbt.marts.orders_daily"]),
            (std::set<std::string>{"dbt.staging.stg_orders", "dbt.seeds.country_codes"}));
  EXPECT_EQ(tasks["dbt.marts.orders_daily"]["meta"]["dbt"]["materialized"], "table");
  EXPECT_EQ(deps(tasks["dbt.staging.stg_orders.test"]), std::set<std::string>{"dbt.staging.stg_orders"});
  EXPECT_EQ(deps(tasks["dbt.marts.orders_daily.test"]),
            (std::set<std::string>{"dbt.marts.orders_daily", "dbt.seeds.country_codes"}));
  EXPECT_EQ(deps(tasks["dbt.snapshots.orders_snapshot"]), std::set<std::string>{"dbt.staging.stg_orders"});
  EXPECT_EQ(tasks["dbt.staging.stg_orders"]["meta"]["dbt"]["sources"], json({"shop.orders"}));

  // A model edited after the manifest was written: the project files win.
  set_age(proj + "/models/marts/orders_daily.sql", 0);
  r = plugin_->import_tasks({{"source", {{"dbt", "manifest"}}}, {"base_dir", dir.str()}});
  EXPECT_EQ(r["from"], "sources");
  EXPECT_EQ(r["tasks"]["dbt.staging.stg_orders"]["description"], "{{ doc(\"stg_orders\") }}");
  // ... unless the import says manifest: always.
  r = plugin_->import_tasks({{"source", {{"dbt", "manifest"}, {"manifest", "always"}}}, {"base_dir", dir.str()}});
  EXPECT_EQ(r["from"], "manifest");
}

// ---- The workflow loader expanding `import:` ----

TEST_F(DbtImport, LoaderMergesUserTasksWithImportedOnes) {
  const std::string yaml = R"(name: sales
import:
  - dbt: ./jaffle
    models: ["staging.*", "marts.*"]
tasks:
  extract:
    command: echo extracted
  dbt.staging.stg_orders:
    depends_on: [extract]
    retries: 2
  report:
    command: echo report
    depends_on: [dbt.marts.fct_sales]
)";
  ork::WorkflowDefinition wf = ork::load_workflow_string(yaml, "wf.yaml", kFixtures, import_fn());
  const ork::TaskDefinition* stg = wf.find("dbt.staging.stg_orders");
  ASSERT_NE(stg, nullptr);
  EXPECT_EQ(stg->executor, "dbt");
  EXPECT_EQ(stg->retries, 2);
  EXPECT_EQ(stg->depends_on, std::vector<std::string>{"extract"});
  EXPECT_EQ(stg->loc.line, 8);  // the user's definition
  const ork::TaskDefinition* fct = wf.find("dbt.marts.fct_sales");
  ASSERT_NE(fct, nullptr);
  EXPECT_EQ(fct->loc.line, 3);  // the import entry
  EXPECT_EQ(fct->command_args[0], "dbt");
  EXPECT_EQ(fct->output_type, "DbtRunResult");
  EXPECT_EQ(wf.types["DbtRunResult"]["rows_affected"], "int?");  // the importer's types joined the workflow's
  EXPECT_EQ(fct->meta["dbt"]["materialized"], "incremental");
  EXPECT_EQ(fct->description, "Sales per order, in the project currency");
  EXPECT_NE(wf.find("report"), nullptr);
  EXPECT_EQ(wf.find("dbt.seeds.raw_customers"), nullptr);
  // The order puts extract before the staging model it now feeds.
  auto order = ork::topological_order(wf);
  auto pos = [&](const std::string& n) { return std::find(order.begin(), order.end(), n) - order.begin(); };
  EXPECT_LT(pos("extract"), pos("dbt.staging.stg_orders"));
  EXPECT_LT(pos("dbt.staging.stg_orders"), pos("dbt.marts.fct_sales"));
  EXPECT_LT(pos("dbt.marts.fct_sales"), pos("report"));
}

// The diagnostics of a workflow that must not load.
std::vector<ork::Diagnostic> diagnostics(const std::string& yaml, const ork::ImportFn& fn) {
  try {
    ork::load_workflow_string(yaml, "wf.yaml", kFixtures, fn);
  } catch (const ork::WorkflowError& e) {
    return e.diagnostics();
  }
  ADD_FAILURE() << "loaded";
  return {};
}

TEST_F(DbtImport, LoaderPlacesImporterErrorsAtTheImportEntry) {
  auto d = diagnostics(
      "name: w\nimport:\n  - dbt: ./jaffle\n  - dbt: ./broken/unknown_ref\ntasks:\n"
      "  dbt.staging.stg_orderz:\n    command: echo\n",
      import_fn());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].line, 4);
  EXPECT_EQ(d[0].column, 5);
  EXPECT_EQ(d[0].field, "import[1].dbt");
  EXPECT_NE(d[0].message.find("broken/unknown_ref/models/marts/fct_sales.sql:3:"), std::string::npos);

  // A dotted name no import provides; a dependency on an imported task that the globs left out.
  d = diagnostics(
      "name: w\nimport:\n  - dbt: ./jaffle\n    models: [staging.*]\ntasks:\n"
      "  dbt.staging.stg_orderz:\n    command: echo\n  r:\n    command: echo\n"
      "    depends_on: [dbt.marts.fct_sales]\n",
      import_fn());
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].line, 6);
  EXPECT_NE(d[0].message.find("no import provides this one"), std::string::npos) << d[0].message;
  EXPECT_EQ(d[1].line, 10);
  EXPECT_NE(d[1].message.find("unknown task 'dbt.marts.fct_sales'"), std::string::npos);

  // A workflow of imported tasks only whose import fails: just the import's errors.
  d = diagnostics("name: w\nimport:\n  - dbt: ./broken/cycle\n", import_fn());
  ASSERT_EQ(d.size(), 1u) << d[0].str();
  EXPECT_EQ(d[0].line, 3);
  // Without an importer (a loader without plugins) the entries are only kept; an importer not configured fails.
  ork::WorkflowDefinition kept = ork::load_workflow_string(
      "name: w\nimport:\n  - dbt: ./jaffle\ntasks:\n  a:\n    command: echo\n", "wf.yaml", kFixtures, {});
  EXPECT_EQ(kept.tasks.size(), 1u);
  EXPECT_EQ(kept.imports, json::parse(R"([{"dbt": "./jaffle"}])"));
  d = diagnostics("name: w\nimport:\n  - airbyte: ./x\ntasks:\n  a:\n    command: echo\n", import_fn());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].field, "import[0].airbyte");
  EXPECT_NE(d[0].message.find("no importer plugin named 'airbyte'"), std::string::npos);
}

TEST_F(DbtImport, WorkflowOfOnlyImportedTasks) {
  ork::WorkflowDefinition wf = ork::load_workflow_string("name: only_dbt\nimport:\n  - dbt: ./custom_paths\n",
                                                         "wf.yaml", kFixtures, import_fn());
  EXPECT_EQ(wf.tasks.size(), 5u);
  EXPECT_EQ(json(wf)["tasks"][0]["meta"]["dbt"]["resource_type"].get<std::string>().empty(), false);
}

}  // namespace
