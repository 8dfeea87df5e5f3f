#!/usr/bin/env bash
# Clean release build of `aegis` in a bare environment: a fresh clone of the committed HEAD, PATH holding only
# the Rust toolchain and the C compiler with its assembler, linker and archiver (no protoc, cmake, pkg-config or
# anything else from the system), a fresh target directory, no inherited environment. Prints the wall and CPU time, the binary's size, and
# checks that `cargo install --path crates/cli` gives a working `aegis`.
# Usage: bench/clean_build.sh   (results: bench/clean_build/results.md; needs ~3 GB under /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$(mktemp -d /tmp/aegis-clean-build.XXXXXX)
BIN="$WORK/bin"
mkdir -p "$BIN" bench/clean_build
git clone -q "$ROOT" "$WORK/src"   # the committed state, not the working tree
for tool in cargo rustc rustdoc; do ln -s "$(command -v "$tool")" "$BIN/$tool"; done
for tool in cc gcc c++ g++ as ld ar ranlib strip; do
  if command -v "$tool" >/dev/null 2>&1; then ln -s "$(command -v "$tool")" "$BIN/$tool"; fi
done
for absent in protoc cmake pkg-config make python3; do
  if PATH="$BIN" command -v "$absent" >/dev/null 2>&1; then echo "unexpected $absent on the bare PATH" >&2; exit 1; fi
done
run() {
  env -i HOME="$HOME" PATH="$BIN" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
    CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" CARGO_TARGET_DIR="$WORK/target" "$@"
}
run /usr/bin/time -f "%e %U %S" -o "$WORK/time" \
  cargo build --release --locked -p aegis-cli --manifest-path "$WORK/src/Cargo.toml" 2> "$WORK/build.log" \
  || { tail -30 "$WORK/build.log"; exit 1; }
read -r wall user sys < "$WORK/time"
size=$(stat -c %s "$WORK/target/release/aegis")
run cargo install --locked --path "$WORK/src/crates/cli" --root "$WORK/install" 2>> "$WORK/build.log"
version=$("$WORK/install/bin/aegis" --version)
{
  echo "| what | value |"
  echo "|---|---:|"
  echo "| clean release build, wall | ${wall} s |"
  echo "| clean release build, CPU (user + sys) | $(echo "$user + $sys" | bc) s |"
  echo "| \`aegis\` binary size | $((size / 1024 / 1024)) MiB ($size bytes) |"
  echo "| \`cargo install --path crates/cli\` | \`$version\` |"
  echo "| commit | $(git -C "$WORK/src" rev-parse --short HEAD) |"
  echo "| machine | $(nproc) cores, $(rustc --version) |"
} | tee bench/clean_build/results.md
rm -rf "$WORK"
