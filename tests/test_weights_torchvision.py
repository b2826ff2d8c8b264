"""torchvision state dicts load into our models with the same logits.

For each pair the torchvision model gets random (non-symmetric) weights and random
BatchNorm statistics and affine parameters, is put in eval mode, and its state dict
is saved with ``torch.save`` as a user would have it. Our model loads the file, and
both compute logits on the same random images: the largest difference must be
below 1e-4 of the logit scale and the top-1 classes must agree.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torchvision

import keras_archs
from keras_archs import weights as weights_lib
from keras_archs.weight_import import loader, torch_reader

RTOL = 1e-4
SIZE = 64

# registry name -> (torchvision builder, input size, our options, slow)
PAIRS = {
    "alexnet_owt": ("alexnet", 127, {}, False),
    "vgg11": ("vgg11", SIZE, {}, True),
    "vgg11_bn": ("vgg11_bn", SIZE, {}, True),
    "vgg13": ("vgg13", SIZE, {}, True),
    "vgg13_bn": ("vgg13_bn", SIZE, {}, True),
    "vgg16": ("vgg16", SIZE, {}, True),
    "vgg16_bn": ("vgg16_bn", SIZE, {}, True),
    "vgg19": ("vgg19", SIZE, {}, True),
    "vgg19_bn": ("vgg19_bn", SIZE, {}, True),
    "resnet18": ("resnet18", SIZE, {}, False),
    "resnet34": ("resnet34", SIZE, {}, False),
    "resnet50": ("resnet50", SIZE, {"downsample": "3x3"}, False),
    "resnet101": ("resnet101", SIZE, {"downsample": "3x3"}, True),
    "resnet152": ("resnet152", SIZE, {"downsample": "3x3"}, True),
    "resnext50_32x4d": ("resnext50_32x4d", SIZE, {}, False),
    "resnext101_32x8d": ("resnext101_32x8d", SIZE, {}, True),
    "resnext101_64x4d": ("resnext101_64x4d", SIZE, {}, True),
    "wide_resnet50_2": ("wide_resnet50_2", SIZE, {}, True),
    "wide_resnet101_2": ("wide_resnet101_2", SIZE, {}, True),
}


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (torch's init is already random and asymmetric) and
    random BatchNorm statistics/affine parameters, then eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                if m.affine:
                    m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                    m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
    return module.eval()


def torch_logits(module: torch.nn.Module, x_nhwc: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = module(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy()))
    return (out.logits if hasattr(out, "logits") else out).numpy()


def keras_logits(model, x_nhwc: np.ndarray) -> np.ndarray:
    out = model(x_nhwc, training=False)
    return np.asarray(out["main"] if isinstance(out, dict) else out)


def images(size: int, n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype("float32")


def relative_diff(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(ours - ref)) / max(1.0, float(np.max(np.abs(ref)))))


def save_reference(tv_name: str, path, seed: int = 0, **kwargs) -> torch.nn.Module:
    module = randomize(getattr(torchvision.models, tv_name)(weights=None, **kwargs), seed)
    torch.save(module.state_dict(), path)
    return module


def assert_equivalent(ours: np.ndarray, ref: np.ndarray, label: str) -> float:
    diff = relative_diff(ours, ref)
    assert diff <= RTOL, f"{label}: max |diff| / logit scale = {diff:.2e}"
    np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))
    return diff


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow, id=n) if slow else pytest.param(n, id=n) for n, (*_, slow) in PAIRS.items()],
)
def test_torchvision_logits_match(name, tmp_path):
    tv_name, size, options, _ = PAIRS[name]
    path = tmp_path / f"{name}.pth"
    reference = save_reference(tv_name, path)
    x = images(size)
    model = keras_archs.get_model(
        name, weights=str(path), input_shape=(size, size, 3), classifier_activation=None, **options
    )
    diff = assert_equivalent(keras_logits(model, x), torch_logits(reference, x), name)
    print(f"{name}: max relative diff {diff:.2e}")


def test_transposed_kernel_is_detected(tmp_path):
    """The comparison is sensitive: a spatially transposed (non-symmetric) kernel changes the logits."""
    path = tmp_path / "r18.pth"
    reference = save_reference("resnet18", path)
    state = reference.state_dict()
    state["layer1.0.conv1.weight"] = state["layer1.0.conv1.weight"].transpose(2, 3).contiguous()
    torch.save(state, tmp_path / "transposed.pth")
    model = keras_archs.ResNet18(
        weights=str(tmp_path / "transposed.pth"), input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    x = images(SIZE)
    assert relative_diff(keras_logits(model, x), torch_logits(reference, x)) > 10 * RTOL


def test_flatten_permutation_is_needed(tmp_path, monkeypatch):
    """Without the (C,H,W) -> (H,W,C) reordering of fc1's rows the logits differ."""
    path = tmp_path / "alexnet.pth"
    reference = save_reference("alexnet", path)
    monkeypatch.setattr(loader, "_flatten_input", lambda layer: None)
    wrong = keras_archs.AlexNetOWT(weights=str(path), input_shape=(127, 127, 3), classifier_activation=None)
    x = images(127)
    assert relative_diff(keras_logits(wrong, x), torch_logits(reference, x)) > 10 * RTOL


