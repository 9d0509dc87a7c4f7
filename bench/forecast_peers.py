"""Worker for bench/forecast_eval.py: forecasts with statsforecast's MSTL and AutoETS.

Runs inside the benchmark's own virtualenv (bench/.venv-forecast, with `pip install
statsforecast`); CI never needs it. Reads one JSON task per line on standard input
({"values": [...], "season": m, "weekly": w or null, "horizon": h}) and writes one JSON line per
task: for each method its mean forecast and 80 % and 95 % intervals, and the seconds it took.
"""
import json
import sys
import time
import warnings

import numpy as np
from statsforecast.models import MSTL, AutoETS

warnings.filterwarnings("ignore")

# Seasonal ETS carries one state per season slot; beyond this season length statsforecast's
# AutoETS is too slow to run on every origin, and it is fitted without a season instead.
MAX_ETS_SEASON = 48


def run(model, values, horizon):
    started = time.perf_counter()
    fitted = model.forecast(y=values, h=horizon, level=[80, 95])
    return {
        "mean": fitted["mean"].tolist(),
        "lo80": fitted["lo-80"].tolist(), "hi80": fitted["hi-80"].tolist(),
        "lo95": fitted["lo-95"].tolist(), "hi95": fitted["hi-95"].tolist(),
        "seconds": time.perf_counter() - started,
    }


def main():
    for line in sys.stdin:
        task = json.loads(line)
        values = np.asarray(task["values"], dtype=float)
        m, weekly, horizon = task["season"], task["weekly"], task["horizon"]
        seasons = [s for s in (m, weekly) if s and len(values) >= 2 * s + 1]
        answer = {}
        try:
            answer["mstl"] = run(MSTL(season_length=seasons or [1],
                                      trend_forecaster=AutoETS(model="ZZN")), values, horizon)
        except Exception as error:  # a peer failing on a series is reported, not fatal
            answer["mstl"] = {"error": str(error)}
        try:
            ets_season = m if m <= MAX_ETS_SEASON and len(values) >= 2 * m else 1
            answer["autoets"] = run(AutoETS(season_length=ets_season), values, horizon)
            answer["autoets"]["season"] = ets_season
        except Exception as error:
            answer["autoets"] = {"error": str(error)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
