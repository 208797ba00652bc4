#!/usr/bin/env bash
# The whole test suite. Installs what it needs (a local Python venv for the schema and
# tooling checks), builds the workspace, and runs every tier: unit and property tests,
# CLI integration tests, the example rule sets' journey tests, and the Python checks.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*"; }

step "python tools (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo build"
cargo build --locked --workspace --all-targets

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test (unit, property, CLI integration; benches once in test mode)"
cargo test --locked --workspace --all-targets

NUDGE="${CARGO_TARGET_DIR:-target}/debug/nudge"
step "nudge validate on the examples"
for ex in examples/*/; do
  "$NUDGE" validate --rules "$ex"
done

step "nudge test: journey tests of the examples"
for ex in examples/*/; do
  "$NUDGE" test --rules "$ex"
done

step "python checks (JSON Schema against the examples)"
.venv/bin/python -m pytest -q tests
