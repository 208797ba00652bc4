#!/usr/bin/env python3
"""Builds the fuzz targets' seed inputs (fuzz/seeds/<target>/) from what the project already
holds: the sample Lambda events (events/), the example rule sets and their events (examples/,
tests/sdk-rules), and a real `nudge serve` fed the example events (its SQLite rows and journal
segments are the seeds of the stored-state and journal targets).

`scripts/fuzz.sh --seeds` runs this, then merges the seeds into the committed corpora
(fuzz/corpus/<target>/) with `cargo fuzz cmin`. The seeds themselves are not committed.
Needs the debug `nudge` binary (`cargo build -p nudge-cli`) and PyYAML (tests/requirements.txt).
"""

import base64
import json
import shutil
import sqlite3
import struct
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from serve_support import Server, eventually  # noqa: E402

OUT = ROOT / "fuzz" / "seeds"
RULE_SETS = [ROOT / "examples" / "saas-onboarding", ROOT / "examples" / "ecommerce",
             ROOT / "tests" / "sdk-rules"]
# The secrets the sample events were made with (events/README.md).
WRITE_KEY = "wk_example"
ADMIN_KEY = "ak_example"
INBOX_SECRET = "inbox-secret-example"
SIGNING_SECRET = "signing-secret-example"


class Seeds:
    """Writes one target's seed files, numbered, skipping repeats."""

    def __init__(self, target: str):
        self.dir = OUT / target
        self.dir.mkdir(parents=True, exist_ok=True)
        self.seen: set[bytes] = set()

    def add(self, name: str, data: bytes | str):
        if isinstance(data, str):
            data = data.encode()
        if data in self.seen:
            return
        self.seen.add(data)
        (self.dir / f"{len(self.seen):03}-{name}").write_bytes(data)


def event_lines() -> list[str]:
    lines = []
    for rules in RULE_SETS:
        path = rules / "events.jsonl"
        if path.exists():
            lines += [line for line in path.read_text().splitlines() if line.strip()]
    return lines


def sample_events() -> dict[str, dict]:
    return {str(p.relative_to(ROOT / "events")): json.loads(p.read_text())
            for p in sorted((ROOT / "events").glob("*/*.json"))}


def wire(method: str, target: str, headers: dict, body: bytes, gzip_here: bool = False) -> bytes:
    """A request as `nudge_fuzz::request` reads it: a flags byte, then HTTP/1.1 text."""
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return bytes([1 if gzip_here else 0]) + head.encode() + b"\r\n" + body


def http_seeds(events: dict):
    seeds = Seeds("http_intake")
    for name, ev in events.items():
        if not name.startswith("ingest/"):
            continue
        body = ev.get("body") or ""
        body = base64.b64decode(body) if ev.get("isBase64Encoded") else body.encode()
        query = ev.get("rawQueryString") or ""
        target = ev["rawPath"] + (f"?{query}" if query else "")
        method = ev["requestContext"]["http"]["method"]
        headers = {k: v for k, v in ev.get("headers", {}).items() if not k.startswith("x-")}
        seeds.add(Path(name).stem, wire(method, target, headers, body))
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    json_headers = {"host": "127.0.0.1", "authorization": auth, "content-type": "application/json"}
    lines = event_lines()
    for i, line in enumerate(lines[:12]):
        kind = json.loads(line)["type"]
        seeds.add(f"{kind}-{i}", wire("POST", f"/v1/{kind}", json_headers, line.encode()))
        seeds.add(f"{kind}-{i}-letter", wire("POST", f"/v1/{kind[0]}", json_headers, line.encode()))
    batch = json.dumps({"batch": [json.loads(line) for line in lines[:10]],
                        "sentAt": "2026-03-02T08:10:00Z"})
    seeds.add("batch-gzipped-here", wire("POST", "/v1/batch", json_headers, batch.encode(), True))
    seeds.add("beacon", wire("POST", f"/beacon/v1/batch?writeKey={WRITE_KEY}",
                             {"content-type": "text/plain"}, batch.encode()))
    seeds.add("preflight", wire("OPTIONS", "/v1/track", {
        "origin": "https://app.example.com", "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-retry-count, anonymousid",
        "access-control-request-private-network": "true"}, b""))
    seeds.add("retry", wire("POST", "/v1/t", {**json_headers, "x-retry-count": "2",
                                              "origin": "https://app.example.com"},
                            lines[1].encode()))
    seeds.add("write-key-in-body", wire("POST", "/v1/import", {"content-type": "text/plain"},
                                        json.dumps({"writeKey": WRITE_KEY, "batch": []}).encode()))
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    for target in ["/v1/admin/reports?from=2026-03-01&to=2026-03-08", "/v1/admin/reports",
                   "/v1/admin/users/alice/explain", "/v1/admin/unknown", "/v1/users/alice/inbox/stream",
                   "/v1/sdk/inbox.js", "/v1/c/not-a-token", "/v1/o/not-a-token.gif", "/metrics",
                   "/v1/m"]:
        seeds.add("get" + target.replace("/", "-").split("?")[0], wire("GET", target, admin, b""))


