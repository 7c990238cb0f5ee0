// Unit tests for the workflow YAML loader: parsed values and defaults, JSON round trip, every diagnostic kind with
// its exact position and field, cycles, durations and topological order.
#include "workflow/workflow_loader.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ork {
namespace {

const std::string kFixtures = std::string(ORK_SOURCE_DIR) + "/tests/unit/fixtures/workflows";

WorkflowDefinition load(const std::string& yaml) {
  return load_workflow_string(yaml, "wf.yaml", "");
}

// Diagnostics of a YAML text that must fail to load.
std::vector<Diagnostic> errors(const std::string& yaml, const std::string& base_dir = "") {
  try {
    load_workflow_string(yaml, "wf.yaml", base_dir);
  } catch (const WorkflowError& e) {
    return e.diagnostics();
  }
  ADD_FAILURE() << "expected a WorkflowError for:\n" << yaml;
  return {};
}

// Asserts that exactly one diagnostic is reported, at line:column for `field`, with `text` in its message.
void expect_error(const std::string& yaml, int line, int column, const std::string& field, const std::string& text) {
  auto d = errors(yaml);
  ASSERT_EQ(d.size(), 1u) << (d.empty() ? "" : WorkflowError(d).what());
  EXPECT_EQ(d[0].file, "wf.yaml");
  EXPECT_EQ(d[0].line, line) << d[0].str();
  EXPECT_EQ(d[0].column, column) << d[0].str();
  EXPECT_EQ(d[0].field, field) << d[0].str();
  EXPECT_NE(d[0].message.find(text), std::string::npos) << "message: " << d[0].message << "\nwanted: " << text;
}

// A minimal valid workflow with one extra task appended (indented under tasks:, starting at line 5).
std::string with_task(const std::string& task_yaml) {
  return "name: wf\ntasks:\n  a:\n    executor: python\n" + task_yaml;
}

const char* kFull = R"(name: full_etl
schedule: "0 2 * * MON-FRI"
import:
  - dbt: ./dbt_project
    models: [stg_users, stg_orders]
types:
  User:
    id: int
    name: str
  ExtractOutput:
    users: list[User]
    count: int
tasks:
  extract:
    executor: python
    worker: local
    file: tasks/extract.py
    function: src.data_ops:summarize_data
    input:
      limit: 100
      ratio: 0.5
      enabled: true
      nothing: null
      quoted_num: "42"
      hex: 0x10
      name: users
      tags: [a, 1, false]
      nested: {k: v}
    timeout: 1h30m
    retries: 3
    retry_delay: 30s
    resources:
      cpu: 2
      memory: 4Gi
    env:
      LOG_LEVEL: debug
      MAX: 3.0
      API_KEY:
        secret: projects/p/secrets/api-key
    secrets:
      - name: sa
        secret: projects/p/secrets/sa
        path: /secrets/sa.json
    output: ExtractOutput
    validate_output: false
  process:
    executor: rust
    config_file: config/process.yaml
    depends_on: [extract]
    foreach: extract.users
    concurrency: 8
    resources: {cpu: "500m", memory: 512Mi}
  count:
    command: echo 4
    depends_on: extract
    parallel: extract.count
    timeout: 45
  shard:
    image: ghcr.io/x/y:1
    parallel: 4
    on_failure: run
    output: list[User] | None
  notify:
    executor: shell
    command: ./notify.sh
    depends_on: [process, count, shard]
    on_failure: run
)";

// ---- Valid workflows ----

