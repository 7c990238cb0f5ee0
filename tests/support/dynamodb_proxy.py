#!/usr/bin/env python3
"""A forwarding proxy in front of a DynamoDB emulator for state-dynamodb tests (standard library only).

Every POST is sent on to --upstream unchanged, except injected faults:
  --throttle N[:TYPE]      the first N requests get HTTP 400 {"__type": "...#TYPE"} (default ThrottlingException)
  --fail TARGET:K          the K-th request for X-Amz-Target ...TARGET gets HTTP 400 ValidationException
  --lose TARGET:K          the K-th request for TARGET is forwarded (it takes effect) but answered HTTP 500
Writes its port to --port-file once listening; --log FILE gets one line per request: "<target> <authorization>".
"""
import argparse
import http.server
import json
import threading
import urllib.error
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--upstream", required=True)
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", default="")
ap.add_argument("--throttle", default="0")
ap.add_argument("--fail", action="append", default=[])
ap.add_argument("--lose", action="append", default=[])
args = ap.parse_args()

lock = threading.Lock()
count, _, ttype = args.throttle.partition(":")
state = {"throttle": int(count), "type": ttype or "ThrottlingException", "seen": {}}
fails, loses = {}, {}
for spec, table in [(f, fails) for f in args.fail] + [(f, loses) for f in args.lose]:
    target, _, k = spec.partition(":")
    table.setdefault(target, set()).add(int(k))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body, ctype="application/x-amz-json-1.0"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        with lock:
            if args.log:
                with open(args.log, "a") as f:
                    f.write("%s %s\n" % (target, self.headers.get("Authorization", "")))
            state["seen"][target] = state["seen"].get(target, 0) + 1
            nth = state["seen"][target]
            fault = None
            lose = nth in loses.get(target, ())
            if state["throttle"] > 0:
                state["throttle"] -= 1
                fault = state["type"]
            elif nth in fails.get(target, ()):
                fault = "ValidationException"
        if fault:
            msg = {"__type": "com.amazonaws.dynamodb.v20120810#" + fault, "message": "injected by dynamodb_proxy"}
            return self.answer(400, json.dumps(msg).encode())
        req = urllib.request.Request(args.upstream + self.path, data=body, method="POST")
        for k, v in self.headers.items():
            if k.lower() not in ("host", "content-length", "connection"):
                req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        if lose:
            msg = {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "answer lost by dynamodb_proxy"}
            return self.answer(500, json.dumps(msg).encode())
        self.answer(status, data, ctype or "application/x-amz-json-1.0")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.rename(args.port_file + ".tmp", args.port_file)
server.serve_forever()
