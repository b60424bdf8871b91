# The one entry point for tasks. Every target runs with the pinned Pulumi CLI first on PATH, a local
# file backend and no network: see scripts/ensure-pulumi.sh and README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK := true
# Engine settings for fleets (lattigo_fleet/engine_settings.py says why; a test pins these equal to it).
export PULUMI_SKIP_CHECKPOINTS := true
export PULUMI_PARALLEL := 512
export PULUMI_PARALLEL_DIFF := true
export GOGC := 60
# Documented default passphrase for the demo and test stacks (never for real credentials).
export PULUMI_CONFIG_PASSPHRASE ?= lattigo-fleet-demo

PULUMI_BIN = $(shell scripts/ensure-pulumi.sh)
WITH_PULUMI = PATH="$(PULUMI_BIN):$(abspath $(VENV))/bin:$$PATH"

.PHONY: help setup venv engine env test check lint wheel-check demo bench clean

help:
	@echo "make demo   - run the demo: emulator + pulumi preview/up on fleet.yaml"
	@echo "make test   - ruff check, ruff format --check, mypy + the whole test suite (builds what it needs)"
	@echo "make check  - the fast loop: the same lint and types + every test but the end-to-end ones"
	@echo "make setup  - only build the virtualenv and the Pulumi CLI"
	@echo "eval \"\$$(make -s env)\"  - put pulumi and lattigo-fleet on this shell's PATH"
	@echo "make bench  - scale runs (not part of the tests)"
	@echo "make wheel-check - build the wheel, install it as the pre-commit hook does, run the hook (part of make test)"

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP)

engine:
	@scripts/ensure-pulumi.sh >/dev/null && echo "pulumi $$($(WITH_PULUMI) pulumi version) ready"

setup: venv engine

# `eval "$(make -s env)"`: the project's environment for the calling shell (the pinned Pulumi CLI and the
# virtualenv first on PATH, no update checks or plugin downloads, the engine settings for fleets). Only the
# export lines go to stdout: the venv build and ensure-pulumi.sh report on stderr. PULUMI_CONFIG_PASSPHRASE is deliberately not exported:
# real stacks use the user's own passphrase, not the demo default.
env:
	@$(MAKE) -s --no-print-directory venv >&2
	@bin='$(PULUMI_BIN)'; [ -n "$$bin" ] || { echo "make env: no Pulumi CLI (see above)" >&2; exit 1; }; \
	  printf "export PATH='%s':'%s':\"\$$PATH\"\n" "$$bin" "$(abspath $(VENV))/bin"
	@printf 'export %s=true\n' PULUMI_SKIP_UPDATE_CHECK PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION \
	  PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK
	@$(PY) -m lattigo_fleet.engine_settings

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Tests run side by side: most of an end-to-end test's time is the Pulumi engine and the emulator waiting on
# each other, so on 2 cores 4 workers finish first. One test at a time per worker, longest first (conftest.py).
TEST_WORKERS ?= 4

test: setup lint
	$(WITH_PULUMI) $(VENV)/bin/pytest -n $(TEST_WORKERS) --maxschedchunk 1

# The fast loop: lint, types, and every test but the end-to-end ones (no Pulumi CLI needed).
check: lint
	$(VENV)/bin/pytest -q -m fast -n 2

# The wheel on its own (tests/packaging): built from the working tree, installed by pre-commit into a fresh
# virtualenv as .pre-commit-hooks.yaml does for users, the hook run on a sample fleet repository. No Pulumi CLI.
wheel-check: venv
	$(VENV)/bin/pytest -q tests/packaging

demo: setup
	$(WITH_PULUMI) $(VENV)/bin/lattigo-fleet demo

bench: setup
	$(WITH_PULUMI) $(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
