#!/bin/sh
# Install the Debian packages cactor needs, if any is missing.
#
#   scripts/deps.sh [GROUP...]     groups: build (default), test, clang,
#                                  erlang, format, all
#
# Nothing missing: no apt at all. Missing and root: apt-get update, then
# apt-get install -y --no-install-recommends. Missing and not root: print
# the sudo command to run, and exit 1.
#
# Environment: CACTOR_SKIP_DEPS=1 skips the check; CACTOR_DEPS_EXTRA adds
# package names (to try the script out).
set -eu

if [ "${CACTOR_SKIP_DEPS:-0}" = 1 ]; then
    exit 0
fi

# Building the library, the tests and the examples.
pkgs_build="cmake make gcc pkg-config libuv1-dev erlang-base erlang-dev libcunit1-dev libssl-dev"
# clang: the -Werror build with clang, sanitizers and libFuzzer.
pkgs_clang="clang libclang-rt-14-dev"
# The Erlang side: Common Test suites and the Elixir test.
pkgs_erlang="erlang-nox erlang-common-test rebar3 elixir"
pkgs_format="clang-format"

[ $# -gt 0 ] || set -- build
want=""
for group in "$@"; do
    case $group in
    build) want="$want $pkgs_build" ;;
    clang) want="$want $pkgs_clang" ;;
    erlang) want="$want $pkgs_erlang" ;;
    format) want="$want $pkgs_format" ;;
    test) want="$want $pkgs_build $pkgs_clang $pkgs_erlang valgrind" ;;
    all) want="$want $pkgs_build $pkgs_clang $pkgs_erlang $pkgs_format valgrind" ;;
    *)
        echo "deps.sh: unknown group '$group' (build, test, clang, erlang, format, all)" >&2
        exit 2
        ;;
    esac
done
want="$want ${CACTOR_DEPS_EXTRA:-}"

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: not a Debian system (no dpkg-query); make sure these are installed:" >&2
    echo "  $want" >&2
    exit 0
fi

missing=""
for p in $want; do
    case " $missing " in *" $p "*) continue ;; esac
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing="$missing $p"
    fi
done
missing=${missing# }

if [ -z "$missing" ]; then
    exit 0
fi

echo "deps.sh: missing Debian packages: $missing"
if [ "$(id -u)" -ne 0 ]; then
    {
        echo "deps.sh: not root, so not installing them. Run:"
        echo ""
        echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $missing"
        echo ""
        echo "then run make again."
    } >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
