"""A fault-injecting HTTP proxy between nudge's functions and an AWS emulator (moto), driven
by a seed (the sequence of faults is the seed's; which call meets which depends on the order
calls arrive in). For a share of the calls (--share) it does one of, by weight:

  error500     answers 500 with the service's error shape (InternalServerError, ...)
  error503     answers 503 (ServiceUnavailable)
  throttle     answers the service's throttling error: ProvisionedThroughputExceededException
               or ThrottlingException (DynamoDB), ThrottlingException (EventBridge, SQS),
               429 TooManyRequestsException (SES v2)
  timeout      holds the request, answers nothing, and closes after --hold seconds (longer
               than the functions' attempt timeout); half of them first perform the call
  reset        reads the request and resets the connection without performing it
  lost         performs the call, then resets the connection: the write happened and the
               caller thinks it failed (the worst case)
  partial      a batch call partly done: PutEvents with some entries failed (InternalFailure,
               ThrottlingException), BatchGetItem with some keys left in UnprocessedKeys;
               other calls get `lost`

  .venv/bin/python scripts/fault_proxy.py --upstream http://127.0.0.1:5000 [--port 5001]
        [--share 0.15] [--seed 1] [--hold 3]

Services are told apart by `X-Amz-Target` (the JSON protocols: DynamoDB, EventBridge, SQS) or
the path (SES v2). `stats()` counts calls and faults by service operation.
"""

import argparse
import json
import random
import socket
import struct
import threading
import time
import http.client
import urllib.parse
import zlib
from collections import Counter
from socketserver import ThreadingMixIn, TCPServer, StreamRequestHandler

FAULTS = {"error500": 1, "error503": 1, "throttle": 2, "timeout": 1, "reset": 1, "lost": 2, "partial": 1}

# Hop-by-hop headers are the proxy's own business, not forwarded either way.
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "trailer"}


def operation(target, path):
    """(service, operation) of a request."""
    if target:
        prefix, _, op = target.partition(".")
        service = {"DynamoDB_20120810": "dynamodb", "AWSEvents": "events", "AmazonSQS": "sqs"}.get(prefix, prefix)
        return service, op
    if path.startswith("/v2/email/outbound-emails"):
        return "sesv2", "SendEmail"
    if path.startswith("/v2/email"):
        return "sesv2", path.split("?")[0]
    return "other", path.split("?")[0]


def error_answer(service, code, status, message="injected by fault_proxy"):
    """(status, headers, body) of an AWS error in the service's protocol."""
    if service == "sesv2":
        return status, {"Content-Type": "application/json", "x-amzn-ErrorType": code}, \
            json.dumps({"message": message}).encode()
    namespace = {"dynamodb": "com.amazonaws.dynamodb.v20120810#", "events": "", "sqs": "com.amazonaws.sqs#"}.get(service, "")
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}
    if service == "sqs":
        headers["x-amzn-query-error"] = f"{code};Receiver"
    return status, headers, json.dumps({"__type": namespace + code, "message": message}).encode()


def throttling(service, rng):
    if service == "sesv2":
        return error_answer(service, "TooManyRequestsException", 429)
    if service == "dynamodb":
        return error_answer(service, rng.choice(["ProvisionedThroughputExceededException", "ThrottlingException"]), 400)
    return error_answer(service, "ThrottlingException", 400)


class Request:
    def __init__(self, method, path, version, headers, body):
        self.method, self.path, self.version, self.headers, self.body = method, path, version, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


