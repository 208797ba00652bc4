"""Faults at every hop of the AWS path, the small run (scripts/fault_run.py; the long one is
in docs/reliability.md): the four function binaries (the debug build scripts/test.sh makes)
on moto behind the fault-injecting proxy, driven as Lambda drives them. Every decision is
counted: none lost, none made twice, no mail or webhook sent twice, every dead letter
redriven to completion. Also the proxy's faults themselves, and the redrive's reading of DLQ
messages."""

import json
import subprocess
import sys
import threading
import uuid

import boto3
import botocore.config
import pytest

from serve_support import ROOT, nudge_binary

sys.path.insert(0, str(ROOT / "scripts"))
import lambda_cold_start as lcs  # noqa: E402
import redrive  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402

MOTO = [sys.executable, str(ROOT / "scripts" / "moto_serve.py")]


def test_a_small_fault_run_loses_and_doubles_nothing(tmp_path):
    out = tmp_path / "faults.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fault_run.py"), "--users", "300", "--seed", "20261207",
         "--bin-dir", str(nudge_binary().parent), "--json", str(out)],
        capture_output=True, text=True, timeout=1500,
    )
    results = json.loads(out.read_text()) if out.exists() else None
    assert results, run.stdout[-3000:] + run.stderr[-3000:]
    print(json.dumps({k: results[k] for k in ("seconds", "decisions", "mails", "webhooks", "dead_letters")}))
    # The run's own verdict covers everything below; the asserts say which part failed.
    assert run.returncode == 0, json.dumps(results, indent=1)[:6000]
    assert results["events_acknowledged"] == 3000
    assert results["problems"] == [], results["problems"]
    decisions = results["decisions"]
    assert decisions["lost"] == 0 and decisions["extra"] == 0, decisions
    assert decisions["found"] == decisions["expected"] > 1000
    assert not any(k.endswith(": sending") for k in decisions["by_outcome"]), decisions
    mails = results["mails"]
    assert mails["twice"] == 0 and mails["sent_but_not_in_ses"] == 0, mails
    # A mail not sent was never sent again after a lost answer, refused by SES at the last
    # try, or decided before the user's identify reached evaluate: nothing else.
    assert mails["unexplained"] == [], mails
    maybe = mails["may_have_been_sent"]
    assert mails["sent_once"] + maybe["in_ses"] + maybe["not_in_ses"] + mails["refused_at_the_last_try"] + \
        mails["decided_before_the_address_arrived"] == mails["decisions"], mails
    assert results["inbox"]["missing"] == 0 and results["inbox"]["items"] == results["inbox"]["decisions"]
    assert results["webhooks"]["twice"] == 0
    assert results["webhooks"]["distinct"] == results["webhooks"]["decisions"]
    # Faults of every kind reached the functions, at about the share asked for.
    proxy = results["proxy"]
    assert set(proxy["by_fault"]) == {"error500", "error503", "throttle", "timeout", "reset", "lost", "partial"}
    assert 0.10 < proxy["faults"] / proxy["calls"] < 0.20, proxy
    # Whatever reached a DLQ was redriven (the run waits for the redriven work to finish).
    letters = results["dead_letters"]
    for queue, n in letters["parked"].items():
        assert letters["redriven"].get(queue, 0) >= n, letters
    assert not any(letters["left"].values()), letters


@pytest.fixture(scope="module")
def moto():
    proc, endpoint = lcs.start_moto(MOTO)
    yield endpoint
    proc.kill()
    proc.wait(10)


def client(url, service):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="t",
                        aws_secret_access_key="t",
                        config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=5,
                                                      connect_timeout=2))


