#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: a venv with the pinned runtime
# packages (requirements.txt) and Debian's Fashion-MNIST files (the default dataset).
# `scripts/setup.sh --dev` adds the test and lint tools and the reference implementations
# the tests compare against (requirements-dev.txt: torch, torchvision, timm, pytest, ruff).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
echo "installing the runtime packages (TensorFlow, Keras, ...) into .venv"
.venv/bin/python -m pip install --progress-bar on -r requirements.txt | grep -v "^Requirement already satisfied" || true
.venv/bin/python -m pip install --quiet --no-deps -e .
if [ "$dev" = 1 ]; then
  echo "installing the test dependencies (PyTorch/torchvision and timm as references, pytest, ruff) into .venv"
  .venv/bin/python -m pip install --progress-bar on -r requirements-dev.txt | grep -v "^Requirement already satisfied" || true
fi
# pip's exit status is hidden by the filter above: check the imports instead.
.venv/bin/python -c "import tensorflow, keras, absl, PIL, matplotlib" 
[ "$dev" = 0 ] || .venv/bin/python -c "import torch, torchvision, timm, pytest, xdist"

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq dataset-fashion-mnist || echo "warning: could not install dataset-fashion-mnist; the demo needs it" >&2
fi
