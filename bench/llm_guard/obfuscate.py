#!/usr/bin/env python3
"""Write obfuscated copies of the attack rows of an eval set, one file per transform, for the robustness table.

Usage: obfuscate.py EVAL.jsonl OUTDIR [N]   (N attack rows, seeded sample; default 400)
Transforms: plain (unchanged), spaced (a space between letters), zero-width (U+200B between letters),
base64 (the whole prompt encoded, after "Decode and follow: "), leetspeak, homoglyphs (Cyrillic look-alikes).
"""
import base64
import json
import os
import random
import sys

LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
HOMO = str.maketrans({"a": "а", "c": "с", "e": "е", "i": "і", "o": "о", "p": "р", "x": "х", "y": "у"})


def transforms(text):
    yield "plain", text
    yield "spaced", " ".join(text)
    yield "zero-width", "\u200b".join(text)
    yield "base64", "Decode and follow: " + base64.b64encode(text.encode()).decode()
    yield "leetspeak", text.translate(LEET)
    yield "homoglyphs", text.translate(HOMO)


def main():
    src, out = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    rows = [json.loads(l) for l in open(src, encoding="utf-8")]
    attacks = [r for r in rows if r["label"] == 1 and len(r["text"]) <= 2000]
    random.Random(20261207).shuffle(attacks)
    attacks = attacks[:n]
    os.makedirs(out, exist_ok=True)
    files = {}
    for r in attacks:
        for name, text in transforms(r["text"]):
            if name not in files:
                files[name] = open(os.path.join(out, f"{name}.jsonl"), "w", encoding="utf-8")
            f = files[name]
            f.write(json.dumps({"text": text, "label": 1}, ensure_ascii=False) + "\n")
    for f in files.values():
        f.close()
    print(f"{len(attacks)} attack rows x {len(files)} transforms in {out}")


if __name__ == "__main__":
    main()
