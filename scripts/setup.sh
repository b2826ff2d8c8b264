#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine: a venv with the
# pinned Python packages, and Debian's Fashion-MNIST files (the default dataset).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
.venv/bin/python -m pip install --quiet --no-deps -e .

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq dataset-fashion-mnist || echo "warning: could not install dataset-fashion-mnist; the demo needs it" >&2
fi
