#!/usr/bin/env python3
"""Measures how well foretell's alert confidence is calibrated, on labelled series.

Method (docs/confidence.md explains it):
1. `foretell detect --evidence` replays each series through the sidecar's models, writing for
   every row the evidence an alert at that row would get and the confidence computed from it.
2. Alerts are simulated with the rules an SRE would write without foretell: static thresholds
   at the 99th and 99.9th percentile (and the 1st and 0.1th) of the series' first 15% (NAB's
   probationary period), plus foretell's own anomaly alert (probability at or above 0.2, the
   onset level the shipped rules use). An alert is a run of rows where its rule holds, ending
   after 5 rows without it; it is enriched at its first row.
3. An alert is real when its first row lies inside a labelled anomaly window.
4. Reliability table (10 bins) and expected calibration error (ECE: the bins' mean
   |share real - mean confidence|, weighted by alerts per bin) of the confidence column; how
   well it separates real from not-real alerts (AUC: the chance that a real alert gets a higher
   confidence than a not-real one) and the precision of the alerts kept when the confidence
   cut keeps half of the real ones (precision at recall 0.5).

With --foresight, a diagnostic of what limits the cross-category AUC: the same logistic
regression, fitted on the fit group and scored on the other files, given the evidence of up to
F rows *after* each alert's first row (the five features at row F, and the largest anomaly
score, the rows outside the band and the largest probability from the first row to row F).
No enrichment can see those rows when the alert first fires; the table says how far past the
first row the evidence must reach before the real and the not-real alerts part.

With --fit, the logistic weights of crates/foretell-core/src/alerts/confidence.rs are refitted
on the features (same formulas as `Features::of`) in two honest ways: on the files of
realKnownCause, artificialWithAnomaly and artificialNoAnomaly, scored on the other four
categories' files (the split bench/probability_calibration.py and NAB's cross-category figure
use), and leave-one-file-out (each file scored by weights fitted on the others).

  python3 bench/confidence_eval.py [--fit] [--foresight] [--data DIR] [--windows FILE] [--json OUT]

Needs numpy and target/release/foretell (cargo build --release).
"""

import argparse
import csv
import io
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SHARED", os.path.join(ROOT, "..", "shared"))
PROBATION = 0.15
QUIET_ROWS = 5
BINS = 10
ONSET_PROBABILITY = 0.2
FIT_GROUP = ("realKnownCause", "artificialWithAnomaly", "artificialNoAnomaly")
# Rows after an alert's first row whose evidence --foresight lets the diagnostic see.
FORESIGHT_ROWS = (0, 5, 20, 50, 100, 200)


def detect(path):
    out = subprocess.run(
        [os.path.join(ROOT, "target/release/foretell"), "detect", "--input", path,
         "--allow-disorder", "--evidence"],
        check=True, capture_output=True, text=True).stdout
    return list(csv.DictReader(io.StringIO(out)))


