#!/usr/bin/env python3
"""A fake of the Amazon ECS API (JSON 1.1 protocol, AmazonEC2ContainerServiceV20141113) for Fargate tasks, standard
library only, for ork-exec-fargate's conformance run. moto's ECS (the other backend of its tests) never runs a
container; this fake does. It is a fake, not ECS: it follows the API reference
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/, as published in 2024) for these actions, sent as
POST / with X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Action> (signatures are not checked):

  CreateCluster {clusterName}                       -> {cluster: {clusterArn, clusterName, status: ACTIVE}}
  RegisterTaskDefinition {family, containerDefinitions: [{name, image, command, environment, essential}], cpu,
                         memory, networkMode, requiresCompatibilities}  -> {taskDefinition: {taskDefinitionArn,
                         family, revision, ...}}
  RunTask {cluster, taskDefinition (family[:rev] or ARN), launchType: FARGATE, count, networkConfiguration:
          {awsvpcConfiguration: {subnets, securityGroups, assignPublicIp}}, overrides: {containerOverrides: [{name,
          command, environment}], cpu, memory}, startedBy, clientToken, tags}  -> {tasks, failures}
          awsvpc without subnets: InvalidParameterException; cpu/memory not a Fargate size: ClientException; an
          unknown cluster: ClusterNotFoundException; the same clientToken again: the same task, nothing new started
  DescribeTasks {cluster, tasks: [arn...] (<= 100)}  -> {tasks: [{taskArn, lastStatus, desiredStatus, cpu, memory,
          overrides, startedBy, stopCode, stoppedReason, createdAt, startedAt, stoppedAt, containers: [{name,
          lastStatus, exitCode, reason}]}], failures: [{arn, reason: "MISSING"}]}
  StopTask {cluster, task, reason}                  -> {task}; stopCode UserInitiated, stoppedReason = reason
Errors: HTTP 400 {"__type": "<Exception>", "message"}.
Task life: PROVISIONING -> PENDING -> RUNNING while the first (essential) container runs (fake_jobs.ContainerRunner:
the image mapped to a local entrypoint, the container's `command` as its arguments, as Docker's CMD; env =
the definition's environment + the overrides) -> DEPROVISIONING -> STOPPED with the container's
exitCode, stopCode EssentialContainerExited; an unknown image stops it with stopCode TaskFailedToStart and
CannotPullContainerError.
Test controls (not ECS): fake_jobs.py's /_fake/images, /_fake/faults (a 400/429 fault answers
ThrottlingException), /_fake/stats; POST /_fake/forget {"task": arn} (or ?task=arn) drops a task (DescribeTasks: MISSING).

Usage: ecs_fake.py --port N --data DIR [--host 127.0.0.1]   (prints "ready <port>" once listening)
"""
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_jobs import BaseHandler, ContainerRunner, FakeState, main  # noqa: E402

ACCOUNT, REGION = "123456789012", "us-east-1"
PREFIX = "AmazonEC2ContainerServiceV20141113."
FARGATE = {256: [512, 1024, 2048], 512: list(range(1024, 4097, 1024)), 1024: list(range(2048, 8193, 1024)),
           2048: list(range(4096, 16385, 1024)), 4096: list(range(8192, 30721, 1024)),
           8192: list(range(16384, 61441, 4096)), 16384: list(range(32768, 122881, 8192))}


class State(FakeState):
    def __init__(self, data_dir):
        super().__init__(data_dir)
        self.clusters = {}
        self.taskdefs = {}  # family -> [revisions]
        self.tasks = {}  # arn -> task (+ "_runner")
        self.tokens = {}  # clientToken -> arn


