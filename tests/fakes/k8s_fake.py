#!/usr/bin/env python3
"""A fake of the Kubernetes API server for batch/v1 Jobs (API v1.29 shapes), standard library only, for ork-exec-k8s's
tests. It is a fake, not a cluster: it follows the documented REST shapes of
https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/job-v1/ (and Pod, Secret) for these calls:

  POST   /apis/batch/v1/namespaces/{ns}/jobs           create (201; 409 AlreadyExists; 422 Invalid without a
                                                       container image or with restartPolicy Always)
  GET    /apis/batch/v1/namespaces/{ns}/jobs[?labelSelector=k=v,k2=v2]   JobList (metadata.resourceVersion)
  GET    /apis/batch/v1/namespaces/{ns}/jobs?watch=1&resourceVersion=RV[&labelSelector][&timeoutSeconds]
                                                       a chunked stream of {"type": ADDED|MODIFIED|DELETED|ERROR,
                                                       "object"} lines for changes after RV; 410 Gone as an ERROR
                                                       event when RV is older than the kept history
  GET    /apis/batch/v1/namespaces/{ns}/jobs/{name}    Job with status {active, ready, succeeded, failed, startTime,
                                                       completionTime, conditions: [{type: Complete | FailureTarget |
                                                       Failed, status: "True", reason, message, lastTransitionTime}]}
  DELETE /apis/batch/v1/namespaces/{ns}/jobs/{name}    DeleteOptions {propagationPolicy} (or ?propagationPolicy=):
                                                       Background/Foreground kill and remove its pods, Orphan leaves
                                                       them running; Secrets owned by the Job are collected
  GET    /api/v1/namespaces/{ns}/pods?labelSelector=job-name=J   pods with status.phase and
                                                       containerStatuses[].state.{running|terminated{exitCode,reason}}
  POST/GET/DELETE /api/v1/namespaces/{ns}/secrets[/{name}], PATCH (application/merge-patch+json: labels,
                                                       annotations, ownerReferences)
Errors are Status objects {"kind": "Status", "status": "Failure", "message", "reason", "code"}.

A Job runs one pod at a time (parallelism = completions = 1) with restartPolicy Never: its container really runs
(fake_jobs.ContainerRunner; the image mapped to a local command, `command` replacing the entrypoint, `args`
following) with the container's env and HOSTNAME = the pod's name, values from secretKeyRef resolved at pod start (a missing Secret keeps the pod
Pending, as CreateContainerConfigError does). A failed pod is replaced until backoffLimit failures; past
activeDeadlineSeconds every pod is killed and the Job fails with reason DeadlineExceeded; ttlSecondsAfterFinished
deletes a finished Job. Pods get the labels job-name and controller-uid and the template's labels.
Auth: POST /_fake/config {"token": "T"} makes every API call need "Authorization: Bearer T" (else 401);
{"tokens": {"ns": "T"}} does it for one namespace.
Test controls (not Kubernetes): fake_jobs.py's /_fake/images, /_fake/faults, /_fake/stats; /_fake/config
{"start_delay": s} keeps new pods Pending that long (a Job's annotation "fake.ork.dev/start-delay" for that Job).

Usage: k8s_fake.py --port N --data DIR [--host 127.0.0.1]   (prints "ready <port>" once listening)
"""
import base64
import json
import os
import re
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_jobs import BaseHandler, ContainerRunner, FakeState, main, now_rfc3339  # noqa: E402

MAX_EVENTS = 20000
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class State(FakeState):
    def __init__(self, data_dir):
        super().__init__(data_dir)
        self.jobs = {}  # (ns, name) -> job dict (+ "_pods": [pod], "_stop": bool)
        self.secrets = {}  # (ns, name) -> secret dict
        self.version = 1
        self.events = []  # (resourceVersion, type, ns, Job snapshot) for watches, the last MAX_EVENTS
        self.changed = threading.Condition(self.lock)

    def stamp(self, meta):
        self.version += 1
        meta["resourceVersion"] = str(self.version)

    def touch(self, job, kind="MODIFIED"):
        """A Job changed: a new resourceVersion and a watch event."""
        self.stamp(job["metadata"])
        self.events.append((self.version, kind, job["metadata"]["namespace"], json.loads(json.dumps(public(job)))))
        del self.events[:-MAX_EVENTS]
        self.changed.notify_all()


