"""Family-specific checks for LeNet-5, AlexNet, VGG, NiN and ResNet: layer-by-layer
structure from the papers' tables, custom layers against numpy, option behaviour."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_archs
from keras_archs.layers import (
    ConnectionTableConv2D,
    FanInUniform,
    LocalResponseNormalization,
    TrainableSubsampling,
    ZeroPadShortcut,
)
from keras_archs.models.lenet import C3_CONNECTION_TABLE
from tests.conftest import trainable_count


def _layer_params(model, name):
    return int(sum(np.prod(w.shape) for w in model.get_layer(name).trainable_weights))


# --- LeNet-5 ---------------------------------------------------------------------


def test_lenet_per_layer_counts_and_maps():
    model = keras_archs.LeNet5()
    counts = {n: _layer_params(model, n) for n in ("c1", "s2", "c3", "s4", "c5", "f6")}
    # Section II.B: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164.
    assert counts == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164}
    assert model.get_layer("c3").output.shape[1:] == (10, 10, 16)
    assert model.get_layer("c5").output.shape[1:] == (1, 1, 120)


def test_lenet_connection_table_is_table_one():
    sizes = [len(row) for row in C3_CONNECTION_TABLE]
    assert sizes == [3] * 6 + [4] * 9 + [6]
    # Every S2 map feeds exactly 10 of the 16 C3 maps in Table I.
    assert [sum(m in row for row in C3_CONNECTION_TABLE) for m in range(6)] == [10] * 6
    full = keras_archs.LeNet5(connection_table="full")
    assert _layer_params(full, "c3") == 16 * (6 * 25 + 1)
    with pytest.raises(ValueError, match="connection_table"):
        keras_archs.LeNet5(connection_table="partial")


def test_c3_map_depends_only_on_its_connected_inputs():
    model = keras_archs.LeNet5(include_top=False)
    sub = keras.Model(model.input, model.get_layer("c3").output)
    s2_input = keras.Model(model.input, model.get_layer("s2_tanh").output)
    c3 = model.get_layer("c3")
    x = np.random.default_rng(0).normal(size=(1, 14, 14, 6)).astype("float32")
    base = np.asarray(c3(x))
    x2 = x.copy()
    x2[..., 5] += 1.0  # perturb S2 map 5
    changed = np.abs(np.asarray(c3(x2)) - base).max(axis=(0, 1, 2)) > 0
    assert changed.tolist() == [5 in row for row in C3_CONNECTION_TABLE]
    assert sub.output.shape[-1] == 16 and s2_input.output.shape[-1] == 6


def test_fan_in_uniform_is_appendix_c():
    """LeCun et al. 1998, Appendix C: uniform in +-2.4 / F_i, F_i the unit's fan-in."""
    init = FanInUniform(seed=3)
    values = np.asarray(init((5, 5, 16, 120)))  # C5: fan-in 400
    assert np.abs(values).max() <= 2.4 / 400
    assert np.abs(values).max() > 0.99 * 2.4 / 400  # fills the range (48,000 samples)
    np.testing.assert_allclose(values.std(), 2.4 / 400 / np.sqrt(3), rtol=0.02)
    assert np.abs(np.asarray(FanInUniform(fan_in=4)((1000,)))).max() <= 0.6
    restored = keras.initializers.deserialize(keras.initializers.serialize(FanInUniform(1.5, fan_in=7)))
    assert isinstance(restored, FanInUniform) and (restored.limit, restored.fan_in) == (1.5, 7)
    with pytest.raises(ValueError, match="fan_in"):
        FanInUniform()((6,))


def test_lenet_starts_from_appendix_c_initialisation():
    model = keras_archs.LeNet5()
    fan_ins = {"c1": 25, "c5": 400, "f6": 120, "predictions": 84, "s2": 4, "s4": 4}
    for name, fan_in in fan_ins.items():
        weight = model.get_layer(name).weights[0]  # kernel, or the subsampling coefficient
        values = np.asarray(weight)
        assert np.abs(values).max() <= 2.4 / fan_in, name
        assert np.abs(values).max() > 0.5 * 2.4 / fan_in, name
    c3 = model.get_layer("c3")
    for row, kernel in zip(C3_CONNECTION_TABLE, c3.kernels):  # fan-in: 25 per connected S2 map
        assert np.abs(np.asarray(kernel)).max() <= 2.4 / (25 * len(row))
    assert isinstance(c3.kernel_initializer, FanInUniform)
    assert isinstance(ConnectionTableConv2D.from_config(c3.get_config()).kernel_initializer, FanInUniform)
    assert all(not np.asarray(layer.bias).any() for layer in model.layers if hasattr(layer, "bias"))
    glorot = keras_archs.LeNet5(initializer="glorot_uniform")
    assert np.abs(np.asarray(glorot.get_layer("c5").kernel)).max() > 2.4 / 400
    np.testing.assert_array_equal(np.asarray(glorot.get_layer("s2").coefficient), np.ones(6))


