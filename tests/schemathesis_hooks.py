"""Schemathesis hooks for the HTTP API contract run (tests/test_openapi_contract.py), loaded by
the CLI through SCHEMATHESIS_HOOKS.

- Credentials, per the operation's security scheme: the write key as the HTTP Basic
  username, the admin key as a bearer token, and for the inbox the user hash of the very
  userId the case asks about (so authenticated operations are exercised for real, not only
  their 401s), or now and then another seeded user's.
- A check of who sees what (`inbox_stays_its_users`): no inbox answer to another user's
  hash, and no seeded item read, marked or dismissed by anyone but its owner.
- Known values: generated user ids, inbox item ids, link tokens and report ids are sometimes
  swapped for ones the test seeded (NUDGE_CONTRACT_SEED, a JSON file), so the answers about
  real users, items, links and rules are checked too, not only the 404s of random ones.
- A tally (NUDGE_CONTRACT_TALLY, written at exit): requests and answers by operation, and the
  answers that went through the checks; the failures are the CLI's JSON report's.
"""

import atexit
import base64
import hashlib
import hmac
import json
import os
import random
import threading
import urllib.parse
from collections import Counter

import schemathesis
from hypothesis import strategies as st

SEED = json.loads(open(os.environ["NUDGE_CONTRACT_SEED"]).read())


def _schemes(operation):
    """The security scheme names an operation accepts."""
    security = operation.definition.raw.get("security") or []
    return {name for requirement in security for name in requirement}


# Deterministic: the run is one worker, so the cases come in the same order every time.
_chance = random.Random(20261207)


def user_hash(user: str) -> str:
    return hmac.new(SEED["inbox_secret"].encode(), user.encode(), hashlib.sha256).hexdigest()


def _user_of(case) -> str:
    """The user id a case's path names. The server hashes the decoded segment; schemathesis
    sends a value's decoded form quoted again, so `%41` arrives as `A`."""
    return urllib.parse.unquote(str((case.path_parameters or {}).get("userId", "")))


@schemathesis.auth(refresh_interval=None, retry_on=[])
class Credentials:
    """The credential each operation asks for; the inbox hash is per case (per userId)."""

    def get(self, case, ctx):
        schemes = _schemes(ctx.operation)
        if "AdminKey" in schemes:
            return ("Authorization", f"Bearer {SEED['admin_key']}")
        if "WriteKeyBasic" in schemes:
            token = base64.b64encode(f"{SEED['write_key']}:".encode()).decode()
            return ("Authorization", f"Basic {token}")
        if "UserHash" in schemes:
            user = _user_of(case)
            # Now and then a seeded user asks with another seeded user's valid hash, which
            # must be refused (the check `inbox_stays_its_users` below).
            others = [u for u in SEED["users"] if u != user]
            if user in SEED["users"] and _chance.random() < 0.25:
                user = _chance.choice(others)
            return ("X-User-Hash", user_hash(user))
        return None

    def set(self, case, data, ctx):
        name, value = data
        case.headers = case.headers or {}
        case.headers[name] = value


def _sometimes(generated, known):
    """The generated value, or one of the known ones."""
    if not known:
        return st.just(generated)
    return st.one_of(st.just(generated), st.sampled_from(known))


@schemathesis.hook
def flatmap_path_parameters(ctx, path_parameters):
    path = ctx.operation.path
    if not path_parameters:
        return st.just(path_parameters)
    params = dict(path_parameters)
    if "{userId}" in path and "/inbox/{id}/" in path:
        # A seeded user with one of their own items, or (to try isolation) with another's.
        pairs = [(u, i) for u, items in SEED["items"].items() for i in items]
        pairs += [(u, i) for u in SEED["items"] for v, items in SEED["items"].items() if v != u
                  for i in items[:1]]
        return _sometimes(params, [{**params, "userId": u, "id": i} for u, i in pairs])
    if "{userId}" in path:
        users = SEED["erasable"] if ctx.operation.method.upper() == "DELETE" else SEED["users"]
        return _sometimes(params, [{**params, "userId": u} for u in users])
    if path == "/v1/c/{token}":
        return _sometimes(params, [{**params, "token": t} for t in SEED["click_tokens"]])
    if path == "/v1/o/{token}":
        return _sometimes(params, [{**params, "token": t + ".gif"} for t in SEED["open_tokens"]])
    for kind in ("triggers", "funnels", "experiments"):
        if path == f"/v1/admin/reports/{kind}/{{id}}":
            return _sometimes(params, [{**params, "id": i} for i in SEED["rules"][kind]])
    return st.just(path_parameters)


