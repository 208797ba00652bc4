#!/usr/bin/env bash
# Load benchmark of `nudge serve` (BENCHMARKS.md, "nudge serve under load").
#
# In one run, on loopback only, the same load tool (wrk) with the same Lua scripts drives:
#   - a minimal HTTP server on the same stack (crates/nudge-local/examples/minimal_server.rs:
#     axum, same tokio runtime, reads the body, answers {"success":true}), the reference;
#   - `nudge serve --rules examples/saas-onboarding` on a fresh data folder.
# Phases: single-event `track` calls (bench/track.lua) against both, then `/v1/batch` calls of
# 100 events (bench/batch.lua) against both; the nudge batch phase is the long one (5 minutes
# by default). For nudge it also reads /metrics (events accepted and evaluated, queue depth)
# to time events through to decisions (from the first request of a phase until evaluate has
# applied every event accepted in it), and samples the server's RSS (VmRSS) all along.
#
#   scripts/bench-serve.sh             # full run: 60 s track, 300 s batch (about 25 minutes with the drains)
#   QUICK=1 scripts/bench-serve.sh     # 10 s per phase
#
# Settings (environment): TRACK_SECONDS, BATCH_SECONDS (nudge batch phase), REF_SECONDS
# (minimal server phases), WARMUP_SECONDS, WRK_THREADS (1), TRACK_CONNECTIONS (64),
# BATCH_CONNECTIONS (16), NUDGE_BENCH_BATCH (events per batch call, 100), NUDGE_BENCH_USERS
# (user pool, 10000), SAMPLE_SECONDS (RSS and metrics sampling period), KEEP=1 (keep the work
# folder with logs, samples and wrk outputs), NUDGE_SERVE_FLAGS (more `nudge serve` flags, for
# example "--workers 8"), NUDGE_BIN (a `nudge` binary to measure instead of the one built, e.g.
# of an older commit). CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if ! command -v wrk >/dev/null; then
  echo "wrk (the HTTP load tool) is missing: apt-get install wrk" >&2
  exit 1
fi
for tool in curl awk base64; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done

if [ "${QUICK:-0}" = 1 ]; then
  : "${TRACK_SECONDS:=10}" "${BATCH_SECONDS:=10}" "${REF_SECONDS:=10}"
  : "${WARMUP_SECONDS:=2}" "${SAMPLE_SECONDS:=1}"
else
  : "${TRACK_SECONDS:=60}" "${BATCH_SECONDS:=300}" "${REF_SECONDS:=30}"
  : "${WARMUP_SECONDS:=5}" "${SAMPLE_SECONDS:=5}"
fi
: "${WRK_THREADS:=1}" "${TRACK_CONNECTIONS:=64}" "${BATCH_CONNECTIONS:=16}"
: "${NUDGE_BENCH_BATCH:=100}" "${NUDGE_BENCH_USERS:=10000}"
export NUDGE_BENCH_BATCH NUDGE_BENCH_USERS

target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$ROOT/$target ;; esac

