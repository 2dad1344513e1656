#!/usr/bin/env bash
# demo.sh - brings the local stack up, replays the scenario reports through
# intake, waits until dispatch has each of them, and prints how each was
# routed beside what practice gave it. KEEP=1 leaves the stack running.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCEN=${WHISTLE_SCENARIOS:-$ROOT/tests/data/scenarios.jsonl}
CTL=$ROOT/build/bin/whistlectl
STACK=$ROOT/deploy/local/stack.sh

"$STACK" up
[ "${KEEP:-0}" = 1 ] || trap '"$STACK" down >/dev/null' EXIT

answers=$(mktemp)
trap 'rm -f "$answers"; [ "${KEEP:-0}" = 1 ] || "$STACK" down >/dev/null' EXIT
"$CTL" --as hotline submit < "$SCEN" > "$answers" || { cat "$answers"; echo "some reports were refused" >&2; exit 1; }

# ids: scenario -> ticket, in file order
mapfile -t ids < <(jq -r '.id' "$SCEN")
mapfile -t tickets < <(jq -r '.ticket_id' "$answers")
declare -A ticket_of scen_of
for i in "${!ids[@]}"; do ticket_of[${ids[$i]}]=${tickets[$i]}; scen_of[${tickets[$i]}]=${ids[$i]}; done

printf 'waiting for dispatch'
for _ in $(seq 120); do
  have=$("$CTL" --json list --limit 100000 | jq .orders | jq --argjson want "$(printf '%s\n' "${tickets[@]}" | jq -R . | jq -s .)" \
         '[.[] | select(.ticket_id as $t | $want | index($t))] | length')
  [ "$have" -ge "${#tickets[@]}" ] && break
  printf '.'
  sleep 0.5
done
echo
all=$("$CTL" --json list --limit 100000 | jq .orders)

printf '%-4s %-12s %-6s %-5s %-16s %-28s %-6s %-44s %s\n' SCEN TICKET COLOUR LEVEL LEAD CO DUP-OF DEADLINES OK
bad=0
for i in "${!ids[@]}"; do
  s=${ids[$i]}; t=${tickets[$i]}
  row=$(jq -c --arg t "$t" '.[] | select(.ticket_id == $t)' <<<"$all")
  exp=$(jq -c --arg s "$s" 'select(.id == $s) | .expect' "$SCEN")
  if [ -z "$row" ]; then printf '%-4s %-12s not dispatched\n' "$s" "$t"; bad=1; continue; fi
  color=$(jq -r .color <<<"$row"); level=$(jq -r .level <<<"$row"); lead=$(jq -r .lead <<<"$row")
  co=$(jq -r '.co | join(",")' <<<"$row"); dup=$(jq -r '.duplicate_of // ""' <<<"$row")
  dups=${dup:+${scen_of[$dup]:-$dup}}
  dl=$("$CTL" --json show "$t" | jq -r '[.deadlines[] | "\(.name) \(.due_at[5:16])"] | join("; ")')
  ok=$(jq -r --argjson r "$row" --arg dup "$dups" '
        def short: sub("^[^.]*[.]"; "");
        (.color == $r.color) and (.level == $r.level) and ((.lead | index($r.lead | short)) != null)
        and (((.co // []) - ($r.co | map(short))) | length == 0)
        and ((.duplicate_of // "") == $dup)' <<<"$exp")
  [ "$ok" = true ] || bad=1
  printf '%-4s %-12s %-6s %-5s %-16s %-28s %-6s %-44s %s\n' "$s" "$t" "$color" "$level" "$lead" \
    "${co:--}" "${dups:--}" "${dl:--}" "$([ "$ok" = true ] && echo yes || echo NO)"
done
overdue=$("$CTL" --json list --overdue --limit 100000 | jq ".orders | length")
echo
echo "$overdue of ${#ids[@]} work orders are overdue: these reports are from 2025 and their clocks ran from when the channel took them."
[ $bad -eq 0 ] && echo "all ${#ids[@]} scenarios routed as expected" || { echo "some scenarios were NOT routed as expected"; exit 1; }
