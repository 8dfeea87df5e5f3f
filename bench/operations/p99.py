#!/usr/bin/env python3
"""Gateway latency while the server's own checks run (issue 19).

Starts `aegis serve` (plain HTTP on 127.0.0.1, a fresh data directory, the bundled demo model), then measures
POST /v1/models/demo-fraud/predict latency from CLIENTS threads with keep-alive connections:

  idle   nothing else runs
  busy   `aegis model add` has just queued a data audit of a TRAIN_ROWS-row table, a robustness assessment and a
         membership-inference assessment; the server's worker runs them while the clients keep going, and only
         the requests sent until the last check ended count

and prints requests, p50, p99 and max per phase, and which checks ran during the busy window (from the runs'
start and end times). Usage:

  python3 bench/operations/p99.py --aegis target/release/aegis [--seconds 20] [--clients 4] [--train-rows 200000]
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROW = json.dumps({"rows": [{"amount": 24.5, "hour": 13, "merchant_risk": 0.1, "card_age_days": 400,
                            "foreign": 0, "n_tx_24h": 1}]})


def load(addr, key, seconds, clients):
    host, port = addr.split(":")
    lat, errors = [], [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            wall = time.time()
            try:
                conn.request("POST", "/v1/models/demo-fraud/predict", ROW,
                             {"authorization": f"Bearer {key}", "content-type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors[0] += 1
                    continue
            except Exception:
                errors[0] += 1
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                continue
            mine.append((wall, time.perf_counter() - t0))
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors[0] > len(lat) // 100:
        raise SystemExit(f"{errors[0]} of {len(lat)} requests failed: the measurement would be of errors")
    return lat, errors[0]


def summary(samples, errors=0, window=None):
    lat = sorted(l for (t, l) in samples if window is None or window[0] <= t <= window[1])
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    return {"requests": len(lat), "errors": errors, "p50_ms": pick(0.50), "p99_ms": pick(0.99),
            "max_ms": lat[-1] * 1000}


def tables(d, train_rows):
    ref = open(os.path.join(ROOT, "crates/gateway/assets/demo-fraud.reference.csv")).read().splitlines()
    header, rows = ref[0], ref[1:]
    rng = random.Random(7)
    with open(os.path.join(d, "train.csv"), "w") as f:
        f.write(header + "\n")
        for i in range(train_rows):
            cells = rows[rng.randrange(len(rows))].split(",")
            cells[0] = f"{float(cells[0]) * (0.9 + 0.2 * rng.random()):.2f}"
            f.write(",".join(cells) + "\n")
    with open(os.path.join(d, "test.csv"), "w") as f:
        f.write(header + "\n" + "\n".join(rows[1000:]) + "\n")
    shutil.copy(os.path.join(ROOT, "crates/gateway/assets/demo-fraud.onnx"), os.path.join(d, "model.onnx"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=os.path.join(ROOT, "target/release/aegis"))
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--train-rows", type=int, default=200000)
    ap.add_argument("--max-rows", type=int, default=1000, help="rows the robustness and privacy checks attack")
    args = ap.parse_args()
    aegis = os.path.abspath(args.aegis)
    d = tempfile.mkdtemp(prefix="aegis-p99-")
    os.makedirs(os.path.join(d, "data"), mode=0o700)
    tables(d, args.train_rows)
    with open(os.path.join(d, "aegis.toml"), "w") as f:
        # The demo key is created from [defaults]: no rate limit or budget gets in the way of the measurement.
        f.write('[server]\ndata_dir = "data"\nplaintext = true\nlisten = "127.0.0.1:0"\n\n'
                '[defaults]\nrate_per_sec = 1000000.0\nburst = 1000000\ndaily_budget = 0\nmonthly_budget = 0\n\n'
                '[key_ceilings]\nmax_rate_per_sec = 1000000.0\nmax_burst = 1000000\n\n'
                f'[checks]\nmax_rows = {args.max_rows}\n')
    server = subprocess.Popen([aegis, "serve", "--config", "aegis.toml"], cwd=d, stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True)
    addr = key = None
    for line in server.stderr:
        m = re.search(r"listening on http://(\S+)", line)
        addr = m.group(1) if m else addr
        k = re.search(r"(aeg_\S+)", line)
        key = k.group(1).strip("'") if k else key
        if "Ctrl-C" in line:
            break
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    try:
        time.sleep(2)  # the demo model's own first checks
        load(addr, key, 3, args.clients)  # warm-up
        idle = summary(*load(addr, key, args.seconds, args.clients))
        t0 = time.time()
        subprocess.run([aegis, "model", "add", "fraud", "model.onnx", "--train", "train.csv", "--test", "test.csv",
                        "--label", "label", "--no-wait", "--config", "aegis.toml"], cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        busy_samples, busy_errors = load(addr, key, args.seconds, args.clients)
        t1 = time.time()
        overlapped, last_end = [], t0
        for asset in ["fraud", "fraud-train", "fraud-test"]:
            out = subprocess.run([aegis, "check", "list", asset, "--format", "json", "--config", "aegis.toml"],
                                 cwd=d, check=True, capture_output=True, text=True).stdout
            for r in json.loads(out):
                end = r["finished"] or time.time()
                if r["started"] < t1 and end >= t0:
                    overlapped.append(f'{asset}:{r["kind"]} ({r["duration_ms"]} ms, {r["status"]})')
                    last_end = max(last_end, r["started"] + r["duration_ms"] / 1000 + 1)
        if last_end >= t1:
            raise SystemExit("the checks outlasted the busy phase: raise --seconds")
        # Only the requests sent while the checks ran (runs are timed to the second: the window is rounded up).
        busy = summary(busy_samples, busy_errors, (t0, last_end))
        print(f"clients {args.clients}, {args.seconds:.0f} s per phase, audit of {args.train_rows} rows, "
              f"assessments on {args.max_rows} rows")
        print(f"{'phase':<6} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, r in [("idle", idle), ("busy", busy)]:
            print(f"{name:<6} {r['requests']:>9} {r['errors']:>7} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                  f"{r['max_ms']:>8.2f}")
        print(f"busy = the {last_end - t0:.1f} s from `model add` until the last check ended: " + ", ".join(overlapped))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
