#!/usr/bin/env python3
"""Write clean public classification tables shipped inside Python packages as CSV (issue 17: false alarms of
`aegis audit` on data nobody poisoned). Needs scikit-learn and river installed (no download: both ship these).

Usage: clean_tables.py OUTDIR      -> OUTDIR/<name>.csv, label column `label`
"""
import gzip
import io
import os
import sys
import zipfile

import numpy as np
import pandas as pd


def river_csv(name):
    import river.datasets as rd
    base = os.path.dirname(rd.__file__)
    path = os.path.join(base, name)
    if path.endswith(".gz"):
        return pd.read_csv(gzip.open(path))
    if path.endswith(".zip"):
        z = zipfile.ZipFile(path)
        member = [n for n in z.namelist() if n.endswith(".csv")][0]
        return pd.read_csv(io.BytesIO(z.read(member)))
    return pd.read_csv(path)


def tables():
    from sklearn import datasets as sk
    for name, loader in [("iris", sk.load_iris), ("wine", sk.load_wine),
                         ("breast_cancer", sk.load_breast_cancer), ("digits", sk.load_digits)]:
        b = loader()
        df = pd.DataFrame(b.data, columns=[f"f{i}" for i in range(b.data.shape[1])])
        df["label"] = b.target
        yield name, df
    shuttle = river_csv("shuttle.csv.gz")
    shuttle = shuttle.rename(columns={shuttle.columns[-1]: "label"})
    yield "shuttle", shuttle
    phishing = river_csv("phishing.csv.gz")
    phishing = phishing.rename(columns={phishing.columns[-1]: "label"})
    yield "phishing", phishing
    import river.datasets as rd
    bananas = pd.DataFrame([dict(x, label=int(y)) for x, y in rd.Bananas()])
    yield "bananas", bananas
    segment = pd.DataFrame([dict(x, label=y) for x, y in rd.ImageSegments()])
    yield "segment", segment


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, df in tables():
        df.to_csv(os.path.join(out, f"{name}.csv"), index=False)
        print(f"{name}: {len(df)} rows, {df.shape[1] - 1} features, {df['label'].nunique()} classes")


if __name__ == "__main__":
    main()
