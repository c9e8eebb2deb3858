#!/usr/bin/env bash
# make demo: build the cactor application and cactor-node (rebar3 compile,
# whose hook runs CMake), then run examples/erlang/demo.escript: an Erlang
# node that starts a C node, calls its actors and functions, crashes an
# actor and the node, and watches both come back.
#
# Everything is private: a scratch HOME with its own .erlang.cookie, an
# epmd on 127.0.0.1 at a free port (ERL_EPMD_PORT), stopped by its pid at
# the end; the C node stops with the Erlang node that owns it.
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

echo "==> rebar3 compile (builds cactor-node with CMake, then the Erlang application)"
REBAR_COLOR=none rebar3 compile || exit 1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cactor-demo.XXXXXX")
EPMD_PID=
cleanup() {
    if [ -n "$EPMD_PID" ]; then
        kill "$EPMD_PID" 2>/dev/null
        wait "$EPMD_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

. "$ROOT/scripts/erl-env.sh"
cookie_home "$WORK" cactor_demo
export HOME=$WORK/home
export ERL_EPMD_ADDRESS=127.0.0.1
unset ERL_FLAGS ERL_AFLAGS ERL_ZFLAGS

epmd_private "$WORK/epmd.log" || { echo "demo: cannot start epmd" >&2; exit 1; }
PORT=$EPMD_PORT
export ERL_EPMD_PORT=$PORT
echo "==> private epmd on 127.0.0.1:$PORT (pid $EPMD_PID), HOME $HOME"
echo
timeout -k 5 120 escript examples/erlang/demo.escript "$ROOT/_build/default/lib/cactor/ebin"
rc=$?
echo
[ $rc -eq 0 ] && echo "==> demo finished" || echo "==> demo FAILED ($rc)"
exit $rc
