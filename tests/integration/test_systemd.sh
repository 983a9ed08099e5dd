#!/bin/sh
# test_systemd.sh - the shipped units (systemd/) pass `systemd-analyze
# verify`, with ExecStart= pointed at this build's programs (verify checks
# that the command exists) and the man pages of Documentation= on MANPATH;
# the sysusers.d file creates the fedc user (systemd-sysusers --dry-run
# into a scratch root); RestartPreventExitStatus= matches the exit codes
# of docs/operations.md and docs/client.md. Skipped without systemd's tools.
set -u
BUILD=${FEDC_BUILD:-build}
. "$(dirname "$0")/lib.sh"

command -v systemd-analyze >/dev/null 2>&1 ||
  skip_suite test_systemd "systemd-analyze is not installed (apt-get install systemd)"
bin=$(cd "$BUILD/bin" && pwd)
[ -e "$BUILD/man/fedc.conf.5" ] || make --no-print-directory BUILD="$BUILD" man >/dev/null 2>&1
mkdir -p "$T/man/man1" "$T/man/man5" "$T/man/man8" "$T/units"
cp man/*.1 "$T/man/man1/"; cp man/*.8 "$T/man/man8/"; cp "$BUILD/man/fedc.conf.5" "$T/man/man5/"
for u in fedc-coordinator fedc-client; do
  sed "s|/usr/bin/|$bin/|" "systemd/$u.service" >"$T/units/$u.service"
  if MANPATH="$T/man" SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$T/units/$u.service" \
      >"$T/out" 2>&1; then
    # verify exits 0 with warnings too: there must be none
    if grep -v "^$" "$T/out" | grep -q .; then
      bad "$u.service: systemd-analyze verify says: $(head -c 400 "$T/out")"
    else
      ok "$u.service passes systemd-analyze verify"
    fi
  else
    bad "$u.service: systemd-analyze verify: $(head -c 400 "$T/out")"
  fi
  grep -q "^ExecStart=/usr/bin/$u " "systemd/$u.service" && ok "$u.service runs /usr/bin/$u" ||
    bad "$u.service: ExecStart is not /usr/bin/$u"
  for k in User=fedc LimitNOFILE= ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
      NoNewPrivileges=yes CapabilityBoundingSet= RestrictAddressFamilies= \
      SystemCallFilter=@system-service ReadWritePaths=; do
    grep -q "^$k" "systemd/$u.service" || bad "$u.service lacks $k"
  done
done
grep -q "^RestartPreventExitStatus=2 4$" systemd/fedc-coordinator.service &&
  grep -q "| 2 | usage or config error" docs/operations.md &&
  grep -q "| 4 | store failure" docs/operations.md &&
  ok "coordinator: RestartPreventExitStatus=2 4, as docs/operations.md's exit codes" ||
  bad "coordinator: RestartPreventExitStatus does not match docs/operations.md"
grep -q "^RestartPreventExitStatus=2 3$" systemd/fedc-client.service &&
  grep -q "| 3 | refused" docs/client.md &&
  ok "client: RestartPreventExitStatus=2 3, as docs/client.md's exit codes" ||
  bad "client: RestartPreventExitStatus does not match docs/client.md"
grep -q "ExecStart=/usr/local/bin" docs/operations.md &&
  bad "docs/operations.md still points a unit at /usr/local/bin" ||
  ok "docs/operations.md's unit runs the packaged /usr/bin/fedc-coordinator"

if command -v systemd-sysusers >/dev/null 2>&1; then
  mkdir -p "$T/root/etc" "$T/root/usr/lib/sysusers.d"
  : >"$T/root/etc/passwd"; : >"$T/root/etc/group"
  cp systemd/fedc.sysusers "$T/root/usr/lib/sysusers.d/fedc.conf"
  if systemd-sysusers --root="$T/root" >"$T/out" 2>&1 &&
      grep -q "^fedc:x:[0-9]*:[0-9]*:fedc federated learning:/var/lib/fedc:/usr/sbin/nologin" \
        "$T/root/etc/passwd"; then
    ok "sysusers.d creates the fedc system user: $(cat "$T/root/etc/passwd")"
  else
    bad "systemd-sysusers: $(head -c 300 "$T/out") passwd: $(cat "$T/root/etc/passwd")"
  fi
else
  skip "sysusers.d: systemd-sysusers is not installed"
fi

summary test_systemd
