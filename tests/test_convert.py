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


def run_cli(*args: str, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it: the start-up lines are hidden by the CLI itself
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "keras_archs.convert", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_help():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--arch" in result.stdout and "--option" in result.stdout and "--verbose" in result.stdout


def test_cli_usage_errors_exit_2_with_one_line(tmp_path):
    """Bad command lines fail before any work, with exit code 2 and one line naming the
    problem and the fix; nothing is written."""
    pth = tmp_path / "x.pth"
    torch.save({"x": torch.zeros(1)}, pth)
    out = str(tmp_path / "out.weights.h5")
    cases = {
        ("--arch", "resnet18", "--from", str(pth), "--to", out, "--bogus"): "unrecognized arguments: --bogus",
        ("--arch", "resnet18", "--from", str(tmp_path / "missing.pth"), "--to", out): "missing.pth: no such file",
        ("--arch", "resnet18", "--from", str(pth), "--to", str(tmp_path / "out.h5")): "name the output",
        ("--arch", "resnet18", "--from", str(pth), "--to", out, "--option", "downsample"): "expects name=value",
        ("--arch", "resnet18", "--from", str(pth), "--to", out, "--classes", "ten"): "invalid int value",
        ("--arch", "resnet5O", "--from", str(pth), "--to", out): "Unknown model 'resnet5O'. Did you mean",
        ("--arch", "resnet18", "--from", str(pth), "--to", out, "--option", "depthh=3"): "not an option of resnet18",
        ("--arch", "resnet18", "--from", str(pth), "--to", out, "--option", "shortcut='D'"): "shortcut must be one of",
        ("--from", str(pth), "--to", out): "the following arguments are required: --arch",
    }
    for args, message in cases.items():
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert result.stderr.startswith("error: ") and message in result.stderr, (args, result.stderr[-2000:])
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pth"]


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

    assert "oneDNN" not in result.stderr and "absl::InitializeLog" not in result.stderr  # TensorFlow's start-up lines

    wrong = tmp_path / "resnet34.weights.h5"
    result = run_cli("--arch", "resnet34", "--from", str(pth), "--to", str(wrong), "--verbose")
    assert result.returncode == 1
    failure = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(failure) == 1 and "resnet34" in failure[0]
    assert "oneDNN" in result.stderr  # --verbose lets TensorFlow's start-up lines through
    assert not wrong.exists()

    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip")
    result = run_cli("--arch", "resnet18", "--from", str(corrupt), "--to", str(tmp_path / "r18.keras"))
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "corrupt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


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
    # the paper's ResNet-50 fits neither file: weights="imagenet" builds torchvision's (v1.5) layout
    with pytest.raises(weights_lib.WeightsError, match=r"resnet50-0676ba61\.pth"):
        keras_archs.ResNet50(weights="imagenet", input_shape=(64, 64, 3))
    # options that only keras.applications' file fits pick it (named *_notop without a top)
    with pytest.raises(weights_lib.WeightsError, match=r"resnet50_weights_tf_dim_ordering_tf_kernels_notop\.h5"):
        keras_archs.ResNet50(weights="imagenet", include_top=False, conv_bias=True, input_shape=(64, 64, 3))
    with pytest.raises(weights_lib.WeightsError, match=r"resnet50_weights_tf_dim_ordering_tf_kernels_notop\.h5"):
        keras_archs.ResNet50(weights="imagenet:keras", include_top=False, input_shape=(64, 64, 3))
    # options that contradict every file: an error naming each clash, before anything is built
    with pytest.raises(
        weights_lib.WeightsError,
        match=r"contradict every official file: torchvision's resnet50-0676ba61\.pth needs downsample='3x3' "
        r"\(passed '1x1'\); keras\.applications' .* needs conv_bias=True \(passed False\)",
    ):
        keras_archs.ResNet50(weights="imagenet", downsample="1x1", conv_bias=False)
    # an already built model gets the file that fits it, or an error saying which options would
    with pytest.raises(weights_lib.WeightsError, match=r"no official file.*downsample='3x3'.*epsilon"):
        weights_lib.load_weights(keras_archs.ResNet50(input_shape=(64, 64, 3)), "imagenet", arch="resnet50")
    # variants without official files
    with pytest.raises(weights_lib.WeightsError, match="No official ImageNet weights are registered for 'resnet20'"):
        keras_archs.ResNet20(weights="imagenet")
    with pytest.raises(weights_lib.WeightsError, match="from keras are registered for 'resnet18'"):
        keras_archs.ResNet18(weights="imagenet:keras")


def test_imagenet_applies_the_options_its_file_needs(tmp_path, monkeypatch):
    """weights="imagenet" builds what the official file's network computes: torchvision's
    ResNet-50 strides the 3x3 convolution of its bottlenecks ("v1.5"), so the build gets
    downsample="3x3" unasked, and the logits are torchvision's."""
    pth = tmp_path / "resnet50-0676ba61.pth"
    reference = save_reference("resnet50", pth)
    fetched = []

    def fetch(url, file_hash, *, fail):
        fetched.append(url)
        return str(pth)

    monkeypatch.setattr(official, "fetch", fetch)
    model = keras_archs.ResNet50(weights="imagenet", input_shape=(64, 64, 3), classifier_activation=None)
    assert fetched == [official.TORCHVISION_URL + "resnet50-0676ba61.pth"]
    assert tuple(model.get_layer("conv3_block1_2_conv").strides) == (2, 2)
    x = images(64)
    assert_equivalent(keras_logits(model, x), torch_logits(reference, x), "resnet50 weights='imagenet'")


def test_imagenet_uses_a_cached_file_and_checks_its_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(official, "reachable", lambda url, timeout=3.0: pytest.fail("network probed"))
    os.makedirs(tmp_path / "models")
    # a file under the official name whose content is not the official file
    torch.save({"x": torch.zeros(1)}, tmp_path / "models" / "resnet18-f37072fd.pth")
    with pytest.raises(weights_lib.WeightsError, match="sha256 prefix"):
        keras_archs.ResNet18(weights="imagenet")
