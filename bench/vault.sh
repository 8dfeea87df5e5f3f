#!/usr/bin/env bash
# Vault benchmark: `aegis vault encrypt/decrypt` vs the `age` CLI (Debian's package) on the same 1 GiB file, and
# `aegis vault sign` (manifest hashing + Ed25519) vs `sha256sum` over the same directory of model shards
# (8 x 128 MiB), side by side, each under /usr/bin/time -v (wall time, CPU, peak RSS). Every tool runs three
# times; the table shows the median run. Results: bench/vault/results.md (or $OUT).
# Usage: bench/vault.sh [--size-mib N] [--shards N] [--no-build]      Env: AEGIS=path/to/aegis.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=1024 SHARDS=8 BUILD=1 RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) SIZE="$2"; shift ;;
    --shards) SHARDS="$2"; shift ;;
    --no-build) BUILD=0 ;;
    *) echo "usage: bench/vault.sh [--size-mib N] [--shards N] [--no-build]" >&2; exit 2 ;;
  esac
  shift
done
AEGIS=${AEGIS:-target/release/aegis}
OUT=${OUT:-bench/vault/results.md}
if [ "$BUILD" = 1 ]; then cargo build --release -q -p aegis-cli; fi
command -v age >/dev/null || apt-get install -y -q age >/dev/null
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null
WORK=bench/work/vault
mkdir -p "$WORK/shards"
BIG=$WORK/big.bin
if [ ! -s "$BIG" ] || [ "$(stat -c %s "$BIG")" != $((SIZE * 1048576)) ]; then
  head -c $((SIZE * 1048576)) /dev/urandom > "$BIG"
fi
for i in $(seq 1 "$SHARDS"); do
  f=$WORK/shards/model-0000$i-of-0000$SHARDS.safetensors
  [ -s "$f" ] || head -c $((128 * 1048576)) /dev/urandom > "$f"
done
rm -f "$WORK/id.key" "$WORK/sign.key" "$WORK/sign.key.pub"
age-keygen -o "$WORK/id.key" 2> /dev/null
RECIPIENT=$(age-keygen -y "$WORK/id.key")
"$AEGIS" -q vault keygen --sign -o "$WORK/sign.key"

# timed NAME CMD...: median of $RUNS runs of CMD under /usr/bin/time -v; sets WALL (s), CPU (s), RSS (MiB).
timed() {
  local name=$1; shift
  local rows=()
  for r in $(seq 1 "$RUNS"); do
    rm -f "$WORK/out.age" "$WORK/out.bin"
    /usr/bin/time -v "$@" > /dev/null 2> "$WORK/$name.time" || { tail -5 "$WORK/$name.time" >&2; exit 1; }
    rows+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; w=s}
      /User time/ {u=$2} /System time/ {y=$2} /Maximum resident set size/ {m=$2/1024}
      END {printf "%.2f %.2f %.0f", w, u+y, m}' "$WORK/$name.time")")
  done
  read -r WALL CPU RSS <<< "$(printf '%s\n' "${rows[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")"
}

row() { # tool task wall cpu rss bytes
  local mibs
  mibs=$(python3 -c "print(f'{$6/1048576/$3:.0f}')")
  echo "| $1 | $2 | $3 | $4 | $5 | $mibs |"
}

timed age_enc age -r "$RECIPIENT" -o "$WORK/out.age" "$BIG";                     AGE_ENC="$WALL $CPU $RSS"
timed aegis_enc "$AEGIS" -q vault encrypt -r "$RECIPIENT" -o "$WORK/out.age" "$BIG"; AEGIS_ENC="$WALL $CPU $RSS"
rm -f "$WORK/fixed.age"
age -r "$RECIPIENT" -o "$WORK/fixed.age" "$BIG"
timed age_dec age -d -i "$WORK/id.key" -o "$WORK/out.bin" "$WORK/fixed.age";      AGE_DEC="$WALL $CPU $RSS"
timed aegis_dec "$AEGIS" -q vault decrypt -i "$WORK/id.key" -o "$WORK/out.bin" "$WORK/fixed.age"; AEGIS_DEC="$WALL $CPU $RSS"
cmp -s "$WORK/out.bin" "$BIG" || { echo "aegis decryption differs from the input" >&2; exit 1; }
rm -f "$WORK/fixed.age" "$WORK/out.bin"
SHARD_BYTES=$((SHARDS * 128 * 1048576))
timed sha256sum sha256sum "$WORK"/shards/*.safetensors;                          SHA="$WALL $CPU $RSS"
timed aegis_sign "$AEGIS" -q vault sign "$WORK/shards" --key "$WORK/sign.key";      SIGN="$WALL $CPU $RSS"
"$AEGIS" -q vault sign "$WORK/shards" --key "$WORK/sign.key"
timed aegis_verify "$AEGIS" -q vault verify "$WORK/shards" --key "$WORK/sign.key.pub"; VERIFY="$WALL $CPU $RSS"
rm -f "$WORK/shards/model.sig"

CPU_NAME=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
{
  echo "# Vault benchmark ($(date -u +%F), $(nproc) cores: $CPU_NAME)"
  echo
  echo "\`bench/vault.sh\`: median of $RUNS runs each, /usr/bin/time -v; $(age --version 2>&1 | head -1 | sed 's/^/age /'),"
  echo "$(sha256sum --version | head -1), aegis $("$AEGIS" --version | awk '{print $2}') (release build)."
  echo "Encryption: one ${SIZE} MiB file of random bytes, one X25519 recipient. Hashing: $SHARDS shards of 128 MiB."
  echo
  echo "| tool | task | wall (s) | CPU (s) | peak RSS (MiB) | MiB/s |"
  echo "|---|---|---:|---:|---:|---:|"
  row "age" "encrypt ${SIZE} MiB" $AGE_ENC $((SIZE * 1048576))
  row "aegis vault encrypt" "encrypt ${SIZE} MiB" $AEGIS_ENC $((SIZE * 1048576))
  row "age -d" "decrypt ${SIZE} MiB" $AGE_DEC $((SIZE * 1048576))
  row "aegis vault decrypt" "decrypt ${SIZE} MiB" $AEGIS_DEC $((SIZE * 1048576))
  row "sha256sum" "hash $SHARDS shards" $SHA $SHARD_BYTES
  row "aegis vault sign" "hash $SHARDS shards + sign" $SIGN $SHARD_BYTES
  row "aegis vault verify" "verify + re-hash $SHARDS shards" $VERIFY $SHARD_BYTES
} > "$OUT"
cat "$OUT"
