#!/usr/bin/env bash
# Reproduce the README's backtest example: the table and docs/backtest-report.png.
#
#   docs/make_examples.sh            # from the repository root, after `make install`
#
# Two hours of simulated traffic (seed 7, every anomaly kind twice) through the
# default rules and an edited copy (negative-stock at < -30,
# payment-failure-ratio at > 0.05), the default rules as the baseline:
#
#   anomalyd simulate --minutes 120 --seed 7 -o traffic.jsonl
#   anomalyd backtest traffic.jsonl --rules rules-candidate --baseline rules --html report.html
#
# Writes docs/examples/backtest.txt (the table, as the README shows it) and
# docs/backtest-report.png (headless Chromium, 1200x900, of report.html).
# Scratch files go to a temporary directory. Everything is deterministic but
# the screenshot's pixels (fonts); the README's figures come from this script.
set -euo pipefail
cd "$(dirname "$0")/.."
ANOMALYD=${ANOMALYD:-$PWD/.venv/bin/anomalyd}
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
OUT=${OUT:-$PWD/docs}            # tests write elsewhere
SKIP_SCREENSHOT=${SKIP_SCREENSHOT:-}
SEED=${SEED:-7}
MINUTES=${MINUTES:-120}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$ANOMALYD" simulate --minutes "$MINUTES" --seed "$SEED" -o "$work/traffic.jsonl"

# The candidate rule set: the default rules with two thresholds edited.
mkdir "$work/rules-candidate"
cp rules/*.yaml "$work/rules-candidate/"
edit() {  # FILE OLD-LINE NEW-LINE: the old line must occur exactly once
  [ "$(grep -cxF -- "$2" "$1")" = 1 ] || { echo "make_examples: '$2' is not once in $1" >&2; exit 1; }
  "$PYTHON" - "$1" "$2" "$3" <<'PY'
import sys
path, old, new = sys.argv[1:]
lines = open(path).read().split("\n")
open(path, "w").write("\n".join(new if line == old else line for line in lines))
PY
}
edit "$work/rules-candidate/inventory.yaml" "    value: 0" "    value: -30"
edit "$work/rules-candidate/payments.yaml" "    value: 0.2" "    value: 0.05"

# Names as the README shows them: rules-candidate against rules.
mkdir -p "$OUT/examples"
(cd "$work" && cp -r "$OLDPWD/rules" baseline-rules && rm -rf baseline-rules/tests && mv baseline-rules rules \
  && COLUMNS=200 "$ANOMALYD" backtest traffic.jsonl --rules rules-candidate --baseline rules --html report.html) \
  > "$OUT/examples/backtest.txt"
echo "make_examples: wrote $OUT/examples/backtest.txt" >&2
[ -z "$SKIP_SCREENSHOT" ] || exit 0

browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "make_examples: no chromium on PATH (apt-get install -y chromium): docs/backtest-report.png not updated" >&2
  exit 1
fi
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --hide-scrollbars --user-data-dir="$work/profile" \
  --screenshot="$OUT/backtest-report.png" --window-size=1200,900 "file://$work/report.html" 2>/dev/null
echo "make_examples: wrote $OUT/backtest-report.png" >&2
