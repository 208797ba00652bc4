"""Cold starts of the four Lambda functions and a bare lambda_runtime hello-world, against a
local Lambda Runtime API (this script serves it) and a moto server on loopback.

Each cold start is a new process: the clock starts just before it is spawned; `init` ends
when it first asks the Runtime API for an event (GET .../invocation/next: what Lambda reports
as Init Duration), `first event` when it posts the answer to that event. The events are real
ones, chained the way the bus chains them: ingest takes a Segment batch per user and
publishes "Events Accepted" onto a moto bus whose rules route, as the template's do, to SQS
queues; evaluate's runs take those, and schedule-delay's and deliver's runs take the
"Delay Requested" and "Message Requested" that evaluate published. The runs go in rounds (each
binary once, in that order, then again), so that load from elsewhere on a shared machine
falls on every binary alike.

Usage: lambda_cold_start.py --bin-dir DIR --runs N [--moto PATH] [--json OUT] [--ca-bundle PEM]
                            [--rules DIR] [--tls-roots amazon|system]
(DIR holds <name>/bootstrap for nudge-ingest, nudge-evaluate, nudge-schedule-delay,
nudge-deliver and hello_lambda, as `cargo lambda build` lays them out.)
"""

import argparse
import base64
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moto_stack  # noqa: E402  (scripts/moto_stack.py)

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "saas-onboarding"
WRITE_KEY = "wk_bench"
SENDER = "hello@bench.example"
STACK = "nudge-bench"
PREFIX = "/2018-06-01/runtime"
HELLO_CURRENT_THREAD = "hello_lambda (current-thread)"
# Runs whose binary is another's.
BINARIES = {HELLO_CURRENT_THREAD: "hello_lambda"}


# ---------------------------------------------------------------- the Runtime API


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Killed runtimes drop their keep-alive connections: expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class RuntimeApi:
    """Hands one event to one function process and records when it asked and answered."""

    def __init__(self):
        self.server = QuietServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.lock = threading.Condition()
        self.reset(None)

    def reset(self, event):
        with self.lock:
            self.event = event
            self.request_id = str(uuid.uuid4())
            self.asked = None
            self.answered = None
            self.answer = None
            self.error = None
            self.handed_out = False
            self.lock.notify_all()

    def wait_done(self, timeout):
        with self.lock:
            self.lock.wait_for(lambda: self.answered is not None, timeout)
            return self.answered is not None

    def close(self):
        self.server.shutdown()

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def _reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != PREFIX + "/invocation/next":
                    return self._reply(404)
                now = time.perf_counter()
                with api.lock:
                    if api.handed_out:
                        # The one event was handed out: hold the runtime until it is killed
                        # and the next cold start begins, then drop the connection.
                        rid = api.request_id
                        api.lock.wait_for(lambda: api.request_id != rid, 120)
                        self.close_connection = True
                        return
                    api.asked = api.asked or now
                    api.handed_out = True
                    body = json.dumps(api.event).encode()
                    rid = api.request_id
                deadline = int(time.time() * 1000) + 30_000
                self._reply(200, body, [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", rid),
                    ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                    ("Lambda-Runtime-Invoked-Function-Arn",
                     "arn:aws:lambda:us-east-1:123456789012:function:bench"),
                    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                ])

            def do_POST(self):
                now = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with api.lock:
                    if self.path.endswith("/response"):
                        api.answer = body
                    elif self.path.endswith("/error"):
                        api.error = body.decode(errors="replace")
                    api.answered = now
                    api.lock.notify_all()
                self._reply(202, b'{"status":"OK"}', [("Content-Type", "application/json")])

        return Handler


# ---------------------------------------------------------------- moto


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(binary):
    port = free_port()
    log = tempfile.TemporaryFile()
    command = list(binary) if isinstance(binary, (list, tuple)) else [binary]
    proc = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
            return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                log.seek(0)
                sys.exit("moto_server did not start: " + log.read().decode(errors="replace"))
            time.sleep(0.2)


def take(sqs, url, detail_type, about=None):
    """The next bus event of `detail_type` in a queue (others are dropped), about user `about`
    if given: deliver's outcome events of an earlier round (`Email Delivered`) are accepted
    events too."""
    deadline = time.time() + 10
    while time.time() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for m in got.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            event = json.loads(m["Body"])
            if event["detail-type"] == detail_type and (
                    about is None or about in json.dumps(event["detail"])):
                return event
    raise RuntimeError(f"no {detail_type} arrived")


# ---------------------------------------------------------------- events


def daytime_zone():
    """A fixed-offset zone where it is about noon now, so quiet hours never defer the email."""
    hour = datetime.datetime.now(datetime.timezone.utc).hour
    offset = (12 - hour + 12) % 24 - 12
    return "Etc/GMT" + ("-" if offset > 0 else "+") + str(abs(offset)) if offset else "UTC"


