#!/usr/bin/env python3
"""Builds the drift reference pair and the numbers scipy gives for it.

Writes, next to this script:
  reference.csv, current.csv  a seeded reference table (2000 rows) and a current table (1500 rows) with five
                              numeric and two categorical columns; some columns shift, some do not:
                                normal_same   N(0, 1) in both                          (no drift)
                                mean_shift    N(0, 1) -> N(0.3, 1)                     (drift)
                                scale_shift   N(5, 1) -> N(5, 1.5)                     (drift)
                                lognormal     lognormal(0, 1) in both, heavy tail      (no drift)
                                int_ties      Poisson(3) -> Poisson(3.4), many ties    (drift)
                                cat_same      a/b/c/d, same frequencies                (no drift)
                                cat_shift     x/y/z -> other frequencies + "new" only in current (drift)
  expected.json               per column: KS (method auto, and asymptotic), PSI and Jensen-Shannon on 10
                              reference-quantile bins, normalised Wasserstein (numeric); chi-square, PSI and
                              Jensen-Shannon on category counts (categorical); small KS cases for the exact and
                              asymptotic branches (arrays inline); kstwo.sf and exact-branch p-values at sizes
                              too large to inline; adjusted p-values under Bonferroni, Holm and BH.

The Rust test crates/monitor/tests/scipy_reference.rs recomputes every number with aegis-monitor and asserts
|ours - scipy| <= 1e-9 * max(1, |scipy|), and relative 1e-9 for p-values below 1.

Run:  python3 testdata/drift/make_reference.py   (numpy, scipy; deterministic)
"""

import json
import os
import warnings

import numpy as np
import scipy
import scipy.stats as st
import scipy.stats._stats_py as stats_py
from scipy.spatial.distance import jensenshannon

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261126
N_REF, N_CUR = 2000, 1500
BINS = 10
PSI_FLOOR = 1e-4
NUMERIC = ["normal_same", "mean_shift", "scale_shift", "lognormal", "int_ties"]
CATEGORICAL = ["cat_same", "cat_shift"]


def make_tables(rng):
    def num(x):
        return np.round(x, 6)

    ref = {
        "normal_same": num(rng.normal(0.0, 1.0, N_REF)),
        "mean_shift": num(rng.normal(0.0, 1.0, N_REF)),
        "scale_shift": num(rng.normal(5.0, 1.0, N_REF)),
        "lognormal": num(rng.lognormal(0.0, 1.0, N_REF)),
        "int_ties": rng.poisson(3.0, N_REF).astype(float),
        "cat_same": rng.choice(["a", "b", "c", "d"], N_REF, p=[0.4, 0.3, 0.2, 0.1]),
        "cat_shift": rng.choice(["x", "y", "z"], N_REF, p=[0.5, 0.3, 0.2]),
    }
    cur = {
        "normal_same": num(rng.normal(0.0, 1.0, N_CUR)),
        "mean_shift": num(rng.normal(0.3, 1.0, N_CUR)),
        "scale_shift": num(rng.normal(5.0, 1.5, N_CUR)),
        "lognormal": num(rng.lognormal(0.0, 1.0, N_CUR)),
        "int_ties": rng.poisson(3.4, N_CUR).astype(float),
        "cat_same": rng.choice(["a", "b", "c", "d"], N_CUR, p=[0.4, 0.3, 0.2, 0.1]),
        "cat_shift": rng.choice(["x", "y", "z", "new"], N_CUR, p=[0.35, 0.3, 0.25, 0.1]),
    }
    return ref, cur


def fmt(v):
    if isinstance(v, (str, np.str_)):
        return str(v)
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def write_csv(path, table, n):
    cols = NUMERIC + CATEGORICAL
    with open(path, "w", newline="\n") as f:
        f.write(",".join(cols) + "\n")
        for i in range(n):
            f.write(",".join(fmt(table[c][i]) for c in cols) + "\n")


def read_csv(path):
    """Reads the table back, so the numbers below come from exactly what the Rust test parses."""
    with open(path) as f:
        header = f.readline().strip().split(",")
        rows = [line.strip().split(",") for line in f if line.strip()]
    out = {}
    for j, c in enumerate(header):
        vals = [r[j] for r in rows]
        out[c] = np.array([float(v) for v in vals]) if c in NUMERIC else np.array(vals)
    return out


def ks(a, b, method):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = st.ks_2samp(a, b, alternative="two-sided", method=method)
    fell_back = any("Switching" in str(x.message) for x in w)
    if method == "asymp":
        used = "asymptotic"
    elif method == "exact" or (method == "auto" and max(len(a), len(b)) <= 10000):
        used = "asymptotic" if fell_back else "exact"
    else:
        used = "asymptotic"
    return {"statistic": float(r.statistic), "pvalue": float(r.pvalue), "method": used}


def quantile_edges(ref, bins):
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_counts(x, edges):
    return np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)