echo "== build (release)"
cargo build --release -p nudge-cli -p nudge-local --bin nudge --example minimal_server
NUDGE_BIN=${NUDGE_BIN:-$target/release/nudge}
MINIMAL_BIN=$target/release/examples/minimal_server

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nudge-bench-serve.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then
    echo "work folder kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Waits for "listening on [http://]ADDR" in a log; prints ADDR.
listen_addr() {
  local log=$1 pid=$2 addr
  for _ in $(seq 1 200); do
    addr=$(sed -n 's/.*listening on \(http:\/\/\)\{0,1\}\([0-9.]*:[0-9]*\).*/\2/p' "$log" | head -n1)
    if [ -n "$addr" ]; then
      echo "$addr"
      return
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}

WRITE_KEY=wk_bench
AUTH="Authorization: Basic $(printf '%s:' "$WRITE_KEY" | base64)"

echo "== start servers (loopback, free ports)"
"$MINIMAL_BIN" 127.0.0.1:0 2>"$WORK/minimal.log" &
MINIMAL_PID=$!
PIDS+=("$MINIMAL_PID")
# JSON logs to a file (send decisions are logged at info, as in production).
# shellcheck disable=SC2086 # NUDGE_SERVE_FLAGS is a list of flags
"$NUDGE_BIN" serve --rules examples/saas-onboarding --data "$WORK/data" \
  --listen 127.0.0.1:0 --write-key "$WRITE_KEY" --log-format json ${NUDGE_SERVE_FLAGS:-} \
  2>"$WORK/nudge.log" &
NUDGE_PID=$!
PIDS+=("$NUDGE_PID")
MINIMAL=http://$(listen_addr "$WORK/minimal.log" "$MINIMAL_PID")
NUDGE=http://$(listen_addr "$WORK/nudge.log" "$NUDGE_PID")
echo "minimal server $MINIMAL (pid $MINIMAL_PID), nudge serve $NUDGE (pid $NUDGE_PID)"

# nudge's counters: "accepted evaluated queue_depth" (evaluated -1 if the binary predates
# nudge_events_evaluated_total).
counters() {
  curl -s --max-time 5 "$NUDGE/metrics" | awk '
    BEGIN { e = -1 }
    $1 == "nudge_events_accepted_total" { a = $2 }
    $1 == "nudge_events_evaluated_total" { e = $2 }
    $1 == "nudge_queue_depth" { q = $2 }
    END { printf "%d %d %d\n", a, e, q }'
}
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$NUDGE_PID/status"; }
# CPU seconds of the whole process, and of the SQLite writer thread alone.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$NUDGE_PID/stat"; }
writer_cpu_s() {
  local t
  for t in /proc/"$NUDGE_PID"/task/*; do
    if [ "$(cat "$t/comm")" = nudge-sqlite ]; then
      awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "$t/stat"
      return
    fi
  done
  echo 0
}

# Sampler: elapsed, phase, RSS, counters, every SAMPLE_SECONDS for the whole run.
echo idle >"$WORK/phase"
T0=$(now)
(
  while kill -0 "$NUDGE_PID" 2>/dev/null; do
    printf '%s %s %s %s\n' "$(calc "$(now) - $T0" 1)" "$(cat "$WORK/phase")" "$(rss_kb)" \
      "$(counters)" >>"$WORK/samples.txt"
    sleep "$SAMPLE_SECONDS"
  done
) &
PIDS+=("$!")

# Runs wrk; leaves "requests duration_us p50 p90 p99 max non2xx errors" in $WORK/NAME.fig.
run_wrk() {
  local name=$1 url=$2 script=$3 conns=$4 seconds=$5
  NUDGE_BENCH_RUN=$name-$$ wrk -t"$WRK_THREADS" -c"$conns" -d"${seconds}s" --timeout 10s \
    --latency -s "bench/$script" -H "$AUTH" "$url" >"$WORK/$name.wrk"
  awk '/^BENCH/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      print f["requests"], f["duration_us"], f["p50_us"], f["p90_us"], f["p99_us"], f["max_us"],
        f["non2xx"], f["connect_errors"] + f["read_errors"] + f["write_errors"] + f["timeouts"]
    }' "$WORK/$name.wrk" >"$WORK/$name.fig"
}

# Waits until evaluate has applied everything accepted (and the queue is empty); prints the
# time at which evaluated reached accepted.
wait_decided() {
  local deadline decided="" a e q
  deadline=$(calc "$(now) + 900" 0)
  while :; do
    read -r a e q < <(counters)
    if [ -z "$decided" ] && { [ "$e" -ge "$a" ] || { [ "$e" -lt 0 ] && [ "$q" -eq 0 ]; }; }; then
      decided=$(now)
    fi
    if [ -n "$decided" ] && [ "$q" -eq 0 ]; then break; fi
    if [ "$(calc "$(now)" 0)" -gt "$deadline" ]; then
      echo "backlog did not drain within 15 minutes (accepted $a, evaluated $e, queue $q)" >&2
      break
    fi
    sleep 0.1
  done
  echo "${decided:-$(now)}"
}

# One phase against nudge: wrk, then drain. Leaves in $WORK/NAME.nudge:
# "seconds accepted evaluated_during backlog_at_end to_decisions_s cpu_s writer_cpu_s load".
nudge_phase() {
  local name=$1 script=$2 conns=$3 seconds=$4
  local a0 e0 a1 e1 q1 c0 w0 c1 w1 t0 t1 td l0
  echo "$name" >"$WORK/phase"
  l0=$(loadavg)
  read -r a0 e0 _ < <(counters)
  c0=$(cpu_s)
  w0=$(writer_cpu_s)
  t0=$(now)
  run_wrk "$name" "$NUDGE" "$script" "$conns" "$seconds"
  t1=$(now)
  read -r a1 e1 q1 < <(counters)
  echo "$name-drain" >"$WORK/phase"
  td=$(wait_decided)
  c1=$(cpu_s)
  w1=$(writer_cpu_s)
  echo idle >"$WORK/phase"
  echo "$(calc "$t1 - $t0" 2) $((a1 - a0)) $((e1 - e0)) $((a1 - e1)) $(calc "$td - $t0" 2)" \
    "$(calc "$c1 - $c0" 2) $(calc "$w1 - $w0" 2) $l0 / $(loadavg)" >"$WORK/$name.nudge"
}

echo "== warm-up (${WARMUP_SECONDS} s each, not counted)"
run_wrk warmup-minimal "$MINIMAL" track.lua "$TRACK_CONNECTIONS" "$WARMUP_SECONDS"
run_wrk warmup-nudge "$NUDGE" track.lua "$TRACK_CONNECTIONS" "$WARMUP_SECONDS"
wait_decided >/dev/null
RSS_START=$(rss_kb)

echo "== track: minimal server ${REF_SECONDS} s, then nudge serve ${TRACK_SECONDS} s ($(loadavg))"
run_wrk track-minimal "$MINIMAL" track.lua "$TRACK_CONNECTIONS" "$REF_SECONDS"
nudge_phase track-nudge track.lua "$TRACK_CONNECTIONS" "$TRACK_SECONDS"

echo "== batch of $NUDGE_BENCH_BATCH: minimal server ${REF_SECONDS} s, then nudge serve ${BATCH_SECONDS} s ($(loadavg))"
run_wrk batch-minimal "$MINIMAL" batch.lua "$BATCH_CONNECTIONS" "$REF_SECONDS"
nudge_phase batch-nudge batch.lua "$BATCH_CONNECTIONS" "$BATCH_SECONDS"
RSS_END=$(rss_kb)

# ---- summary -------------------------------------------------------------------------------
fig() { awk -v i="$2" '{ print $i }' "$WORK/$1.fig"; }
nfig() { awk -v i="$2" '{ print $i }' "$WORK/$1.nudge"; }
rps() { calc "$(fig "$1" 1) / ($(fig "$1" 2) / 1000000)" 0; }
ms() { calc "$(fig "$1" "$2") / 1000" 2; }

echo
echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$WRK_THREADS," \
  "track -c$TRACK_CONNECTIONS, batch -c$BATCH_CONNECTIONS x $NUDGE_BENCH_BATCH events," \
  "$NUDGE_BENCH_USERS users)"
printf '%-22s %10s %11s %9s %9s %9s %7s\n' phase seconds "requests/s" "events/s" "p50 ms" \
  "p99 ms" "errors"
for name in track-minimal track-nudge batch-minimal batch-nudge; do
  per=1
  case $name in batch-*) per=$NUDGE_BENCH_BATCH ;; esac
  r=$(rps "$name")
  printf '%-22s %10s %11s %9s %9s %9s %7s\n' "$name" "$(calc "$(fig "$name" 2) / 1000000" 1)" \
    "$r" "$(calc "$r * $per" 0)" "$(ms "$name" 3)" "$(ms "$name" 5)" \
    "$(($(fig "$name" 7) + $(fig "$name" 8)))"
done
echo
track_ratio=$(calc "$(rps track-nudge) / $(rps track-minimal)" 3)
batch_ratio=$(calc "$(rps batch-nudge) / $(rps batch-minimal)" 3)
echo "track requests/s, nudge / minimal:  $track_ratio   (target >= 0.5)"
echo "batch requests/s, nudge / minimal:  $batch_ratio"
echo
printf '%-14s %9s %11s %13s %12s %13s %11s %11s\n' phase accepted "accepted/s" "evaluated/s" \
  "backlog" "to decisions" "decided/s" "CPU s"
for name in track-nudge batch-nudge; do
  read -r secs acc evd backlog tdec cpu wcpu _ <"$WORK/$name.nudge"
  printf '%-14s %9s %11s %13s %12s %12ss %11s %11s\n' "$name" "$acc" "$(calc "$acc / $secs" 0)" \
    "$(calc "$evd / $secs" 0)" "$backlog" "$tdec" "$(calc "$acc / $tdec" 0)" \
    "$cpu (writer thread $wcpu = $(calc "100 * $wcpu / $tdec" 0)% busy)"
done
echo "  accepted/s and evaluated/s: during the wrk run; backlog: accepted, not yet evaluated when"
echo "  wrk stopped; to decisions: first request until evaluate had applied every accepted event;"
echo "  decided/s = accepted / to decisions (target for batch >= 10000)."
echo
# RSS over the nudge batch phase: a warm-up, then the first and last windows compared.
awk -v start="$RSS_START" -v end="$RSS_END" -v secs="$BATCH_SECONDS" '
  $2 == "batch-nudge" {
    if (t0 == "") t0 = $1
    t = $1 - t0; n++; tt[n] = t; rr[n] = $3
    if ($3 > peak) peak = $3
  }
  $3 > all_peak { all_peak = $3 }
  END {
    w = (secs >= 180) ? 60 : secs / 3
    for (i = 1; i <= n; i++) {
      if (tt[i] >= w && tt[i] < 2 * w) { f += rr[i]; nf++ }
      if (tt[i] >= secs - w) { l += rr[i]; nl++ }
    }
    printf "RSS of nudge serve: after warm-up %.1f MB, peak %.1f MB, at the end %.1f MB\n",
      start / 1024, all_peak / 1024, end / 1024
    if (nf && nl) {
      fm = f / nf / 1024; lm = l / nl / 1024
      printf "batch phase: mean RSS %.1f MB in [%ds, %ds), %.1f MB in the last %ds: %+.1f%% (%s)\n",
        fm, w, 2 * w, lm, w, 100 * (lm - fm) / fm, (lm <= fm * 1.1) ? "flat" : "GROWING"
    }
  }' "$WORK/samples.txt"
echo "RSS samples (s since start, MB) during the nudge batch phase:"
awk '$2 == "batch-nudge" { printf " %s:%.0f", $1, $3 / 1024 } END { print "" }' \
  "$WORK/samples.txt" | fold -s -w 100
echo
echo "load average (1/5/15 min) at the start / end of each nudge phase:"
for name in track-nudge batch-nudge; do
  echo "  $name: $(cut -d' ' -f8- "$WORK/$name.nudge")"
done
