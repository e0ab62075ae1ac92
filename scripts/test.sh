#!/usr/bin/env bash
# Sets up and builds the tool and the tests (scripts/setup.sh --all), then runs every test with CTest.
#
#   scripts/test.sh                 # everything; exit code = ctest's
#   scripts/test.sh -R cli          # extra arguments go to ctest
#   MIXPEFT_BUILD_DIR=build-x scripts/test.sh
#
# Ends with CTest's summary line, e.g. "100% tests passed, 0 tests failed out of 42".
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
build_dir="${MIXPEFT_BUILD_DIR:-build}"

bash scripts/setup.sh --all

# A forced OpenBLAS core (OPENBLAS_CORETYPE) can halve GEMM speed; tests run
# with the kernels OpenBLAS picks for this CPU.
unset OPENBLAS_CORETYPE

# Two test programs at a time: each uses every core through LibTorch.
jobs="${MIXPEFT_TEST_JOBS:-2}"
echo "==> running tests (ctest -j$jobs in $build_dir)"
exec ctest --test-dir "$build_dir" --output-on-failure -j"$jobs" "$@"
