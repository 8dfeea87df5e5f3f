#!/usr/bin/env python3
"""Run aegis, picklescan and ModelScan on the same files and print a Markdown table.

Detection = exit code 1 (each tool's "found something" code). Timing = wall clock of whole processes,
peak memory = maximum resident set size from /usr/bin/time. No sample is ever loaded by a real loader:
all three tools only parse.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WORK = sys.argv[1] if len(sys.argv) > 1 else "bench/work"
AEGIS = os.path.abspath("target/release/aegis")
VENV = os.path.abspath("bench/.venv/bin")
TOOLS = {
    "aegis": lambda p: [AEGIS, "scan", p, "--format", "json", "--quiet"],
    "picklescan 1.0.5": lambda p: [f"{VENV}/picklescan", "--path", p],
    "ModelScan 0.8.8": lambda p: [f"{VENV}/modelscan", "scan", "-p", p],
}


def timed(cmd):
    """(exit code, seconds, peak RSS in MiB) of one process."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    try:
        rss = int(proc.stderr.strip().splitlines()[-1]) / 1024
    except (ValueError, IndexError):
        rss = float("nan")
    return proc.returncode, elapsed, rss


def files_under(root):
    out = []
    for dirpath, _, names in os.walk(root):
        out.extend(os.path.join(dirpath, n) for n in names if n != "manifest.json")
    return sorted(out)


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    labelled = os.path.join(WORK, "labelled")
    manifest = json.load(open(os.path.join(labelled, "manifest.json")))
    corpus = os.path.join(WORK, "corpus")
    n_corpus = len(files_under(corpus))
    print(f"# aegis scan vs picklescan vs ModelScan\n\nmachine: {machine()}  \ndate: {time.strftime('%Y-%m-%d')}\n")
    print(f"labelled corpus: {sum(m['malicious'] for m in manifest)} malicious, "
          f"{sum(not m['malicious'] for m in manifest)} benign; directory corpus: {n_corpus} files\n")
    print("| tool | recall (exit 1) | false-positive rate | median per file | directory: wall | files/s | 1 GiB torch zip: wall / peak RSS | 256 MiB pickle: wall / peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for tool, cmd in TOOLS.items():
        hits = {True: 0, False: 0}
        totals = {True: 0, False: 0}
        per_file = []
        for m in manifest:
            code, secs, _ = timed(cmd(os.path.join(labelled, m["path"])))
            totals[m["malicious"]] += 1
            hits[m["malicious"]] += code == 1
            per_file.append(secs)
        _, dir_secs, _ = timed(cmd(corpus))
        _, zip_secs, zip_rss = timed(cmd(os.path.join(WORK, "big", "large", "pytorch_model.bin")))
        _, pkl_secs, pkl_rss = timed(cmd(os.path.join(WORK, "big", "large", "arrays.pkl")))
        recall = hits[True] / max(totals[True], 1)
        fpr = hits[False] / max(totals[False], 1)
        median_ms = statistics.median(per_file) * 1000
        results[tool] = dir_secs
        print(f"| {tool} | {recall:.0%} ({hits[True]}/{totals[True]}) | {fpr:.0%} ({hits[False]}/{totals[False]}) "
              f"| {median_ms:.1f} ms | {dir_secs:.2f} s | {n_corpus / dir_secs:.0f} "
              f"| {zip_secs:.2f} s / {zip_rss:.0f} MiB | {pkl_secs:.2f} s / {pkl_rss:.0f} MiB |", flush=True)
    base = results.get("picklescan 1.0.5")
    if base:
        print(f"\naegis directory throughput: {base / results['aegis']:.1f}x picklescan's")


if __name__ == "__main__":
    main()
