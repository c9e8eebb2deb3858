#!/usr/bin/env bash
# bench/dist: cactor-node against an Erlang node and the blocking ei C node
# of erl_interface's user guide, over loopback distribution (make bench-dist).
#
#   bench/dist/run.sh [--no-update]
#
# Environment: DIST_RUNS (3) runs of every test, DIST_MS (2000) ms per test,
# BENCH_BUILD (build-bench) build directory, DIST_FROM_HEAD=1 (measure the
# last commit instead of the working tree), CACTOR_THREADS (2) scheduler
# threads of cactor-node, CACTOR_BATCH_US and CACTOR_SPIN_US (its --batch-us
# and --spin-us; unset: the defaults), CACTOR_HASH_MODE (pool|work, see
# hash_plugin.c),
# DIST_TESTS (e.g. "seq,hash100": only those kinds), DIST_CONTENDERS (e.g.
# "ei cactor"), DIST_CALLERS (the 100 callers of call100 and hash100, for
# a look at fewer), DIST_PERF=FILE (perf record -g of cactor-node meanwhile),
# DIST_CALLGRIND=FILE (cactor-node under valgrind --tool=callgrind).
#
# Builds cactor-node, bench/dist/ei_echo, bench/dist/hash_plugin.so and
# dist_wakeup (bench/dist/wakeup.c; Release), measures the machine's sleep
# and wake-up costs with the last (they bound the round trips and vary on
# a VM), starts a private epmd on 127.0.0.1 (ERL_EPMD_PORT), a private
# HOME and cookie, the three server nodes and the driver node
# (dist_driver.erl), and stops everything it started, by pid. Writes
# bench/dist/results.{tsv,dat,md}, bench/dist/results.png (gnuplot), and,
# unless --no-update, the generated part of the section "Distribution:
# cactor vs Erlang vs blocking ei" of BENCHMARKS.md.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
OUT=$ROOT/bench/dist
BUILD=${BENCH_BUILD:-build-bench}
RUNS=${DIST_RUNS:-3}
MS=${DIST_MS:-2000}
THREADS=${CACTOR_THREADS:-2}
UPDATE=1
[ "${1:-}" = --no-update ] && UPDATE=0

log() { echo "bench-dist: $*"; }

# What is measured: the working tree (default), or with DIST_FROM_HEAD=1
# the last commit, exported into a directory of its own (the tree is
# shared with work in progress).
SRC=.
if [ "${DIST_FROM_HEAD:-0}" = 1 ]; then
    SRC=$BUILD-head-src
    BUILD=$BUILD-head
    rm -rf "$SRC" && mkdir -p "$SRC" && git archive HEAD | tar -x -C "$SRC" || exit 1
    TREE="commit $(git rev-parse --short HEAD) (exported, clean)"
else
    DIRTY=$(git status --porcelain -- mailbox cnode include CMakeLists.txt | awk '{print $2}' | tr '\n' ' ')
    TREE="working tree at commit $(git rev-parse --short HEAD)${DIRTY:+, with uncommitted changes in $DIRTY}"
fi
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCACTOR_WERROR=OFF -DCACTOR_TESTS=OFF \
    -DCACTOR_INSTALL_TEST=OFF >/dev/null || exit 1
