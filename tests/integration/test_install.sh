#!/bin/sh
# test_install.sh - `make install` into a scratch DESTDIR gives a tree a
# program can be built against: the programs, libfedc.so (exporting the
# public fedc_ API and nothing else) and libfedc.a, the headers (each
# compiles alone, in C and in C++), and fedc.pc; a program built with
# nothing but pkg-config runs, linked dynamically and statically; and
# `make uninstall` takes it all away again.
. "$(dirname "$0")/lib.sh"
BUILD=${FEDC_BUILD:-build}
CC=${CC:-cc}
CXX=${CXX:-g++}
PREFIX=/opt/fedc
ROOT=$T/root
P=$ROOT$PREFIX

for tool in make pkg-config nm readelf "$CXX"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    skip_suite test_install "$tool not found"
  fi
done

# the same build as the tree's: its CUDA setting, and a sanitizer runtime
# in the program when the library was built with one
cuda=0
[ "$(cat "$BUILD/obj/cuda.flag" 2>/dev/null)" = "cuda=1" ] && cuda=1
MAKE_ARGS="--no-print-directory BUILD=$BUILD CUDA=$cuda"
SAN=""
if [ -f "$BUILD/dist/libfedc.so" ]; then
  needed=$(readelf -d "$BUILD/dist/libfedc.so" 2>/dev/null)
  case $needed in *libasan*) SAN="$SAN -fsanitize=address" ;; esac
  case $needed in *libubsan*) SAN="$SAN -fsanitize=undefined" ;; esac
  case $needed in *libtsan*) SAN="$SAN -fsanitize=thread" ;; esac
fi

# shellcheck disable=SC2086
expect 0 "installed fedc" "make install PREFIX=$PREFIX DESTDIR=..." -- \
  make $MAKE_ARGS install PREFIX=$PREFIX DESTDIR="$ROOT"

# ---- layout ----
missing=""
for f in bin/fedc-coordinator bin/fedc-client bin/fedc-predict bin/fedc-sim; do
  [ -x "$P/$f" ] || missing="$missing $f"
done
if [ -x "$BUILD/bin/fedc-sim-mpi" ] && [ ! -x "$P/bin/fedc-sim-mpi" ]; then
  missing="$missing bin/fedc-sim-mpi"
fi
for f in lib/libfedc.a lib/pkgconfig/fedc.pc; do
  [ -f "$P/$f" ] || missing="$missing $f"
done
for h in include/fedc/*.h; do
  [ -f "$P/$h" ] || missing="$missing $h"
done
[ -L "$P/lib/libfedc.so" ] || missing="$missing lib/libfedc.so(link)"
[ -L "$P/lib/libfedc.so.0" ] || missing="$missing lib/libfedc.so.0(link)"
real=$(ls "$P"/lib/libfedc.so.*.*.* 2>/dev/null | head -n 1)
[ -n "$real" ] && [ ! -L "$real" ] || missing="$missing lib/libfedc.so.X.Y.Z"
if [ -z "$missing" ]; then ok "programs, libfedc.so*, libfedc.a, headers and fedc.pc are installed"
else bad "missing from the installed tree:$missing"; fi

soname=$(readelf -d "$P/lib/libfedc.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" = libfedc.so.0 ] && [ "$(readlink "$P/lib/libfedc.so")" = libfedc.so.0 ]; then
  ok "soname libfedc.so.0; libfedc.so -> libfedc.so.0 -> $(readlink "$P/lib/libfedc.so.0")"
else
  bad "soname '$soname', libfedc.so -> $(readlink "$P/lib/libfedc.so")"
fi

# ---- exported symbols ----
nm -D --defined-only "$P/lib/libfedc.so" | awk '{print $NF}' | sed 's/@.*//' | sort >"$T/syms"
n=$(wc -l <"$T/syms")
stray=$(grep -v '^fedc_' "$T/syms" | head -n 5 | tr '\n' ' ')
internal=$(grep '^fedc__' "$T/syms" | head -n 5 | tr '\n' ' ')
if [ "$n" -gt 0 ] && [ -z "$stray" ] && [ -z "$internal" ]; then
  ok "nm -D --defined-only libfedc.so: $n symbols, every one fedc_ (no fedc__)"
else
  bad "libfedc.so exports more than the API ($n symbols): ${stray}${internal}"
fi
absent=""
for s in fedc_version fedc_strerror fedc_error_msg fedc_error_set fedc_malloc fedc_free \
    fedc_alloc_set fedc_st_encode fedc_st_decode fedc_st_find fedc_st_free fedc_st_write_file \
    fedc_st_read_file fedc_model_spec_init fedc_model_n_params fedc_model_init fedc_model_tensors; do
  grep -qx "$s" "$T/syms" || absent="$absent $s"
