# Two commands do all the set-up on a fresh clone:  `make run`  and  `make test`.
# Re-running either reuses the virtual environment and the asset cache.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test test-fast setup assets smoke lint clean

# torch 2.13.0 first: its CPU build lies on this machine's disk; a plain `torch` requirement with no
# torch installed would pull a CUDA build of several GB.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

setup: $(INSTALLED)

assets: setup
	$(PY) tuning/fetch_assets.py

# The main job: an Expert-Loop sweep on the embedded default data and models.
run: assets
	$(PY) tuning/run.py --method active_loop

smoke: setup
	$(PY) tuning/run.py --method all --smoke-test

test: setup
	$(PY) -m pytest

# A fast lane while working (under 2 minutes on 2 cores): every test but those marked slow, i.e. those that
# start Ray or run sweeps in subprocesses. `make test` runs the whole suite (under 10 minutes).
test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
