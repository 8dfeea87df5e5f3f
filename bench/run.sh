#!/usr/bin/env bash
# Side-by-side benchmark: aegis scan vs picklescan and ModelScan (installed from PyPI into bench/.venv) on the
# same generated corpus (>= 1,000 files), one 1 GiB PyTorch zip and one 256 MiB raw pickle.
# The competing tools only *parse* the files (as aegis does); nothing here loads a sample with a real loader.
# Usage: bench/run.sh [COPIES]   (default 12 copies of the labelled corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
COPIES="${1:-12}"
WORK=bench/work

cargo build --release -q -p aegis-cli -p aegis-test-support --bins
if [ ! -x bench/.venv/bin/picklescan ] || [ ! -x bench/.venv/bin/modelscan ] || [ ! -x bench/.venv/bin/modelaudit ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q "picklescan==1.0.5" "modelscan==0.8.8" \
    "modelaudit[h5,onnx,xgboost,safetensors,joblib,dill,flax,sevenzip]==0.2.54"
fi
rm -rf "$WORK"
mkdir -p "$WORK"
target/release/gen-corpus "$WORK/labelled"
target/release/gen-corpus "$WORK/corpus" --copies "$COPIES"
target/release/gen-corpus "$WORK/mixed" --copies "$COPIES" --hub 100
target/release/gen-corpus "$WORK/big" --copies 0 --torch-zip $((1 << 30)) --numpy-pickle $((256 << 20))
python3 bench/compare.py "$WORK" | tee bench/results.md
# modelaudit (pinned above) is compared per file, on real-library files too, by bench/scan/run_tools.sh
