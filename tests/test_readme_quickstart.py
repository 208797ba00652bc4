"""The README's curl walk-through, run as written against a fresh `nudge serve`."""

import email
import json
import re
import subprocess

from serve_support import ROOT, Server, eventually
from test_segment_sdk import daytime_zone


def quickstart_block() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- serve-quickstart -->\s*```sh\n(.*?)```\s*<!-- /serve-quickstart -->",
                  text, re.S)
    assert m, "README lost its serve-quickstart block"
    return m.group(1)


def test_readme_curl_examples_produce_the_email_and_inbox_items():
    server = Server(ROOT / "examples" / "saas-onboarding")
    try:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", quickstart_block()],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "NUDGE": server.base,
                 "DATA": str(server.data), "TZ_USER": daytime_zone()},
        )
        assert run.returncode == 0, run.stderr
        lines = [line for line in run.stdout.splitlines() if line.strip()]
        answers = [json.loads(line) for line in lines if line.startswith("{")]
        # Five accepted calls, then the tracking-plan violation.
        assert answers[:5] == [{"success": True}] * 5, lines
        assert answers[5]["error"] == "invalid_event"
        assert answers[5]["errors"][0]["field"] == "properties.step_index"

        files = eventually(server.outbox)
        assert len(files) == 1
        msg = email.message_from_bytes(files[0].read_bytes())
        assert msg["To"] == "ada@example.com"
        assert "Ada" in msg["Subject"]
        assert any(line.endswith(".eml") for line in lines)

        inbox = next(a for a in answers if "items" in a)
        titles = sorted(i["title"] for i in inbox["items"])
        assert titles == ["Billing tip", "Having trouble signing in?"], inbox
        decisions = next(a for a in answers if "decisions" in a)
        assert {d["trigger"] for d in decisions["decisions"]} >= {
            "onboarding-congrats", "billing-tip", "failed-login-help"}
        explained = next(a for a in answers if "triggers" in a)
        assert explained["triggers"][0]["id"] == "profile-reminder"
    finally:
        server.stop()
