"""The HTTP API as a contract. schemathesis (PyPI) reads the description a live `nudge serve`
serves at /openapi.json (schema/openapi.json, built into the binary: the same bytes, checked
here) and sends generated requests, valid and invalid, to every operation with the
credentials each asks for (tests/schemathesis_hooks.py), over loopback. Every check runs: no server error, every
status, content type, header and body as described, invalid input refused, valid input taken,
authentication enforced, other methods answered 405 with `Allow`.

The live inbox stream never ends, so schemathesis cannot read an answer of it: it is left out
of that run and checked here against the description by hand.

NUDGE_CONTRACT_MAX_EXAMPLES sets the examples per operation (default 25); the figures of a
run are printed (`pytest -s`) and kept in docs/reliability.md."""

import http.client
import importlib
import json
import os
import subprocess
import sys
import time
import types
import urllib.parse

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import contract_support as cs
from serve_support import ROOT

MAX_EXAMPLES = int(os.environ.get("NUDGE_CONTRACT_MAX_EXAMPLES", "25"))
SCHEMATHESIS = os.path.join(os.path.dirname(sys.executable), "schemathesis")
STREAM = "/v1/users/{userId}/inbox/stream"


@pytest.fixture(scope="module")
def seeded():
    server = cs.start()
    try:
        users = ["c-ada", "c-bob", "c-cyd", "c-dan"]
        yield server, cs.seed(server, users, erasable=["c-erase-1", "c-erase-2"])
    finally:
        server.stop()


