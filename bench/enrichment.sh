#!/usr/bin/env bash
# Measures what enrichment adds to an alert's latency through foretell, with the on-demand
# phase against a real local Prometheus (Debian's package) holding 20 synthetic series with 2
# days of 1-minute history: each on-demand alert makes foretell query 1 day of them, fit a
# model and replay it. The tracked phase searches a snapshot of 10,000 series.
#
#   bench/enrichment.sh [NOTIFICATIONS_PER_PHASE] [RATE_PER_SECOND]   e.g. bench/enrichment.sh 1000 20
set -euo pipefail
cd "$(dirname "$0")/.."
notifications=${1:-1000}
rate=${2:-20}
work=$(mktemp -d /tmp/foretell-bench.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
prom_port=$(port)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet
foretell=target/release/foretell
now=$(date +%s)
"$foretell" sample-data --instances 20 --history-out "$work/history.om" --rules-out "$work/rules.yml" \
  --end $((now - 60)) --span 2d --step 1m --rule-interval 15s
promtool tsdb create-blocks-from openmetrics "$work/history.om" "$work/data" >/dev/null
rm -f "$work/history.om"
printf 'global:\n  evaluation_interval: 15s\nrule_files:\n  - %s\n' "$work/rules.yml" > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" --storage.tsdb.retention.time=30d >"$work/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 240); do curl -fsS "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && break; sleep 0.5; done

"$foretell" bench enrichment --dir "$work/outbox" --notifications "$notifications" --rate "$rate" \
  --tracked-series 10000 --prometheus "http://127.0.0.1:$prom_port" --expr demo_requests_per_second
