#!/usr/bin/env bash
# Builds the libFuzzer targets (Tests/Fuzz) with -sanitize=fuzzer,address and runs each for N seconds
# (default 20). Exits non-zero when any target finds a crash, a leak, a timeout or an out-of-memory;
# the reproducer is then in .build-fuzz/artifacts/<target>/. Usage:
#   tools/fuzz.sh [seconds] [target ...]
#   targets: safetensors json config adapter-config run-state image pack tokenizer
# The working corpora grow in .build-fuzz/corpus/<target> (seeded from Tests/Fuzz/corpus/<target>).
# Replay one input:  .build-fuzz/debug/fuzz-<target> FILE
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-20}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then TARGETS=(safetensors json config adapter-config run-state image pack tokenizer); fi
SCRATCH=.build-fuzz

echo "== fuzz: build (${TARGETS[*]})"
for t in "${TARGETS[@]}"; do
    LORANAS_FUZZ=1 swift build --scratch-path "$SCRATCH" -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing \
        --product "fuzz-$t" 2>&1 \
        | grep -Ev '^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write|Linking)|Cannot export local symbol' || true
    if [ ! -x "$SCRATCH/debug/fuzz-$t" ]; then echo "fuzz: build of fuzz-$t failed" >&2; exit 1; fi
done

failed=()
for t in "${TARGETS[@]}"; do
    corpus="$SCRATCH/corpus/$t"
    artifacts="$SCRATCH/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    log="$SCRATCH/fuzz-$t.log"
    echo "== fuzz: $t for ${SECONDS_EACH}s"
    status=0
    # SWIFT_BACKTRACE=enable=no: the Swift runtime's crash handler trips ASan; libFuzzer prints the stack.
    SWIFT_BACKTRACE=enable=no LSAN_OPTIONS="suppressions=Tests/Fuzz/lsan.supp:print_suppressions=0" \
    "$SCRATCH/debug/fuzz-$t" "$corpus" "Tests/Fuzz/corpus/$t" -max_total_time="$SECONDS_EACH" \
        -dict="Tests/Fuzz/dict/$t.dict" -max_len=8192 -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || echo '?')
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || echo 'cov: ?')
    echo "   $runs inputs, $cov, corpus $(ls "$corpus" | wc -l) files, exit $status"
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        grep -E 'ERROR|Fatal error|SUMMARY|Test unit written|==[0-9]+==|#[0-9]+ .* in \$s7LoRANAS' "$log" \
            | head -20 || true
        echo "   full log: $log"
    fi
done
if [ ${#failed[@]} -ne 0 ]; then echo "fuzz: FAILED: ${failed[*]}" >&2; exit 1; fi
echo "fuzz: no crashes"
