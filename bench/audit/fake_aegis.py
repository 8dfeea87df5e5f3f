"""Stand-in for `aegis audit` to test the benchmark harness before the CLI exists.

Usage: fake_aegis.py audit FILE --label COL --flags F.csv [--format json] [-q]
Writes a flags file in the documented contract (`row,score,flagged,kinds`) flagging a seeded random 3% of rows
with a random kind, and an empty JSON report on stdout.
"""

import csv
import json
import random
import sys


def main():
    args = sys.argv[1:]
    if not args or args[0] != "audit":
        raise SystemExit(__doc__)
    path = args[1]
    flags = args[args.index("--flags") + 1]
    with open(path, newline="") as f:
        n = sum(1 for _ in csv.reader(f)) - 1
    rng = random.Random(0)
    kinds = ["label", "outlier", "duplicate", "near-duplicate", "conflict", "new", "backdoor"]
    with open(flags, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["row", "score", "flagged", "kinds"])
        for i in range(n):
            s = rng.random()
            flagged = s > 0.97
            w.writerow([i, f"{s:.4f}", int(flagged), ";".join(rng.sample(kinds, 2)) if flagged else ""])
    json.dump({"tool": "fake", "findings": []}, sys.stdout)


if __name__ == "__main__":
    main()
