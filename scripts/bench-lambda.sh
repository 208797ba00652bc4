#!/usr/bin/env bash
# The four Lambda functions built as `sam build` builds them (cargo lambda build --release),
# beside a bare lambda_runtime hello-world (crates/nudge-aws/examples/hello_lambda.rs) built
# the same way in the same run: binary sizes, cold starts against a local Runtime API and a
# moto server on loopback (scripts/lambda_cold_start.py) and without that harness
# (scripts/lambda_bare_init.py), ratios to the hello-world, and the
# list-price cost per million events with the measured item sizes (scripts/lambda_cost.py).
#
#   scripts/bench-lambda.sh [RUNS]      (cold starts per function, default 25)
#
# Times are measured on this machine's architecture (the functions must run here); when the
# aarch64 Rust target is installed, the arm64 binaries the template deploys are built too and
# their sizes reported. Not part of scripts/test.sh: a release build of the workspace for
# another target directory takes several minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-25}"
FUNCTIONS=(nudge-ingest nudge-evaluate nudge-schedule-delay nudge-deliver)
TARGET="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET/bench-lambda"

step() { printf '\n== %s\n' "$*"; }

step "python tools (.venv: moto, boto3, cargo-lambda with zig)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -r tests/requirements.txt -r scripts/requirements-lambda.txt
export PATH="$PWD/.venv/bin:$PATH"
cargo lambda --version

host_arch="$(uname -m)"
case "$host_arch" in
  x86_64) host_flag=--x86-64 ;;
  aarch64) host_flag=--arm64 ;;
  *) echo "unsupported host architecture $host_arch" >&2; exit 1 ;;
esac

build() { # build ARCH_FLAG LAMBDA_DIR
  local pkgs=()
  for f in "${FUNCTIONS[@]}"; do pkgs+=(-p "$f"); done
  # cargo lambda takes one --bin at a time at a workspace root, so packages name the four.
  cargo lambda build --release "$1" --lambda-dir "$2" "${pkgs[@]}"
  cargo lambda build --release "$1" --lambda-dir "$2" -p nudge-aws --example hello_lambda
}

step "cargo lambda build --release ($host_arch, for the timings)"
start=$(date +%s)
build "$host_flag" "$OUT/$host_arch"
echo "built in $(( $(date +%s) - start )) s"

arm_dir=""
if [ "$host_arch" = aarch64 ]; then
  arm_dir="$OUT/aarch64"
elif rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
     rustup target add aarch64-unknown-linux-gnu; then
  step "cargo lambda build --release --arm64 (what the template deploys; sizes only)"
  start=$(date +%s)
  build --arm64 "$OUT/aarch64"
  echo "built in $(( $(date +%s) - start )) s"
  arm_dir="$OUT/aarch64"
else
  step "arm64: skipped (rustup target add aarch64-unknown-linux-gnu to build it; sam build needs it)"
fi

step "rules layer (as sam build makes it: validated and compiled)"
make -f infra/Makefile build-RulesLayer RULES_DIR=examples ARTIFACTS_DIR="$OUT/layer" \
  JOURNEY_TESTS=0 NUDGE="cargo run --quiet --release -p nudge-cli --"
RULES="$OUT/layer/rules/saas-onboarding"

step "sizes (bootstrap binary; zip as Lambda takes it)"
report() { .venv/bin/python scripts/lambda_report.py "$@"; }
report sizes "$OUT/$host_arch" "$host_arch" hello_lambda "${FUNCTIONS[@]}"
[ -z "$arm_dir" ] || [ "$arm_dir" = "$OUT/$host_arch" ] ||
  report sizes "$arm_dir" arm64 hello_lambda "${FUNCTIONS[@]}"

# The SDK's HTTPS client trusts the Amazon Trust Services roots built into the functions (the
# template's default, TlsRoots=amazon); with TlsRoots=system it reads the machine's store at
# init instead: Amazon Linux keeps one bundle file (Debian ~300 files). Both are measured, the
# second with one bundle as on Lambda.
step "cold starts ($RUNS each, medians): Runtime API and moto on loopback; built-in TLS roots"
.venv/bin/python scripts/lambda_cold_start.py --bin-dir "$OUT/$host_arch" --runs "$RUNS" \
  --rules "$RULES" --json "$OUT/cold-start.json"
bundle=""
for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [ -f "$f" ]; then bundle="$f"; break; fi
done
if [ -n "$bundle" ]; then
  step "cold starts again, NUDGE_TLS_ROOTS=system with the one bundle $bundle"
  .venv/bin/python scripts/lambda_cold_start.py --bin-dir "$OUT/$host_arch" --runs "$RUNS" \
    --rules "$RULES" --tls-roots system --ca-bundle "$bundle" --json "$OUT/cold-start-system.json"
fi

step "bare init (no harness: a listening socket as Runtime API, 60 rounds; built-in TLS roots)"
.venv/bin/python scripts/lambda_bare_init.py --rounds 60 --rules "$RULES" \
  --json "$OUT/bare-init.json" "$OUT/$host_arch"

step "ratios to the hello-world (target: init within 1.5x); built-in TLS roots"
report ratios "$OUT/cold-start.json" "${FUNCTIONS[@]}"
if [ -n "$bundle" ]; then
  step "ratios to the hello-world; the system's TLS roots from one bundle"
  report ratios "$OUT/cold-start-system.json" "${FUNCTIONS[@]}"
fi

step "cost per million ingested events (list prices, measured sizes)"
.venv/bin/python scripts/lambda_cost.py --sizes "$OUT/cold-start.json"
