#!/usr/bin/env python3
"""Wide data-audit benchmark (issue 17): `aegis audit` against the HistGradientBoosting + confident-learning
baseline on ten public tables, several seeds and rates per poisoning kind, scored for the median and the worst
case across tables.

Usage: wide.py WORK_DIR --aegis BIN [--seeds 3] [--tables a,b] [--cases a,b] [--max-rows 10000]

Tables: WORK_DIR/tables/<name>.csv with a `label` column (clean_tables.py writes eight of them, phishing among
them) plus the spam and adult tables of prepare.py (WORK_DIR/<name>/clean.csv) when present. Tables above --max-rows
are sampled once (seed 0) to keep a run under half an hour on two cores.

The poisoning here is written independently of the `poison` binary that the Rust tests use, so the benchmark
does not grade Aegis on the generator its developers tuned against. The anomaly kinds follow ADBench (Han et al.,
NeurIPS 2022): *global* outliers drawn uniformly from the bounding box widened by 10% of each range, *local*
outliers drawn from a Gaussian mixture fitted to the data with its covariances scaled by 5, *dependency*
outliers whose every column comes from a different random row (marginals kept, correlations broken). Label
poisoning: random flips (2, 5, 10%), targeted flips (5%, largest class to the second), flipped exact and near
duplicates (2%), and backdoors (2%) with three trigger shapes: one rare value, two common values that rarely
co-occur, and a three-column pattern at the 95th percentile (the tabular analogue of a BadNets patch).
Appended rows are shuffled into the table so their position tells nothing.

Baseline, as in run.py: 5-fold out-of-fold HistGradientBoosting probabilities + cleanlab find_label_issues
(scored on flips, duplicates and backdoors) and IsolationForest (scored on outliers). Aegis: `aegis audit
--flags`, rows flagged with a label kind (label, conflict, backdoor) for the label cases and `outlier` for the
outlier cases. Per case and table the F1 is the mean over seeds; the report gives
the median and the worst table per case, for both tools, and writes every run to WORK_DIR/wide.json.
Nothing from the tables is executed.
"""

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
import zlib

os.environ.setdefault("OMP_NUM_THREADS", "1")  # two cores shared with `aegis`: OpenMP oversubscription is 10x slower

import numpy as np
import pandas as pd

from run import MISSING, prf, python_pipeline  # the three-table run's baseline and scoring, shared

CLEAN = ["iris", "wine", "breast_cancer", "digits", "shuttle", "phishing", "bananas", "segment"]
PREPARED = {"spam": "yesno", "adult": "income"}

# case, kind of poison, rate, Aegis kinds scored, baseline detector. Every label-poisoning case scores the same
# output family of each tool: cleanlab's label issues against Aegis's rows flagged as a label issue, a
# label-conflicting copy or a backdoor (whichever check found the row, it names a row whose label is suspect).
LABEL = {"label", "conflict", "backdoor"}
CASES = [
    ("random-flips-2%", "flips", 0.02, LABEL, "cleanlab"),
    ("random-flips-5%", "flips", 0.05, LABEL, "cleanlab"),
    ("random-flips-10%", "flips", 0.10, LABEL, "cleanlab"),
    ("targeted-flips-5%", "targeted", 0.05, LABEL, "cleanlab"),
    ("global-outliers-2%", "global", 0.02, {"outlier"}, "iforest"),
    ("local-outliers-2%", "local", 0.02, {"outlier"}, "iforest"),
    ("dependency-outliers-2%", "dependency", 0.02, {"outlier"}, "iforest"),
    ("flipped-duplicates-2%", "dup", 0.02, LABEL, "cleanlab"),
    ("flipped-near-duplicates-2%", "neardup", 0.02, LABEL, "cleanlab"),
    ("backdoor-value-2%", "bd-value", 0.02, LABEL, "cleanlab"),
    ("backdoor-pair-2%", "bd-pair", 0.02, LABEL, "cleanlab"),
    ("backdoor-patch-2%", "bd-patch", 0.02, LABEL, "cleanlab"),
]


def load_tables(work, names, max_rows):
    """name -> DataFrame of strings, label column `label` last."""
    out = {}
    for name in names:
        if name in PREPARED:
            path, label = os.path.join(work, name, "clean.csv"), PREPARED[name]
        else:
            path, label = os.path.join(work, "tables", f"{name}.csv"), "label"
        if not os.path.exists(path):
            print(f"{name}: {path} missing, skipped", file=sys.stderr)
            continue
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df = df.rename(columns={label: "label"})
        df = df[[c for c in df.columns if c != "label"] + ["label"]]
        if len(df) > max_rows:
            df = df.sample(n=max_rows, random_state=0).reset_index(drop=True)
        out[name] = df
    return out


