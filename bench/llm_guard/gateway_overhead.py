#!/usr/bin/env python3
"""The gateway's own time per chat request (its `x-aegis-overhead-ms` header: everything but waiting for the
upstream) with the LLM guard off, on with the rules (the default), and on with the learned layer, against a stub
OpenAI server that answers at once. Sequential requests on one keep-alive connection, so the figures are
per-request latency, not throughput.

Usage: gateway_overhead.py AEGIS EVAL.jsonl WORKDIR [--minilm DIR] [--requests N]
Prompts: the first N benign questions and N/4 attacks of the eval set, in a fixed interleaving.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        req = json.loads(body or b"{}")
        out = json.dumps({"id": "b", "object": "chat.completion", "model": req.get("model"),
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Your order ships on Monday."},
                                       "finish_reason": "stop"}]}).encode()
        # One write: headers and body in separate segments meet Nagle and delayed ACK (40 ms stalls), which
        # the guard (reading the whole answer) would be charged with.
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(out)}\r\n\r\n"
        self.wfile.write(head.encode() + out)

    def log_message(self, *a):
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(aegis, work, name, guard, prompts, upstream_port):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cfg = os.path.join(d, "aegis.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
plaintext = true
demo_model = false

[[upstream]]
name = "llm"
url = "http://127.0.0.1:{upstream_port}"
protocol = "openai"
models = ["gpt-bench"]
max_concurrency = 64
{guard}
""")
    data = os.path.join(d, "data")
    key = subprocess.run([aegis, "key", "create", "--data-dir", data, "--config", cfg, "--name", "bench", "--owner",
                          "bench", "--model", "gpt-bench", "--rate", "1000000", "--burst", "1000000", "--unbounded",
                          "--expires-days", "0"], check=True, capture_output=True, text=True).stdout.strip().split()[-1]
    port = free_port()
    srv = subprocess.Popen([aegis, "serve", "--plaintext", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                            "--config", cfg], stderr=open(os.path.join(d, "serve.log"), "w"))
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        over, statuses = [], {}
        for i, p in enumerate(prompts):
            body = json.dumps({"model": "gpt-bench", "messages": [{"role": "system", "content": "You are the support bot."},
                                                                 {"role": "user", "content": p}]})
            conn.request("POST", "/v1/chat/completions", body, {"authorization": f"Bearer {key}", "content-type": "application/json"})
            r = conn.getresponse()
            r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if i >= 20:  # warm-up
                over.append(float(r.getheader("x-aegis-overhead-ms")))
        over.sort()
        q = lambda x: over[min(len(over) - 1, int(round(x * (len(over) - 1))))]
        return dict(variant=name, n=len(over), p50=q(0.5), p99=q(0.99), mean=statistics.mean(over), statuses=statuses)
    finally:
        srv.terminate()
        srv.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("aegis")
    ap.add_argument("eval")
    ap.add_argument("work")
    ap.add_argument("--minilm")
    ap.add_argument("--requests", type=int, default=400)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.eval, encoding="utf-8")]
    benign = [r["text"] for r in rows if r["style"] == "benign-question" and len(r["text"]) < 400]
    attacks = [r["text"] for r in rows if r["label"] == 1 and len(r["text"]) < 400]
    prompts = []
    for i in range(a.requests):
        prompts.append(attacks[i % len(attacks)] if i % 5 == 4 else benign[i % len(benign)])
    stub = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    up = stub.server_address[1]
    variants = [
        ("guard off", '[upstream.llm_guard]\nmode = "off"\ncanary = "off"\npii_prompts = "off"\npii_answers = "off"'),
        ("guard on (rules, default)", ""),
    ]
    if a.minilm:
        variants.append(("guard on (rules + learned layer)", f'[upstream.llm_guard]\nmodel_dir = "{os.path.abspath(a.minilm)}"'))
    print("| variant | requests | overhead p50 (ms) | p99 (ms) | mean (ms) | statuses |")
    print("|---|---:|---:|---:|---:|---|")
    for i, (name, guard) in enumerate(variants):
        r = run(a.aegis, a.work, f"variant{i}", guard, prompts, up)
        print(f"| {name} | {r['n']} | {r['p50']:.3f} | {r['p99']:.3f} | {r['mean']:.3f} | {r['statuses']} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