def test_subsampling_is_scaled_window_sum():
    layer = TrainableSubsampling()
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype("float32")
    layer.build(x.shape)
    layer.coefficient.assign([0.5, -1.0, 2.0])
    layer.bias.assign([0.1, 0.2, 0.3])
    expected = x.reshape(2, 2, 2, 2, 2, 3).sum(axis=(2, 4)) * [0.5, -1.0, 2.0] + [0.1, 0.2, 0.3]
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-6)


# --- AlexNet / LRN ----------------------------------------------------------------


def test_lrn_matches_paper_formula():
    x = np.random.default_rng(2).uniform(-3, 3, size=(1, 2, 2, 7)).astype("float32")
    n, k, alpha, beta = 5, 2.0, 1e-2, 0.75
    expected = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - n // 2), min(6, c + n // 2)
        expected[..., c] = x[..., c] / (k + alpha * (x[..., lo : hi + 1] ** 2).sum(-1)) ** beta
    out = LocalResponseNormalization(depth=n, k=k, alpha=alpha, beta=beta)(x)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNormalization(depth=4)


def test_lrn_groups_normalise_each_tower_alone():
    x = np.random.default_rng(3).uniform(-3, 3, size=(1, 2, 2, 10)).astype("float32")
    grouped = LocalResponseNormalization(depth=5, alpha=0.1, groups=2)
    single = LocalResponseNormalization(depth=5, alpha=0.1)
    expected = np.concatenate([np.asarray(single(x[..., :5])), np.asarray(single(x[..., 5:]))], axis=-1)
    np.testing.assert_allclose(np.asarray(grouped(x)), expected, rtol=1e-6)
    # The ungrouped window at channel 4 reaches channels 5 and 6 of the other tower.
    assert not np.allclose(np.asarray(single(x))[..., 4], expected[..., 4])
    assert LocalResponseNormalization.from_config(grouped.get_config()).groups == 2
    with pytest.raises(ValueError, match="groups"):
        LocalResponseNormalization(groups=3)(x)


def test_alexnet_lrn_stays_inside_each_tower():
    """Section 3.2: the two GPUs normalise their own maps; grouped=False has one tower."""
    with keras.StatelessScope():
        towers = keras_archs.AlexNet()
        single = keras_archs.AlexNet(grouped=False)
    assert [towers.get_layer(n).groups for n in ("conv1_lrn", "conv2_lrn")] == [2, 2]
    assert [single.get_layer(n).groups for n in ("conv1_lrn", "conv2_lrn")] == [1, 1]


def test_alexnet_paper_layout():
    model = keras_archs.AlexNet()
    expected = {  # Section 3.5, with the two towers as groups
        "conv1": (34_944, 1), "conv2": (307_456, 2), "conv3": (885_120, 1),
        "conv4": (663_936, 2), "conv5": (442_624, 2),
    }  # fmt: skip
    for name, (count, groups) in expected.items():
        assert _layer_params(model, name) == count
        assert model.get_layer(name).groups == groups
    assert model.get_layer("conv1_relu").output.shape[1:] == (55, 55, 96)
    assert model.get_layer("conv5_pool").output.shape[1:] == (6, 6, 256)
    assert [type(model.get_layer(n)).__name__ for n in ("conv1_lrn", "conv2_lrn")] == ["LocalResponseNormalization"] * 2
    assert float(model.get_layer("conv2").bias.numpy().mean()) == 1.0  # Section 5


def test_alexnet_options():
    plain = keras_archs.AlexNet(lrn=False, grouped=False)
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in plain.layers)
    # Ungrouped conv2/4/5 double their kernels.
    assert trainable_count(plain) == 60_965_224 + 5 * 5 * 48 * 256 + 3 * 3 * 192 * 384 + 3 * 3 * 192 * 256


# --- VGG ------------------------------------------------------------------------


@pytest.mark.parametrize("name,convs", [("vgg11", 8), ("vgg13", 10), ("vgg16_c", 13), ("vgg16", 13), ("vgg19", 16)])
def test_vgg_weight_layers(name, convs):
    """Table 1: 11/13/16/16/19 weight layers = convolutions + 3 dense layers."""
    model = keras_archs.get_model(name, input_shape=(32, 32, 3), include_top=False)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) == convs


