"""Evidently's DataDriftPreset (defaults) on the drift benchmark pair; prints the detected columns.

Works with Evidently >= 0.7 (`evidently.presets`) and falls back to the legacy API (`evidently.metric_preset`).
A column is detected when its drift score passes the method's threshold: p-value methods (`p_value` in the
method name) when the score is below it, distance methods (Wasserstein, Jensen-Shannon, ...) when at or above.

Usage: python evidently_run.py REFERENCE CURRENT [--json OUT]
"""

import argparse
import json
import re

import pandas as pd


def run_new(ref, cur):
    from evidently import Report
    from evidently.presets import DataDriftPreset

    d = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref).dict()
    scores = {}
    for m in d["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            method, thr, v = cfg.get("method", ""), cfg.get("threshold"), m["value"]
            hit = v < thr if "p_value" in method else v >= thr
            scores[cfg["column"]] = {"method": method, "threshold": thr, "score": v, "drift": bool(hit)}
    return scores


def run_legacy(ref, cur):
    from evidently.metric_preset import DataDriftPreset
    from evidently.report import Report

    r = Report(metrics=[DataDriftPreset()])
    r.run(reference_data=ref, current_data=cur)
    scores = {}
    for m in r.as_dict()["metrics"]:
        cols = m.get("result", {}).get("drift_by_columns")
        if cols:
            for name, c in cols.items():
                scores[name] = {"method": c["stattest_name"], "threshold": c["stattest_threshold"],
                                "score": c["drift_score"], "drift": bool(c["drift_detected"])}
    return scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("current")
    ap.add_argument("--json")
    a = ap.parse_args()
    ref = pd.read_csv(a.reference)
    cur = pd.read_csv(a.current)
    try:
        scores = run_new(ref, cur)
    except ImportError:
        scores = run_legacy(ref, cur)
    detected = [c for c in ref.columns if scores.get(c, {}).get("drift")]
    print(" ".join(detected))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"detected": detected, "columns": scores}, f, indent=1)


if __name__ == "__main__":
    main()
