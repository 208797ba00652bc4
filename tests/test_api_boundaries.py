"""Who may do what, against a live `nudge serve` on loopback (issue 16, section 6).

- One user can never read, mark read or dismiss another's inbox items: many users, each with
  items, and random attempts (another user's hash, forged and altered hashes, another user's
  item ids on one's own inbox, ids that decode to another user's) after which the victim's
  inbox is as it was.
- Unsubscribe and click tokens cannot be forged, altered or moved to another user (the HTTP
  side of `nudge_service::signing`'s tests).
- The admin endpoints, enumerated from schema/openapi.json, answer a missing key and a wrong
  one identically (status, body, challenge) on every path, whether it exists or not, and
  whatever the method."""

import base64
import hashlib
import hmac
import json
import random
import string
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import contract_support as cs
from serve_support import eventually

USERS = [f"b-{name}" for name in ["ann", "ben", "cat", "dov", "eve", "fay"]]
# A user apart, whose own reads and dismissals change nothing the attempts compare.
OWNER = "b-own"


@pytest.fixture(scope="module")
def seeded():
    server = cs.start()
    try:
        yield server, cs.seed(server, USERS + [OWNER], erasable=[])
    finally:
        server.stop()


# ---------------------------------------------------------------- inbox isolation

def forged_hashes(user: str) -> st.SearchStrategy:
    """Hashes that are not `user`'s: another secret's, altered, cut, random, empty."""
    good = cs.user_hash(user)
    return st.one_of(
        st.just(hmac.new(b"another-secret", user.encode(), hashlib.sha256).hexdigest()),
        st.integers(0, 63).map(lambda i: good[:i] + ("0" if good[i] != "0" else "1") + good[i + 1:]),
        st.integers(0, 63).map(lambda i: good[:i]),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.just(""),
        st.just(good + "00"),
        st.just(good[1:] + good[0]),
        # (" " + good is no forgery: HTTP drops the spaces around a header's value.)
    )


def path_forms(user: str) -> st.SearchStrategy:
    """Ways to write `user` as a path segment: plain, every byte percent-encoded, mixed."""
    every = "".join(f"%{b:02X}" for b in user.encode())
    return st.sampled_from([cs.quoted(user), every, every.lower(),
                            cs.quoted(user[0]) + cs.quoted(user[1:])])


@st.composite
def attempts(draw):
    attacker, victim = draw(st.permutations(USERS).map(lambda p: (p[0], p[1])))
    return {
        "attacker": attacker,
        "victim": victim,
        "victim_path": draw(path_forms(victim)),
        "forged": draw(forged_hashes(victim)),
        "action": draw(st.sampled_from(["read", "dismiss"])),
        "item": draw(st.integers(0, cs.TIPS_PER_USER - 1)),
    }


def action(server, user_path: str, item: str, what: str, user_hash: str):
    headers = {"X-User-Hash": user_hash} if user_hash is not None else {}
    return cs.request(server, "POST", f"/v1/users/{user_path}/inbox/{item}/{what}", headers)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(attempt=attempts())
def test_one_user_never_reads_marks_or_dismisses_anothers_inbox(seeded, attempt):
    server, seed = seeded
    attacker, victim = attempt["attacker"], attempt["victim"]
    victim_items = seed["items"][victim]
    item = victim_items[attempt["item"]]
    before = cs.inbox(server, victim)

    # The victim's inbox, with the attacker's own valid hash or a forged one.
    for credential in [cs.user_hash(attacker), attempt["forged"], None]:
        headers = {"X-User-Hash": credential} if credential is not None else {}
        status, _, body = cs.request(server, "GET", f"/v1/users/{attempt['victim_path']}/inbox",
                                     headers)
        assert status in (401, 403), (status, body)
        assert not any(i.encode() in body for i in victim_items)
        status, _, body = cs.request(server, "GET",
                                     f"/v1/users/{attempt['victim_path']}/inbox/stream", headers)
        assert status in (401, 403), (status, body)
        # Marking or dismissing the victim's item on the victim's inbox.
        status, _, body = action(server, attempt["victim_path"], item, attempt["action"], credential)
        assert status in (401, 403), (status, body)

    # The victim's item on the attacker's own inbox, with the attacker's valid hash.
    status, _, body = action(server, cs.quoted(attacker), item, attempt["action"],
                             cs.user_hash(attacker))
    assert status == 404 and json.loads(body)["error"] == "unknown_item", body

    after = cs.inbox(server, victim)
    assert after == before, "the victim's inbox changed"
    assert all(i["read_at"] is None for i in after["items"])


def test_a_user_marks_and_dismisses_only_their_own_items(seeded):
    """The same requests with the owner's hash do work: the refusals above are not an inbox
    that refuses everyone."""
    server, seed = seeded
    owner = OWNER
    first, second = seed["items"][owner][:2]
    status, _, body = action(server, cs.quoted(owner), first, "read", cs.user_hash(owner))
    assert status == 200, body
    status, _, body = action(server, cs.quoted(owner), second, "dismiss", cs.user_hash(owner))
    assert status == 200, body
    items = {i["id"]: i for i in cs.inbox(server, owner)["items"]}
    assert items[first]["read_at"] is not None and second not in items


# ---------------------------------------------------------------- admin refusals

ADMIN_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH"]


