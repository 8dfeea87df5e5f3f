"""Summarise a bench/gateway.sh run as Markdown (stdout).

Reads WORK/runs.jsonl (one wrk `RESULT` line per run), the gateways' /metrics scrapes, `aegis audit-log
verify --format json` outputs and the audit-log row counts by status. Medians are taken over the rounds.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from datetime import datetime, timezone

ROUTE = "/upstream/{name}/{*rest}"
TARGET_MS_ADDED = 0.5
TARGET_RATIO = 0.80


def cmd(*args):
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=20)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine():
    model = "?"
    for line in cmd("lscpu").splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    return f"{os.cpu_count()} CPUs ({cmd('nproc')} usable), {model}, Linux {platform.release()}"


def metrics(path):
    """Prometheus text -> {(name, frozenset(labels)): value}."""
    out = {}
    if not os.path.exists(path):
        return out
    pat = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
    lab = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            m = pat.match(line.strip())
            if not m:
                continue
            labels = frozenset(lab.findall(m.group(3) or ""))
            try:
                out[(m.group(1), labels)] = float(m.group(4))
            except ValueError:
                pass
    return out


def route_requests(samples):
    """Answered requests on the proxy route, by status."""
    by = {}
    for (name, labels), v in samples.items():
        d = dict(labels)
        if name == "aegis_requests_total" and d.get("route") == ROUTE:
            by[d.get("status", "?")] = by.get(d.get("status", "?"), 0) + int(v)
    return by


def overhead_mean_ms(samples):
    s = n = None
    for (name, labels), v in samples.items():
        d = dict(labels)
        if d.get("route") != ROUTE:
            continue
        if name == "aegis_gateway_overhead_seconds_sum":
            s = v
        elif name == "aegis_gateway_overhead_seconds_count":
            n = v
    return s / n * 1e3 if s is not None and n else None


def audit_counts(path):
    by = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "|" in line:
                    status, count = line.strip().split("|")
                    by[status] = int(count)
    return by


def verify(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cpu_per_request(work, runs):
    """CPU time and context switches per request of the nginx proxy worker and the gateway process."""
    def load(name):
        out = {}
        try:
            with open(os.path.join(work, name)) as f:
                for line in f:
                    d = json.loads(line)
                    out[d["process"]] = d
        except (OSError, ValueError, KeyError):
            pass
        return out
    before, after = load("cpu-before.jsonl"), load("cpu-after.jsonl")
    text = []
    for proc, label in (("nginx", "nginx proxy worker"), ("gateway", "aegis serve")):
        if proc not in before or proc not in after:
            continue
        n = sum(r["requests"] for r in runs if r["target"] == proc and r["mode"] in ("latency", "throughput"))
        if not n:
            continue
        b, e = before[proc], after[proc]
        cpu_us = (e["ticks"] - b["ticks"]) / b["hz"] * 1e6 / n
        sw = (e["ctxt_switches"] - b["ctxt_switches"]) / n
        text.append(f"{label} {cpu_us:.0f} µs and {sw:.1f} context switches ({n:,} requests)")
    return text


def med(values):
    return statistics.median(values) if values else float("nan")


def ms(us):
    return f"{us / 1000:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--aegis", required=True)
    ap.add_argument("--aegis-label", default="target/release/aegis")
    ap.add_argument("--pin", default="1")
    ap.add_argument("--repeat", default="3")
    ap.add_argument("--duration", default="10")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--soak-seconds", default="60")
    ap.add_argument("--warmup", default="3")
    ap.add_argument("--budget", type=int, default=0)
    a = ap.parse_args()

    runs = []
    with open(os.path.join(a.work, "runs.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))

    def pick(target, mode, field):
        return [r[field] for r in runs if r["target"] == target and r["mode"] == mode]

    names = {
        "direct": "trivial upstream, direct (nginx `return 200`)",
        "nginx": "nginx 1 worker proxying it (keepalive pool)",
        "gateway": "`aegis serve` proxying it (key auth, rate limit"
        + (", day + month budgets" if a.budget > 0 else "") + ", audit, metrics)",
        "model": "`aegis serve` local model `demo-fraud` (POST predict, 1 row)",
    }
    row = {}
    for t in names:
        lat_p50 = med(pick(t, "latency", "p50_us"))
        lat_p99 = med(pick(t, "latency", "p99_us"))
        tp = med(pick(t, "throughput", "rps"))
        tp_p50 = med(pick(t, "throughput", "p50_us"))
        tp_p99 = med(pick(t, "throughput", "p99_us"))
        bad = sum(pick(t, "latency", "non2xx3xx")) + sum(pick(t, "throughput", "non2xx3xx"))
        errs = sum(
            sum(pick(t, m, k))
            for m in ("latency", "throughput")
            for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        )
        osum = sum(pick(t, "latency", "overhead_sum_ms"))
        on = sum(pick(t, "latency", "overhead_n"))
        row[t] = dict(lat_p50=lat_p50, lat_p99=lat_p99, tp=tp, tp_p50=tp_p50, tp_p99=tp_p99, bad=bad,
                      errs=errs, overhead=(osum / on if on else None),
                      rps_all=pick(t, "throughput", "rps"), p50_all=pick(t, "latency", "p50_us"))

    aegis_version = cmd(a.aegis, "--version")
    nginx_version = cmd("nginx", "-v").replace("nginx version: ", "")
    wrk_version = cmd("wrk", "--version").splitlines()[0] if cmd("wrk", "--version") else "?"
    wrk_version = wrk_version.split(" Copyright")[0]
    c = a.connections
    pin = ("wrk pinned to CPU 0, every server (both nginx instances, both gateways) to CPU 1 with `taskset`; "
           "nginx `worker_processes 1` each, the gateway's tokio runtime sees 1 CPU so it runs 1 worker thread"
           if a.pin == "1" else "no CPU pinning; nginx `worker_processes 1` each")

    out = []
    w = out.append
    w(f"# `aegis serve` load benchmark ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')})")
    w("")
    w(f"Machine: {machine()}. {wrk_version}; nginx {nginx_version}; {aegis_version} (`{a.aegis_label}`), "
      "SQLite database, plain HTTP on 127.0.0.1.")
    w(f"Method: {pin}. {a.warmup} s warm-up per target, then {a.repeat} rounds; each round runs every target "
      f"once with `wrk -t1 -c1 -d{a.duration}s --latency` (latency) and once with `wrk -t1 -c{c} -d{a.duration}s` "
      "(throughput), interleaved, so background load hits all targets alike. Values are medians over the rounds. "
      "Every request carries the same `Authorization: Bearer aeg_…` header.")
    w("")
    w(f"| target | p50 latency, c1 (ms) | p99 latency, c1 (ms) | throughput, c{c} (req/s) | p50 / p99 at c{c} (ms) | non-2xx / socket errors |")
    w("|---|---:|---:|---:|---:|---:|")
    for t, name in names.items():
        r = row[t]
        w(f"| {name} | {ms(r['lat_p50'])} | {ms(r['lat_p99'])} | {r['tp']:,.0f} | "
          f"{ms(r['tp_p50'])} / {ms(r['tp_p99'])} | {r['bad']} / {r['errs']} |")
    w("")

    added = (row["gateway"]["lat_p50"] - row["direct"]["lat_p50"]) / 1000
    added_nginx = (row["nginx"]["lat_p50"] - row["direct"]["lat_p50"]) / 1000
    ratio = row["gateway"]["tp"] / row["nginx"]["tp"] if row["nginx"]["tp"] else float("nan")
    gm = metrics(os.path.join(a.work, "gateway-metrics.txt"))
    gw_ans = route_requests(gm)
    gw_aud = audit_counts(os.path.join(a.work, "gateway-audit-status.txt"))
    gw_ver = verify(os.path.join(a.work, "gateway-verify.json"))

    sm = metrics(os.path.join(a.work, "soak-metrics.txt"))
    s_ans = route_requests(sm)
    s_aud = audit_counts(os.path.join(a.work, "soak-audit-status.txt"))
    s_ver = verify(os.path.join(a.work, "soak-verify.json"))
    soak = next((r for r in runs if r["mode"] == "soak"), None)

    def chain_ok(v):
        return bool(v) and v.get("problem") is None and v.get("records") == v.get("head_seq")

    def chain_text(v):
        if not v:
            return "verify gave no JSON"
        if v.get("problem") is None:
            return f"intact, {v.get('records')} records = head {v.get('head_seq')}"
        return f"BROKEN at {v['problem'].get('seq')}: {v['problem'].get('reason')}"

    def five(by):
        return sum(n for s, n in by.items() if str(s).startswith("5"))

    def yes(ok):
        return "pass" if ok else "**FAIL**"

    s_ans_n, s_aud_n = sum(s_ans.values()), sum(s_aud.values())
    gw_ans_n, gw_aud_n = sum(gw_ans.values()), sum(gw_aud.values())
    w("| check | target | measured | verdict |")
    w("|---|---|---|---|")
    w(f"| added median latency, gateway − direct (c1) | ≤ {TARGET_MS_ADDED} ms | {added:.3f} ms "
      f"(nginx proxy: {added_nginx:.3f} ms) | {yes(added <= TARGET_MS_ADDED)} |")
    w(f"| throughput, gateway / nginx (c{c}) | ≥ {TARGET_RATIO:.0%} | {ratio:.1%} "
      f"({row['gateway']['tp']:,.0f} / {row['nginx']['tp']:,.0f} req/s) | {yes(ratio >= TARGET_RATIO)} |")
    if soak:
        s5 = max(five(s_ans), five(s_aud))
        w(f"| soak {a.soak_seconds} s at c{soak['connections']}: audited proxy records = requests the gateway answered "
          f"| equal | {s_aud_n:,} audited, {s_ans_n:,} answered (/metrics), {soak['requests']:,} completed in wrk "
          f"({soak['rps']:,.0f} req/s) | {yes(s_aud_n == s_ans_n and s_ans_n > 0)} |")
        w(f"| soak: audit chain | intact | {chain_text(s_ver)} | {yes(chain_ok(s_ver))} |")
        w(f"| soak: 5xx | 0 | {s5} (statuses answered: {dict(sorted(s_ans.items()))}; wrk non-2xx "
          f"{soak['non2xx3xx']}, socket errors {soak['connect_errors'] + soak['read_errors'] + soak['write_errors']}, "
          f"timeouts {soak['timeouts']}) | {yes(s5 == 0)} |")
    w(f"| benchmark gateway (all rounds): audited proxy records = answered | equal | {gw_aud_n:,} audited, "
      f"{gw_ans_n:,} answered; chain {chain_text(gw_ver)} | {yes(gw_aud_n == gw_ans_n and chain_ok(gw_ver))} |")
    w("")
    ov = row["gateway"]["overhead"]
    ovm = overhead_mean_ms(gm)
    text = "Gateway overhead as it reports it (`x-aegis-overhead-ms`: total time minus the wait for the upstream): "
    text += f"mean {ov:.3f} ms over the c1 latency runs" if ov is not None else "header not seen in the c1 runs"
    if ovm is not None:
        text += (f"; mean {ovm:.3f} ms over every proxied request of the benchmark gateway "
                 "(`aegis_gateway_overhead_seconds` sum/count, loaded runs included)")
    w(text + ".")
    cpu = cpu_per_request(a.work, runs)
    if cpu:
        w("")
        w("CPU per request over the measured rounds (CPU 1, `/proc`): " + "; ".join(cpu) + ".")
    w("")
    w("Per round (p50 at c1 in ms; req/s at c" + str(c) + "): " + "; ".join(
        f"{t} " + ", ".join(ms(x) for x in row[t]["p50_all"]) + " | " +
        ", ".join(f"{x:,.0f}" for x in row[t]["rps_all"]) for t in names) + ".")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