TEST(WorkflowLoader, FullWorkflowParsesEveryField) {
  WorkflowDefinition wf = load(kFull);
  EXPECT_EQ(wf.name, "full_etl");
  EXPECT_EQ(wf.schedule, "0 2 * * MON-FRI");
  EXPECT_EQ(wf.imports, json::parse(R"([{"dbt": "./dbt_project", "models": ["stg_users", "stg_orders"]}])"));
  EXPECT_EQ(wf.types, json::parse(R"({"User": {"id": "int", "name": "str"},
                                      "ExtractOutput": {"users": "list[User]", "count": "int"}})"));
  EXPECT_EQ(wf.base_dir, "");
  EXPECT_EQ(wf.source_file, "");
  ASSERT_EQ(wf.tasks.size(), 5u);

  const TaskDefinition& e = wf.tasks[0];
  EXPECT_EQ(e.name, "extract");
  EXPECT_EQ(e.executor, "python");
  EXPECT_EQ(e.worker, "local");
  EXPECT_EQ(e.file, "tasks/extract.py");
  EXPECT_EQ(e.config_file, std::nullopt);
  EXPECT_EQ(e.command, std::nullopt);
  EXPECT_EQ(e.function, "src.data_ops:summarize_data");
  EXPECT_EQ(e.image, std::nullopt);
  EXPECT_EQ(e.input, json::parse(R"({"limit": 100, "ratio": 0.5, "enabled": true, "nothing": null,
                                     "quoted_num": "42", "hex": 16, "name": "users", "tags": ["a", 1, false],
                                     "nested": {"k": "v"}})"));
  EXPECT_TRUE(e.input["limit"].is_number_integer());
  EXPECT_TRUE(e.input["ratio"].is_number_float());
  EXPECT_TRUE(e.depends_on.empty());
  EXPECT_EQ(e.timeout_seconds, 5400);
  EXPECT_EQ(e.retries, 3);
  EXPECT_EQ(e.retry_delay_seconds, 30);
  EXPECT_EQ(e.parallel.kind, Parallelism::Kind::None);
  EXPECT_EQ(e.concurrency, std::nullopt);
  EXPECT_EQ(e.resources.cpu_millis, 2000);
  EXPECT_EQ(e.resources.memory_mb, 4096);
  ASSERT_EQ(e.env.size(), 3u);
  EXPECT_EQ(e.env.at("LOG_LEVEL").value, "debug");
  EXPECT_EQ(e.env.at("LOG_LEVEL").secret, std::nullopt);
  EXPECT_EQ(e.env.at("MAX").value, "3.0");  // literal spelling kept
  EXPECT_EQ(e.env.at("API_KEY").value, "");
  EXPECT_EQ(e.env.at("API_KEY").secret, "projects/p/secrets/api-key");
  ASSERT_EQ(e.secrets.size(), 1u);
  EXPECT_EQ(e.secrets[0].name, "sa");
  EXPECT_EQ(e.secrets[0].secret, "projects/p/secrets/sa");
  EXPECT_EQ(e.secrets[0].path, "/secrets/sa.json");
  EXPECT_EQ(e.on_failure, OnFailure::Skip);
  EXPECT_EQ(e.output_type, "ExtractOutput");
  EXPECT_FALSE(e.validate_output);
  EXPECT_EQ(e.loc.file, "wf.yaml");
  EXPECT_EQ(e.loc.line, 14);
  EXPECT_EQ(e.loc.column, 3);

  const TaskDefinition& p = wf.tasks[1];
  EXPECT_EQ(p.executor, "rust");
  EXPECT_EQ(p.config_file, "config/process.yaml");
  EXPECT_EQ(p.depends_on, std::vector<std::string>{"extract"});
  EXPECT_EQ(p.parallel.kind, Parallelism::Kind::ForEach);
  EXPECT_EQ(p.parallel.ref, "extract.users");
  EXPECT_EQ(p.concurrency, 8);
  EXPECT_EQ(p.resources.cpu_millis, 500);
  EXPECT_EQ(p.resources.memory_mb, 512);

  const TaskDefinition& c = wf.tasks[2];
  EXPECT_EQ(c.executor, "shell");  // implied by command:
  EXPECT_EQ(c.command, "echo 4");
  EXPECT_EQ(c.depends_on, std::vector<std::string>{"extract"});
  EXPECT_EQ(c.parallel.kind, Parallelism::Kind::CountRef);
  EXPECT_EQ(c.parallel.ref, "extract.count");
  EXPECT_EQ(c.timeout_seconds, 45);

  const TaskDefinition& s = wf.tasks[3];
  EXPECT_EQ(s.executor, "container");  // implied by image:
  EXPECT_EQ(s.image, "ghcr.io/x/y:1");
  EXPECT_EQ(s.parallel.kind, Parallelism::Kind::Static);
  EXPECT_EQ(s.parallel.count, 4);
  EXPECT_EQ(s.on_failure, OnFailure::Run);
  EXPECT_EQ(s.output_type, "list[User] | None");

  // Defaults.
  const TaskDefinition& n = wf.tasks[4];
  EXPECT_EQ(n.executor, "shell");
  EXPECT_EQ(n.worker, "");
  EXPECT_EQ(n.depends_on, (std::vector<std::string>{"process", "count", "shard"}));
  EXPECT_EQ(n.input, json::object());
  EXPECT_EQ(n.timeout_seconds, 3600);
  EXPECT_EQ(n.retries, 0);
  EXPECT_EQ(n.retry_delay_seconds, 0);
  EXPECT_EQ(n.parallel.kind, Parallelism::Kind::None);
  EXPECT_EQ(n.parallel.count, 0);
  EXPECT_EQ(n.parallel.ref, "");
  EXPECT_EQ(n.concurrency, std::nullopt);
  EXPECT_EQ(n.resources.cpu_millis, 0);
  EXPECT_EQ(n.resources.memory_mb, 0);
  EXPECT_TRUE(n.env.empty());
  EXPECT_TRUE(n.secrets.empty());
  EXPECT_TRUE(n.output_type.is_null());
  EXPECT_TRUE(n.validate_output);
  EXPECT_EQ(n.loc.line, 63);

  ASSERT_NE(wf.find("count"), nullptr);
  EXPECT_EQ(wf.find("count")->name, "count");
  EXPECT_EQ(wf.find("nope"), nullptr);
}

TEST(WorkflowLoader, MinimalWorkflowDefaults) {
  WorkflowDefinition wf = load("name: w\ntasks:\n  only:\n    executor: python\n");
  EXPECT_EQ(wf.schedule, std::nullopt);
  EXPECT_EQ(wf.types, json::object());
  EXPECT_EQ(wf.imports, json::array());
  ASSERT_EQ(wf.tasks.size(), 1u);
  EXPECT_EQ(wf.tasks[0].timeout_seconds, 3600);
}

