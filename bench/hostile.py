#!/usr/bin/env python3
"""Memory and time of foretell under hostile input sizes (issue 16, item 4), one case at a time.

Each case starts the release binary on 127.0.0.1, feeds it one large input and reads its memory
from /proc/PID/status: resident memory before the input, the peak (VmHWM) and after. The figure
to hold is the peak growth per MB of input. Cases:

  answer        a fake Prometheus answers the query with SERIES series of one point each
                (100,000 series: a 7.8 MB body, as in the red-team report)
  notification  one webhook notification of ALERTS alerts (60,000: 4 MB), then the audit
                records it wrote and the database size
  verify        `foretell audit verify` of a RECORDS-record log (240,000) written by
                `foretell audit bench`: peak RSS and time
  status        `GET /` with RECORDS alert records in the log: one request, then 8 at once

    cargo build --release
    python3 bench/hostile.py [--binary target/release/foretell] [--cases answer,notification,verify,status]

Loopback only; every case is bounded in size and time and stops foretell when it ends.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "bench:" + "42" * 32


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wait_http(url, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no answer from {url} within {seconds} s")


class Foretell:
    """The release binary with a configuration written into a scratch folder."""

    def __init__(self, binary, config_text, workdir):
        self.workdir = workdir
        with open(os.path.join(workdir, "audit.keys"), "w") as f:
            f.write(KEY + "\n")
        os.chmod(os.path.join(workdir, "audit.keys"), 0o600)
        with open(os.path.join(workdir, "hook.token"), "w") as f:
            f.write("bench\n")
        self.config = os.path.join(workdir, "foretell.yml")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.log = open(os.path.join(workdir, "foretell.log"), "w")
        wrapper = os.environ.get("FORETELL_WRAPPER", "").split()
        self.process = subprocess.Popen(wrapper + [binary, "run", "--config", self.config],
                                        stdout=self.log, stderr=self.log, cwd=workdir)

    def kib(self, field="VmRSS"):
        return status_kib(self.process.pid, field)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def report(name, input_bytes, before, peak, after, extra=""):
    mb = input_bytes / 1e6
    growth = (peak - before) / 1024
    print(f"{name:13} input {mb:6.1f} MB  RSS before {before / 1024:6.1f} MiB  peak {peak / 1024:7.1f} MiB"
          f"  after {after / 1024:7.1f} MiB  peak growth {growth / mb:5.1f} MiB per MB of input {extra}",
          flush=True)


def case_answer(binary, series):
    values = [f'{{"metric":{{"__name__":"hostile","instance":"i{i:06d}","job":"bench"}},'
              f'"values":[[{{t}},"1"]]}}' for i in range(series)]
    template = '{"status":"success","data":{"resultType":"matrix","result":[' + ",".join(values) + "]}}"

    class Prometheus(BaseHTTPRequestHandler):
        served = 0

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            now = int(time.time()) // 60 * 60
            body = template.replace("{t}", str(now)).encode()
            Prometheus.served = len(body)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    port, foretell_port = free_port(), free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Prometheus)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="foretell-hostile-") as workdir:
        foretell = Foretell(binary, f"""prometheus:
  url: http://127.0.0.1:{port}
  timeout: 30s
server:
  listen_address: 127.0.0.1:{foretell_port}
queries:
  - name: hostile
    expr: hostile
    step: 1m
    history: 1h
    evaluation_interval: 1h
""", workdir)
        try:
            wait_http(f"http://127.0.0.1:{foretell_port}/-/healthy")
            before = foretell.kib()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and b"foretell_cycles_total{query=\"hostile\"} 1" not in \
                    urllib.request.urlopen(f"http://127.0.0.1:{foretell_port}/metrics", timeout=30).read():
                time.sleep(0.5)
            time.sleep(2)
            report("answer", Prometheus.served, before, foretell.kib("VmHWM"), foretell.kib(),
                   f"({series} series)")
        finally:
            foretell.stop()
            server.shutdown()


def notification(alerts):
    items = [{"status": "firing", "labels": {"alertname": "Flood", "i": f"{i:06d}"},
              "startsAt": "2026-12-01T00:00:00Z", "fingerprint": f"{i:08x}"} for i in range(alerts)]
    return json.dumps({"version": "4", "status": "firing", "receiver": "foretell", "groupKey": "g",
                       "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "", "alerts": items}, separators=(",", ":")).encode()


def alerts_config(foretell_port, receiver_port):
    return f"""prometheus:
  url: http://127.0.0.1:9
  timeout: 1s
server:
  listen_address: 127.0.0.1:{foretell_port}
audit:
  path: audit.db
  key_file: audit.keys
alerts:
  bearer_token_file: hook.token
  max_body_bytes: 16777216
  on_demand: {{enabled: false}}
  receivers:
    - name: sink
      url: http://127.0.0.1:{receiver_port}/hook
  routes:
    - receiver: sink
