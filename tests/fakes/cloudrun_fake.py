#!/usr/bin/env python3
"""A fake of the Cloud Run Admin API v2 (run.googleapis.com/v2) for jobs and executions, standard library only,
for ork-exec-cloudrun's tests. It is a fake, not an emulator: it follows the documented REST shapes
(https://cloud.google.com/run/docs/reference/rest/v2, as published in 2024) for the calls the plugin makes:

  POST   /v2/projects/{p}/locations/{l}/jobs?jobId=J   {template: {taskCount, parallelism, template: {containers:
         [{name, image, command, args, env: [{name, value}]}], timeout: "600s", maxRetries}}}  create (Operation,
         done; 409 ALREADY_EXISTS)
  GET    /v2/projects/{p}/locations/{l}/jobs/{j}       the Job
  POST   /v2/projects/{p}/locations/{l}/jobs/{j}:run   RunJobRequest {overrides: {containerOverrides: [{name, args,
         env, clearArgs}], taskCount, timeout}} -> long-running Operation {name, metadata: Execution, done: false}
  GET    /v2/projects/{p}/locations/{l}/operations/{o} the Operation (done once the execution completed)
  GET    /v2/{execution}                               Execution {name, uid, job, createTime, startTime,
         completionTime, taskCount, parallelism, runningCount, succeededCount, failedCount, cancelledCount,
         retriedCount, conditions: [{type: ResourcesAvailable|Started|Completed, state: CONDITION_PENDING|
         CONDITION_RECONCILING|CONDITION_SUCCEEDED|CONDITION_FAILED, executionReason, message, lastTransitionTime}],
         reconciling}
  GET    /v2/projects/{p}/locations/{l}/jobs/{j}/executions   list
  POST   /v2/{execution}:cancel                        Operation; running tasks are stopped and counted in
         cancelledCount; Completed becomes CONDITION_FAILED with executionReason CANCELLED. 400 FAILED_PRECONDITION
         once the execution has completed.
  DELETE /v2/{execution}                               stops and removes it (a later GET is 404): a lost job.
Errors are Google's JSON {"error": {"code", "message", "status"}}.

Each task of an execution really runs (fake_jobs.ContainerRunner: the container's image mapped to a local command)
with the job's env merged with the override env (by name), CLOUD_RUN_JOB, CLOUD_RUN_EXECUTION,
CLOUD_RUN_TASK_INDEX, CLOUD_RUN_TASK_ATTEMPT and CLOUD_RUN_TASK_COUNT. A task that runs past the timeout is killed
and fails; a failed task is retried up to maxRetries; the execution fails (NON_ZERO_EXIT_CODE) when a task has no
retries left. Bearer tokens are accepted as given (no auth checks).
Test controls (not Cloud Run): see fake_jobs.py (/_fake/images, /_fake/faults, /_fake/stats) and
POST /_fake/config {"start_delay": s} (executions stay pending that long; a job's label "fake-start-delay" sets it
for that job alone).

Usage: cloudrun_fake.py --port N --data DIR [--host 127.0.0.1]   (prints "ready <port>" once listening)
"""
import os
import random
import re
import string
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_jobs import BaseHandler, ContainerRunner, FakeState, main, now_rfc3339  # noqa: E402


def seconds(d, default):
    if not d:
        return default
    m = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(d))
    return float(m.group(1)) if m else None


class State(FakeState):
    def __init__(self, data_dir):
        super().__init__(data_dir)
        self.jobs = {}  # full name -> Job
        self.executions = {}  # full name -> Execution dict (+ "_runners", "_ops")
        self.operations = {}  # full name -> execution name


