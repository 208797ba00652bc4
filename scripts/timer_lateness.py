"""How late timers fire on AWS, measured with the real function binaries on a moto server on
loopback: schedule-delay, evaluate, deliver and ingest run as warm processes under a local
Lambda Runtime API (this script serves one per process), and threads play the parts moto
cannot: EventBridge invoking the functions (the bus rules route to SQS queues, as in
scripts/moto_stack.py), the minute sweeper (a scheduled event every 60 s from a random phase),
and, with the delay queue, Lambda's SQS event source mapping (a long poll of 1 s, batches of up
to 10 handed to schedule-delay, messages it did not report failed deleted).

Timers are set as "Delay Requested" on the bus, spread over --spread seconds, each due one of
--cases seconds after it is set; lateness is what schedule-delay reports for each
(`TimerFiredLateness`, fired time minus due time, in ms, from its EMF lines). The idle nudge:
--idle-users users sign up, view a step 20 s later, and go idle; saas-onboarding's
`pause-nudge` sends an in-app message 2 minutes after the last event, and its lateness is when
deliver finished minus that instant.

  timer_lateness.py [--sweeper-only] [--cases 5,30,120,840] [--per-case 30] [--spread 60]
                    [--idle-users 5] [--horizon 900] [--sweep-every 60] [--bin-dir DIR]
                    [--json OUT]

--sweeper-only runs schedule-delay without the delay queue (as before it existed). DIR holds
the debug or release binaries (default: $CARGO_TARGET_DIR/debug or target/debug).
"""

import argparse
import datetime
import json
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lambda_cold_start as lcs  # noqa: E402  (Runtime API server, moto, the functions' environment)
import moto_stack  # noqa: E402

ROOT = lcs.ROOT
PREFIX = lcs.PREFIX


class WarmFunction:
    """One function process kept warm under a Runtime API of its own: `invoke` hands it one
    event and waits for the answer, one at a time, as one Lambda execution environment."""

    def __init__(self, binary, env, on_line):
        self.events = queue.Queue()
        self.answers = {}
        self.done = threading.Condition()
        self.lock = threading.Lock()
        self.server = lcs.QuietServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env = {**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.server.server_address[1]}"}
        self.proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, args=(on_line,), daemon=True).start()

    def _read(self, on_line):
        for line in self.proc.stdout:
            on_line(line)

    def invoke(self, event, timeout=60):
        with self.lock:
            rid = str(uuid.uuid4())
            self.events.put((rid, event))
            with self.done:
                if not self.done.wait_for(lambda: rid in self.answers, timeout):
                    raise RuntimeError("no answer within %ss" % timeout)
                ok, body = self.answers.pop(rid)
            if not ok:
                raise RuntimeError(f"the function failed: {body}")
            return json.loads(body) if body else None

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.server.shutdown()

    def _handler(self):
        fn = self

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
                rid, event = fn.events.get()
                self._reply(200, json.dumps(event).encode(), [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", rid),
                    ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000)),
                    ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:lateness"),
                ])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                rid = self.path[len(PREFIX + "/invocation/"):].split("/")[0]
                with fn.done:
                    fn.answers[rid] = (self.path.endswith("/response"), body)
                    fn.done.notify_all()
                self._reply(202, b'{"status":"OK"}', [("Content-Type", "application/json")])

        return Handler


def percentile(values, p):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))]


def summary(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(percentile(values, 50)), "p99_ms": round(percentile(values, 99)),
            "max_ms": round(max(values)), "mean_ms": round(statistics.mean(values))}


