#!/usr/bin/env bash
# Which default schedule `aegis harden` needs so that a user who gives no flags reaches the plateau of robust
# accuracy: PGD adversarial training of an MLP 64-64 at eps 0.1 on four public tables (scikit-learn's digits,
# breast cancer and wine, and a synthetic 3-class table; features scaled to [0, 1], 70/30 split), each schedule
# assessed on the held-out 30% with PGD and the AutoAttack ensemble at eps 0.1.
# Usage: bench/harden_schedule.sh [SCHEDULE ...]   (a schedule is "EPOCHS/PATIENCE"; default: the built-in one,
# 30/5, 60/15 and 100/30). Results: bench/harden_schedule/results.md. Needs python3 with scikit-learn.
set -euo pipefail
cd "$(dirname "$0")/.."
AEGIS=${AEGIS:-target/release/aegis}
[ -x "$AEGIS" ] || cargo build --release -q -p aegis-cli
OUT=bench/harden_schedule
DATA=$(mktemp -d)
mkdir -p "$OUT"
python3 - "$DATA" <<'PY'
import csv, sys
import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification
from sklearn.model_selection import train_test_split
out = sys.argv[1]
def write(name, x, y):
    lo, hi = x.min(0), x.max(0)
    x = (x - lo) / np.where(hi > lo, hi - lo, 1)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    for part, xs, ys in (("train", xtr, ytr), ("test", xte, yte)):
        with open(f"{out}/{name}_{part}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([f"f{i}" for i in range(x.shape[1])] + ["label"])
            for r, l in zip(xs, ys):
                w.writerow([f"{v:.6g}" for v in r] + [int(l)])
d = load_digits(); write("digits", d.data, d.target)
b = load_breast_cancer(); write("cancer", b.data, b.target)
w = load_wine(); write("wine", w.data, w.target)
x, y = make_classification(n_samples=3000, n_features=20, n_informative=8, n_classes=3, random_state=1)
write("synth", x, y)
PY
SCHEDULES=("$@")
[ ${#SCHEDULES[@]} -gt 0 ] || SCHEDULES=(default 30/5 60/15 100/30)
{
  echo "| table | schedule | epochs run | harden wall (s) | clean acc | robust acc (PGD + AutoAttack, eps 0.1) |"
  echo "|---|---|---:|---:|---:|---:|"
  for table in digits cancer wine synth; do
    for s in "${SCHEDULES[@]}"; do
      flags=()
      [ "$s" = default ] || flags=(--epochs "${s%/*}" --patience "${s#*/}")
      start=$(date +%s.%N)
      "$AEGIS" -q harden --arch mlp:64,64 --data "$DATA/${table}_train.csv" --label label --eps 0.1 \
        --out "$DATA/m.onnx" "${flags[@]}" --format json > "$DATA/h.json" 2> "$DATA/h.err" || true
      wall=$(echo "$(date +%s.%N) - $start" | bc)
      epochs=$(python3 -c "import json;r=json.load(open('$DATA/h.json'));print(len(r['metrics'].get('harden',{}).get('epochs',[])) or '?')" 2>/dev/null || echo '?')
      "$AEGIS" -q assess robustness "$DATA/m.onnx" --data "$DATA/${table}_test.csv" --label label --eps 0.1 \
        --attacks pgd,autoattack --format json > "$DATA/a.json" 2>/dev/null || true
      read -r clean robust < <(python3 -c "import json;r=json.load(open('$DATA/a.json'))['metrics']['robustness'];print(round(r['clean_accuracy']*100,1), round(r['curve'][0]['robust_accuracy']*100,1))")
      printf '| %s | %s | %s | %.1f | %s%% | %s%% |\n' "$table" "$s" "$epochs" "$wall" "$clean" "$robust"
    done
  done
} | tee "$OUT/results.md"
rm -rf "$DATA"
