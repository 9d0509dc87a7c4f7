#!/usr/bin/env bash
# Scores `foretell detect` on the public NAB subset in ../shared/datasets/nab-public with
# ../shared/tools/nab_score.py (needs numpy). The detector's anomaly_probability is NAB's
# anomaly_score. Extra arguments go to `foretell detect` (e.g. --season none).
#
#   bench/nab.sh [DETECT_FLAGS...]          results in target/nab/foretell/, scores on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED:-../shared}
data="$shared/datasets/nab-public/data"
[ -d "$data" ] || { echo "no NAB data at $data (set SHARED=...)" >&2; exit 2; }
cargo build --release --quiet
out=target/nab/foretell
rm -rf "$out"
start=$(date +%s.%N)
# One `detect` per file, as many at once as there are cores.
export out
score_file() {
  local file=$1 category
  category=$(basename "$(dirname "$file")")
  mkdir -p "$out/$category"
  shift
  target/release/foretell detect --input "$file" --allow-disorder "$@" \
    | python3 -c '
import csv, sys
rows = csv.DictReader(sys.stdin)
out = csv.writer(sys.stdout, lineterminator="\n")
out.writerow(["timestamp", "value", "anomaly_score"])
for r in rows:
    out.writerow([r["timestamp"], r["value"], r["anomaly_probability"]])
' > "$out/$category/$(basename "$file")"
}
export -f score_file
printf '%s\0' "$data"/*/*.csv \
  | xargs -0 -P "$(nproc)" -I{} bash -c 'score_file "$@"' _ {} "$@"
echo "detect over $(ls "$data"/*/*.csv | wc -l) files: $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"
# NAB_SCORE_FLAGS, e.g. "-t 0.99", is passed to the scorer.
python3 "$shared/tools/nab_score.py" "$out" --layout category ${NAB_SCORE_FLAGS:-}
