"""Write the classifiers small businesses actually deploy, exported to ONNX the ways their users export them,
with the library's own class probabilities for fixed rows: the oracle of crates/ml/tests/sklearn_models.rs.

Usage: python3 make_sklearn_models.py OUT_DIR
Writes OUT_DIR/<name>.onnx for each model and OUT_DIR/expected.json:
  {"x": [...], "n": rows, "d": features, "models": {"<name>": {"proba": [...] | null, "label": [...]}}}
A model whose converter fails is listed under "failed" with the converter's message, never silently dropped.
Needs scikit-learn, skl2onnx, onnxmltools, xgboost and lightgbm (.ci/run installs them).
"""
import json
import sys
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

from sklearn.datasets import make_classification
from sklearn.ensemble import (ExtraTreesClassifier, GradientBoostingClassifier,
                              HistGradientBoostingClassifier, RandomForestClassifier)
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import Normalizer, OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC
from skl2onnx import to_onnx

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
x, y = make_classification(n_samples=400, n_features=6, n_informative=4, n_classes=3,
                           n_clusters_per_class=1, random_state=7)
x = x.astype(np.float32)
# Two integer-coded categorical columns for the one-hot pipeline.
x[:, 4] = np.abs(np.round(x[:, 4])) % 3
x[:, 5] = np.abs(np.round(x[:, 5])) % 4
xb, yb = x, (y > 0).astype(int)
rows = np.vstack([x[::37][:10], np.zeros((1, x.shape[1]), dtype=np.float32)])

cases = {
    "logreg": (LogisticRegression(max_iter=1000), x, y),
    "logreg_binary": (LogisticRegression(max_iter=1000), xb, yb),
    "linear_svc": (LinearSVC(), x, y),
    "linear_svc_binary": (LinearSVC(), xb, yb),
    "random_forest": (RandomForestClassifier(n_estimators=6, max_depth=4, random_state=0), x, y),
    "extra_trees": (ExtraTreesClassifier(n_estimators=6, max_depth=4, random_state=0), x, y),
    "gradient_boosting": (GradientBoostingClassifier(n_estimators=8, max_depth=2, random_state=0), x, y),
    "gradient_boosting_binary": (GradientBoostingClassifier(n_estimators=8, max_depth=2, random_state=0), xb, yb),
    "hist_gradient_boosting": (HistGradientBoostingClassifier(max_iter=8, random_state=0), x, y),
    "mlp": (MLPClassifier(hidden_layer_sizes=(12,), max_iter=600, random_state=0), x, y),
    "pipeline_scaler_onehot": (make_pipeline(
        ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), [4, 5])]),
        LogisticRegression(max_iter=1000)), x, y),
    # handle_unknown="error" exports zeros=0.
    "pipeline_onehot_strict": (make_pipeline(
        ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3]), ("cat", OneHotEncoder(), [4, 5])]),
        LogisticRegression(max_iter=1000)), x, y),
    "pipeline_normalizer": (make_pipeline(Normalizer(), LogisticRegression(max_iter=1000)), x, y),
}
# Older exporters' opsets: axes as attributes, Clip bounds as attributes.
opset12 = {"logreg_opset12": (LogisticRegression(max_iter=1000), x, y),
           "pipeline_normalizer_opset10": (make_pipeline(Normalizer(), LogisticRegression(max_iter=1000)), x, y)}
expected = {"x": rows.flatten().tolist(), "n": len(rows), "d": x.shape[1], "models": {}, "failed": {}}


def record(name, model, onx):
    (out / f"{name}.onnx").write_bytes(onx.SerializeToString())
    proba = model.predict_proba(rows).astype(np.float32).flatten().tolist() if hasattr(model, "predict_proba") else None
    expected["models"][name] = {"proba": proba, "label": [int(v) for v in model.predict(rows)]}


for name, (model, xs, ys) in list(cases.items()) + list(opset12.items()):
    model.fit(xs, ys)
    opset = {"": 12 if name.endswith("opset12") else 10 if name.endswith("opset10") else 17, "ai.onnx.ml": 3}
    for zipmap in (False, True):
        key = name if not zipmap else name + "_zipmap"
        options = {id(model): {"zipmap": zipmap}} if hasattr(model, "predict_proba") else None
        if options is None and zipmap:
            continue
        try:
            onx = to_onnx(model, xs[:1], options=options, target_opset=opset)
            record(key, model, onx)
        except Exception as e:  # the converter's own failure is reported, not hidden
            expected["failed"][key] = f"skl2onnx: {str(e).splitlines()[0][:200]}"

try:
    import lightgbm
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    for name, model in [("xgboost", xgboost.XGBClassifier(n_estimators=8, max_depth=3, random_state=0)),
                        ("lightgbm", lightgbm.LGBMClassifier(n_estimators=8, num_leaves=7, random_state=0,
                                                             verbose=-1))]:
        model.fit(x, y)
        try:
            convert = onnxmltools.convert_xgboost if name == "xgboost" else onnxmltools.convert_lightgbm
            onx = convert(model, initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                          target_opset=15, **({"zipmap": False} if name == "lightgbm" else {}))
            record(name, model, onx)
        except Exception as e:
            expected["failed"][name] = f"onnxmltools: {str(e).splitlines()[0][:200]}"
except ImportError as e:
    expected["failed"]["xgboost/lightgbm"] = f"not installed: {e}"

(out / "expected.json").write_text(json.dumps(expected))
print(f"{len(expected['models'])} models written, {len(expected['failed'])} failed to convert")
