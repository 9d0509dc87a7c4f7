#!/usr/bin/env python3
"""Measures, and refits, the calibration of foretell's anomaly probability on labelled series.

The probability is `p = d^s / (d^s + h^s)` for a deviation `d > 0` (the short-term surprise
against the series' long-term surprise, in long-term standard deviations), 0 otherwise; `h`
and `s` are `CALIBRATION` in crates/foretell-core/src/model/probability.rs. It should say, of
the alerts a deviation `d` opens, the share that are real. This script checks that on files
the constants were not fitted on, as docs/anomaly-probability.md describes:

1. `foretell detect` replays every public NAB file (or `--results DIR` reads the CSVs that
   bench/nab.sh wrote), and each row's probability is turned back into its deviation with the
   constants in probability.rs.
2. Candidate alerts: after NAB's probationary period, a row whose deviation is at least 2 opens
   one unless a candidate opened in the previous 200 rows (the detector's episode length) and
   this one is less than twice its deviation (the detector's escalation rule).
3. A candidate is real when its row lies inside a labelled anomaly window.
4. A logistic regression on ln d is fitted on the fit group (realKnownCause,
   artificialWithAnomaly, artificialNoAnomaly) and its reliability is reported on the other
   four categories, beside the current constants' reliability on both. The refitted constants
   are printed for probability.rs.
5. Base rate: the mean probability on rows outside and inside the windows, and the share of
   rows at or above 0.5.

  python3 bench/probability_calibration.py [--results DIR] [--data DIR] [--windows FILE]

Needs numpy and target/release/foretell (cargo build --release) unless --results is given.
"""

import argparse
import csv
import json
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from confidence_eval import (  # noqa: E402
    ROOT, SHARED, detect, fit_logistic, predict, print_reliability, reliability)

FIT_GROUP = ("realKnownCause", "artificialWithAnomaly", "artificialNoAnomaly")
PROBATION_FRACTION, PROBATION_MAX_ROWS = 0.15, 750
CANDIDATE_DEVIATION = 2.0
EPISODE_ROWS = 200
ESCALATION = 2.0


def current_constants():
    path = os.path.join(ROOT, "crates/foretell-core/src/model/probability.rs")
    with open(path) as f:
        text = f.read()
    block = text[text.index("pub const CALIBRATION"):]
    half_at = float(re.search(r"half_at:\s*([0-9.eE+-]+)", block).group(1))
    steepness = float(re.search(r"steepness:\s*([0-9.eE+-]+)", block).group(1))
    return half_at, steepness


def probability(deviation, half_at, steepness):
    d = np.asarray(deviation, dtype=float)
    out = np.zeros_like(d)
    positive = d > 0
    out[positive] = 1 / (1 + np.exp(steepness * (math.log(half_at) - np.log(d[positive]))))
    return out


def deviation(p, half_at, steepness):
    """The inverse of `probability` where p is in (0, 1); 0 where p is 0, inf where p is 1."""
    p = np.asarray(p, dtype=float)
    out = np.zeros_like(p)
    inner = (p > 0) & (p < 1)
    out[inner] = half_at * (p[inner] / (1 - p[inner])) ** (1 / steepness)
    out[p >= 1] = np.inf
    return out


def read_results(results, name):
    path = os.path.join(results, name)
    with open(path) as f:
        return [float(r["anomaly_score"]) for r in csv.DictReader(f)]


def window_flags(timestamps, spans):
    return np.array([any(a <= t <= b for a, b in spans) for t in timestamps])


def candidates(dev, first_row):
    rows, open_at, open_dev = [], -EPISODE_ROWS - 1, 0.0
    for i in range(first_row, len(dev)):
        d = dev[i]
        if d < CANDIDATE_DEVIATION:
            continue
        if i - open_at > EPISODE_ROWS or d >= ESCALATION * open_dev:
            rows.append(i)
            open_at, open_dev = i, d
    return rows


def log_loss(predicted, real):
    p = np.clip(np.asarray(predicted, dtype=float), 1e-9, 1 - 1e-9)
    y = np.asarray(real, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def report(title, predicted, real):
    table, ece = reliability(predicted, real)
    base = float(np.mean(real))
    print(f"\n{title}: {len(real)} candidate alerts, {int(np.sum(real))} real; ECE {ece:.3f}, "
          f"log loss {log_loss(predicted, real):.4f} (a constant {base:.3f}: "
          f"{log_loss(np.full(len(real), base), real):.4f})")
    print_reliability(table, "probability")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(SHARED, "datasets/nab-public/data"))
    parser.add_argument("--windows",
                        default=os.path.join(SHARED, "datasets/nab-public/windows.json"))
    parser.add_argument("--results", help="bench/nab.sh output (RESULTS/<category>/<file>.csv)")
    args = parser.parse_args()
    with open(args.windows) as f:
        windows = json.load(f)
    half_at, steepness = current_constants()
    print(f"constants in probability.rs: half_at {half_at}, steepness {steepness}")
    files = sorted(os.path.join(c, f) for c in os.listdir(args.data)
                   for f in os.listdir(os.path.join(args.data, c)) if f.endswith(".csv"))
    groups = {"fit": [], "check": []}
    rates = {"fit": [[], []], "check": [[], []]}
    for name in files:
        with open(os.path.join(args.data, name)) as f:
            timestamps = [r["timestamp"][:19] for r in csv.DictReader(f)]
        if args.results:
            p = np.array(read_results(args.results, name))
        else:
            p = np.array([float(r["anomaly_probability"])
                          for r in detect(os.path.join(args.data, name))])
        if len(p) != len(timestamps):
            sys.exit(f"{name}: {len(p)} probabilities for {len(timestamps)} rows")
        spans = [(a[:19], b[:19]) for a, b in windows.get(name, [])]
        inside = window_flags(timestamps, spans)
        first = min(int(PROBATION_FRACTION * len(p)), PROBATION_MAX_ROWS)
        group = "fit" if name.split("/")[0] in FIT_GROUP else "check"
        dev = deviation(p, half_at, steepness)
        for i in candidates(dev, first):
            groups[group].append((min(dev[i], 1e6), int(inside[i])))
        rates[group][0].extend(p[first:][~inside[first:]])
        rates[group][1].extend(p[first:][inside[first:]])
    for group in ("fit", "check"):
        d = np.array([c[0] for c in groups[group]])
        y = np.array([c[1] for c in groups[group]])
        report(f"current constants, {group} group", probability(d, half_at, steepness), y)
    fit_d = np.array([c[0] for c in groups["fit"]])
    fit_y = np.array([c[1] for c in groups["fit"]])
    w = fit_logistic(np.log(fit_d)[:, None], fit_y, l2=0.01)
    check_d = np.array([c[0] for c in groups["check"]])
    check_y = np.array([c[1] for c in groups["check"]])
    report("refitted on the fit group, check group",
           predict(w, np.log(check_d)[:, None]), check_y)
    print(f"\nrefitted constants: half_at: {math.exp(-w[0] / w[1]):.2f}, "
          f"steepness: {w[1]:.2f}")
    print("\n| group | rows outside windows | mean probability | rows inside | mean probability "
          "| share of rows >= 0.5 |")
    print("|---|---|---|---|---|---|")
    for group in ("fit", "check"):
        outside, inside = np.array(rates[group][0]), np.array(rates[group][1])
        both = np.concatenate([outside, inside])
        print(f"| {group} | {len(outside)} | {outside.mean():.4f} | {len(inside)} | "
              f"{inside.mean():.4f} | {np.mean(both >= 0.5):.5f} |")


if __name__ == "__main__":
    main()
