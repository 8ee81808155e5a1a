#!/usr/bin/env bash
# Reproduce the README's real output of the second edition's rules and of the
# rules across sources: simulated traffic with the anomalies they catch
# (seed 5, 2 events/s in the background), replayed through the default rules;
# the named rules' alerts and commands, one line each.
#
#   docs/examples/second-edition.txt  price-below-floor, refund-spike, coupon-abuse
#   docs/examples/across.txt          unpaid orders, an amount mismatch, a payment channel incident
set -euo pipefail
cd "$(dirname "$0")/.."
ANOMALYD=${ANOMALYD:-$PWD/.venv/bin/anomalyd}
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
OUT=${OUT:-$PWD/docs}
mkdir -p "$OUT/examples"

records() {  # records RULE... : the named rules' records of a replay on stdin, one line each
  "$PYTHON" -c '
import json, sys
rules = set(sys.argv[1:])
for line in sys.stdin:
    rec = json.loads(line)
    v = rec["value"]
    if v.get("rule_id") not in rules:
        continue
    if rec["topic"] == "alerts":
        print("%s  %-8s %s  %s" % (v["ts"], v["status"], v["rule_id"], v["message"]))
    else:
        print("%s  %-8s %s %s until %s" % (v["ts"], v["action"], v["breaker"], json.dumps(v["scope"]), v["expires_at"]))
' "$@"
}

"$ANOMALYD" simulate --minutes 75 --rate 2 --seed 5 --anomalies below-floor,refund-spike,coupon-abuse 2>/dev/null \
  | "$ANOMALYD" replay - --rules rules \
  | records price-below-floor refund-spike coupon-abuse > "$OUT/examples/second-edition.txt"
echo "make_rule_examples: wrote $OUT/examples/second-edition.txt"

"$ANOMALYD" simulate --minutes 75 --rate 2 --seed 5 --anomalies unpaid-orders,amount-mismatch,channel-incident 2>/dev/null \
  | "$ANOMALYD" replay - --rules rules \
  | records unpaid-orders-holding-stock payment-order-mismatch payment-channel-incident sku-double-trouble \
  > "$OUT/examples/across.txt"
echo "make_rule_examples: wrote $OUT/examples/across.txt"
