#!/usr/bin/env bash
# Set up elang-serve on a fresh machine: a .venv with Python 3.11 and the package
# installed (editable) with its export and test extras. Safe to run again: it only
# reinstalls when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for py in "${PYTHON:-}" python3.11 python3; do
    [ -n "$py" ] || continue
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$py"; return 0
    fi
  done
  echo "elang-serve needs Python 3.11 (the bundled Triton Python backend stub is built per version); set PYTHON=" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py=$(pick_python)
  echo "setup: creating .venv with $py" >&2
  "$py" -m venv .venv
fi

stamp=.venv/.elang-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && .venv/bin/python -c 'import elang, torch, optimum' 2>/dev/null; then
  exit 0
fi

# torch 2.13.0 (CPU build) lies in /opt/wheels on the project's machines; elsewhere pip
# takes it from PyPI.
links=()
[ -d /opt/wheels ] && links=(--find-links /opt/wheels)
echo "setup: installing elang-serve[export,test] into .venv (first time: ~2-4 minutes)" >&2
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check "${links[@]}" -e ".[export,test]"
touch "$stamp"
