"""Rule loading: safe YAML, whole-set refusal, every error with FILE:LINE:COL."""

import pytest

from anomalyd.engine.rules.loader import RuleLoadError, load_rules

GOOD = """rules:
  - id: neg
    source: inventory
    type: threshold
    field: available
    op: "<"
    value: 0
    group_by: [sku]
"""


def errors(tmp_path, **files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(RuleLoadError) as e:
        load_rules(tmp_path)
    return [str(x).replace(str(tmp_path) + "/", "") for x in e.value.errors]


def test_good_directory_loads(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    rs = load_rules(tmp_path)
    assert [lr.rule.id for lr in rs.rules] == ["neg"] and len(rs.version) == 16


def test_one_bad_file_refuses_the_whole_set(tmp_path):
    errs = errors(tmp_path, **{"a.yaml": GOOD, "b.yaml": GOOD.replace("neg", "neg2").replace("available", "availble")})
    assert errs == ["b.yaml:5:12: unknown field 'availble' for source inventory; did you mean 'available'?"]


def test_duplicate_ids_across_files_reported_at_each_later_occurrence(tmp_path):
    errs = errors(tmp_path, **{"a.yaml": GOOD, "b.yaml": GOOD, "c.yaml": GOOD})
    assert errs == [
        "b.yaml:2:9: duplicate rule id 'neg' (first defined at a.yaml:2:9)",
        "c.yaml:2:9: duplicate rule id 'neg' (first defined at a.yaml:2:9)",
    ]


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "rules:\n  - id: x\n    source: inventory\n    type: threshold\n    field: available\n    op: '=<'\n    value: 0\n",
            "a.yaml:6:9: op: Input should be '==', '!=', '<', '<=', '>' or '>='; got '=<', did you mean '<='?",
        ),
        (
            "rules:\n  - id: Bad Id\n    source: inventory\n    type: absence\n    window: 5m\n",
            "a.yaml:2:9: id: rule id must match [a-z0-9_-]+",
        ),
        (
            "rules:\n  - id: x\n    source: refunds\n    type: absence\n    window: 5m\n",
            "a.yaml:3:13: source: Input should be 'orders', 'inventory', 'payments' or 'complaints'",
        ),
        (
            "rules:\n  - id: x\n    source: orders\n    type: absence\n    window: 5 minutes\n",
            "a.yaml:5:13: window: bad duration '5 minutes': use a whole number with ms, s, m, h or d (e.g. 30s, 10m, 1h30m)",
        ),
        ("rules:\n  - id: x\n    source: orders\n    type: absence\n", "a.yaml:2:5: missing required key 'window'"),
        (
            "rules:\n  - id: x\n    source: orders\n    type: surge\n    window: 5m\n    pct: many\n",
            "a.yaml:6:10: pct: Input should be a valid number",
        ),
        (
            "rules:\n  - id: x\n    source: inventroy\n    type: absence\n    window: 5m\n",
            "a.yaml:3:13: source: Input should be 'orders', 'inventory', 'payments' or 'complaints'; got 'inventroy', "
            "did you mean 'inventory'?",
        ),
        (
            "rules:\n  - id: x\n    source: orders\n    type: absence\n    window: 5m\n    severity: p1\n",
            "a.yaml:6:15: severity: Input should be 'P0', 'P1', 'P2' or 'P3'; got 'p1', did you mean 'P1'?",
        ),
        ("rulez: []\n", "a.yaml:1:1: unknown top-level key 'rulez'; did you mean 'rules'?"),
        (
            "rules:\n  - id: x\n    source: orders\n    type: absence\n    window: 5m\n    group_by: [promo]\n",
            "a.yaml:6:16: unknown field 'promo' for source orders; did you mean 'promo_codes'?",
        ),
        (
            "rules:\n  - id: x\n    source: orders\n    type: absence\n    window: 5m\n    group_by: [promo_codes]\n",
            "a.yaml:6:16: cannot group by promo_codes: it is a list",
        ),
        (
            "rules:\n  - id: x\n    source: []\n    type: [absence]\n",
            "a.yaml:4:11: unknown rule type ['absence']; did you mean 'absence'?",
        ),
        ("rules:\n  - id: x\x00\n", "a.yaml:2:10: character U+0000 is not allowed in YAML"),
        (
            "rules: [\n",
            "a.yaml:1:8: YAML syntax: this '[' is never closed (at line 2, column 1: expected the node content, "
            "but found the end of the file)",
        ),
        (
            "rules:\n  - id: x\n    group_by: [sku\n",
            "a.yaml:3:15: YAML syntax: this '[' is never closed "
            "(at line 4, column 1: expected ',' or ']', but got the end of the file)",
        ),
        (
            "rules:\n  - {id: a, source: orders\n  - id: b\n",
            "a.yaml:2:5: YAML syntax: this '{' is never closed (at line 3, column 7: expected ',' or '}', but got ':')",
        ),
        (
            'rules:\n  - id: "abc\n    source: x\n',
            "a.yaml:2:9: YAML syntax: this '\"' is never closed (at line 4, column 1: found the end of the file)",
        ),
        (
            "rules:\n  - id: a\n   source: b\n",
            "a.yaml:3:4: YAML syntax: expected <block end>, but found '<block mapping start>' "
            "(check the indentation of this line against the lines above)",
        ),
        ("rules:\n\t- id: a\n", "a.yaml:2:1: YAML syntax: a tab cannot indent YAML: use spaces"),
        ("rules:\n  - id: x\n    id: y\n", "a.yaml:3:5: duplicate key 'id'"),
        ("", "a.yaml:1:1: empty file: expected a top-level 'rules:' list"),
    ],
)
def test_errors_point_at_the_offending_key_or_value(tmp_path, text, expected):
    assert expected in errors(tmp_path, **{"a.yaml": text})


def test_python_tags_are_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = GOOD + f"    description: !!python/object/apply:os.system ['touch {marker}']\n"
    errs = errors(tmp_path, **{"a.yaml": text})
    assert errs[0].startswith("a.yaml:9:18: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed")
    assert not marker.exists()


def test_alias_bomb_is_refused_in_bounded_time(tmp_path):
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    errs = errors(tmp_path, **{"a.yaml": bomb + "rules: []\n"})
    assert "alias bomb" in errs[0]


def test_breaker_scope_must_be_grouped_and_templates_checked(tmp_path):
    text = GOOD + "    message: 'SKU {skuu}'\n    breaker: {action: pause_sales, scope: [merchant_id], ttl: 30m}\n"
    errs = errors(tmp_path, **{"a.yaml": text})
    assert errs == [
        "a.yaml:9:14: message uses {skuu}; available: count, event_id, group, op, rule_id, severity, sku, source, threshold, value, where, window",
        "a.yaml:10:44: breaker scope field 'merchant_id' is not in group_by ['sku']",
    ]


def test_the_shipped_rules_load():
    rs = load_rules("rules")
    assert len(rs.rules) == 15


def test_a_file_whose_rules_are_all_commented_out_loads_as_no_rules(tmp_path):
    (tmp_path / "a.yaml").write_text("rules:\n  # - id: old-rule\n  #   source: orders\n")
    (tmp_path / "b.yaml").write_text("rules:\n  - {id: r, source: orders, type: absence, window: 5m}\n")
    assert errors(tmp_path, **{"c.yaml": "rules: 5\n"}) == ["c.yaml:1:8: 'rules' must be a list of rules"]
    (tmp_path / "c.yaml").unlink()
    assert [lr.rule.id for lr in load_rules(tmp_path).rules] == ["r"]
