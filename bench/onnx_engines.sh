#!/usr/bin/env bash
# ONNX engines: forward-pass time of tract (the forward engine) and of Aegis's gradient-checked evaluator on
# candle, on an exported MLP and CNN, batch 1 and 256 (median of repeated calls, release build).
# Usage: bench/onnx_engines.sh   (results: bench/onnx_engines/results.md)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/onnx_engines
cargo build --release -q -p aegis-cli -p aegis-ml --bins --examples
target/release/examples/onnx_engines | tee bench/onnx_engines/results.md