def psi(r, c):
    r = np.maximum(r / r.sum(), PSI_FLOOR)
    c = np.maximum(c / c.sum(), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def holm(p):
    """statsmodels.stats.multitest.multipletests(p, method="holm")[1], without statsmodels."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    raw = p[order] * np.arange(len(p), 0, -1)
    adj = np.maximum.accumulate(raw)
    adj[adj > 1] = 1
    out = np.empty_like(adj)
    out[order] = adj
    return out


def main():
    rng = np.random.default_rng(SEED)
    ref, cur = make_tables(rng)
    ref_path = os.path.join(HERE, "reference.csv")
    cur_path = os.path.join(HERE, "current.csv")
    write_csv(ref_path, ref, N_REF)
    write_csv(cur_path, cur, N_CUR)
    ref, cur = read_csv(ref_path), read_csv(cur_path)

    columns = {}
    pvals = []
    for c in NUMERIC:
        a, b = ref[c], cur[c]
        edges = quantile_edges(a, BINS)
        rc, cc = bin_counts(a, edges), bin_counts(b, edges)
        sd = float(np.std(a))
        w = float(st.wasserstein_distance(a, b))
        columns[c] = {
            "kind": "numeric",
            "ks": ks(a, b, "auto"),
            "ks_asymptotic": ks(a, b, "asymp"),
            "edges": [float(e) for e in edges],
            "reference_counts": [int(x) for x in rc],
            "current_counts": [int(x) for x in cc],
            "psi": psi(rc, cc),
            "jensen_shannon": float(jensenshannon(rc, cc, base=2)),
            "wasserstein": w,
            "wasserstein_normalized": w / sd if sd > 0 else w,
        }
        pvals.append(columns[c]["ks"]["pvalue"])
    for c in CATEGORICAL:
        cats = sorted(set(ref[c]) | set(cur[c]))
        rc = np.array([int(np.sum(ref[c] == k)) for k in cats])
        cc = np.array([int(np.sum(cur[c] == k)) for k in cats])
        chi2, p, dof, _ = st.chi2_contingency(np.array([rc, cc]), correction=True)
        columns[c] = {
            "kind": "categorical",
            "categories": cats,
            "reference_counts": [int(x) for x in rc],
            "current_counts": [int(x) for x in cc],
            "chi_square": {"statistic": float(chi2), "dof": int(dof), "pvalue": float(p)},
            "psi": psi(rc, cc),
            "jensen_shannon": float(jensenshannon(rc, cc, base=2)),
        }
        pvals.append(float(p))

    # Small samples inline: each KS branch of scipy.
    small = np.random.default_rng(SEED + 1)

    def r6(x):
        return [float(v) for v in np.round(x, 6)]

    cases = []

    def case(name, a, b, method):
        a, b = r6(a), r6(b)
        cases.append({"name": name, "a": a, "b": b, "method": method, **{"expected": ks(a, b, method)}})

    case("exact_unequal_40_30", ref["mean_shift"][:40], cur["mean_shift"][:30], "auto")
    case("exact_equal_50_50", ref["scale_shift"][:50], cur["scale_shift"][:50], "auto")
    case("exact_ties_40_30", ref["int_ties"][:40], cur["int_ties"][:30], "exact")
    case("exact_fallback_5_5", [1, 2, 3, 4, 5], [1.5, 2.5, 3.5, 4.5, 5.5], "auto")
    case("exact_tiny_p_200_150", small.normal(0, 1, 200), small.normal(1.2, 1, 150), "auto")
    case("asymp_equal_60_60", small.normal(0, 1, 60), small.normal(0.2, 1, 60), "asymp")
    case("asymp_unequal_300_200", small.normal(0, 1, 300), small.normal(0.25, 1, 200), "asymp")
    case("asymp_unequal_1000_800", small.normal(0, 1, 1000), small.normal(0.05, 1, 800), "asymp")
    case("asymp_far_1000_800", small.normal(0, 1, 1000), small.normal(0.4, 1, 800), "asymp")
    case("asymp_close_900_900", small.normal(0, 1, 900), small.normal(0.0, 1, 900), "asymp")

    # kstwo.sf(x, n): each branch of scipy's _kolmogn (Simard-L'Ecuyer selection), at sizes that the
    # asymptotic KS p-value reaches for large samples.
    kstwo_points = [
        (10, 0.07), (10, 0.3), (10, 0.95), (10, 0.55), (30, 0.2), (100, 0.05), (100, 0.08),
        (100, 0.12), (100, 0.3), (140, 0.02), (1000, 0.02), (1000, 0.06), (5000, 0.01),
        (50_000, 0.003), (100_000, 0.0035), (200_000, 0.002), (500_000, 0.001),
        (500_000, 0.003), (500_000, 0.02), (2_000_000, 0.001), (2_000_000, 0.0012),
    ]
    kstwo = [{"n": n, "x": x, "sf": float(st.kstwo.sf(x, n))} for n, x in kstwo_points]

    # Exact-branch p-values at sizes too large to inline (scipy's own _attempt_exact_2kssamp).
    exact_points = [(10000, 10000, 0.02), (10000, 9000, 0.025), (5000, 3000, 0.05), (7, 1234, 0.5)]
    exact = []
    for n1, n2, d in exact_points:
        g = int(np.gcd(n1, n2))
        ok, d2, p = stats_py._attempt_exact_2kssamp(n1, n2, g, d, "two-sided")
        assert ok
        exact.append({"n1": n1, "n2": n2, "d": d, "statistic": float(d2), "pvalue": float(np.clip(p, 0, 1))})

    pv = pvals + [0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 1.0, 0.0]
    corrections = {
        "pvalues": pv,
        "bonferroni": [float(x) for x in np.minimum(np.asarray(pv) * len(pv), 1.0)],
        "holm": [float(x) for x in holm(pv)],
        "benjamini_hochberg": [float(x) for x in st.false_discovery_control(pv, method="bh")],
    }

    expected = {
        "generator": "testdata/drift/make_reference.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
        "seed": SEED,
        "bins": BINS,
        "psi_floor": PSI_FLOOR,
        "columns": columns,
        "ks_cases": cases,
        "kstwo_sf": kstwo,
        "ks_exact": exact,
        "corrections": corrections,
    }
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
