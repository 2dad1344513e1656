#!/usr/bin/env bash
# stack.sh - the local whistle stack, all of it under var/ in the working tree.
#
#   stack.sh up              private PostgreSQL (initdb on first use, a free port, one
#                            database per service), then notify, dispatch, triage, intake
#   stack.sh down            stop the services and PostgreSQL; nothing is left running
#   stack.sh destroy         down, then delete the cluster and everything under var/
#   stack.sh pg-up           only PostgreSQL and the databases (integration tests)
#   stack.sh status          what runs, and where
#   stack.sh start NAME      start one service (intake|triage|dispatch|notify|postgres)
#   stack.sh kill NAME       kill -9 one of them (for fault tests)
#
# WHISTLE_VAR (default var/), WHISTLE_BIN (build/bin) and WHISTLE_CONF_DIR
# (deploy/demo) point it elsewhere. var/stack.env records endpoints and
# connection strings; whistlectl reads it.
#
# Every socket is CURVE: the first start makes a key pair for each service,
# for the hotline integrator and for every party of the org chart under
# var/keys (mode 0700; secret keys 0600), and later starts make only what a
# changed org chart adds. WHISTLE_INSECURE=1 starts the services without
# (to measure what CURVE costs).
#
# Everything here runs on one machine, so the processes talk over Unix
# sockets: ZeroMQ ipc:// endpoints under var/run, PostgreSQL's socket in its
# data directory. TCP on loopback cost PostgreSQL 7-25% more CPU per ticket in
# paired bursts (the bind messages of a batch are hundreds of KB). A path
# must fit a socket address (107 bytes): under a deeper var/ the stack uses
# TCP on 127.0.0.1 instead. PostgreSQL listens on 127.0.0.1 as well.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VAR=$(realpath -m "${WHISTLE_VAR:-$ROOT/var}")
BIN=${WHISTLE_BIN:-$ROOT/build/bin}
CONF=${WHISTLE_CONF_DIR:-$ROOT/deploy/demo}
ENVF=$VAR/stack.env
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
SERVICES=(notify dispatch triage intake)

say() { printf 'whistle: %s\n' "$*"; }
die() { printf 'whistle: %s\n' "$*" >&2; exit 1; }

