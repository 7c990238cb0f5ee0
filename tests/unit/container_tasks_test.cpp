// Container tasks in the workflow loader: `image:` + `command:` (string or exec-form list), `input: {to_file}` and
// `output: {from_file}`, the stored JSON form, and the file:line:column errors.
#include <gtest/gtest.h>

#include "workflow/workflow_loader.hpp"

namespace ork {
namespace {

std::vector<Diagnostic> errors(const std::string& yaml) {
  try {
    load_workflow_string(yaml, "wf.yaml", "");
  } catch (const WorkflowError& e) {
    return e.diagnostics();
  }
  ADD_FAILURE() << "expected a WorkflowError for:\n" << yaml;
  return {};
}

void expect_error(const std::string& yaml, int line, int column, const std::string& field, const std::string& text) {
  auto d = errors(yaml);
  ASSERT_EQ(d.size(), 1u) << (d.empty() ? "" : WorkflowError(d).what());
  EXPECT_EQ(d[0].line, line) << d[0].str();
  EXPECT_EQ(d[0].column, column) << d[0].str();
  EXPECT_EQ(d[0].field, field) << d[0].str();
  EXPECT_NE(d[0].message.find(text), std::string::npos) << d[0].str();
}

const char* kContainers = R"(name: plain
tasks:
  fetch_data:
    image: registry.example/legacy-fetcher:v1
    command: ["python", "fetch.py", 42]
    output:
      from_file: /output/result.json
  process:
    image: registry.example/processor:v1
    command: python process.py
    depends_on: [fetch_data]
    input:
      to_file: /input/data.json
      mode: fast
  spark:
    image: apache/spark:3.5.0
    command: [spark-submit, /app/job.jar]
  listed:
    command: [echo, "{}"]
)";

TEST(ContainerTasks, ImageCommandAndFileIo) {
  WorkflowDefinition wf = load_workflow_string(kContainers, "wf.yaml", "");
  ASSERT_EQ(wf.tasks.size(), 4u);
  const TaskDefinition& f = wf.tasks[0];
  EXPECT_EQ(f.executor, "container");
  EXPECT_EQ(f.image, "registry.example/legacy-fetcher:v1");
  EXPECT_EQ(f.command, std::nullopt);
  EXPECT_EQ(f.command_args, (std::vector<std::string>{"python", "fetch.py", "42"}));
  EXPECT_EQ(f.output_from_file, "/output/result.json");
  EXPECT_EQ(f.input_to_file, std::nullopt);
  EXPECT_TRUE(f.output_type.is_null());

  const TaskDefinition& p = wf.tasks[1];
  EXPECT_EQ(p.executor, "container");
  EXPECT_EQ(p.command, "python process.py");
  EXPECT_TRUE(p.command_args.empty());
  EXPECT_EQ(p.input_to_file, "/input/data.json");
  EXPECT_EQ(p.input, json({{"mode", "fast"}})) << "to_file is not an input value; the others are";

  EXPECT_EQ(wf.tasks[2].command_args, (std::vector<std::string>{"spark-submit", "/app/job.jar"}));
  EXPECT_EQ(wf.tasks[3].executor, "shell") << "a list command without image is a shell task in exec form";
  EXPECT_EQ(wf.tasks[3].command_args, (std::vector<std::string>{"echo", "{}"}));
}

TEST(ContainerTasks, JsonRoundTrip) {
  WorkflowDefinition wf = load_workflow_string(kContainers, "wf.yaml", "");
  json j = wf;
  EXPECT_EQ(j["tasks"][0]["command"], json::array({"python", "fetch.py", "42"}));
  EXPECT_EQ(j["tasks"][0]["output_from_file"], "/output/result.json");
  EXPECT_TRUE(j["tasks"][0]["input_to_file"].is_null());
  EXPECT_EQ(j["tasks"][1]["command"], "python process.py");
  EXPECT_EQ(j["tasks"][1]["input_to_file"], "/input/data.json");
  WorkflowDefinition back = j.get<WorkflowDefinition>();
  EXPECT_EQ(json(back), j);
  EXPECT_EQ(back.tasks[0].command_args, wf.tasks[0].command_args);
  EXPECT_EQ(back.tasks[1].input_to_file, "/input/data.json");
}

TEST(ContainerTasks, Errors) {
  expect_error("name: w\ntasks:\n  a:\n    image: x\n    output:\n      from_file: result.json\n", 6, 18,
               "tasks.a.output.from_file", "expected an absolute path inside the container, got 'result.json'");
  expect_error("name: w\ntasks:\n  a:\n    image: x\n    input:\n      to_file: [a]\n", 6, 16, "tasks.a.input.to_file",
               "expected a path inside the container, got a list");
  expect_error("name: w\ntasks:\n  a:\n    command: cat\n    output:\n      from_file: /out.json\n", 6, 18,
               "tasks.a.output.from_file", "'from_file' is for container tasks (set 'image')");
  expect_error("name: w\ntasks:\n  a:\n    image: x\n    output:\n      from_file: /o.json\n      format: csv\n", 7, 7,
               "tasks.a.output.format", "unknown field 'format' (a container output map has only 'from_file')");
  expect_error("name: w\ntasks:\n  a:\n    executor: container\n    command: run\n", 3, 3, "tasks.a.image",
               "executor 'container' needs 'image'");
  expect_error("name: w\ntasks:\n  a:\n    image: x\n    command: []\n", 5, 14, "tasks.a.command",
               "must not be an empty list");
  expect_error("name: w\ntasks:\n  a:\n    image: x\n    command: [run, {k: v}]\n", 5, 20, "tasks.a.command[1]",
               "expected a string, got a map");
}

TEST(ContainerTasks, ToFileIsAnOrdinaryInputValueWithoutImage) {
  WorkflowDefinition wf =
      load_workflow_string("name: w\ntasks:\n  a:\n    command: cat\n    input: {to_file: x}\n", "wf.yaml", "");
  EXPECT_EQ(wf.tasks[0].input, json({{"to_file", "x"}}));
  EXPECT_EQ(wf.tasks[0].input_to_file, std::nullopt);
}

}  // namespace
}  // namespace ork
