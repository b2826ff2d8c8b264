"""The conversion CLI and weights="imagenet" (official files; offline here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

import keras_archs
from keras_archs import weights as weights_lib
from keras_archs.weight_import import official
from tests.test_weights_torchvision import assert_equivalent, images, keras_logits, save_reference, torch_logits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "keras_archs.convert", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_cli_help():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--arch" in result.stdout and "--option" in result.stdout


def test_cli_round_trip_and_wrong_architecture(tmp_path):
    pth = tmp_path / "r50.pth"
    reference = save_reference("resnet50", pth)
    out = tmp_path / "resnet50.weights.h5"
    result = run_cli("--arch", "resnet50", "--from", str(pth), "--to", str(out), "--option", "downsample=3x3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.exists() and "verified" in result.stdout
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".convert-")]
    model = keras_archs.ResNet50(weights=str(out), downsample="3x3", input_shape=(64, 64, 3), classifier_activation=None)
    x = images(64)
    assert_equivalent(keras_logits(model, x), torch_logits(reference, x), "cli resnet50")

    wrong = tmp_path / "resnet34.weights.h5"
    result = run_cli("--arch", "resnet34", "--from", str(pth), "--to", str(wrong))
    assert result.returncode == 1
    assert "error:" in result.stderr and "resnet34" in result.stderr
    assert not wrong.exists()


def test_imagenet_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setattr(official, "reachable", lambda url, timeout=3.0: False)
    start = time.monotonic()
    with pytest.raises(weights_lib.WeightsError, match=r"resnet18-f37072fd\.pth.*weights='/path/to/resnet18-f37072fd\.pth'"):
        keras_archs.ResNet18(weights="imagenet")
    assert time.monotonic() - start < 60  # no download attempt, no retries (the build is most of it)


def test_reachability_probe_is_short():
    start = time.monotonic()
    assert not official.reachable("http://127.0.0.1:9/x", timeout=1.0)
    assert time.monotonic() - start < 5


def test_imagenet_picks_the_file_that_fits_the_options(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(official, "reachable", lambda url, timeout=3.0: False)
    # the paper's ResNet-50 fits neither torchvision's (v1.5) nor keras.applications' file
    with pytest.raises(weights_lib.WeightsError, match=r"no official file.*downsample='3x3'.*epsilon"):
        keras_archs.ResNet50(weights="imagenet")
    # keras.applications' file (named *_notop without a top) for the keras options
    with pytest.raises(weights_lib.WeightsError, match=r"resnet50_weights_tf_dim_ordering_tf_kernels_notop\.h5"):
        keras_archs.ResNet50(
            weights="imagenet", include_top=False, conv_bias=True, bn_epsilon=1.001e-5, input_shape=(64, 64, 3)
        )
    # variants without official files
    with pytest.raises(weights_lib.WeightsError, match="No official ImageNet weights are registered for 'resnet20'"):
        keras_archs.ResNet20(weights="imagenet")
    with pytest.raises(weights_lib.WeightsError, match="from keras are registered for 'resnet18'"):
        keras_archs.ResNet18(weights="imagenet:keras")


def test_imagenet_uses_a_cached_file_and_checks_its_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(official, "reachable", lambda url, timeout=3.0: pytest.fail("network probed"))
    os.makedirs(tmp_path / "models")
    # a file under the official name whose content is not the official file
    torch.save({"x": torch.zeros(1)}, tmp_path / "models" / "resnet18-f37072fd.pth")
    with pytest.raises(weights_lib.WeightsError, match="sha256 prefix"):
        keras_archs.ResNet18(weights="imagenet")
