// Load-time contract checks: typed inputs/outputs, expressions and env files, reported with file:line:column.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "support/test_support.hpp"
#include "workflow/workflow_loader.hpp"

using ork::json;
using ork::WorkflowDefinition;
using ork::WorkflowError;

namespace {

WorkflowDefinition load(const std::string& yaml, const std::string& base_dir = "") {
  return ork::load_workflow_string(yaml, "wf.yaml", base_dir);
}

// All diagnostics, one "line:column: field: message" per entry.
std::vector<std::string> errors(const std::string& yaml, const std::string& base_dir = "") {
  try {
    load(yaml, base_dir);
  } catch (const WorkflowError& e) {
    std::vector<std::string> out;
    for (const auto& d : e.diagnostics())
      out.push_back(std::to_string(d.line) + ":" + std::to_string(d.column) + ": " + d.field + ": " + d.message);
    return out;
  }
  return {};
}

const char* kTypes = R"(name: typed
types:
  Rows:
    rows: list[int]
    label: str = "none"
  Report:
    total: int
    note: str?
)";

}  // namespace

TEST(Contracts, TypedWorkflowLoadsInEveryAcceptedForm) {
  WorkflowDefinition wf = load(std::string(kTypes) + R"(tasks:
  produce:
    command: "true"
    output: Rows
  strict:
    command: "true"
    input_type:
      rows: list[int]
      count: int
    output_type: {total: int}
    inputs:
      rows:
        ref: tasks.produce.output.rows
      count:
        const: 3
  named:
    command: "true"
    input: Report
    depends_on: [strict]
  item_each:
    command: "true"
    foreach: produce.rows
    input_type: {item: float, first: int, label: str}
    input:
      first: "{{ produce.rows[0] }}"
      label: "row {{ item }} of {{ ctx.run_id }}"
)");
  EXPECT_EQ(wf.tasks[0].output_type, "Rows");
  EXPECT_EQ(wf.tasks[1].input_type, json::parse(R"({"rows": "list[int]", "count": "int"})"));
  EXPECT_EQ(wf.tasks[1].output_type, json::parse(R"({"total": "int"})"));
  EXPECT_EQ(wf.tasks[1].input["rows"], "{{ produce.rows }}");
  EXPECT_EQ(wf.tasks[2].input_type, "Report");
  EXPECT_EQ(wf.tasks[2].input, json::object());
  // A task named in an expression becomes a dependency.
  EXPECT_EQ(wf.tasks[3].depends_on, std::vector<std::string>{"produce"});
  // The JSON round trip keeps the types.
  WorkflowDefinition back = json(wf).get<WorkflowDefinition>();
  EXPECT_EQ(json(back), json(wf));
}

TEST(Contracts, MismatchesBetweenProducerAndConsumer) {
  auto e = errors(std::string(kTypes) + R"(tasks:
  produce:
    command: "true"
    output: Rows
  consume:
    command: "true"
    input_type:
      produce: Report
      first: str
      label: int
      when: date
      count: int
    input:
      first: "{{ produce.rows[0] }}"
      label: "{{ produce.label }}"
      when: "2024-13-01"
      count: "n = {{ produce.rows[0] }}"
      extra: 1
)");
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e[0],
            "16:7: tasks.consume.input_type: input field 'produce' expects Report but task 'produce' output type Rows: "
            "total: required field 'total' (int) is not produced");
  EXPECT_EQ(e[1],
            "22:14: tasks.consume.input.first: input 'first' expects str but '{{ produce.rows[0] }}' is int (task "
            "'produce' output type Rows)");
  EXPECT_EQ(e[2],
            "23:14: tasks.consume.input.label: input 'label' expects int but '{{ produce.label }}' is str (task "
            "'produce' output type Rows)");
  EXPECT_EQ(e[3], "24:13: tasks.consume.input.when: input.when: expected date, got str \"2024-13-01\"");
  EXPECT_EQ(e[4],
            "25:14: tasks.consume.input.count: input 'count' expects int but the value is text with expressions (a "
            "str)");
  EXPECT_EQ(e[5],
            "26:14: tasks.consume.input.extra: input 'extra' is not a field of the input type {count: int, first: "
            "str, label: int, produce: Report, ...} (fields: count, first, label, produce, when)");
}

TEST(Contracts, StrictRefsFanOutsAndNullableFields) {
  auto e = errors(std::string(kTypes) + R"(tasks:
  produce:
    command: "true"
    output: Rows
  report:
    command: "true"
    output: Report
  strict:
    command: "true"
    input_type:
      total: int
      rows: list[str]
    inputs:
      total:
        ref: tasks.report.output.note
      rows:
        ref: tasks.produce.output.rows
  each:
    command: "true"
    foreach: report.total
  each_ok:
    command: "true"
    foreach: produce.rows
    input_type: {item: str}
  count:
    command: "true"
    parallel: produce.label
  fanned:
    command: "true"
    parallel: 2
    output: Report
  after_fan:
    command: "true"
    depends_on: [fanned]
    input_type: {fanned: Report}
)");
  ASSERT_EQ(e.size(), 6u) << testing::PrintToString(e);
  EXPECT_EQ(e[0],
            "23:14: tasks.strict.inputs.total.ref: input 'total' expects int but '{{ report.note }}' is str | None "
            "(task 'report' output type Report): str is not int");
  EXPECT_EQ(e[1],
            "25:14: tasks.strict.inputs.rows.ref: input 'rows' expects list[str] but '{{ produce.rows }}' is "
            "list[int] (task 'produce' output type Rows): []: int is not str");
  EXPECT_EQ(e[2], "28:14: tasks.each.foreach: foreach 'report.total' is int, not a list");
  EXPECT_EQ(e[3],
            "32:17: tasks.each_ok.input_type: input field 'item' expects str but the items of 'produce.rows' are int");
  EXPECT_EQ(e[4], "35:15: tasks.count.parallel: parallel 'produce.label' is str, not an int count");
  EXPECT_EQ(e[5],
            "43:17: tasks.after_fan.input_type: input field 'fanned' expects Report but task 'fanned' output type "
            "Report, one per instance (a list)");
}

