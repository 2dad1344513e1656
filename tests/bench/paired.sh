#!/usr/bin/env bash
# paired.sh - this checkout against an older commit, side by side.
#
#   tests/bench/paired.sh COMMIT [PAIRS [COUNT]]
#
# Builds COMMIT in a temporary worktree, then runs PAIRS (default 5)
# alternating pairs of short bursts, COMMIT's first: each commit's own
# `tests/bench/bench.sh COUNT 5 500` (COUNT default 20000) with its own
# binaries, so a machine that slows down or speeds up during the runs
# weighs on both alike. Prints, per run and then as medians, the CPU
# seconds per 1,000 tickets of the four services together and of
# PostgreSQL, the tickets a second, and the p99 latency at 500 reports a
# second (for PAIRED_SECONDS, default 5), then each service's median alone;
# a burst that lost or duplicated a ticket stops it (bench.sh fails). WHISTLE_INSECURE=1 runs both without
# CURVE (an older commit may have none, and then runs without it anyway).
# Needs what `make bench` needs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OLD=${1:?usage: paired.sh COMMIT [PAIRS [COUNT]]}
PAIRS=${2:-5}
COUNT=${3:-20000}
SECS=${PAIRED_SECONDS:-5} # of the latency phase, at 500 reports a second
WORK=$(mktemp -d /tmp/whistle-paired.XXXXXX) # mktemp fills in the X
cleanup() {
  git -C "$ROOT" worktree remove --force "$WORK/old" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
git -C "$ROOT" worktree add --detach "$WORK/old" "$OLD" >/dev/null 2>&1
for tree in "$WORK/old" "$ROOT"; do
  make -C "$tree" -j2 all build/bin/whistle-bench >/dev/null
done

# One burst of tree $1 (WHISTLE_INSECURE=$2); prints "services postgres tickets/s p99".
burst() {
  local tree=$1 insecure=$2 json
  json=$(cd "$tree" && WHISTLE_INSECURE=$insecure BENCH_VAR=$WORK/var BENCH_CEILING_SECONDS=3 BENCH_LOOP=0 \
           WHISTLE_BIN=$tree/build/bin tests/bench/bench.sh "$COUNT" "$SECS" 500 2>/dev/null | tail -n 1)
  echo "$json" | awk '{
    n = split("intake triage dispatch notify", s, " "); svc = 0
    for (i = 1; i <= n; i++) {
      one[i] = "nan"
      if (match($0, "\"" s[i] "\":[0-9.]+")) {
        one[i] = substr($0, RSTART + length(s[i]) + 3, RLENGTH - length(s[i]) - 3)
        svc += one[i]
      }
    }
    pg = match($0, "\"postgres\":[0-9.]+") ? substr($0, RSTART + 11, RLENGTH - 11) : "nan"
    tps = match($0, "\"tickets_per_s\":[0-9]+") ? substr($0, RSTART + 16, RLENGTH - 16) : "nan"
    p99 = match($0, "\"p99_ms\":[0-9.]+") ? substr($0, RSTART + 9, RLENGTH - 9) : "nan"
    printf "%.3f %s %s %s %s %s %s %s\n", svc, pg, tps, p99, one[1], one[2], one[3], one[4] }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

insecure=${WHISTLE_INSECURE:-0}
printf '%-6s %-10s %12s %12s %10s %8s\n' pair code services postgres tickets/s p99_ms
: > "$WORK/old.txt"
: > "$WORK/new.txt"
for i in $(seq "$PAIRS"); do
  r=$(burst "$WORK/old" "$insecure")
  echo "$r" >> "$WORK/old.txt"
  printf '%-6s %-10s %12s %12s %10s %8s\n' "$i" "$OLD" $(echo "$r" | cut -d' ' -f1-4)
  r=$(burst "$ROOT" "$insecure")
  echo "$r" >> "$WORK/new.txt"
  printf '%-6s %-10s %12s %12s %10s %8s\n' "$i" this $(echo "$r" | cut -d' ' -f1-4)
done
for side in old new; do
  printf '%-6s %-10s %12s %12s %10s %8s\n' median "$([ $side = old ] && echo "$OLD" || echo this)" \
    "$(cut -d' ' -f1 "$WORK/$side.txt" | median)" "$(cut -d' ' -f2 "$WORK/$side.txt" | median)" \
    "$(cut -d' ' -f3 "$WORK/$side.txt" | median)" "$(cut -d' ' -f4 "$WORK/$side.txt" | median)"
done
# Each service alone, median CPU s per 1,000 tickets: where a difference lies.
printf '\n%-10s %10s %10s %10s %10s\n' code intake triage dispatch notify
for side in old new; do
  printf '%-10s %10s %10s %10s %10s\n' "$([ $side = old ] && echo "$OLD" || echo this)" \
    "$(cut -d' ' -f5 "$WORK/$side.txt" | median)" "$(cut -d' ' -f6 "$WORK/$side.txt" | median)" \
    "$(cut -d' ' -f7 "$WORK/$side.txt" | median)" "$(cut -d' ' -f8 "$WORK/$side.txt" | median)"
done