# Runs a PostgreSQL server program as the postgres user when we are root
# (initdb refuses root), as ourselves otherwise.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Ports come from below the kernel's ephemeral range, which outgoing
# connections draw from: a port picked there could be taken before we bind.
# Picks n distinct free ports into the array PORTS, none of those in the
# words of $2 (ports a stack has chosen but may not be bound yet).
pick_ports() {
  local n=$1 taken=" ${2:-} " p lo
  lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$lo" -gt 12000 ] || lo=32768
  PORTS=()
  for _ in $(seq 1000); do
    [ ${#PORTS[@]} -ge "$n" ] && return
    p=$((10000 + RANDOM % (lo - 10000)))
    [[ " ${PORTS[*]} " == *" $p "* || $taken == *" $p "* ]] && continue
    port_free "$p" && PORTS+=("$p")
  done
  die "no free ports found"
}

load_env() {
  [ -f "$ENVF" ] || return 1
  . "$ENVF"
  # A stack made before keys were: its keys go where a new one's would.
  if [ -z "${WHISTLE_KEYS:-}" ]; then
    WHISTLE_KEYS=$VAR/keys
    echo "WHISTLE_KEYS='$WHISTLE_KEYS'" >> "$ENVF"
  fi
  # A stack made before admin sockets were: theirs go beside the others.
  if [ -z "${WHISTLE_INTAKE_ADMIN:-}" ]; then
    admin_env >> "$ENVF"
    . "$ENVF"
  fi
  # ... and before the desk was: dispatch's goes beside them too.
  if [ -z "${WHISTLE_DESK:-}" ]; then
    desk_env >> "$ENVF"
    . "$ENVF"
  fi
  # ... and before intake gave notify the reporters' numbers.
  if [ -z "${WHISTLE_CONTACTS:-}" ]; then
    contacts_env >> "$ENVF"
    . "$ENVF"
  fi
  # ... and before the center could try a report on triage.
  if [ -z "${WHISTLE_TRIAGE_ASK:-}" ]; then
    ask_env >> "$ENVF"
    . "$ENVF"
  fi
  # ... and before dispatch told triage the classes the center gave.
  if [ -z "${WHISTLE_LESSONS:-}" ]; then
    lessons_env >> "$ENVF"
    . "$ENVF"
  fi
}

# One more endpoint, NAME (WHISTLE_NAME) on socket file SOCK: a Unix socket
# when the others are, else a free port on 127.0.0.1.
sock_env() {
  local used
  if [[ ${WHISTLE_INTAKE:-ipc://} == ipc://* ]]; then
    echo "WHISTLE_$1='ipc://$VAR/run/$2'"
  else
    used="${WHISTLE_PGPORT:-} ${WHISTLE_INTAKE##*:} ${WHISTLE_TRIAGE##*:} ${WHISTLE_DISPATCH##*:}"
    used="$used ${WHISTLE_NOTIFY##*:} ${WHISTLE_FEED##*:} ${WHISTLE_INTAKE_ADMIN##*:}"
    used="$used ${WHISTLE_TRIAGE_ADMIN##*:} ${WHISTLE_DISPATCH_ADMIN##*:} ${WHISTLE_NOTIFY_ADMIN##*:}"
    used="$used ${WHISTLE_DESK##*:} ${WHISTLE_CONTACTS##*:} ${WHISTLE_TRIAGE_ASK##*:} ${WHISTLE_LESSONS##*:}"
    pick_ports 1 "$used"
    echo "WHISTLE_$1='tcp://127.0.0.1:${PORTS[0]}'"
  fi
}
# dispatch's desk, where parties act on their orders.
desk_env() { sock_env DESK desk.sock; }
# intake's contacts, where notify asks for a reporter's number.
contacts_env() { sock_env CONTACTS contacts.sock; }
# triage's request socket, where the center tries a report.
ask_env() { sock_env TRIAGE_ASK triage-ask.sock; }
# triage's lessons, where dispatch tells it the classes the center gave by hand.
lessons_env() { sock_env LESSONS lessons.sock; }

# The admin endpoints, one per service, beside its other sockets: Unix
# sockets when the others are, else free ports on 127.0.0.1.
admin_env() {
  local s u i=0 used
  used="${WHISTLE_PGPORT:-} ${WHISTLE_INTAKE##*:} ${WHISTLE_TRIAGE##*:} ${WHISTLE_DISPATCH##*:}"
  used="$used ${WHISTLE_NOTIFY##*:} ${WHISTLE_FEED##*:}"
  [[ ${WHISTLE_INTAKE:-ipc://} == ipc://* ]] || pick_ports ${#SERVICES[@]} "$used"
  for s in "${SERVICES[@]}"; do
    u=$(echo "$s" | tr a-z A-Z)
    if [[ ${WHISTLE_INTAKE:-ipc://} == ipc://* ]]; then
      echo "WHISTLE_${u}_ADMIN='ipc://$VAR/run/$s-admin.sock'"
    else
      echo "WHISTLE_${u}_ADMIN='tcp://127.0.0.1:${PORTS[$i]}'"
    fi
    i=$((i + 1))
  done
}

write_env() {
  pick_ports 6
  local pgport=${PORTS[0]} pi=${PORTS[1]} pt=${PORTS[2]} pd=${PORTS[3]} pn=${PORTS[4]} pf=${PORTS[5]}
  local pghost=127.0.0.1 ei=tcp://127.0.0.1:$pi et=tcp://127.0.0.1:$pt ed=tcp://127.0.0.1:$pd
  local en=tcp://127.0.0.1:$pn ef=tcp://127.0.0.1:$pf
  # The longest socket path is $VAR/pg/.s.PGSQL.<port>.
  if [ $((${#VAR} + 20)) -le 107 ]; then
    pghost=$VAR/pg
    ei=ipc://$VAR/run/intake.sock et=ipc://$VAR/run/triage.sock ed=ipc://$VAR/run/dispatch.sock
    en=ipc://$VAR/run/notify.sock ef=ipc://$VAR/run/feed.sock
  fi
  local db="host=$pghost port=$pgport user=whistle connect_timeout=5"
  cat > "$ENVF" <<EOV
# written by deploy/local/stack.sh
WHISTLE_PGPORT='$pgport'
WHISTLE_PGHOST='$pghost'
WHISTLE_INTAKE='$ei'
WHISTLE_TRIAGE='$et'
WHISTLE_DISPATCH='$ed'
WHISTLE_NOTIFY='$en'
WHISTLE_FEED='$ef'
WHISTLE_INTAKE_DB='$db dbname=whistle_intake'
WHISTLE_TRIAGE_DB='$db dbname=whistle_triage'
WHISTLE_DISPATCH_DB='$db dbname=whistle_dispatch'
WHISTLE_NOTIFY_DB='$db dbname=whistle_notify'
WHISTLE_KEYS='$VAR/keys'
EOV
  WHISTLE_PGPORT=$pgport WHISTLE_INTAKE=$ei WHISTLE_TRIAGE=$et WHISTLE_DISPATCH=$ed \
    WHISTLE_NOTIFY=$en WHISTLE_FEED=$ef admin_env >> "$ENVF"
  . "$ENVF"
  desk_env >> "$ENVF"
  . "$ENVF"
  contacts_env >> "$ENVF"
  . "$ENVF"
  ask_env >> "$ENVF"
  . "$ENVF"
  lessons_env >> "$ENVF"
}

# The cluster's real directory: when var/ is not reachable by the postgres
# user, var/pg is a link to a private directory, and PostgreSQL is given that
# directory itself (it could not follow a path through var/).
pg_data() { if [ -L "$VAR/pg" ]; then readlink -f "$VAR/pg"; else echo "$VAR/pg"; fi; }
pg_log() { if [ -L "$VAR/pg" ]; then echo "$(pg_data).log"; else echo "$VAR/log/postgres.log"; fi; }

init_pg() {
  local data
  data=$(pg_data)
  [ -f "$data/PG_VERSION" ] && return
  [ -n "$PGBIN" ] || die "PostgreSQL server not installed (run deploy/local/deps.sh)"
  rm -rf "$VAR/pg"
  data=$VAR/pg
  mkdir -p "$data"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$data"
    if ! runuser -u postgres -- test -w "$data"; then
      # The tree is not reachable for the postgres user (e.g. under /root):
      # keep the cluster in a private directory and link it here.
      rmdir "$data"
      local priv
      priv=$(mktemp -d /tmp/whistle-pg.XXXXXX)
      chown postgres: "$priv"
      chmod 700 "$priv"
      ln -s "$priv" "$data"
      data=$priv
    fi
  fi
  # Text sorts by code point (C collation: the same order as C.UTF-8, but
  # PostgreSQL compares keys with memcmp instead of strcoll); character
  # classes stay Unicode.
  as_pg "$PGBIN/initdb" -D "$data/" -U whistle --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --lc-collate=C >"$VAR/log/initdb.log" 2>&1 || { cat "$VAR/log/initdb.log" >&2; die "initdb failed"; }
}

# Where PostgreSQL makes its socket: its data directory, when stack.env says
# the services connect through it.
pg_sockdir() { if [[ ${WHISTLE_PGHOST:-} == /* ]]; then pg_data; fi; }

pg_running() { as_pg "$PGBIN/pg_ctl" -D "$(pg_data)/" status >/dev/null 2>&1; }

# PostgreSQL's own log says what failed, never the row (log_error_verbosity
# terse: no DETAIL, which spells out a refused row, a reporter's phone with
# it; a statement's parameters are not logged either, as by default).
#
# Shared buffers: an eighth of memory, 128 MB to 2 GB. A burst of 100,000
# tickets writes about 1 GB of rows and indexes; with 512 MB, backends spent
# the second half of it evicting dirty pages themselves (142,000 buffer
# writes by backends in one `make bench`, 46,000 with 2 GB) and PostgreSQL
# took 0.12-0.13 CPU s per 1,000 tickets instead of 0.095.
shared_buffers_mb() {
  local mb
  mb=$(awk '/MemTotal/ {print int($2 / 1024 / 8)}' /proc/meminfo 2>/dev/null || echo 512)
  [ "$mb" -lt 128 ] && mb=128
  [ "$mb" -gt 2048 ] && mb=2048
  echo "$mb"
}

start_pg() {
  pg_running && return
  local log
  log=$(pg_log)
  touch "$log"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$log"
  # A server just killed may leave children holding the port for a moment.
  for try in 1 2 3 4 5 6 7 8 9 10; do
    as_pg "$PGBIN/pg_ctl" -D "$(pg_data)/" -l "$log" -w -t 60 \
      -o "-p $WHISTLE_PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='$(pg_sockdir)' -c max_connections=50 -c shared_buffers=$(shared_buffers_mb)MB -c max_wal_size=4GB -c checkpoint_timeout=15min -c log_error_verbosity=terse" \
      start >/dev/null 2>&1 && return
    [ "$try" -lt 10 ] && sleep 1
  done
  tail -n 20 "$log" >&2
  die "PostgreSQL did not start"
}

create_dbs() {
  local psql="$PGBIN/psql -h 127.0.0.1 -p $WHISTLE_PGPORT -U whistle -d postgres -qAt"
  for s in "${SERVICES[@]}"; do
    if [ -z "$($psql -c "SELECT 1 FROM pg_database WHERE datname = 'whistle_$s'")" ]; then
      $psql -c "CREATE DATABASE whistle_$s" >/dev/null
    fi
  done
}

# A key pair for every service, the hotline integrator and every party of
# the org chart that has none yet.
make_keys() {
  mkdir -p -m 700 "$WHISTLE_KEYS"
  "$BIN/whistlectl" keygen --missing --dir "$WHISTLE_KEYS" --org "$CONF/org.conf" \
    "${SERVICES[@]}" hotline >/dev/null || die "could not write keys under $WHISTLE_KEYS"
}

svc_args() {
  case $1 in
    intake)   echo "--listen $WHISTLE_INTAKE --peer $WHISTLE_TRIAGE --admin $WHISTLE_INTAKE_ADMIN --contacts $WHISTLE_CONTACTS" ;;
    triage)   echo "--listen $WHISTLE_TRIAGE --peer $WHISTLE_DISPATCH --admin $WHISTLE_TRIAGE_ADMIN --ask $WHISTLE_TRIAGE_ASK --lessons $WHISTLE_LESSONS" ;;
    dispatch) echo "--listen $WHISTLE_DISPATCH --peer $WHISTLE_NOTIFY --admin $WHISTLE_DISPATCH_ADMIN --desk $WHISTLE_DESK --lessons $WHISTLE_LESSONS" ;;
    notify)   echo "--listen $WHISTLE_NOTIFY --pub $WHISTLE_FEED --sink $VAR/sink/reporter.txt --admin $WHISTLE_NOTIFY_ADMIN --contacts $WHISTLE_CONTACTS" ;;
  esac
}
svc_db() {
  case $1 in
    intake) echo "$WHISTLE_INTAKE_DB" ;; triage) echo "$WHISTLE_TRIAGE_DB" ;;
    dispatch) echo "$WHISTLE_DISPATCH_DB" ;; notify) echo "$WHISTLE_NOTIFY_DB" ;;
  esac
}
svc_port() {
  local ep
  case $1 in
    intake) ep=$WHISTLE_INTAKE ;; triage) ep=$WHISTLE_TRIAGE ;;
    dispatch) ep=$WHISTLE_DISPATCH ;; notify) ep=$WHISTLE_NOTIFY ;;
  esac
  if [[ $ep == ipc://* ]]; then echo "${ep#ipc://}"; else echo "${ep##*:}"; fi
}

# Whether a service listens at what svc_port gave: its socket file, or its port.
svc_listening() { if [[ $1 == /* ]]; then [ -S "$1" ]; else ! port_free "$1"; fi; }

svc_pid() { cat "$VAR/run/$1.pid" 2>/dev/null || true; }
svc_alive() { local p; p=$(svc_pid "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

start_svc() {
  local s=$1
  svc_alive "$s" && return
  # A socket file left by a killed process would look like the new one
  # listening.
  local port
  port=$(svc_port "$s")
  [[ $port == /* ]] && rm -f "$port" "$VAR/run/$s-admin.sock"
  # shellcheck disable=SC2046
  WHISTLE_DB="$(svc_db "$s")" WHISTLE_CONF_DIR="$CONF" WHISTLE_KEYS="$WHISTLE_KEYS" \
    nohup "$BIN/whistle-$s" $(svc_args "$s") >>"$VAR/log/$s.log" 2>&1 </dev/null &
  echo $! > "$VAR/run/$s.pid"
  for _ in $(seq 300); do
    svc_listening "$port" && return 0
    svc_alive "$s" || { tail -n 20 "$VAR/log/$s.log" >&2; die "$s exited at start"; }
    sleep 0.1
  done
  die "$s did not start listening on $port"
}

stop_svc() {
  local s=$1 p
  p=$(svc_pid "$s")
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$VAR/run/$s.pid"
}

cmd=${1:-}
mkdir -p "$VAR/run" "$VAR/log"
# The reporter sink stands for the SMS gateway: it holds the numbers it sends to.
mkdir -p -m 700 "$VAR/sink"
case $cmd in
  up)
    [ -f "$ENVF" ] || write_env
    load_env
    init_pg
    start_pg
    create_dbs
    make_keys
    for s in "${SERVICES[@]}"; do start_svc "$s"; done
    say "PostgreSQL on 127.0.0.1:$WHISTLE_PGPORT (data in $VAR/pg)"
    say "intake (submit) $WHISTLE_INTAKE"
    say "triage $WHISTLE_TRIAGE  dispatch $WHISTLE_DISPATCH"
    say "triage's request socket (the center: whistlectl triage TEXT) $WHISTLE_TRIAGE_ASK"
    say "notify (replay) $WHISTLE_NOTIFY  feeds (PUB) $WHISTLE_FEED"
    say "admin (the center: whistlectl parked | redrive ID) $WHISTLE_DISPATCH_ADMIN and beside it"
    say "desk (parties act: whistlectl --as PARTY sign|progress|resolve ... ID) $WHISTLE_DESK"
    say "keys in $WHISTLE_KEYS (whistlectl --as PARTY speaks with PARTY.key)"
    say "logs in $VAR/log; state in $ENVF; stop with: make down"
    ;;
  pg-up)
    [ -f "$ENVF" ] || write_env
    load_env
    init_pg
    start_pg
    create_dbs
    ;;
  down)
    load_env || true
    for s in intake triage dispatch notify; do stop_svc "$s"; done
    if [ -n "$PGBIN" ] && [ -f "$(pg_data)/PG_VERSION" ]; then
      if pg_running; then
        as_pg "$PGBIN/pg_ctl" -D "$(pg_data)/" -m fast -w stop >/dev/null 2>&1 ||
          as_pg "$PGBIN/pg_ctl" -D "$(pg_data)/" -m immediate -w stop >/dev/null 2>&1 || true
      fi
      # A postmaster that pg_ctl did not stop (it refused a setting on a
      # restart, or its status was stale) is stopped by the pid it wrote:
      # nothing is left running.
      pm=$(head -n 1 "$(pg_data)/postmaster.pid" 2>/dev/null || true)
      if [ -n "$pm" ] && kill -0 "$pm" 2>/dev/null && grep -q postgres "/proc/$pm/comm" 2>/dev/null; then
        kill -QUIT "$pm" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pm" 2>/dev/null || true
      fi
    fi
    say "stopped"
    ;;
  destroy)
    "$0" down >/dev/null
    if [ -L "$VAR/pg" ]; then rm -rf "$(pg_data)" "$(pg_log)"; fi
    rm -rf "$VAR"
    say "removed $VAR"
    ;;
  status)
    load_env || die "no stack under $VAR"
    for s in "${SERVICES[@]}"; do
      if svc_alive "$s"; then say "$s running (pid $(svc_pid "$s"))"; else say "$s not running"; fi
    done
    if pg_running; then say "postgres running on $WHISTLE_PGPORT"; else say "postgres not running"; fi
    ;;
  start)
    load_env || die "no stack under $VAR"
    if [ "${2:-}" = postgres ]; then start_pg; else start_svc "${2:?name}"; fi
    ;;
  kill)
    load_env || die "no stack under $VAR"
    if [ "${2:-}" = postgres ]; then
      # The whole server at once, as a crash would take it: the postmaster
      # and every child, then wait until its port is free again.
      pm=$(head -n 1 "$(pg_data)/postmaster.pid" 2>/dev/null || true)
      if [ -n "$pm" ]; then
        pkill -KILL -P "$pm" 2>/dev/null || true
        kill -KILL "$pm" 2>/dev/null || true
      fi
      for _ in $(seq 100); do
        { [ -z "$pm" ] || ! kill -0 "$pm" 2>/dev/null; } && port_free "$WHISTLE_PGPORT" && break
        sleep 0.1
      done
    else
      p=$(svc_pid "${2:?name}")
      [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      rm -f "$VAR/run/$2.pid"
    fi
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