def read_request(rfile):
    """The next request on a connection, or None at its end."""
    line = rfile.readline(65537)
    if not line:
        return None
    method, path, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = []
    while True:
        h = rfile.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))
    req = Request(method, path, version, headers, b"")
    if (req.header("transfer-encoding") or "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(rfile.readline().split(b";")[0], 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += rfile.read(size)
            rfile.readline()
        req.body = bytes(body)
    else:
        req.body = rfile.read(int(req.header("content-length") or 0))
    return req


class FaultProxy(ThreadingMixIn, TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream, share=0.15, seed=1, hold=3.0, faults=None, port=0, routes=None):
        """`upstream` takes every call; `routes` ({service: URL}) sends a service's calls
        elsewhere (DynamoDB on an emulator process of its own)."""
        self.upstream = urllib.parse.urlparse(upstream)
        self.routes = {k: urllib.parse.urlparse(v) for k, v in (routes or {}).items()}
        self.share, self.hold = share, hold
        self.faults = dict(faults or FAULTS)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.calls, self.injected = Counter(), Counter()
        self.enabled = True
        super().__init__(("127.0.0.1", port), Handler)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def draw(self, service):
        """The fault for the next call (None: pass it through) and a generator for its details,
        both from the seeded sequence."""
        with self.lock:
            sub = random.Random(self.rng.getrandbits(64))
            if not self.enabled or service == "other" or self.rng.random() >= self.share:
                return None, sub
            kinds, weights = zip(*self.faults.items())
            return self.rng.choices(kinds, weights)[0], sub

    def count(self, key, fault):
        with self.lock:
            self.calls[key] += 1
            if fault:
                self.injected[(key, fault)] += 1

    def stats(self):
        with self.lock:
            by_fault = Counter()
            for (_, fault), n in self.injected.items():
                by_fault[fault] += n
            return {"calls": sum(self.calls.values()), "faults": sum(by_fault.values()),
                    "by_fault": dict(sorted(by_fault.items())),
                    "by_operation": {k: {"calls": n, "faults": {f: m for (kk, f), m in self.injected.items() if kk == k}}
                                     for k, n in sorted(self.calls.items())}}


class Handler(StreamRequestHandler):
    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    def forward(self, req, body=None, service=None):
        """Performs `req` upstream, on a connection of its own (a kept-alive one closed by the
        emulator would need a resend, which might perform the call twice): (status,
        [(header, value)], body)."""
        proxy = self.server
        to = proxy.routes.get(service or operation(req.header("x-amz-target"), req.path)[0], proxy.upstream)
        upstream = http.client.HTTPConnection(to.hostname, to.port, timeout=120)
        try:
            headers = {k: v for k, v in req.headers if k.lower() not in HOP and k.lower() != "content-length"}
            headers["Connection"] = "close"
            upstream.request(req.method, req.path, body=req.body if body is None else body, headers=headers)
            r = upstream.getresponse()
            return r.status, [(k, v) for k, v in r.getheaders() if k.lower() not in HOP], r.read()
        finally:
            upstream.close()

    def answer(self, status, headers, body):
        items = headers.items() if isinstance(headers, dict) else headers
        lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, 'Status')}"]
        # DynamoDB's checksum of the body, made again for a body rewritten here.
        lines += [f"{k}: {zlib.crc32(body) if k.lower() == 'x-amz-crc32' else v}" for k, v in items
                  if k.lower() != "content-length"]
        lines.append(f"Content-Length: {len(body)}")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    def reset(self):
        """Closes with an RST: the caller reads "connection reset by peer"."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def handle(self):
        proxy = self.server
        while True:
            try:
                req = read_request(self.rfile)
            except (OSError, ValueError):
                return
            if req is None:
                return
            key = ".".join(operation(req.header("x-amz-target"), req.path))
            service = key.split(".")[0]
            fault, rng = proxy.draw(service)
            if fault == "partial" and key not in ("events.PutEvents", "dynamodb.BatchGetItem"):
                fault = "lost"
            proxy.count(key, fault)
            try:
                if fault is None:
                    self.answer(*self.forward(req))
                elif fault == "error500":
                    code = {"dynamodb": "InternalServerError", "events": "InternalException",
                            "sqs": "InternalError", "sesv2": "InternalFailure"}.get(service, "InternalFailure")
                    self.answer(*error_answer(service, code, 500))
                elif fault == "error503":
                    self.answer(*error_answer(service, "ServiceUnavailable", 503))
                elif fault == "throttle":
                    self.answer(*throttling(service, rng))
                elif fault == "timeout":
                    if rng.random() < 0.5:
                        self.forward(req)
                    time.sleep(proxy.hold)
                    self.reset()
                    return
                elif fault == "reset":
                    self.reset()
                    return
                elif fault == "lost":
                    self.forward(req)
                    self.reset()
                    return
                elif key == "events.PutEvents":
                    self.answer(*self.partial_put_events(req, rng))
                else:
                    self.answer(*self.partial_batch_get(req, rng))
            except OSError:
                return

    def partial_put_events(self, req, rng):
        """Some entries fail (not performed), the others are performed: the answer says which."""
        entries = json.loads(req.body)["Entries"]
        failed = [rng.random() < 0.5 for _ in entries]
        if all(not f for f in failed):
            failed[rng.randrange(len(entries))] = True
        kept = [e for e, f in zip(entries, failed) if not f]
        done = iter([])
        status, headers = 200, [("Content-Type", "application/x-amz-json-1.1")]
        if kept:
            status, headers, body = self.forward(req, json.dumps({**json.loads(req.body), "Entries": kept}).encode())
            if status != 200:
                return status, headers, body
            done = iter(json.loads(body)["Entries"])
        out = [{"ErrorCode": rng.choice(["InternalFailure", "ThrottlingException"]),
                "ErrorMessage": "injected by fault_proxy"} if f else next(done) for f in failed]
        return 200, headers, json.dumps({"FailedEntryCount": sum(1 for o in out if "ErrorCode" in o),
                                         "Entries": out}).encode()

    def partial_batch_get(self, req, rng):
        """Some keys are read, the others come back in UnprocessedKeys (as under throttling)."""
        request = json.loads(req.body)
        forwarded, unprocessed = {}, {}
        for table, spec in request["RequestItems"].items():
            keys = spec["Keys"]
            cut = rng.randrange(len(keys)) if len(keys) > 1 else 0
            left = [k for i, k in enumerate(keys) if i != cut and rng.random() < 0.6]
            later = [k for k in keys if k not in left]
            if left:
                forwarded[table] = {**spec, "Keys": left}
            unprocessed[table] = {**spec, "Keys": later}
        responses = {}
        headers = [("Content-Type", "application/x-amz-json-1.0")]
        if forwarded:
            status, headers, body = self.forward(req, json.dumps({**request, "RequestItems": forwarded}).encode())
            if status != 200:
                return status, headers, body
            got = json.loads(body)
            responses = got.get("Responses", {})
            for table, spec in got.get("UnprocessedKeys", {}).items():
                unprocessed.setdefault(table, {**spec, "Keys": []})["Keys"] += spec["Keys"]
        return 200, headers, json.dumps({"Responses": responses, "UnprocessedKeys": unprocessed}).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--share", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hold", type=float, default=3.0)
    args = ap.parse_args()
    proxy = FaultProxy(args.upstream, args.share, args.seed, args.hold, port=args.port)
    print(proxy.url, flush=True)
    try:
        proxy.serve_forever()
    except KeyboardInterrupt:
        print(json.dumps(proxy.stats(), indent=2))


if __name__ == "__main__":
    main()
