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
print(f"Victim: {r['n_features']} features, {r['n_classes']} classes, accuracy {r.get('victim_accuracy') or float('nan'):.3f} on "
      f"{r['holdout_rows']} held-out rows; attacker pool {r['attacker_rows']} rows; surrogate {r['surrogate']}.")
print()
budgets = r["budgets"]
print("Surrogate fidelity (agreement with the victim on held-out rows) by query budget:")
print()
print("| strategy | policy | " + " | ".join(str(b) for b in budgets) + " |")
print("|---|---|" + "---:|" * len(budgets))
for c in r["curves"]:
    by = {p["budget"]: p["fidelity"] for p in c["points"]}
    cells = [f"{by[b]:.3f}" if b in by else "–" for b in budgets]
    print(f"| {c['strategy']} | {c['policy']} | " + " | ".join(cells) + " |")
short = [f"{c['strategy']} stops at {c['points'][-1]['queries']} queries" for c in r["curves"]
         if c["policy"] == "full" and c["points"] and c["points"][-1]["queries"] < c["points"][-1]["budget"]]
if short:
    print()
    print("(" + "; ".join(short) + ": the attacker's share of the pool; its last column is that many queries.)")
print()
b = r["benign"]
print(f"PRADA (δ {b['delta']}, and δ {b.get('calibrated_delta') or float('nan'):.3f} calibrated for ≤ 5 % benign false alarms):")
print()
print("| stream | queries | queries to alarm (δ) | queries to alarm (calibrated) | min W | low-margin share | out-of-range share |")
print("|---|---:|---:|---:|---:|---:|---:|")
for p in r["prada"]:
    q = lambda v: "none" if v is None else str(v)
    print(f"| {p['strategy']} | {p['queries']} | {q(p['queries_to_alarm'])} | {q(p['queries_to_alarm_calibrated'])} | "
          f"{p['min_w']:.3f} | {p['low_margin_share']:.3f} | {p['out_of_distribution_share']:.3f} |")
print(f"| benign ({b['streams']} × {b['stream_length']}) | | {b['alarms']} alarms ({100*b['false_alarm_rate']:.0f} %) | "
      f"{b['calibrated_alarms']} alarms ({100*b['calibrated_false_alarm_rate']:.0f} %) | {min(b['min_w']):.3f} | | |")
PY
} > "$OUT"
cat "$OUT"
