#!/usr/bin/env python3
"""A fake of the Google Cloud Storage JSON API (storage/v1), standard library only, for ork-object-gcs's tests.

It follows the documented behaviour of the GCS JSON API v1 (https://cloud.google.com/storage/docs/json_api/v1,
as published in 2024) for the calls the plugin makes, and nothing else:

  GET    /storage/v1/b/{bucket}                       bucket metadata, 404 when missing
  POST   /storage/v1/b?project=P  {"name": ...}        create a bucket, 409 when it exists
  GET    /storage/v1/b/{bucket}/o?prefix&pageToken&maxResults(<=1000, default 1000)&fields
                                                      list, lexicographic by name, nextPageToken while more
  GET    /storage/v1/b/{bucket}/o/{object}            metadata; with alt=media the bytes (x-goog-generation)
  DELETE /storage/v1/b/{bucket}/o/{object}            204, 404 when missing
  POST   /upload/storage/v1/b/{bucket}/o?uploadType=media&name=N     simple upload
  POST   /upload/storage/v1/b/{bucket}/o?uploadType=resumable&name=N start a session: 200 + Location
  PUT    <session URI>  Content-Range: bytes A-B/T | bytes A-B/* | bytes */T
                                                      308 + Range while incomplete, 200 with the object at the end;
                                                      non-final chunks must be multiples of 256 KiB (else 400)
  DELETE <session URI>                                cancel (499)
  ifGenerationMatch=G on uploads (0 = must not exist): 412 conditionNotMet; checked at start and at finalization
  Errors are Google's JSON: {"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}.
  Generations increase per object write; sizes and generations are strings, as in the API.

OAuth (for the shared Google auth code): POST /token takes grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
with an RS256 assertion (iss, scope, aud = this token URI, iat, exp) and verifies its signature against the keys
registered with POST /_fake/trust {"n": hex, "e": int}; GET /computeMetadata/v1/instance/service-accounts/default/token
(Metadata-Flavor: Google) plays the metadata server. Both answer {"access_token", "expires_in", "token_type"}.
Buckets named with POST /_fake/auth {"bucket": B} then refuse requests without a bearer token issued here (401).

Test controls (not GCS): POST /_fake/faults {"status": 503, "count": 2, "match": "/o/"} answers the next `count`
requests whose path contains `match` with `status` (and a Retry-After: 0 on 429/503); with "after": true an upload
is committed first and only its answer replaced (a lost response); GET /_fake/stats.
Objects are stored under --data (one file each); metadata lives in memory.

Usage: gcs_fake.py --port N --data DIR [--host 127.0.0.1]   (prints "ready <port>" once listening)
"""
import argparse
import hashlib
import base64
import json
import os
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs, quote, unquote

CHUNK_UNIT = 256 * 1024


class Store:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.lock = threading.Lock()
        self.buckets = {}  # name -> {"meta": {...}, "objects": {name: meta}}
        self.sessions = {}  # id -> {...}
        self.generation = int(time.time() * 1e6)
        self.faults = []
        self.requests = 0
        self.trusted = []  # (n, e) of service-account keys whose JWTs /token accepts
        self.tokens = set()  # access tokens issued
        self.auth_buckets = set()  # buckets that need a bearer token

    def next_generation(self):
        self.generation += 1
        return self.generation

    def blob_path(self, bucket, name, generation):
        h = hashlib.sha256(f"{bucket}\0{name}\0{generation}".encode()).hexdigest()
        return os.path.join(self.data_dir, h)


