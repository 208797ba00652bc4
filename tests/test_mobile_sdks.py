"""The requests Segment's mobile SDKs send, posted to a real `nudge serve` byte for byte as they
send them (read from the SDKs' sources: analytics-kotlin's HTTPClient.kt and EventsFileManager.kt,
analytics-swift's HTTPClient.swift and DirectoryStore.swift, analytics-react-native's api.ts).

All three post to `<apiHost>/b` (apiHost is `api.segment.io/v1` unless configured), with the
write key in the body; none of them can be rebuilt or run here (Android, iOS, React Native), so
the shapes are reproduced: headers, encoding, the batch file's framing and the events' fields.
"""

import base64
import datetime
import gzip
import hashlib
import hmac
import http.client
import json
import time
import uuid
from urllib.parse import urlparse

import pytest

from serve_support import ROOT, Server, eventually

WRITE_KEY = "wk_mobile"
INBOX_SECRET = "mobile-inbox-secret"


@pytest.fixture(scope="module")
def server():
    s = Server(ROOT / "tests" / "sdk-rules", "--write-key", WRITE_KEY,
               "--inbox-secret", INBOX_SECRET)
    yield s
    s.stop()


def now(micros: bool = False) -> str:
    t = datetime.datetime.now(datetime.timezone.utc)
    if micros:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # Kotlin's Instant.now().toString()
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def kotlin_sent_at() -> str:
    # SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss'.'Szzz"): milliseconds without zero padding.
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + str(t.microsecond // 1000) + "Z"


def event(kind: str, user: str, library: str, micros: bool = False, **fields) -> dict:
    """A message as the mobile SDKs build it: every base field, a device context, metadata."""
    base = {
        "type": kind,
        "messageId": str(uuid.uuid4()),
        "anonymousId": str(uuid.uuid4()),
        "userId": user,
        "timestamp": now(micros),
        "integrations": {},
        "context": {
            "library": {"name": library, "version": "1.16.0"},
            "app": {"name": "Demo", "version": "2.1", "build": "210"},
            "device": {"manufacturer": "Google", "model": "Pixel 8", "type": "android"},
            "os": {"name": "Android", "version": "15"},
            "screen": {"density": 2.625, "width": 1080, "height": 2400},
            "network": {"wifi": True, "cellular": False},
            "locale": "en-US",
            "timezone": "Europe/Berlin",
            "instanceId": str(uuid.uuid4()),
        },
        "_metadata": {"bundled": [], "unbundled": [], "bundledIds": []},
    }
    base.update(fields)
    return base


def journey(user: str, library: str, micros: bool = False) -> list[dict]:
    return [
        event("identify", user, library, micros, traits={"first_name": "Mo", "plan": "mobile"}),
        event("screen", user, library, micros, name="Settings", category="", properties={}),
        event("track", user, library, micros, event="Signed Up", properties={}),
    ]


def post(server: Server, path: str, body, headers: dict, chunked: bool = False) -> tuple[int, str]:
    url = urlparse(server.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    if chunked:
        conn.request("POST", path, body=iter(body), headers=headers, encode_chunked=True)
    else:
        conn.request("POST", path, body=body, headers=headers)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, text


def titles(server: Server, user: str, n: int) -> list[str]:
    token = hmac.new(INBOX_SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()

    def inbox():
        items = json.loads(server.get(f"/v1/users/{user}/inbox", {"X-User-Hash": token}))["items"]
        return items if len(items) >= n else None

    items = eventually(inbox)
    assert items, f"{user}: fewer than {n} messages:\n" + "".join(server.lines[-20:])
    return sorted(i["title"] for i in items)


def test_analytics_kotlin_gzipped_chunked_text_plain_batch(server):
    # EventsFileManager writes `{"batch":[` + events joined by `,` + `],"sentAt":..,"writeKey":..}`;
    # HTTPClient posts it gzipped, chunked, as text/plain, without an Authorization header.
    events = journey("m-kotlin", "analytics-kotlin", micros=True)
    # An anonymous event before identify carries userId "" (the Kotlin default).
    events.insert(0, event("track", "", "analytics-kotlin", True, event="App Opened", properties={}))
    raw = ('{"batch":[' + ",".join(json.dumps(e, separators=(",", ":")) for e in events)
           + f'],"sentAt":"{kotlin_sent_at()}","writeKey":"{WRITE_KEY}"}}').encode()
    body = gzip.compress(raw)
    status, text = post(server, "/v1/b", [body[:100], body[100:]], {
        "Content-Type": "text/plain",
        "Content-Encoding": "gzip",
        "User-Agent": "analytics-kotlin/1.16.0",
    }, chunked=True)
    assert (status, json.loads(text)) == (200, {"success": True})
    assert titles(server, "m-kotlin", 2) == ["Settings tour", "Welcome, Mo"]


def test_analytics_swift_batch_file_as_json(server):
    # DirectoryStore writes `{ "batch": [` and one event a line, `,` leading each after the
    # first, then `],"sentAt":..,"writeKey":..}`; URLSession uploads the file as is.
    events = journey("m-swift", "analytics-swift")
    for e in events:
        e["context"]["os"] = {"name": "iOS", "version": "18.1"}
    lines = ['{ "batch": ['] + [("" if i == 0 else ",") + json.dumps(e) for i, e in enumerate(events)]
    lines.append(f'],"sentAt":"{now()}","writeKey":"{WRITE_KEY}"}}')
    status, text = post(server, "/v1/b", "\n".join(lines).encode(), {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "analytics-ios/1.7.0",
        "Accept-Encoding": "gzip",
    })
    assert (status, json.loads(text)) == (200, {"success": True})
    assert titles(server, "m-swift", 2) == ["Settings tour", "Welcome, Mo"]


def test_analytics_react_native_fetch_batch(server):
    # api.ts: fetch(url, {method: 'POST', body: JSON.stringify({batch, sentAt, writeKey}),
    # headers: {'Content-Type': 'text/plain'}}); newer versions add Basic auth and
    # X-Retry-Count on retries.
    events = journey("m-rn", "analytics-react-native")
    body = json.dumps({"batch": events, "sentAt": now(), "writeKey": WRITE_KEY})
    status, text = post(server, "/v1/b", body.encode(), {"Content-Type": "text/plain"})
    assert (status, json.loads(text)) == (200, {"success": True})
    assert titles(server, "m-rn", 2) == ["Settings tour", "Welcome, Mo"]

    # The same batch again, as a retry: nothing new is decided.
    key = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    status, _ = post(server, "/v1/b", body.encode(), {
        "Content-Type": "application/json; charset=utf-8",
        "Authorization": key,
        "X-Retry-Count": "1",
    })
    assert status == 200
    metrics = server.get("/metrics").decode()
    assert "nudge_client_retries_total 1" in metrics
    # Evaluation runs behind ingest: give it time to (not) decide again.
    time.sleep(1.5)
    assert titles(server, "m-rn", 2) == ["Settings tour", "Welcome, Mo"]


def test_a_mobile_batch_with_a_wrong_key_is_refused_and_one_bad_event_does_not_sink_it(server):
    events = journey("m-mixed", "analytics-kotlin")
    status, text = post(server, "/v1/b", json.dumps(
        {"batch": events, "sentAt": now(), "writeKey": "not-a-key"}).encode(),
        {"Content-Type": "text/plain"})
    assert status == 401 and json.loads(text)["error"] == "unknown_write_key"

    bad = event("track", "m-mixed", "analytics-kotlin", event="Step Completed", properties={})
    status, text = post(server, "/v1/b", json.dumps(
        {"batch": [*events, bad], "sentAt": now(), "writeKey": WRITE_KEY}).encode(),
        {"Content-Type": "text/plain"})
    body = json.loads(text)
    assert status == 400 and body["accepted"] == 3
    assert [r["index"] for r in body["rejected"]] == [3]
    assert titles(server, "m-mixed", 2) == ["Settings tour", "Welcome, Mo"]