TEST(WorkflowLoader, AnchorsAndAliasesAreExpanded) {
  WorkflowDefinition wf = load("name: w\ntasks:\n  a: &base\n    executor: python\n    retries: 2\n  b: *base\n");
  ASSERT_EQ(wf.tasks.size(), 2u);
  EXPECT_EQ(wf.tasks[1].name, "b");
  EXPECT_EQ(wf.tasks[1].executor, "python");
  EXPECT_EQ(wf.tasks[1].retries, 2);
}

TEST(WorkflowLoader, ForeachAndParallelRefsAddImplicitDependency) {
  WorkflowDefinition wf = load(R"(name: w
tasks:
  discover:
    executor: python
  other:
    executor: python
  process:
    executor: python
    depends_on: [other]
    foreach: discover.files
  fan:
    executor: python
    parallel: discover.count
)");
  EXPECT_EQ(wf.find("process")->depends_on, (std::vector<std::string>{"other", "discover"}));
  EXPECT_EQ(wf.find("fan")->depends_on, std::vector<std::string>{"discover"});
}

TEST(WorkflowLoader, StrictSchemaInputsBecomeInputValuesAndTemplates) {
  WorkflowDefinition wf = load(R"(name: w
tasks:
  left:
    executor: python
  combine:
    executor: python
    input:
      plain: 1
    inputs:
      adjective:
        const: running in parallel
      delay:
        const: 5
      whole:
        ref: tasks.left.output
      field:
        ref: tasks.left.output.message
)");
  const TaskDefinition* t = wf.find("combine");
  EXPECT_EQ(t->input, json::parse(R"({"plain": 1, "adjective": "running in parallel", "delay": 5,
                                      "whole": "{{ left }}", "field": "{{ left.message }}"})"));
  EXPECT_EQ(t->depends_on, std::vector<std::string>{"left"});
}

TEST(WorkflowLoader, ResourceUnits) {
  struct Case {
    std::string cpu;
    int64_t millis;
    std::string memory;
    int64_t mb;
  };
  const std::vector<Case> cases = {
      {"2", 2000, "512", 512},           {"0.5", 500, "\"512Mi\"", 512}, {"250", 250, "4Gi", 4096},
      {"\"500m\"", 500, "1G", 954},      {"\"2\"", 2000, "256M", 245},   {"99", 99000, "1024Ki", 1},
      {"\"1.5\"", 1500, "1Ti", 1048576},
  };
  for (const auto& c : cases) {
    auto wf = load(with_task("    resources:\n      cpu: " + c.cpu + "\n      memory: " + c.memory + "\n"));
    EXPECT_EQ(wf.tasks[0].resources.cpu_millis, c.millis) << "cpu " << c.cpu;
    EXPECT_EQ(wf.tasks[0].resources.memory_mb, c.mb) << "memory " << c.memory;
  }
}

TEST(WorkflowLoader, CronSchedulesAccepted) {
  for (const char* s : {"* * * * *", "*/15 0-6 1,15 JAN-MAR mon", "0 2 * * 7", "5 4 * dec sun-sat"}) {
    EXPECT_NO_THROW(load(std::string("name: w\nschedule: \"") + s + "\"\ntasks:\n  a:\n    executor: x\n")) << s;
  }
}

// ---- JSON round trip ----

TEST(WorkflowModelJson, RoundTripIsExact) {
  WorkflowDefinition wf = load(kFull);
  wf.base_dir = "/srv/flows";
  wf.source_file = "/srv/flows/full.yaml";
  json j = wf;
  WorkflowDefinition back = json::parse(j.dump()).get<WorkflowDefinition>();
  EXPECT_EQ(json(back), j);
  EXPECT_EQ(back.base_dir, "/srv/flows");
  EXPECT_EQ(back.tasks.size(), wf.tasks.size());
  EXPECT_EQ(back.tasks[0].env.at("API_KEY").secret, "projects/p/secrets/api-key");
  EXPECT_EQ(back.tasks[0].input, wf.tasks[0].input);
  EXPECT_EQ(back.tasks[3].on_failure, OnFailure::Run);
  EXPECT_EQ(back.tasks[1].concurrency, 8);
  EXPECT_EQ(back.tasks[4].concurrency, std::nullopt);
  EXPECT_TRUE(back.tasks[4].output_type.is_null());
}