cmake --build "$BUILD" -j "$(nproc)" --target cactor-node ei_echo hash_plugin dist_wakeup >/dev/null || {
    log "build failed"
    exit 1
}
BUILD=$(cd "$BUILD" && pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cactor-bench-dist.XXXXXX")
PIDS=()
EPMD_PID=
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    [ -n "$EPMD_PID" ] && kill "$EPMD_PID" 2>/dev/null && wait "$EPMD_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
    log "FAILED: $*"
    for f in "$WORK"/*.out "$WORK"/*.err; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }
    done
    exit 1
}

export HOME=$WORK/home
mkdir -p "$HOME"
COOKIE=bench_dist_$$_$RANDOM
printf '%s' "$COOKIE" >"$HOME/.erlang.cookie"
chmod 400 "$HOME/.erlang.cookie"
export ERL_EPMD_ADDRESS=127.0.0.1
unset ERL_FLAGS ERL_AFLAGS ERL_ZFLAGS

. "$ROOT/scripts/erl-env.sh"
epmd_private "$WORK/epmd.out" || fail "cannot start epmd"
PORT=$EPMD_PORT
export ERL_EPMD_PORT=$PORT

erlc +warnings_as_errors -o "$WORK" "$OUT/dist_echo.erl" "$OUT/dist_driver.erl" || fail "erlc"

# Erlang nodes: no scheduler busy-waiting, so that CPU time is work done
# (busy-waiting would inflate both the server's and the driver's figures
# and steal the other processes' cores).
ERL_OPTS=(+sbwt none +sbwtdcpu none +sbwtdio none)

S=$$
erl -noshell -name "erl$S@127.0.0.1" "${ERL_OPTS[@]}" -pa "$WORK" -s dist_echo start \
    >"$WORK/erlang.out" 2>"$WORK/erlang.err" &
PIDS+=($!)
"$BUILD/ei_echo" "ei$S@127.0.0.1" "$COOKIE" >"$WORK/ei.out" 2>"$WORK/ei.err" &
EI_PID=$!
PIDS+=($EI_PID)
${DIST_CALLGRIND:+valgrind --tool=callgrind --callgrind-out-file=$DIST_CALLGRIND} \
    "$BUILD/cactor-node" --name "ca$S@127.0.0.1" --threads "$THREADS" \
    ${CACTOR_BATCH_US:+--batch-us "$CACTOR_BATCH_US"} \
    ${CACTOR_SPIN_US:+--spin-us "$CACTOR_SPIN_US"} --load "$BUILD/hash_plugin.so" \
    >"$WORK/cactor.out" 2>"$WORK/cactor.err" &
CA_PID=$!
PIDS+=($CA_PID)

for f in erlang ei cactor; do
    for _ in $(seq 150); do
        grep -q ready "$WORK/$f.out" 2>/dev/null && break
        sleep 0.1
    done
    grep -q ready "$WORK/$f.out" || fail "$f node not ready"
done
if grep -q "not implemented" "$WORK/cactor.err"; then
    fail "cactor-node did not load the plugin: $(cat "$WORK/cactor.err")"
fi

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
WAKEUP=$("$BUILD/dist_wakeup") || fail "dist_wakeup"
OTP=$(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().')
ERTS=$(erl -noshell -eval 'io:put_chars(erlang:system_info(version)), halt().')
log "$(nproc) cores, $CPU, kernel $(uname -r), OTP $OTP (erts $ERTS), load $(cut -d' ' -f1-3 /proc/loadavg)"
log "sleep and wake-up: $WAKEUP"
log "epmd 127.0.0.1:$PORT; servers: $(head -1 "$WORK/erlang.out"); $(cat "$WORK/ei.out"); $(cat "$WORK/cactor.out")"

CONTENDERS=()
for c in ${DIST_CONTENDERS:-erlang ei cactor}; do
    case $c in
    erlang) CONTENDERS+=("erlang=erl$S@127.0.0.1=rpc") ;;
    ei) CONTENDERS+=("ei=ei$S@127.0.0.1=$EI_PID") ;;
    cactor) CONTENDERS+=("cactor=ca$S@127.0.0.1=$CA_PID") ;;
    *) fail "unknown contender $c" ;;
    esac
done
ARGS="\"$WORK/res\", \"$RUNS\", \"$MS\", \"$(getconf CLK_TCK)\""
for c in "${CONTENDERS[@]}"; do ARGS="$ARGS, \"$c\""; done
PERF_PID=
if [ -n "${DIST_PERF:-}" ]; then
    perf record -q -e cpu-clock ${DIST_PERF_CG:--g} -p "$CA_PID" -o "$DIST_PERF" >"$WORK/perf.out" 2>&1 &
    PERF_PID=$!
fi
mkdir -p "$WORK/res"
timeout -k 10 1800 erl -noshell -name "drv$S@127.0.0.1" "${ERL_OPTS[@]}" -pa "$WORK" \
    -eval "dist_driver:main([$ARGS])" || fail "driver failed"
if [ -n "$PERF_PID" ]; then
    kill -INT "$PERF_PID"
    wait "$PERF_PID"
fi
for p in "$EI_PID" "$CA_PID"; do
    kill -0 "$p" 2>/dev/null || fail "a server died during the run"
done
if [ -n "${DIST_TESTS:-}${DIST_CONTENDERS:-}${DIST_CALLERS:-}${DIST_PERF:-}${DIST_CALLGRIND:-}" ]; then
    log "partial or profiled run: results not kept (see above)"
    exit 0
fi

cp "$WORK/res/results.tsv" "$WORK/res/results.dat" "$OUT/"
gnuplot -e "datafile='$OUT/results.dat'; outfile='$OUT/results.png'" "$OUT/plot.gp" ||
    fail "gnuplot"

{
    echo "| | |"
    echo "|---|---|"
    echo "| cores | \`nproc\` = $(nproc) |"
    echo "| CPU | \`$CPU\` (/proc/cpuinfo) |"
    echo "| kernel | $(uname -r) |"
    echo "| sleep and wake-up | $WAKEUP (bench/dist/wakeup.c, before the run) |"
    echo "| Erlang/OTP | $OTP (erts $ERTS), erl_interface $(basename /usr/lib/erlang/lib/erl_interface-* | sed 's/erl_interface-//') |"
    # the defaults as cactor-node's --help states them
    dflt() { "$BUILD/cactor-node" --help | tr '\n' ' ' | sed -n "s/.*  $1 US[^(]*(default \([0-9]*\).*/\1/p"; }
    echo "| cactor | $TREE, \`--threads $THREADS --batch-us ${CACTOR_BATCH_US:-$(dflt --batch-us)} --spin-us ${CACTOR_SPIN_US:-$(dflt --spin-us)}\`, hash plugin mode ${CACTOR_HASH_MODE:-pool} |"
    echo
    cat "$WORK/res/results.md"
    echo
    echo "![bench-dist plot](bench/dist/results.png)"
} >"$OUT/results.md"

if [ "$UPDATE" = 1 ]; then
    BEGIN='<!-- bench-dist:begin (generated by make bench-dist) -->'
    END='<!-- bench-dist:end -->'
    if grep -qF "$BEGIN" BENCHMARKS.md && grep -qF "$END" BENCHMARKS.md; then
        awk -v b="$BEGIN" -v e="$END" -v f="$OUT/results.md" '
            $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
            $0 == e { skip = 0 }
            !skip { print }' BENCHMARKS.md >"$WORK/BENCHMARKS.md" && cp "$WORK/BENCHMARKS.md" BENCHMARKS.md
    else
        {
            echo
            echo "## Distribution: cactor vs Erlang vs blocking ei"
            echo
            echo "\`make bench-dist\` (bench/dist/run.sh); see bench/dist/run.sh for what it runs."
            echo
            echo "$BEGIN"
            cat "$OUT/results.md"
            echo "$END"
        } >>BENCHMARKS.md
    fi
    log "BENCHMARKS.md updated"
fi
log "done: bench/dist/results.md, bench/dist/results.png"
