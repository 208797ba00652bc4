#!/usr/bin/env python3
"""The README's table of HTTP API operations, generated from schema/openapi.json: rewrites the
block between the `openapi-operations` markers. With --check, only says whether it is up to
date (tests/test_readme_api.py runs that, so the table and the description cannot drift)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTION = ROOT / "schema" / "openapi.json"
README = ROOT / "README.md"
BEGIN = ("<!-- openapi-operations: generated from schema/openapi.json by "
         "scripts/openapi_readme.py; do not edit by hand -->")
END = "<!-- /openapi-operations -->"
METHODS = ["get", "post", "put", "patch", "delete"]
CREDENTIALS = {
    "WriteKeyBasic": "write key",
    "WriteKeyQuery": "write key",
    "UserHash": "user hash",
    "AdminKey": "admin key",
}


def credential(op: dict) -> str:
    names = {name for requirement in op.get("security", []) for name in requirement}
    words = sorted({CREDENTIALS.get(n, n) for n in names})
    return ", ".join(words) if words else "none"


def table(doc: dict) -> str:
    """One row per operation, grouped by tag in the description's order."""
    tags = [t["name"] for t in doc.get("tags", [])]
    rows = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            tag = (op.get("tags") or [""])[0]
            order = tags.index(tag) if tag in tags else len(tags)
            summary = op["summary"]
            if op.get("x-nudge-serve-only"):
                summary += " · *`nudge serve` only*"
            rows.append((order, f"| `{method.upper()} {path}` | {summary} | {credential(op)} |"))
    rows.sort(key=lambda r: r[0])  # stable: paths keep the description's order within a tag
    lines = ["| Operation | What it does | Credential |", "|---|---|---|"]
    return "\n".join(lines + [r for _, r in rows])


def render(readme: str, doc: dict) -> str:
    start = readme.index(BEGIN) + len(BEGIN)
    end = readme.index(END)
    return readme[:start] + "\n" + table(doc) + "\n" + readme[end:]


def main() -> int:
    doc = json.loads(DESCRIPTION.read_text())
    readme = README.read_text()
    wanted = render(readme, doc)
    if "--check" in sys.argv[1:]:
        if wanted != readme:
            print("README.md's operations table is out of date: run scripts/openapi_readme.py")
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