def error_body(code, message, reason):
    return {"error": {"code": code, "message": message,
                      "errors": [{"domain": "global", "reason": reason, "message": message}]}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None  # set in main

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle + delayed ACK add 40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---- plumbing

    def send_json(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_json(self, status, message, reason):
        self.send_json(status, error_body(status, message, reason))

    def send_empty(self, status, headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def read_body_to(self, out=None):
        """Reads the request body (Content-Length) into a file object or returns bytes."""
        n = int(self.headers.get("Content-Length") or 0)
        if out is None:
            return self.rfile.read(n) if n else b""
        left = n
        while left:
            b = self.rfile.read(min(left, 1 << 20))
            if not b:
                break
            out.write(b)
            left -= len(b)
        return n - left

    def object_resource(self, bucket, meta):
        return {"kind": "storage#object", "id": f"{bucket}/{meta['name']}/{meta['generation']}",
                "name": meta["name"], "bucket": bucket, "generation": str(meta["generation"]),
                "metageneration": "1", "contentType": meta["contentType"], "size": str(meta["size"]),
                "md5Hash": meta["md5Hash"], "timeCreated": meta["updated"], "updated": meta["updated"],
                "selfLink": f"{self.base_url()}/storage/v1/b/{bucket}/o/{quote(meta['name'], safe='')}",
                "mediaLink": f"{self.base_url()}/download/storage/v1/b/{bucket}/o/{quote(meta['name'], safe='')}"
                             f"?generation={meta['generation']}&alt=media"}

    def base_url(self):
        return f"http://{self.headers.get('Host') or self.server.server_address[0]}"

    def dispatch(self):
        st = self.store
        self.fault_after = None  # one handler serves every request of a keep-alive connection
        url = urlsplit(self.path)
        path = url.path
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with st.lock:
            st.requests += 1
            for f in st.faults:
                if f["count"] > 0 and f.get("match", "") in path and not path.startswith("/_fake/"):
                    f["count"] -= 1
                    if f.get("after"):  # do the work, then lose the answer
                        self.fault_after = f["status"]
                        break
                    self.read_body_to(open(os.devnull, "wb"))
                    hdr = {"Retry-After": "0"} if f["status"] in (429, 503) else {}
                    return self.send_json(f["status"], error_body(f["status"], "injected fault", "backendError"), hdr)
        if path.startswith("/_fake/"):
            return self.fake_control(path)
        if path == "/token" and self.command == "POST":
            return self.token_exchange()
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            if self.headers.get("Metadata-Flavor") != "Google":
                return self.send_error_json(403, "Missing Metadata-Flavor:Google header", "forbidden")
            return self.send_json(200, self.issue_token())
        m = re.match(r"/(?:upload/)?storage/v1/b/([^/?]+)", path)
        if m and unquote(m.group(1)) in st.auth_buckets:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in st.tokens:
                self.read_body_to(open(os.devnull, "wb"))
                return self.send_error_json(401, "Anonymous caller does not have storage.objects.get access.",
                                            "required")
        m = re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", path)
        if m:
            return self.upload(unquote(m.group(1)), q)
        m = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", path)
        if m:
            return self.object_op(unquote(m.group(1)), unquote(m.group(2)), q)
        m = re.fullmatch(r"/storage/v1/b/([^/]+)/o/?", path)
        if m and self.command == "GET":
            return self.list_objects(unquote(m.group(1)), q)
        m = re.fullmatch(r"/storage/v1/b/([^/]+)/?", path)
        if m and self.command == "GET":
            return self.get_bucket(unquote(m.group(1)))
        if path.rstrip("/") == "/storage/v1/b" and self.command == "POST":
            return self.create_bucket(q)
        self.read_body_to(open(os.devnull, "wb"))
        return self.send_error_json(404, f"Not Found: {self.command} {path}", "notFound")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = lambda self: self.dispatch()

    # ---- test controls

    def fake_control(self, path):
        st = self.store
        if path == "/_fake/faults" and self.command == "POST":
            f = json.loads(self.read_body_to() or b"{}")
            with st.lock:
                st.faults.append({"status": int(f.get("status", 503)), "count": int(f.get("count", 1)),
                                  "match": f.get("match", ""), "after": bool(f.get("after", False))})
            return self.send_json(200, {"ok": True})
        if path == "/_fake/trust" and self.command == "POST":
            k = json.loads(self.read_body_to() or b"{}")
            with st.lock:
                st.trusted.append((int(k["n"], 16), int(k["e"])))
            return self.send_json(200, {"ok": True})
        if path == "/_fake/auth" and self.command == "POST":
            b = json.loads(self.read_body_to() or b"{}")
            with st.lock:
                st.auth_buckets.add(b["bucket"])
            return self.send_json(200, {"ok": True})
        if path == "/_fake/stats":
            with st.lock:
                return self.send_json(200, {"requests": st.requests,
                                            "faults_left": sum(f["count"] for f in st.faults)})
        return self.send_error_json(404, "unknown control", "notFound")

    # ---- OAuth

    def issue_token(self):
        tok = "fake-token-" + uuid.uuid4().hex
        with self.store.lock:
            self.store.tokens.add(tok)
        return {"access_token": tok, "expires_in": 3600, "token_type": "Bearer"}

    def token_exchange(self):
        form = {k: v[-1] for k, v in parse_qs(self.read_body_to().decode(), keep_blank_values=True).items()}
        def refuse(why):
            return self.send_json(400, {"error": "invalid_grant", "error_description": why})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return refuse("unsupported grant_type")
        parts = form.get("assertion", "").split(".")
        if len(parts) != 3:
            return refuse("the assertion is not a JWT")
        def b64(s):
            return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        try:
            header, claims, sig = json.loads(b64(parts[0])), json.loads(b64(parts[1])), b64(parts[2])
        except ValueError:
            return refuse("malformed JWT")
        if header.get("alg") != "RS256":
            return refuse("alg must be RS256")
        now = time.time()
        if claims.get("aud") != self.base_url() + "/token" or not claims.get("iss") or not claims.get("scope"):
            return refuse("bad aud, iss or scope")
        if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0)) or claims["exp"] - claims["iat"] > 3600:
            return refuse("bad iat/exp")
        signing_input = (parts[0] + "." + parts[1]).encode()
        with self.store.lock:
            keys = list(self.store.trusted)
        if not any(rs256_verify(n, e, signing_input, sig) for n, e in keys):
            return refuse("Invalid JWT Signature.")
        return self.send_json(200, self.issue_token())

    # ---- buckets

    def get_bucket(self, bucket):
        with self.store.lock:
            b = self.store.buckets.get(bucket)
        if not b:
            return self.send_error_json(404, f"The specified bucket does not exist.", "notFound")
        return self.send_json(200, b["meta"])

    def create_bucket(self, q):
        body = json.loads(self.read_body_to() or b"{}")
        name = body.get("name", "")
        if "project" not in q:
            return self.send_error_json(400, "Required parameter: project", "required")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", name):
            return self.send_error_json(400, "Invalid bucket name: '" + name + "'", "invalid")
        with self.store.lock:
            if name in self.store.buckets:
                return self.send_error_json(409, "Your previous request to create the named bucket succeeded "
                                                 "and you already own it.", "conflict")
            meta = {"kind": "storage#bucket", "id": name, "name": name, "projectNumber": "0",
                    "location": "US", "storageClass": "STANDARD", "metageneration": "1",
                    "timeCreated": now_rfc3339(), "updated": now_rfc3339()}
            self.store.buckets[name] = {"meta": meta, "objects": {}}
        return self.send_json(200, meta)

    def bucket_or_404(self, bucket):
        b = self.store.buckets.get(bucket)
        if b is None:
            self.send_error_json(404, "The specified bucket does not exist.", "notFound")
        return b

    # ---- objects

    def object_op(self, bucket, name, q):
        st = self.store
        with st.lock:
            b = self.bucket_or_404(bucket)
            if b is None:
                return
            meta = b["objects"].get(name)
            meta = dict(meta) if meta else None
            # Open this generation's file under the lock: a concurrent write removes the old file once it has
            # published the new one, and GCS never answers a read of a live object with 404.
            media = None
            if meta is not None and self.command == "GET" and q.get("alt") == "media":
                try:
                    media = open(meta["path"], "rb")
                except OSError:
                    media = None
        if meta is None:
            return self.send_error_json(404, f"No such object: {bucket}/{name}", "notFound")
        if self.command == "DELETE":
            with st.lock:
                cur = b["objects"].get(name)
                if cur is None:
                    return self.send_error_json(404, f"No such object: {bucket}/{name}", "notFound")
                del b["objects"][name]
            try:
                os.remove(cur["path"])
            except OSError:
                pass
            return self.send_empty(204)
        if self.command != "GET":
            return self.send_error_json(405, "Method not allowed", "methodNotAllowed")
        if q.get("alt") != "media":
            return self.send_json(200, self.object_resource(bucket, meta))
        if media is None:
            return self.send_error_json(404, f"No such object: {bucket}/{name}", "notFound")
        with media as f:
            self.send_response(200)
            self.send_header("Content-Type", meta["contentType"])
            self.send_header("Content-Length", str(meta["size"]))
            self.send_header("x-goog-generation", str(meta["generation"]))
            self.send_header("x-goog-stored-content-length", str(meta["size"]))
            self.end_headers()
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                self.wfile.write(chunk)

    def list_objects(self, bucket, q):
        prefix = q.get("prefix", "")
        try:
            max_results = min(int(q.get("maxResults", "1000")), 1000)
        except ValueError:
            return self.send_error_json(400, "Invalid maxResults", "invalid")
        if max_results < 1:
            return self.send_error_json(400, "Invalid maxResults", "invalid")
        token = q.get("pageToken", "")
        start = base64.urlsafe_b64decode(token.encode()).decode() if token else None
        with self.store.lock:
            b = self.bucket_or_404(bucket)
            if b is None:
                return
            names = sorted((n for n in b["objects"] if n.startswith(prefix)), key=lambda s: s.encode())
            if start is not None:
                names = [n for n in names if n.encode() > start.encode()]
            page = names[:max_results]
            items = [self.object_resource(bucket, b["objects"][n]) for n in page]
        out = {"kind": "storage#objects"}
        if items:
            out["items"] = items
        if len(names) > max_results:
            out["nextPageToken"] = base64.urlsafe_b64encode(page[-1].encode()).decode()
        fields = q.get("fields", "")
        if fields:  # a partial response: keep only what `fields` names (the subset the plugin uses)
            keep_items = re.search(r"items\(([^)]*)\)", fields)
            if keep_items and "items" in out:
                wanted = [f.strip() for f in keep_items.group(1).split(",")]
                out["items"] = [{k: v for k, v in it.items() if k in wanted} for it in out["items"]]
            if "kind" not in fields:
                out.pop("kind", None)
        return self.send_json(200, out)

    # ---- uploads

    def precondition_ok(self, bucket, name, q):
        """ifGenerationMatch: 0 = must not exist; G = current generation must be G."""
        if "ifGenerationMatch" not in q:
            return True
        cur = self.store.buckets[bucket]["objects"].get(name)
        want = int(q["ifGenerationMatch"])
        return (cur is None) if want == 0 else (cur is not None and cur["generation"] == want)

    def commit(self, bucket, name, tmp_path, size, md5, content_type, q):
        """Publishes tmp_path as the new generation of name, atomically, if the precondition holds."""
        st = self.store
        with st.lock:
            b = st.buckets.get(bucket)
            if b is None:
                os.remove(tmp_path)
                return self.send_error_json(404, "The specified bucket does not exist.", "notFound")
            if not self.precondition_ok(bucket, name, q):
                os.remove(tmp_path)
                return self.send_error_json(412, "At least one of the pre-conditions you specified did not hold.",
                                            "conditionNotMet")
            gen = st.next_generation()
            final = st.blob_path(bucket, name, gen)
            os.replace(tmp_path, final)
            old = b["objects"].get(name)
            meta = {"name": name, "generation": gen, "size": size, "contentType": content_type,
                    "md5Hash": base64.b64encode(md5).decode(), "updated": now_rfc3339(), "path": final}
            b["objects"][name] = meta
            resource = self.object_resource(bucket, meta)
        if getattr(self, "fault_after", None):
            status, self.fault_after = self.fault_after, None
            return self.send_json(status, error_body(status, "injected fault after the commit", "backendError"),
                                  {"Retry-After": "0"})
        if old:
            # Readers that opened the old file keep reading it; the name is gone from now on.
            try:
                os.remove(old["path"])
            except OSError:
                pass
        return self.send_json(200, resource)

    def upload(self, bucket, q):
        st = self.store
        if "upload_id" in q:
            return self.resumable_chunk(bucket, q)
        utype = q.get("uploadType", "")
        name = q.get("name", "")
        with st.lock:
            if bucket not in st.buckets:
                self.read_body_to(open(os.devnull, "wb"))
                return self.send_error_json(404, "The specified bucket does not exist.", "notFound")
        if self.command != "POST":
            return self.send_error_json(405, "Method not allowed", "methodNotAllowed")
        if utype == "media":
            if not name:
                self.read_body_to(open(os.devnull, "wb"))
                return self.send_error_json(400, "Required parameter: name", "required")
            tmp = os.path.join(st.data_dir, "tmp-" + uuid.uuid4().hex)
            h = hashlib.md5()
            with open(tmp, "wb") as f:
                n = self.read_body_to(HashingWriter(f, h))
            return self.commit(bucket, name, tmp, n, h.digest(),
                               self.headers.get("Content-Type") or "application/octet-stream", q)
        if utype == "resumable":
            body = self.read_body_to()
            meta = json.loads(body) if body else {}
            name = name or meta.get("name", "")
            if not name:
                return self.send_error_json(400, "Required parameter: name", "required")
            with st.lock:
                if not self.precondition_ok(bucket, name, q):
                    return self.send_error_json(412, "At least one of the pre-conditions you specified did not "
                                                     "hold.", "conditionNotMet")
                sid = uuid.uuid4().hex
                st.sessions[sid] = {"bucket": bucket, "name": name, "q": dict(q), "received": 0,
                                    "tmp": os.path.join(st.data_dir, "session-" + sid), "md5": hashlib.md5(),
                                    "contentType": self.headers.get("X-Upload-Content-Type")
                                    or meta.get("contentType") or "application/octet-stream",
                                    "lock": threading.Lock()}
                open(st.sessions[sid]["tmp"], "wb").close()
            loc = (f"{self.base_url()}/upload/storage/v1/b/{quote(bucket, safe='')}/o?uploadType=resumable"
                   f"&name={quote(name, safe='')}&upload_id={sid}")
            return self.send_empty(200, {"Location": loc})
        self.read_body_to(open(os.devnull, "wb"))
        return self.send_error_json(400, f"Unsupported uploadType '{utype}' (this fake covers media and resumable)",
                                    "invalid")

    def resumable_chunk(self, bucket, q):
        st = self.store
        sid = q["upload_id"]
        with st.lock:
            s = st.sessions.get(sid)
        if s is None:
            self.read_body_to(open(os.devnull, "wb"))
            return self.send_error_json(404, "No such upload session", "notFound")
        if self.command == "DELETE":
            with st.lock:
                st.sessions.pop(sid, None)
            try:
                os.remove(s["tmp"])
            except OSError:
                pass
            return self.send_empty(499)
        if self.command != "PUT":
            return self.send_error_json(405, "Method not allowed", "methodNotAllowed")
        cr = self.headers.get("Content-Range", "")
        n = int(self.headers.get("Content-Length") or 0)
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", cr)
        m_status = re.fullmatch(r"bytes \*/(\d+|\*)", cr)
        with s["lock"]:
            if m_status:
                self.read_body_to(open(os.devnull, "wb"))
                total = m_status.group(1)
                if total != "*" and int(total) == s["received"]:
                    return self.finish(s, sid)
                return self.incomplete(s)
            if not m:
                self.read_body_to(open(os.devnull, "wb"))
                return self.send_error_json(400, "Bad Content-Range", "invalid")
            first, last, total = int(m.group(1)), int(m.group(2)), m.group(3)
            if last - first + 1 != n:
                self.read_body_to(open(os.devnull, "wb"))
                return self.send_error_json(400, "Content-Range does not match Content-Length", "invalid")
            final = total != "*" and last + 1 == int(total)
            if not final and n % CHUNK_UNIT:
                self.read_body_to(open(os.devnull, "wb"))
                return self.send_error_json(400, "Invalid request. The chunk size must be a multiple of 256 KiB "
                                                 "except for the final chunk.", "invalid")
            if first > s["received"]:
                self.read_body_to(open(os.devnull, "wb"))
                return self.send_error_json(400, "Invalid request: a gap in the upload", "invalid")
            skip = s["received"] - first  # a resent chunk: keep only the part not yet stored
            data_left = n
            with open(s["tmp"], "ab") as f:
                while data_left:
                    b = self.rfile.read(min(data_left, 1 << 20))
                    if not b:
                        break
                    data_left -= len(b)
                    if skip >= len(b):
                        skip -= len(b)
                        continue
                    b = b[skip:]
                    skip = 0
                    f.write(b)
                    s["md5"].update(b)
                    s["received"] += len(b)
            if final:
                return self.finish(s, sid)
            return self.incomplete(s)

    def incomplete(self, s):
        hdr = {"Range": f"bytes=0-{s['received'] - 1}"} if s["received"] else {}
        return self.send_empty(308, hdr)

    def finish(self, s, sid):
        with self.store.lock:
            self.store.sessions.pop(sid, None)
        return self.commit(s["bucket"], s["name"], s["tmp"], s["received"], s["md5"].digest(), s["contentType"],
                           s["q"])


def rs256_verify(n, e, signing_input, sig):
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 section 8.2.2), by modular exponentiation."""
    k = (n.bit_length() + 7) // 8
    if len(sig) != k:
        return False
    em = pow(int.from_bytes(sig, "big"), e, n).to_bytes(k, "big")
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(signing_input).digest()
    return em == b"\x00\x01" + b"\xff" * (k - 3 - len(digest_info)) + b"\x00" + digest_info


class HashingWriter:
    def __init__(self, f, h):
        self.f, self.h = f, h

    def write(self, b):
        self.h.update(b)
        self.f.write(b)


def now_rfc3339():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", required=True)
    a = ap.parse_args()
    os.makedirs(a.data, exist_ok=True)
    Handler.store = Store(a.data)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    print(f"ready {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
