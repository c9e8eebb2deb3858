#!/usr/bin/env bash
# Run every test runner of cactor, then print one total line.
#
#   scripts/test.sh            (what `make test` runs after scripts/deps.sh)
#
# Each runner appends one line to the results file,
#   NAME: P passed, F failed, S skipped
# and scripts/summary.sh sums them into the last line printed:
#   N passed, N failed, N skipped
# A build that fails, a test binary that is missing, a suite that crashes
# or times out, or a runner whose output cannot be read all count as
# failures. To add a runner: write a run_NAME function that ends with
# `record NAME P F S`, and list NAME in RUNNERS below.
#
# Environment:
#   CACTOR_RUNNERS    runners to run (default: all, in this order)
#                     "ctest asan tsan clang fuzz ct elixir"
#   CACTOR_SAN_TESTS  ctest regex limiting the ASan and TSan runs (default:
#                     every test labelled unit)
#   CACTOR_FUZZ_TIME  seconds per fuzzer in the fuzz smoke run (default 20)
#   CACTOR_RESULTS    results file (default: build/test-results.txt)
#   JOBS              parallel jobs (default: nproc)
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
. "$ROOT/scripts/erl-env.sh"
JOBS=${JOBS:-$(nproc)}
RUNNERS=${CACTOR_RUNNERS:-ctest asan tsan clang fuzz ct elixir}
RESULTS=${CACTOR_RESULTS:-$ROOT/build/test-results.txt}
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"

say() { printf '\n==> %s\n' "$*"; }

record() { # NAME PASSED FAILED SKIPPED
    echo "$1: $2 passed, $3 failed, $4 skipped" >>"$RESULTS"
    say "$1: done ($2 ok, $3 failed, $4 skipped)"
}

# configure DIR CMAKE_ARGS...  and build everything, going on past errors
# so that what did build can still run. Returns 10 if the configure step
# failed, 1 if the build did.
cmake_build() {
    local dir=$1
    shift
    say "configure $dir: cmake $*"
    if ! cmake -S "$ROOT" -B "$dir" "$@"; then
        return 10
    fi
    # No stale test binary may pass for one that no longer builds: relink.
    find "$dir" -maxdepth 1 -type f -name 'test_*' -perm -u+x -delete
    say "build $dir"
    local keep=-k
    [ -f "$dir/build.ninja" ] && keep="-k 0"
    # shellcheck disable=SC2086
    cmake --build "$dir" -j "$JOBS" -- $keep || return 1
}

# ctest_run NAME DIR CTEST_ARGS...: run ctest and record its counts.
ctest_run() {
    local name=$1 dir=$2
    shift 2
    local log=$dir/ctest-output.txt
    say "$name: ctest $*"
    ctest --test-dir "$dir" -j "$JOBS" --timeout 300 --output-on-failure --no-tests=ignore "$@" 2>&1 |
        tee "$log"
    local rc=${PIPESTATUS[0]}
    local total=0 failed=0 skip=0 disabled=0 line
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
        skip=$(grep -cE '^[[:space:]]+[0-9]+ - .* \(Skipped\)$' "$log")
        disabled=$(grep -cE '^[[:space:]]+[0-9]+ - .* \(Disabled\)$' "$log")
    elif [ "$rc" -eq 0 ] && ! grep -qE '[0-9]+/[0-9]+ Test +#' "$log"; then
        echo "$name: no tests selected"
    else
        echo "$name: cannot read ctest's summary: counted as a failure" >&2
        failed=1
    fi
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        echo "$name: ctest exited $rc: counted as a failure" >&2
        failed=1
    fi
    record "$name" $((total - failed - skip < 0 ? 0 : total - failed - skip)) "$failed" $((skip + disabled))
}

# A ctest runner over one build directory. A failed configure counts as
# one failure; a failed build as one more, and the tests still run (the
# ones whose binary is missing fail as "Not Run").
ctest_runner() { # NAME DIR "CMAKE ARGS" CTEST_ARGS...
    local name=$1 dir=$2 cmake_args=$3
    shift 3
    local t0=$SECONDS rc=0
    # shellcheck disable=SC2086
    cmake_build "$dir" $cmake_args || rc=$?
    if [ "$rc" -eq 10 ]; then
        record "$name-configure" 0 1 0
        return
    elif [ "$rc" -ne 0 ]; then
        record "$name-build" 0 1 0
    fi
    ctest_run "$name" "$dir" "$@"
    say "$name: $((SECONDS - t0)) s"
}

