#!/bin/sh
# reconnect.sh - N clients reconnecting after a coordinator restart, with
# and without TLS session resumption (docs/load.md, "Reconnecting after a
# restart").
#
# For each of "resume" and "full": a coordinator (enroll = open, N clients
# per round) and fedc-load rounds with N simulated clients; once round 1
# has committed the coordinator is stopped (SIGTERM) and started again on
# the same store, and the figure is the time from the moment it is started
# again until the last client has its next task (fedc-load's "reconnect:"
# line), with the coordinator's handshake counters after the restart
# (fedc_tls_handshakes_total, fedc_tls_handshakes_resumed_total) and its
# CPU seconds over the reconnection. Session tickets are sealed with a key
# derived from the coordinator's private key, so they survive the restart.
#
# Knobs (environment): FEDC_BUILD (build), FEDC_RECONNECT_CLIENTS (10000),
# FEDC_LOAD_THREADS (2), FEDC_RECONNECT_MODES ("resume full"),
# FEDC_RECONNECT_ROUNDS (6: the job must outlast the restart). Prints
# "key: value" lines; exit 1 if a run failed, or if with resumption no
# handshake after the restart was resumed.
set -eu

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${FEDC_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
N=${FEDC_RECONNECT_CLIENTS:-10000}
THREADS=${FEDC_LOAD_THREADS:-2}
MODES=${FEDC_RECONNECT_MODES:-resume full}
ROUNDS=${FEDC_RECONNECT_ROUNDS:-6}
COORD=$BUILD/bin/fedc-coordinator
LOAD=$BUILD/bin/fedc-load
[ -x "$LOAD" ] || make -C "$ROOT" --no-print-directory BUILD="$BUILD" "$LOAD" >&2
if [ ! -x "$COORD" ]; then
  echo "reconnect: $COORD not found; build it first (make all)" >&2
  exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fedc-reconnect.XXXXXX")
CPID=""
LPID=""
cleanup() {
  [ -n "$LPID" ] && kill "$LPID" 2>/dev/null || true
  [ -n "$CPID" ] && kill "$CPID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/certs/make-certs.sh" "$TMP/pki" 1 2>/dev/null
want=$((N + 256))
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$want" ] || ulimit -Hn "$want" 2>/dev/null || true
soft=$want
[ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want" ] && soft=$(ulimit -Hn)
ulimit -Sn "$soft"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { python3 -c "
import re, sys, urllib.request
t = urllib.request.urlopen('http://127.0.0.1:$SPORT/metrics', timeout=5).read().decode()
m = re.search(r'^$1 (\S+)$', t, re.M)
print(int(float(m.group(1))) if m else 0)"; }
committed() { python3 -c "
import json, urllib.request
try:
    print(len(json.load(urllib.request.urlopen('http://127.0.0.1:$SPORT/v1/status', timeout=5))['rounds']))
except Exception:
    print(0)"; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }

start_coordinator() {
  "$COORD" --config "$TMP/$1.ini" 2>>"$TMP/$1.log" &
  CPID=$!
  i=0
  until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$SPORT/v1/status', timeout=1)" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 300 ] || ! kill -0 "$CPID" 2>/dev/null; then
      echo "reconnect: the coordinator did not start:" >&2
      tail -20 "$TMP/$1.log" >&2
      exit 1
    fi
    sleep 0.05
  done
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "fedc reconnect benchmark: $N clients, coordinator restarted after round 1"
echo "  machine: ${cpu:-unknown CPU}, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for mode in $MODES; do
  PORT=$(port)
  SPORT=$(port)
  cat >"$TMP/$mode.ini" <<EOF
[job]
rounds = $ROUNDS
clients_per_round = $N
min_clients = $N
round_timeout_s = 600
seed = 1
[model]
type = softmax
inputs = 20
classes = 2
[server]
listen = 127.0.0.1:$PORT
status_listen = 127.0.0.1:$SPORT
enroll = open
idle_timeout_s = 600
poll_s = 10
over_select = 1.0
max_body_mb = 1
; every simulated client comes from 127.0.0.1
max_conns_per_source = 0
handshake_rate = 0
[tls]
ca = $TMP/pki/ca.pem
cert = $TMP/pki/server.pem
key = $TMP/pki/server.key
[store]
path = $TMP/$mode.db
[data]
test =
EOF
  start_coordinator "$mode"
  flag=""
  [ "$mode" = full ] && flag=--no-resume
  "$LOAD" rounds --port "$PORT" --ca "$TMP/pki/ca.pem" --ca-key "$TMP/pki/ca.key" \
    --cert "$TMP/pki/client-1.pem" --key "$TMP/pki/client-1.key" --clients "$N" \
    --threads "$THREADS" --timeout-s 1800 $flag >"$TMP/$mode.out" 2>&1 &
  LPID=$!
  until [ "$(committed)" -ge 1 ]; do
    kill -0 "$LPID" 2>/dev/null || { echo "reconnect: fedc-load ended early:" >&2; tail "$TMP/$mode.out" >&2; exit 1; }
    sleep 0.2
  done
  kill -TERM "$CPID"
  wait "$CPID" 2>/dev/null || true
  t_up=$(date +%s.%N) # the restart: from here until the last client has a task
  start_coordinator "$mode"
  # the clients come back for the round after the restart: wait for its commit
  c0=$(committed)
  until [ "$(committed)" -gt "$c0" ]; do
    kill -0 "$LPID" 2>/dev/null || break
    sleep 0.2
  done
  cpu1=$(cpu_s "$CPID")
  hs=$(metric fedc_tls_handshakes_total)
  res=$(metric fedc_tls_handshakes_resumed_total)
  rc=0
  wait "$LPID" || rc=$?
  LPID=""
  kill -TERM "$CPID" 2>/dev/null || true
  wait "$CPID" 2>/dev/null || true
  CPID=""
  back=$(sed -n 's/^reconnect: \([0-9]*\) clients .* unix time \([0-9.]*\);.*/\1 \2/p' "$TMP/$mode.out")
  set -- $back
  if [ "$rc" != 0 ] || [ -z "$back" ] || [ "$1" -lt "$N" ]; then
    echo "reconnect: fedc-load failed ($mode):" >&2
    tail -5 "$TMP/$mode.out" >&2
    status=1
    continue
  fi
  secs=$(python3 -c "print(f'{$2 - $t_up:.2f}')")
  echo "$mode: $1 of $N clients had their next task $secs s after the restart; handshakes after the restart: $hs ($res resumed); coordinator CPU from the restart to the next commit: $cpu1 s"
  if [ "$mode" = resume ] && [ "$res" -le 0 ]; then
    echo "reconnect: no handshake was resumed after the restart" >&2
    status=1
  fi
  if [ "$mode" = full ] && [ "$res" -ne 0 ]; then
    echo "reconnect: $res handshakes resumed with --no-resume" >&2
    status=1
  fi
done
exit $status
