#!/usr/bin/env bash
# Fuzzes geofailover's DNS request path (UDP and TCP framing, TSIG,
# transfers), zone file parser and config loader with libFuzzer for
# SECONDS each, all targets at once, each from the inputs kept in
# tests/fuzz/corpus (the run's new inputs go to a work folder, not into
# the repository). The build is what `cargo fuzz run --sanitizer none`
# does, on the stable toolchain: coverage instrumentation, debug
# assertions and overflow checks. Prints, per target, executions,
# executions per second, corpus size and crashes; a crashing input is
# copied to target/fuzz-crashes/TARGET/ (add it to the corpus with the fix).
#   usage: bench/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dns_request zone_file config)
need=()
command -v c++ >/dev/null || need+=(g++)
release_build=no
source bench/prelude.sh

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# With --target, RUSTFLAGS leave build scripts and proc macros alone.
host=$(rustc -vV | sed -n 's/^host: //p')
(cd tests/fuzz && cargo build --release --quiet --bins --target "$host")
bin=tests/fuzz/target/$host/release

declare -A max_len=([dns_request]=4096 [zone_file]=16384 [config]=16384)
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/crashes/$t"
  cp tests/fuzz/corpus/"$t"/* "$work/corpus/$t/"
  "$bin/$t" "$work/corpus/$t" -max_total_time="$seconds" -print_final_stats=1 \
    -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$work/crashes/$t/" >"$work/$t.log" 2>&1 &
  echo $! >"$work/$t.pid"
done
failed=0
for t in "${targets[@]}"; do
  wait "$(cat "$work/$t.pid")" || failed=1
done

total=0
printf '%-12s %14s %10s %8s %8s\n' target executions exec/s corpus crashes
for t in "${targets[@]}"; do
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" | tail -1)
  crashes=$(find "$work/crashes/$t" -type f | wc -l)
  corpus=$(find "$work/corpus/$t" -type f | wc -l)
  printf '%-12s %14s %10s %8s %8s\n' "$t" "${runs:-?}" "${rate:-?}" "$corpus" "$crashes"
  total=$((total + ${runs:-0}))
  if [ "$crashes" -gt 0 ]; then
    mkdir -p "target/fuzz-crashes/$t"
    cp "$work/crashes/$t"/* "target/fuzz-crashes/$t/"
    grep -m1 -A12 "panicked\|ERROR: libFuzzer" "$work/$t.log" || true
  fi
done
echo "total executions: $total"
exit $failed
