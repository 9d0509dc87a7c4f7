# Sourced by the benchmarks that run a real local Prometheus (Debian's package) holding the
# synthetic demo series: bench/cycle.sh, bench/restart.sh, bench/enrichment.sh.
#
# After sourcing: `bench_begin` builds the release binary into `foretell` (or takes the binary
# `FORETELL` names, e.g. an older commit's built in a worktree) and arranges that on
# exit every process in `pids` is stopped and the caller's `work` folder removed; `free_port` prints a free port on 127.0.0.1; `start_demo_prometheus WORK PORT
# SERIES` writes SERIES synthetic series with 2 days of 1-minute history ending a minute ago,
# backfills them with promtool into WORK/data (printing how long that took), starts Prometheus
# on PORT with recording rules that continue them live every 15 s, and waits until it is ready.
# Its pid is appended to the caller's `pids` array; `foretell` must name the binary.

bench_begin() {
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
  if [ -n "${FORETELL:-}" ]; then
    foretell=$FORETELL
  else
    cargo build --release --quiet
    foretell=target/release/foretell
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_demo_prometheus() {
  local work=$1 port=$2 series=$3 started now
  now=$(date +%s)
  "$foretell" sample-data --instances "$series" --history-out "$work/history.om" --rules-out "$work/rules.yml" \
    --end $((now - 60)) --span 2d --step 1m --rule-interval 15s
  started=$(date +%s.%N)
  promtool tsdb create-blocks-from openmetrics "$work/history.om" "$work/data" >/dev/null
  echo "backfill: $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s for $series series × 2881 points"
  rm -f "$work/history.om"
  printf 'global:\n  evaluation_interval: 15s\nrule_files:\n  - %s\n' "$work/rules.yml" > "$work/prometheus.yml"
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=30d >"$work/prometheus.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 240); do curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break; sleep 0.5; done
}
