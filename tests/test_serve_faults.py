"""`nudge serve` when the machine fails under it: the data folder's disk fills up, and journal
segments are damaged while it is down. Nothing acknowledged may be lost or counted twice.

The disk-full test mounts a small tmpfs as the data folder, which needs root (as CI runs);
elsewhere it is skipped with the reason printed."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from serve_support import ROOT, Server, eventually, nudge_binary

RULES = ROOT / "tests" / "sdk-rules"
WRITE_KEY = "wk_faults"


def post(server: Server, path: str, body: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(
        server.base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), dict(e.headers)


def tail(server: Server, n: int = 20) -> str:
    """The server's last log lines, each cut short (some carry whole events)."""
    return "".join(line[:300] + "\n" for line in server.lines[-n:])


def metric(server: Server, name: str) -> float:
    for line in server.get("/metrics").decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def batch(start: int, n: int, users: int = 50) -> dict:
    # About 1 KB an event, so the disk fills after a few thousand.
    return {"batch": [
        {"type": "track", "userId": f"df-{i % users}", "event": "Step Completed",
         "messageId": f"df-{i}", "properties": {"step": f"s{i}", "pad": "x" * 900}}
        for i in range(start, start + n)
    ]}


@pytest.fixture()
def small_disk():
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="nudge-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
    shutil.rmtree(mount, ignore_errors=True)


def test_a_full_disk_answers_503_loses_nothing_and_recovers_by_itself(small_disk):
    server = Server(RULES, "--write-key", WRITE_KEY, data=small_disk / "data")
    try:
        accepted = 0
        refused = []
        sent = 0
        # Batches until the disk is full: ingest answers 503 (SDKs retry), never 4xx.
        while len(refused) < 5 and sent < 200_000:
            status, body, headers = post(server, "/v1/batch", batch(sent, 200))
            if status == 200:
                accepted += 200
            else:
                refused.append((status, body.get("error")))
            sent += 200
        assert refused, f"the disk never filled ({sent} events sent)"
        assert all(r == (503, "unavailable") for r in refused), refused
        assert server.get("/healthz")

        # Space comes back; evaluation catches up without a restart.
        subprocess.run(["mount", "-o", "remount,size=512m", str(small_disk)], check=True)
        caught_up = eventually(
            lambda: metric(server, "nudge_events_evaluated_total") >= accepted, timeout=120)
        assert caught_up, (f"evaluated {metric(server, 'nudge_events_evaluated_total')} "
                           f"of {accepted} accepted:\n" + tail(server))
        assert metric(server, "nudge_events_evaluated_total") == accepted
        dropped = [line[:300] for line in server.lines if "dropped" in line]
        assert not dropped, "\n".join(dropped[:5])

        print(f"\ndisk full: {accepted} events accepted, {len(refused)} batches refused with "
              f"503 unavailable, {int(metric(server, 'nudge_events_evaluated_total'))} evaluated "
              "once space came back, 0 dropped")

        # And new events are taken again.
        status, _, _ = post(server, "/v1/batch", batch(sent, 10))
        assert status == 200
        # Behind the engagement events the deliveries of the backlog recorded, in queue order.
        assert eventually(lambda: metric(server, "nudge_events_evaluated_total") == accepted + 10,
                          timeout=120)
    finally:
        server.stop()


def journal_of_unevaluated_events(tmp_path: Path, events: int) -> Path:
    """A data folder whose journal holds `events` events none of which is evaluated there:
    the journal of a server that took them, copied without its checkpoint into a new folder
    (so the next start reads, checks and evaluates all of them)."""
    first = Server(RULES, "--write-key", WRITE_KEY)
    try:
        for start in range(0, events, 100):
            status, _, _ = post(first, "/v1/batch", batch(start, 100))
            assert status == 200
        journal = first.data / "journal"
        data = tmp_path / "data"
        (data / "journal").mkdir(parents=True)
        for seg in journal.glob("*.seg"):
            shutil.copy(seg, data / "journal" / seg.name)
    finally:
        first.stop()
    return data


def test_a_damaged_journal_stops_the_start_naming_the_file_and_salvage_keeps_the_rest(tmp_path):
    data = journal_of_unevaluated_events(tmp_path, 1_000)
    [seg] = sorted((data / "journal").glob("*.seg"))
    raw = bytearray(seg.read_bytes())
    # One byte in the middle of the segment: an acknowledged record's bytes are hit, and
    # hundreds of intact records lie behind it.
    raw[len(raw) // 2] ^= 0xFF
    seg.write_bytes(bytes(raw))

    done = subprocess.run(
        [str(nudge_binary()), "serve", "--rules", str(RULES), "--data", str(data),
         "--listen", "127.0.0.1:0", "--write-key", WRITE_KEY],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert str(seg) in done.stderr and "--salvage-journal" in done.stderr, done.stderr
    assert "intact records behind them" in done.stderr, done.stderr
    assert seg.read_bytes() == bytes(raw), "nothing was changed"

    server = Server(RULES, "--write-key", WRITE_KEY, "--salvage-journal", data=data)
    try:
        # Every event but the one whose bytes were hit is evaluated.
        assert eventually(lambda: metric(server, "nudge_events_evaluated_total") >= 999)
        time.sleep(0.5)
        assert metric(server, "nudge_events_evaluated_total") == 999
        assert (data / "journal" / "damaged" / seg.name).read_bytes() == bytes(raw)
        assert any("salvaged a damaged journal segment" in line for line in server.lines)
        # The next start finds a sound journal.
    finally:
        server.stop()
    again = Server(RULES, "--write-key", WRITE_KEY, data=data)
    try:
        status, _, _ = post(again, "/v1/batch", batch(5_000, 1))
        assert status == 200
    finally:
        again.stop()


def test_a_damaged_database_stops_the_start_naming_the_file(tmp_path):
    import sqlite3

    data = tmp_path / "data"
    server = Server(RULES, "--write-key", WRITE_KEY, data=data)
    try:
        for start in range(0, 2_000, 200):
            assert post(server, "/v1/batch", batch(start, 200))[0] == 200
        assert eventually(lambda: metric(server, "nudge_events_evaluated_total") == 2_000)
    finally:
        server.stop()
    db = data / "nudge.db"
    # Everything into the main file, then a page in its middle hit.
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(db.read_bytes())
    page = 4096
    middle = len(raw) // page // 2 * page
    for i in range(middle, middle + 64):
        raw[i] ^= 0x5A
    db.write_bytes(bytes(raw))

    done = subprocess.run(
        [str(nudge_binary()), "serve", "--rules", str(RULES), "--data", str(data),
         "--listen", "127.0.0.1:0", "--write-key", WRITE_KEY],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    # Named, and called damaged: SQLite says "malformed" when opening the file fails, and
    # its quick_check lists the damage when the file opens (where the hit lands decides).
    assert f"database {db}" in done.stderr, done.stderr
    assert ("malformed" in done.stderr
            or "quick_check found damage" in done.stderr), done.stderr
