#!/usr/bin/env bash
# Build Release into build/ and run every bench/*.c program (build/<name>),
# one after the other, printing their figures. Extra arguments go to each
# program. Exit status: 1 if a program is missing or fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
JOBS=${JOBS:-$(nproc)}

shopt -s nullglob
benches=(bench/*.c)
if [ ${#benches[@]} -eq 0 ]; then
    echo "bench: no bench/*.c programs yet"
    exit 0
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release || exit 1
targets=()
for b in "${benches[@]}"; do
    targets+=("$(basename "$b" .c)")
done
cmake --build build -j "$JOBS" --target "${targets[@]}" || exit 1

status=0
echo
echo "cactor benchmarks: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -m)," \
    "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for n in "${targets[@]}"; do
    echo
    echo "==> $n"
    if ! ./build/"$n" "$@"; then
        echo "bench: $n failed" >&2
        status=1
    fi
done
exit $status
