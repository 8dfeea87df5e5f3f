"""Time `aegis scan` file by file (one process per file, as a CI gate or a pre-commit hook runs it) and report
the median and worst wall-clock time and the largest resident memory of one process.

    python3 bench/scan/speed.py target/release/aegis DIR [DIR ...]

Nothing here loads a model; aegis only parses the files.
"""
import os
import resource
import statistics
import subprocess
import sys
import time


def files_under(roots):
    for root in roots:
        if os.path.isfile(root):
            yield root
            continue
        for dirpath, _, names in os.walk(root):
            for name in sorted(names):
                if name != "manifest.json":
                    yield os.path.join(dirpath, name)


def run_one(aegis, path):
    """Wall time and peak RSS (KiB) of one `aegis scan` process."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execv(aegis, [aegis, "scan", path, "--format", "json"])
    _, _, usage = os.wait4(pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss


def main():
    aegis, roots = sys.argv[1], sys.argv[2:]
    rows = [(p, *run_one(aegis, p)) for p in files_under(roots)]
    if not rows:
        sys.exit("no files to time")
    times = [t for _, t, _ in rows]
    worst = max(rows, key=lambda r: r[1])
    biggest = max(rows, key=lambda r: r[2])
    size = sum(os.path.getsize(p) for p, _, _ in rows)
    print(f"{len(rows)} files, {size / 1e6:.1f} MB: median {statistics.median(times) * 1e3:.1f} ms, "
          f"worst {worst[1] * 1e3:.1f} ms ({worst[0]}), largest RSS {biggest[2] / 1024:.1f} MiB ({biggest[0]})")


if __name__ == "__main__":
    main()
