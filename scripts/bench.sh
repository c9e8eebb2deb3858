#!/usr/bin/env bash
# Build Release into build-bench/ and run the bench/*.c programs (each one
# is built into build-bench/<name>), one after the other, each with its
# own defaults, printing their figures. Arguments select programs by
# name (default: all), e.g. scripts/bench.sh pingpong mpsc; to pass sizes,
# run a program by hand (build-bench/pingpong 1000 ptr same 2 600).
# Exit status: 1 if a program is missing or fails.
#
# A build directory of its own, so that benchmarking does not change the
# configuration of build/ under the tests; warnings do not fail this build
# (the test builds enforce -Werror), since gcc's -O3 warnings are not what
# a benchmark run is about.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
JOBS=${JOBS:-$(nproc)}
BUILD=${BENCH_BUILD:-build-bench}

shopt -s nullglob
benches=(bench/*.c)
if [ ${#benches[@]} -eq 0 ]; then
    echo "bench: no bench/*.c programs yet"
    exit 0
fi

targets=()
if [ $# -gt 0 ]; then
    targets=("$@")
else
    for b in "${benches[@]}"; do
        targets+=("$(basename "$b" .c)")
    done
fi

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCACTOR_WERROR=OFF -DCACTOR_TESTS=OFF \
    -DCACTOR_INSTALL_TEST=OFF >/dev/null || exit 1
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" >/dev/null || exit 1

status=0
echo "cactor benchmarks: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -m)," \
    "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for n in "${targets[@]}"; do
    echo
    echo "==> $n"
    if ! ./"$BUILD"/"$n"; then
        echo "bench: $n failed" >&2
        status=1
    fi
done
exit $status
