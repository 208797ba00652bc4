#!/usr/bin/env bash
# Fuzzes every parser of outside input for a short while (the test command's step), or for
# longer. Installs cargo-fuzz into .tools/ when missing (pinned; nothing system-wide), builds
# the targets of fuzz/ with the nightly toolchain and AddressSanitizer, and runs each over its
# committed corpus (fuzz/corpus/<target>/, read only: what a pass finds new goes to a scratch
# folder). Any crash, timeout or out-of-memory fails the run; the input that caused it is kept
# in fuzz/artifacts/<target>/. docs/reliability.md has the targets and the long runs.
#
#   scripts/fuzz.sh                  every target, FUZZ_SECONDS (default 20) each
#   scripts/fuzz.sh TARGET...        those targets
#   FUZZ_SECONDS=600 scripts/fuzz.sh rules
#   FUZZ_RUNS=10000000 scripts/fuzz.sh rules      a number of executions instead of a time
#   scripts/fuzz.sh --seeds          rebuild the seeds (scripts/fuzz_seeds.py) and merge what
#                                    adds coverage into the committed corpora
#   scripts/fuzz.sh --cmin [TARGET...]  minimize the committed corpora (after long runs that
#                                    kept what they found: FUZZ_KEEP=1)
#
# FUZZ_JOBS sets the build's parallel jobs (default: cargo's).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
TOOLS="$PWD/.tools"
SECONDS_EACH="${FUZZ_SECONDS:-20}"
# Limits that make an allocation bomb an out-of-memory crash: the process's memory, and any
# single allocation (the largest legitimate one is a journal read window of a few MB); inputs
# up to 8 KB (a batch of a dozen events, a rule set of a few files) keep runs fast.
LIMITS=(-rss_limit_mb=2048 -malloc_limit_mb=128 -timeout=10 -max_len=8192)

mode=run
case "${1:-}" in
  --seeds) mode=seeds; shift ;;
  --cmin) mode=cmin; shift ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(http_intake segment_message rules template user_state journal lambda_input signed_tokens)
fi

step() { printf '\n== fuzz: %s\n' "$*"; }

step "cargo-fuzz $CARGO_FUZZ_VERSION (.tools)"
if ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
  cargo install --locked --quiet --root "$TOOLS" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
export PATH="$TOOLS/bin:$PATH"

# Sanitizers need a nightly compiler; without one, the installed compiler is let use its
# unstable flags (RUSTC_BOOTSTRAP), which is what nightly-only flags need and nothing more.
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  echo "no nightly toolchain: building with the installed one and RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
fi
[ -n "${FUZZ_JOBS:-}" ] && export CARGO_BUILD_JOBS="$FUZZ_JOBS"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin="fuzz/target/$triple/release"

step "build (cargo fuzz build, AddressSanitizer, debug assertions)"
built=$(date +%s)
cargo "${toolchain[@]}" fuzz build --fuzz-dir fuzz
echo "built in $(( $(date +%s) - built )) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# The journal and HTTP targets keep their files under the temporary folder: this run's own.
export TMPDIR="$scratch"

if [ "$mode" = seeds ]; then
  step "seeds (scripts/fuzz_seeds.py)"
  py=python3; [ -x .venv/bin/python ] && py=.venv/bin/python
  "$py" scripts/fuzz_seeds.py
  for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    "$bin/$t" -merge=1 "${LIMITS[@]}" "fuzz/corpus/$t" "fuzz/seeds/$t" 2>&1 | tail -n 1
  done
  exit 0
fi

if [ "$mode" = cmin ]; then
  for t in "${targets[@]}"; do
    step "cmin $t"
    mkdir -p "$scratch/$t"
    "$bin/$t" -merge=1 "${LIMITS[@]}" "$scratch/$t" "fuzz/corpus/$t" 2>&1 | tail -n 1
    rm -rf "fuzz/corpus/$t"
    mv "$scratch/$t" "fuzz/corpus/$t"
  done
  exit 0
fi

if [ -n "${FUZZ_RUNS:-}" ]; then
  budget=(-runs="$FUZZ_RUNS")
else
  budget=(-max_total_time="$SECONDS_EACH")
fi
failed=()
for t in "${targets[@]}"; do
  step "$t (${budget[*]})"
  mkdir -p "fuzz/artifacts/$t" "$scratch/corpus-$t"
  # New finds go to the first folder: the scratch one, unless FUZZ_KEEP=1 (long runs whose
  # finds are minimized into the committed corpus afterwards).
  found="$scratch/corpus-$t"
  [ "${FUZZ_KEEP:-0}" = 1 ] && found="fuzz/corpus/$t"
  started=$(date +%s)
  if "$bin/$t" "${budget[@]}" "${LIMITS[@]}" -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/" "$found" "fuzz/corpus/$t" \
      >"$scratch/$t.log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$scratch/$t.log" \
      | sed 's/^/  /'
    echo "  ok in $(( $(date +%s) - started )) s"
  else
    tail -n 40 "$scratch/$t.log"
    echo "  FAILED: $t (input kept in fuzz/artifacts/$t/)"
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash, timeout or out-of-memory"
