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


def median_run(cmd, runs=3):
    """Median wall time (and the peak RSS of that run) over `runs` runs."""
    results = sorted(timed(cmd)[1:] for _ in range(runs))
    return results[len(results) // 2]


def main():
    labelled = os.path.join(WORK, "labelled")
    manifest = json.load(open(os.path.join(labelled, "manifest.json")))
    corpus = os.path.join(WORK, "corpus")
    mixed = os.path.join(WORK, "mixed")
    n_corpus = len(files_under(corpus))
    n_mixed = len(files_under(mixed))
    big_zip = os.path.join(WORK, "big", "large", "pytorch_model.bin")
    big_pkl = os.path.join(WORK, "big", "large", "arrays.pkl")
    print(f"# aegis scan vs picklescan vs ModelScan\n\nmachine: {machine()}  \ndate: {time.strftime('%Y-%m-%d')}\n")
    print(f"labelled corpus: {sum(m['malicious'] for m in manifest)} malicious, "
          f"{sum(not m['malicious'] for m in manifest)} benign (one process per file); "
          f"directory `corpus`: {n_corpus} files (copies of the labelled corpus); directory `mixed`: "
          f"{n_mixed} files (the same plus 100 realistic checkpoints: a 500-tensor PyTorch zip and a "
          f"64-array numpy pickle, 4 MiB each). Directory times are the median of 3 runs.\n")
    print("| tool | recall (exit 1) | false-positive rate | median per file | `corpus` wall (files/s) | `mixed` wall (files/s) | 1 GiB torch zip: wall / peak RSS | 256 MiB pickle: wall / peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    walls = {}
    for tool, cmd in TOOLS.items():
        hits = {True: 0, False: 0}
        totals = {True: 0, False: 0}
        per_file = []
        for m in manifest:
            code, secs, _ = timed(cmd(os.path.join(labelled, m["path"])))
            totals[m["malicious"]] += 1
            hits[m["malicious"]] += code == 1
            per_file.append(secs)
        corpus_secs, _ = median_run(cmd(corpus))
        mixed_secs, _ = median_run(cmd(mixed), runs=1 if tool.startswith("ModelScan") else 3)
        _, zip_secs, zip_rss = timed(cmd(big_zip))
        _, pkl_secs, pkl_rss = timed(cmd(big_pkl))
        walls[tool] = (corpus_secs, mixed_secs)
        recall = hits[True] / max(totals[True], 1)
        fpr = hits[False] / max(totals[False], 1)
        median_ms = statistics.median(per_file) * 1000
        print(f"| {tool} | {recall:.0%} ({hits[True]}/{totals[True]}) | {fpr:.0%} ({hits[False]}/{totals[False]}) "
              f"| {median_ms:.1f} ms | {corpus_secs:.2f} s ({n_corpus / corpus_secs:.0f}) "
              f"| {mixed_secs:.2f} s ({n_mixed / mixed_secs:.0f}) "
              f"| {zip_secs:.2f} s / {zip_rss:.0f} MiB | {pkl_secs:.2f} s / {pkl_rss:.0f} MiB |", flush=True)
    base = walls.get("picklescan 1.0.5")
    if base:
        a = walls["aegis"]
        print(f"\naegis vs picklescan, directory throughput: {base[0] / a[0]:.1f}x on `corpus`, "
              f"{base[1] / a[1]:.1f}x on `mixed`; per-file process: "
              "see the median column.")


if __name__ == "__main__":
    main()
