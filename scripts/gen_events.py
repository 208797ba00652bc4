#!/usr/bin/env python3
"""Writes a history of the SaaS onboarding example's events for backtests and benchmarks:
`--users` users, about `--events` events in all, one Segment message a line, each user's
journey spread over `--days` days (sign-up, identify with traits, onboarding steps viewed,
completed or skipped, profile, feature use, help articles, button clicks, failed logins, a
few duplicated messageIds as SDK retries make them). Lines are in time order unless
`--shuffle` mixes them (an unordered file, as an export of several sources would be).

    python3 scripts/gen_events.py --users 20000 --events 1000000 > history.jsonl
"""

import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone

STEPS = ["account", "profile", "team", "integrations", "payment"]
FEATURES = ["boards", "reports", "import", "export", "automations", "api"]
ARTICLES = ["getting-started", "setup", "billing", "integrations", "faq"]
LABELS = ["Connect Payment Method", "Invite Teammate", "Upgrade", "Dismiss"]
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--start", default="2026-03-02T00:00:00Z")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shuffle", action="store_true")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    start = datetime.fromisoformat(a.start.replace("Z", "+00:00"))
    per_user = max(2, a.events // a.users)
    span = a.days * 86_400
    # Generated user by user and merged by time: each user's events in a sorted list, then
    # one k-way merge (heapq) keeps memory at one list per user of timestamps and lines.
    import heapq

    def user_events(u):
        uid = f"user-{u:07d}"
        t = rnd.uniform(0, span * 0.8)
        msgs = []
        n = 0

        def add(dt, fields):
            nonlocal t, n
            t = min(t + dt, span - 1)
            n += 1
            ts = start + timedelta(seconds=t)
            msgs.append((t, json.dumps({
                "userId": uid, "messageId": f"{uid}-{n}",
                "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
                **fields}, separators=(",", ":"))))

        add(0, {"type": "identify", "traits": {
            "first_name": f"User{u}", "email": f"{uid}@example.com",
            "plan": rnd.choice(["free", "team", "pro"]), "timezone": rnd.choice(ZONES)}})
        add(1, {"type": "track", "event": "Signed Up"})
        step = 0
        while n < per_user:
            r = rnd.random()
            gap = rnd.expovariate(1 / 900) if rnd.random() < 0.9 else rnd.expovariate(1 / 86_400)
            if r < 0.30 and step < 5:
                props = {"step": STEPS[step], "step_index": step + 1}
                add(gap, {"type": "track", "event": "Onboarding Step Viewed", "properties": props})
                if rnd.random() < 0.7:
                    add(rnd.uniform(30, 3600), {"type": "track", "event": "Onboarding Step Completed", "properties": props})
                    if STEPS[step] == "profile":
                        add(5, {"type": "track", "event": "Profile Completed", "properties": {"completion_percentage": 100}})
                    step += 1
                    if step == 5:
                        add(60, {"type": "track", "event": "Onboarding Completed"})
                elif rnd.random() < 0.3:
                    add(60, {"type": "track", "event": "Onboarding Step Skipped", "properties": props})
                    step += 1
            elif r < 0.60:
                add(gap, {"type": "track", "event": "Feature Used", "properties": {"feature": rnd.choice(FEATURES)}})
            elif r < 0.72:
                add(gap, {"type": "track", "event": "Help Article Viewed", "properties": {"article": rnd.choice(ARTICLES)}})
            elif r < 0.84:
                add(gap, {"type": "track", "event": "Button Clicked", "properties": {"label": rnd.choice(LABELS)}})
            elif r < 0.90:
                add(gap, {"type": "track", "event": "Login Failed"})
            else:
                add(gap, {"type": "page", "name": "Dashboard"})
            if rnd.random() < 0.005:
                # An SDK retry: the same message again, a moment later in the file.
                msgs.append((msgs[-1][0], msgs[-1][1]))
        return msgs

    streams = (user_events(u) for u in range(a.users))
    lines = heapq.merge(*streams, key=lambda e: e[0])
    if a.shuffle:
        lines = list(lines)
        rnd.shuffle(lines)
    w = sys.stdout.write
    for _, line in lines:
        w(line + "\n")


if __name__ == "__main__":
    main()
