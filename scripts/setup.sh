#!/usr/bin/env bash
# Create .venv with exactly the pinned environment of requirements.lock (idempotent).
# GPU: LOTTERY_GPU=1 scripts/setup.sh installs TensorFlow's CUDA build instead (README "GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip --upgrade >/dev/null
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
fi
# Bytecode is compiled at install time: where PYTHONDONTWRITEBYTECODE is set (CI images,
# containers) Python would otherwise recompile TensorFlow's ~1,800 modules in every stage
# process (imports: ~14 s -> ~5 s per stage on 2 cores).
stamp=.venv/.lock-$(sha256sum requirements.lock pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing the pinned environment from requirements.lock into .venv ..."
  .venv/bin/uv pip sync --python .venv/bin/python --quiet --compile-bytecode requirements.lock
  .venv/bin/uv pip install --python .venv/bin/python --quiet --no-deps -e .
  if [ "${LOTTERY_GPU:-0}" = "1" ]; then
    .venv/bin/uv pip uninstall --python .venv/bin/python --quiet tensorflow-cpu
    .venv/bin/uv pip install --python .venv/bin/python --quiet --compile-bytecode "tensorflow[and-cuda]==2.21.0"
  fi
  rm -f .venv/.lock-*
  touch "$stamp"
fi
