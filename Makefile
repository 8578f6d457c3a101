# The two commands a newcomer needs are `make plan` and `make test`; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
UV := $(VENV)/bin/uv
# Re-install only when the dependencies change, so `make test` stays quick on a warm tree.
STAMP := $(VENV)/.setup-stamp

.PHONY: setup lock plan test unit lint mypy fmt bench-sidecar clean

setup: $(STAMP)

# uv itself, at the version and hashes uv.lock pins, installed by the venv's pip: the only step
# that needs nothing but python3.
define bootstrap_uv
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) scripts/lockfiles.py uv-pin > $(VENV)/uv-pin.txt
	@$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
	  -r $(VENV)/uv-pin.txt
endef

# The dev environment is exactly uv.lock: every locked package, and the project itself editable,
# without resolving again. A pyproject.toml whose dependencies the lock no longer satisfies stops
# here with the command that fixes it.
$(STAMP): pyproject.toml uv.lock
	$(bootstrap_uv)
	@$(UV) lock --check --offline --quiet 2>/dev/null || { \
	  echo "make setup: uv.lock does not satisfy pyproject.toml's dependencies: run \`make lock\`" \
	       "and commit uv.lock and docker/*/requirements.txt" >&2; exit 1; }
	$(UV) sync --frozen --all-extras --python $(PY) --quiet
	@touch $(STAMP)

# Resolve pyproject.toml into uv.lock again, keeping every pin that still fits (`make lock
# UPGRADE=1` takes the newest versions the ranges allow), regenerate docker/*/requirements.txt
# from it, and install the result.
lock:
	$(bootstrap_uv)
	$(UV) lock $(if $(UPGRADE),--upgrade,)
	$(PY) scripts/lockfiles.py write
	$(UV) sync --frozen --all-extras --python $(PY) --quiet
	@touch $(STAMP)

plan: setup
	$(VENV)/bin/modelfleet plan $(STACK)

test: setup lint
	$(PY) -m pytest -q -n 2 --dist loadgroup

unit: setup
	$(PY) -m pytest -q tests/unit

# pytest imports every tests/<area>/conftest.py as the one module `conftest`, so mypy checks each
# area that has one on its own, and everything else (code and tests) in one run.
CONFTEST_AREAS := $(patsubst %/conftest.py,%,$(wildcard tests/*/conftest.py))
MYPY_PATHS := modelfleet components policies docker/sidecar/sidecar docker/fetcher/fetcher \
  scripts/ci_stacks.py scripts/ci_preview_comment.py scripts/lockfiles.py tests

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory mypy
	$(VENV)/bin/lint-imports
	bash scripts/lint-artifacts.sh

mypy: setup
	$(VENV)/bin/mypy $(MYPY_PATHS) $(foreach area,$(CONFTEST_AREAS),--exclude '^$(area)/')
	@set -e; for area in $(CONFTEST_AREAS); do echo "mypy $$area"; $(VENV)/bin/mypy $$area; done

# Rewrite what the formatter and the fixable lint rules would change.
fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench-sidecar: setup
	$(PY) bench/sidecar_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