@pytest.mark.parametrize(
    "name, maps, reference_size", [("vgg16", (512, 14), 7), ("vgg11_bn", (512, 14), 7), ("alexnet_owt", (256, 13), 6)]
)
def test_headless_model_returns_the_last_maps_at_any_size(name, maps, reference_size):
    """As keras.applications: the adaptive pooling belongs to the classifier, so
    include_top=False gives the last stage's maps (14x14 at 448, not torchvision's 7x7)."""
    spec = keras_archs.get_spec(name)
    channels, size_at_448 = maps
    with keras.StatelessScope():
        open_size = spec.builder(include_top=False, input_shape=(None, None, 3))
        at_448 = spec.builder(include_top=False, input_shape=(448, 448, 3))
        with_top = spec.builder(input_shape=(448, 448, 3))
    assert tuple(open_size.output.shape) == (None, None, None, channels)
    assert tuple(at_448.output.shape) == (None, size_at_448, size_at_448, channels)
    assert not any(isinstance(layer, keras.layers.AdaptiveAveragePooling2D) for layer in at_448.layers)
    assert with_top.get_layer("avgpool").output.shape[1:] == (reference_size, reference_size, channels)
    assert trainable_count(with_top) == spec.params  # the head keeps its shapes at any size


def test_vgg_c_has_1x1_and_lrn_variant_has_lrn():
    c = keras_archs.VGG16C(include_top=False, input_shape=(32, 32, 3))
    assert [c.get_layer(f"block{b}_conv3").kernel_size for b in (3, 4, 5)] == [(1, 1)] * 3
    lrn = keras_archs.VGG11LRN(include_top=False, input_shape=(32, 32, 3))
    assert isinstance(lrn.get_layer("block1_lrn"), LocalResponseNormalization)


# --- NiN ------------------------------------------------------------------------


def test_nin_classifier_is_last_mlpconv():
    model = keras_archs.NiNCIFAR(classes=10)
    assert model.get_layer("mlpconv3_cccp2").filters == 10
    assert not any(isinstance(layer, keras.layers.Dense) for layer in model.layers)
    headless = keras_archs.NiNCIFAR(include_top=False)
    assert headless.output.shape[-1] == 192
    assert model.get_layer("mlpconv2_pool").output.shape[1:3] == (8, 8)


# --- ResNet ---------------------------------------------------------------------


def test_zero_pad_shortcut():
    x = np.random.default_rng(3).normal(size=(1, 4, 4, 2)).astype("float32")
    y = np.asarray(ZeroPadShortcut(6, 2)(x))
    assert y.shape == (1, 2, 2, 6)
    np.testing.assert_array_equal(y[..., 2:4], x[:, ::2, ::2, :])
    assert not y[..., :2].any() and not y[..., 4:].any()


def test_shortcut_options_change_only_projections():
    a = keras_archs.ResNet34(shortcut="A")
    b = keras_archs.ResNet34(shortcut="B")
    c = keras_archs.ResNet34(shortcut="C")
    projections_b = 3 * 0 + (64 * 128 + 128 * 256 + 256 * 512) + 2 * (128 + 256 + 512)
    assert trainable_count(b) - trainable_count(a) == projections_b
    # C projects every shortcut: 16 blocks in all.
    assert sum(layer.name.endswith("_0_conv") for layer in c.layers) == 16
    assert sum(layer.name.endswith("_0_conv") for layer in b.layers) == 3


def test_bottleneck_downsample_switch():
    paper = keras_archs.ResNet50(include_top=False, input_shape=(64, 64, 3))
    v15 = keras_archs.ResNet50(include_top=False, input_shape=(64, 64, 3), downsample="3x3")
    assert paper.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert paper.get_layer("conv3_block1_2_conv").strides == (1, 1)
    assert v15.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert v15.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert trainable_count(paper) == trainable_count(v15)


def test_plain_net_has_no_shortcuts_and_cifar_layout():
    plain = keras_archs.Plain20()
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    res = keras_archs.ResNet20()
    assert sum(isinstance(layer, keras.layers.Add) for layer in res.layers) == 9
    # 6n+2 weighted layers: 1 + 6n convolutions + 1 dense.
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in res.layers) == 19
    assert [res.get_layer(f"conv{s}_block3_out").output.shape[1:] for s in (2, 3, 4)] == [
        (32, 32, 16), (16, 16, 32), (8, 8, 64),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="6n\\+2"):
        keras_archs.ResNet20(depth=21)
