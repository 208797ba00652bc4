"""A `nudge serve` on the contract rule set (tests/contract-rules) with users whose messages left
real credentials behind: inbox items with click links, mails with unsubscribe, click and open
links, a pending timer. For tests/test_openapi_contract.py and tests/test_api_boundaries.py."""

import base64
import email
import hashlib
import hmac
import http.client
import json
import re
import urllib.parse
from pathlib import Path

from serve_support import ROOT, Server, eventually

WRITE_KEY = "wk_contract"
ADMIN_KEY = "ak_contract"
INBOX_SECRET = "inbox-secret-contract"
SIGNING_SECRET = "signing-secret-contract"
RULES = ROOT / "tests" / "contract-rules"
DESCRIPTION = ROOT / "schema" / "openapi.json"

# The ids the contract rules define (tests/contract-rules/nudge.yaml).
RULE_IDS = {"triggers": ["welcome", "tip", "reminder"], "funnels": ["activation"],
            "experiments": ["tip-wording"]}
TIPS_PER_USER = 3


def start() -> Server:
    return Server(RULES, "--write-key", WRITE_KEY, "--admin-key", ADMIN_KEY,
                  "--inbox-secret", INBOX_SECRET, "--signing-secret", SIGNING_SECRET)


def user_hash(user: str) -> str:
    return hmac.new(INBOX_SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()


def quoted(user: str) -> str:
    """A user id as one path segment."""
    return urllib.parse.quote(user, safe="")


def request(server: Server, method: str, path: str, headers=None, body=None):
    """(status, headers with lower-case names, body bytes)."""
    url = urllib.parse.urlparse(server.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def post_events(server: Server, path: str, payload: dict):
    key = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    status, _, body = request(server, "POST", path, {"Authorization": f"Basic {key}",
                                                     "Content-Type": "application/json"},
                              json.dumps(payload))
    assert status == 200, body


def inbox(server: Server, user: str) -> dict:
    status, _, body = request(server, "GET", f"/v1/users/{quoted(user)}/inbox",
                              {"X-User-Hash": user_hash(user)})
    assert status == 200, body
    return json.loads(body)


def seed(server: Server, users: list[str], erasable: list[str]) -> dict:
    """Sends each user a mail and TIPS_PER_USER inbox items and arms a timer; `erasable` users
    get state only. Returns what a client of the API would hold: credentials, item ids, links."""
    for u in users + erasable:
        post_events(server, "/v1/identify", {"userId": u, "traits": {
            "email": f"{u}@example.com", "first_name": u.title()}})
    for u in users:
        post_events(server, "/v1/batch", {"batch": [
            {"type": "track", "userId": u, "event": "Signed Up", "messageId": f"{u}-signup"},
            *({"type": "track", "userId": u, "event": "Tip Wanted", "messageId": f"{u}-tip-{i}"}
              for i in range(TIPS_PER_USER)),
            {"type": "track", "userId": u, "event": "Remind Me", "messageId": f"{u}-remind"},
        ]})
    post_events(server, "/v1/track", {"userId": users[0], "event": "Plan Chosen",
                                      "properties": {"seats": 2}})

    items = {}
    for u in users:
        found = eventually(lambda u=u: (lambda got: got if len(got["items"]) == TIPS_PER_USER else None)(
            inbox(server, u)), timeout=30)
        assert found, f"{u}'s inbox was not filled"
        items[u] = [i["id"] for i in found["items"]]
    mails = eventually(lambda: (lambda m: m if len(m) >= len(users) else None)(server.outbox()),
                       timeout=30)
    assert mails, "the welcome mails were not written"

    links = {"unsubscribe": set(), "click": set(), "open": set()}
    for found in (inbox(server, u) for u in users):
        links["click"] |= {i["click"].removeprefix("/v1/c/") for i in found["items"] if i["click"]}
    for path in mails:
        text = mail_text(path)
        links["unsubscribe"] |= set(re.findall(r"/v1/unsubscribe\?token=([A-Za-z0-9_.-]+)", text))
        links["click"] |= set(re.findall(r"/v1/c/([A-Za-z0-9_.-]+)", text))
        links["open"] |= set(re.findall(r"/v1/o/([A-Za-z0-9_.-]+?)\.gif", text))
    assert all(links.values()), {k: len(v) for k, v in links.items()}
    return {
        "write_key": WRITE_KEY, "admin_key": ADMIN_KEY, "inbox_secret": INBOX_SECRET,
        "users": users, "erasable": erasable, "items": items,
        "unsubscribe_tokens": sorted(links["unsubscribe"]),
        "click_tokens": sorted(links["click"]), "open_tokens": sorted(links["open"]),
        "rules": RULE_IDS,
    }


def mail_text(path: Path) -> str:
    """Headers and every decoded part of an .eml file."""
    msg = email.message_from_bytes(path.read_bytes())
    parts = [str(v) for v in msg.values()]
    for part in msg.walk():
        payload = part.get_payload(decode=True)
        if payload:
            parts.append(payload.decode("utf-8", "replace"))
    return "\n".join(parts)


def description() -> dict:
    return json.loads(DESCRIPTION.read_text())


def operations(doc: dict) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation of the description."""
    return {(m.upper(), p) for p, item in doc["paths"].items()
            for m, op in item.items() if isinstance(op, dict) and "operationId" in op}
