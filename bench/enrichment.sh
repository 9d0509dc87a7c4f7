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
source bench/demo-prometheus.sh
prom_port=$(free_port)
bench_begin
start_demo_prometheus "$work" "$prom_port" 20

"$foretell" bench enrichment --dir "$work/outbox" --notifications "$notifications" --rate "$rate" \
  --tracked-series 10000 --prometheus "http://127.0.0.1:$prom_port" --expr demo_requests_per_second
