#!/usr/bin/env python3
"""Tables for bench/llm_guard/results.md from the per-row outputs of one run.

Usage: analyse.py WORK   (reads WORK/eval.jsonl, WORK/rules.jsonl, and when present WORK/learned.jsonl
(`aegis llm train-head --scores`), WORK/tfidf.jsonl (baseline_tfidf.py), WORK/obf/*.out.jsonl)
"""
import json
import os
import sys
from collections import defaultdict

W = sys.argv[1]
T = 0.5


def load(name):
    p = os.path.join(W, name)
    return [json.loads(l) for l in open(p, encoding="utf-8")] if os.path.exists(p) else None


rows = load("eval.jsonl")
rules = {r["line"]: r["score"] for r in load("rules.jsonl")}
learned = load("learned.jsonl")
tfidf = load("tfidf.jsonl")
detectors = {"rules": lambda i: rules[i]}
LT = 0.95  # the learned layer's own threshold (DEFAULT_LEARNED_THRESHOLD)
if learned:
    lp = {r["line"]: r["learned"] for r in learned}
    detectors["learned head at 0.5 (held out)"] = lambda i: lp[i]
    detectors["rules + learned at 0.95, as deployed (held out)"] = lambda i: max(rules[i], 1.0 if lp[i] >= LT else 0.0)
if tfidf:
    tp_ = {r["line"]: r["score"] for r in tfidf}
    detectors["TF-IDF + logistic regression (held out)"] = lambda i: tp_[i]


def metrics(idx, f):
    tp = sum(1 for i in idx if rows[i - 1]["label"] == 1 and f(i) >= T)
    fn = sum(1 for i in idx if rows[i - 1]["label"] == 1 and f(i) < T)
    fp = sum(1 for i in idx if rows[i - 1]["label"] == 0 and f(i) >= T)
    tn = sum(1 for i in idx if rows[i - 1]["label"] == 0 and f(i) < T)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return p, r, f1, fpr


folds = sorted({r["fold"] for r in rows})
print(f"Threshold {T} for every detector. Held out = scored by a model trained on the other fold only.\n")
print("| detector | rows scored | precision | recall | F1 | false-positive rate |")
print("|---|---|---:|---:|---:|---:|")
for name, f in detectors.items():
    for fold in folds + ["all"]:
        idx = [i + 1 for i, r in enumerate(rows) if fold == "all" or r["fold"] == fold]
        p, r, f1, fpr = metrics(idx, f)
        label = "both folds" if fold == "all" else f"fold {fold}"
        print(f"| {name} | {label} ({len(idx)}) | {p:.3f} | {r:.3f} | {f1:.3f} | {fpr:.3f} |")
print()
styles = sorted({r["style"] for r in rows})
print("Per style (both folds; benign rows: share flagged = false-positive rate; attack rows: recall):\n")
print("| style | rows | " + " | ".join(detectors) + " |")
print("|---|---:|" + "---:|" * len(detectors))
for s in styles:
    idx = [i + 1 for i, r in enumerate(rows) if r["style"] == s]
    cells = [f"{sum(1 for i in idx if f(i) >= T) / len(idx):.3f}" for f in detectors.values()]
    print(f"| {s} | {len(idx)} | " + " | ".join(cells) + " |")
split = load("learned_split.jsonl")
if split:
    sp = {r["line"]: r["learned"] for r in split}
    print("\nIn distribution (row-level split `split`, each half scored by a head trained on the other half):\n")
    print("| detector | precision | recall | F1 | false-positive rate |")
    print("|---|---:|---:|---:|---:|")
    idx = list(range(1, len(rows) + 1))
    for name, f in [("learned head at 0.5", lambda i: sp[i]),
                    ("rules + learned at 0.95, as deployed", lambda i: max(rules[i], 1.0 if sp[i] >= LT else 0.0)),
                    ("rules + learned at 0.8", lambda i: max(rules[i], 1.0 if sp[i] >= 0.8 else 0.0))]:
        p, r, f1, fpr = metrics(idx, f)
        print(f"| {name} | {p:.3f} | {r:.3f} | {f1:.3f} | {fpr:.3f} |")
obf = os.path.join(W, "obf")
if os.path.isdir(obf):
    print("\nObfuscation (the same attack rows, transformed; share detected):\n")
    names = sorted(n[:-len(".out.jsonl")] for n in os.listdir(obf) if n.endswith(".out.jsonl"))
    order = ["plain", "spaced", "zero-width", "base64", "leetspeak", "homoglyphs"]
    names = [n for n in order if n in names] + [n for n in names if n not in order]
    by = {}
    for n in names:
        res = [json.loads(l) for l in open(os.path.join(obf, n + ".out.jsonl"))]
        by[n] = (sum(r["flagged"] for r in res) / len(res), len(res))
    print("| transform | rows | detected |")
    print("|---|---:|---:|")
    for n in names:
        print(f"| {n} | {by[n][1]} | {by[n][0]:.3f} |")
