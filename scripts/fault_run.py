"""Faults at every hop of the AWS path: the four function binaries on a moto server on
loopback, behind a fault-injecting proxy (scripts/fault_proxy.py), driven as Lambda drives
them, then every decision counted.

Each user sends 10 events in 3 batches through ingest (API Gateway, the client retrying as
SDKs do until the batch is acknowledged): identify, Signed Up, 2 Tip Wanted, 4 Feature Used,
Plan Chosen, Remind Me, and for a third of them Reminder Cancelled in the same batch. On
tests/fault-rules that is known decisions per user: a welcome mail, 2 inbox items, a signed
webhook, and a reminder mail 3 s later unless cancelled (a timer: set, queued, swept, or
expired through the stream).

What plays Lambda and EventBridge (moto cannot invoke functions; times are compressed):
- bus events reach their function through the template's rules (routed to SQS queues, read
  here): a share of hand-overs is refused as Lambda throttling and retried by the rule's
  retry policy, a share is delivered twice (at least once);
- asynchronous invokes: a failed invocation (an error, a crash, the function's timeout) is
  retried twice (after 1 s and 2 s, for Lambda's 1 and 2 minutes), then its invocation
  record goes to the function's DLQ;
- the delay queue: batches of up to 10, failed items left for the visibility timeout (5 s
  here), the queue's redrive policy (5 receives) moving them to its DLQ;
- DynamoDB TTL and the stream: a share of timers past due is deleted as TTL does and the
  REMOVE record handed to schedule-delay in stream batches (reported failures retried from
  the first failed record, a failed invocation bisected, 10 retries, then the DLQ);
- the sweeper every --sweep-every seconds (5; a minute on AWS).
Every function's AWS calls go through the proxy; the harness's own calls do not (they are
AWS's side). When the load is done, every DLQ is redriven (scripts/redrive.py's reading of
its messages) until empty, and the counting starts.

  fault_run.py [--users 10000] [--share 0.15] [--seed 1] [--clients 4] [--bin-dir DIR]
               [--json OUT]

Counted per decision id: decisions expected and found in the delivery log (lost, extra), mails
taken by SES (moto) per decision, inbox items, webhooks received per `Nudge-Webhook-Id`, what
went to each DLQ and what the redrive completed. Exits 1 when anything is lost or doubled.
"""

import argparse
import datetime
import faulthandler
import heapq
import json
import os
import queue
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fault_count  # noqa: E402
import lambda_cold_start as lcs  # noqa: E402  (moto, the functions' environment)
import moto_stack  # noqa: E402
import redrive  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from lambda_emulation import Function, Scheduler, Work  # noqa: E402

ROOT = lcs.ROOT
RULES = ROOT / "tests" / "fault-rules"
FUNCTIONS = ("nudge-ingest", "nudge-evaluate", "nudge-schedule-delay", "nudge-deliver")
ASYNC_RETRY_DELAYS = (1.0, 2.0)      # Lambda's async retries: about 1 and 2 minutes
EVENTBRIDGE_RETRY_DELAY = 0.5       # the rule's retry policy: backs off from about a second
QUEUE_VISIBILITY = 5                # the delay queue's visibility timeout (120 s on AWS)
STREAM_RETRIES = 10                 # the stream mapping's MaximumRetryAttempts
REMINDER_WAIT_MS = 3000


def user_script(user, rng, now_iso, context):
    """A user's 3 batches and the decisions they must yield: {trigger: count}."""
    cancels = rng.random() < 1 / 3

    def track(event, **props):
        return {"type": "track", "event": event, **({"properties": props} if props else {})}

    batches = [
        [{"type": "identify", "traits": {"email": f"{user}@faults.example", "name": user}},
         track("Signed Up"), track("Tip Wanted")],
        [track("Feature Used", n=1), track("Feature Used", n=2), track("Tip Wanted"),
         track("Feature Used", n=3), track("Plan Chosen", plan=rng.choice(["team", "pro"]))],
        [track("Remind Me"), track("Reminder Cancelled") if cancels else track("Feature Used", n=4)],
    ]
    for b in batches:
        for e in b:
            e.update(userId=user, messageId=str(uuid.uuid4()), timestamp=now_iso(), context=context)
    expected = {"welcome": 1, "tip": 2, "plan-hook": 1, "reminder": 0 if cancels else 1}
    return batches, expected


