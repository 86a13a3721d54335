#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of moto_server, for the SQS worker's soak test.

usage: fault_proxy.py --upstream http://127.0.0.1:PORT [--rate 0.08] [--seed 1]
                      [--ops ReceiveMessage,DeleteMessageBatch,SendMessageBatch]
                      [--refuse-containing TEXT]

Prints the port it listens on (127.0.0.1) as its first line, then serves until killed. Each
request to one of the --ops (AWS JSON protocol: the X-Amz-Target header) meets a fault with
probability --rate, one of:

- throttle: HTTP 400 ThrottlingException, not forwarded;
- unavailable: HTTP 503 ServiceUnavailable, not forwarded;
- drop-before: the connection is closed without a response, not forwarded;
- drop-after: forwarded (moto acts on it), then the connection is closed without a response;
- partial (batch operations only): some entries are taken out of the request and reported
  back as failed (InternalError, not the sender's fault), the rest forwarded.

With --refuse-containing TEXT, every entry of a SendMessageBatch whose MessageBody contains
TEXT is taken out of the request and reported back as failed (InternalError, not the sender's
fault), every time, the rest forwarded: a deterministic refusal for the tests of ordering.

Other requests are forwarded untouched. On exit (SIGTERM) it prints the faults it injected to
stderr. Standard library only.
"""
import argparse
import http.client
import http.server
import json
import random
import signal
import sys
import threading
import urllib.parse

FAULTS = ["throttle", "unavailable", "drop-before", "drop-after", "partial"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--rate", type=float, default=0.08)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ops", default="ReceiveMessage,DeleteMessageBatch,SendMessageBatch")
    p.add_argument("--refuse-containing", default=None)
    a = p.parse_args()
    upstream = urllib.parse.urlparse(a.upstream)
    ops = set(a.ops.split(","))
    rng = random.Random(a.seed)
    lock = threading.Lock()
    counts = {}

    def pick(op):
        with lock:
            if op not in ops or rng.random() >= a.rate:
                return None
            choices = FAULTS if op.endswith("Batch") else FAULTS[:4]
            fault = rng.choice(choices)
            counts[f"{op}:{fault}"] = counts.get(f"{op}:{fault}", 0) + 1
            return fault

    def take_some(entries):
        with lock:
            n = rng.randint(1, len(entries))
            return set(rng.sample(range(len(entries)), n))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            target = self.headers.get("X-Amz-Target", "")
            op = target.rsplit(".", 1)[-1]
            fault = pick(op)
            if fault == "throttle":
                return self.reply(400, {"__type": "com.amazonaws.sqs#ThrottlingException",
                                        "message": "Rate exceeded (injected)"})
            if fault == "unavailable":
                return self.reply(503, {"__type": "com.amazonaws.sqs#ServiceUnavailable",
                                        "message": "Service unavailable (injected)"})
            if fault == "drop-before":
                self.close_connection = True
                return
            taken = []
            if a.refuse_containing and op == "SendMessageBatch":
                request = json.loads(body)
                entries = request.get("Entries") or []
                refused = [e for e in entries if a.refuse_containing in e.get("MessageBody", "")]
                if refused:
                    with lock:
                        counts["SendMessageBatch:refused"] = counts.get("SendMessageBatch:refused", 0) + len(refused)
                    taken = refused
                    request["Entries"] = [e for e in entries if e not in refused]
                    body = json.dumps(request).encode()
                    fault = "partial"
            if fault == "partial" and not taken:
                request = json.loads(body)
                entries = request.get("Entries") or []
                if entries:
                    out = take_some(entries)
                    taken = [e for i, e in enumerate(entries) if i in out]
                    request["Entries"] = [e for i, e in enumerate(entries) if i not in out]
                    body = json.dumps(request).encode()
            if fault == "partial" and not json.loads(body).get("Entries"):
                status, response, headers = 200, {"Successful": [], "Failed": []}, {}
            else:
                status, raw, headers = self.forward(body)
                if fault == "drop-after":
                    self.close_connection = True
                    return
                if not taken:
                    return self.send_raw(status, raw, headers)
                response = json.loads(raw)
            response.setdefault("Failed", [])
            response["Failed"].extend(
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError",
                 "Message": "injected"} for e in taken)
            self.reply(status, response)

        def forward(self, body):
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            headers["Content-Length"] = str(len(body))
            conn.request("POST", self.path, body=body, headers=headers)
            r = conn.getresponse()
            raw = r.read()
            out = [(k, v) for k, v in r.getheaders()
                   if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date")]
            conn.close()
            return r.status, raw, out

        def reply(self, status, obj):
            self.send_raw(status, json.dumps(obj).encode(),
                          [("Content-Type", "application/x-amz-json-1.0")])

        def send_raw(self, status, raw, headers):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            # A client that gave up on a call (a timeout, a worker shutting down) is not news.
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    def stop(*_):
        print(json.dumps(counts, sort_keys=True), file=sys.stderr, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        stop()


if __name__ == "__main__":
    main()
