"""Reports against a real `nudge serve`: a generated history of the SaaS example sent to a
fresh server gives, once evaluated, the same report as `nudge report` on the same file taken
at the same instant; and the report endpoints answer bad periods and unknown ids clearly."""

import base64
import http.client
import json
import random
import subprocess
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest

from serve_support import ROOT, Server, eventually, nudge_binary

WRITE_KEY = "wk_reports"
ADMIN_KEY = "admin-reports"
RULES = ROOT / "examples" / "saas-onboarding"
STEPS = ["account", "profile", "team", "integrations", "payment"]
START = datetime(2026, 10, 1, 7, 0, tzinfo=timezone.utc)
FROM = "2026-09-30T00:00:00Z"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def history(users: int = 150, seed: int = 7) -> list[dict]:
    """Onboarding journeys over two weeks, ending a month before today: every wait is due
    long before the report is read."""
    rnd = random.Random(seed)
    out = []
    n = 0

    def add(user, t, **fields):
        nonlocal n
        n += 1
        out.append({"userId": user, "timestamp": iso(t), "messageId": f"h-{n}", **fields})

    for u in range(users):
        user = f"user-{u}"
        t = START + timedelta(days=rnd.randrange(14), minutes=rnd.randrange(600))
        add(user, t, type="identify",
            traits={"email": f"{user}@example.com", "plan": rnd.choice(["free", "team", "pro"])})
        add(user, t, type="track", event="Signed Up")
        for i, step in enumerate(STEPS):
            if rnd.random() < 0.25:
                break
            t += timedelta(minutes=rnd.randrange(1, 200))
            props = {"step": step, "step_index": i + 1}
            add(user, t, type="track", event="Onboarding Step Viewed", properties=props)
            if rnd.random() < 0.15:
                add(user, t + timedelta(minutes=3), type="track", event="Onboarding Step Skipped",
                    properties=props)
                continue
            if rnd.random() < 0.8:
                t += timedelta(minutes=rnd.randrange(1, 90))
                add(user, t, type="track", event="Onboarding Step Completed", properties=props)
                if step == "profile":
                    add(user, t, type="track", event="Profile Completed",
                        properties={"completion_percentage": 100})
        else:
            t += timedelta(hours=rnd.randrange(1, 50))
            add(user, t, type="track", event="Onboarding Completed")
        if rnd.random() < 0.4:
            t += timedelta(minutes=rnd.randrange(5, 300))
            add(user, t, type="track", event="Help Article Viewed", properties={"article": "setup"})
            if rnd.random() < 0.5:
                t += timedelta(minutes=rnd.randrange(1, 30))
                add(user, t, type="track", event="Feature Used", properties={"feature": "boards"})
        if rnd.random() < 0.2:
            for k in range(3):
                add(user, t + timedelta(minutes=2 * k + 1), type="track", event="Login Failed")
    out.sort(key=lambda m: m["timestamp"])
    return out


def request(server, method, path, headers=None, body=None):
    url = urllib.parse.urlparse(server.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def report(server, query=""):
    status, data = request(server, "GET", "/v1/admin/reports" + query,
                           {"Authorization": f"Bearer {ADMIN_KEY}"})
    return status, json.loads(data)


@pytest.fixture(scope="module")
def server():
    s = Server(RULES, "--write-key", WRITE_KEY, "--admin-key", ADMIN_KEY, "--no-demo")
    yield s
    s.stop()


def test_a_servers_report_equals_nudge_report_on_the_same_history(server, tmp_path):
    events = history()
    auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
            "Content-Type": "application/json"}
    for i in range(0, len(events), 200):
        status, data = request(server, "POST", "/v1/batch", auth,
                               json.dumps({"batch": events[i:i + 200]}))
        assert status == 200, data
    # Evaluated once every event is counted and nothing moves between two reads.
    query = f"?from={FROM}&to=" + iso(datetime.now(timezone.utc))

    def outcomes_recorded(r):
        # Every send's outcome came back from delivery as an event and was counted.
        return all(t["delivered"] + t["failed"] == t["sent"] for t in r["triggers"])

    def settled():
        _, a = report(server, query)
        time.sleep(1.0)
        _, b = report(server, query)
        done = a == b and b["events"] == len(events) and outcomes_recorded(b)
        return b if done else None

    live = eventually(settled, timeout=60)
    assert live, "the server's report did not settle"
    until = datetime.now(timezone.utc)
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    _, live = report(server, f"?from={FROM}&to={iso(until)}")
    replayed = json.loads(subprocess.run(
        [str(nudge_binary()), "report", "--rules", str(RULES), "--format", "json",
         "--from", FROM, "--to", iso(until), "--until", iso(until), str(path)],
        check=True, capture_output=True, text=True).stdout)
    assert live["events"] == len(events)
    # Something of everything happened, so the comparison means something.
    sent = sum(t["sent"] for t in live["triggers"])
    assert sent > 50
    assert sum(t["converted"] for t in live["triggers"]) > 0
    assert live["funnels"][0]["steps"][4]["users"] > 0
    assert sum(v["users"] for v in live["experiments"][0]["variants"]) > 0
    # A replay counts every send delivered; the server counts what delivery recorded:
    # delivered, or failed (the example's webhooks lead nowhere here).
    for t, r in zip(live["triggers"], replayed["triggers"]):
        for lc, rc in zip([t, *t["variants"]], [r, *r["variants"]]):
            assert lc["delivered"] + lc["failed"] == rc["delivered"], (t["trigger"], lc, rc)
            lc["delivered"], lc["failed"] = rc["delivered"], rc["failed"]
    diff = differences(live, replayed)
    assert not diff, "\n".join(diff)
    assert live == replayed


def differences(a, b, at="") -> list[str]:
    """Where two JSON documents differ, as paths (readable when a report does not match)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            name = a.get("trigger") or a.get("funnel") or a.get("experiment") or a.get("variant") or ""
            out += differences(a.get(k), b.get(k), f"{at}/{name}.{k}" if name else f"{at}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for x, y in zip(a, b) for d in differences(x, y, at)]
    return [] if a == b else [f"{at}: {a!r} != {b!r}"]


def test_reports_refuse_bad_periods_and_unknown_ids_clearly(server):
    status, body = report(server, "?from=yesterday")
    assert status == 400 and body["error"] == "invalid_period" and "RFC 3339" in body["message"]
    status, body = report(server, "?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z")
    assert status == 400 and "after" in body["message"]
    status, body = report(server, "?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z")
    assert status == 400 and "at most" in body["message"]
    status, data = request(server, "GET", "/v1/admin/reports/triggers/nope",
                           {"Authorization": f"Bearer {ADMIN_KEY}"})
    assert status == 404 and b"nope" in data
    status, data = request(server, "GET", "/v1/admin/reports/triggers/profile-reminder",
                           {"Authorization": f"Bearer {ADMIN_KEY}"})
    item = json.loads(data)
    assert status == 200 and item["item"]["trigger"] == "profile-reminder"
    status, _ = request(server, "GET", "/v1/admin/reports")
    assert status == 401
    status, _ = request(server, "POST", "/v1/admin/reports",
                        {"Authorization": f"Bearer {ADMIN_KEY}"})
    assert status == 405
