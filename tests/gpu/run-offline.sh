#!/usr/bin/env bash
# On a GPU machine with no network: install the driver from .state/gpu-bundle (tests/gpu/bundle.sh) into
# a venv and run the GPU tests. REMOTE_TRAINER_GPU_PYTHON: the python with CUDA torch (default python3).
# usage: tests/gpu/run-offline.sh [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
bundle=$PWD/.state/gpu-bundle
venv=${GPU_TEST_VENV:-/tmp/remote-trainer-gpu}
if [ ! -x "$venv/bin/driver" ]; then
  base=$(command -v python3.12 || command -v python3)
  "$base" -m venv "$venv" 2>/dev/null || uv venv -q "$venv" --python "$base"
  pip=("$venv/bin/python" -m pip)
  "$venv/bin/python" -m pip --version >/dev/null 2>&1 || pip=(uv pip --python "$venv/bin/python")
  "${pip[@]}" install -q --no-index --find-links "$bundle/wheels" \
    "ansible-core>=2.19,<2.20" "ansible-runner>=2.4,<2.5" click pytest
  "${pip[@]}" install -q --no-index --find-links "$bundle/wheels" --no-deps .
fi
export ANSIBLE_COLLECTIONS_PATH=$bundle/collections
export REMOTE_TRAINER_GPU_PYTHON=${REMOTE_TRAINER_GPU_PYTHON:-$(command -v python3)}
exec "$venv/bin/python" -m pytest -p no:cacheprovider -m gpu tests/gpu -rA "$@"
