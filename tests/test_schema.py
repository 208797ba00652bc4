"""The JSON Schema for rule files (schema/nudge-rules.schema.json): the example rule sets and
complete valid snippets must pass; files `nudge validate` rejects (and two it accepts but
misreads, marked below) must fail."""

import json
import re
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schema" / "nudge-rules.schema.json"
EXAMPLE_FILES = sorted(
    p for ex in sorted((ROOT / "examples").iterdir()) if ex.is_dir() for p in ex.iterdir() if p.suffix in (".yaml", ".yml")
)


class CoreLoader(yaml.SafeLoader):
    """YAML 1.2 core schema, as nudge and editors read it: PyYAML's YAML 1.1 defaults would turn
    the key `on` into true and `21:00` into the number 1260."""


CoreLoader.yaml_implicit_resolvers = {}
for tag, pattern, first in [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]:
    CoreLoader.add_implicit_resolver(tag, re.compile(pattern), list(first))


def _int(loader, node):
    text = loader.construct_scalar(node)
    return int(text, 0) if text.startswith(("0o", "0x")) else int(text)


def _bool(loader, node):
    return loader.construct_scalar(node).lower() == "true"


CoreLoader.add_constructor("tag:yaml.org,2002:int", _int)
CoreLoader.add_constructor("tag:yaml.org,2002:bool", _bool)


def load(text):
    return yaml.load(text, Loader=CoreLoader)


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, text):
    return list(validator.iter_errors(load(textwrap.dedent(text))))


def test_every_property_has_a_description():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    defs = schema["$defs"]

    def described(sub):
        while isinstance(sub, dict):
            if "description" in sub:
                return True
            target = sub.get("$ref", "")
            sub = defs.get(target.rsplit("/", 1)[-1]) if target.startswith("#/$defs/") else None
        return False

    missing = []

    def walk(node, where):
        if not isinstance(node, dict):
            return
        for name, sub in node.get("properties", {}).items():
            if not described(sub) and sub is not False:
                missing.append(f"{where}/properties/{name}")
            walk(sub, f"{where}/properties/{name}")
        for name, sub in node.get("$defs", {}).items():
            walk(sub, f"{where}/$defs/{name}")
        for key in ("items", "additionalProperties"):
            walk(node.get(key), f"{where}/{key}")
        for key in ("allOf", "anyOf", "oneOf"):
            for i, sub in enumerate(node.get(key, [])):
                walk(sub, f"{where}/{key}/{i}")
        # `if`, `then` and `not` only constrain; editors show the descriptions above

    walk(schema, "#")
    assert missing == []


def test_examples_exist():
    assert len(EXAMPLE_FILES) >= 8, EXAMPLE_FILES


def test_loader_reads_yaml_1_2():
    assert load("on: x\nt: '21:00'\nu: 21:00\nv: yes\nw: true") == {
        "on": "x",
        "t": "21:00",
        "u": "21:00",
        "v": "yes",
        "w": True,
    }


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_file_is_valid(validator, path):
    found = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(load(path.read_text(encoding="utf-8")))]
    assert found == []


MESSAGES = """
messages:
  hello:
    channel: in_app
    in_app: {title: Hi, body: Hello}
"""

