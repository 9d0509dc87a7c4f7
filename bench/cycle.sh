#!/usr/bin/env bash
# Measures foretell's evaluation cycle against a real local Prometheus (Debian's package):
# N synthetic series (default 1,000) with 2 days of 1-minute history, continued live by
# recording rules. Reports the cold cycle (load the whole history, fit every series) and the
# steady cycles that follow (fetch the new minute, score; refits staggered over 5 minutes).
#
#   bench/cycle.sh [SERIES] [SECONDS_TO_RUN] [REFIT_INTERVAL]   e.g. bench/cycle.sh 1000 200 5m
#
# Also reports foretell's CPU use over the steady phase (from the end of the cold cycle on),
# as a share of one core.
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:-1000}
run_secs=${2:-200}
refit=${3:-5m}
work=$(mktemp -d /tmp/foretell-bench.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
prom_port=$(port)
foretell_port=$(port)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet
foretell=target/release/foretell
now=$(date +%s)
"$foretell" sample-data --instances "$series" --history-out "$work/history.om" --rules-out "$work/rules.yml" \
  --end $((now - 60)) --span 2d --step 1m --rule-interval 15s
start=$(date +%s.%N)
promtool tsdb create-blocks-from openmetrics "$work/history.om" "$work/data" >/dev/null
echo "backfill: $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s for $series series × 2881 points"
rm -f "$work/history.om"

printf 'global:\n  evaluation_interval: 15s\nrule_files:\n  - %s\n' "$work/rules.yml" > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" --storage.tsdb.retention.time=30d >"$work/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 240); do curl -fsS "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && break; sleep 0.5; done

cat > "$work/foretell.yml" <<YAML
prometheus:
  url: http://127.0.0.1:$prom_port
  timeout: 10s
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
"$foretell" --log.format json --log.level foretell=debug,info run --config "$work/foretell.yml" 2>"$work/foretell.log" &
pids+=($!)
foretell_pid=${pids[1]}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$foretell_pid/stat"; }
for _ in $(seq 1 1200); do grep -q '"cycle finished"' "$work/foretell.log" 2>/dev/null && break; sleep 0.5; done
steady_from=$(date +%s.%N); ticks_from=$(cpu_ticks)
sleep "$run_secs"
steady_to=$(date +%s.%N); ticks_to=$(cpu_ticks)
python3 -c "print(f'steady phase CPU: {($ticks_to - $ticks_from) / $(getconf CLK_TCK) / ($steady_to - $steady_from) * 100:.1f} % of one core over {$steady_to - $steady_from:.0f} s')"
curl -fsS "http://127.0.0.1:$foretell_port/metrics" > "$work/metrics.txt"
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/${pids[1]}/status")

python3 - "$work/foretell.log" "$work/metrics.txt" "$rss_kib" <<'PY'
import json, sys
cycles = [e for e in map(json.loads, open(sys.argv[1])) if e.get("message") == "cycle finished"]
if not cycles:
    sys.exit("no cycle finished; see the log")
cold, steady = cycles[0], cycles[1:]
print(f"cold cycle:   {cold['seconds']:.2f} s  (fetch {cold['fetch_seconds']:.2f} s, {cold['series']} series, {cold['samples']} samples, {cold['fits']} fits)")
for c in steady:
    print(f"steady cycle: {c['seconds']*1000:.0f} ms (fetch {c['fetch_seconds']*1000:.0f} ms, {c['samples']} samples, {c['fits']} fits)")
scores = sum(1 for line in open(sys.argv[2]) if line.startswith("foretell_anomaly_score{"))
print(f"exported scores: {scores}; foretell RSS: {int(sys.argv[3]) / 1024:.0f} MiB")
PY
