#!/usr/bin/env bash
# Fuzzes r53dns's parsers and handler with libFuzzer (cargo-fuzz): builds every target,
# replays the inputs kept under fuzz/regressions (every crash found so far), then runs each
# target for SECONDS (default 60) from the committed seeds plus the local corpus.
# A crash stops the run (exit 1) and leaves the input under fuzz/artifacts/<target>/.
# Usage: fuzz/run.sh [SECONDS]
# Needs cargo-fuzz (installed here if missing). Runs on stable Rust without a sanitizer
# (-s none); overflow checks and debug assertions are on.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
targets=(answer message zonefile route53_value snapshot replica route53_event)
cargo fuzz build -s none
for t in "${targets[@]}"; do
    if [ -d "regressions/$t" ]; then
        echo "== $t: replaying regressions/$t"
        cargo fuzz run -s none "$t" "regressions/$t" -- -runs=0 >/dev/null 2>&1 ||
            { echo "a kept crash input of $t fails again"; exit 1; }
    fi
    mkdir -p "corpus/$t"
    echo "== $t: ${secs}s"
    log="$(mktemp)"
    if ! cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        # The panic message first (a long failing input pushes it out of the tail).
        grep -m1 -A12 -E 'panicked at|ERROR: libFuzzer' "$log" || true
        tail -n 25 "$log"
        rm -f "$log"
        exit 1
    fi
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    rm -f "$log"
done
