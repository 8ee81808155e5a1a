"""Mutated rule files: every outcome is a clean load or FILE:LINE:COL errors.
Never a traceback, never a partial set, never code execution."""

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomalyd.engine.rules.loader import RuleLoadError, load_rules
from tests.fuzz import examples

ORIGINAL = {p.name: p.read_text() for p in Path("rules").glob("*.yaml")}
# The rule ids each shipped file defines: a clean load of a mutated set must
# hold every one of the files left alone.
IDS = {}
for _lr in load_rules("rules").rules:
    IDS.setdefault(Path(_lr.file).name, set()).add(_lr.rule.id)
ERROR = re.compile(r"^.+:\d+:\d+: .+$")
TOKENS = [
    "id",
    "type",
    "window",
    "pct",
    "value",
    "op",
    "field",
    "group_by",
    "where",
    "breaker",
    "scope",
    "ttl",
    "!!python/object/apply:os.system ['touch /tmp/anomalyd-pwned']",
    "&a [1, 2]",
    "*a",
    "*b",
    "~",
    "[]",
    "{}",
    "- ",
    ": ",
    "\t",
    "'",
    '"',
    "{",
    "]",
    "10x",
    "-1",
    "1e999",
    ".nan",
    "yes",
    "no",
    "P9",
    "count",
    "surge",
    "\x00",
    "é",
    "\\u0000",
    "<<: *a",
    "? complex",
    "|",
    ">",
]


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(ORIGINAL)))
    lines = ORIGINAL[name].splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "swap", "insert", "replace", "misspell", "indent"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(st.sampled_from(TOKENS)) + " " + draw(st.sampled_from(TOKENS)))
        elif op == "replace":
            tok = draw(st.sampled_from(TOKENS))
            lines[i] = re.sub(r":\s.*$", lambda m, tok=tok: ": " + tok, lines[i]) if ":" in lines[i] else tok
        elif op == "misspell" and lines[i].strip():
            k = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:k] + lines[i][k + 1 :]
        elif op == "indent":
            lines[i] = draw(st.sampled_from(["", " ", "   ", "\t"])) + lines[i].lstrip()
        if not lines:
            lines = [""]
    return name, "\n".join(lines) + "\n"


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated())
def test_mutated_rule_files_load_cleanly_or_fail_with_positions(tmp_path_factory, case):
    name, text = case
    d = tmp_path_factory.mktemp("rules")
    for n, t in ORIGINAL.items():
        (d / n).write_text(text if n == name else t)
    t0 = time.process_time()
    try:
        rs = load_rules(d)
    except RuleLoadError as exc:
        assert exc.errors, "refused with no error"
        for e in exc.errors:
            assert ERROR.match(str(e)), str(e)
            assert e.line >= 1 and e.col >= 1
    else:
        # A clean load is whole: every file is read, and every rule of the
        # files that were not mutated is there, from its own file.
        assert len(rs.files) == len(ORIGINAL)
        loaded: dict[str, set[str]] = {}
        for lr in rs.rules:
            loaded.setdefault(Path(lr.file).name, set()).add(lr.rule.id)
        for n, ids in IDS.items():
            if n != name:
                assert loaded.get(n) == ids, f"{n}: {loaded.get(n)} != {ids}"
    assert time.process_time() - t0 < 5
    assert not Path("/tmp/anomalyd-pwned").exists()


def test_alias_bomb_and_a_very_long_file_are_refused_quickly(tmp_path):
    # Bounded time is checked in CPU seconds of this process (generous bounds
    # that a hang or an exponential expansion would blow), so other load on the
    # machine cannot fail it.
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        for p, c in zip("abcdefghijk", "bcdefghijkl", strict=True)
    )
    (tmp_path / "bomb.yaml").write_text(bomb + "rules: []\n")
    t0 = time.process_time()
    with pytest.raises(RuleLoadError) as refused:
        load_rules(tmp_path)
    assert [f"{Path(e.file).name}:{e.line}:{e.col}: {e.message}" for e in refused.value.errors] == [
        "bomb.yaml:1:1: document expands to more than 200000 nodes (alias bomb?)"
    ]
    assert time.process_time() - t0 < 5
    (tmp_path / "bomb.yaml").unlink()
    (tmp_path / "long.yaml").write_text(
        "rules:\n" + "  - {id: r, source: orders, type: absence, window: 5m}\n" * 10_000
    )
    t0 = time.process_time()
    with pytest.raises(RuleLoadError) as refused:  # 10,000 rules with one id
        load_rules(tmp_path)
    assert len(refused.value.errors) == 9_999 and "duplicate rule id" in refused.value.errors[0].message
    assert time.process_time() - t0 < 20
