// Python tasks through ork-host: a fan-out of 50 @task tasks on the warm fork-server, a custom @executor named in
// ork.yaml, and a container task refused by the subprocess executor.
#include <gtest/gtest.h>

#include <set>

#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

std::string python() {
  const char* root = std::getenv("PYENV_ROOT");
  const char* home = std::getenv("HOME");
  std::string r = root && *root ? root : (home ? std::string(home) + "/.pyenv" : "");
  std::string py = r + "/versions/3.11.7/bin/python3";
  return !r.empty() && ::access(py.c_str(), X_OK) == 0 ? py : "python3";
}

struct WorkflowRun {
  CmdResult result;
  json run;
  std::map<std::string, std::vector<json>> tasks;  // by name, in parallel_index order
};

WorkflowRun run_workflow(const TempDir& dir, const std::string& env = "") {
  WorkflowRun r;
  r.result =
      run("ORK_HOME=" + (dir / "home") + " ORK_PYTHON=" + python() + " ORK_PYTHON_FORKSERVER_DIR=" + (dir / "servers") +
              " ORK_PYTHON_FORKSERVER_IDLE=2 " + env + " " + kHost + " run " + (dir / "wf.yaml") + " 2>&1",
          std::chrono::seconds(300));
  r.run = last_run(dir / "home");
  for (auto& t : r.run.value("tasks", json::array())) r.tasks[t["task_name"]].push_back(t);
  return r;
}

TEST(PythonE2E, FanOutOfFiftyPythonTasksSucceedsOnTheForkServer) {
  TempDir dir;
  write_file(dir / "tasks/square.py", R"(import os
from ork import task, Context
from pydantic import BaseModel

class Input(BaseModel):
    item: int

class Output(BaseModel):
    square: int
    parent: int

@task
def main(input: Input, ctx: Context) -> Output:
    ctx.log.info("squaring %s", input.item)
    return Output(square=input.item * input.item, parent=os.getppid())
)");
  write_file(dir / "tasks/total.py", R"(from ork import task

@task
def main(input: dict) -> dict:
    return {"sum": sum(x["square"] for x in input["square"]), "parents": sorted({x["parent"] for x in input["square"]})}
)");
  write_file(dir / "wf.yaml", R"(
name: py_fanout
tasks:
  discover:
    command: |
      echo '{"items": [)" + int_list(50) +
                                  R"(]}'
  square:
    executor: python
    file: tasks/square.py
    foreach: discover.items
  total:
    executor: python
    file: tasks/total.py
    depends_on: [square]
)");
  WorkflowRun r = run_workflow(dir, "ORK_MAX_ACTIVE_TASKS=4");
  ASSERT_EQ(r.result.exit_code, 0) << r.result.output.substr(0, 4000);
  ASSERT_EQ(r.tasks["square"].size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(r.tasks["square"][i]["status"], "success");
    EXPECT_EQ(r.tasks["square"][i]["output"]["square"], i * i);
  }
  ASSERT_EQ(r.tasks["total"].size(), 1u);
  const json& total = r.tasks["total"][0]["output"];
  EXPECT_EQ(total["sum"], 40425);  // 0^2 + ... + 49^2
  EXPECT_EQ(total["parents"].size(), 1u) << "every task was forked by one warm server: " << total.dump();
}

TEST(PythonE2E, CustomExecutorFromOrkYaml) {
  TempDir dir;
  write_file(dir / "ork.yaml", R"(
executors:
  python:
    type: python
  sqlish:
    type: executors.sqlish:SqlishExecutor
    config:
      project: demo
      cost_per_row: 0.5
)");
  write_file(dir / "executors/__init__.py", "");
  write_file(dir / "executors/sqlish.py", R"(from pathlib import Path
from ork import executor, Context
from pydantic import BaseModel

class Config(BaseModel):
    project: str
    cost_per_row: float = 1.0

class Output(BaseModel):
    rows: int
    cost: float
    project: str
    upstream: list

@executor
class SqlishExecutor:
    def __init__(self, config: Config):
        self.config = config

    def run(self, config_file: str, ctx: Context, upstream: dict = {}) -> Output:
        rows = len(Path(config_file).read_text().splitlines())
        ctx.metrics.record("rows", rows, labels={"task": ctx.task_name})
        return Output(rows=rows, cost=rows * self.config.cost_per_row, project=self.config.project,
                      upstream=sorted(upstream))
)");
  write_file(dir / "flows/sql/users.sql", "select 1\nselect 2\nselect 3\n");
  write_file(dir / "flows/sql/facts.sql", "select 4\n");
  write_file(dir / "wf.yaml", R"(
name: warehouse
tasks:
  stage_users:
    executor: sqlish
    config_file: flows/sql/users.sql
  build_facts:
    executor: sqlish
    config_file: flows/sql/facts.sql
    depends_on: [stage_users]
  bad_name:
    executor: sqlsh
    config_file: flows/sql/facts.sql
)");
  WorkflowRun r = run_workflow(dir);
  EXPECT_EQ(r.result.exit_code, 1) << r.result.output.substr(0, 4000);
  ASSERT_EQ(r.tasks["stage_users"].size(), 1u) << r.result.output.substr(0, 4000);
  EXPECT_EQ(r.tasks["stage_users"][0]["status"], "success") << r.tasks["stage_users"][0].dump();
  EXPECT_EQ(r.tasks["stage_users"][0]["output"],
            json::parse(R"({"rows": 3, "cost": 1.5, "project": "demo", "upstream": []})"));
  EXPECT_EQ(r.tasks["build_facts"][0]["output"]["upstream"], json::array({"stage_users"}));
  ASSERT_EQ(r.tasks["bad_name"].size(), 1u);
  EXPECT_EQ(r.tasks["bad_name"][0]["status"], "failed");
  EXPECT_EQ(r.tasks["bad_name"][0]["error"]["type"], "spec_error");
  EXPECT_NE(r.tasks["bad_name"][0]["error"]["message"].get<std::string>().find("unknown executor 'sqlsh'"),
            std::string::npos)
      << r.tasks["bad_name"][0]["error"].dump();
}

TEST(PythonE2E, ContainerTaskNeedsAContainerExecutor) {
  TempDir dir;
  write_file(dir / "wf.yaml", R"(
name: containers
tasks:
  fetch_data:
    image: registry.example/legacy-fetcher:v1
    command: ["python", "fetch.py"]
    output:
      from_file: /output/result.json
  process:
    image: registry.example/processor:v1
    command: ["python", "process.py"]
    depends_on: [fetch_data]
    input:
      to_file: /input/data.json
)");
  CmdResult v = run(kHost + " validate " + (dir / "wf.yaml") + " 2>&1");
  EXPECT_EQ(v.exit_code, 0) << v.output;
  WorkflowRun r = run_workflow(dir);
  EXPECT_NE(r.result.exit_code, 0);
  ASSERT_EQ(r.tasks["fetch_data"].size(), 1u) << r.result.output;
  EXPECT_EQ(r.tasks["fetch_data"][0]["status"], "failed");
  const std::string msg = r.tasks["fetch_data"][0]["error"]["message"].get<std::string>();
  EXPECT_NE(msg.find("task 'fetch_data'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs a container executor (docker, cloudrun, fargate, k8s)"), std::string::npos) << msg;
  EXPECT_EQ(r.tasks["process"][0]["status"], "skipped");
}

}  // namespace
