# Troika: `make run` starts the whole system on this machine, `make test` runs every test.
# Both install what is missing first (uv, then the locked dependencies).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv from PATH if there is one, else a private copy installed from PyPI into .tools/
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
export UV_PYTHON_PREFERENCE ?= system

.PHONY: help install run check test test-fast bench lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Troika needs Python 3.11 or newer ($(PYTHON) is $$($(PYTHON) -V))"; exit 1; }
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

.venv/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --all-packages
	@touch $@

install: .venv/.synced ## install uv (if missing) and the locked dependencies

run: install ## start the whole system on embedded defaults (Ctrl+C stops it)
	$(UV) run --frozen troika up

check: install ## start everything, wait until ready, print the status table, stop
	$(UV) run --frozen troika up --check

test: install ## run the whole test suite (real NATS, Redis and PostgreSQL where present)
	$(UV) run --frozen pytest

test-fast: install ## the tests not marked slow
	$(UV) run --frozen pytest -m "not slow"

bench: install ## run the pipeline benchmark; writes var/bench/pipeline.json
	$(UV) run --frozen python -m troika_testkit.bench --out var/bench/pipeline.json

lint: install ## ruff, the formatter's check and mypy --strict
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: install ## format the code and apply safe lint fixes
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

clean: ## remove the environment, caches and runtime data
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache var
