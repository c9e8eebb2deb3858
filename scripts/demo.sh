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

export HOME=$WORK/home
mkdir -p "$HOME"
printf 'cactor_demo_%s_%s' "$$" "$RANDOM" >"$HOME/.erlang.cookie"
chmod 400 "$HOME/.erlang.cookie"
export ERL_EPMD_ADDRESS=127.0.0.1
unset ERL_FLAGS ERL_AFLAGS ERL_ZFLAGS

for try in 1 2 3 4 5 6 7 8 9 10; do
    PORT=$((20000 + (RANDOM * 7 + $$ + try * 131) % 40000))
    epmd -port "$PORT" -address 127.0.0.1 >"$WORK/epmd.log" 2>&1 &
    EPMD_PID=$!
    ok=
    for _ in $(seq 50); do
        kill -0 "$EPMD_PID" 2>/dev/null || break
        if epmd -port "$PORT" -names >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] && break
    kill "$EPMD_PID" 2>/dev/null
    wait "$EPMD_PID" 2>/dev/null
    EPMD_PID=
done
[ -n "$EPMD_PID" ] || { echo "demo: cannot start epmd" >&2; exit 1; }
export ERL_EPMD_PORT=$PORT
echo "==> private epmd on 127.0.0.1:$PORT (pid $EPMD_PID), HOME $HOME"
echo
timeout -k 5 120 escript examples/erlang/demo.escript "$ROOT/_build/default/lib/cactor/ebin"
rc=$?
echo
[ $rc -eq 0 ] && echo "==> demo finished" || echo "==> demo FAILED ($rc)"
exit $rc
