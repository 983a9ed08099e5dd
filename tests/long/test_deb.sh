#!/bin/sh
# test_deb.sh - the Debian packages on a fresh Debian 12: `make deb` builds
# them, debootstrap makes a minimal bookworm root file system from Debian's
# mirror (cached as a tarball under $FEDC_BUILD/debroot-cache), apt installs
# the .debs into it with their dependencies, and inside the chroot the
# installed fedc-coordinator and fedc-client, run as the packages' fedc
# user, do a short job over mutual TLS to its end (3 rounds, 2 sites, a
# CSV data set). Also checks what the packages put there: the man pages,
# the units, the fedc user, no CUDA library in ldd.
#
# Needs root (debootstrap, chroot, mounts) and the Debian mirror
# ($FEDC_DEB_MIRROR, default http://deb.debian.org/debian); skipped
# without them. FEDC_DEB_PREBUILT=1 uses the .debs already in
# $FEDC_BUILD/deb-out instead of building them. Takes about 3-4 minutes the first time (build, debootstrap),
# about 2 with the root file system cached.
set -u
BUILD=${FEDC_BUILD:-build}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/integration/lib.sh"
MIRROR=${FEDC_DEB_MIRROR:-http://deb.debian.org/debian}
OUT=$(cd "$BUILD" && pwd)/deb-out
CACHE=$(cd "$BUILD" && pwd)/debroot-cache
TARBALL=$CACHE/bookworm-minbase.tgz
R=$T/root
start=$(date +%s)

[ "$(id -u)" = 0 ] || skip_suite test_deb "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null 2>&1 || apt-get install -y -q debootstrap >/dev/null 2>&1 ||
  skip_suite test_deb "debootstrap is not installed and apt-get could not install it"

# the packages (FEDC_DEB_PREBUILT=1: those already in $OUT)
if [ "${FEDC_DEB_PREBUILT:-0}" = 1 ] && ls "$OUT"/fedc-client_*.deb >/dev/null 2>&1; then
  echo "lintian: not rerun (prebuilt)" >"$T/build"
elif ! FEDC_DEB_OUT=$OUT sh "$TOP/scripts/build-deb.sh" >"$T/build" 2>&1; then
  bad "make deb: $(tail -20 "$T/build")"
  summary test_deb; exit 1
fi
ok "make deb: $(ls "$OUT"/*.deb | grep -vc dbgsym) packages, lintian clean ($(tail -1 "$T/build"))"

# a fresh Debian 12 root file system
mkdir -p "$CACHE" "$R"
if [ ! -s "$TARBALL" ]; then
  if ! debootstrap --variant=minbase --make-tarball="$TARBALL.part" bookworm "$T/dbs" "$MIRROR" \
      >"$T/dbs.log" 2>&1; then
    skip_suite test_deb "debootstrap cannot fetch bookworm from $MIRROR: $(tail -2 "$T/dbs.log" | tr '\n' ' ')"
  fi
  mv "$TARBALL.part" "$TARBALL"
fi
if ! debootstrap --variant=minbase --unpack-tarball="$TARBALL" bookworm "$R" "$MIRROR" \
    >"$T/dbs.log" 2>&1; then
  bad "debootstrap bookworm: $(tail -5 "$T/dbs.log")"
  summary test_deb; exit 1
fi
ok "debootstrap --variant=minbase bookworm ($(( $(date +%s) - start ))s so far)"

# the chroot's /dev is the host's (bound): never remove files under a
# mount point that is still there
cleanup() {
  [ -n "${coord:-}" ] && kill -TERM "$coord" 2>/dev/null && wait "$coord" 2>/dev/null
  for m in "$R/proc" "$R/dev"; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
  for m in "$R/proc" "$R/dev"; do
    if mountpoint -q "$m" 2>/dev/null; then echo "test_deb: $m is still mounted; $T left" >&2; return; fi
  done
  rm -rf --one-file-system "$T"
}
trap cleanup EXIT
mount --bind /dev "$R/dev" && mount -t proc proc "$R/proc" ||
  { bad "cannot mount /dev and /proc in the chroot"; summary test_deb; exit 1; }
cp /etc/resolv.conf "$R/etc/resolv.conf"
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

# apt installs the .debs and what they depend on, from Debian's mirror
mkdir -p "$R/tmp/debs"
cp "$OUT"/fedc-common_*.deb "$OUT"/fedc-coordinator_*.deb "$OUT"/fedc-client_*.deb \
  "$OUT"/fedc-sim_*.deb "$OUT"/libfedc0_*.deb "$OUT"/libfedc-dev_*.deb "$R/tmp/debs/"
echo "deb $MIRROR bookworm main" >"$R/etc/apt/sources.list"
if in_root apt-get update -q >"$T/apt.log" 2>&1 &&
    in_root env DEBIAN_FRONTEND=noninteractive sh -c \
      'apt-get install -y -q --no-install-recommends /tmp/debs/*.deb man-db' >>"$T/apt.log" 2>&1; then
  ok "apt-get install of the .debs into the fresh root"
else
  bad "apt-get install: $(tail -8 "$T/apt.log")"
  summary test_deb; exit 1
fi

# what the packages installed
for f in /usr/bin/fedc-coordinator /usr/bin/fedc-client /usr/bin/fedc-sim \
    /lib/systemd/system/fedc-coordinator.service /lib/systemd/system/fedc-client.service \
    /usr/lib/sysusers.d/fedc.conf /usr/include/fedc/fedc.h /usr/lib/x86_64-linux-gnu/libfedc.so.0; do
  [ -e "$R$f" ] || bad "$f is not installed"
done
in_root getent passwd fedc >"$T/pw" && ok "the fedc system user: $(cat "$T/pw")" || bad "no fedc user"
pages=0
for p in fedc-coordinator.8 fedc-client.1 fedc-sim.1 fedc.conf.5; do
  in_root man -w "${p%.*}" >/dev/null 2>&1 && pages=$((pages + 1)) || bad "man ${p%.*}: not found"
done
[ $pages = 4 ] && ok "man finds fedc-coordinator(8), fedc-client(1), fedc-sim(1), fedc.conf(5)"
in_root ldd /usr/bin/fedc-client >"$T/ldd" 2>&1
grep -qi cuda "$T/ldd" && bad "ldd fedc-client names CUDA" || ok "ldd fedc-client: no CUDA library"
in_root fedc-client --version >"$T/v" 2>&1 && ok "fedc-client --version: $(cat "$T/v")" ||
  bad "fedc-client --version: $(cat "$T/v")"

# a short job inside the root: certificates and data made here, run there
sh "$TOP/certs/make-certs.sh" "$R/etc/fedc/tls" 2 >/dev/null 2>&1 || bad "make-certs.sh"
python3 - "$R/srv" <<'PY'
import os, random, sys
rng = random.Random(5)
for site in (1, 2):
    d = os.path.join(sys.argv[1], f"site-{site}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "train.csv"), "w") as f:
        f.write("x1,x2,x3,x4,label\n")
        for _ in range(400):
            x = [rng.gauss(0, 1) for _ in range(4)]
            y = 1 if 1.5 * x[0] - x[1] + 0.5 * x[2] + rng.gauss(0, 0.3) > 0 else 0
            f.write(",".join(f"{v:.5f}" for v in x) + f",{y}\n")
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$R/etc/fedc/coordinator.ini" <<INI
[job]
rounds = 3
clients_per_round = 2
min_clients = 2
round_timeout_s = 30
[model]
type = logreg
inputs = 4
[train]
epochs = 2
lr = 0.1
[server]
listen = 127.0.0.1:$port
poll_s = 2
over_select = 1.0
[tls]
ca = /etc/fedc/tls/ca.pem
cert = /etc/fedc/tls/server.pem
key = /etc/fedc/tls/server.key
[store]
path = /var/lib/fedc/fedc.db
[data]
test =
INI
for k in 1 2; do
  cat >"$R/etc/fedc/client-$k.ini" <<INI
[server]
url = https://127.0.0.1:$port
[tls]
ca = /etc/fedc/tls/ca.pem
cert = /etc/fedc/tls/client-$k.pem
key = /etc/fedc/tls/client-$k.key
[data]
format = csv
train = /srv/site-$k/train.csv
test =
[client]
name = site-$k
backoff_max_s = 1
give_up_s = 60
INI
done
in_root sh -c 'mkdir -p /var/lib/fedc && chown fedc:fedc /var/lib/fedc &&
  chgrp -R fedc /etc/fedc && chmod -R g+rX /etc/fedc && chmod 0640 /etc/fedc/tls/*.key'
# a command, not a function: `$AS_FEDC prog &` leaves the program's own
# pid in $! (chroot and env exec it), for the SIGTERM below
AS_FEDC="chroot --userspec=fedc:fedc $R /usr/bin/env -i PATH=/usr/bin:/bin HOME=/var/lib/fedc"
as_fedc() { $AS_FEDC "$@"; }
for k in 1 2; do
  as_fedc fedc-coordinator --config /etc/fedc/coordinator.ini allow "/etc/fedc/tls/client-$k.pem" \
    --name "site-$k" >"$T/allow" 2>&1 || bad "allow client-$k: $(cat "$T/allow")"
done
job=$(date +%s)
$AS_FEDC fedc-coordinator --config /etc/fedc/coordinator.ini >"$T/coord.log" 2>&1 &
coord=$!
sleep 1
$AS_FEDC fedc-client --config /etc/fedc/client-1.ini >"$T/c1.log" 2>&1 &
c1=$!
$AS_FEDC fedc-client --config /etc/fedc/client-2.ini >"$T/c2.log" 2>&1 &
c2=$!
wait $c1; rc1=$?
wait $c2; rc2=$?
# the model learned: the training loss of round 3 is below chance (ln 2)
loss=$(sed -n 's/.*round=3 msg="committed".* train_loss=\([0-9.]*\).*/\1/p' "$T/coord.log")
if [ $rc1 = 0 ] && [ $rc2 = 0 ] && [ -n "$loss" ] && awk "BEGIN{exit !($loss < 0.6)}"; then
  ok "installed fedc-coordinator and two fedc-clients ran a 3-round job in the chroot ($(( $(date +%s) - job ))s): $(grep 'round=3 msg="committed"' "$T/coord.log" | sed 's/.*msg=/msg=/' | cut -c1-120)"
else
  bad "the job: clients exited $rc1 and $rc2; coordinator: $(tail -5 "$T/coord.log"); client 1: $(tail -3 "$T/c1.log")"
fi
kill -TERM $coord 2>/dev/null
wait $coord; rcc=$?; coord=""
[ $rcc = 0 ] && ok "the coordinator exits 0 on SIGTERM" || bad "coordinator exit $rcc"
if as_fedc fedc-coordinator --config /etc/fedc/coordinator.ini export 3 /var/lib/fedc/model.safetensors \
    >"$T/exp" 2>&1 && [ -s "$R/var/lib/fedc/model.safetensors" ]; then
  ok "the model of round 3 exports from the store"
else
  bad "export: $(cat "$T/exp")"
fi

# and the packages come off again
if in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q fedc-coordinator fedc-client \
    fedc-sim libfedc-dev libfedc0 fedc-common >"$T/purge.log" 2>&1 &&
    [ ! -e "$R/usr/bin/fedc-coordinator" ]; then
  ok "apt-get purge removes them"
else
  bad "purge: $(tail -5 "$T/purge.log")"
fi
echo "test_deb: $(( $(date +%s) - start ))s"
summary test_deb
