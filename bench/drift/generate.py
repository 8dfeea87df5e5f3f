"""Generate the drift benchmark pair: REFERENCE and CURRENT CSVs of N rows x 20 columns (seeded numpy).

16 numeric columns (normal, log-normal, exponential, uniform, Poisson counts with ties) and 4 categorical
string columns. CURRENT is drawn from the same distributions with fresh random numbers, except five columns:

  num_00  mean shift of +0.2 standard deviation          (normal)
  num_01  scale x1.25 around the mean                     (normal)
  num_02  tail change: 5% of values moved to +4 sd + Exp(1) (normal)
  cat_00  frequency change: a/b/c/d 40/30/20/10% -> 28/30/24/18%
  cat_01  a new category `z` takes 8% of rows

Usage: python3 generate.py ROWS OUTDIR [--seed S]   (writes OUTDIR/reference.csv and OUTDIR/current.csv)
"""

import argparse
import os

import numpy as np
import pandas as pd

SHIFTED = ["num_00", "num_01", "num_02", "cat_00", "cat_01"]


def numeric(rng, i, n):
    kind = i % 5
    if kind == 0:
        return rng.normal(10.0 * i, 1.0 + i, n)
    if kind == 1:
        return rng.lognormal(0.0, 0.5 + 0.05 * i, n)
    if kind == 2:
        return rng.exponential(1.0 + i, n)
    if kind == 3:
        return rng.uniform(-i, i + 1.0, n)
    return rng.poisson(1.0 + i, n).astype(np.float64)


def frame(n, rng, shifted):
    cols = {}
    for i in range(16):
        name = f"num_{i:02d}"
        if i < 3:
            x = rng.normal(5.0, 2.0, n)
            if shifted and i == 0:
                x = x + 0.2 * 2.0
            elif shifted and i == 1:
                x = 5.0 + (x - 5.0) * 1.25
            elif shifted and i == 2:
                tail = rng.random(n) < 0.05
                x = np.where(tail, 5.0 + 4 * 2.0 + rng.exponential(1.0, n), x)
        else:
            x = numeric(rng, i, n)
        cols[name] = x
    base = ["a", "b", "c", "d"]
    p0 = [0.4, 0.3, 0.2, 0.1]
    cols["cat_00"] = rng.choice(base, n, p=[0.28, 0.30, 0.24, 0.18] if shifted else p0)
    if shifted:
        cols["cat_01"] = rng.choice(base + ["z"], n, p=[0.23, 0.23, 0.23, 0.23, 0.08])
    else:
        cols["cat_01"] = rng.choice(base, n, p=[0.25] * 4)
    cols["cat_02"] = rng.choice([f"k{j}" for j in range(12)], n)
    cols["cat_03"] = rng.choice(["yes", "no"], n, p=[0.7, 0.3])
    return pd.DataFrame(cols)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rows", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=20261126)
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    for name, seed, shifted in [("reference", a.seed, False), ("current", a.seed + 1, True)]:
        df = frame(a.rows, np.random.default_rng(seed), shifted)
        df.to_csv(os.path.join(a.outdir, f"{name}.csv"), index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