# Each is a whole rule set that `nudge validate` accepts too.
VALID = {
    "empty file": "",
    "comment only": "# nothing yet\n",
    "every trigger key": """
        segments:
          hesitant: {never: Feature Used}
        triggers:
          t-1:
            description: all the keys
            priority: urgent
            on: {event: Onboarding Step Viewed, where: {step_index: {gte: 3}, step: [team, payment]}}
            if: [{count: Login Failed, within: 10m, at_least: 3}, {properties: {step: {exists: true}}}]
            wait: 1h30m
            rearm: true
            cancel_on:
              - Onboarding Completed
              - {event: Onboarding Step Completed, where: {step: {ne: account}}, same: [step_index]}
            check: {time_since: Signed Up, first: true, at_most: 3d}
            exit: {not: {traits: {plan: {in: [pro, team]}}}}
            once: {per: step_index}
            cooldown: 24h
            experiment: exp
            data:
              items: {collect: Product Added, since: Order Completed, fields: [name, price], max: 10}
              views: {count: Product Viewed, after: Signed Up, within: 1d}
            send: {channel: in_app, message: hello}
          t-2:
            on: {segment_entered: hesitant}
            once: user
            send: {channel: in_app, message: hello}
          t-3:
            on: {segment_exited: hesitant}
            wait: 1d
            check: {in_segment: hesitant}
            send: {channel: in_app, message: hello}
        experiments:
          exp:
            holdout: 0.1
            variants:
              a: {weight: 50, wait: 10m}
              b: {weight: 50, message: hello}
        messages:
          hello:
            channel: in_app
            in_app: {title: Hi, body: "Hello {{ properties.step }}"}
        """,
    "shorthand forms": """
        tracking_plan:
          events:
            Signed Up:
            Feature Used: {properties: {feature: string}}
            Order Completed: {}
            Product Added: {properties: {name: string, sku: string}}
        triggers:
          t:
            on: "*"
            wait: 2m
            rearm: yes
            cancel_on: Order Completed
            once: false
            data:
              last: {collect: Product Added, fields: name}
            send: {channel: in_app, message: m}
          u:
            on: Product Added
            wait: 1h
            cancel_on: {event: Product Added, same: sku}
            if: {not: [{ever: Order Completed}, {count: Feature Used, in_session: true, exactly: 0}]}
            send: {channel: in_app, message: m}
        policies:
          exempt_priorities: urgent
          quiet_hours: [{channels: in_app, from: "8:00", to: "9:30"}]
        experiments:
          e: {holdout: "0%", variants: {one: {}}}
        messages:
          m:
            channel: in_app
            in_app: {title: T, body: B}
            variants:
              - {name: with-items, requires: data.last, in_app: {title: T, body: "{{ data.last[0].name }}"}}
        """,
    "every condition kind in a segment": """
        segments:
          other: {traits: {plan: free}}
          s:
            description: every kind
            any:
              - all: [{ever: Signed Up}, {never: {event: Order Completed, where: {total: {gt: 0}}}}]
              - not: {in_segment: other}
              - count: "*"
                in_session: true
                since: Order Completed
                more_than: 2
                less_than: 10
              - time_since: Product Added
                since: Order Completed
                first: true
                at_least: 24h
              - idle: {at_least: 7d}
              - sessions: {within: 7d, at_least: 3}
              - traits: {plan: pro, seats: {gte: 5}, email: {contains: "@"}, company: {exists: false}}
              - [{ever: page:Pricing}, {ever: screen:Home}]
        """,
    "policies, experiments, plan, settings": """
        name: demo
        settings: {default_timezone: Europe/Berlin, timezone_trait: tz, session_gap: 45m}
        tracking_plan:
          allow_unknown_events: false
          events:
            Signed Up:
            Cart Viewed: {}
            Product Added:
              description: added to cart
              allow_unknown_properties: false
              properties:
                product_id: string
                price: {type: number, min: 0, required: true}
                tier: {type: string, one_of: [a, b]}
        policies:
          frequency_caps:
            - {channel: email, max: 2, per: 7d}
            - {channel: in_app, max: 2, per: session}
          quiet_hours:
            - {channels: [email], from: "21:00", to: "08:00", action: suppress}
            - {from: "22:30", to: "06:00"}
          exempt_priorities: [urgent, high]
          min_gap: 4h
        experiments:
          exp:
            description: which message
            holdout: 10%
            variants:
              a: {weight: 2}
              b: {message: other, content: short}
          exp2: {holdout: "12.5%", variants: {only: {}}}
        messages:
          other:
            channel: email
            email: {subject: S, text: T}
            variants: [{name: short, email: {subject: S, text: T}}]
        """,
    "messages on every channel": """
        segments:
          explorer: {count: Feature Used, after: Signed Up, within: 5m, at_least: 3}
        messages:
          e:
            channel: email
            email: {subject: "Hi {{ traits.first_name | default: 'there' }}", html: "<p>Hi</p>"}
            variants:
              - {name: rich, when: {in_segment: explorer}, requires: data.items, email: {subject: S, text: T}}
              - {name: plain, requires: [properties.name], email: {subject: S, text: T, html: H}}
          i:
            channel: in_app
            in_app: {title: T, body: B, url: "https://example.com/{{ user_id }}"}
          w:
            channel: webhook
            webhook:
              url: https://hooks.example.com/nudge
              body: {user: "{{ user_id }}", trigger: "{{ trigger }}", tags: [a, b], n: 1}
        """,
}


@pytest.mark.parametrize("name", VALID)
def test_valid_snippet(validator, name):
    found = [f"{list(e.absolute_path)}: {e.message}" for e in errors(validator, VALID[name])]
    assert found == []


TRIGGER = """
triggers:
  t:
    on: Signed Up
    {extra}
    send: {{channel: {channel}, message: hello}}
"""


def trigger(extra="", channel="in_app"):
    return TRIGGER.format(extra=extra, channel=channel) + MESSAGES


