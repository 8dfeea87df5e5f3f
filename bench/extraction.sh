#!/usr/bin/env bash
# Extraction benchmark: `aegis assess extraction` on the gateway's demo model (crates/gateway/assets/demo-fraud.onnx)
# with its 2,000 reference rows as the attacker's pool: fidelity curves per strategy and output policy, PRADA's
# queries-to-alarm per strategy and its false-alarm rate on benign streams. Results: bench/extraction/results.md.
# Usage: bench/extraction.sh [--no-build]      Env: AEGIS=path/to/aegis overrides the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=1
if [ "${1:-}" = "--no-build" ]; then BUILD=0; fi
AEGIS=${AEGIS:-target/release/aegis}
OUT=${OUT:-bench/extraction/results.md}
if [ "$BUILD" = 1 ]; then cargo build --release -q -p aegis-cli; fi
mkdir -p bench/work/extraction
JSON=bench/work/extraction/report.json
start=$(date +%s.%N)
"$AEGIS" --format json --fail-on critical assess extraction crates/gateway/assets/demo-fraud.onnx \
  --data crates/gateway/assets/demo-fraud.reference.csv --label label \
  --budgets 100,250,500,1000,2000 --strategies random,pool,jacobian \
  --policies label,round:1,reverse-sigmoid:0.5:0.3 > "$JSON"
end=$(date +%s.%N)
{
  echo "# Extraction benchmark ($(date -u +%F), $(nproc) cores)"
  echo
  echo "\`bench/extraction.sh\`: \`aegis assess extraction\` on demo-fraud.onnx, pool = its 2,000 reference rows;"
  echo "wall time $(python3 -c "print(f'{$end-$start:.1f}')") s."
  echo
  python3 - "$JSON" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["metrics"]["extraction"]
print("```")
print(json.dumps({k: v for k, v in r.items() if k not in ("curves",)}, indent=1)[:6000])
print("```")
print()
print("| strategy | policy | budget | fidelity |")
print("|---|---|---:|---:|")
for c in r.get("curves", []):
    for p in c.get("points", []):
        print(f"| {c.get('strategy')} | {c.get('policy')} | {p.get('queries', p.get('budget'))} | {p.get('fidelity'):.3f} |")
PY
} > "$OUT"
cat "$OUT"
