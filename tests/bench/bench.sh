#!/usr/bin/env bash
# bench.sh - whistle's benchmark: its own stack, the machine's ceiling, the load.
#
#   tests/bench/bench.sh [COUNT [SECONDS [RATE]]]
#
# Starts a private PostgreSQL with the durable defaults (fsync and
# synchronous_commit on) and prints the settings it runs with. Measures the
# ceiling first: pgbench writing what one ticket minimally must write durably
# (one ~500-byte row in each of four tables, 100 tickets per transaction, 4
# clients); then drops that database and checkpoints, starts the four
# services on the same cluster, and runs whistle-bench against them: COUNT
# tickets (default 100000) for throughput, then RATE tickets/s (default 500)
# for SECONDS (default 30) for latency. The last line printed is one JSON
# object. BENCH_VAR (default build/bench-var) holds the stack; it is removed
# at the end unless BENCH_KEEP=1. BENCH_STATEMENTS=1 loads pg_stat_statements
# and prints, before the results, where PostgreSQL spent its time, per
# statement (calls, total and mean ms, rows per call). The database's log
# ($BENCH_VAR/log/postgres.log, kept with BENCH_KEEP=1) has every autovacuum
# run and every statement slower than 50 ms. Run as root, it applies the
# database machine's kernel settings (deploy/sysctl/60-whistle-db.conf) for
# its duration and restores the old values at exit; BENCH_SYSCTL=0 leaves
# the kernel alone. BENCH_LATENCY_FILE=path makes whistle-bench write one
# line per ticket of the latency phase: wall ms at submit, ms to arrival,
# and the ms of each hop (to dispatch, to notify, to the feed here). Then
# BENCH_LOOP orders (default 2000; 0: none) are taken through their life at
# dispatch's desk (sign, progress, resolve, feedback), each party with its
# own key: orders closed per second and the p99 of an action. One call in four
# comes without a category, in residents' own words (BENCH_TEXTS=0: none). Last, how long
# triage's decisions took (p50, p99, p99.9: triage logs them at its stop).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COUNT=${1:-100000}
SECS=${2:-30}
RATE=${3:-500}
CEIL_SECS=${BENCH_CEILING_SECONDS:-10}
export WHISTLE_VAR=${BENCH_VAR:-$ROOT/build/bench-var}
export WHISTLE_BIN=${WHISTLE_BIN:-$ROOT/build/bin}
export WHISTLE_CONF_DIR=${WHISTLE_CONF_DIR:-$ROOT/deploy/demo}
STACK=$ROOT/deploy/local/stack.sh
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

# The database machine's kernel settings (deploy/sysctl) for the run, when
# this is root and they differ; the old values come back at exit.
SYSCTL_CONF=$ROOT/deploy/sysctl/60-whistle-db.conf
sysctl_restore=()
sysctl_apply() {
  [ "${BENCH_SYSCTL:-1}" = 1 ] || return 0
  local key val path old
  while IFS='=' read -r key val; do
    key=$(echo "$key" | tr -d ' '); val=$(echo "$val" | tr -d ' ')
    case $key in ''|\#*) continue ;; esac
    path=/proc/sys/$(echo "$key" | tr . /)
    old=$(cat "$path" 2>/dev/null) || continue
    [ "$old" = "$val" ] && continue
    # A *_bytes limit and its *_ratio twin exclude each other (setting one
    # zeroes the other, and 0 cannot be written): keep both to restore.
    case $path in *_bytes) sysctl_restore+=("${path%_bytes}_ratio=$(cat "${path%_bytes}_ratio")") ;; esac
    if echo "$val" > "$path" 2>/dev/null; then sysctl_restore+=("$path=$old"); fi
  done < "$SYSCTL_CONF"
}
sysctl_undo() {
  local item
  for item in "${sysctl_restore[@]}"; do
    [ "${item#*=}" = 0 ] && continue # the twin's value restores it
    echo "${item#*=}" > "${item%%=*}" 2>/dev/null || true
  done
}
# Huge pages for PostgreSQL's shared memory, as its documentation advises
# for a database machine ("Managing Kernel Resources"): as many as the
# cluster asks for (shared_memory_size_in_huge_pages), reserved for the run
# and given back at exit; then the cluster starts again to take them
# (huge_pages = try, the default, falls back to normal pages when the
# kernel cannot give them). Without them every backend faults in each page
# of shared buffers it touches: 5-9% of PostgreSQL's CPU in a burst.
HUGE=/proc/sys/vm/nr_hugepages
huge_old=
huge_apply() {
  [ "${BENCH_SYSCTL:-1}" = 1 ] && [ -w "$HUGE" ] || return 0
  local want
  want=$(psql -d postgres -c "SHOW shared_memory_size_in_huge_pages" 2>/dev/null) || return 0
  [ "${want:-0}" -gt 0 ] 2>/dev/null || return 0
  huge_old=$(cat "$HUGE")
  echo $((huge_old + want)) > "$HUGE" 2>/dev/null || { huge_old=; return 0; }
  "$STACK" down >/dev/null
  "$STACK" pg-up >/dev/null
}
huge_undo() { [ -z "$huge_old" ] || echo "$huge_old" > "$HUGE" 2>/dev/null || true; }
cleanup() {
  [ "${BENCH_KEEP:-0}" = 1 ] || "$STACK" destroy >/dev/null 2>&1 || true
  huge_undo
  sysctl_undo
}
trap cleanup EXIT
sysctl_apply

