"""Audit benchmark: cleanlab + IsolationForest vs `aegis audit` on the same poisoned tables.

Usage: run.py WORK_DIR [--poison BIN] [--aegis BIN] [--skip-aegis] [--datasets a,b] [--cases a,b]

For every table WORK_DIR/<dataset>/clean.csv (written by prepare.py) and every poisoning case, the `poison` binary
(crates/test-support) writes the poisoned CSV and its truth (`row,kind`). Then:
- Python pipeline, timed from reading the CSV to the flagged rows: 5-fold out-of-fold probabilities of
  scikit-learn's HistGradientBoostingClassifier (cross_val_predict, method="predict_proba", categorical columns
  native), cleanlab.filter.find_label_issues(labels, pred_probs) with its defaults, and IsolationForest with its
  default contamination ("auto"; flagged = predict == -1) on an ordinal encoding (one-hot breaks it).
- `aegis audit FILE --label COL --flags F.csv --format json -q`, timed as a process.
Each tool is scored against the truth rows of the case's kind: cleanlab's flagged rows for label flips, targeted
flips, backdoors and conflicting duplicates; IsolationForest's for outliers; for Aegis the rows with flagged = 1
whose `kinds` contain the matching kind (label, backdoor, conflict, outlier). Python results are cached per case
(WORK_DIR/<dataset>/<case>.python.json) so a rerun only reruns Aegis. Prints a markdown report on stdout.
Nothing from the datasets is executed.
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time

import numpy as np

MISSING = ["", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]

# dataset -> (label column, targeted flip from -> to, backdoor target label)
DATASETS = {
    "phishing": ("is_phishing", "1", "0", "0"),
    "spam": ("yesno", "y", "n", "n"),
    "adult": ("income", ">50K", "<=50K", ">50K"),
}

# case name, poison kinds, rate, truth kind scored, Python detector scored
CASES = [
    ("random-flips-1%", ["random-flips"], 0.01, "label", "cleanlab"),
    ("random-flips-5%", ["random-flips"], 0.05, "label", "cleanlab"),
    ("random-flips-10%", ["random-flips"], 0.10, "label", "cleanlab"),
    ("targeted-flips-5%", ["targeted-flips"], 0.05, "label", "cleanlab"),
    ("outliers-2%", ["outliers"], 0.02, "outlier", "isolation-forest"),
    ("flipped-duplicates-2%", ["flipped-duplicates"], 0.02, "conflict", "cleanlab"),
    ("backdoor-2%", ["backdoor"], 0.02, "backdoor", "cleanlab"),
]


def read_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def choose_trigger(header, rows, label, seed):
    """A rare trigger: one (column, value) seen in 1-3 rows, else a pair of common values that never co-occur
    (or co-occur in at most 0.2% of rows). Chosen with a seeded RNG among the candidates."""
    rng = random.Random(seed)
    li = header.index(label)
    n = len(rows)
    counts = [dict() for _ in header]
    for r in rows:
        for i, v in enumerate(r):
            if i != li and v not in MISSING:
                counts[i][v] = counts[i].get(v, 0) + 1
    singles = sorted((header[i], v) for i in range(len(header)) if i != li
                     for v, c in counts[i].items() if 1 <= c <= 3)
    if singles:
        return [rng.choice(singles)]
    cols = [i for i in range(len(header)) if i != li]
    pairs = []
    for a in cols:
        for b in cols:
            if a >= b:
                continue
            joint = {}
            for r in rows:
                joint[(r[a], r[b])] = joint.get((r[a], r[b]), 0) + 1
            for va, ca in counts[a].items():
                for vb, cb in counts[b].items():
                    if ca >= 0.05 * n and cb >= 0.05 * n and joint.get((va, vb), 0) <= 0.002 * n:
                        pairs.append(((header[a], va), (header[b], vb)))
    if not pairs:
        raise SystemExit("no rare trigger found")
    return list(rng.choice(sorted(pairs)))


def poison(bin_, clean, out, truth, label, case, extra, seed):
    name, kinds, rate, _kind, _det = case
    cmd = [bin_, "--in", clean, "--label", label, "--rate", str(rate), "--seed", str(seed),
           "--out", out, "--truth", truth]
    for k in kinds:
        cmd += ["--kind", k]
    cmd += extra
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)


def conflict_groups(path, label, truth):
    """The poisoned label-conflicting pairs: truth rows grouped by identical features."""
    header, rows = read_rows(path)
    li = header.index(label)
    groups = {}
    for r in truth:
        groups.setdefault(tuple(c for i, c in enumerate(rows[r]) if i != li), set()).add(r)
    return list(groups.values())


def read_truth(path, kind):
    with open(path) as f:
        return {int(r["row"]) for r in csv.DictReader(f) if r["kind"] == kind}


def prf(flagged, truth, groups=None):
    """Precision, recall, F1 of `flagged` rows against `truth` rows. With `groups` (the poisoned label-conflicting
    pairs), recall counts the groups with at least one flagged member: the finding is the group, and either
    member may be the one a tool calls mislabelled."""
    tp = len(flagged & truth)
    p = tp / len(flagged) if flagged else 0.0
    if groups:
        r = sum(1 for g in groups if g & flagged) / len(groups)
    else:
        r = tp / len(truth) if truth else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "flagged": len(flagged), "true": len(truth)}


def python_pipeline(path, label, folds=5):
    """The Python baseline, timed end to end (read included). Returns (cleanlab rows, iforest rows, seconds,
    scores). `folds` is lowered by callers whose smallest class has fewer than five rows."""
    import pandas as pd
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    t0 = time.perf_counter()
    df = pd.read_csv(path, na_values=MISSING, keep_default_na=True, dtype={label: str})
    y_raw = df.pop(label)
    classes = sorted(y_raw.unique())
    y = y_raw.map({c: i for i, c in enumerate(classes)}).to_numpy()
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].astype("category")
    hgb = HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    probs = cross_val_predict(hgb, df, y, cv=cv, method="predict_proba")
    issues = find_label_issues(labels=y, pred_probs=probs)
    quality = get_label_quality_scores(labels=y, pred_probs=probs)
    enc = np.empty((len(df), df.shape[1]), dtype=float)
    for j, c in enumerate(df.columns):
        col = df[c].cat.codes.astype(float).where(df[c].notna(), np.nan) if df[c].dtype.name == "category" \
            else df[c].astype(float)
        enc[:, j] = col.fillna(col.median()).to_numpy()
    iso = IsolationForest(random_state=0).fit(enc)
    outliers = iso.predict(enc) == -1
    seconds = time.perf_counter() - t0
    scores = {"cleanlab": (1.0 - quality).tolist(), "iforest": (-iso.score_samples(enc)).tolist()}
    return set(np.flatnonzero(issues).tolist()), set(np.flatnonzero(outliers).tolist()), seconds, scores


def aegis_audit(bin_, path, label, flags):
    t0 = time.perf_counter()
    proc = subprocess.run([bin_, "audit", path, "--label", label, "--flags", flags, "--format", "json", "-q"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"aegis audit {path} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    rows = {}
    with open(flags) as f:
        for r in csv.DictReader(f):
            kinds = set(k for k in r["kinds"].split(";") if k)
            rows[int(r["row"])] = (float(r["score"]), r["flagged"] == "1", kinds)
    return rows, seconds


def auroc(scores, truth):
    """Area under the ROC curve of `scores` ranking the truth rows first (ties count half)."""
    from sklearn.metrics import roc_auc_score

    y = np.zeros(len(scores), dtype=int)
    y[[t for t in truth if t < len(scores)]] = 1
    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, scores))


def fmt(m):
    return f"{m['precision']:.2f} / {m['recall']:.2f} / **{m['f1']:.2f}**" if m else "–"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--poison", default="target/release/poison")
    ap.add_argument("--aegis", default="target/release/aegis")
    ap.add_argument("--skip-aegis", action="store_true")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--cases", default=",".join(c[0] for c in CASES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="wall times are the minimum of this many runs")
    args = ap.parse_args()
    with open(os.path.join(args.work, "datasets.json")) as f:
        info = json.load(f)
    results = []
    for ds in args.datasets.split(","):
        label, frm, to, target = DATASETS[ds]
        clean = os.path.join(args.work, ds, "clean.csv")
        header, rows = read_rows(clean)
        for case in CASES:
            name, kinds, rate, kind, det = case
            if name not in args.cases.split(","):
                continue
            extra, note = [], ""
            if "targeted-flips" in kinds:
                extra = ["--from", frm, "--to", to]
                note = f"{frm} → {to}"
            if "backdoor" in kinds:
                trig = choose_trigger(header, rows, label, args.seed)
                for col, val in trig:
                    extra += ["--trigger", f"{col}={val}"]
                extra += ["--target", target]
                note = " AND ".join(f"{c} == {v}" for c, v in trig) + f" → {target}"
            base = os.path.join(args.work, ds, name.replace("%", "pct"))
            out, truth_path = base + ".csv", base + ".truth.csv"
            poison(args.poison, clean, out, truth_path, label, case, extra, args.seed)
            truth = read_truth(truth_path, kind)
            groups = conflict_groups(out, label, truth) if kind == "conflict" else None
            cache = base + ".python.json"
            py = None
            if os.path.exists(cache):
                with open(cache) as f:
                    py = json.load(f)
                if py.get("truth") != sorted(truth) or py.get("repeat", 1) < args.repeat:
                    py = None
            if py is None:
                cl, iso, secs, scores = python_pipeline(out, label)
                for _ in range(args.repeat - 1):
                    cl2, iso2, s2, _ = python_pipeline(out, label)
                    if (cl2, iso2) != (cl, iso):
                        raise SystemExit(f"{out}: the Python pipeline is not deterministic")
                    secs = min(secs, s2)
                py = {"cleanlab": sorted(cl), "iforest": sorted(iso), "seconds": secs, "truth": sorted(truth),
                      "repeat": args.repeat, "scores": scores}
                with open(cache, "w") as f:
                    json.dump(py, f)
            flagged_py = set(py["cleanlab"] if det == "cleanlab" else py["iforest"])
            res = {"dataset": ds, "case": name, "kind": kind, "note": note, "detector": det,
                   "python": prf(flagged_py, truth, groups), "python_seconds": py["seconds"], "python_repeat": py.get("repeat", 1), "aegis": None,
                   "python_auroc": auroc(py["scores"]["cleanlab" if det == "cleanlab" else "iforest"], truth),
                   "aegis_seconds": None}
            if not args.skip_aegis:
                flags = base + ".flags.csv"
                got, secs = aegis_audit(args.aegis, out, label, flags)
                for _ in range(args.repeat - 1):
                    secs = min(secs, aegis_audit(args.aegis, out, label, flags)[1])
                flagged = {r for r, (_s, fl, ks) in got.items() if fl and kind in ks}
                res["aegis"] = prf(flagged, truth, groups)
                res["aegis_seconds"] = secs
                res["aegis_auroc"] = auroc([got[i][0] if i in got else 0.0 for i in range(len(py["scores"]["iforest"]))],
                                           truth)
                res["aegis_flagged_any"] = sum(1 for (_s, fl, _k) in got.values() if fl)
            results.append(res)
            a = res["aegis"]
            print(f"{ds} {name}: {det} F1 {res['python']['f1']:.2f} ({py['seconds']:.2f}s)"
                  + (f", aegis F1 {a['f1']:.2f} ({res['aegis_seconds']:.2f}s)" if a else ""), file=sys.stderr)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    report(info, results, args)


def report(info, results, args):
    print("## Datasets\n")
    print("| dataset | package | file | rows | columns | exact duplicate rows | label-conflicting groups |")
    print("|---|---|---|---:|---:|---:|---:|")
    for ds in args.datasets.split(","):
        d = info[ds]
        print(f"| {ds} | {d['package']} | `{d['file']}` | {d['rows']} | {d['columns']} | "
              f"{d['exact_duplicate_rows']} ({100 * d['exact_duplicate_rows'] / d['rows']:.0f}%) | "
              f"{d['natural_conflicting_groups']} |")
    print("\n## Detection (precision / recall / **F1**) and wall time\n")
    print("Python = read CSV + 5-fold HistGradientBoosting out-of-fold probabilities + cleanlab "
          "`find_label_issues` + IsolationForest; the scored detector is named per row. Aegis = "
          "`aegis audit --flags` (process wall time), rows flagged with the matching kind. Times are the minimum of "
          f"{min((r['python_repeat'] for r in results), default=args.repeat)} (Python) and {args.repeat} (Aegis) runs "
          "(the 2-core machine is shared; the minimum is the least disturbed run).\n")
    print("| dataset | poison | truth rows | Python detector | Python P / R / F1 | Aegis P / R / F1 | ΔF1 | "
          "AUROC Python / Aegis | Python s | Aegis s | speed-up |")
    print("|---|---|---:|---|---|---|---:|---|---:|---:|---:|")
    for r in results:
        a = r["aegis"]
        delta = f"{a['f1'] - r['python']['f1']:+.2f}" if a else "–"
        asec = f"{r['aegis_seconds']:.2f}" if a else "–"
        speed = f"{r['python_seconds'] / r['aegis_seconds']:.1f}×" if a and r["aegis_seconds"] else "–"
        case = r["case"] + (f" ({r['note']})" if r["note"] else "")
        if r["kind"] == "conflict":
            case += f" (scored per pair: {r['python']['true'] // 2} pairs)"
        au = "/".join("–" if v is None else f"{v:.2f}" for v in (r["python_auroc"], r.get("aegis_auroc")))
        print(f"| {r['dataset']} | {case} | {r['python']['true']} | {r['detector']} | {fmt(r['python'])} | "
              f"{fmt(a)} | {delta} | {au} | {r['python_seconds']:.2f} | {asec} | {speed} |")
    if results and all(r["aegis"] for r in results):
        py = sum(r["python_seconds"] for r in results)
        ae = sum(r["aegis_seconds"] for r in results)
        print(f"\nTotal wall time: Python {py:.1f} s, Aegis {ae:.1f} s ({py / ae:.1f}× faster).")


if __name__ == "__main__":
    main()
