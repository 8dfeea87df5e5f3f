#!/usr/bin/env python3
"""Backdoor-trigger detector of `aegis audit` on real tables (issue 17): false alarms on clean tables, and
detection of triggers planted into the same tables.

Usage: triggers.py AEGIS_BIN TABLES_DIR [--seeds 2] [--rate 0.03]
TABLES_DIR holds CSVs with a `label` column (make them with clean_tables.py). For each table: `aegis audit` on
the clean table (count high/critical AEG-AUD-040 findings: false alarms), then for each seed and each trigger kind
a poisoned copy: RATE of the rows not of the target class get one numeric column set to the trigger value and
their label set to the target class. Kinds: `outside` (a value beyond the column's range), `inside` (a value of
the column's own range that no row has). A planted trigger counts as found when a high or critical AEG-AUD-040
finding names the trigger column; recall is the share of planted rows among that finding's rows.
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import pandas as pd


def audit(bin_, path):
    out = subprocess.run([bin_, "audit", path, "--label", "label", "--format", "json", "-q",
                          "--checks", "backdoor"], capture_output=True)
    if out.returncode == 2:
        raise SystemExit(f"{path}: {out.stderr.decode()}")
    return json.loads(out.stdout)


def triggers(report):
    return [f for f in report["findings"]
            if f["rule"] == "AEG-AUD-040" and f["severity"] in ("high", "critical")]


def plant(df, seed, rate, kind):
    rng = np.random.default_rng(seed)
    numeric = [c for c in df.columns if c != "label" and pd.api.types.is_numeric_dtype(df[c])
               and df[c].nunique() > 10]
    numeric = numeric or [c for c in df.columns if c != "label" and pd.api.types.is_numeric_dtype(df[c])
                          and df[c].nunique() > 2]
    col = numeric[rng.integers(len(numeric))]
    classes = sorted(df["label"].unique(), key=lambda c: (df["label"] == c).sum())
    target = classes[0]  # the rarest class: the usual attacker goal
    lo, hi = float(df[col].min()), float(df[col].max())
    if kind == "outside":
        value = hi + (hi - lo) * 0.5 + 1
    else:
        existing = set(df[col].round(6))
        value = round(lo + (hi - lo) * rng.uniform(0.3, 0.7), 3)
        while value in existing:
            value += (hi - lo) * 1e-3
    others = np.flatnonzero(df["label"].to_numpy() != target)
    rows = rng.choice(others, size=max(10, int(rate * len(df))), replace=False)
    poisoned = df.copy()
    if not float(value).is_integer():
        poisoned[col] = poisoned[col].astype(float)
    poisoned.loc[rows, col] = value
    poisoned.loc[rows, "label"] = target
    return poisoned, col, set(int(r) for r in rows)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("aegis")
    p.add_argument("tables")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--rate", type=float, default=0.03)
    a = p.parse_args()
    found, planted_runs, recalls, false_alarms = 0, 0, [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(a.tables)):
            if not name.endswith(".csv"):
                continue
            path = os.path.join(a.tables, name)
            df = pd.read_csv(path)
            clean = triggers(audit(a.aegis, path))
            false_alarms += len(clean)
            line = f"{name[:-4]:14s} clean: {len(clean)} high trigger finding(s)"
            for f in clean:
                line += f" [{f['title']}]"
            for seed in range(a.seeds):
                for kind in ("outside", "inside"):
                    poisoned, col, rows = plant(df, seed, a.rate, kind)
                    ppath = os.path.join(tmp, f"{name[:-4]}-{kind}-{seed}.csv")
                    poisoned.to_csv(ppath, index=False)
                    hits = [f for f in triggers(audit(a.aegis, ppath))
                            if f["location"].get("column") == col or col in f["title"]]
                    planted_runs += 1
                    if hits:
                        found += 1
                        flagged = set(hits[0]["evidence"].get("rows", []))
                        n_flag = hits[0]["evidence"].get("n_rows", len(flagged))
                        recalls.append(min(1.0, n_flag / len(rows)))
                        line += f" | {kind}/{seed} {col}: found"
                    else:
                        recalls.append(0.0)
                        line += f" | {kind}/{seed} {col}: MISSED"
            print(line)
    print(f"false alarms (high trigger findings on clean tables): {false_alarms}")
    print(f"planted triggers found at high: {found}/{planted_runs}; flagged/planted median "
          f"{np.median(recalls):.2f} worst {min(recalls):.2f}")


if __name__ == "__main__":
    main()
