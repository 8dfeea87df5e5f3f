#!/usr/bin/env python3
"""False alarms of `aegis scan` on real trees (issue 17): findings by severity, and every high or critical one.

Usage: real_trees.py AEGIS_BIN TREE [TREE ...] [--label NAME] [--show N]
Each TREE is scanned as a directory with `--format json`; prints one line per tree (files, seconds, findings by
severity), then up to --show high/critical findings grouped by rule and directory, so the reader can judge them.

Trees used for docs/BENCHMARKS.md (build them yourself; none is committed):
  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy scikit-learn transformers torch mlflow-skinny pandas
  an MLflow model folder: mlflow.sklearn.save_model(LogisticRegression().fit(X, y), "/tmp/mlflow_model",
      serialization_format="cloudpickle")
  source checkouts: the scikit-learn and transformers sdists from PyPI, unpacked; this repository's crates/.
"""
import argparse
import collections
import json
import subprocess
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("aegis")
    p.add_argument("trees", nargs="+")
    p.add_argument("--show", type=int, default=40)
    a = p.parse_args()
    for tree in a.trees:
        started = time.time()
        out = subprocess.run([a.aegis, "scan", tree, "--format", "json", "-q"], capture_output=True)
        took = time.time() - started
        if out.returncode == 2:
            print(f"{tree}: error: {out.stderr.decode().strip()}")
            continue
        report = json.loads(out.stdout)
        sev = collections.Counter(f["severity"] for f in report["findings"])
        files = report.get("metrics", {}).get("files")
        print(f"{tree}: files={files} s={took:.1f} exit={out.returncode} "
              + " ".join(f"{k}={sev.get(k, 0)}" for k in ["critical", "high", "medium", "low", "info"]))
        groups = collections.Counter()
        for f in report["findings"]:
            if f["severity"] not in ("high", "critical"):
                continue
            loc = f["location"]
            path = loc if isinstance(loc, str) else loc.get("path", "")
            directory = path.rsplit("/", 1)[0].replace(tree.rstrip("/"), "", 1)
            groups[(f["severity"], f["rule"], directory)] += 1
        for (severity, rule, directory), n in groups.most_common(a.show):
            print(f"    {n:4d} {severity:8s} {rule} {directory}")


if __name__ == "__main__":
    main()
