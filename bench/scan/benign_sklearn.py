#!/usr/bin/env python3
"""Benign scikit-learn, NumPy and pandas files written by the real libraries (issue 18: false alarms).

Usage: benign_sklearn.py OUTDIR
Needs numpy, pandas and scikit-learn installed (joblib comes with scikit-learn). Writes fitted estimators as
they are saved in practice: `pickle.dump` and `joblib.dump` (uncompressed and with each compression joblib
offers that the Python build supports), pandas `to_pickle`, and NumPy object and structured arrays. Every file
is one a user expects `aegis scan` to pass. Nothing is downloaded; everything is generated and nothing here is
ever loaded back.
"""
import os
import pickle
import sys

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def estimators():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    df = pd.DataFrame(X, columns=["amount", "age", "tenure", "score"])
    df["country"] = rng.choice(["de", "fr", "it"], size=200)
    yield "logreg", LogisticRegression().fit(X, y)
    yield "hgb", HistGradientBoostingClassifier(max_iter=10).fit(X, y)
    yield "mlp", MLPClassifier(hidden_layer_sizes=(8,), max_iter=50).fit(X, y)
    yield "forest", RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    yield "grid", GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2).fit(X, y)
    pre = ColumnTransformer([("num", StandardScaler(), ["amount", "age", "tenure", "score"]),
                             ("cat", OneHotEncoder(), ["country"])])
    yield "pipeline_df", Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(df, y)
    yield "logreg_df", LogisticRegression().fit(df[["amount", "age"]], y)
    yield "rng", np.random.default_rng(1)


def write(out):
    """Write every file into OUT (created if missing); bench/scan/benign_libraries.py calls this too."""
    os.makedirs(out, exist_ok=True)
    for name, obj in estimators():
        with open(os.path.join(out, f"{name}.pkl"), "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        joblib.dump(obj, os.path.join(out, f"{name}.joblib"))
        for compress in ["zlib", "gzip", "bz2", "lzma", "xz"]:
            try:
                joblib.dump(obj, os.path.join(out, f"{name}.{compress}.joblib"), compress=(compress, 3))
            except (ValueError, ImportError):
                pass
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    df.to_pickle(os.path.join(out, "frame.pkl"))
    np.save(os.path.join(out, "objects.npy"), np.array([{"a": 1}, "text", 3], dtype=object), allow_pickle=True)
    np.save(os.path.join(out, "structured.npy"), np.zeros(3, dtype=[("x", "f4"), ("y", "i8")]))
    print(f"{len(os.listdir(out))} files in {out}")


def main():
    write(sys.argv[1])


if __name__ == "__main__":
    main()
