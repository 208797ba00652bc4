#!/usr/bin/env bash
# Alternated timing of two builds on a noisy machine: runs `A ARGS...` and `B ARGS...` in
# turn N times each (output to /dev/null) and prints each one's minimum and median wall time.
#   scripts/ab.sh 8 ./nudge-before ./nudge-after report --rules examples/saas-onboarding h1m.jsonl
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 N A B [ARGS...]" >&2
  exit 2
fi
n=$1; a=$2; b=$3; shift 3
for _ in $(seq "$n"); do
  for bin in "$a" "$b"; do
    start=$(date +%s.%N)
    "$bin" "$@" > /dev/null 2>&1 || true
    end=$(date +%s.%N)
    echo "$bin $start $end"
  done
done | python3 -c '
import collections, statistics, sys
times = collections.defaultdict(list)
for line in sys.stdin:
    name, start, end = line.rsplit(maxsplit=2)
    times[name].append(float(end) - float(start))
for name, t in times.items():
    print(f"{name} min {min(t):.2f} med {statistics.median(t):.2f} n {len(t)}")
'