def table(endpoint):
    name = f"t{uuid.uuid4().hex[:6]}"
    client(endpoint, "dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    return name


def only(endpoint, fault):
    proxy = FaultProxy(endpoint, share=1.0, seed=7, hold=1.0, faults={fault: 1}).start()
    return proxy, client(proxy.url, "dynamodb")


def stored(endpoint, name, key):
    return client(endpoint, "dynamodb").get_item(TableName=name, Key={"pk": {"S": key}}).get("Item")


def test_the_proxy_answers_errors_in_the_services_shape_without_performing(moto):
    name = table(moto)
    for fault, code in [("throttle", None), ("error500", "InternalServerError"), ("error503", "ServiceUnavailable")]:
        proxy, ddb = only(moto, fault)
        with pytest.raises(ddb.exceptions.ClientError) as e:
            ddb.put_item(TableName=name, Item={"pk": {"S": fault}})
        got = e.value.response["Error"]["Code"]
        if code:
            assert got == code
        else:
            assert got in ("ProvisionedThroughputExceededException", "ThrottlingException")
        assert stored(moto, name, fault) is None, "an error answer must not perform the call"
        proxy.shutdown()


def test_a_lost_answer_performs_the_call_and_a_reset_does_not(moto):
    name = table(moto)
    for fault, performed in [("lost", True), ("reset", False)]:
        proxy, ddb = only(moto, fault)
        with pytest.raises(Exception) as e:
            ddb.put_item(TableName=name, Item={"pk": {"S": fault}})
        assert "reset" in str(e.value).lower() or "aborted" in str(e.value).lower() or "closed" in str(e.value).lower(), e.value
        assert (stored(moto, name, fault) is not None) == performed, fault
        proxy.shutdown()


def test_a_timeout_holds_the_call_past_the_callers_patience(moto):
    name = table(moto)
    proxy, _ = only(moto, "timeout")
    impatient = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1", aws_access_key_id="t",
                             aws_secret_access_key="t",
                             config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=0.5))
    with pytest.raises(Exception) as e:
        impatient.put_item(TableName=name, Item={"pk": {"S": "timeout"}})
    assert "timeout" in type(e.value).__name__.lower() or "timed out" in str(e.value).lower(), e.value
    proxy.shutdown()


def test_partial_batches_fail_some_entries_and_leave_keys_unprocessed(moto):
    name = table(moto)
    ddb = client(moto, "dynamodb")
    for i in range(20):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}})
    proxy, faulty = only(moto, "partial")
    got = faulty.batch_get_item(RequestItems={name: {"Keys": [{"pk": {"S": f"k{i}"}} for i in range(20)]}})
    read = {i["pk"]["S"] for i in got["Responses"].get(name, [])}
    left = {k["pk"]["S"] for k in got["UnprocessedKeys"][name]["Keys"]}
    assert left and not read & left and read | left == {f"k{i}" for i in range(20)}

    bus = client(moto, "events")
    bus.create_event_bus(Name=name)
    events = client(proxy.url, "events")
    answer = events.put_events(Entries=[{"Source": "t", "DetailType": "x", "Detail": "{}", "EventBusName": name}
                                        for _ in range(10)])
    failed = [e for e in answer["Entries"] if "ErrorCode" in e]
    assert answer["FailedEntryCount"] == len(failed) > 0 and len(answer["Entries"]) == 10
    assert all(e["ErrorCode"] in ("InternalFailure", "ThrottlingException") for e in failed)
    assert all("EventId" in e for e in answer["Entries"] if "ErrorCode" not in e)
    proxy.shutdown()


def test_the_same_seed_draws_the_same_faults():
    def draws(seed):
        p = FaultProxy("http://127.0.0.1:9", share=0.5, seed=seed)
        try:
            return [p.draw("dynamodb")[0] for _ in range(200)]
        finally:
            p.server_close()
    assert draws(3) == draws(3) != draws(4)
    assert 60 < sum(d is not None for d in draws(3)) < 140


def test_the_redrive_hands_back_both_dead_letter_shapes_and_keeps_what_fails():
    event = {"version": "0", "id": "e1", "detail-type": "Message Requested", "source": "nudge", "detail": {"a": 1}}
    record = {"version": "1.0", "requestContext": {"condition": "RetriesExhausted"}, "requestPayload": event,
              "responseContext": {"functionError": "Unhandled"}}
    assert redrive.event_of(json.dumps(event)) == event
    assert redrive.event_of(json.dumps(record)) == event

    queue = [{"MessageId": "1", "ReceiptHandle": "h1", "Body": json.dumps(record)},
             {"MessageId": "2", "ReceiptHandle": "h2", "Body": json.dumps({**event, "id": "e2"})}]
    batches = [queue, None]
    invoked, deleted = [], []
    lock = threading.Lock()

    def invoke(e):
        with lock:
            if e["id"] == "e2":
                raise RuntimeError("throttled")
            invoked.append(e["id"])

    assert redrive.redrive(lambda n: batches.pop(0), invoke, deleted.append) == (1, 1)
    assert invoked == ["e1"] and deleted == ["h1"], "a failed invoke leaves its message in the queue"