TEST(WorkflowModelJson, Shape) {
  json j = load(kFull);
  EXPECT_EQ(j["schedule"], "0 2 * * MON-FRI");
  const json& e = j["tasks"][0];
  EXPECT_TRUE(e["command"].is_null());
  EXPECT_TRUE(e["image"].is_null());
  EXPECT_TRUE(e["concurrency"].is_null());
  EXPECT_EQ(e["parallel"], json::parse(R"({"kind": "none", "count": 0, "ref": ""})"));
  EXPECT_EQ(e["env"], json::parse(R"({"LOG_LEVEL": "debug", "MAX": "3.0",
                                      "API_KEY": {"secret": "projects/p/secrets/api-key"}})"));
  EXPECT_EQ(e["on_failure"], "skip");
  EXPECT_EQ(e["loc"], json::parse(R"({"file": "wf.yaml", "line": 14, "column": 3})"));
  EXPECT_EQ(e["resources"], json::parse(R"({"cpu_millis": 2000, "memory_mb": 4096})"));
  EXPECT_EQ(e["secrets"], json::parse(R"([{"name": "sa", "secret": "projects/p/secrets/sa",
                                          "path": "/secrets/sa.json"}])"));
  EXPECT_EQ(j["tasks"][1]["parallel"], json::parse(R"({"kind": "foreach", "count": 0, "ref": "extract.users"})"));
  EXPECT_EQ(j["tasks"][2]["parallel"], json::parse(R"({"kind": "count_ref", "count": 0, "ref": "extract.count"})"));
  EXPECT_EQ(j["tasks"][3]["parallel"], json::parse(R"({"kind": "static", "count": 4, "ref": ""})"));
  EXPECT_EQ(j["tasks"][3]["on_failure"], "run");

  json unset = load("name: w\ntasks:\n  a:\n    executor: x\n");
  EXPECT_TRUE(unset["schedule"].is_null());
  EXPECT_TRUE(unset["tasks"][0]["output_type"].is_null());
  EXPECT_TRUE(unset["tasks"][0]["file"].is_null());
}

TEST(WorkflowModelJson, RejectsUnknownEnums) {
  json j = load("name: w\ntasks:\n  a:\n    executor: x\n");
  json bad = j;
  bad["tasks"][0]["parallel"]["kind"] = "sometimes";
  EXPECT_THROW(bad.get<WorkflowDefinition>(), std::exception);
  bad = j;
  bad["tasks"][0]["on_failure"] = "maybe";
  EXPECT_THROW(bad.get<WorkflowDefinition>(), std::exception);
}

// ---- Top-level errors ----

TEST(WorkflowErrors, SyntaxError) {
  expect_error("name: w\ntasks: [a, b\nother: 1\n", 3, 6, "", "YAML syntax error");
}

TEST(WorkflowErrors, MultipleDocuments) {
  expect_error("name: w\ntasks:\n  a: {executor: x}\n---\nname: v\n", 5, 1, "", "exactly one YAML document; found 2");
}

TEST(WorkflowErrors, EmptyDocumentAndNonMap) {
  expect_error("", 1, 1, "", "workflow is empty");
  expect_error("- a\n- b\n", 1, 1, "", "expected a map with 'name' and 'tasks', got a list");
}

TEST(WorkflowErrors, UnknownTopLevelField) {
  expect_error("name: w\nowner: me\ntasks:\n  a:\n    executor: x\n", 2, 1, "owner", "unknown field 'owner'");
  auto misspelt = errors("name: w\ntask:\n  a:\n    executor: x\n");
  ASSERT_EQ(misspelt.size(), 2u);
  EXPECT_EQ(misspelt[0].str(), "wf.yaml:1:1: tasks: missing required field 'tasks'");
  EXPECT_EQ(misspelt[1].str(), "wf.yaml:2:1: task: unknown field 'task' (did you mean 'tasks'?)");
  auto d = errors("name: w\nschedul: \"* * * * *\"\ntasks:\n  a:\n    executor: x\n");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].message, "unknown field 'schedul' (did you mean 'schedule'?)");
}

TEST(WorkflowErrors, MissingOrBadName) {
  expect_error("tasks:\n  a:\n    executor: x\n", 1, 1, "name", "missing required field 'name'");
  expect_error("name: my etl!\ntasks:\n  a:\n    executor: x\n", 1, 7, "name", "invalid workflow name 'my etl!'");
  expect_error("name: 12\ntasks:\n  a:\n    executor: x\n", 1, 7, "name", "expected a string, got an integer '12'");
}

TEST(WorkflowErrors, Tasks) {
  expect_error("name: w\ntasks: {}\n", 2, 8, "tasks", "must define at least one task");
  expect_error("name: w\ntasks:\n", 2, 1, "tasks", "expected a map of task name to task, got null");
  expect_error("name: w\ntasks:\n  a: 5\n", 3, 6, "tasks.a", "expected a map of task fields, got an integer '5'");
  expect_error("name: w\ntasks:\n  a.b:\n    executor: x\n", 3, 3, "tasks.a.b", "invalid task name 'a.b'");
}

TEST(WorkflowErrors, Schedule) {
  const std::string tail = "\ntasks:\n  a:\n    executor: x\n";
  expect_error("name: w\nschedule: every day" + tail, 2, 11, "schedule", "has 2 fields (expected 5 fields");
  expect_error("name: w\nschedule: \"61 * * * *\"" + tail, 2, 11, "schedule",
               "bad minute field '61' (values must be 0-59)");
  expect_error("name: w\nschedule: \"0 0 * FOO *\"" + tail, 2, 11, "schedule", "bad month field 'FOO'");
  expect_error("name: w\nschedule: \"*/0 * * * *\"" + tail, 2, 11, "schedule", "step must be a positive number");
  expect_error("name: w\nschedule: \"0 0 * * MON?\"" + tail, 2, 11, "schedule", "bad day-of-week field");
}

TEST(WorkflowErrors, ImportAndTypes) {
  expect_error("name: w\nimport: ./dbt\ntasks:\n  a:\n    executor: x\n", 2, 9, "import", "expected a list of maps");
  expect_error("name: w\nimport:\n  - ./dbt\ntasks:\n  a:\n    executor: x\n", 3, 5, "import[0]",
               "expected a map such as");
  expect_error("name: w\ntypes: [a]\ntasks:\n  a:\n    executor: x\n", 2, 8, "types", "expected a map, got a list");
}

