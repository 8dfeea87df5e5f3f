#!/usr/bin/env bash
# Robustness benchmark: ART 1.x with PyTorch (CPU) vs aegis on the same ONNX models and splits.
# Trains digits and breast-cancer MLPs with a fixed seed, exports them to ONNX, then runs FGSM, PGD-40 and
# AutoAttack at eps 0.05/0.1/0.2 in both tools, and adversarial training at eps 0.1 on digits.
# Usage: bench/robustness.sh            (results: bench/robustness/results.md)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p aegis-cli
VENV=bench/.venv
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
if ! "$VENV/bin/python" -c "import torch, art, sklearn, onnx" 2>/dev/null; then
  "$VENV/bin/pip" install -q "torch==2.5.1" "adversarial-robustness-toolbox" "scikit-learn" "onnx" "numpy" "packaging" "multiprocess" "skl2onnx"
fi
WORK=bench/work/robustness
"$VENV/bin/python" bench/robustness/prepare.py "$WORK"
{
  echo "# Robustness benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo
  echo "ART $("$VENV/bin/python" -c 'import art; print(art.__version__)') with PyTorch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') (CPU); aegis $(target/release/aegis --version | cut -d' ' -f2)."
  echo
  "$VENV/bin/python" bench/robustness/compare.py "$WORK"
} | tee bench/robustness/results.md