def minutes_between(rows):
    from datetime import datetime
    ts = [datetime.fromisoformat(r["timestamp"]) for r in rows[:200]]
    gaps = sorted((b - a).total_seconds() / 60 for a, b in zip(ts, ts[1:]) if b > a)
    return gaps[len(gaps) // 2] if gaps else 5.0


def simulate_alerts(values, probability):
    """(rule, first row) of every alert the rules fire after the probationary period."""
    n = len(values)
    start = int(n * PROBATION)
    history = np.array([v for v in values[:start] if math.isfinite(v)])
    rules = {"foretell_onset": [p >= ONSET_PROBABILITY for p in probability]}
    if len(history) > 10:
        for q in (0.99, 0.999):
            hi, lo = np.quantile(history, q), np.quantile(history, 1 - q)
            rules[f"above_p{q * 100:g}"] = [v > hi for v in values]
            rules[f"below_p{(1 - q) * 100:g}"] = [v < lo for v in values]
    alerts = []
    for rule, holds in rules.items():
        firing, quiet = False, 0
        for i in range(start, n):
            if holds[i]:
                if not firing:
                    alerts.append((rule, i))
                firing, quiet = True, 0
            elif firing:
                quiet += 1
                if quiet >= QUIET_ROWS:
                    firing = False
    return alerts


def features(row, step_minutes):
    return [
        math.log1p(abs(float(row["peak_sigmas"]))),
        min(max(float(row["peak_probability"]), 0.0), 1.0),
        math.log1p(max(float(row["outside_points"]) * step_minutes, 0.0)),
        math.log1p(abs(float(row["latest_sigmas"]))),
        math.log1p(100 * max(float(row["range_excess"]), 0.0)),
    ]


def foresight_features(rows, scores, probability, first, ahead, step_minutes):
    """The five features at `ahead` rows past an alert's first row (at the first row where the
    row `ahead` has none), with what the rows from the first to that one showed."""
    last = min(first + ahead, len(rows) - 1)
    row = rows[last] if rows[last]["confidence"] != "" else rows[first]
    seen = scores[first:last + 1]
    return features(row, step_minutes) + [
        math.log1p(max(seen)),
        math.log1p(sum(1 for s in seen if s > 1.0)),
        max(probability[first:last + 1]),
    ]


def collect(data, windows):
    files = sorted(os.path.join(c, f) for c in os.listdir(data)
                   for f in os.listdir(os.path.join(data, c)) if f.endswith(".csv"))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        outputs = list(pool.map(lambda f: detect(os.path.join(data, f)), files))
    samples = []
    for name, rows in zip(files, outputs):
        spans = [(a[:19], b[:19]) for a, b in windows.get(name, [])]
        step = minutes_between(rows)
        values = [float(r["value"]) for r in rows]
        probability = [float(r["anomaly_probability"]) for r in rows]
        scores = [float(r["anomaly_score"]) if r["anomaly_score"] else 0.0 for r in rows]
        for rule, i in simulate_alerts(values, probability):
            row = rows[i]
            if row["confidence"] == "":
                continue
            ts = row["timestamp"][:19]
            real = any(a <= ts <= b for a, b in spans)
            samples.append({
                "file": name, "rule": rule, "timestamp": ts, "real": int(real),
                "confidence": float(row["confidence"]), "features": features(row, step),
                "foresight": {ahead: foresight_features(rows, scores, probability, i, ahead, step)
                              for ahead in FORESIGHT_ROWS},
            })
    return samples


def reliability(confidence, real):
    confidence, real = np.asarray(confidence), np.asarray(real)
    table, ece = [], 0.0
    for b in range(BINS):
        lo, hi = b / BINS, (b + 1) / BINS
        mask = (confidence >= lo) & ((confidence < hi) if b < BINS - 1 else (confidence <= hi))
        n = int(mask.sum())
        if n == 0:
            table.append((lo, hi, 0, None, None))
            continue
        mean_conf, share_real = float(confidence[mask].mean()), float(real[mask].mean())
        ece += n / len(confidence) * abs(share_real - mean_conf)
        table.append((lo, hi, n, mean_conf, share_real))
    return table, ece


def auc(score, real):
    """Probability that a real alert outscores a not-real one (ties count one half)."""
    score, real = np.asarray(score, dtype=float), np.asarray(real)
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    positives = int(real.sum())
    negatives = len(real) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    return float((ranks[real == 1].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def precision_at_recall(score, real, recall=0.5):
    """Precision of the highest-confidence alerts that hold `recall` of the real ones."""
    score, real = np.asarray(score, dtype=float), np.asarray(real)
    order = np.argsort(-score, kind="stable")
    found = np.cumsum(real[order])
    needed = math.ceil(recall * real.sum())
    if needed == 0:
        return float("nan")
    k = int(np.searchsorted(found, needed)) + 1
    # Alerts tied with the last one kept are kept too: a cut cannot split a tie.
    k = int(np.sum(score >= score[order[k - 1]]))
    return float(real[score >= score[order[k - 1]]].mean()) if k else float("nan")


def fit_logistic(x, y, l2=1.0, iterations=50):
    """Newton-Raphson on the L2-penalised log-likelihood (the intercept is not penalised)."""
    x = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=float)])
    y = np.asarray(y, dtype=float)
    w = np.zeros(x.shape[1])
    penalty = np.eye(x.shape[1]) * l2
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x.T * (p * (1 - p))) @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def predict(w, x):
    x = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=float)])
    return 1 / (1 + np.exp(-(x @ w)))


def print_table(title, table, ece, confidence, real):
    brier = float(np.mean((np.asarray(confidence) - np.asarray(real)) ** 2))
    print(f"\n{title}: {len(real)} alerts, {int(np.sum(real))} real, "
          f"ECE {ece:.3f}, Brier {brier:.3f}, AUC {auc(confidence, real):.3f}, "
          f"precision at recall 0.5 {precision_at_recall(confidence, real):.3f}")
    print_reliability(table, "confidence")