def numeric_columns(df):
    """Feature columns whose every present value parses as a number -> (values as float, integral?)."""
    cols = {}
    for c in df.columns[:-1]:
        v = pd.to_numeric(df[c].where(~df[c].isin(MISSING)), errors="coerce")
        present = df[c][~df[c].isin(MISSING)]
        if len(present) and v.notna().sum() == len(present):
            integral = bool(np.all(np.isclose(v.dropna(), np.round(v.dropna()))))
            cols[c] = (v.to_numpy(dtype=float), integral)
    return cols


def fmt_num(x, integral):
    return str(int(round(x))) if integral else f"{x:.6g}"


def other_label(rng, labels, old):
    choices = [l for l in labels if l != old]
    return choices[rng.integers(len(choices))]


def pick_trigger(df, shape, rng, numeric):
    """[(column, value)] for a backdoor of the given shape, or None when the table has none."""
    feats = list(df.columns[:-1])
    n = len(df)
    if shape == "bd-value":
        cands = []
        for c in feats:
            counts = df[c].value_counts()
            cands += [(c, v) for v, k in counts.items() if 1 <= k <= 3 and v not in MISSING]
        return [cands[rng.integers(len(cands))]] if cands else None
    if shape == "bd-pair":
        common = {c: [v for v, k in df[c].value_counts().items() if k >= 0.05 * n and v not in MISSING]
                  for c in feats}
        cols = [c for c in feats if common[c]]
        pairs = []
        for i, a in enumerate(cols):
            for b in cols[i + 1:]:
                joint = df.groupby([a, b]).size()
                for va in common[a]:
                    for vb in common[b]:
                        if joint.get((va, vb), 0) <= 0.002 * n:
                            pairs.append(((a, va), (b, vb)))
        return list(pairs[rng.integers(len(pairs))]) if pairs else None
    # bd-patch: three numeric columns with spread, each set to its 95th percentile, among the columns
    # whose value there is held by at most a fifth of the rows (else the "patch" is the common case).
    patch = {}
    for c, (v, integral) in numeric.items():
        if len(np.unique(v[~np.isnan(v)])) <= 5:
            continue
        value = fmt_num(np.nanpercentile(v, 95), integral)
        if np.mean(np.isclose(v, float(value))) <= 0.2:
            patch[c] = value
    if len(patch) < 3:
        return None
    chosen = rng.choice(sorted(patch), size=3, replace=False)
    return [(c, patch[c]) for c in chosen]


