# The two commands of the README, and what they need. Everything installs into .venv from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_WORKERS ?= 2

.PHONY: install local test lint typecheck unit synth clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,infra]"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## Run the whole system locally: moto as AWS, the HTTP API on 127.0.0.1:8080.
local: install
	$(BIN)/billing-local $(ARGS)

## Every check CI runs: lint, format, types, and the whole pytest suite.
test: install lint typecheck
	HYPOTHESIS_PROFILE=ci JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit -q

## Synthesize the CDK app (builds the Lambda layer with pip, no Docker).
synth: install
	JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 npx --yes aws-cdk@2 synth

clean:
	rm -rf $(VENV) cdk.out .build .pytest_cache .ruff_cache .mypy_cache .hypothesis
