"""Regenerate torch_mlp.onnx and torch_mlp_grads.json: a small PyTorch MLP (seed 0) exported to ONNX, with the
PyTorch input gradients of the summed cross-entropy loss on fixed rows. The Rust test
crates/ml/tests/framework_exports.rs checks that aegis's candle-ONNX gradients match them.

Run with the benchmark environment: bench/.venv/bin/python testdata/ml/make_torch_fixture.py
"""
import json
from pathlib import Path

import torch

torch.manual_seed(0)
here = Path(__file__).parent
model = torch.nn.Sequential(
    torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)
).eval()
x = torch.rand(10, 8)
y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
torch.onnx.export(model, torch.zeros(1, 8), here / "torch_mlp.onnx", input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
xg = x.clone().requires_grad_(True)
logits = model(xg)
torch.nn.functional.cross_entropy(logits, y, reduction="sum").backward()
(here / "torch_mlp_grads.json").write_text(json.dumps({
    "x": x.flatten().tolist(),
    "y": y.tolist(),
    "logits": logits.detach().flatten().tolist(),
    "grad": xg.grad.flatten().tolist(),
    "torch": torch.__version__,
}, indent=1))
