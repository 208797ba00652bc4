"""The inbox API the widget uses, against a real `nudge serve`: ETag and 304, click links (a
forged, altered or foreign token gets a page and no redirect; only web URLs), the widget's
script, the live stream's authentication."""

import base64
import hashlib
import hmac
import http.client
import json
import urllib.parse

import pytest

from serve_support import ROOT, Server, eventually

WRITE_KEY = "wk_inbox"
INBOX_SECRET = "inbox-api-secret"


@pytest.fixture(scope="module")
def server():
    s = Server(ROOT / "tests" / "sdk-rules", "--write-key", WRITE_KEY,
               "--inbox-secret", INBOX_SECRET)
    yield s
    s.stop()


def request(server, method, path, headers=None, body=None):
    url = urllib.parse.urlparse(server.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def hash_of(user):
    return hmac.new(INBOX_SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()


def offer(server, user, url):
    body = json.dumps({"batch": [
        {"type": "track", "userId": user, "event": "Offer Shown",
         "properties": {"title": "An offer", "url": url}},
    ]})
    key = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    status, _, text = request(server, "POST", "/v1/batch",
                              {"Authorization": f"Basic {key}", "Content-Type": "application/json"},
                              body)
    assert status == 200, text

    def items():
        _, _, data = request(server, "GET", f"/v1/users/{user}/inbox", {"X-User-Hash": hash_of(user)})
        found = json.loads(data)["items"]
        return found if found else None

    return eventually(items)


def test_the_inbox_has_an_etag_and_answers_304_while_nothing_changed(server):
    offer(server, "api-etag", "https://example.com/a")
    headers = {"X-User-Hash": hash_of("api-etag")}
    status, h, _ = request(server, "GET", "/v1/users/api-etag/inbox", headers)
    assert status == 200 and h["etag"].startswith('"')
    assert "private" in h["cache-control"]
    status, h2, body = request(server, "GET", "/v1/users/api-etag/inbox",
                               {**headers, "If-None-Match": h["etag"]})
    assert (status, body, h2["etag"]) == (304, b"", h["etag"])


def test_a_click_link_records_and_redirects_only_where_the_message_points(server):
    [item] = offer(server, "api-click", "https://example.com/offer?x=1")
    assert item["click"].startswith("/v1/c/")
    status, h, _ = request(server, "GET", item["click"])
    assert status == 302 and h["location"] == "https://example.com/offer?x=1"
    assert h["cache-control"] == "no-store"

    token = item["click"].removeprefix("/v1/c/")
    parts = token.split(".")
    evil = base64.urlsafe_b64encode(b"https://evil.example.com/").decode().rstrip("=")
    mallory = base64.urlsafe_b64encode(b"mallory").decode().rstrip("=")
    for forged in [".".join([*parts[:4], evil, parts[5]]),
                   ".".join([mallory, *parts[1:]]),
                   token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
                   "not-a-token"]:
        status, h, page = request(server, "GET", f"/v1/c/{forged}")
        assert status == 403 and "location" not in h, forged
        assert b"not valid" in page


def test_a_link_to_anything_but_a_web_page_is_not_followed(server):
    [item] = offer(server, "api-js", "javascript:alert(1)")
    status, h, page = request(server, "GET", item["click"])
    assert status == 400 and "location" not in h
    assert b"does not lead to a web page" in page


def test_the_widget_script_is_served_with_a_type_and_a_tag(server):
    status, h, js = request(server, "GET", "/v1/sdk/inbox.js")
    assert status == 200 and h["content-type"].startswith("text/javascript")
    assert h["etag"] and "max-age" in h["cache-control"]
    assert b"customElements.define('nudge-inbox'" in js


def test_the_live_stream_needs_the_user_hash(server):
    status, _, body = request(server, "GET", "/v1/users/api-sse/inbox/stream")
    assert status == 401 and json.loads(body)["error"] == "missing_user_hash"
    status, _, body = request(server, "GET", "/v1/users/api-sse/inbox/stream",
                              {"X-User-Hash": hash_of("someone-else")})
    assert status == 403
    # With the hash, the first event is the inbox itself.
    url = urllib.parse.urlparse(server.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("GET", "/v1/users/api-sse/inbox/stream", headers={"X-User-Hash": hash_of("api-sse")})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-type").startswith("text/event-stream")
    first = b""
    while b"\n\n" not in first:
        first += r.read1(4096)
    conn.close()
    assert first.startswith(b"event: inbox\n"), first
    data = [line[6:] for line in first.decode().split("\n") if line.startswith("data: ")]
    assert json.loads("".join(data))["user_id"] == "api-sse"
