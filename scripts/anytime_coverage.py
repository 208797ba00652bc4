#!/usr/bin/env python3
"""How often each analysis of an experiment declares a difference, when teams look after every
`--step` users per variant: the classic two-proportion z-test (right for one look) against the
anytime-valid mSPRT of nudge's reports (docs/experiments.md, the same closed form that
tests/test_experiment_stats.py checks nudge against). Prints, for an A/A test (no true
difference), the share of runs that ever declare one, and for a true difference, the share
whose confidence sequence covered it at every look and the share settled by the end.

    .venv/bin/python scripts/anytime_coverage.py [--runs 2000] [--users 10000] [--step 100]
"""

import argparse
import math

import numpy as np
from scipy.stats import norm

ALPHA = 0.05


def looks(rng, runs, users, step, p_a, p_b):
    """Cumulative conversions of both arms at each look: arrays (runs, looks)."""
    n = np.arange(step, users + 1, step)
    conv_a = rng.binomial(step, p_a, size=(runs, len(n))).cumsum(axis=1)
    conv_b = rng.binomial(step, p_b, size=(runs, len(n))).cumsum(axis=1)
    return n, conv_a, conv_b


def analyse(n, conv_a, conv_b, tau):
    pa, pb = conv_a / n, conv_b / n
    diff = pb - pa
    pooled = (conv_a + conv_b) / (2 * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / np.sqrt(pooled * (1 - pooled) * 2 / n)
        p_classic = np.where(np.isfinite(z), 2 * norm.sf(np.abs(z)), 1.0)
        v = pa * (1 - pa) / n + pb * (1 - pb) / n
        t2 = tau * tau
        log_ratio = 0.5 * np.log(v / (v + t2)) + diff**2 * t2 / (2 * v * (v + t2))
        p_any = np.where(v > 0, np.minimum(1.0, np.exp(-log_ratio)), 1.0)
        half = np.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / ALPHA) + np.log((v + t2) / v)))
    return diff, p_classic, p_any, np.where(v > 0, half, np.inf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--users", type=int, default=10_000, help="per variant, at the last look")
    ap.add_argument("--step", type=int, default=100, help="users per variant between looks")
    ap.add_argument("--base", type=float, default=0.10)
    ap.add_argument("--effect", type=float, default=0.03)
    ap.add_argument("--tau", type=float, default=0.05, help="mixing sd (min_detectable_effect)")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    nlooks = a.users // a.step
    print(f"{a.runs} runs, a look every {a.step} users per variant up to {a.users} "
          f"({nlooks} looks), base rate {a.base}, tau {a.tau}")

    n, ca, cb = looks(rng, a.runs, a.users, a.step, a.base, a.base)
    _, p_classic, p_any, _ = analyse(n, ca, cb, a.tau)
    ever_classic = (p_classic < ALPHA).any(axis=1).mean()
    ever_any = (p_any <= ALPHA).any(axis=1).mean()
    last_classic = (p_classic[:, -1] < ALPHA).mean()
    print(f"A/A (no difference): declared at some look: classic {ever_classic:.1%}, "
          f"anytime-valid {ever_any:.1%}; classic at the last look only: {last_classic:.1%}")

    n, ca, cb = looks(rng, a.runs, a.users, a.step, a.base, a.base + a.effect)
    diff, p_classic, p_any, half = analyse(n, ca, cb, a.tau)
    covered = (np.abs(diff - a.effect) <= half).all(axis=1).mean()
    settled = (p_any[:, -1] <= ALPHA).mean()
    first = np.argmax(p_any <= ALPHA, axis=1)
    reached = (p_any <= ALPHA).any(axis=1)
    median_n = int(np.median(n[first[reached]])) if reached.any() else None
    print(f"A/B (+{a.effect}): sequence covered the true difference at every look: "
          f"{covered:.1%}; settled by {a.users}: {settled:.1%}; median users per variant "
          f"when first settled: {median_n}")


if __name__ == "__main__":
    main()
