#!/usr/bin/env python3
"""Replays recorded HTTP answers, standard library only: for states a backend emulator never shows (moto's ECS skips
PROVISIONING/PENDING, never fails a container, never answers "MISSING"). The test loads a script, the plugin under
test talks to this server, the test checks what the plugin made of each answer and what it sent.

  POST /_script   {"responses": [{"match": "DescribeTasks", "status": 200, "body": {...}}, ...]}
                  appends answers; a request takes the first unused answer whose `match` is in its X-Amz-Target
                  header or path (no answer left: 500 {"message": "no recorded response"})
  GET  /_requests the requests served so far: [{"target", "path", "body"}]
  POST /_reset    forgets script and requests

Usage: recorded_http.py --port N [--host 127.0.0.1]   (prints "ready <port>" once listening)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_jobs import BaseHandler, FakeState, main  # noqa: E402


class State(FakeState):
    def __init__(self):
        super().__init__("/tmp")
        self.script = []
        self.seen = []


class Handler(BaseHandler):
    def handle_request(self):
        st = self.state
        path = self.path.split("?")[0]
        body = self.read_body()
        with st.lock:
            if path == "/_script" and self.command == "POST":
                st.script.extend(json.loads(body)["responses"])
                return self.send_json(200, {"ok": True})
            if path == "/_requests":
                return self.send_json(200, st.seen)
            if path == "/_reset":
                st.script, st.seen = [], []
                return self.send_json(200, {"ok": True})
            target = self.headers.get("X-Amz-Target") or ""
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = body.decode(errors="replace")
            st.seen.append({"target": target, "path": path, "body": parsed})
            for i, r in enumerate(st.script):
                if r["match"] in target or r["match"] in path:
                    del st.script[i]
                    return self.send_json(r.get("status", 200), r.get("body", {}))
        return self.send_json(500, {"message": f"no recorded response for {target or path}"})


if __name__ == "__main__":
    main(__doc__, Handler, State, data=False)
