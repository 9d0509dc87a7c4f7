#!/usr/bin/env bash
# Measures foretell's evaluation cycle against a real local Prometheus (Debian's package):
# N synthetic series (default 1,000) with 2 days of 1-minute history, continued live by
# recording rules. Reports the cold cycle (discover the series, load their history in batches
# and fit them, pipelined; with foretell's CPU for it) against the time Prometheus alone takes
# to serve the same batches (once before foretell starts, once after it), and the steady cycles
# that follow (fetch the new minute, score; refits staggered).
#
#   bench/cycle.sh [SERIES] [SECONDS_TO_RUN] [REFIT_INTERVAL]   e.g. bench/cycle.sh 1000 200 5m
#   COMPRESSION=gzip bench/cycle.sh ...    foretell asks Prometheus for gzip (prometheus.compression)
#   REMOTE_READ=off bench/cycle.sh ...     history through query_range only (prometheus.remote_read)
#   FORETELL=path/to/foretell bench/cycle.sh ...   measures another build (no cargo build)
#
# Also reports foretell's CPU use over the steady phase (from the end of the cold cycle on),
# as a share of one core.
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:-1000}
run_secs=${2:-200}
refit=${3:-5m}
work=$(mktemp -d /tmp/foretell-bench.XXXXXX)
source bench/demo-prometheus.sh
prom_port=$(free_port)
foretell_port=$(free_port)
bench_begin
start_demo_prometheus "$work" "$prom_port" "$series"

# Prometheus alone: the same history requests as foretell's cold load (batches of 100 series on
# the instance label, two in flight), bodies read but not parsed. Run once before foretell
# starts, so that foretell's cold cycle and the run after it both find Prometheus' page cache
# warm (the backfill has just written the blocks; whether they are still cached depends on the
# machine's memory), and once after it; both are reported.
prometheus_alone() {
  local when=$1
  shift
  python3 - "http://127.0.0.1:$prom_port" "$series" "${pids[0]}" "$when" "$@" <<'PY'
import concurrent.futures, json, os, sys, time, urllib.parse, urllib.request
base, series, prometheus_pid, when, encodings = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
def prometheus_cpu():
    fields = open(f"/proc/{prometheus_pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
query = lambda expr, **extra: json.load(urllib.request.urlopen(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr, **extra})))
# The backfill ends a minute before it started, and it takes minutes: look back an hour.
instances = sorted(r["metric"]["instance"] for r in query("last_over_time(demo_requests_per_second[1h])")["data"]["result"])
end = int(time.time()) // 60 * 60
start = end - 2 * 86400
batches = [instances[i:i + 100] for i in range(0, len(instances), 100)]
def fetch(batch, encoding):
    expr = 'demo_requests_per_second{instance=~"%s"}' % "|".join(batch)
    data = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 60}).encode()
    request = urllib.request.Request(f"{base}/api/v1/query_range", data=data, headers={"Accept-Encoding": encoding})
    with urllib.request.urlopen(request) as response:
        return len(response.read())
for encoding in encodings:
    began, cpu = time.time(), prometheus_cpu()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        size = sum(pool.map(lambda b: fetch(b, encoding), batches))
    print(f"Prometheus alone {when}, {encoding}: {time.time() - began:.2f} s to serve {len(instances)} series in {len(batches)} requests ({size / 1e6:.1f} MB on the wire; Prometheus CPU {prometheus_cpu() - cpu:.2f} s)")
PY
}
prometheus_alone "before foretell" identity

cat > "$work/foretell.yml" <<YAML
prometheus:
  url: http://127.0.0.1:$prom_port
  timeout: 10s
  compression: ${COMPRESSION:-none}
  remote_read: ${REMOTE_READ:-auto}
server:
  listen_address: 127.0.0.1:$foretell_port
queries:
  - name: bench
    expr: demo_requests_per_second
    step: 1m
    history: 2d
    evaluation_interval: 15s
    model:
      seasonality: 1d
      refit_interval: $refit
