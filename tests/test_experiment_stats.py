"""Experiment statistics against reference implementations: `nudge report` on generated
histories gives, for every variant and comparison, the figures statsmodels computes from the
same counts (Wilson intervals, the pooled two-proportion z-test, Wald intervals of the
difference) to 1e-6, and the anytime-valid (mSPRT) figures of the closed form in
docs/experiments.md."""

import json
import math
import random
import subprocess
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from statsmodels.stats.weightstats import DescrStatsW
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from serve_support import nudge_binary

RULES = """
name: stats
tracking_plan:
  events:
    Signed Up: {}
    Goal Reached:
      properties:
        amount: {type: number}
goals:
  reached: {event: Goal Reached, value: amount}
triggers:
  welcome:
    on: Signed Up
    experiment: copy
    send: {channel: in_app, message: hello}
experiments:
  copy:
    holdout: 10%
    min_detectable_effect: 4%
    goal: {id: reached, within: 7d}
    variants:
      a: {}
      b: {control: true}
      c: {}
messages:
  hello:
    channel: in_app
    in_app: {title: Hi, body: Hello}
"""

START = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)
TOL = 1e-6


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def report(tmp_path, users, rate, seed):
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "nudge.yaml").write_text(RULES)
    rnd = random.Random(seed)
    lines = []
    for u in range(users):
        t = START + timedelta(minutes=u)
        lines.append({"type": "track", "userId": f"u{u}", "event": "Signed Up",
                      "timestamp": iso(t), "messageId": f"s{u}"})
        if rnd.random() < rate:
            # One or two goal events inside the 7-day window, each with an amount.
            for k in range(rnd.choice([1, 1, 2])):
                lines.append({"type": "track", "userId": f"u{u}", "event": "Goal Reached",
                              "timestamp": iso(t + timedelta(hours=rnd.randrange(1, 100))),
                              "messageId": f"g{u}-{k}",
                              "properties": {"amount": round(rnd.uniform(1, 200), 2)}})
    lines.sort(key=lambda m: m["timestamp"])
    events = tmp_path / f"events-{seed}.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in lines))
    out = subprocess.run([str(nudge_binary()), "report", "--rules", str(rules), "--format",
                          "json", str(events)], check=True, capture_output=True, text=True)
    (experiment,) = json.loads(out.stdout)["experiments"]
    return experiment


def values_by_variant(tmp_path, seed):
    """Each user's goal value, by the variant `nudge replay` says they were assigned."""
    rules, events = tmp_path / "rules", tmp_path / f"events-{seed}.jsonl"
    out = subprocess.run([str(nudge_binary()), "replay", "--rules", str(rules), str(events)],
                         check=True, capture_output=True, text=True).stdout
    variant = {}
    for line in out.splitlines():
        d = json.loads(line)
        variant[d["user_id"]] = d["variant"]
    value = {}
    for line in events.read_text().splitlines():
        m = json.loads(line)
        if m["event"] == "Goal Reached":
            value[m["userId"]] = value.get(m["userId"], 0.0) + m["properties"]["amount"]
    by = {}
    for user, v in variant.items():
        by.setdefault(v, []).append(value.get(user, 0.0))
    return by


def msprt(diff, v, tau):
    """The closed form of docs/experiments.md."""
    t2 = tau * tau
    log_ratio = 0.5 * math.log(v / (v + t2)) + diff * diff * t2 / (2 * v * (v + t2))
    half = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / 0.05) + math.log((v + t2) / v)))
    return min(1.0, math.exp(-log_ratio)), (diff - half, diff + half)


@pytest.mark.parametrize("users,rate,seed", [(400, 0.1, 1), (3000, 0.3, 2), (900, 0.04, 3),
                                             (6000, 0.55, 4)])
def test_every_figure_matches_the_reference(tmp_path, users, rate, seed):
    e = report(tmp_path, users, rate, seed)
    assert e["control"] == "b" and e["min_detectable_effect"] == 0.04
    arms = {v["variant"]: v for v in e["variants"]}
    assert set(arms) == {"a", "b", "c", "holdout"}
    assert sum(v["users"] for v in arms.values()) == users
    for v in arms.values():
        lo, hi = proportion_confint(v["converted"], v["users"], alpha=0.05, method="wilson")
        assert v["ci95"] == pytest.approx([lo, hi], abs=TOL), v
    values = values_by_variant(tmp_path, seed)
    for name, v in arms.items():
        per_user = DescrStatsW(np.array(values[name]))
        assert v["value_per_user"] == pytest.approx(per_user.mean, abs=TOL), v
        lo, hi = per_user.zconfint_mean(alpha=0.05)
        assert v["value_per_user_ci95"] == pytest.approx([lo, hi], abs=1e-5), v
    pairs = {(c["variant"], c["against"]) for c in e["comparisons"]}
    assert pairs == {("a", "b"), ("c", "b"), ("a", "holdout"), ("b", "holdout"),
                     ("c", "holdout")}
    for c in e["comparisons"]:
        x, y = arms[c["variant"]], arms[c["against"]]
        counts, nobs = [x["converted"], y["converted"]], [x["users"], y["users"]]
        diff = x["converted"] / x["users"] - y["converted"] / y["users"]
        assert c["difference"] == pytest.approx(diff, abs=TOL)
        _, p = proportions_ztest(counts, nobs)
        assert c["p_value"] == pytest.approx(p, abs=TOL), c
        lo, hi = confint_proportions_2indep(counts[0], nobs[0], counts[1], nobs[1],
                                            method="wald", compare="diff", alpha=0.05)
        assert c["ci95"] == pytest.approx([lo, hi], abs=TOL), c
        v = sum(a["converted"] / a["users"] * (1 - a["converted"] / a["users"]) / a["users"]
                for a in (x, y))
        p_any, ci_any = msprt(diff, v, 0.04)
        assert c["anytime"]["p_value"] == pytest.approx(p_any, abs=TOL), c
        assert c["anytime"]["ci95"] == pytest.approx(list(ci_any), abs=TOL), c
        assert c["anytime"]["conclusive"] == (p_any <= 0.05)
        # The sequence is the wider of the two: it holds at every look.
        assert ci_any[0] <= lo and ci_any[1] >= hi


def test_the_text_report_shows_intervals_and_verdicts(tmp_path):
    rules = tmp_path / "rules"
    report(tmp_path, 300, 0.2, 9)
    out = subprocess.run([str(nudge_binary()), "report", "--rules", str(rules),
                          str(tmp_path / "events-9.jsonl")],
                         check=True, capture_output=True, text=True).stdout
    assert "control b; minimum detectable effect 4.0%" in out, out
    assert "a vs b:" in out and "b vs holdout:" in out, out
    assert "needs about" in out or "beats" in out or "no difference yet" in out, out