@schemathesis.hook
def flatmap_query(ctx, query):
    path = ctx.operation.path
    if path == "/v1/unsubscribe" and isinstance(query, dict):
        return _sometimes(query, [{**query, "token": t} for t in SEED["unsubscribe_tokens"]])
    if path == "/v1/admin/users/{userId}/explain" and isinstance(query, dict) and "trigger" in query:
        return _sometimes(query, [{**query, "trigger": t} for t in SEED["rules"]["triggers"]])
    return st.just(query)


# ---------------------------------------------------------------- tally

_lock = threading.Lock()
_answers = Counter()      # (operation, status) -> count
_checked = Counter()      # operation -> cases whose answer went through the checks


def _label(case):
    return f"{case.operation.method.upper()} {case.operation.path}"


# The run's own check (tests/test_openapi_contract.py): with NUDGE_CONTRACT_TAMPER set, two
# answers are spoiled as the checks receive them, a body off the description and a server
# error, which the run must report.
TAMPER = os.environ.get("NUDGE_CONTRACT_TAMPER") == "1"


def _tamper(case, response):
    if case.operation.path == "/healthz" and response.status_code == 200:
        response.content = b'{"status": 5}'
        response.content_size = len(response.content)
    elif case.operation.path == "/v1/sdk/inbox.js" and response.status_code == 200:
        response.status_code = 500


@schemathesis.hook
def after_call(ctx, case, response):
    if TAMPER:
        _tamper(case, response)
    with _lock:
        _answers[(_label(case), response.status_code)] += 1


# Who owns each seeded inbox item.
OWNER = {item: user for user, items in SEED["items"].items() for item in items}


@schemathesis.check
def inbox_stays_its_users(ctx, response, case):
    """No inbox answer goes to a hash that is not the user's own, and no user reads, marks or
    dismisses a seeded item of another (schemathesis's own checks see a 200 or a 404 as both
    described, not whose item it was)."""
    path = case.operation.path
    # The operation's own answer (not a preflight or another method's probe), given.
    if (not path.startswith("/v1/users/{userId}/inbox") or response.status_code != 200
            or str(getattr(case, "method", "")).upper() != case.operation.method.upper()):
        return None
    user = _user_of(case)
    presented = (case.headers or {}).get("X-User-Hash", "")
    if not hmac.compare_digest(presented.strip().lower(), user_hash(user)):
        raise AssertionError(f"{user}'s inbox answered {response.status_code} to another hash")
    item = str((case.path_parameters or {}).get("id", ""))
    if item in OWNER and OWNER[item] != user:
        raise AssertionError(f"{user} changed {OWNER[item]}'s item {item}")
    if path == "/v1/users/{userId}/inbox":
        shown = [i.get("id") for i in response.json().get("items", [])]
        others = [i for i in shown if i in OWNER and OWNER[i] != user]
        if others:
            raise AssertionError(f"{user}'s inbox shows items of others: {others}")
    return None


@schemathesis.check
def tallied(ctx, response, case):
    """Not a check: counts the answers that went through the checks, per operation (the CLI
    runs every enabled check, this one too, on each)."""
    with _lock:
        _checked[_label(case)] += 1
    return None


@atexit.register
def _write_tally():
    path = os.environ.get("NUDGE_CONTRACT_TALLY")
    if not path:
        return
    with _lock:
        tally = {
            "answers": [[op, status, n] for (op, status), n in sorted(_answers.items())],
            "checked": dict(sorted(_checked.items())),
        }
    with open(path, "w") as f:
        json.dump(tally, f, indent=1)
