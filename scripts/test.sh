#!/usr/bin/env bash
# The whole test suite. Installs what it needs (Debian packages when missing, Chromium among
# them; a local Python venv with moto's AWS emulator, cfn-lint, the SAM CLI and real Segment
# and RudderStack SDKs; the browser tests' npm packages in tests/browser/node_modules), builds
# the workspace, and runs every tier: unit and property tests, integration tests against real
# servers on loopback (`nudge serve`, moto), the example rule sets' journey tests, the Python
# checks, the browser tests (real browser SDKs in headless Chromium), and a short pass of every
# fuzz target (scripts/fuzz.sh, which installs cargo-fuzz into .tools/). The release
# cargo-lambda build of the functions is scripts/bench-lambda.sh's (too slow for every run; the
# debug build here compiles the same four binaries, and tests/test_template.py checks the names
# the template builds them by).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*"; }

step "system packages"
missing=()
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q && $sudo apt-get install -y -q "${missing[@]}"
fi

step "python tools (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

step "browser test packages (tests/browser/node_modules)"
# npm ci starts from the lock file; skipped while node_modules matches it.
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.nudge-lock 2>/dev/null; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  cp tests/browser/package-lock.json tests/browser/node_modules/.nudge-lock
fi

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

step "python checks (JSON Schema, template, bus routing on moto, nudge serve with Segment SDKs, README walk-through)"
.venv/bin/python -m pytest -q tests

step "browser tests (headless Chromium: analytics.js and RudderStack's SDK against nudge serve)"
(cd tests/browser && node --test --test-concurrency=1)

step "fuzz: a short pass of every fuzz target (scripts/fuzz.sh; docs/reliability.md)"
./scripts/fuzz.sh
