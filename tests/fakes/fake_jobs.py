"""Shared machinery of the job-API fakes (cloudrun_fake.py, k8s_fake.py), standard library only.

- ContainerRunner: "runs a container" as a local process group: the image name is looked up in an image map
  (POST /_fake/images {"image": ["/abs/entrypoint", "arg"...]}), the container's command replaces the entrypoint
  and its args follow, as a container runtime does. The process inherits the fake's environment (standing in for
  the image's ENV) plus the container's env; stdout+stderr go to <data>/<name>.log. Unknown image: exit code 127
  and an "image not found" reason, the way a pull failure ends a task.
- Faults: POST /_fake/faults {"status": 503, "count": 2, "match": ":run", "method": "POST", "delay": 0}
  answers the next `count` matching requests with `status` (Retry-After: 0 on 429/503), or, with status 0 and a
  delay, holds them `delay` seconds before serving them normally (a hanging API).
- main(): --port, --data, and --tls-cert/--tls-key (HTTPS), --tls-client-ca (require client certificates).
- BaseHandler: JSON plumbing, TCP_NODELAY, fault injection, /_fake/images, /_fake/faults, /_fake/config, /_fake/stats.
"""
import argparse
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs


def now_rfc3339(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % (int(t * 1e6) % 1000000)


class FakeState:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.lock = threading.RLock()
        self.images = {}
        self.faults = []
        self.config = {"start_delay": 0.0}
        self.requests = 0
        self.started = 0  # containers started


class ContainerRunner:
    """One container run as a process group; wait() blocks until it ends; kill() sends SIGTERM, SIGKILL after grace."""

    def __init__(self, st, name, image, command, args, env):
        self.name = name
        self.exit_code = None
        self.reason = ""
        self.proc = None
        entry = st.images.get(image) or st.images.get(image.split("@")[0].rsplit(":", 1)[0])
        if entry is None:
            self.exit_code, self.reason = 127, f"image {image!r} not found"
            return
        argv = list(command) if command else list(entry)
        argv += list(args) if args is not None else []
        full_env = dict(os.environ)
        full_env.update(env)
        log = open(os.path.join(st.data_dir, f"{name}.log"), "ab")
        try:
            self.proc = subprocess.Popen(argv, env=full_env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            with st.lock:
                st.started += 1
        except OSError as e:
            self.exit_code, self.reason = 127, f"cannot start {argv[0]}: {e}"
        finally:
            log.close()

    def wait(self, timeout=None):
        """Exit code, or None while running after `timeout` seconds."""
        if self.proc is None:
            return self.exit_code
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exit_code = rc if rc >= 0 else 128 - rc
        return self.exit_code

    def kill(self, grace=3.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return

        def later():
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        threading.Thread(target=later, daemon=True).start()


class BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set by serve()

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_json(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def read_json(self):
        b = self.read_body()
        if not b:
            return {}
        try:
            return json.loads(b)
        except ValueError:
            return None

    def error(self, status, message, reason):
        """The API's error body; subclasses override."""
        self.send_json(status, {"error": {"code": status, "message": message, "status": reason}})

    def handle_request(self):
        st = self.state
        url = urlsplit(self.path)
        path = url.path
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if path.startswith("/_fake/"):
            return self.fake_control(path)
        delay = 0.0
        with st.lock:
            st.requests += 1
            for f in st.faults:
                if f["count"] > 0 and f["match"] in path and f["method"] in ("", self.command):
                    f["count"] -= 1
                    if f["status"]:
                        self.read_body()
                        hdr = {"Retry-After": "0"} if f["status"] in (429, 503) else {}
                        return self.error_with(f["status"], hdr)
                    delay = f["delay"]
                    break
        if delay:
            time.sleep(delay)
        return self.route(path)

    def error_with(self, status, headers):
        body = self.error_body(status, "injected fault")
        return self.send_json(status, body, headers)

    def error_body(self, status, message):
        return {"error": {"code": status, "message": message, "status": "UNAVAILABLE"}}

    def route(self, path):
        raise NotImplementedError

    def fake_control(self, path):
        st = self.state
        body = self.read_json() or {}
        with st.lock:
            if path == "/_fake/images" and self.command == "POST":
                st.images.update(body)
            elif path == "/_fake/faults" and self.command == "POST":
                st.faults.append({"status": int(body.get("status", 503)), "count": int(body.get("count", 1)),
                                  "match": body.get("match", ""), "method": body.get("method", ""),
                                  "delay": float(body.get("delay", 0))})
            elif path == "/_fake/faults" and self.command == "DELETE":
                st.faults.clear()
            elif path == "/_fake/config" and self.command == "POST":
                st.config.update(body)
            elif path == "/_fake/stats":
                return self.send_json(200, {"requests": st.requests, "started": st.started})
            else:
                return self.send_json(404, {"error": "no such control"})
        return self.send_json(200, {"ok": True})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = lambda self: self.handle_request()


def main(doc, handler_cls, make_state, data=True):
    """Command line of a fake: --port N [--data DIR] [--host 127.0.0.1]; serves until killed."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    if data:
        ap.add_argument("--data", required=True)
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate chain (and --tls-key)")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca", help="require client certificates signed by this CA (mutual TLS)")
    a = ap.parse_args()
    if data:
        os.makedirs(a.data, exist_ok=True)
    tls = None
    if a.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(a.tls_cert, a.tls_key)
        if a.tls_client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(a.tls_client_ca)
    serve(handler_cls, make_state(a.data) if data else make_state(), a.host, a.port, tls)


def serve(handler_cls, state, host, port, tls=None):
    handler_cls.state = state
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    srv = ThreadingHTTPServer((host, port), handler_cls)
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    print(f"ready {srv.server_address[1]}", flush=True)
    srv.serve_forever()
