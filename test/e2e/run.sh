#!/usr/bin/env bash
# End-to-end tests: cactor-node against real Erlang nodes.
#
#   test/e2e/run.sh BUILD/cactor-node
#
# Everything is private to one scratch directory: a HOME with its own
# .erlang.cookie for every node, an epmd on 127.0.0.1 at a free port
# (ERL_EPMD_PORT), stopped by its pid. Every wait is bounded; everything
# started here is stopped here, by pid.
set -u

BIN=${1:?usage: run.sh path/to/cactor-node [TEST ...]}
shift
ONLY=""
for t in "$@"; do ONLY="$ONLY, \"$t\""; done
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cactor-e2e.XXXXXX")
EPMD_PID=
NODE_PID=

log() { echo "e2e: $*"; }

cleanup() {
    [ -n "$NODE_PID" ] && kill -KILL "$NODE_PID" 2>/dev/null
    [ -n "$EPMD_PID" ] && kill "$EPMD_PID" 2>/dev/null
    [ -n "$EPMD_PID" ] && wait "$EPMD_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    log "FAILED: $*"
    for f in node.out node.err; do
        [ -f "$WORK/$f" ] && { echo "--- $f"; tail -n 80 "$WORK/$f"; }
    done
    exit 1
}

. "$HERE/../../scripts/erl-env.sh"
cookie_home "$WORK" e2e_cookie
export HOME=$WORK/home
export ERL_EPMD_ADDRESS=127.0.0.1
unset ERL_FLAGS ERL_AFLAGS ERL_ZFLAGS

epmd_private "$WORK/epmd.log" || fail "cannot start epmd"
PORT=$EPMD_PORT
export ERL_EPMD_PORT=$PORT
log "epmd on 127.0.0.1:$PORT (pid $EPMD_PID)"

CNODE=cn$$@127.0.0.1
PLUGIN_ARGS=()
[ -n "${E2E_PLUGIN:-}" ] && PLUGIN_ARGS=(--load "$E2E_PLUGIN")
"$BIN" --name "$CNODE" --threads 2 --probe "${PLUGIN_ARGS[@]}" ${E2E_VERBOSE:+--verbose} \
    >"$WORK/node.out" 2>"$WORK/node.err" &
NODE_PID=$!
for _ in $(seq 100); do
    grep -q ready "$WORK/node.out" 2>/dev/null && break
    kill -0 "$NODE_PID" 2>/dev/null || fail "cactor-node exited at start"
    sleep 0.1
done
grep -q ready "$WORK/node.out" || fail "cactor-node not ready"
log "$(cat "$WORK/node.out")"

# Usage errors are strict.
"$BIN" --sname a --name b@h >/dev/null 2>&1 && fail "two names accepted"
"$BIN" --sname a --threads x >/dev/null 2>&1 && fail "bad --threads accepted"
"$BIN" --bogus >/dev/null 2>&1 && fail "unknown option accepted"
"$BIN" --bogus 2>&1 | grep -q "unknown option '--bogus'" || fail "unknown option not named"
"$BIN" --sname 2>&1 | grep -q "\-\-sname needs a value" || fail "missing value not named"
"$BIN" --version | grep -q "^cactor-node [0-9]*\.[0-9]*\.[0-9]* (libuv " || fail "--version"

erlc -o "$WORK" "$HERE/e2e.erl" || fail "erlc"
timeout -k 5 240 erl -noshell -name "t$$@127.0.0.1" -pa "$WORK" \
    -eval "e2e:main([\"$CNODE\"$ONLY])"
rc=$?
[ $rc -eq 0 ] || fail "Erlang side exited with $rc"

[ -n "$ONLY" ] || grep -q "cookie differs" "$WORK/node.err" || fail "the wrong cookie was not logged"

# A clean stop on SIGTERM, within a bound.
kill -TERM "$NODE_PID"
for _ in $(seq 100); do
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$NODE_PID" 2>/dev/null && fail "cactor-node ignored SIGTERM"
wait "$NODE_PID"
nrc=$?
NODE_PID=
[ $nrc -eq 0 ] || fail "cactor-node exited with $nrc after SIGTERM"
log "all passed"
