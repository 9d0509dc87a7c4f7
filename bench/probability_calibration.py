#!/usr/bin/env python3
"""Measures, and refits, the calibration of foretell's anomaly probability on labelled series.

The probability is the larger of two calibrated probabilities, each `p = x^s / (x^s + h^s)`
for evidence `x > 0`, 0 otherwise:
- the surprise's, `x` the deviation `d` (the short-term surprise against the series' long-term
  surprise, in long-term standard deviations); `h` and `s` are `CALIBRATION` in
  crates/foretell-core/src/model/probability.rs;
- a break of the recent range outside the band, `x` its excess (how far beyond the range of the
  last week's values, as a share of its width); `RANGE_CALIBRATION` in
  crates/foretell-core/src/model/range.rs.
Each should say, of the alerts its evidence opens, the share that are real. This script checks
that on files the constants were not fitted on, as docs/anomaly-probability.md describes:

1. `foretell detect --evidence` replays every public NAB file. An onset the detector scaled down
   as familiar (model/familiarity.rs; the `familiarity` column) is scaled back up, so what is
   calibrated is evidence to probability. The range breaks are found again from each row's
   value and band (the rule of range.rs, mirrored here and checked: every break must carry the
   probability its excess gives); every other row's probability is turned back into its
   deviation with the constants in probability.rs.
2. Candidate alerts of the surprise: after NAB's probationary period, a row whose deviation is
   at least 2 opens one unless a candidate opened in the previous 200 rows (the detector's
   episode length) and this one is less than twice its deviation (the detector's escalation
   rule). Candidate alerts of the range: every break after the probationary period.
3. A candidate is real when its row lies inside a labelled anomaly window.
4. For each kind, a logistic regression on the log of the evidence is fitted on the fit group
   (realKnownCause, artificialWithAnomaly, artificialNoAnomaly) and its reliability is reported
   on the other four categories, beside the current constants' reliability on both. The
   refitted constants are printed for probability.rs and range.rs.
5. Base rate: the mean probability on rows outside and inside the windows, and the share of
   rows at or above 0.5.

  python3 bench/probability_calibration.py [--data DIR] [--windows FILE]

Needs numpy and target/release/foretell (cargo build --release); about three minutes.
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


# The range evidence of crates/foretell-core/src/model/range.rs.
RANGE_BLOCK_POINTS, RANGE_BLOCKS, RANGE_WARMUP = 1_260, 8, 100


def current_constants(source="probability.rs", name="CALIBRATION"):
    path = os.path.join(ROOT, "crates/foretell-core/src/model", source)
    with open(path) as f:
        text = f.read()
    block = text[text.index(f"pub const {name}"):]
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


def range_breaks(values, bands):
    """{row: excess} of every break of the recent range that range.rs reports: the value lies
    beyond the extremes of the last blocks of values and beyond its band `(expected, lower,
    upper)`, the expected value was within the range on that side, and no break was reported
    in the episode length before it. The excess is the part beyond both, as a share of the
    range's width."""
    breaks, blocks, filling, filled, seen, quiet = {}, [], None, 0, 0, 0
    for i, (value, band) in enumerate(zip(values, bands)):
        if not math.isfinite(value):
            continue
        extremes = blocks + ([filling] if filling else [])
        excess = math.nan
        if seen >= RANGE_WARMUP and extremes and band is not None:
            high = max(e[0] for e in extremes)
            low = min(e[1] for e in extremes)
            expected, lower, upper = band
            if high > low:
                beyond = 0.0
                if value > high and expected <= high:
                    beyond = value - max(high, upper)
                elif value < low and expected >= low:
                    beyond = min(low, lower) - value
                excess = max(beyond, 0.0) / (high - low)
        filling = (max(filling[0], value), min(filling[1], value)) if filling else (value, value)
        filled, seen = filled + 1, seen + 1
        if filled == RANGE_BLOCK_POINTS:
            blocks = (blocks + [filling])[-RANGE_BLOCKS:]
            filling, filled = None, 0
        if quiet > 0:
            quiet -= 1
        elif excess > 0:
            breaks[i] = excess
            quiet = EPISODE_ROWS
    return breaks


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
    args = parser.parse_args()
    with open(args.windows) as f:
        windows = json.load(f)
    half_at, steepness = current_constants()
    range_half_at, range_steepness = current_constants("range.rs", "RANGE_CALIBRATION")
    print(f"constants in probability.rs: half_at {half_at}, steepness {steepness}; "
          f"in range.rs: half_at {range_half_at}, steepness {range_steepness}")
    files = sorted(os.path.join(c, f) for c in os.listdir(args.data)
                   for f in os.listdir(os.path.join(args.data, c)) if f.endswith(".csv"))
    groups = {"fit": [], "check": []}
    range_groups = {"fit": [], "check": []}
    rates = {"fit": [[], []], "check": [[], []]}
    damped_onsets = [0, 0]
    for name in files:
        with open(os.path.join(args.data, name)) as f:
            timestamps = [r["timestamp"][:19] for r in csv.DictReader(f)]
        rows = detect(os.path.join(args.data, name))
        published = np.array([float(r["anomaly_probability"]) for r in rows])
        # An onset whose stretch of values was familiar had its probability scaled by one minus
        # the excursion's familiarity (model/familiarity.rs) at the row where that rose; the
        # calibration maps evidence to the probability before that factor, so undo it there
        # (a factor of 0, an exact repeat, leaves nothing to undo: such onsets drop out).
        familiarity = np.array([float(r["familiarity"] or 0.0) for r in rows])
        rose = np.diff(familiarity, prepend=0.0) > 0
        factor = np.where(rose, 1.0 - familiarity, 1.0)
        p = np.where(factor > 0, published / np.where(factor > 0, factor, 1.0), 0.0)
        damped_onsets[0] += int(np.sum(rose & (published > 0)))
        damped_onsets[1] += int(np.sum(rose & (published == 0)))
        values = [float(r["value"]) for r in rows]
        bands = [tuple(float(r[k]) for k in ("expected", "lower", "upper")) if r["expected"]
                 else None for r in rows]
        if len(p) != len(timestamps):
            sys.exit(f"{name}: {len(p)} probabilities for {len(timestamps)} rows")
        spans = [(a[:19], b[:19]) for a, b in windows.get(name, [])]
        inside = window_flags(timestamps, spans)
        first = min(int(PROBATION_FRACTION * len(p)), PROBATION_MAX_ROWS)
        group = "fit" if name.split("/")[0] in FIT_GROUP else "check"
        breaks = range_breaks(values, bands)
        surprise_p = p.copy()
        for i, excess in breaks.items():
            expected = float(probability([excess], range_half_at, range_steepness)[0])
            if p[i] < expected - 1e-9 and factor[i] > 0:
                sys.exit(f"{name} row {i + 2}: a range break of excess {excess:.4g} should "
                         f"read at least {expected:.6f}, detect wrote {p[i]:.6f}: range.rs and "
                         f"this script disagree")
            if p[i] <= expected + 1e-9:
                surprise_p[i] = 0.0
            if i >= first:
                range_groups[group].append((excess, int(inside[i])))
        dev = deviation(surprise_p, half_at, steepness)
        for i in candidates(dev, first):
            groups[group].append((min(dev[i], 1e6), int(inside[i])))
        rates[group][0].extend(published[first:][~inside[first:]])
        rates[group][1].extend(published[first:][inside[first:]])
    print(f"onsets scaled down as familiar: {damped_onsets[0]} (undone here), "
          f"{damped_onsets[1]} to 0 (left out)")
    for kind, by_group, constants, source in (
            ("surprise", groups, (half_at, steepness), "probability.rs"),
            ("range break", range_groups, (range_half_at, range_steepness), "range.rs")):
        for group in ("fit", "check"):
            x = np.array([c[0] for c in by_group[group]])
            y = np.array([c[1] for c in by_group[group]])
            report(f"{kind}, current constants, {group} group", probability(x, *constants), y)
        fit_x = np.array([c[0] for c in by_group["fit"]])
        fit_y = np.array([c[1] for c in by_group["fit"]])
        w = fit_logistic(np.log(fit_x)[:, None], fit_y, l2=0.01)
        check_x = np.array([c[0] for c in by_group["check"]])
        check_y = np.array([c[1] for c in by_group["check"]])
        report(f"{kind}, refitted on the fit group, check group",
               predict(w, np.log(check_x)[:, None]), check_y)
        print(f"\nrefitted constants for {source}: half_at: {math.exp(-w[0] / w[1]):.3g}, "
              f"steepness: {w[1]:.3g}")
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
