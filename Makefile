# `make study` runs the default study; `make test` runs lint, type check and tests.
# Both install the pinned environment (.venv, from requirements.lock) first.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup study test lint lock

setup:
	@scripts/setup.sh

study: setup
	dvc repro

lint: setup
	ruff check .
	ruff format --check .
	mypy

test: lint
	pytest -q

# Re-resolve the pinned environment after editing pyproject.toml dependencies.
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o requirements.lock
