#!/usr/bin/env bash
# libFuzzer programs of test/fuzz/*.c (clang, CACTOR_FUZZ=ON, build-fuzz/).
#
#   scripts/fuzz.sh build               configure and build build-fuzz/
#   scripts/fuzz.sh run SECONDS [F...]  run each fuzzer F (default: all of
#                                       build-fuzz/fuzz_*) for SECONDS
#
# Seeds: test/fuzz/corpus/<name>/ if it exists (read only); the growing
# corpus is build-fuzz/corpus/fuzz_<name>/, crashes land in build-fuzz/.
# Exit status: non-zero if a build or a fuzzer failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
JOBS=${JOBS:-$(nproc)}

case ${1:-} in
build)
    cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCACTOR_FUZZ=ON -DCACTOR_TESTS=OFF -DCACTOR_INSTALL_TEST=OFF || exit 1
    cmake --build build-fuzz -j "$JOBS"
    ;;
run)
    secs=${2:?usage: fuzz.sh run SECONDS [FUZZER...]}
    shift 2
    shopt -s nullglob
    fuzzers=("$@")
    [ ${#fuzzers[@]} -gt 0 ] || fuzzers=(build-fuzz/fuzz_*)
    if [ ${#fuzzers[@]} -eq 0 ]; then
        echo "fuzz: no fuzzers (test/fuzz/*.c) built"
        exit 0
    fi
    status=0
    for f in "${fuzzers[@]}"; do
        n=$(basename "$f")
        if [ ! -x "$f" ]; then
            echo "fuzz: $f is missing" >&2
            status=1
            continue
        fi
        mkdir -p "build-fuzz/corpus/$n"
        dirs=("build-fuzz/corpus/$n")
        [ -d "test/fuzz/corpus/${n#fuzz_}" ] && dirs+=("test/fuzz/corpus/${n#fuzz_}")
        echo "==> $n ($secs s)"
        if ! "$f" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="build-fuzz/$n-" \
            "${dirs[@]}"; then
            echo "fuzz: $n failed (see build-fuzz/$n-*)" >&2
            status=1
        fi
    done
    exit $status
    ;;
*)
    echo "usage: fuzz.sh build | fuzz.sh run SECONDS [FUZZER...]" >&2
    exit 2
    ;;
esac
