#!/usr/bin/env bash
# Measures a restart with `state` on against a real local Prometheus (Debian's package): N
# synthetic series (default 10,000) with 2 days of 1-minute history, continued live by
# recording rules. foretell starts cold (no state file: discover, load the history in batches,
# fit), is stopped with SIGTERM (each query writes its state file), stays down STOP seconds
# (default 300), and starts again: it restores the models and fetches only the gap.
#
#   bench/restart.sh [SERIES] [STOP_SECONDS]     e.g. bench/restart.sh 10000 300
#
# Reports, for both starts, the seconds from the process' start until every series was published
# (ready): for the cold start its first cycle, for the restart the restore (which publishes the
# restored series at once; the gap is fetched by the first cycle), and for the restart how long
# reading the state file took and how many samples the gap cost, beside the cold load's.
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:-10000}
stop_secs=${2:-300}
work=$(mktemp -d /tmp/foretell-restart.XXXXXX)
source bench/demo-prometheus.sh
prom_port=$(free_port)
foretell_port=$(free_port)
bench_begin
start_demo_prometheus "$work" "$prom_port" "$series"

cat > "$work/foretell.yml" <<YAML
prometheus:
  url: http://127.0.0.1:$prom_port
  timeout: 10s
server:
  listen_address: 127.0.0.1:$foretell_port
  shutdown_grace: 60s
state:
  path: $work/state
  interval: 1h
queries:
  - name: bench
    expr: demo_requests_per_second
    step: 1m
    history: 2d
    evaluation_interval: 15s
    model:
      seasonality: 1d
YAML

# Starts foretell, waits for its first cycle that published series, stops it with SIGTERM.
run_once() {
  local log=$1
  date +%s.%N > "$log.started"
  "$foretell" --log.format json --log.level foretell=debug,info run --config "$work/foretell.yml" 2>"$log" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 2400); do
    python3 - "$log" <<'PY' && break
import json, sys
for line in open(sys.argv[1]):
    event = json.loads(line)
    if event.get("msg") == "cycle finished" and event.get("series", 0) > 0:
        sys.exit(0)
sys.exit(1)
PY
    sleep 0.5
  done
  curl -fsS "http://127.0.0.1:$foretell_port/metrics" > "$log.metrics"
  kill -TERM "$pid"
  wait "$pid" || true
}

run_once "$work/cold.log"
ls -l "$work/state"
echo "stopped; starting again in $stop_secs s"
sleep "$stop_secs"
run_once "$work/warm.log"

python3 - "$work" "$series" <<'PY'
import datetime, json, sys
work, series = sys.argv[1], int(sys.argv[2])
def report(name):
    started = float(open(f"{work}/{name}.log.started").read())
    events = [json.loads(line) for line in open(f"{work}/{name}.log")]
    ready = next(e for e in events if e.get("msg") == "cycle finished" and e.get("series", 0) > 0)
    # A restored query publishes its series as soon as its file is read; a cold one when its
    # first cycle has loaded them.
    published = next(e for e in events if e is ready or e.get("msg", "").startswith("models restored"))
    at = datetime.datetime.fromisoformat(published["ts"].replace("Z", "+00:00")).timestamp()
    fetched = sum(float(line.rsplit(" ", 1)[1]) for line in open(f"{work}/{name}.log.metrics")
                  if line.startswith("foretell_samples_fetched_total{"))
    restored = next((e for e in events if e.get("msg", "").startswith("models restored")), None)
    return at - started, ready, fetched, restored
cold, cold_cycle, cold_fetched, _ = report("cold")
warm, warm_cycle, warm_fetched, restored = report("warm")
print(f"cold start: ready in {cold:.1f} s ({cold_cycle['series']} series, {cold_fetched:.0f} samples fetched, {cold_cycle['fits']} fits)")
print(f"restart:    ready in {warm:.1f} s ({warm_cycle['series']} series, {warm_fetched:.0f} samples fetched, {warm_cycle['fits']} fits)"
      + (f"; the state file read in {restored['seconds']:.1f} s" if restored else "; NOT restored"))
PY