done
# and every function the installed headers declare is there to call
python3 scripts/export_map.py "$P"/include/fedc/*.h | sed -n 's/^    \(fedc_[A-Za-z0-9_]*\);$/\1/p' \
  >"$T/declared"
for s in $(cat "$T/declared"); do
  grep -qx "$s" "$T/syms" || absent="$absent $s"
done
if [ -z "$absent" ]; then ok "libfedc.so defines all $(wc -l <"$T/declared") functions the headers declare"
else bad "declared but not exported by libfedc.so:$absent"; fi

# ---- headers: each alone, in C and in C++ ----
hbad=""
for h in "$P"/include/fedc/*.h; do
  name=$(basename "$h")
  printf '#include <fedc/%s>\n#include <fedc/%s>\nint fedc_test_unused;\n' "$name" "$name" >"$T/one.c"
  "$CC" -std=c11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$P/include" "$T/one.c" \
    2>"$T/cerr" || hbad="$hbad $name(C: $(head -c 200 "$T/cerr"))"
  cp "$T/one.c" "$T/one.cpp"
  "$CXX" -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$P/include" "$T/one.cpp" \
    2>"$T/cerr" || hbad="$hbad $name(C++: $(head -c 200 "$T/cerr"))"
done
if [ -z "$hbad" ]; then ok "each of $(ls "$P"/include/fedc/*.h | wc -l) headers compiles alone (twice over) in C11 and C++11"
else bad "headers that do not compile alone:$hbad"; fi

# ---- pkg-config ----
PC="env PKG_CONFIG_PATH=$P/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT pkg-config"
want=$(sed -n 's/.*define FEDC_VERSION "\(.*\)".*/\1/p' include/fedc/version.h)
got=$($PC --modversion fedc 2>&1)
cflags=$($PC --cflags fedc 2>&1)
if [ "$got" = "$want" ] && echo "$cflags" | grep -q -- "-I$P/include" \
    && grep -q "^prefix=$PREFIX\$" "$P/lib/pkgconfig/fedc.pc"; then
  ok "fedc.pc: version $got, prefix $PREFIX, Cflags $cflags"
else
  bad "fedc.pc: version '$got' (want $want), cflags '$cflags'"
fi

# a C++ program calls the library through the umbrella header (extern "C")
cat >"$T/hello.cpp" <<'CPP'
#include <fedc/fedc.h>
#include <cstdio>
int main() {
  fedc_model_spec s;
  fedc_model_spec_init(&s, FEDC_MODEL_SOFTMAX, 3, 2);
  std::printf("%s %zu %s\n", fedc_version(), fedc_model_n_params(&s), fedc_strerror(FEDC_ENOMEM));
  return fedc_model_spec_check(&s) == 0 ? 0 : 1;
}
CPP
# shellcheck disable=SC2046,SC2086
expect 0 "out of memory" "a C++ program links and runs against libfedc.so" -- \
  sh -c "$CXX $SAN -o $T/hello $T/hello.cpp $($PC --cflags --libs fedc) -Wl,-rpath,$P/lib && $T/hello"

# ---- a program built with pkg-config only: dynamic, then static ----
EX=examples/tensors_roundtrip.c
# shellcheck disable=SC2086
expect 0 "" "examples/tensors_roundtrip.c builds with pkg-config --cflags --libs fedc" -- \
  sh -c "$CC -std=c11 -Wall -Wextra $SAN -o $T/rt_dyn $EX $($PC --cflags --libs fedc) -Wl,-rpath,$P/lib"
expect 0 "^ok: 43 parameters in 4 tensors" "it runs against the installed libfedc.so" -- \
  "$T/rt_dyn" "$T/dyn.safetensors"
if readelf -d "$T/rt_dyn" 2>/dev/null | grep -q "NEEDED.*libfedc.so.0"; then
  ok "it needs libfedc.so.0 (the soname)"
else
  bad "the dynamically linked example does not need libfedc.so.0"
fi

static_libs=$($PC --static --libs fedc | sed 's/-lfedc\b/-l:libfedc.a/')
# shellcheck disable=SC2086
expect 0 "" "it links statically: libfedc.a and pkg-config --static --libs fedc" -- \
  sh -c "$CC -std=c11 -Wall -Wextra $SAN -o $T/rt_static $EX $($PC --cflags fedc) $static_libs"
expect 0 "^ok: 43 parameters in 4 tensors" "the static program runs" -- \
  "$T/rt_static" "$T/static.safetensors"
if [ -x "$T/rt_static" ] && ! readelf -d "$T/rt_static" | grep -q "libfedc"; then
  ok "the static program needs no libfedc.so"
else
  bad "the static program still needs libfedc.so"
fi

# what `make examples` built against its staged tree runs in place
if [ -x "$BUILD/examples/tensors_roundtrip" ]; then
  expect 0 "^ok: 43 parameters" "make examples' tensors_roundtrip runs against the staged tree" -- \
    "$BUILD/examples/tensors_roundtrip" "$T/staged.safetensors"
else
  skip "make examples' tensors_roundtrip: $BUILD/examples/tensors_roundtrip not built (make examples)"
fi

# ---- uninstall ----
# shellcheck disable=SC2086
expect 0 "" "make uninstall" -- make $MAKE_ARGS uninstall PREFIX=$PREFIX DESTDIR="$ROOT"
left=$(find "$ROOT" -type f -o -type l | head -n 5 | tr '\n' ' ')
if [ -z "$left" ]; then ok "make uninstall leaves no file behind"
else bad "make uninstall left:$left"; fi

summary test_install