def test_legacy_torch_format_and_headless_model(tmp_path):
    """torch's pre-1.6 stream format (several official files use it) reads the same; a
    model without top ignores the file's classifier."""
    path = tmp_path / "legacy.pth"
    reference = randomize(torchvision.models.resnet18(weights=None))
    torch.save(reference.state_dict(), path, _use_new_zipfile_serialization=False)
    assert weights_lib.detect_format(str(path)) == "torch"
    tensors = torch_reader.read_state_dict(str(path))
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(tensors[key], value.numpy())
    model = keras_archs.ResNet18(weights=str(path), include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3))
    x = images(SIZE)
    with torch.no_grad():
        trunk = torch.nn.Sequential(*list(reference.children())[:-1])
        ref = trunk(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).flatten(1).numpy()
    assert relative_diff(np.asarray(model(x)), ref) <= RTOL


def test_checkpoint_wrappers_and_dataparallel_prefix(tmp_path):
    reference = randomize(torchvision.models.resnet18(weights=None))
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ckpt.pt")
    model = keras_archs.ResNet18(weights=str(tmp_path / "ckpt.pt"), input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    x = images(SIZE)
    assert relative_diff(keras_logits(model, x), torch_logits(reference, x)) <= RTOL


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": _Payload()}, path)
    with pytest.raises(weights_lib.WeightsError, match="refusing to unpickle global"):
        keras_archs.ResNet18(weights=str(path))
    legacy = tmp_path / "evil_legacy.pth"
    with open(legacy, "wb") as f:
        pickle.dump(_Payload(), f, protocol=2)
    with pytest.raises(weights_lib.WeightsError):
        keras_archs.ResNet18(weights=str(legacy))
    assert "must never run" not in capsys.readouterr().out


def test_wrong_architecture_and_shape_errors_leave_model_untouched(tmp_path):
    path = tmp_path / "r18.pth"
    save_reference("resnet18", path)
    model = keras_archs.ResNet34(input_shape=(SIZE, SIZE, 3))
    before = [np.array(v) for v in model.weights]
    with pytest.raises(weights_lib.WeightsError, match=r"different architecture.*missing from the file: conv2_block3_1_conv/kernel \('layer1\.2\.conv1\.weight'\)"):
        weights_lib.load_weights(model, str(path), arch="resnet34")
    for old, variable in zip(before, model.weights):
        np.testing.assert_array_equal(old, np.asarray(variable))
    # a head of 10 classes against the file's 1000: the layer and both shapes are named
    with pytest.raises(weights_lib.WeightsError, match=r"'predictions' \(kernel\).*\(512, 10\).*\(1000, 512\)"):
        keras_archs.ResNet18(weights=str(path), classes=10)
    # an extra tensor
    state = torch.load(path, weights_only=True)
    state["layer5.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(weights_lib.WeightsError, match=r"does not have: layer5\.0\.conv1\.weight"):
        keras_archs.ResNet18(weights=str(tmp_path / "extra.pth"))
    # a family with no torchvision table
    with pytest.raises(weights_lib.WeightsError, match="no torchvision name table"):
        keras_archs.ResNet20(weights=str(path))


def test_options_that_keep_shapes_are_checked(tmp_path):
    """torchvision's ResNet-50 is 'v1.5': loading it into the paper's layout would run
    silently with other outputs, so the loader refuses and says which option to pass."""
    path = tmp_path / "r50.pth"
    save_reference("resnet50", path)
    with pytest.raises(weights_lib.WeightsError, match=r"downsample='3x3'"):
        keras_archs.ResNet50(weights=str(path), input_shape=(SIZE, SIZE, 3))
    with pytest.raises(weights_lib.WeightsError, match=r"epsilon"):
        keras_archs.ResNet50(weights=str(path), downsample="3x3", bn_epsilon=1e-3, input_shape=(SIZE, SIZE, 3))
