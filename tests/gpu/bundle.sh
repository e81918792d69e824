#!/usr/bin/env bash
# Prepare, on a machine that reaches PyPI, what tests/gpu/run-offline.sh needs on a GPU machine that
# reaches nothing: wheels of the driver's dependencies (and pytest) for that machine's python, and the
# one collection the roles use (ansible.posix, copied from this checkout's venv).
# usage: tests/gpu/bundle.sh [PYTHON_VERSION]   (default 3.12) -> .state/gpu-bundle/
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${1:-3.12}
out=.state/gpu-bundle
rm -rf "$out" && mkdir -p "$out/wheels" "$out/collections/ansible_collections/ansible"
.venv/bin/pip download -q -d "$out/wheels" --only-binary=:all: --python-version "$version" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  "ansible-core>=2.19,<2.20" "ansible-runner>=2.4,<2.5" "click>=8.1" "pytest>=8" hatchling 2>&1 \
  | { grep -v "^WARNING: Location" || true; }
posix=$(.venv/bin/python -c 'import ansible_collections.ansible.posix as p; print(list(p.__path__)[0])')
cp -r "$posix" "$out/collections/ansible_collections/ansible/posix"
find "$out" -name __pycache__ -prune -exec rm -rf {} +
du -sh "$out"
