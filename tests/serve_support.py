"""Starts a real `nudge serve` on loopback for the Python tests (SDK and README checks)."""

import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def nudge_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    path = target / "debug" / "nudge"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: build first (scripts/test.sh does)")
    return path


class Server:
    """A `nudge serve` child process with its own data folder."""

    def __init__(self, rules: Path, *args: str, data: Path | None = None):
        self.tmp = tempfile.TemporaryDirectory(prefix="nudge-pytest-")
        self.data = data or Path(self.tmp.name) / "data"
        self.proc = subprocess.Popen(
            [str(nudge_binary()), "serve", "--rules", str(rules), "--data", str(self.data),
             "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        self.lines: list[str] = []
        found = threading.Event()
        self.base = ""

        def pump():
            for line in self.proc.stderr:
                self.lines.append(line)
                m = re.search(r"listening on (http://\S+)", line)
                if m and not found.is_set():
                    self.base = m.group(1)
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(30):
            self.stop()
            raise RuntimeError("nudge serve did not start:\n" + "".join(self.lines))

    def banner_value(self, label: str) -> str:
        for line in self.lines:
            m = re.search(label + r":\s+(\S+)", line)
            if m:
                return m.group(1)
        raise KeyError(label)

    def get(self, path: str, headers: dict | None = None) -> bytes:
        req = urllib.request.Request(self.base + path, headers=headers or {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def outbox(self) -> list[Path]:
        d = self.data / "outbox"
        return sorted(d.glob("*.eml")) if d.exists() else []

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.tmp.cleanup()


def eventually(fn, timeout: float = 15.0):
    """Polls fn until it returns something truthy."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(0.1)
