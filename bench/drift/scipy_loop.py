"""The plain scipy baseline for `aegis drift`: pandas.read_csv both files, then per column
scipy.stats.ks_2samp (numeric) or scipy.stats.chi2_contingency on the category counts (other columns),
Benjamini-Hochberg across columns (scipy.stats.false_discovery_control), drift when the corrected p < alpha.

Usage: python3 scipy_loop.py REFERENCE CURRENT [--alpha 0.05] [--json OUT]
Prints the detected columns, one line; writes the per-column p-values as JSON with --json.
"""

import argparse
import json

import numpy as np
import pandas as pd
from scipy import stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("current")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--json")
    a = ap.parse_args()
    ref = pd.read_csv(a.reference)
    cur = pd.read_csv(a.current)
    names, pvalues = [], []
    for col in ref.columns:
        r, c = ref[col].dropna(), cur[col].dropna()
        if pd.api.types.is_numeric_dtype(r) and pd.api.types.is_numeric_dtype(c):
            p = stats.ks_2samp(r.to_numpy(), c.to_numpy()).pvalue
        else:
            rc, cc = r.astype(str).value_counts(), c.astype(str).value_counts()
            cats = sorted(set(rc.index) | set(cc.index))
            table = np.array([[rc.get(k, 0) for k in cats], [cc.get(k, 0) for k in cats]])
            p = stats.chi2_contingency(table).pvalue if len(cats) > 1 else 1.0
        names.append(col)
        pvalues.append(float(p))
    adjusted = stats.false_discovery_control(pvalues, method="bh")
    detected = [n for n, p in zip(names, adjusted) if p < a.alpha]
    print(" ".join(detected))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"detected": detected, "pvalues": dict(zip(names, pvalues)),
                       "adjusted": dict(zip(names, map(float, adjusted)))}, f, indent=1)


if __name__ == "__main__":
    main()
