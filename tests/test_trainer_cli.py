"""The command-line convention of every trainers tool (trainers/cli.py): ``--help`` exits 0; a
usage error exits 2 and a failure exits 1, each with one ``error:`` line and nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ("trainers.run", "trainers.export", "trainers.predict", "trainers.prune")


def _python(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def files(tmp_path):
    """A corrupt model of each kind and one image, in a folder of their own."""
    (tmp_path / "corrupt.keras").write_text("not a model")
    (tmp_path / "corrupt.tflite").write_text("not a model")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "image.png")
    return tmp_path


@pytest.mark.parametrize("module", MODULES)
def test_help_exits_0(module):
    done = _python("-m", module, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "verbose" in done.stdout  # absl spells boolean flags --[no]verbose


def _usage_and_failure(module: str, tmp) -> tuple[list[str], list[str]]:
    """(a usage error, a failure) on the command line of ``module``, writing under ``tmp/out``."""
    out = str(tmp / "out")
    keras_file, tflite_file, image = (str(tmp / n) for n in ("corrupt.keras", "corrupt.tflite", "image.png"))
    return {
        "trainers.run": (
            ["--epochs=abc", "--model_dir", out],  # malformed value
            ["--arch", "lenet5", "--dataset", "synthetic:64", "--weights", keras_file, "--model_dir", out],
        ),
        "trainers.export": (
            ["--arch", "no_such_net", "--output", out],  # unknown architecture
            ["--weights", keras_file, "--output", out],
        ),
        "trainers.predict": (
            ["--model", tflite_file, str(tmp / "missing.png")],  # a named file that does not exist
            ["--model", tflite_file, image],
        ),
        "trainers.prune": (
            ["--weights", keras_file, "--no_such_flag", "--output", out],  # unknown flag
            ["--weights", keras_file, "--output", os.path.join(out, "pruned.keras")],
        ),
    }[module]


@pytest.mark.parametrize("module", MODULES)
def test_usage_error_exits_2_and_failure_exits_1(module, files):
    usage, failure = _usage_and_failure(module, files)
    for args, code in ((usage, 2), (failure, 1)):
        done = _python("-m", module, *args)
        assert done.returncode == code, (args, done.returncode, done.stderr[-3000:])
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
        assert not (files / "out").exists(), f"{module} {args} wrote files"
