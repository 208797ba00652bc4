"""Initialisation of Lambda binaries without the harness around it: each cold start is a new
process whose Runtime API is a bare listening socket, and the clock stops when the process's
first request (GET .../invocation/next) has fully arrived; the process is then killed. No AWS
calls happen before that request, so no emulator is needed. This leaves out the Python HTTP
server of `lambda_cold_start.py` (0.7-1.6 ms of every start there, varying from run to run), so differences between
binaries show at their full size; `scripts/bench-lambda.sh` runs both.

Usage: lambda_bare_init.py [--rounds N] [--rules DIR] [--json OUT] DIR...
Each DIR holds <name>/bootstrap for the hello-world and the four functions, as `cargo lambda
build` lays them out (a second DIR, e.g. a build with NUDGE_LAMBDA_PIE=1, is measured in the
same rounds). The hello-world runs twice: on #[tokio::main]'s multi-threaded runtime and on the
current-thread runtime the functions use (HELLO_TOKIO_FLAVOR=current_thread).
"""

import argparse
import json
import socket
import statistics
import subprocess
import time
from pathlib import Path

from lambda_cold_start import BINARIES, HELLO_CURRENT_THREAD, RULES, function_env

FUNCTIONS = ["nudge-ingest", "nudge-evaluate", "nudge-schedule-delay", "nudge-deliver"]
RUNS = ["hello_lambda", HELLO_CURRENT_THREAD, *FUNCTIONS]


def bare_init(binary, env):
    """ms from spawning `binary` to its first Runtime API request."""
    listener = socket.create_server(("127.0.0.1", 0))
    env = {**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{listener.getsockname()[1]}"}
    listener.settimeout(30)
    start = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(30)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    raise RuntimeError(f"{binary} closed the connection before asking for an event")
                request += chunk
            elapsed = (time.perf_counter() - start) * 1000
        if not request.startswith(b"GET /2018-06-01/runtime/invocation/next"):
            raise RuntimeError(f"{binary}: unexpected first request {request[:80]!r}")
        return elapsed
    finally:
        proc.kill()
        proc.wait()
        listener.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--rules", type=Path, default=RULES)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    # Nothing listens there: no AWS call is made before the first event.
    endpoint = "http://127.0.0.1:9"
    label = (lambda d: d.name) if len(args.dirs) > 1 else (lambda d: "")
    runs = {}
    for d in args.dirs:
        for name in RUNS:
            env = function_env(endpoint, name, None, args.rules)
            if name == HELLO_CURRENT_THREAD:
                env["HELLO_TOKIO_FLAVOR"] = "current_thread"
            binary = d / BINARIES.get(name, name) / "bootstrap"
            runs[(label(d), name)] = (binary, env, [])
    # Rounds: every binary once, in turn, so that load from elsewhere falls on all alike.
    for _ in range(args.rounds):
        for binary, env, times in runs.values():
            times.append(bare_init(binary, env))

    results = {}
    for d in args.dirs:
        hello = statistics.median(runs[(label(d), "hello_lambda")][2])
        hello_ct = statistics.median(runs[(label(d), HELLO_CURRENT_THREAD)][2])
        print(f"{label(d) or 'bare init':32} {'median ms':>9} {'p25':>6} {'x hello':>8} "
              f"{'x hello (current-thread)':>25}")
        for name in RUNS:
            times = runs[(label(d), name)][2]
            median = statistics.median(times)
            p25 = statistics.quantiles(times, n=4)[0] if len(times) > 1 else median
            print(f"  {name:30} {median:9.2f} {p25:6.2f} {median / hello:8.2f} {median / hello_ct:25.2f}")
            results.setdefault(label(d) or "bare", {})[name] = {"init_ms": median, "init_runs_ms": times}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
