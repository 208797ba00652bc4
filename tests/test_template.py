"""template.yaml: cfn-lint and SAM's own validation, the stack's structure (functions, bus rules
with retry policies and dead-letter queues, the table's TTL and stream, the TTL filter, the
sweeper), environment and IAM against what the Rust code reads and calls, and bus routing with
the template's own event patterns on a real moto server (rules with SQS targets on loopback)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
AWS_SRC = ROOT / "crates" / "nudge-aws" / "src"
BIN = Path(sys.executable).parent

FUNCTIONS = {
    "IngestFunction": "nudge-ingest",
    "EvaluateFunction": "nudge-evaluate",
    "ScheduleDelayFunction": "nudge-schedule-delay",
    "DeliverFunction": "nudge-deliver",
}

# Who consumes each bus detail-type (crates/nudge-service/src/bus.rs). The outcomes are
# published for rules of the team's own; nudge routes them nowhere.
ROUTES = {
    "Events Accepted": {"EvaluateFunction"},
    "Timer Fired": {"EvaluateFunction"},
    "Delay Requested": {"ScheduleDelayFunction"},
    "Delay Cancelled": {"ScheduleDelayFunction"},
    "Message Requested": {"DeliverFunction"},
    "Message Sent": set(),
    "Message Suppressed": set(),
    "Message Failed": set(),
    "Timers Fired": {"EvaluateFunction"},
    "Timers Changed": {"ScheduleDelayFunction"},
}


# ---------------------------------------------------------------- loading


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (`!Ref X` reads as `{"Ref": "X"}`)."""


