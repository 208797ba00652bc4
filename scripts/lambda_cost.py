"""List-price cost of nudge on AWS per million ingested events, from the calls each event
makes (crates/nudge-aws, crates/nudge-service) and the template's settings (arm64, 256 MB,
on-demand table). Prints a Markdown table per scenario (BENCHMARKS.md quotes them).

Usage: lambda_cost.py [--sizes bench.json] [--timers-per-batch N]
(bench.json: `lambda_cold_start.py --json`, whose measured bus-entry and item sizes replace the
defaults below; N: timers per delay-queue batch, default 1, see TIMERS_PER_QUEUE_BATCH)

Prices: us-east-1 list prices, no free tier, no savings plans.
"""

import argparse
import json
import math
from pathlib import Path

PRICE = {
    "api_request": 1.00e-6,        # HTTP API, per request (first 300 M a month; 512 KB units)
    "lambda_request": 0.20e-6,     # per invocation
    "lambda_gb_s_arm64": 0.0000133334,
    "bus_event": 1.00e-6,          # PutEvents, per 64 KB chunk of an entry; delivery to rules' targets is free
    "wru": 0.625e-6,               # DynamoDB on-demand write request unit (1 KB)
    "rru": 0.125e-6,               # read request unit (4 KB strongly consistent)
    "ses_email": 0.10e-3,          # SES, per email
    "sqs_request": 0.40e-6,        # SQS standard queue, per request (64 KB chunks); first 1 M a month free
    "log_gb": 0.50,                # CloudWatch Logs ingestion (standard), per GB
}
MEMORY_GB = 256 / 1024  # template.yaml: Globals.Function.MemorySize

# Assumed warm durations (ms) per invocation: DynamoDB calls take single-digit ms, PutEvents and
# SES SendEmail tens. Billed per 1 ms.
DURATION_MS = {
    "ingest": 15,                  # parse and check a batch, one PutEvents
    "evaluate_base": 5,            # per invocation
    "evaluate_per_user": 12,       # GetItem + engine + conditional PutItem (+ PutEvents when deciding)
    "schedule_base": 5,            # per invocation
    "schedule_per_change": 10,     # one conditional PutItem per timer change
    "deliver": 80,                 # render, delivery log (2 PutItem, 3 for a mail), SES SendEmail, PutEvents
    "fired_timer": 8,              # sweeper's share: one claim UpdateItem per timer
    "queue_batch": 25,             # schedule-delay on a delay-queue batch: GetItem, claim, PutEvents
}
# The sweeper runs once a minute (it queues timers entering the horizon and claims what the
# queue missed); evaluate publishes the timer changes of one invocation packed ("Timers
# Changed"). How many timers fall due together depends on the traffic, so the figures assume a
# volume: 30 million events a month (1 million a day, ~12 a second).
MONTHLY_EVENTS = 30_000_000
SWEEPS_PER_MONTH = 30 * 24 * 60
# Near timers ride the SQS delay queue (crates/nudge-aws/src/timers.rs) and fire from it: the
# mapping hands schedule-delay what falls due together, without a batching window, so at this
# volume (a few timers a second) a batch is about one timer, and so is its "Timers Fired" entry
# and evaluate's invocation. Each fired timer costs SendMessage (set near: one request, marked
# in the set's own write; entering the horizon at a sweep: a tenth of a SendMessageBatch and a
# mark UpdateItem on the table and the `due` index), the mapping's ReceiveMessage and
# DeleteMessageBatch, and a strongly consistent GetItem of the timer on arrival.
TIMERS_PER_QUEUE_BATCH = 1
# Log bytes ingested per invocation: Lambda's JSON platform records (start, report) and the
# functions' own lines at `info`, including EMF metric lines.
LOG_BYTES_PER_INVOCATION = 1500

DEFAULT_SIZES = {
    "accepted_event_bytes": 700,   # one Segment event in an "Events Accepted" detail
    "state_item_bytes": 700,       # user-state item (state, version, applied messageIds)
    "state_item_outbox_bytes": 1800,  # the same while it holds a Message Requested outbox
    "timer_item_bytes": 120,
    "delivery_item_bytes": 600,
}

