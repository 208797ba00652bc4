#!/usr/bin/env python3
"""Copies infra/dashboard.json into template.yaml (the Dashboard's `DashboardBody: !Sub |`
block), one widget a line. CloudFormation cannot read a local file into a property, so the
template carries the body; tests/test_template.py fails when the two differ.

Usage: python3 infra/embed_dashboard.py [--check]
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
DASHBOARD = ROOT / "infra" / "dashboard.json"
ANCHOR = "DashboardBody: !Sub |"


def render(body: dict, indent: str) -> list[str]:
    """The body as JSON text: top-level keys and one widget per line."""
    head = {k: v for k, v in body.items() if k != "widgets"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "widgets": [')
    widgets = body["widgets"]
    for i, w in enumerate(widgets):
        sep = "," if i < len(widgets) - 1 else ""
        lines.append("    " + json.dumps(w, separators=(",", ":")) + sep)
    lines.append("  ]")
    lines.append("}")
    return [indent + line for line in lines]


def embed(template: str, body: dict) -> str:
    lines = template.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == ANCHOR)
    block_indent = " " * (len(lines[start]) - len(lines[start].lstrip()) + 2)
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(block_indent)):
        end += 1
    # Keep blank lines that separate the block from what follows.
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    out = lines[: start + 1] + render(body, block_indent) + lines[end:]
    return "\n".join(out) + "\n"


def main() -> int:
    body = json.loads(DASHBOARD.read_text())
    current = TEMPLATE.read_text()
    updated = embed(current, body)
    if "--check" in sys.argv[1:]:
        if updated != current:
            print("template.yaml's dashboard differs from infra/dashboard.json; run python3 infra/embed_dashboard.py")
            return 1
        return 0
    if updated != current:
        TEMPLATE.write_text(updated)
        print("template.yaml: dashboard body updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
