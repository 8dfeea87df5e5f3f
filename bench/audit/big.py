"""Write the 1,000,000 x 20 synthetic table of the bounded-memory audit run.

Usage: big.py OUT.csv [--rows N] [--seed S]
Columns: 14 floats f0..f13 (class-dependent means, overlapping), 3 integer counts c0..c2, a categorical `region`
(12 values), a boolean `flag`, and the binary `label` (about 30% ones). Seeded; written in chunks.
"""

import argparse

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    regions = np.array([f"r{i:02d}" for i in range(12)])
    header = [f"f{i}" for i in range(14)] + ["c0", "c1", "c2", "region", "flag", "label"]
    chunk = 100_000
    with open(args.out, "w") as f:
        f.write(",".join(header) + "\n")
        for start in range(0, args.rows, chunk):
            n = min(chunk, args.rows - start)
            y = (rng.random(n) < 0.3).astype(int)
            floats = rng.normal(size=(n, 14)) + 0.6 * y[:, None] * (np.arange(14) % 3 == 0)
            counts = rng.poisson(lam=3 + 2 * y[:, None], size=(n, 3))
            region = regions[rng.integers(0, 12, size=n)]
            flag = np.where(rng.random(n) < 0.2 + 0.3 * y, "true", "false")
            cols = [np.char.mod("%.4f", floats[:, j]) for j in range(14)]
            cols += [counts[:, j].astype(str) for j in range(3)]
            cols += [region, flag, y.astype(str)]
            lines = np.char.add(cols[0], "")
            for c in cols[1:]:
                lines = np.char.add(np.char.add(lines, ","), c)
            f.write("\n".join(lines.tolist()) + "\n")


if __name__ == "__main__":
    main()
