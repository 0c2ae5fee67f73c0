# `make study` runs the default study; `make test` runs lint, type check and tests.
# Both install the pinned environment (.venv, from this platform's requirements*.lock) first.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup study test lint lock ui

setup:
	@scripts/setup.sh

study: setup
	dvc repro

lint: setup
	ruff check .
	ruff format --check .
	mypy

test: lint
	pytest -q -n auto --maxprocesses 2 --dist loadscope --no-loadscope-reorder

# The MLflow UI of the local store, on this machine only (http://127.0.0.1:5000).
# A shared `mlflow server` is set with MLFLOW_TRACKING_URI instead (README "MLflow").
ui: setup
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port $${PORT:-5000}

# Re-resolve the pinned environments after editing pyproject.toml dependencies: one lock per
# platform (scripts/setup.sh picks one). Versions already locked are kept unless a changed
# requirement forces otherwise (uv prefers the pins of the existing output file).
LOCK = uv pip compile pyproject.toml --extra dev --python-version 3.11 --quiet
lock:
	$(LOCK) --python-platform x86_64-manylinux_2_28 -o requirements.lock
	$(LOCK) --python-platform aarch64-manylinux_2_28 -o requirements-linux-aarch64.lock
	$(LOCK) --python-platform aarch64-apple-darwin -o requirements-macos-arm64.lock
	$(LOCK) --python-platform x86_64-manylinux_2_28 --extra gpu \
	  --no-emit-package tensorflow-cpu -o requirements-gpu.lock