def selector_matches(sel, labels):
    for part in filter(None, (sel or "").split(",")):
        k, _, v = part.partition("=")
        if (labels or {}).get(k.strip()) != v.strip().lstrip("="):
            return False
    return True


def public(obj):
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class Handler(BaseHandler):
    def error_body(self, status, message):
        reasons = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 409: "AlreadyExists", 422: "Invalid",
                   429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                "reason": reasons.get(status, "Unknown"), "code": status}

    def err(self, status, message):
        self.send_json(status, self.error_body(status, message))

    def route(self, path):
        st = self.state
        ns_match = re.match(r"/apis?/(?:batch/)?v1/namespaces/([^/]+)/", path)
        token = (st.config.get("tokens") or {}).get(ns_match.group(1) if ns_match else "", st.config.get("token"))
        if token and self.headers.get("Authorization") != f"Bearer {token}":
            self.read_body()
            return self.err(401, "Unauthorized")
        m = re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?", path)
        if m:
            ns, name = m.group(1), m.group(2)
            if name is None and self.command == "POST":
                return self.create_job(ns)
            if name is None and self.command == "GET" and self.query.get("watch") in ("1", "true"):
                return self.watch_jobs(ns)
            if name is None and self.command == "GET":
                with st.lock:
                    items = [public(j) for (n, _), j in sorted(st.jobs.items())
                             if n == ns and selector_matches(self.query.get("labelSelector"),
                                                             j["metadata"].get("labels"))]
                    return self.send_json(200, {"kind": "JobList", "apiVersion": "batch/v1",
                                                "metadata": {"resourceVersion": str(st.version)}, "items": items})
            if name and self.command == "GET":
                with st.lock:
                    j = st.jobs.get((ns, name))
                    if j is None:
                        return self.err(404, f'jobs.batch "{name}" not found')
                    return self.send_json(200, public(j))
            if name and self.command == "DELETE":
                return self.delete_job(ns, name)
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path)
        if m and self.command == "GET":
            with st.lock:
                items = [p for (n, _), j in sorted(st.jobs.items()) if n == m.group(1) for p in j["_pods"]
                         if selector_matches(self.query.get("labelSelector"), p["metadata"]["labels"])]
                return self.send_json(200, {"kind": "PodList", "apiVersion": "v1", "items": items})
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets(?:/([^/]+))?", path)
        if m:
            return self.secret_op(m.group(1), m.group(2))
        self.read_body()
        return self.err(404, "the server could not find the requested resource")

    # ---- watch

    def watch_jobs(self, ns):
        """?watch=1&resourceVersion=RV&labelSelector=&timeoutSeconds=: chunked JSON lines {type, object} for every
        change after RV (ADDED, MODIFIED, DELETED); an RV older than the kept history gets an ERROR 410 Gone."""
        st = self.state
        since = int(self.query.get("resourceVersion") or 0)
        until = time.time() + float(self.query.get("timeoutSeconds") or 1800)
        sel = self.query.get("labelSelector")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj):
            data = (json.dumps(obj) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            with st.lock:
                if since and st.events and since < st.events[0][0] - 1:
                    out = [{"type": "ERROR", "object": self.error_body(410, "too old resource version")}]
                    until = 0
                else:
                    out = []
            for ev in out:
                chunk(ev)
            while time.time() < until:
                with st.lock:
                    news = [e for e in st.events if e[0] > since]
                    if not news:
                        st.changed.wait(min(1.0, max(0.0, until - time.time())))
                        continue
                since = news[-1][0]
                for rv, kind, ens, obj in news:
                    if ens == ns and selector_matches(sel, obj["metadata"].get("labels")):
                        chunk({"type": kind, "object": obj})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True

    # ---- secrets

    def secret_op(self, ns, name):
        st = self.state
        body = self.read_json() if self.command in ("POST", "PATCH") else (self.read_body() and None)
        with st.lock:
            if name is None and self.command == "POST":
                if not isinstance(body, dict) or not NAME_RE.fullmatch((body.get("metadata") or {}).get("name", "")):
                    return self.err(422, "Secret is invalid: metadata.name: Required value")
                name = body["metadata"]["name"]
                if (ns, name) in st.secrets:
                    return self.err(409, f'secrets "{name}" already exists')
                data = dict(body.get("data") or {})
                for k, v in (body.get("stringData") or {}).items():
                    data[k] = base64.b64encode(v.encode()).decode()
                sec = {"apiVersion": "v1", "kind": "Secret", "type": body.get("type", "Opaque"), "data": data,
                       "metadata": dict(body["metadata"], namespace=ns, uid=str(uuid.uuid4()),
                                        creationTimestamp=now_rfc3339())}
                st.stamp(sec["metadata"])
                st.secrets[(ns, name)] = sec
                return self.send_json(201, sec)
            sec = st.secrets.get((ns, name)) if name else None
            if sec is None:
                return self.err(404, f'secrets "{name}" not found')
            if self.command == "GET":
                return self.send_json(200, sec)
            if self.command == "DELETE":
                del st.secrets[(ns, name)]
                return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            if self.command == "PATCH":
                if "merge-patch" not in (self.headers.get("Content-Type") or "") or not isinstance(body, dict):
                    return self.err(415 if isinstance(body, dict) else 400, "unsupported patch")
                for k in ("labels", "annotations", "ownerReferences"):
                    if k in (body.get("metadata") or {}):
                        sec["metadata"][k] = body["metadata"][k]
                st.stamp(sec["metadata"])
                return self.send_json(200, sec)
        return self.err(405, "method not allowed")

    # ---- jobs

    def create_job(self, ns):
        st = self.state
        job = self.read_json()
        if not isinstance(job, dict):
            return self.err(400, "the body is not a Job")
        meta = job.get("metadata") or {}
        name = meta.get("name", "")
        spec = job.get("spec") or {}
        pod_spec = ((spec.get("template") or {}).get("spec")) or {}
        containers = pod_spec.get("containers") or []
        problems = []
        if not NAME_RE.fullmatch(name) or len(name) > 63:
            problems.append("metadata.name: Invalid value")
        if not containers or not containers[0].get("image"):
            problems.append("spec.template.spec.containers[0].image: Required value")
        if pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append('spec.template.spec.restartPolicy: Unsupported value: must be "OnFailure" or "Never"')
        if problems:
            return self.err(422, f'Job.batch "{name}" is invalid: ' + ", ".join(problems))
        with st.lock:
            if (ns, name) in st.jobs:
                return self.err(409, f'jobs.batch "{name}" already exists')
            uid = str(uuid.uuid4())
            labels = dict(meta.get("labels") or {}, **{"job-name": name, "controller-uid": uid})
            job = {"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": dict(meta, namespace=ns, uid=uid, creationTimestamp=now_rfc3339(), labels=labels),
                   "spec": dict(spec, backoffLimit=spec.get("backoffLimit", 6), completions=1, parallelism=1),
                   "status": {}, "_pods": [], "_stop": False}
            st.jobs[(ns, name)] = job
            st.touch(job, "ADDED")
            out = public(job)
        threading.Thread(target=self.run_job, args=(ns, name, job), daemon=True).start()
        return self.send_json(201, out)

    def delete_job(self, ns, name):
        st = self.state
        body = self.read_json() or {}
        policy = self.query.get("propagationPolicy") or body.get("propagationPolicy") or "Background"
        with st.lock:
            job = st.jobs.pop((ns, name), None)
            if job is None:
                return self.err(404, f'jobs.batch "{name}" not found')
            job["_stop"] = True
            st.touch(job, "DELETED")
            if policy != "Orphan":
                for r in job.get("_runners", []):
                    r.kill(3.0)
            uid = job["metadata"]["uid"]
            for key, sec in list(st.secrets.items()):
                if any(o.get("uid") == uid for o in sec["metadata"].get("ownerReferences") or []):
                    del st.secrets[key]
        return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                                    "details": {"name": name, "group": "batch", "kind": "jobs", "uid": uid}})

    def run_job(self, ns, name, job):
        st = self.state
        spec = job["spec"]
        deadline = spec.get("activeDeadlineSeconds")
        backoff = int(spec["backoffLimit"])
        container = spec["template"]["spec"]["containers"][0]
        job["_runners"] = []
        with st.lock:
            job["status"]["startTime"] = now_rfc3339()
            started = time.time()
            st.touch(job)
        failures = 0
        while True:
            pod = self.new_pod(job, container)
            with st.lock:
                job["_pods"].append(pod)
                job["status"]["active"] = 1
                job["status"]["ready"] = 0
                st.touch(job)
            env, waited = None, 0.0
            delay = float((job["metadata"].get("annotations") or {}).get("fake.ork.dev/start-delay",
                                                                          st.config.get("start_delay", 0)))
            while env is None or waited < delay:
                if job["_stop"] or (deadline and time.time() - started > deadline):
                    break
                env = self.pod_env(ns, container)
                if env is not None:
                    env.setdefault("HOSTNAME", pod["metadata"]["name"])
                time.sleep(0.05)
                waited += 0.05
            rc, reason = None, ""
            if env is not None and not job["_stop"] and not (deadline and time.time() - started > deadline):
                with st.lock:
                    runner = ContainerRunner(st, f"{name}-{len(job['_pods'])}", container["image"],
                                             container.get("command"), container.get("args"), env)
                    job["_runners"].append(runner)
                    pod["status"] = {"phase": "Running", "startTime": now_rfc3339(), "containerStatuses": [
                        {"name": container.get("name", ""), "ready": True, "restartCount": 0,
                         "state": {"running": {"startedAt": now_rfc3339()}}}]}
                    job["status"]["ready"] = 1
                    st.touch(job)
                left = (deadline - (time.time() - started)) if deadline else None
                rc = runner.wait(left)
                if rc is None:
                    runner.kill(1.0)
                    rc = runner.wait()
                    reason = "DeadlineExceeded"
                reason = reason or runner.reason
            with st.lock:
                if job["_stop"]:
                    return
                job["status"]["active"] = 0
                job["status"]["ready"] = 0
                if rc is None:
                    reason = "DeadlineExceeded"
                else:
                    pod["status"]["phase"] = "Succeeded" if rc == 0 else "Failed"
                    pod["status"]["containerStatuses"][0]["state"] = {"terminated": {
                        "exitCode": rc, "reason": "Completed" if rc == 0 else "Error", "finishedAt": now_rfc3339()}}
                    pod["status"]["containerStatuses"][0]["ready"] = False
                if rc == 0:
                    job["status"]["succeeded"] = 1
                    job["status"]["completionTime"] = now_rfc3339()
                    job["status"]["conditions"] = [cond("Complete")]
                    break
                if rc is not None:
                    failures += 1
                    job["status"]["failed"] = failures
                if reason == "DeadlineExceeded" or failures > backoff:
                    if reason == "DeadlineExceeded":
                        c = ("DeadlineExceeded", "Job was active longer than specified deadline")
                    else:
                        c = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
                    job["status"]["conditions"] = [cond("FailureTarget", *c), cond("Failed", *c)]
                    break
                st.touch(job)
        with st.lock:
            st.touch(job)
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None:
            time.sleep(float(ttl))
            with st.lock:
                if st.jobs.get((ns, name)) is job:
                    del st.jobs[(ns, name)]
                    st.touch(job, "DELETED")

    def new_pod(self, job, container):
        meta = job["metadata"]
        labels = dict((job["spec"]["template"].get("metadata") or {}).get("labels") or {},
                      **{"job-name": meta["name"], "controller-uid": meta["uid"]})
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{meta['name']}-{uuid.uuid4().hex[:5]}", "namespace": meta["namespace"],
                             "labels": labels, "uid": str(uuid.uuid4())},
                "status": {"phase": "Pending", "containerStatuses": [
                    {"name": container.get("name", ""), "ready": False, "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}}]}}

    def pod_env(self, ns, container):
        """The container's env, or None while a referenced Secret or key is missing."""
        env = {}
        with self.state.lock:
            for e in container.get("env") or []:
                ref = ((e.get("valueFrom") or {}).get("secretKeyRef"))
                if ref:
                    sec = self.state.secrets.get((ns, ref.get("name")))
                    if sec is None or ref.get("key") not in sec["data"]:
                        return None
                    env[e["name"]] = base64.b64decode(sec["data"][ref["key"]]).decode()
                else:
                    env[e["name"]] = e.get("value", "")
        return env


def cond(typ, reason="", message=""):
    c = {"type": typ, "status": "True", "lastProbeTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


if __name__ == "__main__":
    main(__doc__, Handler, State)
