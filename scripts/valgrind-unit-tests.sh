#!/usr/bin/env bash
# Runs the Rust unit tests (cargo test --lib) under valgrind's memcheck.
#
#   scripts/valgrind-unit-tests.sh                 # every unit test
#   scripts/valgrind-unit-tests.sh resp::          # a filter, as for cargo test
#   scripts/valgrind-unit-tests.sh --skip fuzz_smoke
#
# Exit status: 1 when valgrind finds a memory error or a definite/indirect leak;
# otherwise the test binary's own (101 when a test fails, 0 when all pass).
# The build goes to target/valgrind (release with symbols, not stripped), so it
# does not disturb the release build that `napi build` and `cargo test` use.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

export CARGO_TARGET_DIR=target/valgrind
export CARGO_PROFILE_RELEASE_STRIP=none
export CARGO_PROFILE_RELEASE_DEBUG=1

bin=$(cargo test --release --lib --no-run 2>&1 | tee /dev/stderr | sed -n 's/.*Executable unittests src\/lib.rs (\(.*\))/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not find the unit-test binary" >&2; exit 2; }
echo "valgrind: $bin $*" >&2

# Threads the tests start (the shared I/O runtime) live until exit: "still
# reachable" and "possibly lost" are not leaks, definite and indirect ones are.
exec valgrind \
  --quiet \
  --leak-check=full \
  --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect \
  --error-exitcode=1 \
  --track-origins=yes \
  "$bin" --test-threads=1 "$@"
