#!/usr/bin/env python3
"""Soak: foretell against a misbehaving Prometheus for a bounded time, memory sampled.

A fake Prometheus on 127.0.0.1 answers query_range with valid series most of the time and,
in a fixed rotation, with a body trickled a byte at a time, a hang, an HTML 502 from a proxy,
truncated JSON and status "error". foretell runs with a 1 s Prometheus timeout, a 5 s step and a
2 s evaluation interval; every SAMPLE seconds the script reads foretell's resident memory
(/proc/PID/status) and its failure counters. At the end it prints the samples and the growth of
resident memory between the first minute and the end.

    cargo build --release
    python3 bench/soak.py --seconds 600 --series 200

Loopback only; bounded by --seconds; foretell is stopped on exit, whatever happens.
"""

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# One answer kind per request, in this rotation: about half valid, the rest faults. Faults
# that are retried come in pairs, so that the retry fails too and the cycle fails.
ROTATION = ["ok", "ok", "trickle", "trickle", "ok", "ok", "hang", "hang", "ok", "ok",
            "html502", "html502", "ok", "truncated", "ok", "error"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakePrometheus(BaseHTTPRequestHandler):
    series = 200
    counter = 0
    lock = threading.Lock()
    served = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.answer(urllib.parse.urlparse(self.path).query)

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        self.answer(self.rfile.read(length).decode())

    def answer(self, query_string):
        params = dict(urllib.parse.parse_qsl(query_string))
        with FakePrometheus.lock:
            kind = ROTATION[FakePrometheus.counter % len(ROTATION)]
            FakePrometheus.counter += 1
            FakePrometheus.served[kind] = FakePrometheus.served.get(kind, 0) + 1
        try:
            getattr(self, "answer_" + kind)(params)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def body(self, params):
        start, end = float(params["start"]), float(params["end"])
        step = float(params["step"])
        expr = params.get("query", "")
        # A history batch restricts the selector to some instances: instance=~"i1|i2|...".
        wanted = None
        if 'instance=~"' in expr:
            wanted = set(expr.split('instance=~"', 1)[1].split('"', 1)[0].split("|"))
        result = []
        for i in range(FakePrometheus.series):
            instance = f"i{i}"
            if wanted is not None and instance not in wanted:
                continue
            values = []
            t = start
            while t <= end:
                v = 100 + 20 * math.sin(2 * math.pi * t / 3600 + i) + (i % 7)
                values.append([t, f"{v:.3f}"])
                t += step
            result.append({"metric": {"__name__": "soak", "job": "soak", "instance": instance},
                           "values": values})
        return json.dumps({"status": "success",
                           "data": {"resultType": "matrix", "result": result}}).encode()

    def send(self, status, content_type, payload):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def answer_ok(self, params):
        self.send(200, "application/json", self.body(params))

    def answer_trickle(self, params):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(1 << 20))
        self.end_headers()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(0.05)

    def answer_hang(self, params):
        time.sleep(5)

    def answer_html502(self, params):
        self.send(502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>")

    def answer_truncated(self, params):
        payload = self.body(params)
        self.send(200, "application/json", payload[: len(payload) // 2] or b"{")

    def answer_error(self, params):
        self.send(422, "application/json", json.dumps(
            {"status": "error", "errorType": "execution",
             "error": "query processing would load too many samples into memory"}).encode())


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def failures(metrics_url):
    counts = {}
    try:
        text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    except OSError:
        return counts
    for line in text.splitlines():
        if line.startswith("foretell_query_failures_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            counts[reason] = counts.get(reason, 0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith("foretell_query_retries_total{"):
            counts["retries"] = counts.get("retries", 0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith("foretell_cycles_skipped_total{"):
            counts["cycles_skipped"] = counts.get("cycles_skipped", 0) + float(line.rsplit(" ", 1)[1])
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--sample", type=int, default=10, help="seconds between samples")
    parser.add_argument("--binary", default="target/release/foretell")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")

    FakePrometheus.series = args.series
    prometheus_port, foretell_port = free_port(), free_port()
    server = ThreadingHTTPServer(("127.0.0.1", prometheus_port), FakePrometheus)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    workdir = tempfile.mkdtemp(prefix="foretell-soak-")
    config = os.path.join(workdir, "foretell.yml")
    with open(config, "w") as f:
        f.write(f"""prometheus:
  url: http://127.0.0.1:{prometheus_port}
  timeout: 1s
  max_concurrent_requests: 2
  retry:
    max_attempts: 2
    initial_backoff: 100ms
    max_backoff: 500ms
server:
  listen_address: 127.0.0.1:{foretell_port}
queries:
  - name: soak
    expr: soak
    step: 5s
    history: 1h
    evaluation_interval: 2s
    model:
      seasonality: none
""")
    log = open(os.path.join(workdir, "foretell.log"), "w")
    process = subprocess.Popen([args.binary, "run", "--config", config], stdout=log, stderr=log)
    metrics_url = f"http://127.0.0.1:{foretell_port}/metrics"
    samples = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            time.sleep(args.sample)
            if process.poll() is not None:
                sys.exit(f"foretell exited with {process.returncode}; log in {workdir}")
            elapsed = time.monotonic() - started
            samples.append((elapsed, rss_kib(process.pid), failures(metrics_url)))
            nonzero = {k: int(v) for k, v in samples[-1][2].items() if v}
            print(f"{elapsed:6.0f} s  RSS {samples[-1][1] / 1024:7.1f} MiB  {nonzero}", flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        server.shutdown()

    after_warmup = [rss for elapsed, rss, _ in samples if elapsed >= 60] or [samples[0][1]]
    print()
    print(f"answers served: {dict(sorted(FakePrometheus.served.items()))}")
    print(f"RSS after the first minute: {after_warmup[0] / 1024:.1f} MiB, "
          f"at the end: {after_warmup[-1] / 1024:.1f} MiB, "
          f"max: {max(after_warmup) / 1024:.1f} MiB, "
          f"growth: {(after_warmup[-1] - after_warmup[0]) / 1024:+.1f} MiB")
    print(f"exit code {process.returncode}; log in {workdir}")


if __name__ == "__main__":
    main()