def synthetic_rows(df, kind, k, rng, numeric):
    """k appended outlier rows of an ADBench kind, as lists of strings."""
    n = len(df)
    base = df.iloc[rng.integers(n, size=k)].to_numpy(dtype=object).copy()
    cols = list(df.columns)
    labels = df["label"].to_numpy()
    base[:, -1] = labels[rng.integers(n, size=k)]
    if kind == "dependency":
        for j in range(len(cols) - 1):
            base[:, j] = df.iloc[rng.integers(n, size=k), j].to_numpy()
        return base
    names = list(numeric)
    if not names:
        return None
    X = np.column_stack([numeric[c][0] for c in names])
    X = np.where(np.isnan(X), np.nanmedian(X, axis=0), X)
    if kind == "global":
        lo, hi = X.min(axis=0), X.max(axis=0)
        pad = 0.1 * (hi - lo)
        S = rng.uniform(lo - pad, hi + pad, size=(k, X.shape[1]))
    else:
        from sklearn.mixture import GaussianMixture

        mu, sd = X.mean(axis=0), X.std(axis=0)
        sd[sd == 0] = 1.0
        Z = (X - mu) / sd
        gm = GaussianMixture(n_components=min(5, max(1, len(X) // 50)), covariance_type="full",
                             reg_covar=1e-3, random_state=int(rng.integers(1 << 30))).fit(Z)
        comp = rng.choice(len(gm.weights_), size=k, p=gm.weights_)
        S = np.empty((k, X.shape[1]))
        for i, c in enumerate(comp):
            S[i] = rng.multivariate_normal(gm.means_[c], 5.0 * gm.covariances_[c])
        S = S * sd + mu
    for j, c in enumerate(names):
        jj = cols.index(c)
        base[:, jj] = [fmt_num(x, numeric[c][1]) for x in S[:, j]]
    return base


def poison(df, case, seed):
    """(poisoned DataFrame, truth row indices, conflict groups or None, note) or None when not applicable."""
    _name, kind, rate, _k, _d = case
    rng = np.random.default_rng(seed * 1000 + zlib.crc32(kind.encode()) % 997)
    df = df.copy()
    n = len(df)
    k = max(2, int(round(rate * n)))
    labels = sorted(df["label"].unique())
    numeric = numeric_columns(df)
    truth, groups, note = set(), None, ""
    appended = None
    if kind == "flips":
        rows = rng.choice(n, size=k, replace=False)
        for r in rows:
            df.iat[r, -1] = other_label(rng, labels, df.iat[r, -1])
        truth = set(rows.tolist())
    elif kind == "targeted":
        counts = df["label"].value_counts()
        frm, to = counts.index[0], counts.index[1]
        pool = np.flatnonzero(df["label"].to_numpy() == frm)
        rows = rng.choice(pool, size=min(k, len(pool) // 2), replace=False)
        df.iloc[rows, -1] = to
        truth, note = set(rows.tolist()), f"{frm} → {to}"
    elif kind in ("global", "local", "dependency"):
        appended = synthetic_rows(df, kind, k, rng, numeric)
        if appended is None:
            return None
    elif kind in ("dup", "neardup"):
        src = rng.choice(n, size=k, replace=False)
        appended = df.iloc[src].to_numpy(dtype=object).copy()
        for i in range(k):
            appended[i, -1] = other_label(rng, labels, appended[i, -1])
        if kind == "neardup":
            # Floats get noise of 1% of their spread; with none, wide integer columns move by one.
            floats = [c for c, (_v, integral) in numeric.items() if not integral]
            wide_ints = [c for c, (v, integral) in numeric.items()
                         if integral and len(np.unique(v[~np.isnan(v)])) > 20]
            if not floats and not wide_ints:
                return None
            for c in floats or wide_ints:
                j = list(df.columns).index(c)
                v, _i = numeric[c]
                sd = np.nanstd(v) or 1.0
                for i in range(k):
                    x = pd.to_numeric(appended[i, j], errors="coerce")
                    if np.isnan(x):
                        continue
                    step = rng.normal(0, 0.01 * sd) if floats else rng.choice([-1, 1])
                    appended[i, j] = fmt_num(x + step, not floats)
        groups = [[int(s), n + i] for i, s in enumerate(src)]
    else:
        trig = pick_trigger(df, kind, rng, numeric)
        if trig is None:
            return None
        target = labels[rng.integers(len(labels))]
        pool = np.flatnonzero(df["label"].to_numpy() != target)
        rows = rng.choice(pool, size=min(k, len(pool)), replace=False)
        for c, v in trig:
            df.loc[rows, c] = v
        df.iloc[rows, -1] = target
        truth = set(rows.tolist())
        note = " AND ".join(f"{c}={v}" for c, v in trig) + f" → {target}"
    if appended is not None:
        extra = pd.DataFrame(appended, columns=df.columns)
        if groups is None:
            truth = set(range(n, n + len(extra)))
        df = pd.concat([df, extra], ignore_index=True)
    # Shuffle so that appended rows sit anywhere; map truth and groups through the permutation.
    perm = rng.permutation(len(df))
    where = np.empty(len(df), dtype=int)
    where[perm] = np.arange(len(df))
    df = df.iloc[perm].reset_index(drop=True)
    if groups is not None:
        groups = [{int(where[a]), int(where[b])} for a, b in groups]
        truth = set().union(*groups)
    else:
        truth = {int(where[t]) for t in truth}
    return df, truth, groups, note


def baseline(path, labels):
    """cleanlab-flagged rows and IsolationForest-flagged rows (run.py's pipeline), and the seconds taken."""
    folds = max(2, min(5, int(pd.Series(labels).value_counts().min())))
    cleanlab, iforest, seconds, _scores = python_pipeline(path, "label", folds)
    return {"cleanlab": cleanlab, "iforest": iforest}, seconds


def aegis(bin_, path, flags):
    t0 = time.perf_counter()
    p = subprocess.run([bin_, "audit", path, "--label", "label", "--flags", flags, "--format", "json", "-q"],
                       capture_output=True)
    secs = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        raise RuntimeError(f"aegis audit {path} failed ({p.returncode}): {p.stderr.decode()[-1500:]}")
    with open(flags) as f:
        rows = {int(r["row"]): set(k for k in r["kinds"].split(";") if k)
                for r in csv.DictReader(f) if r["flagged"] == "1"}
    return rows, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--aegis", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tables", default=",".join(CLEAN + list(PREPARED)))
    ap.add_argument("--cases", default=",".join(c[0] for c in CASES))
    ap.add_argument("--max-rows", type=int, default=10000)
    args = ap.parse_args()
    tables = load_tables(args.work, args.tables.split(","), args.max_rows)
    if not tables:
        raise SystemExit("no tables found: run clean_tables.py WORK/tables and prepare.py WORK first")
    runs = []
    cache_path = os.path.join(args.work, "wide.baseline.json")
    cache = json.load(open(cache_path)) if os.path.exists(cache_path) else {}
    wanted = args.cases.split(",")
    for name, df in tables.items():
        for case in [c for c in CASES if c[0] in wanted]:
            for seed in range(1, args.seeds + 1):
                made = poison(df, case, seed)
                if made is None:
                    continue
                pdf, truth, groups, note = made
                base = os.path.join(args.work, "wide", name, f"{case[0].replace('%', 'pct')}.s{seed}")
                os.makedirs(os.path.dirname(base), exist_ok=True)
                pdf.to_csv(base + ".csv", index=False)
                # Keyed by the poisoned file's bytes: a change to a table or to the poisoning reruns the baseline.
                with open(base + ".csv", "rb") as f:
                    key = f"{name}/{case[0]}/{seed}/{hashlib.sha256(f.read()).hexdigest()}"
                if key not in cache:
                    got, secs = baseline(base + ".csv", pdf["label"])
                    cache[key] = {"cleanlab": sorted(got["cleanlab"]), "iforest": sorted(got["iforest"]),
                                  "seconds": secs}
                    with open(cache_path, "w") as f:
                        json.dump(cache, f)
                py = cache[key]
                flagged, asecs = aegis(args.aegis, base + ".csv", base + ".flags.csv")
                mine = {r for r, ks in flagged.items() if ks & case[3]}
                run = {"table": name, "case": case[0], "seed": seed, "note": note, "truth": len(truth),
                       "baseline": prf(set(py[case[4]]), truth, groups)["f1"],
                       "aegis": prf(mine, truth, groups)["f1"], "baseline_s": py["seconds"], "aegis_s": asecs}
                runs.append(run)
                print(f"{name} {case[0]} s{seed}: baseline {run['baseline']:.2f} aegis {run['aegis']:.2f}",
                      file=sys.stderr)
    with open(os.path.join(args.work, "wide.json"), "w") as f:
        json.dump(runs, f, indent=1)
    report(runs, tables, args)


def report(runs, tables, args):
    print(f"Tables: {', '.join(f'{n} ({len(d)}×{d.shape[1] - 1})' for n, d in tables.items())}; "
          f"seeds 1–{args.seeds}; F1 per table is the mean over seeds.\n")
    print("| case | tables | baseline median / worst | Aegis median / worst | Aegis ≥ baseline | worst table (Aegis) |")
    print("|---|---:|---|---|---:|---|")
    for case in [c[0] for c in CASES]:
        per = {}
        for r in runs:
            if r["case"] == case:
                per.setdefault(r["table"], []).append((r["baseline"], r["aegis"]))
        if not per:
            continue
        b = {t: np.mean([x[0] for x in v]) for t, v in per.items()}
        a = {t: np.mean([x[1] for x in v]) for t, v in per.items()}
        worst = min(a, key=a.get)
        ahead = sum(1 for t in per if a[t] >= b[t] - 1e-9)
        print(f"| {case} | {len(per)} | {np.median(list(b.values())):.2f} / {min(b.values()):.2f} | "
              f"**{np.median(list(a.values())):.2f}** / **{min(a.values()):.2f}** | {ahead} of {len(per)} | "
              f"{worst} ({a[worst]:.2f} vs {b[worst]:.2f}) |")
    bs, as_ = sum(r["baseline_s"] for r in runs), sum(r["aegis_s"] for r in runs)
    print(f"\n{len(runs)} runs; wall time baseline {bs:.0f} s, Aegis {as_:.0f} s.")
    print("\nPer table (mean F1 over seeds, baseline / Aegis):\n")
    names = list(tables)
    print("| case | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for case in [c[0] for c in CASES]:
        cells = []
        for t in names:
            v = [(r["baseline"], r["aegis"]) for r in runs if r["case"] == case and r["table"] == t]
            cells.append(f"{np.mean([x[0] for x in v]):.2f} / {np.mean([x[1] for x in v]):.2f}" if v else "–")
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