INVALID = {
    # the cases the brief names
    "unknown trigger key": trigger("delay: 10m"),
    "bad duration": trigger("wait: 10 minutes"),
    "unknown channel": trigger(channel="sms"),
    "unknown priority": trigger("priority: medium"),
    "unknown condition kind": trigger("if: {happened: Signed Up}"),
    # more that `nudge validate` rejects
    "unknown top-level section": "rules: {}\n",
    "section that is not a mapping": "triggers:\n",
    "duration without unit": trigger("wait: 10"),
    "zero duration": trigger("wait: 0m"),
    "two condition kinds in one mapping": trigger("if: {ever: A, never: B}"),
    "unknown condition modifier": trigger("if: {count: A, at_least: 1, during: 1h}"),
    "count without comparison": trigger("if: {count: A}"),
    "negative count": trigger("if: {count: A, at_least: -1}"),
    "after without within": trigger("if: {count: A, after: B, at_least: 1}"),
    "time_since with a number": trigger("if: {time_since: A, at_least: 5}"),
    "time_since with within": trigger("if: {time_since: A, within: 1h, at_least: 5m}"),
    "idle without comparison": trigger("if: {idle: {}}"),
    "unknown filter op": trigger("if: {properties: {step: {like: prof}}}"),
    "in takes a list": trigger("if: {properties: {step: {in: profile}}}"),
    "properties in a segment": "segments:\n  s: {properties: {a: 1}}\n",
    "per in a segment": "segments:\n  s: {count: A, per: x, at_least: 1}\n",
    "per in a segment trigger condition": "segments:\n  s: {ever: A}\n"
    + trigger().replace("on: Signed Up", "on: {segment_entered: s}\n    if: {count: A, per: x, at_least: 1}"),
    "segment without condition": "segments:\n  s: {description: nothing}\n",
    "bad id": "segments:\n  has space: {ever: A}\n",
    "unknown once": trigger("once: always"),
    "rearm without wait": trigger("rearm: true"),
    "check without wait": trigger("check: {ever: A}"),
    "cancel_on with unknown key": trigger("wait: 1h\n    cancel_on: [{event: A, match: [x]}]"),
    "send without message": "triggers:\n  t: {on: A, send: {channel: email}}\n",
    "trigger without on": "triggers:\n  t: {send: {channel: in_app, message: hello}}\n" + MESSAGES,
    "collect without fields": trigger("data: {items: {collect: A}}"),
    # nudge accepts `within`, `after`, `per` and `in_session` on collect but ignores them
    "collect with a window": trigger("data: {items: {collect: A, fields: [x], within: 1h}}"),
    "collect max above 50": trigger("data: {items: {collect: A, fields: [x], max: 51}}"),
    # nudge reads segment_entered and ignores segment_exited here; one of them is meant
    "on with both segment keys": trigger().replace("on: Signed Up", "on: {segment_entered: a, segment_exited: b}"),
    "cap per unknown window": "policies:\n  frequency_caps: [{channel: email, max: 2, per: week}]\n",
    "cap above 1000": "policies:\n  frequency_caps: [{channel: email, max: 1001, per: 1d}]\n",
    "bad clock time": "policies:\n  quiet_hours: [{from: '25:00', to: '08:00'}]\n",
    "unknown quiet action": "policies:\n  quiet_hours: [{from: '21:00', to: '08:00', action: drop}]\n",
    "unknown exempt priority": "policies:\n  exempt_priorities: [critical]\n",
    "holdout of 100%": "experiments:\n  e: {holdout: 100%, variants: {a: {}}}\n",
    "holdout above 1": "experiments:\n  e: {holdout: 1.5, variants: {a: {}}}\n",
    "variant named holdout": "experiments:\n  e: {variants: {holdout: {}}}\n",
    "experiment without variants": "experiments:\n  e: {variants: {}}\n",
    "zero weight": "experiments:\n  e: {variants: {a: {weight: 0}}}\n",
    "message without channel": "messages:\n  m: {in_app: {title: T, body: B}}\n",
    "content for another channel": "messages:\n  m: {channel: email, in_app: {title: T, body: B}}\n",
    "email without body": "messages:\n  m: {channel: email, email: {subject: S}}\n",
    "in-app without body": "messages:\n  m: {channel: in_app, in_app: {title: T}}\n",
    "variant content for another channel": """
        messages:
          m:
            channel: in_app
            in_app: {title: T, body: B}
            variants: [{name: v, email: {subject: S, text: T}}]
        """,
    "unknown property type": "tracking_plan:\n  events:\n    A: {properties: {x: text}}\n",
    "unknown key in the plan": "tracking_plan:\n  strict: true\n",
    "event spec as a string": "tracking_plan:\n  events:\n    A: yes please\n",
}


@pytest.mark.parametrize("name", INVALID)
def test_invalid_snippet(validator, name):
    assert errors(validator, INVALID[name]), f"{name} should be rejected"