class Handler(BaseHandler):
    def error_body(self, status, message):
        names = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
                 503: "UNAVAILABLE", 500: "INTERNAL"}
        return {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}

    def err(self, status, message):
        self.send_json(status, self.error_body(status, message))

    def route(self, path):
        st = self.state
        m = re.fullmatch(r"/v2/(projects/[^/]+/locations/[^/]+)/jobs", path)
        if m and self.command == "POST":
            return self.create_job(m.group(1))
        m = re.fullmatch(r"/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/:]+):run", path)
        if m and self.command == "POST":
            return self.run_job(m.group(1))
        m = re.fullmatch(r"/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/:]+/executions/[^/:]+):cancel", path)
        if m and self.command == "POST":
            self.read_body()
            return self.cancel(m.group(1))
        m = re.fullmatch(r"/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/:]+/executions/[^/:]+)", path)
        if m:
            name = m.group(1)
            with st.lock:
                ex = st.executions.get(name)
                if ex is None:
                    return self.err(404, f"Resource '{name}' was not found")
                if self.command == "DELETE":
                    for r in ex["_runners"].values():
                        r.kill(0.5)
                    del st.executions[name]
                    ex["_deleted"] = True
                    return self.send_json(200, self.operation(name, ex, True))
                return self.send_json(200, public(ex))
        m = re.fullmatch(r"/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/:]+)/executions", path)
        if m and self.command == "GET":
            with st.lock:
                exs = [public(e) for n, e in sorted(st.executions.items()) if n.startswith(m.group(1) + "/")]
            return self.send_json(200, {"executions": exs})
        m = re.fullmatch(r"/v2/(projects/[^/]+/locations/[^/]+/operations/[^/]+)", path)
        if m and self.command == "GET":
            with st.lock:
                exname = st.operations.get(m.group(1))
                ex = st.executions.get(exname) if exname else None
                if ex is None:
                    return self.err(404, f"Operation '{m.group(1)}' was not found")
                return self.send_json(200, self.operation(exname, ex, ex.get("completionTime") is not None,
                                                          m.group(1)))
        m = re.fullmatch(r"/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/:]+)", path)
        if m and self.command == "GET":
            with st.lock:
                job = st.jobs.get(m.group(1))
            return self.send_json(200, job) if job else self.err(404, f"Resource '{m.group(1)}' was not found")
        self.read_body()
        return self.err(404, f"Not Found: {self.command} {path}")

    def operation(self, exname, ex, done, opname=None):
        if opname is None:
            loc = exname.split("/jobs/")[0]
            opname = f"{loc}/operations/{uuid.uuid4()}"
            self.state.operations[opname] = exname
        op = {"name": opname, "metadata": dict(public(ex), **{"@type": "type.googleapis.com/google.cloud.run.v2.Execution"}),
              "done": done}
        if done:
            op["response"] = op["metadata"]
        return op

    def create_job(self, parent):
        body = self.read_json()
        job_id = self.query.get("jobId", "")
        if body is None or not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", job_id):
            return self.err(400, "jobId must be a lowercase name and the body a Job")
        name = f"{parent}/jobs/{job_id}"
        tmpl = body.get("template") or {}
        containers = ((tmpl.get("template") or {}).get("containers")) or []
        if not containers or not containers[0].get("image"):
            return self.err(400, "template.template.containers[0].image is required")
        with self.state.lock:
            if name in self.state.jobs:
                return self.err(409, f"Resource '{name}' already exists")
            job = dict(body, name=name, uid=str(uuid.uuid4()), createTime=now_rfc3339(), generation="1")
            job["template"] = tmpl
            self.state.jobs[name] = job
            op = {"name": f"{parent}/operations/{uuid.uuid4()}", "done": True,
                  "response": dict(job, **{"@type": "type.googleapis.com/google.cloud.run.v2.Job"})}
        return self.send_json(200, op)

    def run_job(self, jobname):
        body = self.read_json()
        if body is None:
            return self.err(400, "Invalid JSON payload received.")
        st = self.state
        with st.lock:
            job = st.jobs.get(jobname)
            if job is None:
                return self.err(404, f"Resource '{jobname}' was not found")
            tmpl = job["template"]
            task_tmpl = tmpl.get("template") or {}
            ov = body.get("overrides") or {}
            task_count = int(ov.get("taskCount") or tmpl.get("taskCount") or 1)
            timeout = seconds(ov.get("timeout"), seconds(task_tmpl.get("timeout"), 600.0))
            if timeout is None:
                return self.err(400, "Invalid value at 'overrides.timeout': expected a duration like \"300s\"")
            containers = [dict(c) for c in task_tmpl["containers"]]
            for co in ov.get("containerOverrides") or []:
                target = [c for c in containers if not co.get("name") or c.get("name") == co["name"]]
                if not target:
                    return self.err(400, f"container {co.get('name')!r} is not in the job")
                c = target[0]
                if co.get("clearArgs"):
                    c["args"] = []
                if co.get("args"):
                    c["args"] = co["args"]
                env = {e["name"]: e for e in c.get("env") or []}
                for e in co.get("env") or []:
                    env[e["name"]] = e
                c["env"] = list(env.values())
            while True:  # job name + 5 random characters, unique within the job, like the service's names
                short = f"{jobname.rsplit('/', 1)[1]}-{''.join(random.choices(string.ascii_lowercase + string.digits, k=5))}"
                exname = f"{jobname}/executions/{short}"
                if exname not in st.executions:
                    break
            ex = {"name": exname, "uid": str(uuid.uuid4()), "job": jobname.rsplit("/", 1)[1],
                  "createTime": now_rfc3339(), "startTime": None, "completionTime": None,
                  "taskCount": task_count, "parallelism": int(tmpl.get("parallelism") or task_count),
                  "runningCount": 0, "succeededCount": 0, "failedCount": 0, "cancelledCount": 0,
                  "retriedCount": 0, "reconciling": True,
                  "conditions": [{"type": "ResourcesAvailable", "state": "CONDITION_PENDING"},
                                 {"type": "Started", "state": "CONDITION_PENDING"},
                                 {"type": "Completed", "state": "CONDITION_PENDING"}],
                  "_runners": {}, "_cancel": False, "_deleted": False}
            st.executions[exname] = ex
            op = self.operation(exname, ex, False)
            max_retries = int(task_tmpl.get("maxRetries", 3))
            delay = float((job.get("labels") or {}).get("fake-start-delay", st.config.get("start_delay", 0)))
        threading.Thread(target=self.execute, args=(ex, containers, timeout, max_retries, delay), daemon=True).start()
        return self.send_json(200, op)

    def execute(self, ex, containers, timeout, max_retries, delay):
        st = self.state
        if delay:
            time.sleep(delay)
        with st.lock:
            if ex["_cancel"] or ex["_deleted"]:
                return
            ex["startTime"] = now_rfc3339()
            set_cond(ex, "ResourcesAvailable", "CONDITION_SUCCEEDED")
            set_cond(ex, "Started", "CONDITION_SUCCEEDED")
        threads = [threading.Thread(target=self.run_task, args=(ex, containers, i, timeout, max_retries))
                   for i in range(ex["taskCount"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with st.lock:
            ex["completionTime"] = now_rfc3339()
            ex["reconciling"] = False
            if ex["_cancel"]:
                set_cond(ex, "Completed", "CONDITION_FAILED", "CANCELLED", "The execution was cancelled.")
            elif ex["failedCount"]:
                set_cond(ex, "Completed", "CONDITION_FAILED", "NON_ZERO_EXIT_CODE",
                         ex.get("_message") or f"Task {ex['name']}-0 failed.")
            else:
                set_cond(ex, "Completed", "CONDITION_SUCCEEDED", "", "Execution completed successfully.")

    def run_task(self, ex, containers, index, timeout, max_retries):
        st = self.state
        c = containers[0]
        for attempt in range(max_retries + 1):
            env = {e["name"]: e.get("value", "") for e in c.get("env") or []}
            env.update({"CLOUD_RUN_JOB": ex["job"], "CLOUD_RUN_EXECUTION": ex["name"].rsplit("/", 1)[1],
                        "CLOUD_RUN_TASK_INDEX": str(index), "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
                        "CLOUD_RUN_TASK_COUNT": str(ex["taskCount"])})
            with st.lock:
                if ex["_cancel"] or ex["_deleted"]:
                    ex["cancelledCount"] += 1
                    return
                runner = ContainerRunner(st, f"{ex['name'].rsplit('/', 1)[1]}-task{index}-{attempt}", c["image"],
                                         c.get("command"), c.get("args"), env)
                ex["_runners"][index] = runner
                ex["runningCount"] += 1
            rc = runner.wait(timeout)
            timed_out = rc is None
            if timed_out:
                runner.kill(1.0)
                rc = runner.wait()
            with st.lock:
                ex["runningCount"] -= 1
                if ex["_cancel"]:
                    ex["cancelledCount"] += 1
                    return
                if rc == 0:
                    ex["succeededCount"] += 1
                    return
                if attempt < max_retries:
                    ex["retriedCount"] += 1
                    continue
                ex["failedCount"] += 1
                ex["_message"] = (f"Task {index} timed out after {timeout:g}s." if timed_out else
                                  runner.reason or f"Task {index} failed: the container exited with code {rc}.")
                return

    def cancel(self, name):
        st = self.state
        with st.lock:
            ex = st.executions.get(name)
            if ex is None:
                return self.err(404, f"Resource '{name}' was not found")
            if ex["completionTime"]:
                return self.send_json(400, {"error": {"code": 400, "message": "Execution has already completed.",
                                                      "status": "FAILED_PRECONDITION"}})
            ex["_cancel"] = True
            set_cond(ex, "Completed", "CONDITION_RECONCILING", "CANCELLING", "The execution is being cancelled.")
            for r in ex["_runners"].values():
                r.kill(3.0)
            if ex["startTime"] is None:  # never started: completes at once
                ex["cancelledCount"] = ex["taskCount"]
                ex["completionTime"] = now_rfc3339()
                ex["reconciling"] = False
                set_cond(ex, "Completed", "CONDITION_FAILED", "CANCELLED", "The execution was cancelled.")
            return self.send_json(200, self.operation(name, ex, False))


def set_cond(ex, typ, state, reason="", message=""):
    for c in ex["conditions"]:
        if c["type"] == typ:
            c.update({"state": state, "lastTransitionTime": now_rfc3339()})
            c.pop("executionReason", None)
            if reason:
                c["executionReason"] = reason
            if message:
                c["message"] = message


def public(ex):
    return {k: v for k, v in ex.items() if not k.startswith("_") and v is not None}


if __name__ == "__main__":
    main(__doc__, Handler, State)
