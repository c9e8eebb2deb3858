#!/bin/sh
# Build test/install/main.c against an installed cactor and run it.
#   run.sh cmake|pkgconfig PREFIX WORKDIR [CC]
# Both ways build a shared and a static consumer; the static one must not
# need libcactor.so at run time.
set -eu
kind=$1 prefix=$2 work=$3 cc=${4:-cc}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"

no_libcactor_so() { # a static consumer must not need libcactor.so
    if readelf -d "$1" | grep -q 'NEEDED.*libcactor'; then
        echo "FAIL: $1 needs libcactor.so" >&2
        exit 1
    fi
}

case $kind in
cmake)
    cmake -S "$here" -B "$work" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_BUILD_TYPE=Release
    cmake --build "$work"
    readelf -d "$work/consumer_shared" | grep 'NEEDED.*libcactor\.so\.' ||
        { echo "FAIL: consumer_shared does not link libcactor.so" >&2; exit 1; }
    "$work/consumer_shared"
    no_libcactor_so "$work/consumer_static"
    "$work/consumer_static"
    ;;
pkgconfig)
    pcdir=$(dirname "$(find "$prefix" -name cactor.pc | head -n 1)")
    [ -f "$pcdir/cactor.pc" ] || { echo "FAIL: no cactor.pc under $prefix" >&2; exit 1; }
    export PKG_CONFIG_PATH="$pcdir"
    pkg-config --validate cactor
    libdir=$(pkg-config --variable=libdir cactor)
    echo "cflags: $(pkg-config --cflags cactor)"
    echo "libs: $(pkg-config --libs cactor)"
    echo "static libs: $(pkg-config --static --libs cactor)"
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_shared" "$here/main.c" \
        $(pkg-config --cflags --libs cactor) -Wl,-rpath,"$libdir"
    "$work/consumer_shared"
    # Static: libcactor.a (whole) plus pkg-config's --static list.
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_static" "$here/main.c" \
        $(pkg-config --cflags cactor) -Wl,--whole-archive "$libdir/libcactor.a" \
        -Wl,--no-whole-archive $(pkg-config --static --libs cactor | sed 's/-lcactor\b//')
    no_libcactor_so "$work/consumer_static"
    "$work/consumer_static"
    ;;
*)
    echo "usage: $0 cmake|pkgconfig PREFIX WORKDIR [CC]" >&2
    exit 2
    ;;
esac
echo "install test ($kind): ok"