san_filter() {
    if [ -n "${CACTOR_SAN_TESTS:-}" ]; then
        echo "-R $CACTOR_SAN_TESTS"
    else
        echo "-L unit"
    fi
}

# Normal (Release) build: every CUnit suite, and the install tests.
run_ctest() {
    ctest_runner ctest build/ "-DCMAKE_BUILD_TYPE=Release"
}

# Sanitizer builds keep assertions on (Debug) but optimize a little (-O1).
run_asan() {
    # shellcheck disable=SC2046
    ctest_runner ctest-asan build-asan/ \
        "-DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 -DCACTOR_ASAN=ON" $(san_filter)
}

run_tsan() {
    # shellcheck disable=SC2046
    ctest_runner ctest-tsan build-tsan/ \
        "-DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 -DCACTOR_TSAN=ON" $(san_filter)
}

# Everything must also build warning-free with clang (-Werror): one test.
run_clang() {
    local t0=$SECONDS
    if cmake_build build-clang/ -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release \
        -DCACTOR_INSTALL_TEST=OFF; then
        record clang-build 1 0 0
    else
        record clang-build 0 1 0
    fi
    say "clang-build: $((SECONDS - t0)) s"
}

# A short run of each libFuzzer program (test/fuzz/*.c), when there are
# any: each fuzzer is one test; a build failure is one failure.
run_fuzz() {
    if ! compgen -G "test/fuzz/*.c" >/dev/null; then
        say "fuzz: no fuzzers yet (test/fuzz/*.c): skipped"
        return
    fi
    local t0=$SECONDS passed=0 failed=0 n f
    find build-fuzz -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x -delete 2>/dev/null
    say "fuzz: build build-fuzz/"
    scripts/fuzz.sh build || record fuzz-build 0 1 0
    for f in test/fuzz/*.c; do
        n=$(basename "$f" .c)
        [[ $n == fuzz_* ]] || n=fuzz_$n
        if scripts/fuzz.sh run "${CACTOR_FUZZ_TIME:-20}" "build-fuzz/$n"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
    done
    record fuzz "$passed" "$failed" 0
    say "fuzz: $((SECONDS - t0)) s"
}

# ---- the Erlang side: a private Erlang environment ----
# A scratch HOME with its own .erlang.cookie and an epmd on 127.0.0.1 at a
# free port (ERL_EPMD_PORT), for the CT and Elixir runners; stopped by pid
# (erl_env_stop, also on exit).
ERL_WORK=
ERL_EPMD_PID=
erl_env_stop() {
    if [ -n "$ERL_EPMD_PID" ]; then
        kill "$ERL_EPMD_PID" 2>/dev/null
        wait "$ERL_EPMD_PID" 2>/dev/null
    fi
    [ -n "$ERL_WORK" ] && rm -rf "$ERL_WORK"
    ERL_EPMD_PID= ERL_WORK=
}
trap erl_env_stop EXIT

erl_env_start() {
    erl_env_stop
    ERL_WORK=$(mktemp -d "${TMPDIR:-/tmp}/cactor-erl.XXXXXX") || return 1
    cookie_home "$ERL_WORK" cactor_test
    if ! epmd_private "$ERL_WORK/epmd.log"; then
        echo "cannot start a private epmd" >&2
        return 1
    fi
    ERL_EPMD_PID=$EPMD_PID
    local port=$EPMD_PORT
    ERL_EPMD_PORT_PRIVATE=$port
    say "private epmd on 127.0.0.1:$port (pid $ERL_EPMD_PID), HOME $ERL_WORK/home"
}

# Run "$@" with the private HOME and epmd (and the caller's rebar3 cache,
# so that a private HOME costs no download: there are no deps anyway).
erl_env_run() {
    env -u ERL_FLAGS -u ERL_AFLAGS -u ERL_ZFLAGS \
        HOME="$ERL_WORK/home" ERL_EPMD_PORT="$ERL_EPMD_PORT_PRIVATE" ERL_EPMD_ADDRESS=127.0.0.1 \
        REBAR_CACHE_DIR="${REBAR_CACHE_DIR:-$ERL_WORK/rebar3-cache}" "$@"
}

# Common Test suites of the Erlang side (test/*_SUITE.erl, the OTP
# application in erlang/), run by `rebar3 ct` (whose pre-compile hook
# builds cactor-node): the CT hook test/cactor_ct_dist.erl makes the CT
# node distributed against the private epmd.
run_ct() {
    if ! compgen -G "test/*_SUITE.erl" >/dev/null; then
        say "ct: no Common Test suites yet (test/*_SUITE.erl): skipped"
        return
    fi
    local t0=$SECONDS log=build/ct-output.txt rc passed=0 failed=0 skipped=0 line
    if ! erl_env_start; then
        record ct-env 0 1 0
        return
    fi
    say "ct: rebar3 ct"
    REBAR_COLOR=none erl_env_run timeout -k 10 900 rebar3 ct 2>&1 | tee "$log.raw"
    rc=${PIPESTATUS[0]}
    erl_env_stop
    sed -E 's/\x1b\[[0-9;]*m//g' "$log.raw" >"$log"
    # rebar3's closing line: "All 3 tests passed." or
    # "Failed 1 tests. Skipped 1 (1, 0) tests. Passed 1 tests."
    line=$(grep -E '^(All [0-9]+ tests? passed|(Failed|Skipped|Passed) [0-9]+ .*tests?\.)' "$log" | tail -n 1)
    num() { grep -oE "$1 [0-9]+" <<<"$line" | grep -oE '[0-9]+$' || echo 0; }
    if [ -n "$line" ]; then
        passed=$(($(num All) + $(num Passed)))
        failed=$(num Failed)
        skipped=$(num Skipped)
    else
        echo "ct: cannot read rebar3's summary: counted as a failure" >&2
        failed=1
    fi
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        echo "ct: rebar3 ct exited $rc (auto-skipped cases, or an error outside the cases): counted as a failure" >&2
        failed=1
    fi
    record ct "$passed" "$failed" "$skipped"
    say "ct: $((SECONDS - t0)) s"
}

# The Elixir tests (test/elixir/*.exs, ExUnit scripts), each on a
# distributed Elixir node with the private HOME and epmd and the compiled
# cactor application on its code path.
run_elixir() {
    if ! compgen -G "test/elixir/*.exs" >/dev/null; then
        say "elixir: no Elixir tests yet (test/elixir/*.exs): skipped"
        return
    fi
    local t0=$SECONDS f n log rc tests failures skipped line cookie
    say "elixir: rebar3 compile (the cactor application and cactor-node)"
    if ! REBAR_COLOR=none rebar3 compile; then
        record elixir-build 0 1 0
        return
    fi
    for f in test/elixir/*.exs; do
        n=$(basename "$f" .exs)
        log=build/elixir-$n.txt
        if ! erl_env_start; then
            record "elixir-$n" 0 1 0
            continue
        fi
        cookie=$(cat "$ERL_WORK/home/.erlang.cookie")
        say "elixir: $f"
        erl_env_run timeout -k 10 600 elixir --erl "-start_epmd false" --name "ex_${n}_$$@127.0.0.1" --cookie "$cookie" \
            -pa "$ROOT/_build/default/lib/cactor/ebin" "$f" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        erl_env_stop
        tests=0 failures=0 skipped=0
        # ExUnit's closing line: "1 doctest, 3 tests, 1 failure, 1 excluded, 1 skipped"
        line=$(grep -E '^[0-9]+ (doctests?|tests?|propert(y|ies))(, [0-9]+ [a-z]+)*$' "$log" | tail -n 1)
        if [ -n "$line" ]; then
            read -r tests failures skipped < <(awk -F', ' '{
                for (i = 1; i <= NF; i++) {
                    split($i, w, " ")
                    if (w[2] ~ /^failures?$/) f += w[1]
                    else if (w[2] == "invalid") f += w[1]
                    else if (w[2] == "skipped" || w[2] == "excluded") s += w[1]
                    else t += w[1]
                }
                print t + 0, f + 0, s + 0
            }' <<<"$line")
        else
            echo "elixir-$n: cannot read ExUnit's summary: counted as a failure" >&2
        fi
        if [ "$rc" -ne 0 ] && [ "$failures" -eq 0 ]; then
            failures=1
        fi
        record "elixir-$n" $((tests - failures - skipped < 0 ? 0 : tests - failures - skipped)) "$failures" "$skipped"
    done
    say "elixir: $((SECONDS - t0)) s"
}

T0=$SECONDS
for r in $RUNNERS; do
    if ! declare -F "run_$r" >/dev/null; then
        echo "test.sh: unknown runner '$r'" >&2
        record "$r" 0 1 0
        continue
    fi
    "run_$r"
done
say "all runners: $((SECONDS - T0)) s"
exec "$ROOT/scripts/summary.sh" "$RESULTS"
