#!/bin/sh
# rebar3's pre-compile hook (rebar.config): build cactor-node with CMake
# (offline, Release, into build/ as `make build` does) and copy it, with
# any plugin of examples/plugin/, into erlang/priv/, where the cactor
# application finds it at run time (code:priv_dir(cactor)).
#
# Environment: CACTOR_BUILD_DIR (default build/ of the repository).
set -eu
ROOT=${REBAR_ROOT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
B=${CACTOR_BUILD_DIR:-$ROOT/build}
PRIV=$ROOT/erlang/priv
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
log=$(mktemp "${TMPDIR:-/tmp}/cactor-cmake.XXXXXX")
trap 'rm -f "$log"' EXIT

run() {
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "rebar-cnode.sh: failed: $*" >&2
        exit 1
    fi
}

command -v cmake >/dev/null || { echo "rebar-cnode.sh: cmake not found (scripts/deps.sh build)" >&2; exit 1; }
if [ -f "$B/CMakeCache.txt" ] && grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$B/CMakeCache.txt"; then
    : # configured: the build step re-runs CMake if a CMakeLists.txt changed
else
    run cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release
fi
# cactor-node, and the example plugin's target(s) when it has any.
targets="cactor-node"
for t in $(cmake --build "$B" --target help 2>/dev/null | sed -n 's/^\.\.\. \([A-Za-z0-9_.-]*plugin[A-Za-z0-9_.-]*\).*/\1/p'); do
    targets="$targets $t"
done
# shellcheck disable=SC2086
run cmake --build "$B" -j "$JOBS" --target $targets
mkdir -p "$PRIV/plugins"
cp -p "$B/cactor-node" "$PRIV/cactor-node.new" && mv -f "$PRIV/cactor-node.new" "$PRIV/cactor-node"
for so in $(find "$B" -name '*.so' -path '*plugin*' 2>/dev/null); do
    cp -p "$so" "$PRIV/plugins/$(basename "$so").new" && mv -f "$PRIV/plugins/$(basename "$so").new" "$PRIV/plugins/$(basename "$so")"
done
echo "rebar-cnode.sh: $PRIV/cactor-node ($targets)"
