#!/bin/sh
# load.sh - the coordinator under load on loopback (docs/load.md).
#
#   1. idle: fedc-load holds FEDC_LOAD_CONNS (10,000) mutual-TLS connections
#      open and idle against a coordinator, and measures GET /v1/status
#      latency (p50/p99 over 2,000 requests) with none and with all of them
#      open, the coordinator's VmRSS before, after (bytes per connection)
#      and while they idle, and fedc_connections from /metrics.
#   2. rounds: FEDC_LOAD_CLIENTS (1,000) simulated clients, each with its own
#      certificate, speak the real protocol (join, task long-poll, model
#      download, update) in one process and complete FEDC_LOAD_ROUNDS (5)
#      rounds of a small softmax model (20 inputs, 2 classes) with
#      clients_per_round = FEDC_LOAD_CLIENTS: seconds per round.
#
# Standalone (not part of bench/run.sh); `make bench-load` builds and runs
# it. Knobs (environment): FEDC_BUILD (build), FEDC_LOAD_CONNS (10000),
# FEDC_LOAD_CLIENTS (1000), FEDC_LOAD_ROUNDS (5), FEDC_LOAD_THREADS (2,
# fedc-load's threads), FEDC_LOAD_IDLE_S (20), FEDC_LOAD_PARTS ("idle
# rounds"). Everything runs on 127.0.0.1 and stops by itself (fedc-load's
# --timeout-s bounds each part); the coordinators are stopped on exit.
set -eu

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${FEDC_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
CONNS=${FEDC_LOAD_CONNS:-10000}
CLIENTS=${FEDC_LOAD_CLIENTS:-1000}
ROUNDS=${FEDC_LOAD_ROUNDS:-5}
THREADS=${FEDC_LOAD_THREADS:-2}
IDLE_S=${FEDC_LOAD_IDLE_S:-20}
PARTS=${FEDC_LOAD_PARTS:-idle rounds}
COORD=$BUILD/bin/fedc-coordinator
LOAD=$BUILD/bin/fedc-load

if [ ! -x "$COORD" ]; then
  echo "load: $COORD not found; build it first (make all)" >&2
  exit 1
fi
if [ ! -x "$LOAD" ]; then
  make -C "$ROOT" --no-print-directory BUILD="$BUILD" "$LOAD" >&2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fedc-load.XXXXXX")
CPID=""
cleanup() {
  if [ -n "$CPID" ]; then kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/certs/make-certs.sh" "$TMP/pki" 1 2>/dev/null

# File limits: one descriptor per connection on each side, and some room.
# `ulimit -n` raises the soft limit up to the hard one; as root (with
# CAP_SYS_RESOURCE) the hard one can go up too. The coordinator started
# below inherits it; fedc-load raises its own (setrlimit).
want=$((CONNS + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  ulimit -Hn "$want" 2>/dev/null || echo "load: cannot raise the hard file limit from $hard to $want (not permitted here)" >&2
fi
soft=$want
[ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want" ] && soft=$(ulimit -Hn)
ulimit -Sn "$soft"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# coordinator NAME ROUNDS CLIENTS_PER_ROUND: start one, wait until it listens
coordinator() {
  PORT=$(port)
  SPORT=$(port)
  cat >"$TMP/$1.ini" <<EOF
[job]
rounds = $2
clients_per_round = $3
min_clients = $3
round_timeout_s = 120
seed = 1
[model]
type = softmax
inputs = 20
classes = 2
[server]
listen = 127.0.0.1:$PORT
status_listen = 127.0.0.1:$SPORT
enroll = open
; idle connections are the point of part 1: closed only after an hour
; (the most the key allows; opening 10,000 takes minutes on a small machine)
idle_timeout_s = 3600
; every connection comes from 127.0.0.1: no per-source limits
max_conns_per_source = 0
handshake_rate = 0
poll_s = 10
over_select = 1.0
max_body_mb = 1
[tls]
ca = $TMP/pki/ca.pem
cert = $TMP/pki/server.pem
key = $TMP/pki/server.key
[store]
path = $TMP/$1.db
[data]
test =
EOF
  "$COORD" --config "$TMP/$1.ini" 2>"$TMP/$1.log" &
  CPID=$!
  i=0
  until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$SPORT/v1/status', timeout=1)" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$CPID" 2>/dev/null; then
      echo "load: the coordinator did not start:" >&2
      cat "$TMP/$1.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

stop_coordinator() {
  kill "$CPID" 2>/dev/null || true
  wait "$CPID" 2>/dev/null || true
  CPID=""
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "fedc load benchmark: coordinator $COORD"
echo "  machine: ${cpu:-unknown CPU}, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  file limit: $(ulimit -n) (hard $(ulimit -Hn)); fedc-load threads: $THREADS"
status=0

for part in $PARTS; do
  case $part in
  idle)
    echo
    echo "== $CONNS idle mutual-TLS connections"
    coordinator idle 1 1
    echo "  coordinator pid $CPID, file limit $(sed -n 's/^Max open files *\([0-9a-z]*\).*/\1/p' /proc/$CPID/limits)"
    # the idle connections do not verify the coordinator's certificate (the
    # coordinator still verifies theirs): it halves the load generator's
    # share of a small machine; the measuring connections do the same
    "$LOAD" idle --port "$PORT" --ca "$TMP/pki/ca.pem" --cert "$TMP/pki/client-1.pem" \
      --key "$TMP/pki/client-1.key" --conns "$CONNS" --pid "$CPID" --threads "$THREADS" \
      --idle-s "$IDLE_S" --no-verify --timeout-s 900 --json || status=1
    stop_coordinator
    ;;
  rounds)
    echo
    echo "== $CLIENTS clients, $ROUNDS rounds of softmax 20 -> 2, clients_per_round = $CLIENTS"
    coordinator rounds "$ROUNDS" "$CLIENTS"
    "$LOAD" rounds --port "$PORT" --ca "$TMP/pki/ca.pem" --ca-key "$TMP/pki/ca.key" \
      --cert "$TMP/pki/client-1.pem" --key "$TMP/pki/client-1.key" --clients "$CLIENTS" \
      --threads "$THREADS" --timeout-s 900 --json || status=1
    stop_coordinator
    ;;
  *)
    echo "load: unknown part '$part' (idle, rounds)" >&2
    exit 2
    ;;
  esac
done
exit $status