def message_seeds(events: dict):
    seeds = Seeds("segment_message")
    for i, line in enumerate(event_lines()):
        seeds.add(f"events-{i}", line)
    for name, ev in events.items():
        if name.startswith("ingest/") and not ev.get("isBase64Encoded") and ev.get("body"):
            try:
                body = json.loads(ev["body"])
            except ValueError:
                seeds.add(Path(name).stem, ev["body"])
                continue
            for j, item in enumerate(body.get("batch", [body]) if isinstance(body, dict) else [body]):
                seeds.add(f"{Path(name).stem}-{j}", json.dumps(item))
        if name.startswith("evaluate/"):
            for j, accepted in enumerate(ev["detail"].get("events", [])):
                seeds.add(f"{Path(name).stem}-{j}", json.dumps(accepted["message"]))


def rule_files(rules: Path) -> list[Path]:
    return sorted(p for p in rules.iterdir() if p.suffix in (".yaml", ".yml"))


def rules_seeds():
    seeds = Seeds("rules")
    for rules in RULE_SETS:
        files = rule_files(rules)
        seeds.add(rules.name, "\0".join(p.read_text() for p in files))
        for p in files:
            seeds.add(f"{rules.name}-{p.stem}", p.read_text())


def template_seeds():
    seeds = Seeds("template")
    data = json.dumps({"traits": {"first_name": "Bob", "email": "bob@example.com"},
                       "properties": {"step": "integrations", "step_index": 4, "items": [1, 2]},
                       "data": {"items": [{"name": "Tea", "price": 3}]}, "variant": "b",
                       "user_id": "bob"})

    def strings(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node

    for rules in RULE_SETS:
        for p in rule_files(rules):
            for i, text in enumerate(strings(yaml.safe_load(p.read_text()))):
                if "{{" in text or "{%" in text or "<" in text:
                    seeds.add(f"{rules.name}-{p.stem}-{i}", text)
                    seeds.add(f"{rules.name}-{p.stem}-{i}-data", text + "\0" + data)
    for i, text in enumerate([
        "{% for i in (1..p.n) %}{{ i | plus: 1 }}{% endfor %}",
        "{% capture c %}{% for x in data.items %}{{ x.name | upcase }}{% endfor %}{% endcapture %}{{ c | size }}",
        "{% if traits.plan == 'team' %}team{% elsif traits.seats > 3 %}big{% else %}{{ 10 | divided_by: 3.0 }}{% endif %}",
        "{% case variant %}{% when 'a' %}A{% else %}{{ user_id | append: '!' | truncate: 5 }}{% endcase %}",
        "{% raw %}{{ not liquid }}{% endraw %}{% comment %}x{% endcomment %}{{ 'now' | date: '%Y' }}",
    ]):
        seeds.add(f"liquid-{i}", text + "\0" + data)


def token_seeds(events: dict):
    seeds = Seeds("signed_tokens")
    for name, ev in events.items():
        query = ev.get("rawQueryString") or ""
        if "token=" in query:
            seeds.add(Path(name).stem, query.split("token=", 1)[1].split("&")[0])
        hash_ = (ev.get("headers") or {}).get("x-user-hash")
        if hash_:
            user = ev["rawPath"].split("/")[3]
            seeds.add(f"{Path(name).stem}-hash", f"{user}\n{hash_}")
    seeds.add("claim", "alice\0profile-reminder\0default\0https://example.com/profile?step=2")
    seeds.add("webhook", "t=1772528400,v1=" + "0" * 64 + "\n{\"id\":1}")


def lambda_seeds(events: dict):
    seeds = Seeds("lambda_input")
    for name, ev in events.items():
        seeds.add(name.replace("/", "-").removesuffix(".json"), json.dumps(ev))


def served_seeds():
    """Runs `nudge serve` on the saas-onboarding example, sends it the example events, and
    keeps what it stored: user-state rows, inbox and delivery rows, journal segments."""
    states, journal = Seeds("user_state"), Seeds("journal")
    server = Server(ROOT / "examples" / "saas-onboarding", "--write-key", WRITE_KEY,
                    "--admin-key", ADMIN_KEY)
    try:
        lines = [json.loads(line) for line in
                 (ROOT / "examples" / "saas-onboarding" / "events.jsonl").read_text().splitlines()
                 if line.strip()]
        req = urllib.request.Request(
            server.base + "/v1/batch", data=json.dumps({"batch": lines}).encode(),
            headers={"content-type": "application/json",
                     "authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()})
        urllib.request.urlopen(req, timeout=10).read()
        db = server.data / "nudge.db"

        def users():
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                return con.execute("SELECT user_id, state, outbox FROM users").fetchall()
            finally:
                con.close()

        eventually(lambda: len(users()) >= 3)
        time.sleep(2)  # timers due in the past fire, deliver writes its rows
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        for user, state, outbox in con.execute("SELECT user_id, state, outbox FROM users"):
            states.add(f"state-{user}", b"\0" + state)
            states.add(f"outbox-{user}", b"\2" + outbox.encode())
        for i, (item,) in enumerate(con.execute("SELECT item FROM inbox")):
            states.add(f"inbox-{i}", b"\3" + item.encode())
        for i, (entry,) in enumerate(con.execute("SELECT entry FROM deliveries")):
            states.add(f"delivery-{i}", b"\4" + entry.encode())
        con.close()
        for seg in sorted((server.data / "journal").glob("*.seg")):
            journal.add(seg.stem, journal_ops(seg.read_bytes()))
            journal.add(seg.stem + "-salvage-torn",
                        journal_ops(seg.read_bytes(), flags=1, torn=True))
    finally:
        server.stop()
    for name, ev in sample_events().items():
        detail = ev.get("detail")
        if isinstance(detail, dict) and "type" in detail:
            states.add("outbox-" + name.replace("/", "-"), b"\2" + json.dumps([detail]).encode())
    states.add("deltas-empty", b"\1\0\0\0")


def journal_ops(segment: bytes, flags: int = 0, torn: bool = False) -> bytes:
    """A real segment as the journal target's operations (fuzz_targets/journal.rs)."""
    out = bytearray([flags])
    at = 0
    while at + 8 <= len(segment):
        (length,) = struct.unpack_from("<I", segment, at)
        payload = segment[at + 8:at + 8 + length]
        out += b"\0" + struct.pack("<H", len(payload)) + payload
        at += 8 + length
    if torn and out:
        out += b"\2" + struct.pack("<HH", 40, 20) + bytes(range(40))
        out += b"\1" + struct.pack("<H", 3) + b"\xff\xff\xff" + b"\3\0"
    return bytes(out)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    events = sample_events()
    http_seeds(events)
    message_seeds(events)
    rules_seeds()
    template_seeds()
    token_seeds(events)
    lambda_seeds(events)
    served_seeds()
    for d in sorted(OUT.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds")


if __name__ == "__main__":
    main()