queries:
  - name: idle
    expr: idle
"""


def sink():
    class Sink(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return port, server


def post(url, body):
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "content-type": "application/json", "authorization": "Bearer bench"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status


def records(binary, workdir):
    shown = subprocess.run([binary, "audit", "report", "--db", "audit.db"], cwd=workdir,
                           capture_output=True, text=True, timeout=120).stdout
    return shown


def case_notification(binary, alerts):
    body = notification(alerts)
    receiver_port, server = sink()
    foretell_port = free_port()
    with tempfile.TemporaryDirectory(prefix="foretell-hostile-") as workdir:
        foretell = Foretell(binary, alerts_config(foretell_port, receiver_port), workdir)
        try:
            wait_http(f"http://127.0.0.1:{foretell_port}/-/healthy")
            before = foretell.kib()
            assert post(f"http://127.0.0.1:{foretell_port}/alertmanager/webhook", body) == 200
            deadline = time.monotonic() + 120
            metrics = b""
            while time.monotonic() < deadline and b'outcome="delivered"} 1' not in metrics:
                time.sleep(0.5)
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{foretell_port}/metrics").read()
            peak, after = foretell.kib("VmHWM"), foretell.kib()
        finally:
            foretell.stop()
            server.shutdown()
        count = sum(int(line.split()[-1]) for line in records(binary, workdir).splitlines()
                    if line.strip() and line.split()[-1].isdigit())
        size = sum(os.path.getsize(os.path.join(workdir, f)) for f in os.listdir(workdir)
                   if f.startswith("audit.db"))
        report("notification", len(body), before, peak, after,
               f"({alerts} alerts; {count} audit records, {size / 1e6:.1f} MB of database)")


def case_verify(binary, count):
    with tempfile.TemporaryDirectory(prefix="foretell-hostile-") as workdir:
        subprocess.run([binary, "audit", "bench", "--dir", workdir, "--records", str(count)],
                       check=True, capture_output=True, timeout=600)
        keys = os.path.join(workdir, "keys")
        with open(keys, "w") as f:
            f.write(KEY + "\n")
        db = os.path.join(workdir, "bench-batched.db")
        # GNU time reports the child's own peak (a forked Python's would count the parent's).
        timed = subprocess.run(["/usr/bin/time", "-f", "%e %M", binary, "audit", "verify", "--db", db,
                                "--key-file", keys], capture_output=True, text=True, timeout=600)
        seconds, peak_kib = timed.stderr.split()[-2:]
        print(f"verify        {count} records ({os.path.getsize(db) / 1e6:.1f} MB): peak RSS "
              f"{int(peak_kib) / 1024:.1f} MiB, {float(seconds):.2f} s, exit {timed.returncode}",
              flush=True)


def case_status(binary, count):
    receiver_port, server = sink()
    foretell_port = free_port()
    per_notification = 100
    with tempfile.TemporaryDirectory(prefix="foretell-hostile-") as workdir:
        foretell = Foretell(binary, alerts_config(foretell_port, receiver_port), workdir)
        try:
            base = f"http://127.0.0.1:{foretell_port}"
            wait_http(f"{base}/-/healthy")
            for n in range(count // per_notification):
                body = notification(per_notification).replace(b'"groupKey":"g"', f'"groupKey":"g{n}"'.encode())
                assert post(f"{base}/alertmanager/webhook", body) == 200
            deadline = time.monotonic() + 600
            want = f'outcome="delivered"}} {count // per_notification}'.encode()
            while time.monotonic() < deadline and want not in urllib.request.urlopen(f"{base}/metrics").read():
                time.sleep(1)

            def get(_):
                started = time.monotonic()
                urllib.request.urlopen(f"{base}/", timeout=60).read()
                return time.monotonic() - started

            single = get(0)
            with ThreadPoolExecutor(8) as pool:
                started = time.monotonic()
                parallel = list(pool.map(get, range(8)))
                wall = time.monotonic() - started
            print(f"status        GET / with {count} alert records: {single * 1000:.0f} ms alone; 8 at once "
                  f"{wall * 1000:.0f} ms in all (slowest {max(parallel) * 1000:.0f} ms)", flush=True)
        finally:
            foretell.stop()
            server.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default="target/release/foretell")
    parser.add_argument("--cases", default="answer,notification,verify,status")
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=60_000)
    parser.add_argument("--records", type=int, default=240_000)
    parser.add_argument("--status-records", type=int, default=100_000)
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")
    args.binary = os.path.abspath(args.binary)
    for case in args.cases.split(","):
        if case == "answer":
            case_answer(args.binary, args.series)
        elif case == "notification":
            case_notification(args.binary, args.alerts)
        elif case == "verify":
            case_verify(args.binary, args.records)
        elif case == "status":
            case_status(args.binary, args.status_records)
        else:
            sys.exit(f"unknown case {case}")


if __name__ == "__main__":
    main()
