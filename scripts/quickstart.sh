#!/usr/bin/env bash
# Runs foretell against a real local Prometheus (Debian's package) that holds four days of
# synthetic history of three `demo_requests_per_second` series, continued live by recording
# rules, with an incident on instance web-a a minute and a half after start. Ctrl-C stops both.
#
#   scripts/quickstart.sh            Prometheus on 127.0.0.1:19090, foretell on 127.0.0.1:9896
#   PROM_PORT=9090 FORETELL_PORT=9100 FORETELL_DEMO_DIR=/tmp/demo scripts/quickstart.sh
#   FORETELL=/usr/local/bin/foretell scripts/quickstart.sh    a prebuilt binary, no cargo needed
#
# Without FORETELL, foretell is built with cargo when cargo is there, else taken from PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
prom_port=${PROM_PORT:-19090}
foretell_port=${FORETELL_PORT:-9896}
work=${FORETELL_DEMO_DIR:-$(mktemp -d /tmp/foretell-demo.XXXXXX)}
mkdir -p "$work"

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: needs Debian's prometheus package: sudo apt-get install prometheus" >&2
    exit 1
  fi
  echo "quickstart: installing Debian's prometheus package"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if [ -n "${FORETELL:-}" ]; then
  foretell=$FORETELL
elif command -v cargo >/dev/null; then
  echo "quickstart: building foretell (release)"
  cargo build --release --quiet
  foretell=target/release/foretell
elif command -v foretell >/dev/null; then
  foretell=$(command -v foretell)
else
  echo "quickstart: no foretell binary: set FORETELL=path/to/foretell, put it on PATH, or install cargo" >&2
  exit 1
fi
[ -x "$foretell" ] || { echo "quickstart: $foretell is not an executable file" >&2; exit 1; }

now=$(date +%s)
# The incident starts 90 s from now, after foretell has loaded the history and fitted its models
# (a few seconds), so the first two minutes show it.
incident=$((now + 90))
"$foretell" sample-data --history-out "$work/history.om" --rules-out "$work/live-rules.yml" \
  --end $((now - 30)) --span 4d --step 10s --spike-at $incident --spike-secs 180
rm -rf "$work/data"
promtool tsdb create-blocks-from openmetrics "$work/history.om" "$work/data" >/dev/null

cat > "$work/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $work/live-rules.yml
  - $PWD/rules/foretell.rules.yml
  - $PWD/rules/foretell-self.rules.yml
scrape_configs:
  - job_name: foretell
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$foretell_port']
YAML

cat > "$work/foretell.yml" <<YAML
prometheus:
  url: http://127.0.0.1:$prom_port
  timeout: 5s
server:
  listen_address: 127.0.0.1:$foretell_port
  enable_lifecycle: true
queries:
  - name: demo
    expr: demo_requests_per_second
    step: 30s
    # Two daily cycles for the season plus a held-out part for the forecasts' model choice.
    history: 3d
    evaluation_interval: 10s
    unit: requests/s
    model:
      seasonality: 1d
  - name: latency
    expr: demo_request_latency_seconds
    step: 30s
    history: 3d
    evaluation_interval: 10s
    unit: seconds
    model:
      seasonality: 1d
    # Five sibling instances; api-4 has been drifting away from the others for two hours.
    peers:
      by: [job]
      method: mad
      window: 1h
YAML

prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" --storage.tsdb.retention.time=30d \
  >"$work/prometheus.log" 2>&1 &
prom_pid=$!
trap 'kill "$prom_pid" 2>/dev/null || true; wait "$prom_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && break
  kill -0 "$prom_pid" 2>/dev/null || { echo "quickstart: prometheus failed, see $work/prometheus.log" >&2; exit 1; }
  sleep 0.5
done

cat <<TEXT

foretell:    http://127.0.0.1:$foretell_port/          status page: series, bands, anomalies now
             http://127.0.0.1:$foretell_port/metrics   predictions as metrics
             http://127.0.0.1:$foretell_port/graph?query=demo&series=%7Binstance%3D%22web-a%22%2C+job%3D%22demo%22%7D
Prometheus:  http://127.0.0.1:$prom_port   (files in $work)
An incident starts on instance web-a at $(date -d "@$incident" +%H:%M:%S) and lasts 3 minutes;
the latency of api-4 drifts away from its four peers. Try in Prometheus:
  foretell_anomaly_score
  demo_requests_per_second > on(instance, job) foretell_baseline_upper{query="demo"}
  demo_requests_per_second and on(instance, job) foretell_anomaly_score{query="demo"} > 1
  foretell_peer_outlier_score{query="latency"}
Ctrl-C stops foretell and Prometheus.

TEXT
"$foretell" run --config.file "$work/foretell.yml"
