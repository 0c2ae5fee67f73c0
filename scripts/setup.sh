#!/usr/bin/env bash
# Create .venv with exactly the pinned environment of this platform's lock (idempotent):
#   x86-64 Linux   requirements.lock            (LOTTERY_GPU=1: requirements-gpu.lock, CUDA)
#   aarch64 Linux  requirements-linux-aarch64.lock
#   arm64 macOS    requirements-macos-arm64.lock
# Needs Python 3.11-3.13: $PYTHON, else python3, python3.13, python3.12, python3.11 on PATH,
# else a uv-managed CPython 3.11 (uv from PATH, or installed with pip into a temporary venv).
# `scripts/setup.sh --plan` prints the lock and the stamp it would use, and installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.8
GPU=${LOTTERY_GPU:-0}

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

os=$(uname -s) arch=$(uname -m)
case "$os/$arch/$GPU" in
  Linux/x86_64/0) lock=requirements.lock ;;
  Linux/x86_64/1) lock=requirements-gpu.lock ;;
  Linux/aarch64/0 | Linux/arm64/0) lock=requirements-linux-aarch64.lock ;;
  Darwin/arm64/0) lock=requirements-macos-arm64.lock ;;
  */*/1) die "LOTTERY_GPU=1 (TensorFlow's CUDA build) is for x86-64 Linux only, not $os $arch." ;;
  */*/0) die "no lock for $os $arch: supported are x86-64 Linux, aarch64 Linux, arm64 macOS." ;;
  *) die "LOTTERY_GPU must be 0 or 1 (got '$GPU')." ;;
esac
# The stamp names everything that decides the environment: the lock, the project's metadata,
# this script and the GPU switch. Changing any of them reinstalls on the next run.
stamp=.venv/.lock-$( (sha256sum "$lock" pyproject.toml scripts/setup.sh; echo "LOTTERY_GPU=$GPU") \
  | sha256sum | cut -c1-16)
if [ "${1:-}" = "--plan" ]; then
  echo "lock=$lock"
  echo "stamp=$stamp"
  exit 0
fi

suitable() {  # suitable PYTHON: runs and is 3.11, 3.12 or 3.13
  "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null
}
version() { "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo "none"; }

if [ -x .venv/bin/python ] && ! suitable .venv/bin/python; then
  say ".venv has Python $(version .venv/bin/python), outside 3.11-3.13: recreating it."
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  PY=""
  for cand in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
    if command -v "$cand" >/dev/null 2>&1 && suitable "$cand"; then PY=$cand; break; fi
  done
  if [ -n "$PY" ]; then
    say "creating .venv with $PY (Python $(version "$PY"))."
    "$PY" -m venv .venv
  else
    say "no Python 3.11-3.13 found (python3 is $(version python3)); getting one through uv."
    UV=$(command -v uv || true)
    if [ -z "$UV" ]; then
      command -v python3 >/dev/null 2>&1 ||
        die "neither a Python 3.11-3.13 nor uv nor any python3 to install uv with; install uv (https://docs.astral.sh/uv/) and rerun."
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
      say "installing uv $UV_VERSION into a temporary venv (with $(command -v python3))."
      python3 -m venv "$tmp/venv"
      "$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
      UV=$tmp/venv/bin/uv
    fi
    say "asking uv for CPython 3.11 (one it finds, else it downloads one: \`uv python install\`)."
    "$UV" venv --quiet --seed --python 3.11 .venv
    say "created .venv with Python $(version .venv/bin/python) ($(.venv/bin/python -c 'import sys; print(sys.base_prefix)'))."
  fi
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip --upgrade >/dev/null
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
# Bytecode is compiled at install time: where PYTHONDONTWRITEBYTECODE is set (CI images,
# containers) Python would otherwise recompile TensorFlow's ~1,800 modules in every stage
# process (imports: ~14 s -> ~5 s per stage on 2 cores).
if [ ! -f "$stamp" ]; then
  say "installing the pinned environment from $lock into .venv (LOTTERY_GPU=$GPU) ..."
  .venv/bin/uv pip sync --python .venv/bin/python --quiet --compile-bytecode "$lock"
  .venv/bin/uv pip install --python .venv/bin/python --quiet --no-deps -e .
  rm -f .venv/.lock-*
  touch "$stamp"
fi
