#!/usr/bin/env python3
"""Forecast accuracy of `foretell forecast`: rolling-origin MASE, sMAPE and interval coverage.

    python3 bench/forecast_eval.py [--origins 5] [--horizon-hours 24]

Series: the public NAB subset (../shared/datasets/nab-public/data; real series and the
artificial ones) and synthetic series with a known daily cycle, generated here. For each series
and each of --origins origins spread over its last 30%, the model is fitted on the rows before
the origin and forecasts the next --horizon-hours; the script reports per series and overall:
MASE (mean absolute error scaled by the in-sample one-step seasonal-naive error), the same for
the seasonal-naive forecast itself (repeat the last day), sMAPE, and how many held-out points
fall inside the 80% and 95% intervals. Needs only Python 3 and a built target/release/foretell.
"""
import argparse, csv, datetime, io, math, os, random, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "foretell")
NAB = os.path.join(ROOT, "..", "shared", "datasets", "nab-public", "data")


def read_nab(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            t = datetime.datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S")
            rows.append((int(t.replace(tzinfo=datetime.timezone.utc).timestamp()), float(r["value"])))
    # NAB files repeat or step back a few timestamps; keep the first of each, in order.
    seen, clean = set(), []
    for t, v in rows:
        if t not in seen and (not clean or t > clean[-1][0]):
            seen.add(t)
            clean.append((t, v))
    return clean


def synthetic(seed, days=14, step=300):
    rng = random.Random(seed)
    per_day = 86400 // step
    level, out = 100.0 + 50 * seed, []
    for i in range(days * per_day):
        phase = (i % per_day) / per_day
        level += rng.gauss(0, 0.05)
        value = level + 40 * math.sin(2 * math.pi * phase) + 15 * math.sin(4 * math.pi * phase + seed) + rng.gauss(0, 4)
        out.append((1_700_000_000 + i * step, value))
    return out


def step_of(rows):
    diffs = {}
    for (a, _), (b, _) in zip(rows, rows[1:]):
        diffs[b - a] = diffs.get(b - a, 0) + 1
    return max(diffs, key=diffs.get)


def forecast(rows, horizon, coverage):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("timestamp,value\n")
        f.writelines(f"{t},{v}\n" for t, v in rows)
        path = f.name
    try:
        out = subprocess.run(
            [BINARY, "--log.level", "warn", "forecast", "--input", path, "--horizon", str(horizon), "--coverage", str(coverage)],
            check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    return [(float(r["forecast"]), float(r["lower"]), float(r["upper"])) for r in csv.DictReader(io.StringIO(out))]


def evaluate(name, rows, origins, horizon_hours):
    step = step_of(rows)
    season = max(1, 86400 // step)
    horizon = max(1, horizon_hours * 3600 // step)
    n = len(rows)
    stats = {"ae": 0.0, "ae_naive": 0.0, "scale": 0.0, "smape": 0.0, "count": 0, "in80": 0, "in95": 0}
    for k in range(origins):
        origin = int(n * (0.7 + 0.3 * k / origins))
        if origin + horizon > n or origin < 2 * season + 10:
            continue
        train, test = rows[:origin], rows[origin:origin + horizon]
        values = [v for _, v in train]
        m = season if len(values) > 2 * season else 1
        scale = sum(abs(values[i] - values[i - m]) for i in range(m, len(values))) / (len(values) - m)
        f95 = forecast(train, horizon, 0.95)
        f80 = forecast(train, horizon, 0.80)
        for h, ((_, actual), (mean, lo95, hi95), (_, lo80, hi80)) in enumerate(zip(test, f95, f80)):
            naive = values[len(values) - m + (h % m)]
            stats["ae"] += abs(actual - mean) / scale if scale > 0 else 0.0
            stats["ae_naive"] += abs(actual - naive) / scale if scale > 0 else 0.0
            denominator = abs(actual) + abs(mean)
            stats["smape"] += 2 * abs(actual - mean) / denominator if denominator > 0 else 0.0
            stats["count"] += 1
            stats["in95"] += lo95 <= actual <= hi95
            stats["in80"] += lo80 <= actual <= hi80
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--origins", type=int, default=5)
    parser.add_argument("--horizon-hours", type=int, default=24)
    args = parser.parse_args()
    series = [(f"synthetic/daily_{s}", synthetic(s)) for s in range(4)]
    for category in sorted(os.listdir(NAB)):
        for file in sorted(os.listdir(os.path.join(NAB, category))):
            series.append((f"{category}/{file}", read_nab(os.path.join(NAB, category, file))))
    total = {"ae": 0.0, "ae_naive": 0.0, "smape": 0.0, "count": 0, "in80": 0, "in95": 0}
    print(f"{'series':<56} {'MASE':>7} {'naive':>7} {'sMAPE%':>7} {'cov80':>6} {'cov95':>6}")
    for name, rows in series:
        s = evaluate(name, rows, args.origins, args.horizon_hours)
        if not s["count"]:
            continue
        c = s["count"]
        print(f"{name:<56} {s['ae']/c:7.3f} {s['ae_naive']/c:7.3f} {100*s['smape']/c:7.2f} {100*s['in80']/c:6.1f} {100*s['in95']/c:6.1f}")
        for key in total:
            total[key] += s[key]
    c = total["count"]
    print(f"{'all (pooled over points)':<56} {total['ae']/c:7.3f} {total['ae_naive']/c:7.3f} {100*total['smape']/c:7.2f} {100*total['in80']/c:6.1f} {100*total['in95']/c:6.1f}")


if __name__ == "__main__":
    sys.exit(main())