def batch_request(user, events):
    """An API Gateway request to ingest carrying one Segment batch of `user`'s events now."""
    request = lcs.ingest_event(user)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    context = {"timezone": lcs.daytime_zone()}
    request["body"] = json.dumps({"batch": [
        {**e, "userId": user, "messageId": str(uuid.uuid4()), "timestamp": now, "context": context}
        for e in events]})
    return request


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeper-only", action="store_true")
    ap.add_argument("--cases", default="5,30,120,840", help="seconds from set to due, comma-separated")
    ap.add_argument("--per-case", type=int, default=30)
    ap.add_argument("--spread", type=float, default=60, help="seconds over which each case's timers are set")
    ap.add_argument("--idle-users", type=int, default=5)
    ap.add_argument("--horizon", type=int, default=900, help="NUDGE_TIMER_HORIZON (seconds)")
    ap.add_argument("--sweep-every", type=float, default=60,
                    help="seconds between sweeps (the template's rule: 60; shorter with a short horizon)")
    ap.add_argument("--bin-dir", type=Path,
                    default=Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug")
    ap.add_argument("--moto", default=str(Path(sys.executable).parent / "moto_server"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cases = [float(c) for c in args.cases.split(",") if c]
    # A terminated run still stops moto and the functions (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    moto, endpoint = lcs.start_moto(args.moto)
    stack = f"lateness-{uuid.uuid4().hex[:6]}"
    fired_ms = {}          # path -> [lateness ms] from schedule-delay's EMF lines
    fired_at = {}          # (user, due) -> times "Timer Fired" reached evaluate's queue
    idle_due, idle_done = {}, {}
    poll_delay_ms = []    # the harness's own: a wake-up visible until the mapping received it
    errors = []
    lock = threading.Lock()
    stop = threading.Event()

    def on_line(line):
        try:
            record = json.loads(line)
        except ValueError:
            return
        if "TimerFiredLateness" in record:
            with lock:
                fired_ms.setdefault(record.get("Path", "?"), []).append(record["TimerFiredLateness"])
        elif record.get("level") == "ERROR":
            with lock:
                errors.append(line.strip())

    functions = []
    try:
        sqs, queues = moto_stack.set_up(endpoint, stack, lcs.SENDER)
        env = {name: lcs.function_env(endpoint, name, None) for name in
               ("nudge-ingest", "nudge-evaluate", "nudge-schedule-delay", "nudge-deliver")}
        for e in env.values():
            e.update(NUDGE_TABLE=stack, NUDGE_BUS=stack)
        timer_queue = None
        if not args.sweeper_only:
            timer_queue = sqs.create_queue(QueueName=f"{stack}-timers")["QueueUrl"]
            env["nudge-schedule-delay"].update(NUDGE_TIMER_QUEUE=timer_queue,
                                               NUDGE_TIMER_HORIZON=str(args.horizon))

        def start(name):
            f = WarmFunction(args.bin_dir / name, env[name], on_line)
            functions.append(f)
            return f

        ingest, evaluate, deliver = start("nudge-ingest"), start("nudge-evaluate"), start("nudge-deliver")
        # schedule-delay in three environments, as Lambda runs them side by side: bus events,
        # sweeps, and the queue's batches.
        sched_bus, sched_sweep, sched_queue = (start("nudge-schedule-delay") for _ in range(3))

        def route(url, fn, name):
            """EventBridge: each event a rule routed to `url` invokes `fn`."""
            while not stop.is_set():
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                for m in got.get("Messages", []):
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                    event = json.loads(m["Body"])
                    now = time.time()
                    if event["detail-type"] in ("Timer Fired", "Timers Fired"):
                        detail = event["detail"]
                        for t in detail.get("timers", [detail]):
                            with lock:
                                fired_at.setdefault((t["user_id"], t["due"]), []).append(now)
                    fn.invoke(event)
                    send = event["detail"].get("send", {}) if name == "deliver" else {}
                    if send.get("trigger") == "pause-nudge":
                        with lock:
                            idle_done.setdefault(send["user_id"], time.time())

        def sweeper():
            stop.wait(random.uniform(0, args.sweep_every))
            while not stop.is_set():
                sched_sweep.invoke({
                    "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                    "source": "aws.events", "account": "123456789012",
                    "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": "us-east-1", "resources": [], "detail": {}})
                stop.wait(args.sweep_every)

        def mapping():
            """Lambda's SQS event source mapping on the delay queue."""
            arn = sqs.get_queue_attributes(QueueUrl=timer_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            while not stop.is_set():
                got = sqs.receive_message(QueueUrl=timer_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                          VisibilityTimeout=120, AttributeNames=["All"])
                messages = got.get("Messages", [])
                if not messages:
                    continue
                received = time.time() * 1000
                for m in messages:
                    # Visible at its send time plus the delay schedule-delay gave it (whole
                    # seconds up to the due time it carries), within a few ms.
                    sent = int(m["Attributes"]["SentTimestamp"])
                    due = json.loads(m["Body"])["due"]
                    visible = sent + 1000 * max(0, -(-(due - sent) // 1000))
                    with lock:
                        poll_delay_ms.append(max(0.0, received - visible))
                records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                            "attributes": m.get("Attributes", {}), "messageAttributes": {},
                            "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": arn,
                            "awsRegion": "us-east-1"} for m in messages]
                answer = sched_queue.invoke({"Records": records}) or {}
                failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
                for m in messages:
                    if m["MessageId"] not in failed:
                        sqs.delete_message(QueueUrl=timer_queue, ReceiptHandle=m["ReceiptHandle"])

        threads = [threading.Thread(target=route, args=(queues["evaluate"], evaluate, "evaluate"), daemon=True),
                   threading.Thread(target=route, args=(queues["schedule-delay"], sched_bus, "schedule-delay"), daemon=True),
                   threading.Thread(target=route, args=(queues["deliver"], deliver, "deliver"), daemon=True),
                   threading.Thread(target=sweeper, daemon=True)]
        if timer_queue:
            threads.append(threading.Thread(target=mapping, daemon=True))
        for t in threads:
            t.start()

        # What to do when: set timers (spread), and the idle users' two batches.
        bus = moto_stack.client(endpoint, "events")
        t0 = time.time() + 2
        plan = []
        for c in cases:
            for i in range(args.per_case):
                plan.append((t0 + args.spread * (i + random.random()) / args.per_case, "timer", c))
        for i in range(args.idle_users):
            at = t0 + args.spread * i / max(args.idle_users, 1)
            plan.append((at, "signup", f"idle-{i}-{uuid.uuid4().hex[:4]}"))
        plan.sort(key=lambda p: p[0])
        expected = {}
        for n, (at, kind, what) in enumerate(plan):
            time.sleep(max(0.0, at - time.time()))
            if kind == "timer":
                user = f"t{int(what)}-{n}"
                due = int(time.time() * 1000 + what * 1000)
                expected[(user, due)] = what
                detail = {"type": "Delay Requested", "user_id": user, "due": due, "version": 1}
                bus.put_events(Entries=[{"Source": "nudge", "DetailType": "Delay Requested",
                                         "Detail": json.dumps(detail), "EventBusName": stack}])
            else:
                user = what
                ingest.invoke(batch_request(user, [
                    {"type": "identify", "traits": {"email": f"{user}@bench.example", "name": user}},
                    {"type": "track", "event": "Signed Up"}]))

                def later(user=user):
                    stop.wait(20)
                    ingest.invoke(batch_request(user, [{"type": "track", "event": "Onboarding Step Viewed",
                                                        "properties": {"step": "account", "step_index": 1}}]))
                    with lock:
                        idle_due[user] = time.time() + 120
                threading.Thread(target=later, daemon=True).start()

        # Wait until every timer fired and every idle user got the nudge (or a sweep past).
        deadline = time.time() + max(cases) + args.spread + 2 * args.sweep_every + 30
        while time.time() < deadline:
            with lock:
                done = all(k in fired_at for k in expected) and len(idle_done) >= args.idle_users
            if done:
                break
            time.sleep(1)
        time.sleep(3)  # stragglers: a second firing would show here
        stop.set()

        by_case = {}
        for (user, due), case in expected.items():
            arrivals = fired_at.get((user, due), [])
            by_case.setdefault(case, {"arrivals": [], "missing": 0, "twice": 0})
            if not arrivals:
                by_case[case]["missing"] += 1
            else:
                by_case[case]["arrivals"].append(arrivals[0] * 1000 - due)
                by_case[case]["twice"] += len(arrivals) > 1
        idle = [(idle_done[u] - idle_due[u]) * 1000 for u in idle_due if u in idle_done]
        results = {
            "mode": "sweeper only" if args.sweeper_only else f"delay queue, horizon {args.horizon} s",
            "fired_by_path_ms": {p: summary(v) for p, v in fired_ms.items()},
            "fired_all_ms": summary([x for v in fired_ms.values() for x in v]),
            "timer_fired_on_bus_ms": {f"{int(c)} s": {**summary(v["arrivals"]), "missing": v["missing"],
                                                      "fired_twice": v["twice"]}
                                      for c, v in sorted(by_case.items())},
            "idle_nudge_ms": {**summary(idle), "missing": args.idle_users - len(idle)},
            "harness_queue_poll_delay_ms": summary(poll_delay_ms),
            "errors_logged": errors[:5],
        }
        print(json.dumps(results, indent=2))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        stop.set()
        for f in functions:
            f.close()
        moto.terminate()
        moto.wait(10)


if __name__ == "__main__":
    main()
