#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz, on the stable toolchain) of every
# decoder that reads bytes from disk or from a bank; see the README's Fuzzing section.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (all of them by default) for SECONDS (default 60), one after another, one
# process at a time, starting from fuzz/corpus/<target> and growing a copy of it under
# FUZZ_WORK (default: a new temporary folder). Exit status 1 if a target crashed: its input is
# in fuzz/artifacts/<target>/. Installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(journal_replay snapshot_ledger snapshot_payments snapshot_file store_records
    recon_camt053 recon_csv recon_mt940)
fi
command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/huifu-fuzz-target}"
work="${FUZZ_WORK:-$(mktemp -d)}"

status=0
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  cp -n fuzz/corpus/"$target"/* "$work/$target/"
  echo "== $target for ${seconds}s"
  # Release code with debug assertions and overflow checks; no sanitizer (safe Rust, and the
  # sanitizers need a nightly toolchain).
  if ! cargo fuzz run "$target" --sanitizer none -O -a --target-dir "$target_dir" "$work/$target" \
    -- -max_total_time="$seconds" -timeout=10 -print_final_stats=1 > "$work/$target.log" 2>&1; then
    status=1
    grep -E -A20 'panicked|ERROR' "$work/$target.log" | head -40
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
    "$work/$target.log" || true
done
echo "corpora grown in $work (merge into fuzz/corpus/<target> with the target's -merge=1)"
exit "$status"
