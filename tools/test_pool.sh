#!/usr/bin/env bash
# Runs the thread pool (Sources/CRuntime/lr_pool.c) under ThreadSanitizer: Tests/CRuntime/pool_tsan.c
# runs many parallel regions of varied sizes, thread counts and tasks and checks every result.
# A data race (TSan report) or a wrong result exits non-zero. Usage: tools/test_pool.sh [regions]
set -euo pipefail
cd "$(dirname "$0")/.."
REGIONS="${1:-50000}"
# The Swift toolchain's clang; its TSan runtime has libdispatch interceptors, so link the
# toolchain's libdispatch and BlocksRuntime too.
TOOLCHAIN="$(dirname "$(readlink -f "$(command -v swift)")")"
CLANG="${CLANG:-$TOOLCHAIN/clang}"
SWIFT_LIBS="$TOOLCHAIN/../lib/swift/linux"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
echo "== lr_pool under ThreadSanitizer ($REGIONS regions)"
"$CLANG" -fsanitize=thread -O1 -g -pthread -Wall -Werror -ISources/CRuntime/include \
    Sources/CRuntime/lr_pool.c Tests/CRuntime/pool_tsan.c \
    -L"$SWIFT_LIBS" -Wl,-rpath,"$SWIFT_LIBS" -ldispatch -lBlocksRuntime -o "$OUT/pool_tsan"
TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$OUT/pool_tsan" "$REGIONS"
