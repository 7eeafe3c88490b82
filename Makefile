# Troika: `make run` starts the whole system on this machine, `make test` runs every test.
# Both install what is missing first (uv, the locked dependencies, and bun for the web app).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv from PATH if there is one, else a private copy installed from PyPI into .tools/
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
export UV_PYTHON_PREFERENCE ?= system
# bun builds the web app's pages; a private copy from the npm registry, unless REFLEX_BUN_PATH
# names one to use (npm follows NPM_CONFIG_REGISTRY and .npmrc, so a mirror works too)
BUN_VERSION := 1.4.5
BUN := $(if $(REFLEX_BUN_PATH),,$(CURDIR)/.tools/bun/node_modules/.bin/bun)

.PHONY: help install run check test test-fast bench profile pictures lint format clean

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

$(CURDIR)/.tools/bun/node_modules/.bin/bun:
	@command -v npm >/dev/null \
		|| { echo "The web app needs bun, which is installed with npm: install Node.js and npm" \
			"(Debian: apt-get install nodejs npm), or set REFLEX_BUN_PATH to a bun $(BUN_VERSION) binary"; exit 1; }
	@mkdir -p $(CURDIR)/.tools/bun
	@# bun's install script puts the binary for this platform in place; newer npm asks for consent
	echo '{"private": true, "allowScripts": {"bun": true}}' > $(CURDIR)/.tools/bun/package.json
	npm install --prefix $(CURDIR)/.tools/bun --save-exact --no-audit --no-fund bun@$(BUN_VERSION)
	@$@ --version >/dev/null || { echo "bun did not install ($@ does not run)"; exit 1; }

install: .venv/.synced $(BUN) ## install uv and bun (if missing) and the locked dependencies

run: install ## start the whole system on embedded defaults (Ctrl+C stops it)
	$(UV) run --frozen troika up

check: install ## start everything, wait until ready, print the status table, stop
	$(UV) run --frozen troika up --check

# Three workers on any machine: most tests wait on servers and processes, not on the CPU; the
# end-to-end stacks and the browser tests share one worker, one at a time (see tests/conftest.py),
# the `troika up` tests and the benchmark another. Waits and time limits grow on a slow or busy
# machine (TROIKA_TEST_SLOWNESS=3 sets the factor instead of measuring it).
PYTEST_WORKERS ?= 3
PYTEST_ARGS ?=

test: install ## run the whole test suite (real NATS, Redis and PostgreSQL where present)
	$(UV) run --frozen pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-fast: install ## the tests not marked slow
	$(UV) run --frozen pytest -n $(PYTEST_WORKERS) --dist loadgroup -m "not slow"

bench: install ## run the pipeline benchmark; writes var/bench/pipeline.json
	$(UV) run --frozen python -m troika_testkit.bench --out var/bench/pipeline.json

profile: install ## where each service spends its CPU under the benchmark's load; writes var/profile/
	$(UV) run --frozen python -m troika_testkit.profile --out var/profile

pictures: install ## take the README's pictures again with the browser tests (docs/pictures/)
	$(UV) run --frozen pytest tests/test_web.py -k "$$($(UV) run --frozen python -m troika_testkit.pictures --tests)"
	$(UV) run --frozen python -m troika_testkit.pictures

lint: install ## ruff, the formatter's check, mypy --strict, the compose file, Dockerfiles, Kubernetes
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(UV) run --frozen hadolint services/*/Dockerfile frontend/Dockerfile
	$(UV) run --frozen kubernetes-validate --strict --quiet --kubernetes-version 1.33.0 \
		$(filter-out deploy/kubernetes/kustomization.yaml,$(wildcard deploy/kubernetes/*.yaml))

format: install ## format the code and apply safe lint fixes
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

clean: ## remove the environment, caches and runtime data
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache var