SCENARIOS = {
    "typical": {
        "what": "SDK batches of 20 events; every event of another user (1 read + 1 write each); "
                "1 timer change per 10 events, 1 timer fired per 25 events, 1 send per 100 events "
                "(all email)",
        "batch": 20, "users_per_entry": 20, "timer_changes": 0.10, "timers_fired": 0.04,
        "sends": 0.01, "email_share": 1.0,
        # Reminders hours or days ahead: queued by a sweep as they come within 15 minutes.
        "queued_by_sweep": 1.0,
    },
    "re-arming": {
        "what": "as typical, plus every event pushes the user's wait back (saas-onboarding's "
                "`pause-nudge` re-arms a 2 min wait on every event of a user in onboarding), "
                "events 30 s apart: evaluate keeps the timer already set when the wake-up only "
                "moves later, so it fires early once per 2 min (0.25 per event) and asks for the "
                "later time then (0.25 more timer changes per event)",
        "batch": 20, "users_per_entry": 20, "timer_changes": 0.35, "timers_fired": 0.29,
        "sends": 0.01, "email_share": 1.0,
        # The 2-minute waits are near when set (queued by the set); the typical 0.04 by sweeps.
        "queued_by_sweep": 0.04 / 0.29,
    },
}


def units(size_bytes, unit_kb):
    return max(1, math.ceil(size_bytes / (unit_kb * 1024)))


def lambda_cost(invocations, duration_ms):
    return invocations * (PRICE["lambda_request"]
                          + duration_ms / 1000 * MEMORY_GB * PRICE["lambda_gb_s_arm64"])


