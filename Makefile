# The two commands of the README: `make run` and `make test`.
# Both create .venv and install the project (pinned) on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/anomalyd run

# Two processes, a test file each at a time (a file's fixtures stay in one
# process; each process starts its own embedded broker).
test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadfile --durations=15

# Lint, formatting and types; .ci/run runs it before the tests.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy anomalyd

bench: $(VENV)/.installed
	$(PY) bench/bench_engine.py

.PHONY: install run test lint bench