TEST(Contracts, ExpressionNamesAreChecked) {
  auto e = errors(R"(name: w
tasks:
  fetch:
    command: "true"
  use:
    command: "true"
    input:
      a: "{{ fetchh.data }}"
      b: "{{ ctx.run }}"
      c: "{{ item.x }}"
      d: "{{ fetch.x | upper }}"
      e: ["ok {{ input.date }}", "{{ use.x }}"]
    env:
      X: "{{ fetch }}"
      Y: "{{ context }}"
      Z: "{{ attempt }} {{ ctx.parallel_index }}"
)");
  ASSERT_EQ(e.size(), 5u) << testing::PrintToString(e);
  EXPECT_EQ(e[0],
            "8:10: tasks.use.input.a: '{{ fetchh.data }}': unknown name 'fetchh' (did you mean 'fetch'?) (an "
            "expression starts with a task name, input, item, or ctx)");
  EXPECT_EQ(e[1],
            "9:10: tasks.use.input.b: '{{ ctx.run }}': unknown context field 'run' (fields: run_id, task_id, "
            "task_name, workflow_name, attempt, parallel_index, parallel_count)");
  EXPECT_EQ(e[2], "10:10: tasks.use.input.c: '{{ item.x }}': 'item' is defined only in foreach tasks");
  EXPECT_EQ(e[3],
            "11:10: tasks.use.input.d: invalid expression '{{ fetch.x | upper }}': unexpected ' | upper' (only "
            "name paths like task.field, task.list[0], input.key, item, ctx.run_id, or a quoted text, are "
            "supported)");
  EXPECT_EQ(e[4], "12:34: tasks.use.input.e[1]: '{{ use.x }}' refers to the task's own output");
  // ... a valid one adds the dependency, and a quoted text is how a literal "{{" is written.
  WorkflowDefinition wf = load(
      "name: w\ntasks:\n  a:\n    command: x\n  b:\n    command: x\n    env:\n"
      "      V: \"{{ a.v }}\"\n      J: \"{{ '{{' }} name | upper {{ '}}' }}\"\n");
  EXPECT_EQ(wf.tasks[1].depends_on, std::vector<std::string>{"a"});
}

TEST(Contracts, TypeDeclarationErrorsPointAtTheSpec) {
  auto e = errors(R"(name: w
types:
  User:
    id: integer
tasks:
  a:
    command: x
)");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0],
            "4:9: types.User.id: unknown type 'integer' (did you mean 'int'?) (not declared under 'types' and not a "
            "builtin)");
  e = errors(R"(name: w
tasks:
  a:
    command: x
    input: Missing
    output: list[int]
    output_type: int
  b:
    command: x
    input_type: list[int]
    output: 5
)");
  ASSERT_EQ(e.size(), 4u) << testing::PrintToString(e);
  EXPECT_EQ(e[0], "5:12: tasks.a.input: unknown type 'Missing' (not declared under 'types' and not a builtin)");
  EXPECT_EQ(e[1], "7:5: tasks.a.output_type: 'output' and 'output_type' both give the output type");
  EXPECT_EQ(e[2],
            "10:17: tasks.b.input_type: an input type must be an object type (named task arguments), got list[int]");
  EXPECT_EQ(e[3].substr(0, 43), "11:13: tasks.b.output: expected a type (a n");
}

TEST(Contracts, EnvFilesAreCheckedAgainstTheWorkflowDirectory) {
  ork::test::TempDir dir;
  ork::test::write_file(dir / "good.env", "A=1\nB='two'\n");
  ork::test::write_file(dir / "bad.env", "A=1\nnot valid\n");
  WorkflowDefinition wf =
      load("name: w\nenv_file: good.env\ntasks:\n  a:\n    command: x\n    env_file: good.env\n", dir.str());
  EXPECT_EQ(wf.env_file, "good.env");
  EXPECT_EQ(wf.tasks[0].env_file, "good.env");
  auto e = errors("name: w\nenv_file: missing.env\ntasks:\n  a:\n    command: x\n    env_file: bad.env\n", dir.str());
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0], "2:11: env_file: env file 'missing.env' not found (looked for " + dir.str() + "/missing.env)");
  EXPECT_EQ(e[1],
            "6:15: tasks.a.env_file: bad env file: " + dir.str() + "/bad.env:2: expected KEY=value, got 'not valid'");
}
