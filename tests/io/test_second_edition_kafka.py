"""The second edition's rule types through the real broker: the service,
direct and in scale-out mode with two workers, says what replay says."""

from __future__ import annotations

import shutil

import pytest
import yaml

from tests.engine.types.test_second_edition import RULES, _stream
from tests.io.service import Service
from tests.io.test_scaleout import ids, one_worker, sharded, two_workers, wait_outputs
from tests.io.test_worker import replay

pytestmark = pytest.mark.kafka


def _rules(tmp_path):
    d = tmp_path / "rules"
    shutil.copytree("rules", d, ignore=shutil.ignore_patterns("tests"))
    (d / "second-edition.yaml").write_text(yaml.safe_dump({"rules": [dict(r) for r in RULES]}))
    return d


def test_new_types_through_kafka_equal_replay(broker, tmp_path):
    rules = _rules(tmp_path)
    lines = _stream()
    ref = replay(lines, str(rules))
    fired = {a["rule_id"] for a in ref["alerts"]}
    assert fired >= {"floor", "neg", "coupon", "takings", "price-below-floor"}, fired
    with one_worker(Service(broker.bootstrap, tmp_path, rules=rules), lines) as svc:
        out = wait_outputs(svc, ids(ref), [svc], timeout=30, ref=ref)
    assert ids(out) == ids(ref)


def test_new_types_in_scale_out_mode_equal_replay(broker, tmp_path):
    rules = _rules(tmp_path)
    lines = _stream()
    ref = replay(lines, str(rules))
    a = sharded(broker, tmp_path)
    a.rules = rules
    a.env["ANOMALYD_RULES_DIR"] = str(rules)
    with two_workers(a, lines) as (a, b):
        out = wait_outputs(a, ids(ref), [a, b], timeout=60, ref=ref)
    assert set(ids(out)[0]) == set(ids(ref)[0]) and set(ids(out)[1]) == set(ids(ref)[1])
