#!/usr/bin/env python3
"""A fake of the two AWS credential endpoints the AWS credentials chain reads, standard library only:

  ECS/EKS container endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI): GET /creds -> {AccessKeyId, SecretAccessKey,
      Token, Expiration}; with --token T it requires "Authorization: T" (401 otherwise).
  EC2 instance metadata, IMDSv2: PUT /latest/api/token (needs X-aws-ec2-metadata-token-ttl-seconds) -> token;
      GET /latest/meta-data/iam/security-credentials/ -> role name; GET .../<role> -> {Code, AccessKeyId, ...}.
      Both GETs need "X-aws-ec2-metadata-token: <token>" (401 otherwise), as IMDSv2 does.

Usage: aws_metadata.py --port-file F [--token T]   (listens on a free 127.0.0.1 port and writes it to F)
"""
import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IMDS_TOKEN = "imds-token-123"
ROLE = "ork-test-role"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    container_token = ""

    def log_message(self, *a):
        pass

    def reply(self, status, body, ctype="application/json"):
        b = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def creds(self, prefix):
        return json.dumps({"Code": "Success", "AccessKeyId": prefix + "AKID", "SecretAccessKey": prefix + "SECRET",
                           "Token": prefix + "TOKEN", "Expiration": "2099-01-01T00:00:00Z"})

    def do_PUT(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, IMDS_TOKEN, "text/plain")
        return self.reply(400, "{}")

    def do_GET(self):
        if self.path == "/creds":
            if self.container_token and self.headers.get("Authorization") != self.container_token:
                return self.reply(401, '{"message": "bad token"}')
            return self.reply(200, self.creds("container-"))
        if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return self.reply(401, "")
            role = self.path[len("/latest/meta-data/iam/security-credentials/"):]
            if role == "":
                return self.reply(200, ROLE, "text/plain")
            if role == ROLE:
                return self.reply(200, self.creds("imds-"))
        return self.reply(404, "{}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token", default="")
    a = ap.parse_args()
    Handler.container_token = a.token
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
