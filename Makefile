# cactor: the entry points. The build itself is CMake (CMakeLists.txt);
# this file installs missing Debian packages (scripts/deps.sh), drives
# CMake and runs things.
#
#   make demo          deps, then scripts/demo.sh: an Erlang node starts a C
#                      node (cactor-node) under its supervisor, calls its
#                      actors and rpc functions, crashes an actor and the
#                      node, and watches both restart (private epmd/HOME)
#   make demo-standalone  deps, Release build, run build/demo (C only)
#   make test          deps, every test runner, one total line at the end
#   make bench         deps, Release build, run every bench/ program
#   make bench-dist    deps (+ gnuplot-nox), cactor-node vs an Erlang node vs a
#                      blocking ei node over loopback (bench/dist/run.sh):
#                      tables into BENCHMARKS.md, bench/dist/results.png
#   make build         deps, Release build into build/
#   make check-clang   build everything with clang (-Werror) into build-clang/
#   make fuzz          clang + libFuzzer build of test/fuzz/*.c, run each
#                      for FUZZ_TIME seconds (build-fuzz/)
#   make install       install build/ into PREFIX (default /usr/local)
#   make format        clang-format -i every C source and header
#   make format-check  fail if any file is not formatted
#   make clean         remove every build directory

SHELL := /bin/bash
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
FUZZ_TIME ?= 60
CMAKE_FLAGS ?=

# Every C source and header of the project (not build output).
C_FILES = $(wildcard $(shell git ls-files --cached --others --exclude-standard -- '*.c' '*.h' \
	2>/dev/null || find include mailbox cnode test bench examples -name '*.[ch]'))

.PHONY: all deps build demo demo-standalone test bench bench-dist check-clang fuzz install clean format format-check

all: build

deps:
	@scripts/deps.sh build

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build build -j $(JOBS)

demo:
	@scripts/deps.sh build erlang
	@scripts/demo.sh

demo-standalone: deps
	@test -f examples/demo.c || { echo "make demo-standalone: examples/demo.c does not exist yet" >&2; exit 1; }
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build build -j $(JOBS) --target demo
	./build/demo

test:
	@scripts/deps.sh test
	@scripts/test.sh

bench: deps
	@scripts/bench.sh

bench-dist:
	@CACTOR_DEPS_EXTRA="gnuplot-nox erlang-crypto" scripts/deps.sh build
	@bench/dist/run.sh

check-clang:
	@scripts/deps.sh build clang
	cmake -S . -B build-clang -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build build-clang -j $(JOBS)

fuzz:
	@scripts/deps.sh build clang
	scripts/fuzz.sh build
	scripts/fuzz.sh run $(FUZZ_TIME)

install: build
	cmake --install build --prefix $(PREFIX)

clean:
	rm -rf build build-* _build

format:
	@scripts/deps.sh format
	clang-format -i $(C_FILES)

format-check:
	@scripts/deps.sh format
	clang-format --dry-run --Werror $(C_FILES)
