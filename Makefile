# Outbound — every command installs what it needs by itself (only python3 is required).
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
SYNCED := $(VENV)/.synced-$(shell cat uv.lock pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
SEEDS ?= 3
CONTACTS ?= 1000
BENCH_ARGS ?=


.PHONY: install browser run test test-unit test-e2e check lint typecheck format docs bench chaos clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(SYNCED): pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --all-extras --python $(PYTHON)
	rm -f $(VENV)/.synced-*
	touch $@

install: $(SYNCED)  ## create .venv from the lock file

run: install  ## the whole system on the embedded broker and database
	$(PY) -m outbound_core.devstack

browser:  ## Debian's Chromium for the console's browser test (Playwright drives it)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get) for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install browser  ## unit, integration and end-to-end tests (the e2e tests start their own stack)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-e2e: install
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff format --check libs services tests benchmarks deploy chaos
	$(VENV)/bin/ruff check libs services tests benchmarks deploy chaos

typecheck: install
	$(VENV)/bin/mypy libs/outbound_core libs/outbound_cli services benchmarks chaos

check: lint typecheck test  ## ruff + mypy --strict + tests

format: install
	$(VENV)/bin/ruff format libs services tests benchmarks chaos
	$(VENV)/bin/ruff check --fix libs services tests benchmarks chaos

docs: install  ## regenerate docs/asyncapi.yaml and the configuration reference from the code
	$(PY) -m outbound_core.asyncapi > docs/asyncapi.yaml
	$(PY) -m outbound_core.configdoc --write docs/operations.md

bench: install  ## benchmarks; writes docs/benchmarks.md
	$(PY) -m benchmarks $(BENCH_ARGS)

chaos: install  ## SEEDS seeded fault-injection runs of a CONTACTS-contact campaign, then the invariant checker
	$(PY) -m chaos --seeds $(SEEDS) --contacts $(CONTACTS)

check-invariants: install  ## check every promise against the databases at MONGODB_URL
	$(PY) -m outbound_core.invariants_cli check

clean:
	rm -rf $(VENV) $(TOOLS) .outbound .pytest_cache .mypy_cache .ruff_cache
