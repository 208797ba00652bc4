"""The four Lambda functions as processes: each binary (the debug build `scripts/test.sh` makes)
cold-starts against a local Lambda Runtime API and a moto server on loopback, with the
environment template.yaml sets, and handles one real event of the chain: ingest takes a
Segment batch and publishes onto the bus, evaluate takes what ingest published, schedule-delay
and deliver what evaluate published (deliver sends through SES on moto). This is the wiring
the Rust handler tests do not cover: `main.rs`, configuration and SDK clients from the
environment, the rule set read from disk. `scripts/lambda_cold_start.py` does the work; the
benchmark (`scripts/bench-lambda.sh`) runs it on release builds with more runs.
"""

import json
import subprocess
import sys

import pytest

from serve_support import ROOT, nudge_binary

FUNCTIONS = ["nudge-ingest", "nudge-evaluate", "nudge-schedule-delay", "nudge-deliver"]


def elf_type(path):
    """e_type of an ELF file: 2 for a position-dependent executable, 3 for a PIE."""
    header = path.read_bytes()[:18]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[16:18], "little")


def test_each_function_cold_starts_and_handles_the_chained_events(tmp_path):
    debug = nudge_binary().parent
    binaries = {name: debug / name for name in FUNCTIONS}
    binaries["hello_lambda"] = debug / "examples" / "hello_lambda"
    bin_dir = tmp_path / "lambda"
    for name, binary in binaries.items():
        assert binary.exists(), f"{binary} is missing: scripts/test.sh builds it"
        (bin_dir / name).mkdir(parents=True)
        (bin_dir / name / "bootstrap").symlink_to(binary)
    out = tmp_path / "cold-start.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lambda_cold_start.py"), "--bin-dir", str(bin_dir),
         "--runs", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())
    for name in [*binaries, "hello_lambda (current-thread)"]:
        assert len(results[name]["init_runs_ms"]) == 2, name
        assert 0 < results[name]["init_ms"] <= results[name]["first_event_ms"], results[name]
    sizes = results["sizes"]
    # Evaluate stored the users' states, deliver logged its sends and SES took the emails:
    # the chain went through.
    assert sizes["state_item_bytes"] > 0 and sizes["delivery_item_bytes"] > 0, sizes
    assert sizes["emails_sent"] == 2, sizes

    # The benchmark's harness-free measurement runs on the same binaries.
    bare = tmp_path / "bare-init.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lambda_bare_init.py"), "--rounds", "1",
         "--json", str(bare), str(bin_dir)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    inits = json.loads(bare.read_text())["bare"]
    assert sorted(inits) == sorted([*binaries, "hello_lambda (current-thread)"]), inits
    assert all(r["init_ms"] > 0 for r in inits.values()), inits


def test_the_chained_functions_fire_near_timers_from_the_delay_queue_at_their_due_second(tmp_path):
    """The binaries with the delay queue on moto (scripts/timer_lateness.py, short cases): a
    timer set 5 s ahead is queued as it is set; one 30 s ahead is beyond the 10-second horizon
    and queued by a sweep (every 5 s here) as it enters it. Each fires once, within a second of
    its due time plus the harness's long poll (up to 1 s): from the queue, or by a sweep that
    came between the due time and the message (the catch-all racing the queue)."""
    debug = nudge_binary().parent
    out = tmp_path / "lateness.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "timer_lateness.py"), "--bin-dir", str(debug),
         "--cases", "5,30", "--per-case", "4", "--spread", "5", "--idle-users", "0",
         "--horizon", "10", "--sweep-every", "5", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())
    assert results["errors_logged"] == [], results
    for case, seen in results["timer_fired_on_bus_ms"].items():
        assert seen["n"] == 4 and seen["missing"] == 0 and seen["fired_twice"] == 0, (case, seen)
    paths = results["fired_by_path_ms"]
    assert "queue" in paths and set(paths) <= {"queue", "sweep"}, results
    assert results["fired_all_ms"]["n"] == 8, results
    assert results["fired_all_ms"]["p99_ms"] <= 2000, results


def test_the_functions_and_the_hello_world_are_linked_position_dependent():
    # crates/nudge-aws/build.rs: -no-pie on Linux, so the dynamic loader has no relative
    # relocations to apply at a cold start (BENCHMARKS.md).
    if not sys.platform.startswith("linux"):
        pytest.skip("build.rs links -no-pie on Linux only")
    debug = nudge_binary().parent
    for binary in [*(debug / n for n in FUNCTIONS), debug / "examples" / "hello_lambda"]:
        assert elf_type(binary) == 2, f"{binary} is not a position-dependent executable"
    # The CLI and `nudge serve` keep the platform's default (a PIE).
    assert elf_type(nudge_binary()) == 3
