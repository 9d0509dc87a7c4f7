#!/usr/bin/env python3
"""Forecast accuracy side by side: foretell, seasonal naive and statsforecast's MSTL and AutoETS.

    cargo build --release
    python3 -m venv bench/.venv-forecast && bench/.venv-forecast/bin/pip install statsforecast
    python3 bench/forecast_eval.py [--origins 5] [--horizon-hours 24] [--no-peers] [--only NAME]
                                   [--per-series mase|smape|cov80|cov95|msis]

FORETELL_BINARY=path/to/foretell compares another build (an older commit, say).

Series: the public NAB subset (../shared/datasets/nab-public/data, 39 files) and synthetic
series with known daily cycles generated here (four at 5 minutes over 21 days; six hourly over
29 and 40 days with a slow drift, three of them with a weekly dip), each put on a regular grid at its most common
step (a missing row takes the previous value, so every method sees the same numbers). For
each series, --origins origins spread over its last 30 %; at each, every method fits on the
rows before the origin and forecasts --horizon-hours ahead with 80 % and 95 % intervals.

Per series and pooled over every forecast point, for each method: MASE (absolute error scaled
by the in-sample mean absolute seasonal difference, as the M4 competition scales it), sMAPE,
OWA against seasonal naive ((sMAPE / sMAPE of seasonal naive + MASE / MASE of seasonal naive) /
2; below 1 beats repeating the last day), how many held-out points fall inside the 80 % and
95 % intervals, MSIS (the M4 interval score of the 95 % interval, scaled like MASE) and the
seconds each method took. Seasonal naive repeats the last day; its intervals widen with the
number of days ahead from the spread of the in-sample daily differences. Series where a
method's MASE is over 1.5 times seasonal naive's are listed.

The peers run in their own virtualenv (bench/.venv-forecast), one worker process for all
series (bench/forecast_peers.py); without it, or with --no-peers, only foretell and seasonal
naive are compared.
"""
import argparse
import csv
import datetime
import io
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("FORETELL_BINARY", os.path.join(ROOT, "target", "release", "foretell"))
NAB = os.path.join(ROOT, "..", "shared", "datasets", "nab-public", "data")
PEER_PYTHON = os.path.join(ROOT, "bench", ".venv-forecast", "bin", "python")
Z80, Z95 = 1.2815515655446004, 1.959963984540054