def validator(schema_name: str):
    """A validator for one schema of the description's components."""
    doc = cs.description()
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:nudge-openapi", resource)
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:nudge-openapi#/components/schemas/{schema_name}"}, registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_the_description_is_served_at_openapi_json(seeded):
    server, _ = seeded
    status, headers, body = cs.request(server, "GET", "/openapi.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert body == cs.DESCRIPTION.read_bytes()


def run_schemathesis(server, seed, tmp_path, *args, tamper=False):
    """Runs the CLI against the live server, every check on (the default; tests/
    schemathesis.toml turns two off for some operations, saying why). Returns the process, the
    hooks' tally with the CLI's JSON report as `report`, and the seconds taken."""
    (tmp_path / "seed.json").write_text(json.dumps(seed))
    tally_path = tmp_path / "tally.json"
    report_path = tmp_path / "report.json"
    command = [
        SCHEMATHESIS, "--config-file", str(ROOT / "tests" / "schemathesis.toml"),
        # The file the server serves (the test above holds them equal byte for byte): read
        # from the server's URL, schemathesis would leave out the operation that serves it.
        "run", str(cs.DESCRIPTION), "--url", server.base,
        "--mode", "all", "--seed", "20261207", "--workers", "1",
        "--generation-database", "none", "--exclude-path", STREAM, "--max-redirects", "0",
        "--request-timeout", "10", "--report", "json", "--report-json-path", str(report_path),
        *args,
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
           "PYTHONPATH": str(ROOT / "tests"), "NUDGE_CONTRACT_SEED": str(tmp_path / "seed.json"),
           "NUDGE_CONTRACT_TALLY": str(tally_path), "NO_COLOR": "1",
           "NUDGE_CONTRACT_TAMPER": "1" if tamper else "0"}
    started = time.monotonic()
    # Run in a scratch folder: schemathesis keeps crash files beside where it runs.
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    seconds = time.monotonic() - started
    assert tally_path.exists() and report_path.exists(), run.stdout[-5000:] + run.stderr[-5000:]
    tally = json.loads(tally_path.read_text())
    tally["report"] = json.loads(report_path.read_text())
    return run, tally, seconds


def section(output: str, title: str) -> str:
    """One section of the CLI's output (FAILURES, with a curl line to reproduce each; ERRORS)."""
    start = output.find(f"= {title} =")
    if start < 0:
        return output[-20000:]
    end = output.find("\n=", output.find("\n", start))
    return output[start:end if end >= 0 else None]


def failures(tally) -> dict[str, set[str]]:
    """The failures of a run: code and title -> operations."""
    return {f"{f['code']} {f['title']}": set(f["operations"])
            for f in tally["report"]["failures"]}


def test_schemathesis_finds_nothing_off_the_description_on_any_operation(seeded, tmp_path):
    server, seed = seeded
    run, tally, seconds = run_schemathesis(server, seed, tmp_path,
                                           "--max-examples", str(MAX_EXAMPLES))
    answers = tally["answers"]
    requests = sum(n for _, _, n in answers)
    cases = tally["report"]["test_cases"]
    found = failures(tally)
    server_errors = [(op, status, n) for op, status, n in answers if status >= 500]
    print(f"\nschemathesis: {len(tally['checked'])} operations, {cases['generated']} cases "
          f"generated, {requests} requests, {cases['unique_failures']} unique failures, "
          f"{len(server_errors)} kinds of 5xx, {seconds:.0f} s "
          f"({MAX_EXAMPLES} examples an operation)")

    assert found == {}, (found, section(run.stdout, "FAILURES"))
    assert server_errors == [], server_errors
    assert tally["report"]["errors"] == [], (tally["report"]["errors"], section(run.stdout, "ERRORS"))
    assert run.returncode == 0, run.stdout[-30000:]
    expected = {f"{m} {p}" for m, p in cs.operations(cs.description()) if p != STREAM}
    assert set(tally["checked"]) == expected, "operations schemathesis did not exercise"
    # Authenticated operations were answered for real, not only refused.
    answered = {op for op, status, _ in answers if 200 <= status < 400}
    for op in ["GET /v1/users/{userId}/inbox", "POST /v1/users/{userId}/inbox/{id}/read",
               "POST /v1/users/{userId}/inbox/{id}/dismiss", "GET /v1/admin/users/{userId}",
               "GET /v1/admin/reports", "GET /v1/admin/reports/experiments/{id}",
               "POST /v1/track", "POST /v1/batch", "GET /v1/c/{token}", "GET /v1/o/{token}",
               "POST /v1/unsubscribe"]:
        assert op in answered, f"{op} was never answered 2xx/3xx"


def test_the_run_fails_on_an_answer_off_the_description(seeded, tmp_path):
    """The run above can fail: the same run, with one answer spoiled on its way to the checks
    (a body the description does not allow) and another turned into a server error, fails and
    names both."""
    server, seed = seeded
    run, tally, _ = run_schemathesis(server, seed, tmp_path, "--max-examples", "5",
                                     "--include-path", "/healthz",
                                     "--include-path", "/v1/sdk/inbox.js",
                                     "--phases", "examples,coverage,fuzzing", tamper=True)
    assert run.returncode != 0, run.stdout[-5000:]
    found = failures(tally)
    assert "GET /healthz" in found.get("ST108 Response violates schema", set()), found
    assert "GET /v1/sdk/inbox.js" in found.get("ST101 Server error", set()), found


def test_the_isolation_check_fails_on_anothers_inbox_answered(tmp_path, monkeypatch):
    """The hooks' own check, `inbox_stays_its_users`, fails where a server would give one user
    another's inbox or item, and passes the answers it should."""
    users = {"ada": ["00000000000000a1"], "bob": ["00000000000000b1"]}
    seed = {"users": list(users), "items": users, "inbox_secret": "s"}
    (tmp_path / "seed.json").write_text(json.dumps(seed))
    monkeypatch.setenv("NUDGE_CONTRACT_SEED", str(tmp_path / "seed.json"))
    monkeypatch.delenv("NUDGE_CONTRACT_TALLY", raising=False)
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    hooks = importlib.import_module("schemathesis_hooks")

    inbox, read = "/v1/users/{userId}/inbox", "/v1/users/{userId}/inbox/{id}/read"

    def answer(path, user, hash_of, item=None, status=200, items=()):
        method = "GET" if path == inbox else "POST"
        case = types.SimpleNamespace(
            method=method, operation=types.SimpleNamespace(path=path, method=method),
            path_parameters={"userId": user, **({"id": item} if item else {})},
            headers={"X-User-Hash": hooks.user_hash(hash_of)})
        response = types.SimpleNamespace(status_code=status,
                                         json=lambda: {"items": [{"id": i} for i in items]})
        return hooks.inbox_stays_its_users(None, response, case)

    assert answer(inbox, "ada", "ada", items=users["ada"]) is None
    assert answer(read, "ada", "ada", item=users["ada"][0]) is None
    assert answer(read, "ada", "ada", item=users["bob"][0], status=404) is None
    assert answer(inbox, "ada", "bob", status=403) is None
    for wrong in [lambda: answer(inbox, "ada", "bob"),
                  lambda: answer(inbox, "ada", "ada", items=users["bob"]),
                  lambda: answer(read, "ada", "ada", item=users["bob"][0])]:
        with pytest.raises(AssertionError):
            wrong()


def test_the_inbox_stream_answers_as_described(seeded):
    server, seed = seeded
    user = seed["users"][1]
    path = f"/v1/users/{cs.quoted(user)}/inbox/stream"
    error = validator("Error")

    status, headers, body = cs.request(server, "GET", path)
    assert status == 401 and headers["content-type"] == "application/json"
    error.validate(json.loads(body))
    assert json.loads(body)["error"] == "missing_user_hash"
    other = cs.user_hash(seed["users"][0])
    status, _, body = cs.request(server, "GET", path, {"X-User-Hash": other})
    assert status == 403 and json.loads(body)["error"] == "invalid_user_hash"
    # A user id that is not UTF-8 once decoded: refused in JSON like any other.
    status, headers, body = cs.request(server, "GET", "/v1/users/%FF/inbox/stream")
    assert status == 401 and headers["content-type"] == "application/json", body
    status, headers, body = cs.request(server, "POST", path, {"X-User-Hash": cs.user_hash(user)})
    assert status == 405 and headers["allow"] == "GET" and json.loads(body)["error"] == "method_not_allowed"

    # The stream: the first event is the whole inbox, as GET /v1/users/{userId}/inbox has it.
    url = urllib.parse.urlparse(server.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("GET", path, headers={"X-User-Hash": cs.user_hash(user)})
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("content-type").startswith("text/event-stream")
        lines = []
        while not (lines and lines[-1] == ""):
            lines.append(r.fp.readline().decode().rstrip("\r\n"))
    finally:
        conn.close()
    fields = dict(line.split(": ", 1) for line in lines if ": " in line)
    assert fields["event"] == "inbox"
    validator("Inbox").validate(json.loads(fields["data"]))
