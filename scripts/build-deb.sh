#!/bin/sh
# build-deb.sh - `make deb`: the Debian packages, built by Debian's tools
# (dpkg-buildpackage, debhelper; debian/) from a clean copy of the tree,
# then checked by lintian. The .debs and the lintian report land in
# $FEDC_DEB_OUT (default build/deb-out). Build dependencies missing here
# are installed with apt-get (as root) from debian/control.
#
#   scripts/build-deb.sh            build, lintian; exit 1 on a lintian
#                                   error or warning not overridden
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${FEDC_DEB_OUT:-$top/build/deb-out}
version=$(sed -n '1s/^fedc (\([^)]*\)).*/\1/p' "$top/debian/changelog")
work=$out/src
src=$work/fedc-$version

for tool in dpkg-buildpackage dh lintian; do
  if ! command -v $tool >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "build-deb: $tool missing: apt-get install dpkg-dev debhelper lintian" >&2; exit 2; }
    apt-get install -y -q --no-install-recommends dpkg-dev debhelper lintian >/dev/null
  fi
done
# the build dependencies (dpkg-checkbuilddeps names what is missing)
if ! dpkg-checkbuilddeps "$top/debian/control" 2>/dev/null; then
  [ "$(id -u)" = 0 ] || { dpkg-checkbuilddeps "$top/debian/control"; exit 2; }
  missing=$(dpkg-checkbuilddeps "$top/debian/control" 2>&1 | sed -n 's/.*Unmet build dependencies: //p' |
    sed 's/([^)]*)//g')
  apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

rm -rf "$work"
mkdir -p "$src"
# the tracked and the new files, not build outputs
(cd "$top" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$src")
start=$(date +%s)
(cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$out/build.log" 2>&1 || {
  tail -40 "$out/build.log"; echo "build-deb: dpkg-buildpackage failed (log: $out/build.log)" >&2; exit 1; }
rm -f "$out"/*.deb
mv "$work"/*.deb "$out"/
mv "$work"/*.changes "$work"/*.buildinfo "$out"/ 2>/dev/null || true
echo "build-deb: built in $(( $(date +%s) - start ))s:"
ls -1 "$out"/*.deb

# lintian: errors and warnings fail; info and pedantic tags are listed
lintian --info --display-level ">=info" "$out"/*.changes >"$out/lintian.txt" 2>&1 || true
sed -n '/^[EW]: /p' "$out/lintian.txt" >"$out/lintian-ew.txt"
if [ -s "$out/lintian-ew.txt" ]; then
  cat "$out/lintian-ew.txt"
  echo "build-deb: lintian reports errors or warnings ($out/lintian.txt)" >&2
  exit 1
fi
echo "build-deb: lintian: no error or warning ($(grep -c '^[IPX]: ' "$out/lintian.txt" || true) info tags, $out/lintian.txt)"
