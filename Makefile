# The two commands a newcomer needs are `make plan` and `make test`; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
# Re-install only when the dependency list changes, so `make test` stays quick on a warm tree.
STAMP := $(VENV)/.setup-stamp

.PHONY: setup plan test unit lint bench-sidecar clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[sidecar,fetcher,policy,dev]'
	@touch $(STAMP)

plan: setup
	$(VENV)/bin/modelfleet plan $(STACK)

test: setup lint
	$(PY) -m pytest -q -n 2 --dist loadgroup

unit: setup
	$(PY) -m pytest -q tests/unit

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy modelfleet components policies docker/sidecar/sidecar docker/fetcher/fetcher scripts/ci_stacks.py scripts/ci_preview_comment.py
	bash scripts/lint-artifacts.sh

bench-sidecar: setup
	$(PY) bench/sidecar_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
