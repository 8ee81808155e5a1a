"""Shared fixtures: a simulated stream with labelled anomalies, written once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from anomalyd.simulate import generate

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RULES = REPO / "rules"


@pytest.fixture(scope="session")
def sim_file(tmp_path_factory) -> Path:
    """One hour of simulated traffic (seed 3), every anomaly kind injected once."""
    p = tmp_path_factory.mktemp("sim") / "traffic.jsonl"
    with p.open("w") as f:
        for env in generate(seed=3, minutes=60):
            f.write(json.dumps(env, separators=(",", ":")) + "\n")
    return p


def copy_rules(dst: Path) -> Path:
    """The default rule set (without its unit tests) in a scratch directory."""
    shutil.copytree(DEFAULT_RULES, dst, ignore=shutil.ignore_patterns("tests"))
    return dst


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch):
    """Piped output is 200 columns wide unless COLUMNS says otherwise; some
    runners (pytest-xdist workers) set COLUMNS, so the tests pin it unset."""
    monkeypatch.delenv("COLUMNS", raising=False)
