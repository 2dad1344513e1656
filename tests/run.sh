#!/usr/bin/env bash
# run.sh BUILD... - runs every test against each build (plain, sanitized).
#
# Unit tests need nothing; integration tests get a private PostgreSQL of their
# own under the build directory; end-to-end tests start whole stacks. Any
# sanitizer report fails the run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
pass=0; fail=0
run() {
  local name=$1; shift
  echo "== $name"
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $name"; fi
}
# The held-back part of triage's evaluation set must not move (tests/data/README.md).
run "held-back evaluation set unchanged" \
  bash -c "cd '$ROOT/tests/data' && sha256sum --quiet --strict -c triage_heldback.sha256"
for build in "$@"; do
  build=$(cd "$ROOT/$build" && pwd)
  var=$build/test-var
  rm -rf "$var"; mkdir -p "$var"
  run "$build unit" "$build/bin/test_unit"
  # Triage on labelled reports: the held-back part may not fall below the
  # floor it stands at (at least issue 23's 90% colour, 85% level, 80% lead,
  # at most 10% to the queue); the tune part, which the catalogue is tuned
  # against, stays near whole; the scenarios all right.
  run "$build triage on the held-back reports" "$ROOT/tests/triage/score.sh" "$build/bin/whistle-triage-score" --conf "$ROOT/deploy/demo" \
    --floor 0.90,0.94,0.90,0.04 heldback="$ROOT/tests/data/triage_heldback.jsonl"
  run "$build triage on the tune reports" "$ROOT/tests/triage/score.sh" "$build/bin/whistle-triage-score" --conf "$ROOT/deploy/demo" \
    --floor 0.97,0.97,0.97,0.02 tune="$ROOT/tests/data/triage_tune.jsonl"
  run "$build triage on the scenarios" "$ROOT/tests/triage/score.sh" "$build/bin/whistle-triage-score" --conf "$ROOT/deploy/demo" \
    --floor 1,1,1,0 scenarios="$ROOT/tests/data/scenarios.jsonl"
  # Learning from the center, measured: each placed report left out, the
  # others taught, how often the most alike had its class (no floor: a
  # figure for the scores in rules.conf's learning).
  run "$build triage learning from the center" "$ROOT/tests/triage/score.sh" "$build/bin/whistle-triage-score" --conf "$ROOT/deploy/demo" \
    --learn tune="$ROOT/tests/data/triage_tune.jsonl" heldback="$ROOT/tests/data/triage_heldback.jsonl" scenarios="$ROOT/tests/data/scenarios.jsonl"
  # One PostgreSQL for the integration tests of this build.
  WHISTLE_VAR=$var/integration WHISTLE_BIN=$build/bin "$ROOT/deploy/local/stack.sh" pg-up >/dev/null
  WHISTLE_TEST_DB=$(. "$var/integration/stack.env"
                    echo "host=${WHISTLE_PGHOST:-127.0.0.1} port=$WHISTLE_PGPORT user=whistle dbname=postgres")
  export WHISTLE_TEST_DB
  run "$build integration" "$build/bin/test_integration"
  WHISTLE_VAR=$var/integration "$ROOT/deploy/local/stack.sh" destroy >/dev/null || true
  export WHISTLE_E2E_VAR=$var WHISTLE_BIN=$build/bin WHISTLE_ROOT=$ROOT
  run "$build end-to-end" "$build/bin/test_e2e"
  # The services write sanitizer reports to their logs: any one fails the run.
  if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$var"/*/log/*.log 2>/dev/null; then
    echo "FAILED: sanitizer report in a service log (above)"
    fail=$((fail + 1))
  fi
  for d in "$var"/*/; do WHISTLE_VAR=$d "$ROOT/deploy/local/stack.sh" destroy >/dev/null || true; done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
