#!/usr/bin/env bash
# Reproduce the README's "Rules across sources" output (docs/examples/across.txt):
# 75 minutes of simulated traffic (seed 5, 2 events/s) with the three
# cross-source anomalies, replayed through the default rules; the alerts and
# commands of the sequence and correlate rules, one line each.
set -euo pipefail
cd "$(dirname "$0")/.."
ANOMALYD=${ANOMALYD:-$PWD/.venv/bin/anomalyd}
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
OUT=${OUT:-$PWD/docs}
mkdir -p "$OUT/examples"
"$ANOMALYD" simulate --minutes 75 --rate 2 --seed 5 --anomalies unpaid-orders,amount-mismatch,channel-incident 2>/dev/null \
  | "$ANOMALYD" replay - --rules rules \
  | "$PYTHON" -c '
import json, sys
NEW = {"unpaid-orders-holding-stock", "payment-order-mismatch", "payment-channel-incident", "sku-double-trouble"}
for line in sys.stdin:
    rec = json.loads(line)
    v = rec["value"]
    if v.get("rule_id") not in NEW:
        continue
    if rec["topic"] == "alerts":
        print("%s  %-8s %s  %s" % (v["ts"], v["status"], v["rule_id"], v["message"]))
    else:
        print("%s  %-8s %s %s until %s" % (v["ts"], v["action"], v["breaker"], json.dumps(v["scope"]), v["expires_at"]))
' > "$OUT/examples/across.txt"
echo "make_across: wrote $OUT/examples/across.txt"