def ingest_event(user):
    """An API Gateway HTTP API (payload 2.0) request: a user signs up and finishes onboarding,
    which sends the congratulations email now and waits 7 days for the webinar invite."""
    now = datetime.datetime.now(datetime.timezone.utc)
    context = {"timezone": daytime_zone()}
    batch = {"batch": [
        {"type": "identify", "userId": user, "traits": {"email": f"{user}@bench.example", "name": user},
         "messageId": f"{user}-1", "timestamp": now.isoformat(), "context": context},
        {"type": "track", "userId": user, "event": "Signed Up", "messageId": f"{user}-2",
         "timestamp": now.isoformat(), "context": context},
        {"type": "track", "userId": user, "event": "Onboarding Completed", "messageId": f"{user}-3",
         "timestamp": now.isoformat(), "context": context},
    ]}
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    epoch = int(now.timestamp() * 1000)
    return {
        "version": "2.0", "routeKey": "POST /v1/batch", "rawPath": "/v1/batch", "rawQueryString": "",
        "headers": {"authorization": f"Basic {auth}", "content-type": "application/json",
                    "host": "bench.execute-api.us-east-1.amazonaws.com", "user-agent": "bench"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench", "http": {"method": "POST", "path": "/v1/batch", "protocol": "HTTP/1.1",
                                              "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": str(uuid.uuid4()), "routeKey": "POST /v1/batch", "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": epoch},
        "body": json.dumps(batch), "isBase64Encoded": False,
    }


# ---------------------------------------------------------------- sizes for the cost model


def attribute_bytes(value):
    """DynamoDB's size of one attribute value (numbers: about 1 byte per 2 digits + 1)."""
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return len(v.lstrip("-").replace(".", "")) // 2 + 2
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_bytes(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(attribute_bytes(x) + 1 for x in v)
    return sum(len(str(x)) for x in v)


def item_bytes(item):
    return sum(len(k.encode()) + attribute_bytes(v) for k, v in item.items())


def measured_sizes(endpoint, accepted, requested):
    """Largest item of each kind in the table after the runs, the bytes one accepted event
    takes in an "Events Accepted" detail, and the state item while it holds a send."""
    ddb = moto_stack.client(endpoint, "dynamodb")
    kinds = {}
    for page in ddb.get_paginator("scan").paginate(TableName=STACK):
        for item in page["Items"]:
            sk = item["sk"]["S"]
            kind = "state" if sk == "state" else "timer" if sk == "timer" else sk.split("#")[0]
            kinds[kind] = max(kinds.get(kind, 0), item_bytes(item))
    per_event = [len(json.dumps(e["detail"], separators=(",", ":")).encode()) / len(e["detail"]["events"])
                 for e in accepted]
    # evaluate's state write holds the Message Requested (as JSON in `outbox`) until published.
    outbox = max((len(json.dumps([e["detail"]], separators=(",", ":")).encode()) for e in requested), default=0)
    # The emails deliver sent through SES v2, as moto keeps them.
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=30) as reply:
        emails = json.load(reply).get("ses", {}).get("RawMessage", [])
    return {
        "emails_sent": len(emails),
        "accepted_event_bytes": round(max(per_event)) if per_event else None,
        "state_item_bytes": kinds.get("state"),
        "state_item_outbox_bytes": kinds.get("state", 0) + len("outbox") + outbox if outbox else None,
        "timer_item_bytes": kinds.get("timer"),
        "delivery_item_bytes": kinds.get("dlv"),
        "all_items_max_bytes": kinds,
    }


# ---------------------------------------------------------------- one cold start


def function_env(endpoint, name, ca_bundle, rules=RULES, tls_roots=None):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": endpoint,
        # What template.yaml sets.
        "NUDGE_TABLE": STACK, "NUDGE_BUS": STACK, "NUDGE_RULES": str(rules),
        "NUDGE_TIMER_SHARDS": "16", "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "warn,nudge=info"),
        "NUDGE_WRITE_KEYS": WRITE_KEY, "NUDGE_SIGNING_SECRET": "bench-signing-secret",
        "NUDGE_INBOX_SECRET": "bench-inbox-secret", "NUDGE_ADMIN_KEY": "bench-admin-key",
        "NUDGE_SENDER": SENDER, "NUDGE_PUBLIC_URL": "https://bench.example",
    }
    if tls_roots:
        # The template's TlsRoots parameter: `amazon` (its default, roots built into the
        # functions) or `system` (the machine's store, read at init).
        env["NUDGE_TLS_ROOTS"] = tls_roots
    if ca_bundle:
        # TLS roots from one bundle file, as Amazon Linux keeps them, instead of the
        # machine's certificate directory (on Debian ~300 files the SDK's client reads).
        env["SSL_CERT_FILE"] = str(ca_bundle)
        env["SSL_CERT_DIR"] = tempfile.mkdtemp(prefix="nudge-bench-no-certs-")
    return env