// ---- Task field errors ----

TEST(WorkflowErrors, UnknownTaskFieldWithSuggestion) {
  expect_error(with_task("    timeuot: 5\n"), 5, 5, "tasks.a.timeuot",
               "unknown field 'timeuot' (did you mean 'timeout'?)");
  expect_error(with_task("    frobnicate: 5\n"), 5, 5, "tasks.a.frobnicate", "unknown field 'frobnicate'");
  auto d = errors(with_task("    frobnicate: 5\n"));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].message.find("did you mean"), std::string::npos);
}

TEST(WorkflowErrors, DuplicateField) {
  expect_error(with_task("    retries: 1\n    retries: 2\n"), 6, 5, "tasks.a.retries",
               "duplicate field 'retries' (first defined at line 5)");
}

TEST(WorkflowErrors, MissingExecutor) {
  expect_error("name: w\ntasks:\n  a:\n    file: x.py\n", 3, 3, "tasks.a.executor",
               "missing required field 'executor'");
  expect_error("name: w\ntasks:\n  a:\n    executor: \"bad name\"\n", 4, 15, "tasks.a.executor",
               "invalid executor name 'bad name'");
}

TEST(WorkflowErrors, RustTaskShape) {
  expect_error(with_task("  r:\n    executor: rust\n"), 5, 3, "tasks.r.file", "executor 'rust' needs 'file'");
  expect_error(with_task("  r:\n    executor: rust\n    file: t.rs\n    function: main\n"), 8, 15, "tasks.r.function",
               "'function' names a binary of a crate");
  expect_error(with_task("  r:\n    executor: rust\n    file: etl\n    function: \"a b\"\n"), 8, 15, "tasks.r.function",
               "invalid binary name 'a b'");
  auto wf = load(with_task("  r:\n    executor: rust\n    file: crates/etl\n    function: extract-users\n"));
  EXPECT_EQ(wf.tasks[1].file, "crates/etl");
  EXPECT_EQ(wf.tasks[1].function, "extract-users");

  // With a base directory: a directory must hold a Cargo.toml, a file must be .rs or Cargo.toml.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ork-loader-rust-" + std::to_string(::getpid()));
  fs::create_directories(dir / "etl");
  fs::create_directories(dir / "empty");
  std::ofstream(dir / "etl" / "Cargo.toml") << "[package]\n";
  std::ofstream(dir / "t.rs") << "";
  std::ofstream(dir / "t.py") << "";
  for (const char* ok : {"etl", "etl/Cargo.toml", "t.rs"})
    EXPECT_NO_THROW(load_workflow_string(with_task(std::string("  r:\n    executor: rust\n    file: ") + ok + "\n"),
                                         "wf.yaml", dir.string()))
        << ok;
  auto d = errors(with_task("  r:\n    executor: rust\n    file: empty\n"), dir.string());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].str(), "wf.yaml:7:11: tasks.r.file: 'empty' is a directory without a Cargo.toml");
  d = errors(with_task("  r:\n    executor: rust\n    file: t.py\n"), dir.string());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].message.find("expected a .rs task file, a crate directory or a Cargo.toml"), std::string::npos)
      << d[0].str();
  fs::remove_all(dir);
}

TEST(WorkflowErrors, WrongTypes) {
  expect_error(with_task("    retries: \"three\"\n"), 5, 14, "tasks.a.retries",
               "expected an integer, got a string 'three'");
  expect_error(with_task("    retries: three\n"), 5, 14, "tasks.a.retries",
               "expected an integer, got a string 'three'");
  expect_error(with_task("    retries: 1.5\n"), 5, 14, "tasks.a.retries", "expected an integer, got a number '1.5'");
  expect_error(with_task("    depends_on: 5\n"), 5, 17, "tasks.a.depends_on",
               "expected a task name or a list of task names, got an integer '5'");
  expect_error(with_task("    depends_on: [true]\n"), 5, 18, "tasks.a.depends_on[0]",
               "expected a task name, got a boolean 'true'");
  expect_error(with_task("    input: [1, 2]\n"), 5, 12, "tasks.a.input", "expected a map, got a list");
  expect_error(with_task("    file: [a]\n"), 5, 11, "tasks.a.file", "expected a string, got a list");
  expect_error(with_task("    worker: {a: 1}\n"), 5, 13, "tasks.a.worker", "expected a string, got a map");
  expect_error(with_task("    validate_output: \"yes\"\n"), 5, 22, "tasks.a.validate_output",
               "expected true or false, got a string 'yes'");
  expect_error(with_task("    on_failure: always\n"), 5, 17, "tasks.a.on_failure",
               "expected 'skip' or 'run', got 'always'");
  expect_error(with_task("    command:\n"), 5, 5, "tasks.a.command", "expected a string, got null");
}

