#!/usr/bin/env bash
# Fuzz every target (or the ones named) with cargo-fuzz / libFuzzer, then minimize each corpus.
# The whole minimized corpus stays in fuzz/target/corpus/<target>/ (not committed; the next run
# starts from it); its smallest inputs, up to FUZZ_COMMIT_BYTES (default 1 MiB) a target, go to
# fuzz/corpus/<target>/, which is committed and replayed by `cargo test`
# (crates/fuzz-checks/tests/corpus.rs). An input that fails a check goes into
# fuzz/regressions/<target>/ once fixed: minimizing never drops those.
#
#   scripts/fuzz.sh                         # 10 million executions per target
#   FUZZ_RUNS=100000 scripts/fuzz.sh timestamp windowing
#   FUZZ_SECONDS=600 scripts/fuzz.sh invocation   # a time budget instead of a count
#
# Needs the nightly toolchain and cargo-fuzz (installed here when missing). Sanitizer: none by
# default (the code under test is safe Rust; ONNX Runtime is loaded at run time and is not
# instrumented); FUZZ_SANITIZER=address for AddressSanitizer. Prints, per target, the
# executions reached, the time and the corpus kept; a failing input is left in
# fuzz/artifacts/<target>/ and the script stops with its path.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${FUZZ_RUNS:-10000000}"
seconds="${FUZZ_SECONDS:-0}"
sanitizer="${FUZZ_SANITIZER:-none}"
budget="${FUZZ_COMMIT_BYTES:-1048576}"
all=(event_body invocation timestamp connection_string windowing window_record)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
[ -d .ort/lib ] || scripts/setup.sh
export ORT_DYLIB_PATH="$PWD/.ort/lib"

cargo build --release -q -p sensor-anomaly-fuzz-checks --bin fuzz-seeds
cargo +nightly fuzz build -s "$sanitizer"

limit=(-runs="$runs")
[ "$seconds" != 0 ] && limit=(-max_total_time="$seconds")
summary=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    full="fuzz/target/corpus/$target"
    work="fuzz/target/work/$target"
    rm -rf "$work" && mkdir -p "$work" "$corpus" "$full" "fuzz/artifacts/$target"
    target/release/fuzz-seeds "$target" "$work"
    cp -n "$corpus"/* "$full"/* "$work"/ 2>/dev/null || true
    log="fuzz/target/$target.log"
    echo "== $target: ${limit[*]}"
    started=$(date +%s)
    if ! cargo +nightly fuzz run -s "$sanitizer" "$target" "$work" -- \
        "${limit[@]}" -max_len=65536 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target/" \
        >"$log" 2>&1; then
        tail -40 "$log"
        echo "FAILED: $target (input in fuzz/artifacts/$target/; log $log)" >&2
        exit 1
    fi
    elapsed=$(( $(date +%s) - started ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    # Keep the inputs that add coverage: the committed corpus stays small.
    cargo +nightly fuzz cmin -s "$sanitizer" "$target" "$work" -- -max_len=65536 >/dev/null 2>&1 || true
    rm -f "$work"/seed-*
    rm -rf "$full" && mv "$work" "$full"
    # The committed part: the smallest inputs, within the budget.
    rm -rf "$corpus" && mkdir -p "$corpus"
    total=0
    while read -r size file; do
        [ $((total + size)) -gt "$budget" ] && break
        cp "$full/$file" "$corpus/" && total=$((total + size))
    done < <(cd "$full" && find . -maxdepth 1 -type f -printf '%s %f\n' | sort -n)
    kept=$(ls "$full" | wc -l)
    committed=$(ls "$corpus" | wc -l)
    line="$target: $execs executions in ${elapsed}s ($(( execs / (elapsed > 0 ? elapsed : 1) ))/s), corpus $kept inputs ($committed committed)"
    echo "$line"
    echo "$(date -u +%FT%TZ) $line" >> fuzz/target/runs.log
    summary+=("$line")
done
echo
printf '%s\n' "${summary[@]}"