def cold_start(binary, env, event, log):
    """One cold start: (init ms, first-event ms, bytes the function logged, the answer). Each
    gets a Runtime API of its own, so a killed runtime's last request cannot take the next
    one's event."""
    api = RuntimeApi()
    api.reset(event)
    env = {**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}"}
    log.seek(0)
    log.truncate()
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        while not api.wait_done(0.2):
            if proc.poll() is not None or time.time() > deadline:
                break
    finally:
        proc.kill()
        proc.wait()
        api.close()
    log.seek(0)
    logged = log.read()
    if api.answered is None:
        raise RuntimeError(f"{binary}: no answer (exit status {proc.returncode})\n"
                           + logged.decode(errors="replace"))
    if api.error is not None:
        raise RuntimeError(f"{binary}: the event failed: {api.error}\n{logged.decode(errors='replace')}")
    return (api.asked - t0) * 1000, (api.answered - t0) * 1000, len(logged), api.answer


def keep(into, event):
    into.append(event)
    return event


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--moto", default=str(Path(sys.executable).parent / "moto_server"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--rules", type=Path, default=RULES,
                    help="the rule set the functions load (NUDGE_RULES); bench-lambda.sh passes the "
                         "rules layer's copy, compiled as `sam build` compiles it")
    ap.add_argument("--ca-bundle", type=Path,
                    help="trust only this CA bundle (SSL_CERT_FILE; SSL_CERT_DIR empty)")
    ap.add_argument("--tls-roots", choices=["amazon", "system"],
                    help="NUDGE_TLS_ROOTS for the functions (unset: the functions' default, amazon)")
    args = ap.parse_args()

    moto, endpoint = start_moto(args.moto)
    results = {}
    try:
        sqs, queues = moto_stack.set_up(endpoint, STACK, SENDER)
        log = tempfile.TemporaryFile()
        accepted, requested = [], []
        users = [f"bench-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.runs)]
        plan = [
            ("hello_lambda", lambda i: {"name": "bench"}),
            # The same binary on the current-thread runtime the four functions use.
            (HELLO_CURRENT_THREAD, lambda i: {"name": "bench"}),
            ("nudge-ingest", lambda i: ingest_event(users[i])),
            ("nudge-evaluate",
             lambda i: keep(accepted, take(sqs, queues["evaluate"], "Events Accepted", users[i]))),
            ("nudge-schedule-delay", lambda i: take(sqs, queues["schedule-delay"], "Delay Requested")),
            ("nudge-deliver", lambda i: keep(requested, take(sqs, queues["deliver"], "Message Requested"))),
        ]
        envs = {name: function_env(endpoint, name, args.ca_bundle, args.rules, args.tls_roots)
                for name, _ in plan}
        envs[HELLO_CURRENT_THREAD]["HELLO_TOKIO_FLAVOR"] = "current_thread"
        runs = {name: ([], [], []) for name, _ in plan}
        # Rounds: one cold start of each binary in turn, so that a burst of load on a shared
        # machine lands on all of them alike rather than on one binary's block of runs (and
        # each round's events are the ones the round's previous function published).
        for i in range(args.runs):
            for name, make_event in plan:
                binary = args.bin_dir / BINARIES.get(name, name) / "bootstrap"
                init, first, log_bytes, answer = cold_start(binary, envs[name], make_event(i), log)
                if name == "nudge-ingest":
                    answer = json.loads(answer)
                    assert answer.get("statusCode") == 200, answer
                for into, value in zip(runs[name], (init, first, log_bytes)):
                    into.append(value)
        for name, _ in plan:
            inits, firsts, logged = runs[name]
            results[name] = {"init_ms": statistics.median(inits), "first_event_ms": statistics.median(firsts),
                             "log_bytes": statistics.median(logged),
                             "init_runs_ms": inits, "first_event_runs_ms": firsts}
            print(f"{name:22} init {results[name]['init_ms']:7.2f} ms   first event "
                  f"{results[name]['first_event_ms']:7.2f} ms   logged {results[name]['log_bytes']:.0f} B"
                  f"   (medians of {args.runs})", flush=True)
        results["sizes"] = measured_sizes(endpoint, accepted, requested)
        print("sizes (bytes): " + json.dumps(results["sizes"]))
    finally:
        moto.terminate()
        moto.wait(10)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
