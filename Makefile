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
# Documented default passphrase for the demo and test stacks (never for real credentials).
export PULUMI_CONFIG_PASSPHRASE ?= lattigo-fleet-demo

PULUMI_BIN = $(shell scripts/ensure-pulumi.sh)
WITH_PULUMI = PATH="$(PULUMI_BIN):$(abspath $(VENV))/bin:$$PATH"

.PHONY: help setup venv engine test lint demo bench clean

help:
	@echo "make demo   - run the demo: emulator + pulumi preview/up on fleet.yaml"
	@echo "make test   - ruff check + the whole test suite (builds what it needs)"
	@echo "make setup  - only build the virtualenv and the Pulumi CLI"
	@echo "make bench  - scale runs (not part of the tests)"

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP)

engine:
	@scripts/ensure-pulumi.sh >/dev/null && echo "pulumi $$($(WITH_PULUMI) pulumi version) ready"

setup: venv engine

lint: venv
	$(VENV)/bin/ruff check .

test: setup lint
	$(WITH_PULUMI) $(VENV)/bin/pytest

demo: setup
	$(WITH_PULUMI) $(VENV)/bin/lattigo-fleet demo

bench: setup
	$(WITH_PULUMI) $(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