def rows(s, sizes, n=1_000_000, timers_per_batch=TIMERS_PER_QUEUE_BATCH):
    """(item, calls per million events, cost) for one scenario."""
    out = []
    requests = n / s["batch"]
    per_entry = min(s["batch"], (60 * 1024) // sizes["accepted_event_bytes"])
    entries = n / per_entry
    users = entries * min(s["users_per_entry"], per_entry)
    changes, fired, sends = n * s["timer_changes"], n * s["timers_fired"], n * s["sends"]
    emails = sends * s["email_share"]
    wru_state = units(sizes["state_item_bytes"], 1)
    wru_outbox = units(sizes["state_item_outbox_bytes"], 1)
    wru_timer = units(sizes["timer_item_bytes"], 1)
    wru_delivery = units(sizes["delivery_item_bytes"], 1)
    rru_state = units(sizes["state_item_outbox_bytes"], 4)

    out.append(("API Gateway HTTP API requests (batches)", f"{requests:,.0f}", requests * PRICE["api_request"]))
    out.append(("ingest invocations", f"{requests:,.0f} x {DURATION_MS['ingest']} ms",
                lambda_cost(requests, DURATION_MS["ingest"])))
    out.append((f"PutEvents: Events Accepted ({per_entry} events per entry, 1 chunk)", f"{entries:,.0f}",
                entries * PRICE["bus_event"]))
    ev_ms = DURATION_MS["evaluate_base"] + DURATION_MS["evaluate_per_user"] * users / entries
    out.append(("evaluate invocations on accepted events", f"{entries:,.0f} x {ev_ms:.0f} ms",
                lambda_cost(entries, ev_ms)))
    out.append(("evaluate: GetItem user state (strongly consistent)", f"{users:,.0f} x {rru_state} RRU",
                users * rru_state * PRICE["rru"]))
    out.append((f"evaluate: PutItem user state ({sizes['state_item_bytes']} B)", f"{users:,.0f} x {wru_state} WRU",
                users * wru_state * PRICE["wru"]))
    # Fired timers: each fires from the delay queue at its due second (the sweeper, once a
    # minute, claims only what the queue missed); a batch's timers are claimed (table + index
    # delete per timer) and published as one entry; evaluate takes each entry in one
    # invocation (GetItem and PutItem per user).
    sweeps = SWEEPS_PER_MONTH * n / MONTHLY_EVENTS
    batches = fired / timers_per_batch
    fired_entries = batches
    by_sweep = fired * s["queued_by_sweep"]
    sqs_requests = (fired - by_sweep) + by_sweep / 10 + 2 * batches
    out.append(("timers fired: delay queue SendMessage, ReceiveMessage, DeleteMessageBatch",
                f"{sqs_requests:,.0f} requests", sqs_requests * PRICE["sqs_request"]))
    out.append(("timers fired: schedule-delay on queue batches", f"{batches:,.0f} x {DURATION_MS['queue_batch']} ms",
                lambda_cost(batches, DURATION_MS["queue_batch"])))
    out.append(("timers fired: GetItem timer on arrival (1 RRU); queued by a sweep: mark (1 + 1 WRU)",
                f"{fired:,.0f} / {by_sweep:,.0f}",
                fired * PRICE["rru"] + by_sweep * (wru_timer + 1) * PRICE["wru"]))
    out.append(("timers fired: claim UpdateItem (1 + 1 WRU)", f"{fired:,.0f}",
                fired * (wru_timer + 1) * PRICE["wru"]))
    out.append((f"timers fired: PutEvents Timers Fired ({timers_per_batch:g} a queue batch)",
                f"{fired_entries:,.0f}", fired_entries * PRICE["bus_event"]))
    fired_ms = DURATION_MS["evaluate_base"] + DURATION_MS["evaluate_per_user"] * fired / max(fired_entries, 1)
    out.append(("timers fired: evaluate invocations", f"{fired_entries:,.0f} x {fired_ms:,.0f} ms",
                lambda_cost(fired_entries, fired_ms)))
    out.append(("timers fired: evaluate GetItem + PutItem per user", f"{fired:,.0f}",
                fired * (rru_state * PRICE["rru"] + wru_state * PRICE["wru"])))
    # Timer changes: the outbox rides in the state write; clearing it per user; one packed
    # "Timers Changed" entry per evaluate invocation that changed any (on accepted events or
    # fired timers); schedule-delay's conditional PutItem per change (table + the sparse `due`
    # index: a moved due time is a delete and a put there).
    change_entries = min(changes, entries + fired_entries)
    out.append(("timer changes: PutEvents Timers Changed (one per evaluate invocation)",
                f"{change_entries:,.0f}", change_entries * PRICE["bus_event"]))
    out.append(("timer changes: evaluate clears the outbox (UpdateItem)", f"{changes:,.0f} x {wru_state} WRU",
                changes * wru_state * PRICE["wru"]))
    sched_ms = DURATION_MS["schedule_base"] + DURATION_MS["schedule_per_change"] * changes / max(change_entries, 1)
    out.append(("timer changes: schedule-delay invocations", f"{change_entries:,.0f} x {sched_ms:,.0f} ms",
                lambda_cost(change_entries, sched_ms)))
    out.append(("timer changes: PutItem timer + `due` index (1 + 2 WRU)", f"{changes:,.0f} x {wru_timer + 2} WRU",
                changes * (wru_timer + 2) * PRICE["wru"]))
    # Sends: the outbox makes the state write bigger and is cleared; Message Requested;
    # deliver's delivery log (begin, finish); the outcome event.
    out.append(("sends: bigger state write + outbox clear", f"{sends:,.0f} x {2 * wru_outbox - wru_state} WRU",
                sends * (2 * wru_outbox - wru_state) * PRICE["wru"]))
    out.append(("sends: PutEvents Message Requested + Message Sent", f"{2 * sends:,.0f}", 2 * sends * PRICE["bus_event"]))
    out.append(("sends: deliver invocations", f"{sends:,.0f} x {DURATION_MS['deliver']} ms",
                lambda_cost(sends, DURATION_MS["deliver"])))
    out.append(("sends: delivery log PutItem x 2", f"{sends:,.0f} x {2 * wru_delivery} WRU",
                sends * 2 * wru_delivery * PRICE["wru"]))
    # A mail is marked in the log before it leaves (SES keeps no idempotency key).
    out.append(("emails: delivery log mark PutItem", f"{emails:,.0f} x {wru_delivery} WRU",
                emails * wru_delivery * PRICE["wru"]))
    invocations = requests + entries + change_entries + fired_entries + batches + sends + sweeps
    log_gb = invocations * LOG_BYTES_PER_INVOCATION / 1e9
    out.append(("CloudWatch Logs ingestion", f"{invocations:,.0f} invocations x {LOG_BYTES_PER_INVOCATION} B",
                log_gb * PRICE["log_gb"]))
    engine = sum(c for _, _, c in out)
    out.append(("SES emails", f"{emails:,.0f}", emails * PRICE["ses_email"]))
    return out, engine


def table(name, s, sizes, timers_per_batch=TIMERS_PER_QUEUE_BATCH):
    out, engine = rows(s, sizes, timers_per_batch=timers_per_batch)
    total = sum(c for _, _, c in out)
    lines = [f"**{name}**: {s['what']}.", "", "| per million ingested events | calls | USD |", "|---|---|---|"]
    lines += [f"| {item} | {calls} | {cost:.3f} |" for item, calls, cost in out]
    lines.append(f"| **nudge itself (all but SES)** | | **{engine:.2f}** |")
    lines.append(f"| **total with SES** | | **{total:.2f}** |")
    return "\n".join(lines), engine, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=Path, help="JSON written by lambda_cold_start.py --json")
    ap.add_argument("--timers-per-batch", type=float, default=TIMERS_PER_QUEUE_BATCH,
                    help="timers per delay-queue batch (a batching window on the mapping gathers more)")
    args = ap.parse_args()
    sizes = dict(DEFAULT_SIZES)
    if args.sizes:
        measured = json.loads(args.sizes.read_text()).get("sizes", {})
        sizes.update({k: v for k, v in measured.items() if k in sizes and v})
    print("sizes (bytes): " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    print()
    for name, s in SCENARIOS.items():
        text, engine, total = table(name, s, sizes, args.timers_per_batch)
        print(text)
        print()


if __name__ == "__main__":
    main()
