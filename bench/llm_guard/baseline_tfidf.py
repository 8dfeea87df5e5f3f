#!/usr/bin/env python3
"""The usual quick baseline: TF-IDF (word 1-2 grams + character 3-5 grams) and logistic regression, trained on one
fold of the eval set and scored on the other (the same by-package split as `aegis llm train-head --fold-field`).

Usage: baseline_tfidf.py EVAL.jsonl SCORES_OUT.jsonl      (needs scikit-learn)
Writes {"line", "fold", "label", "score"} per row, each scored by the model that did not see its fold.
"""
import json
import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union


def main():
    rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
    out = open(sys.argv[2], "w")
    t0 = time.time()
    for fold in sorted({r["fold"] for r in rows}):
        train = [r for r in rows if r["fold"] != fold]
        model = make_pipeline(
            make_union(
                TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=200_000, sublinear_tf=True),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, max_features=200_000, sublinear_tf=True),
            ),
            LogisticRegression(max_iter=2000, class_weight="balanced"),
        )
        model.fit([r["text"] for r in train], [r["label"] for r in train])
        idx = [i for i, r in enumerate(rows) if r["fold"] == fold]
        t = time.time()
        scores = model.predict_proba([rows[i]["text"] for i in idx])[:, 1]
        per = (time.time() - t) / max(len(idx), 1)
        for i, s in zip(idx, scores):
            out.write(json.dumps({"line": i + 1, "fold": fold, "label": rows[i]["label"], "score": float(s)}) + "\n")
        print(f"fold {fold}: trained on {len(train)}, scored {len(idx)} at {per * 1e3:.3f} ms/prompt", file=sys.stderr)
    print(f"total {time.time() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
