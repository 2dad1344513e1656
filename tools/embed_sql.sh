#!/bin/sh
# embed_sql.sh NAME OUT FILE... - compiles a service's SQL migrations into C.
# Each file becomes one wh_migration_t named after the file; the list that a
# service hands to wh_pg_new starts with the shared outbox migration and ends
# with the shared ones that came later.
set -eu
name=$1; out=$2; shift 2
{
  echo "/* Generated from services/$name/sql by tools/embed_sql.sh; do not edit. */"
  echo '#include "wh_outbox.h"'
  i=0
  for f in "$@"; do
    echo "static const char s_sql_$i[] = {"
    od -An -v -tx1 "$f" | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
    echo "0};"
    echo "static const wh_migration_t s_m_$i = {\"$(basename "$f" .sql)\", s_sql_$i};"
    i=$((i + 1))
  done
  echo "const wh_migration_t *const ${name}_migrations[] = {"
  echo "  &wh_outbox_migration,"
  j=0
  while [ $j -lt $i ]; do echo "  &s_m_$j,"; j=$((j + 1)); done
  echo "  &wh_outbox_migration_1,"
  echo "  &wh_outbox_migration_2,"
  echo "  &wh_outbox_migration_3,"
  echo "  &wh_outbox_migration_4,"
  echo "  &wh_outbox_migration_5,"
  echo "  &wh_outbox_migration_6,"
  echo "  NULL};"
} > "$out.tmp"
mv "$out.tmp" "$out"