YAML
prometheus_ticks() { awk '{print $14 + $15}' "/proc/${pids[0]}/stat"; }
prometheus_ticks_from=$(prometheus_ticks)
"$foretell" --log.format json --log.level foretell=debug,info run --config "$work/foretell.yml" 2>"$work/foretell.log" &
pids+=($!)
foretell_pid=${pids[1]}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$foretell_pid/stat"; }
for _ in $(seq 1 1200); do grep -q '"cycle finished"' "$work/foretell.log" 2>/dev/null && break; sleep 0.5; done
rss_cold_kib=$(awk '/VmRSS/ {print $2}' "/proc/$foretell_pid/status")
steady_from=$(date +%s.%N); ticks_from=$(cpu_ticks)
# Up to the poll above (every 0.5 s): foretell's CPU for the cold cycle, start-up included.
python3 -c "print(f'CPU up to the end of the cold cycle: foretell {$ticks_from / $(getconf CLK_TCK):.2f} s, Prometheus {($(prometheus_ticks) - $prometheus_ticks_from) / $(getconf CLK_TCK):.2f} s')"
sleep "$run_secs"
steady_to=$(date +%s.%N); ticks_to=$(cpu_ticks)
python3 -c "print(f'steady phase CPU: {($ticks_to - $ticks_from) / $(getconf CLK_TCK) / ($steady_to - $steady_from) * 100:.1f} % of one core over {$steady_to - $steady_from:.0f} s')"
curl -fsS "http://127.0.0.1:$foretell_port/metrics" > "$work/metrics.txt"
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/${pids[1]}/status")
kill "$foretell_pid"

python3 - "$work/foretell.log" "$work/metrics.txt" "$rss_kib" "$rss_cold_kib" <<'PY'
import json, sys
events = list(map(json.loads, open(sys.argv[1])))
cycles = [e for e in events if e.get("msg") == "cycle finished"]
if not cycles:
    sys.exit("no cycle finished; see the log")
cold = next(c for c in cycles if c["series"] > 0)
steady = cycles[cycles.index(cold) + 1:]
loads = [e for e in events if e.get("msg") == "history loaded"]
load = loads[0] if loads else {}
print(f"cold cycle:   {cold['seconds']:.2f} s  ({cold['series']} series, {cold['samples']} samples, {cold['fits']} fits; history in {load.get('requests', '?')} requests)")
for c in steady:
    print(f"steady cycle: {c['seconds']*1000:.0f} ms ({c['samples']} samples, {c['fits']} fits)")
scores = sum(1 for line in open(sys.argv[2]) if line.startswith("foretell_anomaly_score{"))
protocols = [line.split('protocol="')[1].replace('"}', ":").strip() for line in open(sys.argv[2]) if line.startswith("foretell_history_requests_total{")]
print("history requests by protocol: " + ", ".join(protocols))
print(f"exported scores: {scores}; foretell RSS after the cold cycle {int(sys.argv[4]) / 1024:.0f} MiB, at the end {int(sys.argv[3]) / 1024:.0f} MiB")
PY

# Prometheus alone after foretell: the same requests again, plain and compressed.
prometheus_alone "after foretell" identity gzip

# The history load both ways, side by side in one run (foretell's own requests, two rounds):
# remote read of the stored chunks against query_range, and whether they agree sample for
# sample.
"$foretell" bench history --config "$work/foretell.yml" --rounds 2 2>/dev/null

python3 - "http://127.0.0.1:$prom_port" <<'PY'
import sys, time, urllib.parse, urllib.request
base = sys.argv[1]
end = int(time.time()) // 60 * 60
# The steady fetch, two ways: one query_range of the newest grid point of every series (what
# foretell does) and Prometheus' /federate of the same series (the newest sample as text).
def timed(url, data=None, repeat=5):
    best = None
    for _ in range(repeat):
        began = time.time()
        with urllib.request.urlopen(url, data=data) as response:
            size = len(response.read())
        elapsed = time.time() - began
        best = elapsed if best is None else min(best, elapsed)
    return best, size
range_data = urllib.parse.urlencode({"query": "demo_requests_per_second", "start": end, "end": end, "step": 60}).encode()
t, size = timed(f"{base}/api/v1/query_range", range_data)
print(f"steady fetch by query_range (newest point of every series): {t * 1000:.0f} ms, {size / 1e6:.1f} MB (best of 5)")
t, size = timed(f"{base}/federate?" + urllib.parse.urlencode({"match[]": "demo_requests_per_second"}))
print(f"steady fetch by /federate (same series): {t * 1000:.0f} ms, {size / 1e6:.1f} MB (best of 5)")
PY
