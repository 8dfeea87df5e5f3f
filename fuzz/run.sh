#!/usr/bin/env bash
# Run one fuzz target for a while from its committed seeds, with an allocation cap so an unbounded
# allocation is a crash. Usage: fuzz/run.sh TARGET [SECONDS]   (needs `cargo install cargo-fuzz` and nightly)
set -euo pipefail
cd "$(dirname "$0")"
target="$1"
seconds="${2:-600}"
seeds="seeds/$target"
[ -d "$seeds" ] || seeds="seeds/scan"
mkdir -p "corpus/$target"
cp -n "$seeds"/* "corpus/$target/" 2>/dev/null || true
cargo +nightly fuzz run "$target" "corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1