def _intrinsic(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else "Fn::" + suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


@pytest.fixture(scope="module")
def template():
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def resources(template, kind):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def function_property(template, name, prop):
    """A function's property with the template's Globals applied (the function's own wins)."""
    own = template["Resources"][name]["Properties"]
    return own.get(prop, template.get("Globals", {}).get("Function", {}).get(prop))


def function_env(template, name):
    env = dict(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    own = template["Resources"][name]["Properties"].get("Environment", {}).get("Variables", {})
    return {**env, **own}


def bus_rules(template):
    """The rules on nudge's own bus (not the sweeper's schedule on the default bus)."""
    return {
        k: r for k, r in resources(template, "AWS::Events::Rule").items()
        if r["Properties"].get("EventBusName") == {"Ref": "Bus"}
    }


def target_function(target):
    arn = target["Arn"]
    assert "Fn::GetAtt" in arn and arn["Fn::GetAtt"][1] == "Arn", arn
    return arn["Fn::GetAtt"][0]


def rust_sources():
    """The adapters' non-test source text, by file: modules declared `#[cfg(test)] mod x;` and
    inline `#[cfg(test)] mod tests { ... }` blocks are left out."""
    test_only = []
    for p in AWS_SRC.rglob("*.rs"):
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", p.read_text()):
            base = p.parent if p.name in ("mod.rs", "lib.rs") else p.parent / p.stem
            test_only.append(base / m.group(1))
    out = {}
    for p in AWS_SRC.rglob("*.rs"):
        if any(p == t.with_suffix(".rs") or t in p.parents for t in test_only):
            continue
        text = p.read_text()
        inline = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
        out[p] = text[: inline.start()] if inline else text
    return out


def quiet_env(home):
    """No AWS credentials, config or region of the machine's: the checks must work offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1")
    return env


# ---------------------------------------------------------------- linters


def test_cfn_lint_passes():
    out = subprocess.run([str(BIN / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("args", [["validate"], ["validate", "--lint"]], ids=["translate", "lint"])
def test_sam_validate_passes_offline(args, tmp_path):
    sam = BIN / "sam"
    if not sam.exists():
        pytest.skip("aws-sam-cli is not installed in this venv (tests/requirements.txt has it)")
    out = subprocess.run([str(sam), *args, "--template", str(TEMPLATE)], capture_output=True,
                         text=True, env=quiet_env(tmp_path), cwd=tmp_path, timeout=300)
    assert out.returncode == 0 and "is a valid SAM Template" in out.stdout, out.stdout + out.stderr


# ---------------------------------------------------------------- structure


def test_four_functions_built_by_cargo_lambda_for_al2023(template):
    functions = resources(template, "AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    for name, binary in FUNCTIONS.items():
        f = functions[name]
        assert f["Metadata"]["BuildMethod"] == "rust-cargolambda", name
        assert f["Metadata"]["BuildProperties"]["Binary"] == binary, name
        assert function_property(template, name, "Runtime") == "provided.al2023", name
        assert function_property(template, name, "Handler") == "bootstrap", name
        arch = function_property(template, name, "Architectures")
        assert arch in (["arm64"], ["x86_64"]), (name, arch)
        # cargo lambda builds at CodeUri; with a Binary it must be the workspace root.
        assert function_property(template, name, "CodeUri") == ".", name


def test_binaries_named_in_the_template_are_workspace_binaries():
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not on PATH")
    out = subprocess.run([cargo, "metadata", "--no-deps", "--format-version", "1", "--offline"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    bins = {
        t["name"]: p["name"] for p in json.loads(out.stdout)["packages"] for t in p["targets"]
        if "bin" in t["kind"]
    }
    for binary in FUNCTIONS.values():
        # One package per function, its binary named after it.
        assert bins.get(binary) == binary, (binary, bins)


def test_rules_layer_is_built_by_the_validating_makefile(template):
    layer = template["Resources"]["RulesLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    makefile = ROOT / layer["Metadata"]["ContextPath"] / "Makefile"
    text = makefile.read_text()
    assert "build-RulesLayer: check" in text and "validate --rules" in text
    assert layer["Properties"]["ContentUri"] == "examples/"
    for name in FUNCTIONS:
        assert function_property(template, name, "Layers") == [{"Ref": "RulesLayer"}], name
    assert function_env(template, "EvaluateFunction")["NUDGE_RULES"] == {"Fn::Sub": "/opt/rules/${RuleSet}"}
    # The default rule set is one the layer carries.
    default = template["Parameters"]["RuleSet"]["Default"]
    assert (ROOT / "examples" / default).is_dir()


def test_the_rules_layer_build_validates_and_compiles_every_rule_set(tmp_path):
    """`sam build` runs this target; here with the debug CLI and without journey tests."""
    from serve_support import nudge_binary
    nudge = nudge_binary()
    done = subprocess.run(
        ["make", "-f", str(ROOT / "infra" / "Makefile"), "build-RulesLayer",
         f"RULES_DIR={ROOT / 'examples'}", f"ARTIFACTS_DIR={tmp_path}", f"NUDGE={nudge}",
         "JOURNEY_TESTS=0"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for example in ("saas-onboarding", "ecommerce"):
        layer = tmp_path / "rules" / example
        assert (layer / "nudge-compiled.json").is_file(), list(layer.iterdir())
        ok = subprocess.run([str(nudge), "validate", "--rules", str(layer)],
                            capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr


def test_parameters_and_outputs(template):
    params = template["Parameters"]
    for p in ("SenderAddress", "RuleSet", "LogLevel"):
        assert p in params
    assert set(params["LogLevel"]["AllowedValues"]) >= {"error", "warn", "info", "debug"}
    outputs = template["Outputs"]
    for o in ("ApiUrl", "TableName", "BusName"):
        assert o in outputs


def test_every_bus_rule_target_has_retries_and_a_dead_letter_queue(template):
    rules = resources(template, "AWS::Events::Rule")
    assert rules
    queues = resources(template, "AWS::SQS::Queue")
    for name, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            retry = target["RetryPolicy"]
            assert 0 <= retry["MaximumRetryAttempts"] <= 185, name
            assert 60 <= retry["MaximumEventAgeInSeconds"] <= 86400, name
            dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
            assert dlq in queues, (name, dlq)
            # EventBridge may only drop events into a queue whose policy lets this rule.
            policies = [
                p for p in resources(template, "AWS::SQS::QueuePolicy").values()
                if {"Ref": dlq} in p["Properties"]["Queues"]
            ]
            assert policies, (name, dlq)
            sources = json.dumps([p["Properties"]["PolicyDocument"] for p in policies])
            assert json.dumps({"Fn::GetAtt": [name, "Arn"]}) in sources, (name, dlq)
            # Lambda must let the rule invoke the function.
            fn = target_function(target)
            perms = [
                p for p in resources(template, "AWS::Lambda::Permission").values()
                if p["Properties"]["FunctionName"] == {"Ref": fn}
                and p["Properties"]["SourceArn"] == {"Fn::GetAtt": [name, "Arn"]}
            ]
            assert len(perms) == 1, (name, fn)


def test_functions_park_failed_async_events_in_their_dead_letter_queues(template):
    for name in ("EvaluateFunction", "ScheduleDelayFunction", "DeliverFunction"):
        cfg = template["Resources"][name]["Properties"]["EventInvokeConfig"]
        assert cfg["DestinationConfig"]["OnFailure"]["Type"] == "SQS", name


def test_table_has_ttl_a_stream_and_the_due_index(template):
    table = template["Resources"]["Table"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    # The stream handler reads the expired timer from the old image.
    assert table["StreamSpecification"]["StreamViewType"] in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")
    # crates/nudge-aws/src/dynamodb.rs: DUE_INDEX and the key attributes.
    source = (AWS_SRC / "dynamodb.rs").read_text()
    due_index = re.search(r'DUE_INDEX: &str = "([^"]+)"', source).group(1)
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [due_index]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    ttl_attr = re.search(r'\.item\(\s*"ttl"', (AWS_SRC / "dynamodb" / "timers.rs").read_text())
    assert ttl_attr, "timers carry the `ttl` attribute the table expires"


def stream_mapping(template):
    events = template["Resources"]["ScheduleDelayFunction"]["Properties"]["Events"]
    mappings = [e["Properties"] for e in events.values() if e["Type"] == "DynamoDB"]
    assert len(mappings) == 1
    return mappings[0]


def test_stream_mapping_filters_ttl_deletions_and_reports_item_failures(template):
    m = stream_mapping(template)
    assert m["Stream"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert m["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    [f] = m["FilterCriteria"]["Filters"]
    pattern = json.loads(f["Pattern"])
    # What schedule-delay fires on (expired_timer, read in crates/nudge-lambda-events).
    stream_rs = (ROOT / "crates" / "nudge-lambda-events" / "src" / "stream.rs").read_text()
    principal = re.search(r'TTL_PRINCIPAL: &str = "([^"]+)"', stream_rs).group(1)
    timer_sk = re.search(r'TIMER_SK: &str = "([^"]+)"', (AWS_SRC / "dynamodb" / "timers.rs").read_text()).group(1)
    assert pattern["eventName"] == ["REMOVE"]
    assert pattern["userIdentity"] == {"type": ["Service"], "principalId": [principal]}
    assert pattern["dynamodb"]["Keys"] == {"sk": {"S": [timer_sk]}}
    assert pattern["dynamodb"]["OldImage"] == {"due": {"N": [{"exists": True}]}}


def test_sweeper_runs_every_minute_on_schedule_delay(template):
    sweeps = [
        r for r in resources(template, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    assert len(sweeps) == 1
    rule = sweeps[0]["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    assert "EventBusName" not in rule  # schedules run on the default bus
    assert [target_function(t) for t in rule["Targets"]] == ["ScheduleDelayFunction"]


def test_the_delay_queue_feeds_schedule_delay_with_per_message_failures(template):
    res = template["Resources"]
    [mapping] = resources(template, "AWS::Lambda::EventSourceMapping").values()
    m = mapping["Properties"]
    assert m["EventSourceArn"] == {"Fn::GetAtt": ["TimerQueue", "Arn"]}
    assert m["FunctionName"] == {"Ref": "ScheduleDelayFunction"}
    # crates/nudge-aws/src/lambda/schedule/delayed.rs answers batchItemFailures by messageId.
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # A batching window adds to every timer's lateness: none unless the deployer asks.
    assert m["MaximumBatchingWindowInSeconds"] == {"Ref": "TimerBatchingWindowSeconds"}
    window = template["Parameters"]["TimerBatchingWindowSeconds"]
    assert window["Default"] == 0 and window["MaxValue"] <= 5
    queue = res["TimerQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["TimerQueueDLQ", "Arn"]}
    assert queue["VisibilityTimeout"] >= function_property(template, "ScheduleDelayFunction", "Timeout")
    # Longer than SQS's longest delay, so a queued wake-up never expires unseen.
    assert queue["MessageRetentionPeriod"] > 900
    assert res["TimerQueueDLQ"]["Properties"]["SqsManagedSseEnabled"] is True
    env = function_env(template, "ScheduleDelayFunction")
    assert env["NUDGE_TIMER_QUEUE"] == {"Ref": "TimerQueue"}
    assert env["NUDGE_TIMER_HORIZON"] == {"Ref": "TimerHorizonSeconds"}
    horizon = template["Parameters"]["TimerHorizonSeconds"]
    # Within what SQS can delay, and longer than the sweep period (a sweep must see every
    # timer inside the horizon before it falls due).
    assert horizon["MaxValue"] <= 900 and horizon["MinValue"] >= 60
    assert horizon["Default"] == 900
    # Only schedule-delay reads the queue settings.
    for name in FUNCTIONS:
        if name != "ScheduleDelayFunction":
            assert "NUDGE_TIMER_QUEUE" not in function_env(template, name), name


def test_an_alarm_watches_timer_lateness_as_schedule_delay_reports_it(template):
    emf = (AWS_SRC / "emf.rs").read_text()
    metric = re.search(r'TIMER_FIRED_LATENESS: &str = "([^"]+)"', emf).group(1)
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("MetricName") == metric]
    assert len(alarms) == 1, alarms
    [alarm] = alarms
    assert alarm["Namespace"] == re.search(r'NAMESPACE: &str = "([^"]+)"', emf).group(1)
    assert alarm["ExtendedStatistic"] == "p99"
    # The metric's dimensionless set ([]): every path's lateness together.
    assert "Dimensions" not in alarm
    assert 1000 <= alarm["Threshold"] <= 60000


def test_alarms_watch_every_dead_letter_queue_and_function(template):
    alarms = json.dumps(resources(template, "AWS::CloudWatch::Alarm"))
    for q in resources(template, "AWS::SQS::Queue"):
        assert json.dumps({"Fn::GetAtt": [q, "QueueName"]}) in alarms, q
    for name in FUNCTIONS:
        assert json.dumps({"Ref": name}) in alarms, name
    assert resources(template, "AWS::CloudWatch::Dashboard")


def test_dashboard_body_is_infra_dashboard_json(template):
    out = subprocess.run([sys.executable, str(ROOT / "infra" / "embed_dashboard.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # Every ${...} names a parameter, a resource (or its attribute) or a pseudo parameter.
    names = set(template["Parameters"]) | set(template["Resources"])
    for ref in re.findall(r"\$\{([^}]+)\}", body):
        assert ref.startswith("AWS::") or ref.split(".")[0] in names, ref
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    assert widgets
    # The bus-rule widgets name the template's rules.
    rule_names = {r["Properties"]["Name"]["Fn::Sub"].replace("${StageName}", "x")
                  for r in resources(template, "AWS::Events::Rule").values()}
    named = set(re.findall(r'"RuleName","([^"]+)"', re.sub(r"\$\{StageName\}", "x", body)))
    assert named == rule_names, named ^ rule_names


# ---------------------------------------------------------------- environment and IAM


def test_environment_matches_what_the_functions_read(template):
    read = set()
    for text in rust_sources().values():
        read |= set(re.findall(r'"(NUDGE_[A-Z_]+)"', text))
    required_by_all = {"NUDGE_TABLE", "NUDGE_BUS", "NUDGE_RULES"}
    required = {
        "IngestFunction": required_by_all | {"NUDGE_WRITE_KEYS", "NUDGE_SIGNING_SECRET"},
        "EvaluateFunction": required_by_all,
        "ScheduleDelayFunction": required_by_all,
        "DeliverFunction": required_by_all | {"NUDGE_SENDER", "NUDGE_PUBLIC_URL", "NUDGE_SIGNING_SECRET"},
    }
    for name, needs in required.items():
        env = function_env(template, name)
        nudge_vars = {k for k in env if k.startswith("NUDGE_")}
        assert needs <= nudge_vars, (name, needs - nudge_vars)
        assert nudge_vars <= read, (name, "set but never read", nudge_vars - read)
        assert env["RUST_LOG"] == {"Fn::Sub": "warn,nudge=${LogLevel}"}


# The IAM action each SDK call needs.
SDK_ACTIONS = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "batch_get_item": "dynamodb:BatchGetItem",
    # IAM has no action of its own for a transaction: each of its writes needs its own (the
    # report counters' transactions put a marker and update counter items).
    "transact_write_items": ("dynamodb:PutItem", "dynamodb:UpdateItem"),
    "put_events": "events:PutEvents",
    "send_email": "ses:SendEmail",
    # SendMessageBatch is authorised by sqs:SendMessage.
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",
}

# What the delay queue's event source mapping calls with schedule-delay's role (no Rust code
# calls these: Lambda's poller does).
MAPPING_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}

# What each function's handler calls (crates/nudge-service: api.rs, evaluate.rs, schedule.rs,
# deliver.rs, through the adapters in crates/nudge-aws/src).
FUNCTION_ACTIONS = {
    # publish; inbox list (Query) / read / dismiss (UpdateItem); admin user (GetItem), timer
    # (GetItem), decisions (Query), reports (Query); GDPR erase (Query, BatchWriteItem).
    "IngestFunction": {"events:PutEvents", "dynamodb:GetItem", "dynamodb:Query",
                       "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"},
    # load (a batch's users: BatchGetItem; one user: GetItem), conditional save (PutItem),
    # clear outbox (UpdateItem), publish; report counts (a transaction: marker PutItem,
    # counters UpdateItem; forgetting them UpdateItem).
    "EvaluateFunction": {"events:PutEvents", "dynamodb:GetItem", "dynamodb:BatchGetItem",
                         "dynamodb:PutItem", "dynamodb:UpdateItem"},
    # set (UpdateItem), cancel / restore (PutItem), claim and queue mark (UpdateItem), sweep
    # (Query on the due index), a queued timer read on arrival (GetItem), near timers sent to
    # the delay queue, and the queue's mapping.
    "ScheduleDelayFunction": {"events:PutEvents", "dynamodb:GetItem", "dynamodb:PutItem",
                              "dynamodb:UpdateItem", "dynamodb:Query", "sqs:SendMessage",
                              *MAPPING_ACTIONS},
    # delivery log begin (PutItem, GetItem) / finish (PutItem), inbox (PutItem), SES, publish.
    "DeliverFunction": {"events:PutEvents", "dynamodb:GetItem", "dynamodb:PutItem",
                        "ses:SendEmail"},
}


def statements(template, name):
    out = []
    for policy in template["Resources"][name]["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, (name, policy)
        out += policy["Statement"]
    return out


def as_list(v):
    return v if isinstance(v, list) else [v]


def test_iam_actions_are_exactly_what_the_adapters_call(template):
    called = set()
    for text in rust_sources().values():
        for call in re.findall(r"\.\s*([a-z_]+)\(\)\s*\n?\s*\.", text):
            if call in SDK_ACTIONS:
                action = SDK_ACTIONS[call]
                called |= set(action) if isinstance(action, tuple) else {action}
    granted_total = set()
    for name, expected in FUNCTION_ACTIONS.items():
        granted = set()
        for st in statements(template, name):
            assert st["Effect"] == "Allow"
            for r in as_list(st["Resource"]):
                assert r != "*" and "*" not in json.dumps(r), (name, st["Sid"], r)
            granted |= set(as_list(st["Action"]))
        assert granted == expected, (name, granted ^ expected)
        granted_total |= granted
    called |= MAPPING_ACTIONS
    assert granted_total == called, ("granted but never called", granted_total - called,
                                     "called but never granted", called - granted_total)


def test_iam_resources_are_the_table_bus_and_sending_identity(template):
    for name in FUNCTIONS:
        for st in statements(template, name):
            actions = as_list(st["Action"])
            resources_ = json.dumps(st["Resource"])
            if all(a.startswith("dynamodb:") for a in actions):
                assert "Table" in resources_, (name, st)
            elif actions == ["events:PutEvents"]:
                assert st["Resource"] == {"Fn::GetAtt": ["Bus", "Arn"]}, (name, st)
            elif all(a.startswith("sqs:") for a in actions):
                assert st["Resource"] == {"Fn::GetAtt": ["TimerQueue", "Arn"]}, (name, st)
            else:
                assert actions == ["ses:SendEmail"], (name, st)
                assert ":identity/" in resources_ and ":configuration-set/" in resources_


# ---------------------------------------------------------------- routing on moto


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto():
    server = BIN / "moto_server"
    if not server.exists():
        pytest.fail(f"{server} is missing: scripts/test.sh installs tests/requirements.txt")
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                log.seek(0)
                pytest.fail("moto_server did not start: " + log.read().decode(errors="replace"))
            time.sleep(0.2)
    yield endpoint
    proc.terminate()
    proc.wait(10)
    log.close()


def client(endpoint, service):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_routes_cover_every_bus_detail_type():
    bus_rs = (ROOT / "crates" / "nudge-service" / "src" / "bus.rs").read_text()
    block = re.search(r"DETAIL_TYPES: \[&str; \d+\] = \[(.*?)\];", bus_rs, re.S).group(1)
    assert re.findall(r'"([^"]+)"', block) == list(ROUTES)
    assert re.search(r'SOURCE: &str = "nudge"', bus_rs)


def sample_detail(detail_type):
    """One plausible detail of each type (the patterns match on the envelope only)."""
    report = {"id": "01JQ0000000000000000000000", "user_id": "u1", "trigger": "profile-reminder",
              "channel": "email", "message": "profile_reminder", "variant": "default",
              "experiment": None, "reason": None, "error": None, "at": 1772438400000,
              "finished_at": 1772438401000, "attempts": 1}
    body = {
        "Events Accepted": {"events": [{"user_id": "u1", "message_id": "m1", "at": 1772438400000,
                                        "received_at": 1772438400000,
                                        "message": {"type": "track", "event": "Signed Up", "userId": "u1"}}]},
        "Timer Fired": {"user_id": "u1", "due": 1772438400000, "version": 3},
        "Delay Requested": {"user_id": "u1", "due": 1772438400000, "version": 3},
        "Delay Cancelled": {"user_id": "u1", "version": 4},
        "Message Requested": {"send": {"user_id": "u1", "trigger": "profile-reminder"}},
        "Message Sent": report,
        "Message Suppressed": {**report, "reason": "frequency_cap"},
        "Message Failed": {**report, "error": "SES: throttled"},
        "Timers Fired": {"timers": [{"user_id": "u1", "due": 1772438400000, "version": 3},
                                    {"user_id": "u2", "due": 1772438400000, "version": 1}]},
        "Timers Changed": {"set": [{"user_id": "u1", "due": 1772438400000, "version": 3}],
                           "cancel": [{"user_id": "u2", "version": 4}]},
    }[detail_type]
    return json.dumps({"type": detail_type, **body})


def drain(sqs, url):
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        msgs = got.get("Messages", [])
        if not msgs:
            return bodies
        for m in msgs:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture(scope="module")
def routed_bus(template, moto):
    """The template's bus rules on moto, each function's target an SQS queue of its own (and
    each rule's DLQ a queue too, with the template's retry policy)."""
    events, sqs = client(moto, "events"), client(moto, "sqs")
    bus = "nudge-routing-test"
    events.create_event_bus(Name=bus)
    queues = {}

    def queue(name):
        if name not in queues:
            url = sqs.create_queue(QueueName=f"routing-{name}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            queues[name] = (url, arn)
        return queues[name]

    rules = bus_rules(template)
    assert {target_function(t) for r in rules.values() for t in r["Properties"]["Targets"]} == \
        {"EvaluateFunction", "ScheduleDelayFunction", "DeliverFunction"}
    for name, rule in rules.items():
        props = rule["Properties"]
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(props["EventPattern"]),
                        State="ENABLED")
        targets = []
        for t in props["Targets"]:
            dlq = t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
            targets.append({"Id": t["Id"], "Arn": queue(target_function(t))[1],
                            "RetryPolicy": t["RetryPolicy"],
                            "DeadLetterConfig": {"Arn": queue(dlq)[1]}})
        out = events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        assert out["FailedEntryCount"] == 0, out
    for name in FUNCTIONS:
        queue(name)  # ingest's queue must stay empty: nothing on the bus is for it
    return events, sqs, bus, queues


@pytest.mark.parametrize("detail_type", list(ROUTES))
def test_bus_routes_each_detail_type_to_its_functions(routed_bus, detail_type):
    events, sqs, bus, queues = routed_bus
    for url, _ in queues.values():
        drain(sqs, url)
    out = events.put_events(Entries=[{"Source": "nudge", "DetailType": detail_type,
                                      "Detail": sample_detail(detail_type), "EventBusName": bus}])
    assert out["FailedEntryCount"] == 0, out
    landed = {}
    for name, (url, _) in queues.items():
        for body in drain(sqs, url):
            landed.setdefault(name, []).append(body)
    assert set(landed) == ROUTES[detail_type], landed
    for name, bodies in landed.items():
        # Exactly once per consumer, as the EventBridge envelope the handler deserializes.
        assert len(bodies) == 1, (name, bodies)
        [event] = bodies
        assert event["source"] == "nudge" and event["detail-type"] == detail_type
        assert event["detail"]["type"] == detail_type


def test_events_of_other_sources_are_not_routed(routed_bus):
    events, sqs, bus, queues = routed_bus
    for url, _ in queues.values():
        drain(sqs, url)
    entries = [{"Source": source, "DetailType": dt, "Detail": sample_detail(dt), "EventBusName": bus}
               for source in ("acme.billing", "nudge.test", "aws.events") for dt in ROUTES]
    for i in range(0, len(entries), 10):
        assert events.put_events(Entries=entries[i:i + 10])["FailedEntryCount"] == 0
    for name, (url, _) in queues.items():
        assert drain(sqs, url) == [], name


def stream_record(name, principal, sk, old_image):
    """A DynamoDB stream record as Lambda's filter sees it (recorded shape)."""
    record = {
        "eventID": "e1", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": 1772438400, "Keys": {"pk": {"S": "u#u1"}, "sk": {"S": sk}},
                     "OldImage": old_image, "SequenceNumber": "100", "SizeBytes": 90,
                     "StreamViewType": "OLD_IMAGE"},
    }
    if principal:
        record["userIdentity"] = {"type": "Service" if principal.endswith(".amazonaws.com") else "User",
                                  "principalId": principal}
    return record


def test_stream_filter_passes_only_ttl_deletions_of_live_timers(template, moto):
    """Lambda's filter criteria use EventBridge's pattern language: the template's filter,
    put under `detail` of a rule on moto, decides which stream records reach schedule-delay."""
    events, sqs = client(moto, "events"), client(moto, "sqs")
    bus = "nudge-stream-filter-test"
    events.create_event_bus(Name=bus)
    url = sqs.create_queue(QueueName="stream-filter")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    [f] = stream_mapping(template)["FilterCriteria"]["Filters"]
    pattern = {"source": ["stream.test"], "detail": json.loads(f["Pattern"])}
    events.put_rule(Name="ttl-filter", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="ttl-filter", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    live = {"pk": {"S": "u#u1"}, "sk": {"S": "timer"}, "due": {"N": "1772438400000"},
            "version": {"N": "3"}, "ttl": {"N": "1772438400"}, "gsi1pk": {"S": "timers#5"},
            "gsi1sk": {"N": "1772438400000"}}
    claimed = {"pk": {"S": "u#u1"}, "sk": {"S": "timer"}, "version": {"N": "3"},
               "claimed": {"BOOL": True}, "ttl": {"N": "1773043200"}}
    cancelled = {"pk": {"S": "u#u1"}, "sk": {"S": "timer"}, "version": {"N": "4"},
                 "cancelled": {"BOOL": True}, "ttl": {"N": "1773043200"}}
    delivery = {"pk": {"S": "u#u1"}, "sk": {"S": "dlv#01JQ"}, "ttl": {"N": "1780000000"}}
    ttl = "dynamodb.amazonaws.com"
    cases = {
        "ttl-live-timer": (stream_record("REMOVE", ttl, "timer", live), True),
        "ttl-claimed-tombstone": (stream_record("REMOVE", ttl, "timer", claimed), False),
        "ttl-cancelled-tombstone": (stream_record("REMOVE", ttl, "timer", cancelled), False),
        "ttl-delivery-log": (stream_record("REMOVE", ttl, "dlv#01JQ", delivery), False),
        "erase-by-user": (stream_record("REMOVE", "AROAEXAMPLE:nudge-ingest", "timer", live), False),
        "delete-no-identity": (stream_record("REMOVE", None, "timer", live), False),
        "timer-set": (stream_record("INSERT", None, "timer", live), False),
        "timer-claimed": (stream_record("MODIFY", None, "timer", live), False),
    }
    for case, (record, _) in cases.items():
        out = events.put_events(Entries=[{"Source": "stream.test", "DetailType": case,
                                          "Detail": json.dumps(record), "EventBusName": bus}])
        assert out["FailedEntryCount"] == 0
    passed = {b["detail-type"] for b in drain(sqs, url)}
    assert passed == {case for case, (_, ok) in cases.items() if ok}


# ---------------------------------------------------------------- HTTP routes

# Every path a Segment or RudderStack SDK posts to (crates/nudge-service/src/ingest.rs).
TRACKING_PATHS = {
    "/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias",
    "/v1/batch", "/v1/import",
    "/v1/t", "/v1/i", "/v1/p", "/v1/s", "/v1/g", "/v1/a", "/v1/b",
    "/beacon/v1/batch", "/v1/m",
}


def http_routes(template):
    events = template["Resources"]["IngestFunction"]["Properties"]["Events"]
    return {(e["Properties"]["Method"], e["Properties"]["Path"])
            for e in events.values() if e["Type"] == "HttpApi"}


def test_api_gateway_routes_every_sdk_path(template):
    posted = {path for method, path in http_routes(template) if method == "POST"}
    assert TRACKING_PATHS <= posted, sorted(TRACKING_PATHS - posted)
    cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    assert {"authorization", "*"} <= set(cors["AllowHeaders"])
    assert "retry-after" in cors["ExposeHeaders"]


def test_api_gateway_routes_every_operation_of_the_openapi_description(template):
    """The routes of the template are the operations of schema/openapi.json but those only
    `nudge serve` has (marked x-nudge-serve-only): an operation added to the API and
    described is routed on AWS too."""
    description = json.loads((ROOT / "schema" / "openapi.json").read_text())
    described = {(method.upper(), path)
                 for path, item in description["paths"].items()
                 for method, op in item.items()
                 if isinstance(op, dict) and "operationId" in op and not op.get("x-nudge-serve-only")}
    routed = http_routes(template)
    assert routed - described == set(), "routes the description lacks"
    assert described - routed == set(), "described operations API Gateway does not route"


def test_every_api_gateway_route_is_a_path_the_api_answers(template):
    """Each route of the template, asked of a real `nudge serve` (the same router as the ingest
    function), is answered by an endpoint: an authentication or validation error at most, never
    `not_found`."""
    from serve_support import Server

    server = Server(ROOT / "examples" / "saas-onboarding")
    try:
        for method, path in sorted(http_routes(template)):
            url = server.base + path.replace("{userId}", "u1").replace("{id}", "0000000000000001")
            req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            assert status != 404 or json.loads(body).get("error") != "not_found", (method, path, body)
            assert status != 405, (method, path, body)
    finally:
        server.stop()
