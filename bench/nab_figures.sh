#!/usr/bin/env bash
# The two NAB figures for the detector output bench/nab.sh wrote (target/nab/foretell): the
# standard and low-FP scores over all public files with thresholds optimised on them, then the
# cross-category scores (thresholds optimised on realKnownCause and the artificial files,
# applied to AWS CloudWatch, ad exchange, traffic and tweets), as ../shared/datasets/nab-public/
# README.md describes, and last, as a diagnostic, the cross-category files with thresholds
# optimised on them. Needs the benchmark virtualenv (bench/.venv-forecast) or another python
# with numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-bench/.venv-forecast/bin/python}
score=../shared/tools/nab_score.py
out=${1:-target/nab/foretell}
echo "all public files, thresholds optimised on them:"
"$python" "$score" "$out" --layout category | sed -n 6,7p
thresholds=$("$python" "$score" "$out" --layout category \
  --categories realKnownCause,artificialWithAnomaly,artificialNoAnomaly |
  grep JSON | python3 -c "import json,sys; t=json.loads(sys.stdin.read()[5:])['thresholds']; print('%r,%r,%r' % (t['standard'], t['reward_low_FP_rate'], t['reward_low_FN_rate']))")
echo "cross-category (thresholds $thresholds):"
"$python" "$score" "$out" --layout category -t "$thresholds" \
  --categories realAWSCloudwatch,realAdExchange,realTraffic,realTweets | sed -n 6,7p
# Not one of the two figures: the same four categories with thresholds optimised on them. Its
# distance above the cross-category figure is what carrying the thresholds over costs; a small
# distance means a better score must come from ranking the onsets better, not from the cut.
echo "cross-category files, thresholds optimised on them (diagnostic, not a figure to report):"
"$python" "$score" "$out" --layout category \
  --categories realAWSCloudwatch,realAdExchange,realTraffic,realTweets | sed -n 6,7p