class ApiError(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def public(t):
    return {k: v for k, v in t.items() if not k.startswith("_")}


class Handler(BaseHandler):
    def error_body(self, status, message):
        kind = "ThrottlingException" if status in (400, 429) else "ServerException"
        return {"__type": kind, "message": message}

    def error_with(self, status, headers):
        return self.send_json(400 if status == 429 else status, self.error_body(status, "Rate exceeded"), headers)

    def fake_control(self, path):
        if path == "/_fake/forget" and self.command == "POST":
            body = self.read_json() or {}
            with self.state.lock:
                t = self.state.tasks.pop(body.get("task") or self.query.get("task", ""), None)
            if t and t.get("_runner"):  # forgotten by the API; its process must not outlive the test
                t["_runner"].kill(0.5)
            return self.send_json(200, {"ok": True})
        return super().fake_control(path)

    def route(self, path):
        target = self.headers.get("X-Amz-Target") or ""
        body = self.read_json()
        if path != "/" or not target.startswith(PREFIX) or not isinstance(body, dict):
            return self.send_json(400, {"__type": "UnknownOperationException", "message": "unknown operation"})
        action = target[len(PREFIX):]
        fn = getattr(self, "do_" + action, None)
        if fn is None:
            return self.send_json(400, {"__type": "UnknownOperationException", "message": action})
        try:
            with self.state.lock:
                out = fn(body)
        except ApiError as e:
            return self.send_json(400, {"__type": e.kind, "message": str(e)})
        return self.send_json(200, out)

    def cluster(self, body):
        name = (body.get("cluster") or "default").rsplit("/", 1)[-1]
        if name not in self.state.clusters:
            raise ApiError("ClusterNotFoundException", "Cluster not found.")
        return name

    def do_CreateCluster(self, body):
        name = body.get("clusterName") or "default"
        c = {"clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}", "clusterName": name, "status": "ACTIVE"}
        self.state.clusters.setdefault(name, c)
        return {"cluster": self.state.clusters[name]}

    def do_RegisterTaskDefinition(self, body):
        fam = body.get("family")
        defs = body.get("containerDefinitions") or []
        if not fam or not defs or not all(d.get("name") and d.get("image") for d in defs):
            raise ApiError("ClientException", "family and containerDefinitions (name, image) are required")
        revs = self.state.taskdefs.setdefault(fam, [])
        td = dict(body, revision=len(revs) + 1, status="ACTIVE",
                  taskDefinitionArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{fam}:{len(revs) + 1}")
        revs.append(td)
        return {"taskDefinition": td}

    def taskdef(self, ref):
        ref = ref.rsplit("/", 1)[-1]
        fam, _, rev = ref.partition(":")
        revs = self.state.taskdefs.get(fam) or []
        if not revs or (rev and (not rev.isdigit() or not 1 <= int(rev) <= len(revs))):
            raise ApiError("ClientException", "Unable to describe task definition.")
        return revs[int(rev) - 1] if rev else revs[-1]

    def do_RunTask(self, body):
        st = self.state
        cl = self.cluster(body)
        td = self.taskdef(body.get("taskDefinition") or "")
        token = body.get("clientToken")
        if token and token in st.tokens and st.tokens[token] in st.tasks:
            return {"tasks": [public_task(st.tasks[st.tokens[token]])], "failures": []}
        if body.get("launchType", "FARGATE") == "FARGATE" or td.get("networkMode") == "awsvpc":
            vpc = (body.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
            if not vpc.get("subnets"):
                raise ApiError("InvalidParameterException",
                               "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
        ov = body.get("overrides") or {}
        cpu, mem = str(ov.get("cpu") or td.get("cpu") or "256"), str(ov.get("memory") or td.get("memory") or "512")
        if not (cpu.isdigit() and mem.isdigit() and int(mem) in FARGATE.get(int(cpu), [])):
            raise ApiError("ClientException", "No Fargate configuration exists for given values: "
                                              f"{cpu} CPU, {mem} memory.")
        tasks = []
        for _ in range(int(body.get("count", 1))):
            arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cl}/{uuid.uuid4().hex}"
            containers = []
            for d in td["containerDefinitions"]:
                c = {"name": d["name"], "image": d["image"], "lastStatus": "PENDING",
                     "_command": d.get("command"), "_env": {e["name"]: e["value"] for e in d.get("environment") or []}}
                for o in ov.get("containerOverrides") or []:
                    if o.get("name") == d["name"]:
                        if o.get("command"):
                            c["_command"] = o["command"]
                        c["_env"].update({e["name"]: e["value"] for e in o.get("environment") or []})
                containers.append(c)
            t = {"taskArn": arn, "clusterArn": st.clusters[cl]["clusterArn"],
                 "taskDefinitionArn": td["taskDefinitionArn"], "lastStatus": "PROVISIONING", "desiredStatus": "RUNNING",
                 "launchType": "FARGATE", "cpu": cpu, "memory": mem, "overrides": ov,
                 "startedBy": body.get("startedBy", ""), "tags": body.get("tags") or [], "createdAt": time.time(),
                 "containers": containers, "_stop": None}
            st.tasks[arn] = t
            if token:
                st.tokens[token] = arn
            threading.Thread(target=self.run_task, args=(t,), daemon=True).start()
            tasks.append(public_task(t))
        return {"tasks": tasks, "failures": []}

    def run_task(self, t):
        st = self.state
        time.sleep(0.05)
        with st.lock:
            if t["_stop"] is None:
                t["lastStatus"] = "PENDING"
        time.sleep(0.05)
        essential = t["containers"][0]
        with st.lock:
            if t["_stop"] is None:
                runner = ContainerRunner(st, t["taskArn"].rsplit("/", 1)[1], essential["image"], None,
                                         essential["_command"], essential["_env"])
                t["_runner"] = runner
                if runner.proc is not None:
                    t["lastStatus"] = "RUNNING"
                    t["startedAt"] = time.time()
                    essential["lastStatus"] = "RUNNING"
            else:
                runner = None
        rc = runner.wait() if runner else None
        with st.lock:
            t["lastStatus"] = "DEPROVISIONING"
            t["desiredStatus"] = "STOPPED"
        time.sleep(0.05)
        with st.lock:
            t["lastStatus"] = "STOPPED"
            t["stoppedAt"] = time.time()
            essential["lastStatus"] = "STOPPED"
            if t["_stop"] is not None:
                t["stopCode"], t["stoppedReason"] = "UserInitiated", t["_stop"]
                if rc is not None:
                    essential["exitCode"] = rc
            elif runner is not None and runner.proc is None:
                t["stopCode"] = "TaskFailedToStart"
                t["stoppedReason"] = f"CannotPullContainerError: {runner.reason}"
                essential["reason"] = "CannotPullContainerError"
            else:
                t["stopCode"], t["stoppedReason"] = "EssentialContainerExited", "Essential container in task exited"
                essential["exitCode"] = rc

    def do_DescribeTasks(self, body):
        self.cluster(body)
        arns = body.get("tasks") or []
        if len(arns) > 100:
            raise ApiError("InvalidParameterException", "Tasks cannot be longer than 100.")
        tasks, failures = [], []
        for a in arns:
            t = self.state.tasks.get(a)
            if t is None:
                failures.append({"arn": a, "reason": "MISSING"})
            else:
                tasks.append(public_task(t))
        return {"tasks": tasks, "failures": failures}

    def do_StopTask(self, body):
        self.cluster(body)
        t = self.state.tasks.get(body.get("task", ""))
        if t is None:
            raise ApiError("InvalidParameterException", "The referenced task was not found.")
        if t["lastStatus"] != "STOPPED" and t["_stop"] is None:
            t["_stop"] = body.get("reason") or "Task stopped by user"
            t["desiredStatus"] = "STOPPED"
            if t.get("_runner"):
                t["_runner"].kill(30.0)
        return {"task": public_task(t)}


def public_task(t):
    out = public(t)
    out["containers"] = [public(c) for c in t["containers"]]
    return out


if __name__ == "__main__":
    main(__doc__, Handler, State)