def read_nab(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            t = datetime.datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S")
            rows.append((int(t.replace(tzinfo=datetime.timezone.utc).timestamp()), float(r["value"])))
    return rows


def on_grid(rows):
    """The rows on a regular grid at their most common step; a missing slot repeats the last value."""
    rows = sorted(dict(rows).items())
    diffs = {}
    for (a, _), (b, _) in zip(rows, rows[1:]):
        diffs[b - a] = diffs.get(b - a, 0) + 1
    step = max(diffs, key=diffs.get)
    by_slot = {}
    for t, v in rows:
        by_slot.setdefault((t - rows[0][0]) // step, v)
    out, last = [], rows[0][1]
    for slot in range(max(by_slot) + 1):
        last = by_slot.get(slot, last)
        out.append((rows[0][0] + slot * step, last))
    return step, out


def synthetic(seed, days=21, step=300):
    """A daily shape (two harmonics), a slow drift and noise: what a request rate looks like."""
    rng = random.Random(seed)
    per_day = 86400 // step
    level, out = 100.0 + 50 * seed, []
    for i in range(days * per_day):
        phase = (i % per_day) / per_day
        level += rng.gauss(0, 0.05)
        value = level + 40 * math.sin(2 * math.pi * phase) + 15 * math.sin(4 * math.pi * phase + seed) + rng.gauss(0, 4)
        out.append((1_700_000_000 + i * step, value))
    return out


def synthetic_hourly(seed, days):
    """Hourly, like the held-out benchmark issue 17 quotes: a clean daily shape, a weekly
    modulation on half of them, a slow drift of about +0.1 a day and a little noise."""
    rng = random.Random(1000 + seed)
    base = 20.0 * (1 + seed)
    weekly = seed % 2 == 1
    out = []
    for i in range(days * 24):
        phase = (i % 24) / 24
        day = i // 24
        value = base + 0.1 * i / 24 + 0.25 * base * math.sin(2 * math.pi * phase) \
            + 0.1 * base * math.cos(4 * math.pi * phase)
        if weekly and day % 7 in (5, 6):
            value *= 0.7
        out.append((1_700_000_000 + i * 3600, value + rng.gauss(0, 0.02 * base)))
    return out


def foretell(rows, horizon):
    """foretell's forecast with its 80 % and 95 % intervals (two runs of the CLI)."""
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("timestamp,value\n")
        f.writelines(f"{t},{v}\n" for t, v in rows)
        path = f.name
    result = {}
    try:
        for coverage, suffix in ((0.95, "95"), (0.80, "80")):
            out = subprocess.run(
                [BINARY, "--log.level", "warn", "forecast", "--input", path, "--horizon", str(horizon),
                 "--coverage", str(coverage)], check=True, capture_output=True, text=True).stdout
            parsed = list(csv.DictReader(io.StringIO(out)))
            result["mean"] = [float(r["forecast"]) for r in parsed]
            result["lo" + suffix] = [float(r["lower"]) for r in parsed]
            result["hi" + suffix] = [float(r["upper"]) for r in parsed]
    finally:
        os.unlink(path)
    return result


def seasonal_naive(values, m, horizon):
    diffs = [values[i] - values[i - m] for i in range(m, len(values))]
    sigma = statistics.pstdev(diffs) if len(diffs) > 1 else 0.0
    result = {k: [] for k in ("mean", "lo80", "hi80", "lo95", "hi95")}
    for h in range(horizon):
        mean = values[len(values) - m + (h % m)]
        spread = sigma * math.sqrt(h // m + 1)
        result["mean"].append(mean)
        result["lo80"].append(mean - Z80 * spread)
        result["hi80"].append(mean + Z80 * spread)
        result["lo95"].append(mean - Z95 * spread)
        result["hi95"].append(mean + Z95 * spread)
    return result


class Peers:
    """statsforecast in its own virtualenv, one worker process for every task."""

    def __init__(self):
        self.process = subprocess.Popen([PEER_PYTHON, os.path.join(ROOT, "bench", "forecast_peers.py")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def forecast(self, values, m, weekly, horizon):
        self.process.stdin.write(json.dumps({"values": values, "season": m, "weekly": weekly, "horizon": horizon}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


class Score:
    def __init__(self):
        self.ae = self.smape = self.msis = 0.0
        self.count = self.in80 = self.in95 = 0
        self.seconds = 0.0
        self.failed = 0

    def add(self, forecast, actual, scale):
        for h, y in enumerate(actual):
            mean, lo95, hi95 = forecast["mean"][h], forecast["lo95"][h], forecast["hi95"][h]
            self.ae += abs(y - mean) / scale
            denominator = abs(y) + abs(mean)
            self.smape += 2 * abs(y - mean) / denominator if denominator > 0 else 0.0
            self.msis += ((hi95 - lo95) + (2 / 0.05) * max(lo95 - y, 0) + (2 / 0.05) * max(y - hi95, 0)) / scale
            self.in80 += forecast["lo80"][h] <= y <= forecast["hi80"][h]
            self.in95 += lo95 <= y <= hi95
            self.count += 1

    def absorb(self, other):
        for key in ("ae", "smape", "msis", "count", "in80", "in95", "seconds", "failed"):
            setattr(self, key, getattr(self, key) + getattr(other, key))

    def mase(self):
        return self.ae / self.count

    def smape_mean(self):
        return self.smape / self.count


def evaluate(name, rows, origins, horizon_hours, peers):
    step, grid = on_grid(rows)
    values_all = [v for _, v in grid]
    m = max(1, 86400 // step)
    weekly = 7 * m
    horizon = max(1, horizon_hours * 3600 // step)
    n = len(grid)
    scores = {}
    for k in range(origins):
        origin = int(n * (0.7 + 0.3 * k / origins))
        if origin + horizon > n or origin < 2 * m + 10:
            continue
        train, actual = grid[:origin], values_all[origin:origin + horizon]
        values = values_all[:origin]
        scale = sum(abs(values[i] - values[i - m]) for i in range(m, len(values))) / (len(values) - m)
        if scale <= 0:
            continue
        started = time.perf_counter()
        made = {"foretell": foretell(train, horizon)}
        foretell_seconds = time.perf_counter() - started
        started = time.perf_counter()
        made["seasonal naive"] = seasonal_naive(values, m, horizon)
        naive_seconds = time.perf_counter() - started
        seconds = {"foretell": foretell_seconds, "seasonal naive": naive_seconds}
        if peers:
            answer = peers.forecast(values, m, weekly if len(values) >= 2 * weekly + 1 else None, horizon)
            for key, label in (("mstl", "MSTL"), ("autoets", "AutoETS")):
                made[label] = answer[key]
                seconds[label] = answer[key].get("seconds", 0.0)
        for method, forecast in made.items():
            score = scores.setdefault(method, Score())
            score.seconds += seconds[method]
            if "error" in forecast or len(forecast.get("mean", [])) < horizon or \
                    any(not math.isfinite(x) for x in forecast["mean"]):
                score.failed += 1
                continue
            score.add(forecast, actual, scale)
    return scores


def owa(score, naive):
    return 0.5 * (score.smape_mean() / naive.smape_mean() + score.mase() / naive.mase())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--origins", type=int, default=5)
    parser.add_argument("--horizon-hours", type=int, default=24)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--only", help="evaluate only series whose name contains this")
    parser.add_argument("--per-series", choices=("mase", "smape", "cov80", "cov95", "msis"), default="mase",
                        help="the figure of the per-series table (default: mase)")
    args = parser.parse_args()
    if not os.path.exists(BINARY):
        sys.exit(f"{BINARY} not found: run `cargo build --release` first")
    peers = None
    if not args.no_peers:
        if os.path.exists(PEER_PYTHON):
            peers = Peers()
        else:
            print("statsforecast's virtualenv is missing; comparing with seasonal naive only "
                  "(see the instructions at the top of this script)", file=sys.stderr)
    series = [(f"synthetic/daily_{s}", synthetic(s)) for s in range(4)]
    series += [(f"synthetic/hourly_{days}d_{s}", synthetic_hourly(s, days)) for days in (29, 40) for s in range(3)]
    for category in sorted(os.listdir(NAB)):
        for file in sorted(os.listdir(os.path.join(NAB, category))):
            series.append((f"{category}/{file}", read_nab(os.path.join(NAB, category, file))))
    if args.only:
        series = [(name, rows) for name, rows in series if args.only in name]
    methods = ["foretell", "seasonal naive"] + (["MSTL", "AutoETS"] if peers else [])
    pooled = {method: Score() for method in methods}
    # Per series (each series weighs the same, as the M4 competition averages): MASE and sMAPE.
    per_series = {method: [] for method in methods}
    worse = []
    header = f"{'series':<50}" + "".join(f" {m[:12]:>12}" for m in methods)
    print(f"{args.per_series} per series (seasonal naive is the reference)")
    print(header)
    for name, rows in series:
        scores = evaluate(name, rows, args.origins, args.horizon_hours, peers)
        naive = scores.get("seasonal naive")
        if not naive or not naive.count:
            continue
        cells = []
        for method in methods:
            score = scores.get(method)
            if not score or not score.count:
                cells.append(f" {'failed':>12}")
                continue
            figure = {"mase": score.mase(), "smape": 100 * score.smape_mean(),
                      "cov80": 100 * score.in80 / score.count, "cov95": 100 * score.in95 / score.count,
                      "msis": score.msis / score.count}[args.per_series]
            cells.append(f" {figure:12.3f}")
            pooled[method].absorb(score)
            per_series[method].append((name, score.mase(), score.smape_mean()))
            if method != "seasonal naive" and score.mase() > 1.5 * naive.mase():
                worse.append((name, method, score.mase() / naive.mase()))
        print(f"{name:<50}" + "".join(cells), flush=True)
    if peers:
        peers.close()
    naive = pooled["seasonal naive"]
    print()
    print(f"{'pooled over every forecast point':<34} {'MASE':>7} {'sMAPE%':>7} {'OWA':>6} {'cov80':>6} {'cov95':>6} {'MSIS':>7} {'seconds':>8} {'failed':>6}")
    for method in methods:
        s = pooled[method]
        if not s.count:
            continue
        print(f"{method:<34} {s.mase():7.3f} {100 * s.smape_mean():7.2f} {owa(s, naive):6.3f} "
              f"{100 * s.in80 / s.count:6.1f} {100 * s.in95 / s.count:6.1f} {s.msis / s.count:7.2f} "
              f"{s.seconds:8.1f} {s.failed:6d}")
    # The M4 way: sMAPE and MASE averaged over the series every method forecast, then OWA.
    common = set.intersection(*(set(n for n, _, _ in rows) for rows in per_series.values() if rows))
    means = {}
    for method, rows in per_series.items():
        kept = [(mase, smape) for name, mase, smape in rows if name in common]
        if kept:
            means[method] = (statistics.fmean(m for m, _ in kept), statistics.fmean(s for _, s in kept))
    print()
    print(f"{'mean over the ' + str(len(common)) + ' series':<34} {'MASE':>7} {'sMAPE%':>7} {'OWA':>6}")
    for method, (mase, smape) in means.items():
        naive_mase, naive_smape = means["seasonal naive"]
        print(f"{method:<34} {mase:7.3f} {100 * smape:7.2f} {0.5 * (smape / naive_smape + mase / naive_mase):6.3f}")
    print()
    print("series where a method's MASE is over 1.5 x seasonal naive's:")
    for name, method, ratio in sorted(worse):
        print(f"  {name:<50} {method:<10} {ratio:5.2f} x")
    if not worse:
        print("  none")


if __name__ == "__main__":
    sys.exit(main())