TEST(WorkflowErrors, NegativeAndZeroNumbers) {
  expect_error(with_task("    retries: -1\n"), 5, 14, "tasks.a.retries", "must be >= 0, got -1");
  expect_error(with_task("    timeout: 0\n"), 5, 14, "tasks.a.timeout", "must be > 0, got 0");
  expect_error(with_task("    timeout: -5\n"), 5, 14, "tasks.a.timeout", "must be > 0, got -5");
  expect_error(with_task("    retry_delay: -1\n"), 5, 18, "tasks.a.retry_delay", "must be >= 0, got -1");
  expect_error(with_task("    concurrency: 0\n"), 5, 18, "tasks.a.concurrency", "must be >= 1, got 0");
  expect_error(with_task("    parallel: 0\n"), 5, 15, "tasks.a.parallel", "must be >= 1, got 0");
  expect_error(with_task("    retries: 99999999999\n"), 5, 14, "tasks.a.retries", "integer out of range");
}

TEST(WorkflowErrors, BadDurations) {
  expect_error(with_task("    timeout: 5x\n"), 5, 14, "tasks.a.timeout", "expected a duration");
  expect_error(with_task("    timeout: 1.5h\n"), 5, 14, "tasks.a.timeout", "expected a duration");
  expect_error(with_task("    retry_delay: [1]\n"), 5, 18, "tasks.a.retry_delay", "expected a duration");
  EXPECT_EQ(load(with_task("    retry_delay: 0s\n")).tasks[0].retry_delay_seconds, 0);
}

TEST(WorkflowErrors, Parallelism) {
  expect_error(with_task("    parallel: 2\n    foreach: a.items\n"), 6, 5, "tasks.a.foreach",
               "cannot combine 'parallel' and 'foreach'");
  expect_error(with_task("    foreach: items\n"), 5, 14, "tasks.a.foreach",
               "invalid reference 'items' (expected 'task.field')");
  expect_error(with_task("    foreach: 3\n"), 5, 14, "tasks.a.foreach", "expected a reference like 'task.field'");
  expect_error(with_task("    parallel: [1]\n"), 5, 15, "tasks.a.parallel",
               "expected a positive integer or a reference");
  expect_error(with_task("    foreach: a.items\n"), 5, 14, "tasks.a.foreach", "foreach references the task itself");
  expect_error(with_task("  discover:\n    executor: x\n  b:\n    executor: x\n    parallel: discovr.count\n"), 9, 15,
               "tasks.b.parallel", "parallel references unknown task 'discovr' (did you mean 'discover'?)");
}

TEST(WorkflowErrors, Resources) {
  expect_error(with_task("    resources:\n      cpu: abc\n"), 6, 12, "tasks.a.resources.cpu",
               "expected a positive CPU amount");
  expect_error(with_task("    resources:\n      cpu: 0\n"), 6, 12, "tasks.a.resources.cpu", "expected a positive CPU");
  expect_error(with_task("    resources:\n      memory: 4GB\n"), 6, 15, "tasks.a.resources.memory",
               "expected a positive memory size");
  expect_error(with_task("    resources:\n      gpu: 1\n"), 6, 7, "tasks.a.resources.gpu", "unknown field 'gpu'");
  expect_error(with_task("    resources: 4\n"), 5, 16, "tasks.a.resources", "expected a map");
}

TEST(WorkflowErrors, EnvAndSecrets) {
  expect_error(with_task("    env:\n      KEY:\n        secrte: x\n"), 7, 9, "tasks.a.env.KEY.secrte",
               "unknown field 'secrte' (did you mean 'secret'?)");
  expect_error(with_task("    env:\n      KEY: [1]\n"), 6, 12, "tasks.a.env.KEY",
               "expected a literal value or {secret: ref}");
  expect_error(with_task("    env:\n      1BAD: x\n"), 6, 7, "tasks.a.env.1BAD", "invalid environment variable name");
  expect_error(with_task("    secrets:\n      - name: sa\n        secret: s\n"), 6, 9, "tasks.a.secrets[0].path",
               "missing required field 'path'");
  expect_error(with_task("    secrets: {name: x}\n"), 5, 14, "tasks.a.secrets",
               "expected a list of {name, secret, path}");
}

TEST(WorkflowErrors, OutputType) {
  const std::string base = "name: w\ntypes:\n  Report:\n    rows: int\ntasks:\n  a:\n    executor: x\n";
  expect_error(base + "    output: Reprot\n", 8, 13, "tasks.a.output",
               "unknown type 'Reprot' (did you mean 'Report'?)");
  EXPECT_NO_THROW(load(base + "    output: list[Report]\n"));
  EXPECT_NO_THROW(load(base + "    output: int\n"));
  EXPECT_NO_THROW(load(base + "    output: types.Report\n"));
  // Every name must be declared or builtin, with or without `types:`.
  expect_error(with_task("    output: Anything\n"), 5, 13, "tasks.a.output", "unknown type 'Anything'");
  expect_error(with_task("    output: list[strng]\n"), 5, 13, "tasks.a.output",
               "unknown type 'strng' (did you mean 'str'?) in 'list[strng]'");
}