def admin_paths(seed) -> list[str]:
    """Every admin path of the description, filled in with known and unknown ids, and admin
    paths that do not exist."""
    doc = cs.description()
    templates = sorted({p for p, item in doc["paths"].items()
                        for op in item.values() if isinstance(op, dict)
                        and {"AdminKey"} & {k for req in op.get("security", []) for k in req}})
    # Nine operations on eight paths (a user's GET and DELETE share one).
    assert len(templates) >= 8, templates
    fills = {"userId": [USERS[0], "nobody-here", "%2F..%2Fx"],
             "id": [seed["rules"]["triggers"][0], seed["rules"]["funnels"][0],
                    seed["rules"]["experiments"][0], "nope"]}
    paths = []
    for t in templates:
        variants = [t]
        for name, values in fills.items():
            variants = [v.replace("{" + name + "}", value) for v in variants for value in values]
        paths += variants
    return paths + ["/v1/admin", "/v1/admin/", "/v1/admin/nothing/here",
                    "/v1/admin/users", "/v1/admin/reports/triggers", "/v1/admin/users/x/bogus"]


def refusal(server, method, path, headers):
    status, h, body = cs.request(server, method, path, headers, body=b"" if method != "GET" else None)
    return status, h.get("content-type"), h.get("www-authenticate"), body


def test_admin_endpoints_refuse_a_missing_and_a_wrong_key_identically_on_every_path(seeded):
    server, seed = seeded
    rng = random.Random(16)
    wrong_keys = [
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {cs.ADMIN_KEY[:-1]}"},
        {"Authorization": f"Bearer {cs.ADMIN_KEY}x"},
        {"Authorization": f"Bearer {cs.ADMIN_KEY.upper()}"},
        {"Authorization": f"Basic {cs.ADMIN_KEY}"},
        {"Authorization": cs.ADMIN_KEY},
        {"Authorization": f"Bearer {cs.WRITE_KEY}"},
        {"X-Admin-Key": cs.ADMIN_KEY},
        {"Authorization": "Bearer " + "".join(rng.choices(string.ascii_letters, k=len(cs.ADMIN_KEY)))},
    ]
    answers = {}
    for path in admin_paths(seed):
        for method in ADMIN_METHODS:
            for headers in [{}] + wrong_keys:
                answers.setdefault(refusal(server, method, path, headers), []).append(
                    (method, path, headers))
    assert len(answers) == 1, {k: v[:3] for k, v in answers.items()}
    (status, content_type, challenge, body), = answers
    assert (status, content_type) == (401, "application/json")
    assert challenge and challenge.startswith("Bearer")
    assert json.loads(body)["error"] == "invalid_admin_key"
    # And the key itself opens them.
    status, _, _, body = refusal(server, "GET", "/v1/admin/reports",
                                 {"Authorization": f"Bearer {cs.ADMIN_KEY}"})
    assert status == 200, body
    path = f"/v1/admin/users/{urllib.parse.quote(USERS[0])}"
    assert refusal(server, "GET", path, {"Authorization": f"Bearer {cs.ADMIN_KEY}"})[0] == 200


# ---------------------------------------------------------------- link tokens

def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def token_user(token: str) -> str:
    part = token.split(".")[0]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def altered(token: str, part: int) -> str:
    """The token with one character of one dot-separated part changed."""
    parts = token.split(".")
    p = parts[part]
    parts[part] = ("B" if p[0] != "B" else "C") + p[1:]
    return ".".join(parts)


def unsubscribed(server, user: str) -> bool:
    status, _, body = cs.request(server, "GET", f"/v1/admin/users/{cs.quoted(user)}",
                                 {"Authorization": f"Bearer {cs.ADMIN_KEY}"})
    assert status == 200, body
    return json.loads(body)["user"]["unsubscribed"]


def post_unsubscribe(server, token: str):
    return cs.request(server, "POST", f"/v1/unsubscribe?token={urllib.parse.quote(token)}",
                      {"Content-Type": "application/x-www-form-urlencoded"},
                      b"List-Unsubscribe=One-Click")


def test_an_unsubscribe_token_cannot_be_forged_altered_or_moved_to_another_user(seeded):
    server, seed = seeded
    token = next(t for t in seed["unsubscribe_tokens"] if token_user(t) == USERS[0])
    victim = USERS[1]
    moved = ".".join([b64(victim)] + token.split(".")[1:])
    forgeries = [moved, altered(token, 1), altered(token, 2), token[:-2], token + "A",
                 ".".join(token.split(".")[:2]), b64(victim) + ".0000000000000001." + b64("x" * 32)]
    for forged in forgeries:
        status, _, body = post_unsubscribe(server, forged)
        assert status in (400, 403), (forged, status, body)
        assert json.loads(body)["success"] is False
    # The genuine one unsubscribes its own user, and only them.
    status, _, body = post_unsubscribe(server, token)
    assert status == 200, body
    assert eventually(lambda: unsubscribed(server, USERS[0]))
    assert not unsubscribed(server, victim)


def test_a_click_token_cannot_be_forged_altered_or_moved_to_another_user(seeded):
    server, seed = seeded
    token = seed["click_tokens"][0]
    owner = token_user(token)
    other = next(u for u in USERS + [OWNER] if u != owner)
    parts = token.split(".")
    forgeries = [
        ".".join([b64(other)] + parts[1:]),                       # another user
        ".".join(parts[:5] + [b64("https://evil.example/")] + parts[6:]),  # another URL
        altered(token, 1), altered(token, 3), altered(token, 6), token[:-3],
    ]
    for forged in forgeries:
        status, headers, body = cs.request(server, "GET", f"/v1/c/{forged}")
        assert status == 403, (forged, status, body)
        assert "location" not in headers
    status, headers, _ = cs.request(server, "GET", f"/v1/c/{token}")
    assert status == 302 and not headers["location"].startswith("https://evil.example")