"$STACK" destroy >/dev/null 2>&1 || true
"$STACK" pg-up >/dev/null
. "$WHISTLE_VAR/stack.env"
# The ceiling reaches the cluster the way the services do.
PGHOST_BENCH=${WHISTLE_PGHOST:-127.0.0.1}
psql() { "$PGBIN/psql" -h "$PGHOST_BENCH" -p "$WHISTLE_PGPORT" -U whistle -qAtX "$@"; }
huge_apply
if [ "${BENCH_STATEMENTS:-0}" = 1 ]; then
  psql -d postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  "$STACK" down >/dev/null
  "$STACK" pg-up >/dev/null
  psql -d postgres -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
fi

# The log says what the database did when a stall shows in the latency phase
# (the load generator prints its slowest seconds, in UTC as the log is).
# A slow statement is logged without its parameters: they are arrays of a
# whole batch, and printing them (hundreds of KB a line) made a slow second
# slower still when the host was stalling.
psql -d postgres -c "ALTER SYSTEM SET log_autovacuum_min_duration = 0" \
     -c "ALTER SYSTEM SET log_min_duration_statement = 50" \
     -c "ALTER SYSTEM SET log_parameter_max_length = 0" -c "SELECT pg_reload_conf()" >/dev/null
echo "== PostgreSQL $(psql -d postgres -c 'SHOW server_version') on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
for s in fsync synchronous_commit full_page_writes wal_sync_method wal_level shared_buffers \
         wal_buffers max_wal_size checkpoint_timeout commit_delay lc_collate; do
  printf '   %-20s %s\n' "$s" "$(psql -d postgres -c "SHOW $s")"
done
printf '   %-20s %s\n' huge_pages "$(psql -d postgres -c 'SHOW huge_pages'), $(awk '/HugePages_(Total|Free|Rsvd)/ {v[$1] = $2}
  END {n = v["HugePages_Total:"] - v["HugePages_Free:"] + v["HugePages_Rsvd:"];
       s = n > 0 ? n " pages of 2 MB held (vm.nr_hugepages, for this run)" : "none held"; print s}' /proc/meminfo)"
printf '   %-20s %s%s\n' vm.dirty_background_bytes "$(cat /proc/sys/vm/dirty_background_bytes)" \
  "$([ ${#sysctl_restore[@]} -gt 0 ] && echo ' (deploy/sysctl, for this run)')"
[ "$(psql -d postgres -c 'SHOW fsync')" = on ] && [ "$(psql -d postgres -c 'SHOW synchronous_commit')" = on ] ||
  { echo "bench: the cluster is not durable (fsync/synchronous_commit off)" >&2; exit 1; }

echo "== ceiling: pgbench, 4 clients, 100 tickets per transaction, one ~500-byte row per service each, ${CEIL_SECS} s"
psql -d postgres -c "DROP DATABASE IF EXISTS whistle_ceiling" -c "CREATE DATABASE whistle_ceiling"
for t in intake triage dispatch notify; do
  psql -d whistle_ceiling -c "CREATE TABLE $t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload text NOT NULL)"
done
script=$WHISTLE_VAR/ceiling.sql
{
  echo "BEGIN;"
  for t in intake triage dispatch notify; do
    echo "INSERT INTO $t (payload) SELECT repeat(md5(random()::text), 15) FROM generate_series(1, 100);"
  done
  echo "COMMIT;"
} > "$script"
cpu_now() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9 }' /proc/stat; }
read -r cpu0 steal0 <<<"$(cpu_now)"
out=$("$PGBIN/pgbench" -h "$PGHOST_BENCH" -p "$WHISTLE_PGPORT" -U whistle -n -c 4 -j 2 -T "$CEIL_SECS" \
      -f "$script" whistle_ceiling 2>&1) || { echo "$out" >&2; exit 1; }
tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
ceiling=$(awk -v t="$tps" 'BEGIN { printf "%.0f", t * 100 }')
read -r cpu1 steal1 <<<"$(cpu_now)"
stolen=$(awk -v t=$((cpu1 - cpu0)) -v s=$((steal1 - steal0)) \
  'BEGIN { if (t > 0 && s * 100 > t) printf " (%.0f%% of the machine'"'"'s CPU time stolen by the hypervisor)", 100 * s / t }')
echo "   $tps transactions/s = $ceiling tickets/s$stolen"
psql -d postgres -c "DROP DATABASE whistle_ceiling" -c "CHECKPOINT"

echo "== whistle: $COUNT tickets for throughput, then $RATE/s for $SECS s"
"$STACK" up >/dev/null
pids=()
for s in intake triage dispatch notify; do pids+=(--pid "$s=$(cat "$WHISTLE_VAR/run/$s.pid")"); done
pgdata=$(readlink -f "$WHISTLE_VAR/pg")
statements() {
  [ "${BENCH_STATEMENTS:-0}" = 1 ] || return 0
  echo "== PostgreSQL's time per statement (all phases)"
  psql -d postgres -F' | ' -c "SELECT substr(d.datname, 9), calls, round(total_exec_time) AS ms,
      round((total_exec_time / calls)::numeric, 3) AS mean_ms, rows / calls AS rows_per_call,
      left(regexp_replace(query, '\s+', ' ', 'g'), 70)
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    WHERE d.datname LIKE 'whistle\_%' ORDER BY total_exec_time DESC LIMIT 25"
}
[ "${BENCH_STATEMENTS:-0}" = 1 ] && psql -d postgres -c "SELECT pg_stat_statements_reset()" >/dev/null
out=$WHISTLE_VAR/bench.out
# The calls without a category open with residents' own words: the texts of
# triage's tune reports (tests/data), which the catalogue places.
# BENCH_TEXTS=0 sends every ticket with a category, as runs before
# 2026-12-04 did.
texts_arg=()
if [ "${BENCH_TEXTS:-1}" != 0 ]; then
  jq -r '.text' "$ROOT/tests/data/triage_tune.jsonl" > "$WHISTLE_VAR/texts.txt"
  texts_arg=(--texts "$WHISTLE_VAR/texts.txt")
fi
set +e
"$WHISTLE_BIN/whistle-bench" --intake "$WHISTLE_INTAKE" --feed "$WHISTLE_FEED" \
  --notify "$WHISTLE_NOTIFY" --conf "$WHISTLE_CONF_DIR" --count "$COUNT" --rate "$RATE" \
  --seconds "$SECS" --ceiling "$ceiling" "${pids[@]}" \
  --desk "$WHISTLE_DESK" --loop "${BENCH_LOOP:-2000}" "${texts_arg[@]}" \
  --pg-pid "$(head -n 1 "$pgdata/postmaster.pid")" --disk "$pgdata" \
  $([ "${WHISTLE_INSECURE:-0}" = 1 ] || echo --keys "$WHISTLE_KEYS") | tee "$out" | grep -v '^{'
rc=${PIPESTATUS[0]}
set -e
statements
# Triage times each decision it takes (the catalogue's words and the
# center's examples included) and says at its stop how long they took.
"$STACK" down >/dev/null
decide=$(sed -n 's/.* \([0-9]* decisions since start: .*\)/\1/p' "$WHISTLE_VAR/log/triage.log" | tail -n 1)
echo "== triage's decisions: ${decide:-none logged}"
q='p50 under \([0-9]*\) us, p99 under \([0-9]*\) us, p99.9 under \([0-9]*\) us'
read -r p50 p99 p999 c50 c99 c999 <<<"$(echo "$decide" | sed -n "s/.*: $q,.*CPU time $q.*/\1 \2 \3 \4 \5 \6/p")"
# The JSON is the last line, with triage's figures in it.
tail -n 1 "$out" | jq -c --argjson a "${p50:-null}" --argjson b "${p99:-null}" --argjson c "${p999:-null}" \
  --argjson d "${c50:-null}" --argjson e "${c99:-null}" --argjson f "${c999:-null}" \
  '. + {triage_decide_us: {p50: $a, p99: $b, p999: $c}, triage_decide_cpu_us: {p50: $d, p99: $e, p999: $f}}' ||
  tail -n 1 "$out"
exit "$rc"