TEST(WorkflowErrors, Inputs) {
  expect_error(with_task("    inputs:\n      x: 5\n"), 6, 10, "tasks.a.inputs.x", "expected exactly one of {const");
  expect_error(with_task("    inputs:\n      x:\n        ref: tasks.nope.output\n"), 7, 14, "tasks.a.inputs.x.ref",
               "references unknown task 'nope'");
  expect_error(with_task("    inputs:\n      x:\n        ref: nope.output\n"), 7, 14, "tasks.a.inputs.x.ref",
               "invalid reference");
  expect_error(with_task("    input: {x: 1}\n    inputs:\n      x:\n        const: 2\n"), 7, 7, "tasks.a.inputs.x",
               "set in both 'input' and 'inputs'");
}

// ---- Graph errors ----

TEST(WorkflowErrors, DuplicateTaskNames) {
  expect_error("name: w\ntasks:\n  a:\n    executor: x\n  b:\n    executor: x\n  a:\n    executor: y\n", 7, 3,
               "tasks.a", "duplicate task 'a' (first defined at line 3)");
}

TEST(WorkflowErrors, UnknownDependencyWithSuggestion) {
  expect_error(with_task("  b:\n    executor: x\n    depends_on: [a, extrct]\n  extract:\n    executor: x\n"), 7, 21,
               "tasks.b.depends_on", "unknown task 'extrct' (did you mean 'extract'?)");
  expect_error(with_task("    depends_on: zzz\n"), 5, 17, "tasks.a.depends_on", "unknown task 'zzz'");
}

TEST(WorkflowErrors, SelfAndDuplicateDependency) {
  expect_error(with_task("    depends_on: [a]\n"), 5, 18, "tasks.a.depends_on", "task 'a' depends on itself");
  expect_error(with_task("  b:\n    executor: x\n    depends_on: [a, a]\n"), 7, 21, "tasks.b.depends_on[1]",
               "duplicate dependency 'a'");
}

TEST(WorkflowErrors, CyclePath) {
  const std::string yaml = R"(name: w
tasks:
  a:
    executor: x
    depends_on: [c]
  b:
    executor: x
    depends_on: [a]
  c:
    executor: x
    depends_on: [b]
  d:
    executor: x
    depends_on: [a]
)";
  expect_error(yaml, 5, 17, "tasks.a.depends_on", "dependency cycle: a -> c -> b -> a");
}

TEST(WorkflowErrors, CycleThroughImplicitForeachDependency) {
  expect_error(with_task("    foreach: b.items\n  b:\n    executor: x\n    depends_on: [a]\n"), 3, 3,
               "tasks.a.depends_on", "dependency cycle: a -> b -> a");
}

TEST(WorkflowErrors, SeveralErrorsAtOnceSortedByPosition) {
  const std::string yaml = R"(name: w
colour: blue
tasks:
  a:
    executor: python
    retries: "three"
    timeout: 0
  b:
    depends_on: [zz]
    parallel: 0
)";
  auto d = errors(yaml);
  ASSERT_EQ(d.size(), 6u) << WorkflowError(d).what();
  EXPECT_EQ(d[0].str(), "wf.yaml:2:1: colour: unknown field 'colour'");
  EXPECT_EQ(d[1].str(), "wf.yaml:6:14: tasks.a.retries: expected an integer, got a string 'three'");
  EXPECT_EQ(d[2].str(), "wf.yaml:7:14: tasks.a.timeout: must be > 0, got 0");
  EXPECT_EQ(d[3].field, "tasks.b.executor");
  EXPECT_EQ(d[3].line, 8);
  EXPECT_EQ(d[4].str(), "wf.yaml:9:18: tasks.b.depends_on: unknown task 'zz'");
  EXPECT_EQ(d[5].str(), "wf.yaml:10:15: tasks.b.parallel: must be >= 1, got 0");

  try {
    load(yaml);
  } catch (const WorkflowError& e) {
    std::string what = e.what();
    EXPECT_EQ(std::count(what.begin(), what.end(), '\n'), 5);
    EXPECT_EQ(what.substr(0, what.find('\n')), "wf.yaml:2:1: colour: unknown field 'colour'");
  }
}

TEST(WorkflowErrors, DiagnosticFormatting) {
  EXPECT_EQ((Diagnostic{"f.yaml", 3, 7, "tasks.x.timeout", "bad"}).str(), "f.yaml:3:7: tasks.x.timeout: bad");
  EXPECT_EQ((Diagnostic{"f.yaml", 1, 1, "", "YAML syntax error: x"}).str(), "f.yaml:1:1: YAML syntax error: x");
  WorkflowError e({{"a", 1, 2, "f", "m1"}, {"b", 3, 4, "g", "m2"}});
  EXPECT_STREQ(e.what(), "a:1:2: f: m1\nb:3:4: g: m2");
  EXPECT_EQ(e.diagnostics().size(), 2u);
}

// ---- Files ----

TEST(WorkflowFiles, LoadsFileWithExistingTaskFiles) {
  const std::string path = kFixtures + "/etl.yaml";
  WorkflowDefinition wf = load_workflow_file(path);
  EXPECT_EQ(wf.name, "fixture_etl");
  EXPECT_EQ(wf.base_dir, kFixtures);
  EXPECT_EQ(wf.source_file, path);
  EXPECT_EQ(wf.tasks[0].loc.file, path);
  EXPECT_EQ(wf.tasks[0].loc.line, 4);
  EXPECT_EQ(wf.tasks[1].config_file, "config/load.yaml");
}

