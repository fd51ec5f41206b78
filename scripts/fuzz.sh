#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for SECONDS each, two at a
# time, from the committed seeds; prints executions and crashes per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]        default: 60 s, all targets
#
# Needs cargo-fuzz (installed from crates.io if missing); runs on the stable
# toolchain with RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS="${1:-60}"; shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && mapfile -t TARGETS < <(cargo fuzz list)
cargo fuzz build -O 2>&1 | tail -1
mkdir -p logs
run() {
  local t="$1"
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=2048 \
    -print_final_stats=1 > "logs/$t.log" 2>&1 || true
}
i=0
for t in "${TARGETS[@]}"; do
  run "$t" &
  i=$((i + 1))
  if [ $((i % 2)) -eq 0 ]; then wait; fi
done
wait
status=0
printf '%-16s %14s %8s %s\n' target executions crashes "corpus"
for t in "${TARGETS[@]}"; do
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  printf '%-16s %14s %8s %s\n' "$t" "${execs:-?}" "$crashes" "$(find "corpus/$t" -type f | wc -l) inputs"
  [ "$crashes" -eq 0 ] && [ -n "$execs" ] || status=1
done
exit $status