def api_request(batch):
    request = lcs.ingest_event("x")
    request["body"] = json.dumps({"batch": batch})
    request["requestContext"]["requestId"] = str(uuid.uuid4())
    return request


class WebhookReceiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = Counter()
    lock = threading.Lock()

    def log_message(self, *_):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.lock:
            WebhookReceiver.received[self.headers.get("Nudge-Webhook-Id")] += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--share", type=float, default=0.15, help="share of the functions' AWS calls faulted")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clients", type=int, default=6, help="users sending at once")
    ap.add_argument("--environments", type=int, default=12, help="execution environments of evaluate and of deliver")
    ap.add_argument("--invoke-throttle", type=float, default=0.02, help="share of hand-overs refused as throttling")
    ap.add_argument("--duplicates", type=float, default=0.02, help="share of bus events delivered twice")
    ap.add_argument("--ttl-share", type=float, default=0.3, help="share of due timers deleted by TTL first")
    ap.add_argument("--sweep-every", type=float, default=5.0,
                    help="seconds between sweeps (moto reads its whole table for each of a sweep's queries: "
                         "longer in big runs)")
    ap.add_argument("--attempt-timeout-ms", type=int, default=2000, help="the functions' AWS call attempt timeout")
    ap.add_argument("--bin-dir", type=Path,
                    default=Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug")
    ap.add_argument("--moto", default=None, help="a moto server command (default: scripts/moto_serve.py)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    faulthandler.register(signal.SIGUSR1)  # kill -USR1: where every thread is
    rng = random.Random(args.seed)
    started = time.time()

    # Two emulator processes, one a core: DynamoDB alone, and the bus with its queues and SES
    # (the bus's rules deliver to the queues inside one server). moto holds the GIL for each
    # call, so one process would be the run's bottleneck.
    command = args.moto or [sys.executable, str(Path(__file__).resolve().parent / "moto_serve.py")]
    moto, endpoint = lcs.start_moto(command)
    moto_ddb, ddb_endpoint = lcs.start_moto(command)
    proxy = FaultProxy(endpoint, routes={"dynamodb": ddb_endpoint}, share=args.share, seed=args.seed,
                       hold=args.attempt_timeout_ms / 1000 + 1).start()
    hooks = lcs.QuietServer(("127.0.0.1", 0), WebhookReceiver)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    rules = Path(tempfile.mkdtemp(prefix="nudge-fault-rules-"))
    (rules / "nudge.yaml").write_text((RULES / "nudge.yaml").read_text().replace(
        "WEBHOOK_URL", f"http://127.0.0.1:{hooks.server_address[1]}/hook"))

    stack = f"faults-{uuid.uuid4().hex[:6]}"
    stats = Counter()
    errors = []                 # ERROR lines of the functions (expected under faults)
    problems = []               # what must not happen at all: panics, valid batches refused
    trail = defaultdict(list)   # decision id -> what the functions logged about it
    identified_at = {}               # user -> when evaluate first took their identify
    deliveries = defaultdict(list)   # decision id -> deliver's invocations (start, end, ok, answer)
    lock = threading.Lock()
    stop = threading.Event()
    work = Work()
    scheduler = Scheduler()
    functions = []

    def on_line(line):
        try:
            record = json.loads(line)
        except ValueError:
            if "panicked" in line:
                with lock:
                    problems.append(line.strip())
            return
        decision = record.get("decision_id") or next(
            (sp.get("decision_id") for sp in record.get("spans", []) if sp.get("decision_id")), None)
        if decision:
            with lock:
                if len(trail[decision]) < 12:
                    trail[decision].append(f"{record.get('level')} {record.get('message')} {record.get('error', '')}"[:300])
        if record.get("level") == "ERROR":
            with lock:
                errors.append(line.strip()[:400])

    try:
        # No stream on moto's table: the run plays the stream itself (below), and moto would
        # keep a record of every write.
        sqs, queues = moto_stack.set_up(endpoint, stack, lcs.SENDER, stream=False, dynamodb=ddb_endpoint)
        ddb = moto_stack.client(ddb_endpoint, "dynamodb")
        dlqs = {fn: sqs.create_queue(QueueName=f"{stack}-{fn}-dlq")["QueueUrl"]
                for fn in ("evaluate", "schedule-delay", "deliver", "timers", "stream")}
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlqs["timers"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        timer_queue = sqs.create_queue(QueueName=f"{stack}-timers", Attributes={
            "VisibilityTimeout": str(QUEUE_VISIBILITY),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})})["QueueUrl"]
        env = {}
        for name in FUNCTIONS:
            env[name] = lcs.function_env(proxy.url, name, None, rules=rules)
            env[name].update(NUDGE_TABLE=stack, NUDGE_BUS=stack, RUST_LOG="warn,nudge=warn",
                             NUDGE_AWS_ATTEMPT_TIMEOUT_MS=str(args.attempt_timeout_ms))
        env["nudge-schedule-delay"].update(NUDGE_TIMER_QUEUE=timer_queue, NUDGE_TIMER_HORIZON="900")

        def function(name, size, timeout):
            f = Function(args.bin_dir / name, env[name], size, timeout, on_line, stats)
            functions.append(f)
            return f

        # The templates' timeouts: ingest 10 s, evaluate 30 s, schedule-delay and deliver 60 s.
        # Most of an invocation's time under faults is the SDK's backoff: many environments
        # at once, as Lambda runs them, keep the two cores busy.
        width = args.environments
        ingest = function("nudge-ingest", args.clients, 10)
        evaluate = function("nudge-evaluate", width, 30)
        deliver = function("nudge-deliver", width, 60)
        sched_bus = function("nudge-schedule-delay", max(1, width // 2), 60)
        sched_sweep = function("nudge-schedule-delay", 1, 60)
        sched_queue = function("nudge-schedule-delay", 1, 60)
        sched_stream = function("nudge-schedule-delay", 1, 60)
        pools = {f: ThreadPoolExecutor(len(f.all)) for f in (evaluate, deliver, sched_bus)}
        dlq_of = {evaluate: "evaluate", deliver: "deliver", sched_bus: "schedule-delay"}
        parked = Counter()

        def run(fn, event, attempt=0):
            """One asynchronous invocation, with Lambda's retries, then the DLQ."""
            with work:
                t0 = time.time() - started
                ok, answer = fn.invoke(event)
                send = event.get("detail", {}).get("send") if isinstance(event, dict) else None
                if ok and event.get("detail-type") == "Events Accepted":
                    # When each user's identify was first evaluated: a mail decided before it
                    # (the batches of one user reach evaluate out of order under retries) has
                    # no address yet.
                    for e in event.get("detail", {}).get("events", []):
                        m = json.loads(e["message"]) if isinstance(e.get("message"), str) else e.get("message")
                        if isinstance(m, dict) and m.get("type") == "identify":
                            with lock:
                                identified_at.setdefault(e.get("user_id"), t0)
                if send:
                    with lock:
                        deliveries[format(send["id"], "016x") if isinstance(send["id"], int) else str(send["id"])].append(
                            (round(t0, 2), round(time.time() - started, 2), ok, str(answer)[:160]))
                if ok:
                    return
                if attempt < len(ASYNC_RETRY_DELAYS):
                    stats["async retries"] += 1
                    work.__enter__()

                    def again():
                        work.__exit__()
                        pools[fn].submit(run, fn, event, attempt + 1)
                    scheduler.after(ASYNC_RETRY_DELAYS[attempt], again)
                    return
                record = {"version": "1.0", "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                          "requestContext": {"requestId": str(uuid.uuid4()), "condition": "RetriesExhausted",
                                             "approximateInvokeCount": attempt + 1,
                                             "functionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{fn.name}"},
                          "requestPayload": event,
                          "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                                              "functionError": "Unhandled"},
                          "responsePayload": {"errorMessage": str(answer)[:1000]}}
                sqs.send_message(QueueUrl=dlqs[dlq_of[fn]], MessageBody=json.dumps(record))
                with lock:
                    parked[dlq_of[fn]] += 1

        def hand_over(fn, event, tries=0):
            """EventBridge handing an event to Lambda: throttled hand-overs are retried."""
            if rng.random() < args.invoke_throttle:
                stats["hand-overs throttled"] += 1
                work.__enter__()

                def again():
                    work.__exit__()
                    hand_over(fn, event, tries + 1)
                scheduler.after(EVENTBRIDGE_RETRY_DELAY * (tries + 1), again)
                return
            copies = 2 if rng.random() < args.duplicates else 1
            stats["events delivered twice"] += copies - 1
            for _ in range(copies):
                work.__enter__()

                def go():
                    try:
                        run(fn, event)
                    finally:
                        work.__exit__()
                pools[fn].submit(go)

        def route(url, fn):
            while not stop.is_set():
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                messages = got.get("Messages", [])
                if messages:
                    sqs.delete_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
                for m in messages:
                    with work:
                        event = json.loads(m["Body"])
                        with lock:
                            stats[f"bus: {event.get('detail-type')}"] += 1
                        note_timers(event)
                        hand_over(fn, event)

        def sweeper():
            while not stop.wait(args.sweep_every):
                event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                         "source": "aws.events", "account": "123456789012",
                         "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "region": "us-east-1", "resources": [], "detail": {}}
                # The sweep rule's policy: 2 retries within a minute; the next sweep does the rest.
                for _ in range(3):
                    if sched_sweep.invoke(event)[0]:
                        break

        def mapping():
            arn = sqs.get_queue_attributes(QueueUrl=timer_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            while not stop.is_set():
                got = sqs.receive_message(QueueUrl=timer_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                          AttributeNames=["All"])
                messages = got.get("Messages", [])
                if not messages:
                    continue
                with work:
                    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                                "attributes": m.get("Attributes", {}), "messageAttributes": {},
                                "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": arn,
                                "awsRegion": "us-east-1"} for m in messages]
                    ok, answer = sched_queue.invoke({"Records": records})
                    if not ok:
                        continue  # all come back after the visibility timeout
                    failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
                    stats["queue items reported failed"] += len(failed)
                    for m in messages:
                        if m["MessageId"] not in failed:
                            sqs.delete_message(QueueUrl=timer_queue, ReceiptHandle=m["ReceiptHandle"])

        stream_log = {}       # sequence number -> record, what the stream keeps for a day
        seen_timers = set()
        sequence = [0]

        def stream_batch(records, tries=0):
            """Hands a batch to schedule-delay as the stream mapping does; returns records that
            exhausted their retries."""
            ok, answer = sched_stream.invoke({"Records": records})
            if ok:
                failed = [f.get("itemIdentifier") for f in (answer or {}).get("batchItemFailures", [])]
                if not failed:
                    return []
                stats["stream items reported failed"] += len(failed)
                first = min(i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] in failed)
                rest = records[first:]
            else:
                rest = records
            if tries >= STREAM_RETRIES:
                return rest
            time.sleep(0.2)
            if not ok and len(rest) > 1:   # BisectBatchOnFunctionError
                half = len(rest) // 2
                return stream_batch(rest[:half], tries + 1) + stream_batch(rest[half:], tries + 1)
            return stream_batch(rest, tries + 1)

        timers_set = []       # (due ms, user, version) of every timer set, from the bus

        def note_timers(event):
            detail = event.get("detail", {})
            kind = event.get("detail-type")
            sets = [detail] if kind == "Delay Requested" else detail.get("set", []) if kind == "Timers Changed" else []
            with lock:
                for t in sets:
                    heapq.heappush(timers_set, (t["due"], t["user_id"], t["version"]))

        def ttl():
            """DynamoDB TTL deleting a share of the timers past due before anything fired them
            (as it may: TTL deletes an item any time after its `ttl`), and the stream handing
            the deletions to schedule-delay. Timers are known from the bus events that set
            them, so no scan of the table is needed."""
            stream_arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{stack}/stream/2026-01-01T00:00:00.000"
            while not stop.wait(1.0):
                batch = []
                cutoff = int(time.time() * 1000) - 500
                due_now = []
                with lock:
                    while timers_set and timers_set[0][0] <= cutoff:
                        due_now.append(heapq.heappop(timers_set))
                for due, user, version in due_now:
                    if (user, due, version) in seen_timers or rng.random() >= args.ttl_share:
                        continue
                    seen_timers.add((user, due, version))
                    try:
                        old = ddb.delete_item(TableName=stack, Key={"pk": {"S": f"u#{user}"}, "sk": {"S": "timer"}},
                                              ConditionExpression="#due = :due AND #v = :v",
                                              ExpressionAttributeNames={"#due": "due", "#v": "version"},
                                              ExpressionAttributeValues={":due": {"N": str(due)},
                                                                         ":v": {"N": str(version)}},
                                              ReturnValues="ALL_OLD")["Attributes"]
                    except ddb.exceptions.ConditionalCheckFailedException:
                        continue  # fired, moved or cancelled already, or not yet set
                    sequence[0] += 1
                    seq = f"{sequence[0]:021d}"
                    record = {"eventID": uuid.uuid4().hex, "eventName": "REMOVE", "eventVersion": "1.1",
                              "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                              "dynamodb": {"ApproximateCreationDateTime": int(time.time()),
                                           "Keys": {"pk": old["pk"], "sk": old["sk"]}, "OldImage": old,
                                           "SequenceNumber": seq, "SizeBytes": 200,
                                           "StreamViewType": "OLD_IMAGE"},
                              "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
                              "eventSourceARN": stream_arn}
                    stream_log[seq] = record
                    batch.append(record)
                    stats["timers expired through the stream"] += 1
                for i in range(0, len(batch), 100):
                    with work:
                        left = stream_batch(batch[i:i + 100])
                        if left:
                            info = {"requestContext": {"condition": "RetryAttemptsExhausted",
                                                       "approximateInvokeCount": STREAM_RETRIES + 1},
                                    "DDBStreamBatchInfo": {"shardId": "shard-0", "batchSize": len(left),
                                                           "startSequenceNumber": left[0]["dynamodb"]["SequenceNumber"],
                                                           "endSequenceNumber": left[-1]["dynamodb"]["SequenceNumber"],
                                                           "streamArn": stream_arn}}
                            sqs.send_message(QueueUrl=dlqs["stream"], MessageBody=json.dumps(info))
                            with lock:
                                parked["stream"] += len(left)

        # Several pollers a queue, as EventBridge hands events to Lambda side by side.
        threads = [threading.Thread(target=route, args=(queues[name], fn))
                   for name, fn in (("evaluate", evaluate), ("schedule-delay", sched_bus), ("deliver", deliver))
                   for _ in range(3)]
        threads += [threading.Thread(target=f) for f in (sweeper, mapping, ttl)]
        for t in threads:
            t.daemon = True
            t.start()

        # The load: each client thread takes users one by one and sends their batches in order,
        # each resent until acknowledged.
        expected = {}
        scripts = queue.Queue()
        context = {"timezone": "UTC"}

        def now_iso():
            return datetime.datetime.now(datetime.timezone.utc).isoformat()

        for i in range(args.users):
            user = f"u{i:05d}-{rng.randrange(16 ** 4):04x}"
            batches, exp = user_script(user, rng, now_iso, context)
            expected[user] = exp
            scripts.put((user, batches))
        acknowledged = Counter()

        def client():
            while True:
                try:
                    user, batches = scripts.get_nowait()
                except queue.Empty:
                    return
                for batch in batches:
                    for attempt in range(30):
                        ok, answer = ingest.invoke(api_request(batch))
                        status = answer.get("statusCode", 500) if ok and isinstance(answer, dict) else 502
                        if status == 200:
                            body = json.loads(answer.get("body") or "{}")
                            if body.get("success") is not True:
                                with lock:
                                    problems.append(f"ingest answered 200 without success: {body}")
                            with lock:
                                acknowledged["events"] += len(batch)
                            break
                        with lock:
                            stats[f"ingest answered {status}, resent"] += 1
                        if status not in (429, 500, 502, 503, 504):
                            with lock:
                                problems.append(f"ingest refused a valid batch: {status} {answer}")
                            break
                        time.sleep(min(2.0, 0.1 * 2 ** attempt))
                    else:
                        with lock:
                            problems.append(f"a batch of {user} never acknowledged")

        load_started = time.time()
        clients = [threading.Thread(target=client) for _ in range(args.clients)]
        for c in clients:
            c.start()
        last = 0
        while any(c.is_alive() for c in clients):
            time.sleep(1)
            if time.time() - last > 30:
                last = time.time()
                print(f"{time.time() - started:7.0f} s: {acknowledged['events']} events acknowledged, "
                      f"{proxy.stats()['faults']} faults", flush=True)
        load_s = time.time() - load_started

        def quiet_for(seconds):
            """Waits until nothing is in flight, queued or due for `seconds` in a row."""
            calm_since, said = None, time.time()
            kinds = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                     "ApproximateNumberOfMessagesDelayed")
            while True:
                depth = {u.rsplit("-", 1)[-1]: sum(int(a[k]) for k in kinds) for u in [*queues.values(), timer_queue]
                         for a in [sqs.get_queue_attributes(QueueUrl=u, AttributeNames=list(kinds))["Attributes"]]}
                busy = work.busy() + scheduler.pending() + sum(depth.values())
                if time.time() - said > 30:
                    said = time.time()
                    print(f"{time.time() - started:7.0f} s: waiting: {work.busy()} in flight, "
                          f"{scheduler.pending()} retries due, queues {depth}", flush=True)
                    with lock:
                        print({k: v for k, v in stats.items() if k.startswith("bus")}, flush=True)
                if busy:
                    calm_since = None
                elif calm_since is None:
                    calm_since = time.time()
                elif time.time() - calm_since >= seconds:
                    return
                time.sleep(0.5)

        # Timers fall due 3 s after their last set; the sweeper runs every 5 s: wait past both.
        quiet_for(REMINDER_WAIT_MS / 1000 + 2 * args.sweep_every)
        drained_s = time.time() - load_started

        # Redrive every DLQ, with the faults still on, until they stay empty.
        redriven = Counter()
        for round_ in range(10):
            moved = 0
            for name, fn in (("evaluate", evaluate), ("schedule-delay", sched_bus), ("deliver", deliver)):
                def receive(n, url=dlqs[name]):
                    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=n, WaitTimeSeconds=0,
                                               VisibilityTimeout=60).get("Messages") or None

                def delete(handle, url=dlqs[name]):
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
                n, _ = redrive.redrive(receive, lambda event, fn=fn: hand_over(fn, event), delete)
                redriven[name] += n
                moved += n
            # The delay queue's DLQ: its messages go back to the queue (SQS's own redrive).
            while True:
                got = sqs.receive_message(QueueUrl=dlqs["timers"], MaxNumberOfMessages=10).get("Messages", [])
                if not got:
                    break
                for m in got:
                    sqs.send_message(QueueUrl=timer_queue, MessageBody=m["Body"])
                    sqs.delete_message(QueueUrl=dlqs["timers"], ReceiptHandle=m["ReceiptHandle"])
                    redriven["timers"] += 1
                    moved += 1
            # The stream's DLQ names sequence numbers; the records are read back from the stream.
            while True:
                got = sqs.receive_message(QueueUrl=dlqs["stream"], MaxNumberOfMessages=10).get("Messages", [])
                if not got:
                    break
                for m in got:
                    info = json.loads(m["Body"])["DDBStreamBatchInfo"]
                    records = [r for s, r in sorted(stream_log.items())
                               if info["startSequenceNumber"] <= s <= info["endSequenceNumber"]]
                    if not stream_batch(records):
                        sqs.delete_message(QueueUrl=dlqs["stream"], ReceiptHandle=m["ReceiptHandle"])
                        redriven["stream"] += len(records)
                        moved += 1
            if not moved:
                break
            quiet_for(REMINDER_WAIT_MS / 1000 + 2 * args.sweep_every)
        stop.set()
        left_in_dlqs = {name: int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                                  ["Attributes"]["ApproximateNumberOfMessages"]) for name, url in dlqs.items()}

        counted, wrong = fault_count.tally(ddb, stack, endpoint, expected, WebhookReceiver.received,
                                           trail, deliveries, identified_at)
        results = {
            "users": args.users, "events_acknowledged": acknowledged["events"],
            "share": args.share, "seed": args.seed,
            "seconds": {"load": round(load_s), "until_quiet": round(drained_s), "all": round(time.time() - started)},
            "proxy": proxy.stats(),
            "harness": dict(sorted(stats.items())),
            **counted,
            "dead_letters": {"parked": dict(parked), "redriven": dict(redriven), "left": left_in_dlqs},
            "problems": problems[:10],
            "errors_logged": len(errors), "first_errors": errors[:8],
        }
        print(json.dumps(results, indent=2))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        bad = (wrong or problems or any(left_in_dlqs.values())
               or acknowledged["events"] != 10 * args.users)
        sys.exit(1 if bad else 0)
    finally:
        stop.set()
        for f in functions:
            f.close()
        proxy.shutdown()
        for m in (moto, moto_ddb):
            m.kill()
            m.wait(10)


if __name__ == "__main__":
    main()