TEST(WorkflowFiles, MissingTaskFilesReported) {
  const std::string path = kFixtures + "/missing_files.yaml";
  try {
    load_workflow_file(path);
    FAIL() << "expected WorkflowError";
  } catch (const WorkflowError& e) {
    const auto& d = e.diagnostics();
    ASSERT_EQ(d.size(), 2u) << e.what();
    EXPECT_EQ(d[0].file, path);
    EXPECT_EQ(d[0].line, 6);
    EXPECT_EQ(d[0].column, 11);
    EXPECT_EQ(d[0].field, "tasks.extract.file");
    EXPECT_EQ(d[0].message, "file 'tasks/missing.py' not found (looked for " + kFixtures + "/tasks/missing.py)");
    EXPECT_EQ(d[1].line, 9);
    EXPECT_EQ(d[1].column, 18);
    EXPECT_EQ(d[1].field, "tasks.load.config_file");
    EXPECT_NE(d[1].message.find("config_file 'config/missing.yaml' not found"), std::string::npos);
  }
}

TEST(WorkflowFiles, StringLoaderChecksFilesOnlyWithBaseDir) {
  const std::string yaml = "name: w\ntasks:\n  a:\n    executor: python\n    file: tasks/extract.py\n";
  EXPECT_NO_THROW(load_workflow_string(yaml, "x.yaml", kFixtures));
  EXPECT_EQ(load_workflow_string(yaml, "x.yaml", kFixtures).base_dir, kFixtures);
  auto d = errors(yaml, kFixtures + "/config");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].field, "tasks.a.file");
  EXPECT_EQ(d[0].line, 5);
  EXPECT_NO_THROW(load_workflow_string("name: w\ntasks:\n  a:\n    executor: python\n    file: nope.py\n", "x", ""));
}

TEST(WorkflowFiles, UnreadableWorkflowFile) {
  const std::string path = kFixtures + "/does_not_exist.yaml";
  try {
    load_workflow_file(path);
    FAIL() << "expected WorkflowError";
  } catch (const WorkflowError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u);
    EXPECT_EQ(e.diagnostics()[0].file, path);
    EXPECT_EQ(e.diagnostics()[0].message, "cannot read workflow file");
  }
}

// ---- Durations ----

TEST(Durations, TextTable) {
  const std::vector<std::pair<std::string, std::optional<int>>> table = {
      {"30s", 30},
      {"5m", 300},
      {"1h", 3600},
      {"1h30m", 5400},
      {"500ms", 1},
      {"1500ms", 2},
      {"1000ms", 1},
      {"90", 90},
      {"1d", 86400},
      {"2h0m5s", 7205},
      {"0s", 0},
      {"0", 0},
      {"", std::nullopt},
      {"abc", std::nullopt},
      {"5x", std::nullopt},
      {"-5s", std::nullopt},
      {"-5", std::nullopt},
      {"1.5h", std::nullopt},
      {"30 s", std::nullopt},
      {"h", std::nullopt},
      {"99999999999s", std::nullopt},
  };
  for (const auto& [text, want] : table) EXPECT_EQ(parse_duration_seconds(text), want) << "'" << text << "'";
}

TEST(Durations, Nodes) {
  EXPECT_EQ(parse_duration_seconds(YAML::Load("45")), 45);
  EXPECT_EQ(parse_duration_seconds(YAML::Load("'45'")), 45);
  EXPECT_EQ(parse_duration_seconds(YAML::Load("-3")), -3);
  EXPECT_EQ(parse_duration_seconds(YAML::Load("10m")), 600);
  EXPECT_EQ(parse_duration_seconds(YAML::Load("true")), std::nullopt);
  EXPECT_EQ(parse_duration_seconds(YAML::Load("1.5")), std::nullopt);
  EXPECT_EQ(parse_duration_seconds(YAML::Load("[1]")), std::nullopt);
  EXPECT_EQ(parse_duration_seconds(YAML::Load("~")), std::nullopt);
}

// ---- Topological order ----

TEST(TopologicalOrder, DependenciesFirstStableByFileOrder) {
  WorkflowDefinition wf = load(R"(name: w
tasks:
  d:
    executor: x
    depends_on: [b]
  a:
    executor: x
  b:
    executor: x
    depends_on: [a]
  c:
    executor: x
  e:
    executor: x
    depends_on: [d, c]
)");
  EXPECT_EQ(topological_order(wf), (std::vector<std::string>{"a", "b", "d", "c", "e"}));
  EXPECT_EQ(topological_order(load(kFull)),
            (std::vector<std::string>{"extract", "process", "count", "shard", "notify"}));
}

TEST(TopologicalOrder, ThrowsOnCycleOrUnknownDependency) {
  WorkflowDefinition wf;
  wf.name = "w";
  TaskDefinition a, b;
  a.name = "a";
  a.depends_on = {"b"};
  b.name = "b";
  b.depends_on = {"a"};
  wf.tasks = {a, b};
  EXPECT_THROW(topological_order(wf), std::invalid_argument);
  wf.tasks = {a};
  EXPECT_THROW(topological_order(wf), std::invalid_argument);
}

}  // namespace
}  // namespace ork
