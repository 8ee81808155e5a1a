#!/usr/bin/env bash
# Reproduce the README's "An operator overrides a breaker": the events and
# operator actions of docs/examples/operator-tour.jsonl replayed through the
# default rules; every record, one line each (docs/examples/operator.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
ANOMALYD=${ANOMALYD:-$PWD/.venv/bin/anomalyd}
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
OUT=${OUT:-$PWD/docs}
mkdir -p "$OUT/examples"

"$ANOMALYD" replay docs/examples/operator-tour.jsonl --rules rules 2>/dev/null | "$PYTHON" -c '
import json, sys
for line in sys.stdin:
    rec = json.loads(line)
    t, v = rec["topic"], rec["value"]
    if t == "alerts":
        extra = "".join(f"  [{k}: {v[k]}]" for k in ("ack", "hold") if k in v)
        print("%s  %-8s %s  %s%s" % (v["ts"], v["status"], v["rule_id"], v["message"], extra))
    elif t == "breaker-commands":
        by = " by " + v["by"] if "by" in v else ""
        print("%s  %-8s %s %s until %s%s: %s" % (v["ts"], v["action"], v["breaker"], json.dumps(v["scope"]), v["expires_at"], by, v["reason"]))
    else:
        print("dead-letter  %s: %s" % (v["reason_code"], v["reason"]))
' > "$OUT/examples/operator.txt"
echo "make_operator_example: wrote $OUT/examples/operator.txt"
