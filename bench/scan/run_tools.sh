#!/usr/bin/env bash
# Issue 18: aegis scan vs picklescan, ModelScan and modelaudit, one process per file, on
#   (a) benign files written by the real libraries (bench/scan/benign_libraries.py) and
#   (b) the labelled red-team corpus of gen-corpus (malicious cases and their benign twins).
# Writes the Markdown report to bench/scan/tools.md. Builds nothing: pass the aegis binary to measure
# (default target/debug/aegis; gen-corpus is taken from the same folder).
# Usage: bench/scan/run_tools.sh [AEGIS_BIN]        env: WORK (default /tmp/aegis-tools), LIBVENV, TIMEOUT
# Nothing downloads model weights; no sample is ever loaded, the four scanners only parse.
set -euo pipefail
cd "$(dirname "$0")/../.."
AEGIS="${1:-target/debug/aegis}"
GEN="$(dirname "$AEGIS")/gen-corpus"
WORK="${WORK:-/tmp/aegis-tools}"
LIBVENV="${LIBVENV:-/tmp/benchvenv}"
TIMEOUT="${TIMEOUT:-60}"
export OMP_NUM_THREADS=1

# the scanners (versions measured in bench/scan/tools.md)
# (modelaudit with the extras its format scanners need, minus torch/tensorflow/tflite/mlflow; ModelScan in a
#  venv of its own with NumPy < 2.3, see compare_tools.py, and tensorflow-cpu for its Keras/SavedModel scanners)
if [ ! -x bench/.venv/bin/modelaudit ] || [ ! -x bench/.venv/bin/picklescan ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q "picklescan==1.0.5" \
    "modelaudit[h5,onnx,xgboost,safetensors,joblib,dill,flax,sevenzip]==0.2.54"
fi
if [ ! -x bench/.venv/modelscan/bin/modelscan ]; then
  python3 -m venv bench/.venv/modelscan
  bench/.venv/modelscan/bin/pip install -q "modelscan[h5py]==0.8.8" "numpy==2.2.6" "tensorflow-cpu==2.21.0"
fi
# the libraries that write the benign files (PyPI torch pulls ~3.5 GB of CUDA wheels; CPU use only)
if ! "$LIBVENV/bin/python" -c "import torch, transformers, keras, xgboost, lightgbm, onnx, safetensors" 2>/dev/null; then
  python3 -m venv "$LIBVENV"
  "$LIBVENV/bin/pip" install -q numpy==2.4.6 pandas==3.1.1 scikit-learn==1.9.1 joblib==1.6.0 xgboost==3.2.0 \
    lightgbm==4.7.0 safetensors==0.8.0 onnx==1.23.2 zstandard==0.25.0 pyarrow==26.0.1 torch==2.15.0 \
    transformers==5.25.0 accelerate==1.16.0 keras==3.15.1 h5py==3.16.0
fi

mkdir -p "$WORK"
rm -rf "$WORK/labelled" "$WORK/benignlib"
"$GEN" "$WORK/labelled"
"$LIBVENV/bin/python" bench/scan/benign_libraries.py "$WORK/benignlib" > "$WORK/benignlib.txt" 2>&1
VERSIONS=$("$LIBVENV/bin/python" - <<'PY'
import importlib.metadata as m
names = ["scikit-learn", "joblib", "numpy", "pandas", "pyarrow", "xgboost", "lightgbm", "safetensors", "onnx",
         "torch", "transformers", "keras", "h5py"]
out = []
for n in names:
    try:
        out.append(f"{n} {m.version(n)}")
    except m.PackageNotFoundError:
        out.append(f"{n} not installed (skipped)")
print("; ".join(out))
PY
)
python3 bench/scan/compare_tools.py --benign "$WORK/benignlib" --labelled "$WORK/labelled" --aegis "$AEGIS" \
  --venv bench/.venv --timeout "$TIMEOUT" --raw "$WORK/raw.json" --library-versions "$VERSIONS" \
  > bench/scan/tools.md
echo "wrote bench/scan/tools.md (raw per-file results: $WORK/raw.json)"
