#!/usr/bin/env python3
"""A real HTTP(S) receiver for the feed tests: records every request it accepts and answers
like the receiver it plays. Usage:
  http_receiver.py --port-file F --out F [--port N] [--mode ndjson|bulk|hec]
                   [--fail-first N] [--tls-cert C --tls-key K]
--out gets one JSON line per request: {"t": time, "path", "auth", "body"}.
--fail-first N: the first N requests get 503 with Retry-After: 1 (and are not recorded).
bulk: _bulk semantics: create with an _id seen before answers 409 for that item."""
import argparse
import json
import ssl
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--port-file", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--mode", default="ndjson")
ap.add_argument("--fail-first", type=int, default=0)
ap.add_argument("--tls-cert")
ap.add_argument("--tls-key")
args = ap.parse_args()
seen_ids = set()
state = {"failed": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        if state["failed"] < args.fail_first:
            state["failed"] += 1
            with open(args.out + ".refused", "a") as f:
                f.write(json.dumps({"t": time.time()}) + "\n")
            return self.answer(503, b"busy", [("Retry-After", "1")])
        with open(args.out, "a") as f:
            f.write(json.dumps({"t": time.time(), "path": self.path,
                                "auth": self.headers.get("Authorization"), "body": body}) + "\n")
        if args.mode == "bulk":
            lines = body.splitlines()
            items = []
            for action in lines[0::2]:
                _id = json.loads(action)["create"]["_id"]
                items.append({"create": {"_id": _id, "status": 409 if _id in seen_ids else 201}})
                seen_ids.add(_id)
            return self.answer(200, json.dumps({"errors": False, "items": items}).encode())
        if args.mode == "hec":
            return self.answer(200, b'{"text":"Success","code":0}')
        return self.answer(200, b"ok")


srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
srv.allow_reuse_address = True
if args.tls_cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(args.port_file + ".tmp", args.port_file)
srv.serve_forever()
