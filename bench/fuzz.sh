#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time each (default 60 s), on the stable toolchain
# (`-s none`: coverage-guided libFuzzer without a sanitizer, which would need nightly; Rust's
# own checks catch what the targets look for: panics, overflows, broken invariants).
#
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Findings land in fuzz/artifacts/TARGET/; each becomes a regression test (see
# docs/reliability.md). The corpus in fuzz/corpus/ grows across runs and is not checked in.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build -s none
# The config loader starts from the documented example, which lists every key.
mkdir -p corpus/config
cp ../docs/foretell.example.yml corpus/config/example.yml
for target in "${targets[@]}"; do
  printf '%-22s ' "$target"
  cargo fuzz run -s none "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 \
    | grep -E '^Done|^==[0-9]+== ERROR|panicked|^SUMMARY' | tail -n 2 | tr '\n' ' '
  echo
done
found=$(find artifacts -type f 2>/dev/null | wc -l)
echo "findings: $found (fuzz/artifacts)"
[ "$found" -eq 0 ]
