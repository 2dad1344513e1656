#!/usr/bin/env bash
# score.sh BIN [--misses|--decisions] [--learn] [--floor C,L,D,Q] NAME=FILE... - triage's score on labelled reports.
#
# jq turns each JSON line into the tab-separated fields whistle-triage-score
# reads (it links no JSON library: see the Makefile on libfriso).
set -euo pipefail
bin=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --floor|--conf) args+=("$1" "$2"); shift 2 ;;
    -*) args+=("$1"); shift ;;
    *=*)
      name=${1%%=*} file=${1#*=}
      tsv=$tmp/$name.tsv
      jq -r '[.id, .source, (.community // ""), (.grid // ""), (.address // ""), (.category // ""),
              ((.care_tags // []) | join(",")), .expect.color,
              ([.expect.level] | flatten | map(tostring) | join(",")), (.expect.lead | join(",")),
              (.text | gsub("[\t\n]"; " "))] | @tsv' "$file" > "$tsv"
      args+=("$name=$tsv"); shift ;;
    *) echo "usage: score.sh BIN [--misses|--decisions] [--learn] [--floor C,L,D,Q] NAME=FILE..." >&2; exit 2 ;;
  esac
done
"$bin" "${args[@]}"