def print_reliability(table, what):
    """The reliability table of `reliability` as Markdown; `what` names the predicted column."""
    print(f"| {what} | alerts | mean {what} | share real |")
    print("|---|---|---|---|")
    for lo, hi, n, mean, share in table:
        if n:
            print(f"| {lo:.1f}-{hi:.1f} | {n} | {mean:.3f} | {share:.3f} |")
        else:
            print(f"| {lo:.1f}-{hi:.1f} | 0 | - | - |")


def print_foresight(samples):
    fit = [s for s in samples if s["file"].split("/")[0] in FIT_GROUP]
    check = [s for s in samples if s["file"].split("/")[0] not in FIT_GROUP]
    if not fit or not check:
        return
    print("\nWith evidence from after the alert's first row (weights fitted on "
          + ", ".join(FIT_GROUP) + ", scored on the other files; a diagnostic, not a confidence"
          " any enrichment can give):")
    print("| rows seen after the first | cross-category AUC | ECE |")
    print("|---|---|---|")
    check_real = [s["real"] for s in check]
    for ahead in FORESIGHT_ROWS:
        w = fit_logistic([s["foresight"][ahead] for s in fit], [s["real"] for s in fit])
        predicted = predict(w, [s["foresight"][ahead] for s in check])
        _, ece = reliability(predicted, check_real)
        print(f"| {ahead} | {auc(predicted, check_real):.3f} | {ece:.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(SHARED, "datasets/nab-public/data"))
    parser.add_argument("--windows", default=os.path.join(SHARED, "datasets/nab-public/windows.json"))
    parser.add_argument("--fit", action="store_true", help="refit the weights, report cross-validated ECE")
    parser.add_argument("--foresight", action="store_true",
                        help="how the cross-category AUC would grow with evidence from after "
                             "each alert's first row (a diagnostic, see above)")
    parser.add_argument("--json", help="write the per-alert samples here")
    args = parser.parse_args()
    with open(args.windows) as f:
        windows = json.load(f)
    samples = collect(args.data, windows)
    if not samples:
        sys.exit("no alerts were simulated")
    real = [s["real"] for s in samples]
    confidence = [s["confidence"] for s in samples]
    table, ece = reliability(confidence, real)
    print_table("foretell confidence (weights in confidence.rs)", table, ece, confidence, real)
    by_rule = {}
    for s in samples:
        by_rule.setdefault(s["rule"], []).append(s)
    print("\n| rule | alerts | share real | mean confidence real | mean confidence not real | AUC |")
    print("|---|---|---|---|---|---|")
    for rule, group in sorted(by_rule.items()):
        reals = [s["confidence"] for s in group if s["real"]]
        others = [s["confidence"] for s in group if not s["real"]]
        mean = lambda v: f"{np.mean(v):.3f}" if v else "-"
        separation = auc([s["confidence"] for s in group], [s["real"] for s in group])
        print(f"| {rule} | {len(group)} | {len(reals) / len(group):.3f} | {mean(reals)} | "
              f"{mean(others)} | {separation:.3f} |")
    if args.fit:
        fit = [i for i, s in enumerate(samples) if s["file"].split("/")[0] in FIT_GROUP]
        check = [i for i, s in enumerate(samples) if s["file"].split("/")[0] not in FIT_GROUP]
        if fit and check:
            w = fit_logistic([samples[i]["features"] for i in fit], [real[i] for i in fit])
            predicted = predict(w, [samples[i]["features"] for i in check])
            check_real = [real[i] for i in check]
            table, ece = reliability(predicted, check_real)
            print_table("weights fitted on " + ", ".join(FIT_GROUP) + "; the other files",
                        table, ece, predicted, check_real)
        files = sorted({s["file"] for s in samples})
        held_out = np.zeros(len(samples))
        for name in files:
            train = [i for i, s in enumerate(samples) if s["file"] != name]
            test = [i for i, s in enumerate(samples) if s["file"] == name]
            w = fit_logistic([samples[i]["features"] for i in train], [real[i] for i in train])
            held_out[test] = predict(w, [samples[i]["features"] for i in test])
        table, ece = reliability(held_out, real)
        print_table("refitted weights, leave-one-file-out", table, ece, held_out, real)
        if fit:
            w = fit_logistic([samples[i]["features"] for i in fit], [real[i] for i in fit])
            print("\nweights fitted on the fit group (intercept, peak, peak_probability, outside, "
                  "latest, range_excess), for confidence.rs:")
            print(f"pub const WEIGHTS: [f64; {len(w)}] = [" + ", ".join(f"{v:.4f}" for v in w)
                  + "];")
    if args.foresight:
        print_foresight(samples)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(samples, f)


if __name__ == "__main__":
    main()
