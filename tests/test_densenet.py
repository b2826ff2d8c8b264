"""DenseNet: parameter counts derived from the paper independently of Keras, the live
keras.applications counts, Table 1's channel counts, the CIFAR depth rule, and output
equality with torchvision's and keras.applications' DenseNet-121 under a weight
copy by layer name (which is what weight import will do)."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import torch
import torchvision

import keras_archs
from keras_archs.models.densenet import cifar_depth_blocks

# ---------------------------------------------------------------------------------
# Pure-python counts from the paper (no Keras). Section 3: a dense layer is
# BN-ReLU-3x3 conv (k maps), with a bottleneck BN-ReLU-1x1 conv (4k maps) first;
# a transition is BN-ReLU-1x1 conv to floor(theta*m) maps + 2x2 average pooling;
# convolutions have no bias; BN has 2 trainable weights per channel; the classifier
# is BN-ReLU, global average pooling and a dense layer with bias.


def _dense_part_count(c: int, k: int, blocks, *, bottleneck: bool, theta: float, classes: int) -> int:
    total = 0
    for b, n in enumerate(blocks):
        for _ in range(n):
            if bottleneck:
                total += 2 * c + c * 4 * k + 2 * 4 * k + 4 * k * k * 9
            else:
                total += 2 * c + c * k * 9
            c += k
        if b < len(blocks) - 1:
            out = int(c * theta)
            total += 2 * c + c * out
            c = out
    return total + 2 * c + c * classes + classes


def paper_param_count(k: int, stem: int, blocks, classes: int = 1000) -> int:
    """ImageNet DenseNet-BC (Table 1): 7x7/2 conv (2k) + BN, bottlenecks, theta=0.5."""
    return 3 * stem * 49 + 2 * stem + _dense_part_count(stem, k, blocks, bottleneck=True, theta=0.5, classes=classes)


def paper_cifar_param_count(depth: int, k: int, bc: bool, classes: int = 10) -> int:
    """CIFAR DenseNet: L = 3n+4 (6n+4 for -BC), a bare 3x3 conv of 16 (2k for -BC) maps."""
    n = (depth - 4) // (6 if bc else 3)
    stem = 2 * k if bc else 16
    return 3 * stem * 9 + _dense_part_count(stem, k, (n, n, n), bottleneck=bc, theta=0.5 if bc else 1.0, classes=classes)


TABLE1 = {"densenet121": (32, 64, (6, 12, 24, 16)), "densenet161": (48, 96, (6, 12, 36, 24)), "densenet169": (32, 64, (6, 12, 32, 32)), "densenet201": (32, 64, (6, 12, 48, 32)), "densenet264": (32, 64, (6, 12, 64, 48))}
# Table 2's parameter column (millions) for C10.
TABLE2 = {
    "densenet_40_12": (40, 12, False, 1.0),
    "densenet_100_12": (100, 12, False, 7.0),
    "densenet_100_24": (100, 24, False, 27.2),
    "densenet_bc_100_12": (100, 12, True, 0.8),
    "densenet_bc_250_24": (250, 24, True, 15.3),
    "densenet_bc_190_40": (190, 40, True, 25.6),
}


@pytest.mark.parametrize("name", ["densenet121", "densenet161", "densenet169", "densenet201"])
def test_paper_counter_reproduces_torchvision(name):
    """The counter is right where a reference exists, so its DenseNet-264 value can be trusted."""
    with torch.device("meta"):
        tv = torchvision.models.get_model(name, weights=None)
    assert paper_param_count(*TABLE1[name]) == sum(p.numel() for p in tv.parameters())


def test_densenet264_count_is_the_paper_derivation():
    assert keras_archs.get_spec("densenet264").params == paper_param_count(*TABLE1["densenet264"]) == 33_337_704


@pytest.mark.parametrize("name", list(TABLE2))
def test_cifar_counts_are_derived_and_round_to_table2(name):
    depth, k, bc, millions = TABLE2[name]
    count = paper_cifar_param_count(depth, k, bc)
    assert keras_archs.get_spec(name).params == count
    assert round(count / 1e6, 1) == millions
    # The paper's stem rule matters: 2k stem filters (the authors' later code) would
    # give 28.1M for DenseNet (L=100, k=24), not Table 2's 27.2M.
    if name == "densenet_100_24":
        widened = 3 * (2 * k) * 9 + _dense_part_count(2 * k, k, (32, 32, 32), bottleneck=False, theta=1.0, classes=10)
        assert round(widened / 1e6, 1) == 28.1


# ---------------------------------------------------------------------------------
# keras.applications: live count_params (BN statistics included) for total_params.


@pytest.mark.parametrize("name,app", [("densenet121", "DenseNet121"), ("densenet169", "DenseNet169"), ("densenet201", "DenseNet201")])
def test_total_params_equals_keras_applications(name, app):
    spec = keras_archs.get_spec(name)
    assert spec.param_source.startswith("torchvision")  # params: torchvision; total: keras
    reference = getattr(keras.applications, app)(weights=None)
    assert reference.count_params() == spec.total_params


# ---------------------------------------------------------------------------------
# Structure: Table 1 channel counts and map sizes.


def test_densenet121_blocks_and_transitions_follow_table1():
    model = keras_archs.DenseNet121(include_top=False, input_shape=(224, 224, 3))
    k, stem, blocks = TABLE1["densenet121"]
    c, size = stem, 56
    assert model.get_layer("pool1").output.shape[1:] == (56, 56, 64)
    for b, n in enumerate(blocks, start=2):
        c += n * k
        assert model.get_layer(f"conv{b}_block{n}_concat").output.shape[1:] == (size, size, c)
        assert model.get_layer(f"conv{b}_block1_1_conv").filters == 4 * k  # bottleneck 4k
        assert model.get_layer(f"conv{b}_block1_2_conv").filters == k
        if b < 5:
            c //= 2
            size //= 2
            assert model.get_layer(f"pool{b}_pool").output.shape[1:] == (size, size, c)
    assert [model.get_layer(f"pool{b}_conv").filters for b in (2, 3, 4)] == [128, 256, 512]
    assert model.output.shape[1:] == (7, 7, 1024)
    assert sum(isinstance(layer, keras.layers.Concatenate) for layer in model.layers) == sum(blocks)


def test_densenet161_uses_k48_and_96_stem_filters():
    model = keras_archs.DenseNet161(include_top=False, input_shape=(64, 64, 3))
    assert model.get_layer("conv1_conv").filters == 96
    assert model.get_layer("conv2_block1_2_conv").filters == 48
    # 96 +6*48 = 384 -> 192 +12*48 = 768 -> 384 +36*48 = 2112 -> 1056 +24*48 = 2208
    assert [model.get_layer(f"pool{b}_conv").filters for b in (2, 3, 4)] == [192, 384, 1056]
    assert model.output.shape[-1] == 2208


def test_min_size_is_torchvisions_smallest_valid_input():
    tv = torchvision.models.densenet121(weights=None).features.eval()
    with torch.no_grad():
        assert tv(torch.zeros(1, 3, 29, 29)).shape[-1] == 1
        with pytest.raises(RuntimeError):
            tv(torch.zeros(1, 3, 28, 28))
    assert keras_archs.get_spec("densenet121").min_size == 29


@pytest.mark.parametrize(
    "name,n,stem,widths",
    [
        # no compression: 16 + 12*12 = 160 -> 160 + 144 = 304 -> 448
        ("densenet_40_12", 12, 16, (160, 304, 448)),
        # BC: 24 + 16*12 = 216 -> 108 + 192 = 300 -> 150 + 192 = 342
        ("densenet_bc_100_12", 16, 24, (216, 300, 342)),
    ],
)
def test_cifar_three_equal_blocks(name, n, stem, widths):
    model = keras_archs.get_model(name, include_top=False, input_shape=(32, 32, 3))
    assert model.get_layer("conv1_conv").filters == stem
    assert not [layer for layer in model.layers if layer.name.startswith("conv1_bn")]
    for b, (size, width) in enumerate(zip((32, 16, 8), widths), start=2):
        assert model.get_layer(f"conv{b}_block{n}_concat").output.shape[1:] == (size, size, width)
        with pytest.raises(ValueError):
            model.get_layer(f"conv{b}_block{n + 1}_concat")
    bc = name.startswith("densenet_bc")
    assert any(layer.name == "conv2_block1_2_conv" for layer in model.layers) == bc


def test_cifar_depth_rule():
    assert cifar_depth_blocks(40, False) == 12 and cifar_depth_blocks(100, False) == 32
    assert (cifar_depth_blocks(100, True), cifar_depth_blocks(250, True), cifar_depth_blocks(190, True)) == (16, 41, 31)
    with pytest.raises(ValueError, match=r"3n\+4"):
        keras_archs.DenseNet40_12(depth=41)
    with pytest.raises(ValueError, match=r"6n\+4"):
        keras_archs.DenseNetBC100_12(depth=40 + 3)
    with pytest.raises(ValueError, match=r"n >= 1"):
        keras_archs.DenseNet40_12(depth=4)
    with pytest.raises(ValueError, match="ImageNet DenseNet depth"):
        keras_archs.DenseNet121(depth=122)
    with pytest.raises(ValueError, match="compression"):
        keras_archs.DenseNetBC100_12(compression=0.0)


def test_dropout_after_every_convolution_but_the_first():
    model = keras_archs.DenseNet40_12(dropout_rate=0.2)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # L = 40 counts the convolutions and the classifier: 39 convs, dropout after 38.
    assert len(convs) == 39 and len(dropouts) == 38
    assert all(d.rate == 0.2 for d in dropouts)
    assert not [layer for layer in keras_archs.DenseNet40_12().layers if isinstance(layer, keras.layers.Dropout)]


# ---------------------------------------------------------------------------------
# Weight import by name: torchvision (short regex table) and keras.applications (same names).

TORCHVISION_TO_KERAS = [
    (r"features\.conv0", lambda m: "conv1_conv"),
    (r"features\.norm0", lambda m: "conv1_bn"),
    (r"features\.denseblock(\d)\.denselayer(\d+)\.norm1", lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_0_bn"),
    (r"features\.denseblock(\d)\.denselayer(\d+)\.conv1", lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_1_conv"),
    (r"features\.denseblock(\d)\.denselayer(\d+)\.norm2", lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_1_bn"),
    (r"features\.denseblock(\d)\.denselayer(\d+)\.conv2", lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_2_conv"),
    (r"features\.transition(\d)\.norm", lambda m: f"pool{int(m[1]) + 1}_bn"),
    (r"features\.transition(\d)\.conv", lambda m: f"pool{int(m[1]) + 1}_conv"),
    (r"features\.norm5", lambda m: "bn"),
    (r"classifier", lambda m: "predictions"),
]


def _keras_name(module_name: str) -> str:
    for pattern, to in TORCHVISION_TO_KERAS:
        match = re.fullmatch(pattern, module_name)
        if match:
            return to(match)
    raise KeyError(module_name)


def _copy_torch_module(module: torch.nn.Module, layer: keras.layers.Layer) -> None:
    if isinstance(module, torch.nn.Conv2d):
        values = [module.weight.detach().numpy().transpose(2, 3, 1, 0)]
        if module.bias is not None:
            values.append(module.bias.detach().numpy())
    elif isinstance(module, torch.nn.BatchNorm2d):
        values = [t.detach().numpy() for t in (module.weight, module.bias, module.running_mean, module.running_var)]
    else:
        values = [module.weight.detach().numpy().T, module.bias.detach().numpy()]
    layer.set_weights(values)


def test_torchvision_densenet121_weights_give_the_same_outputs():
    torch.manual_seed(0)
    tv = torchvision.models.densenet121(weights=None, num_classes=10).eval()
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for module in tv.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model = keras_archs.DenseNet121(classes=10, input_shape=(67, 67, 3), classifier_activation=None)
    weighted = {layer.name for layer in model.layers if layer.weights}
    mapped = set()
    for module_name, module in tv.named_modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.BatchNorm2d | torch.nn.Linear):
            name = _keras_name(module_name)
            _copy_torch_module(module, model.get_layer(name))
            mapped.add(name)
    assert mapped == weighted
    x = np.random.default_rng(0).uniform(0, 1, (2, 67, 67, 3)).astype("float32")
    with torch.no_grad():
        expected = tv(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, rtol=1e-4, atol=1e-4)


def test_keras_applications_weights_load_by_identical_names():
    reference = keras.applications.DenseNet121(weights=None, input_shape=(64, 64, 3), include_top=False)
    ours = keras_archs.DenseNet121(include_top=False, input_shape=(64, 64, 3), bn_epsilon=1.001e-5)
    ref_layers = {layer.name: layer for layer in reference.layers if layer.weights}
    our_layers = {layer.name: layer for layer in ours.layers if layer.weights}
    assert set(ref_layers) == set(our_layers)
    rng = np.random.default_rng(1)
    for name, layer in ref_layers.items():
        values = [rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in w.path or "gamma" in w.path else rng.normal(0, 0.05, w.shape).astype("float32") for w in layer.weights]
        layer.set_weights(values)
        our_layers[name].set_weights(values)
    x = rng.uniform(0, 1, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(ours(x, training=False)), np.asarray(reference(x, training=False)), rtol=1e-4, atol=1e-4)
