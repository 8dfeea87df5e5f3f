"""Regenerate sk_forest.onnx and sk_forest_expected.json (a small scikit-learn random forest on the bundled iris
data, exported with skl2onnx (zipmap=False), and scikit-learn's own predict_proba on fixed rows) and sk_logreg.onnx. The Rust test
crates/ml/tests/tract_backend.rs checks that aegis's tract backend reproduces them.

Run with the benchmark environment: bench/.venv/bin/python testdata/ml/make_sklearn_fixture.py
"""
import json
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

here = Path(__file__).parent
x, y = load_iris(return_X_y=True)
x = x.astype(np.float32)
forest = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(x, y)
onx = to_onnx(forest, x[:1], options={id(forest): {"zipmap": False}}, target_opset={"": 13, "ai.onnx.ml": 3})
(here / "sk_forest.onnx").write_bytes(onx.SerializeToString())
rows = x[::10]
(here / "sk_forest_expected.json").write_text(json.dumps({
    "x": rows.flatten().tolist(),
    "proba": forest.predict_proba(rows).astype(np.float32).flatten().tolist(),
}, indent=1))

# A logistic regression on the same data, exported the way docs/assess.md asks (zipmap=False): its
# LinearClassifier is rewritten into standard operators for evaluation, so it can be assessed with gradients
# but not fine-tuned (crates/cli/tests/harden.rs checks that `aegis harden` says so).
logreg = LogisticRegression(max_iter=500).fit(x, y)
onx = to_onnx(logreg, x[:1], options={id(logreg): {"zipmap": False}}, target_opset={"": 13, "ai.onnx.ml": 1})
(here / "sk_logreg.onnx").write_bytes(onx.SerializeToString())
