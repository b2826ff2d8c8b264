"""Multiply-accumulate counts (keras_archs.flops) against torchvision's and the registry's.

torchvision's weights carry ``_ops``, the GMACs of one image at the weights' evaluation
crop size (``weights.transforms().crop_size``), computed with PyTorch's FLOP counter
(convolutions and matrix multiplications, ``2 * MACs``, halved). For every variant with a
torchvision counterpart our count at that size must equal PyTorch's FLOP counter run on
torchvision's model (on the ``meta`` device: shapes only, no computation) exactly, and
so lie within 1 % of the published ``_ops`` (which is rounded to 3 decimals: 0.04 for
ShuffleNet-v2 x0.5's 0.0405, so the bound is 1 % or that rounding, whichever is larger).

Each variant is built once, at its default size, inside ``keras.StatelessScope`` (graph
and shapes, no weight values), checked against its spec's ``macs`` where the spec has one,
and counted at torchvision's crop size from shapes only. The variants whose options change
the arithmetic are built a second time with torchvision's options (ResNet-50/101/152 stride
their 3x3 convolution, "v1.5"); EfficientNet's default ``"same"`` padding gives the maps
torchvision's symmetric padding gives, so its default build is counted.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import keras_archs
from keras_archs.flops import count_macs, layer_macs
from tests.conftest import registry_params

V1_5 = {"downsample": "3x3"}
# registry name -> (torchvision name, options of ours that change the count)
TORCHVISION = {
    "alexnet_owt": ("alexnet", {}),
    **{n: (n, {}) for n in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")},
    "resnet18": ("resnet18", {}),
    "resnet34": ("resnet34", {}),
    "resnet50": ("resnet50", V1_5),
    "resnet101": ("resnet101", V1_5),
    "resnet152": ("resnet152", V1_5),
    **{n: (n, {}) for n in ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d")},
    **{n: (n, {}) for n in ("wide_resnet50_2", "wide_resnet101_2")},
    **{n: (n, {}) for n in ("densenet121", "densenet161", "densenet169", "densenet201")},
    **{n: (n, {}) for n in ("squeezenet1_0", "squeezenet1_1")},
    **{n: (n, {}) for n in ("mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3")},
    **{f"shufflenet_v2_x{w}": (f"shufflenet_v2_x{w}", {}) for w in ("0_5", "1_0", "1_5", "2_0")},
    "googlenet_bn": ("googlenet", {}),
    "inception_v3": ("inception_v3", {}),
    **{f"efficientnet_b{i}": (f"efficientnet_b{i}", {}) for i in range(8)},
}


def _graph(name: str, **options) -> keras.Model:
    """Variant ``name`` at its default size, without weight values (graph and shapes only)."""
    with keras.StatelessScope():
        return keras_archs.get_model(name, weights=None, **options)


def _torchvision_reference(tv_name: str) -> tuple[int, int, float]:
    """(crop size, PyTorch's MAC count at that size, published _ops in GMACs)."""
    weights = torchvision.models.get_model_weights(tv_name).DEFAULT
    crop = weights.transforms().crop_size[0]
    with torch.device("meta"):
        module = torchvision.models.get_model(tv_name, weights=None).eval()
        x = torch.empty(1, 3, crop, crop)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return crop, counter.get_total_flops() // 2, weights.meta["_ops"]


def _has_macs(name: str) -> bool:
    return keras_archs.get_spec(name).macs is not None


# Every spec with a `macs` value, and every variant with a torchvision counterpart: one
# build each (the big ones under the slow marker, as everywhere).
COUNTED = [p for p in registry_params() if _has_macs(p.values[0]) or p.values[0] in TORCHVISION]


@pytest.mark.parametrize("name", COUNTED)
def test_macs_of_the_registry_and_torchvision(name):
    """``spec.macs`` is the count of the default build at the default size; where
    torchvision has the variant, the count at its crop size is PyTorch's, exactly."""
    spec = keras_archs.get_spec(name)
    model = _graph(name)
    if _has_macs(name):
        assert count_macs(model) == spec.macs
    if name in TORCHVISION:
        tv_name, options = TORCHVISION[name]
        crop, torch_macs, published = _torchvision_reference(tv_name)
        if options:
            model = _graph(name, **options)
        ours = count_macs(model, input_shape=(crop, crop, 3))
        assert ours == torch_macs, f"{name} at {crop}: ours {ours:,}, torchvision {torch_macs:,}"
        assert abs(ours / 1e9 - published) <= max(0.01 * published, 0.0005), (name, ours / 1e9, published)


def test_every_spec_has_macs():
    missing = [s.name for s in keras_archs.list_models() if s.macs is None]
    assert not missing, f"specs without macs: {missing}"


# --- the convention, on layers counted by hand ----------------------------------------


def test_each_counted_layer_by_hand():
    inputs = keras.Input((16, 12, 8))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", groups=4, name="grouped")(inputs)  # 8x6
    x = keras.layers.DepthwiseConv2D(5, padding="same", depth_multiplier=2, name="depthwise")(x)  # 8x6x32
    x = keras.layers.SeparableConv2D(8, 3, padding="valid", name="separable")(x)  # 6x4x8
    x = keras.layers.Conv2DTranspose(4, 2, strides=2, name="transposed")(x)  # 12x8x4
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    y = keras.layers.MaxPooling2D(2, name="pool")(x)  # 6x4x4
    y = keras.layers.Dense(5, name="pointwise_dense")(y)  # applied at each of the 6x4 positions
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    y = keras.layers.Dense(3, name="dense")(y)
    model = keras.Model(inputs, y)
    expected = {
        "grouped": 8 * 6 * (3 * 3 * 2 * 16),
        "depthwise": 8 * 6 * (5 * 5 * 16 * 2),
        "separable": 6 * 4 * (3 * 3 * 32 + 32 * 8),
        "transposed": 6 * 4 * (2 * 2 * 4 * 8),
        "pointwise_dense": 6 * 4 * 4 * 5,
        "dense": 5 * 3,
    }
    assert layer_macs(model) == expected
    assert count_macs(model) == sum(expected.values())


def test_lenet_c3_counts_only_its_connections():
    """Table I: C3's 60 connections of 5x5 taps at 10x10 positions (the paper's 1,516
    parameters minus 16 biases); the fully connected variant counts all 96."""
    paper = layer_macs(_graph("lenet5"))
    full = layer_macs(keras_archs.LeNet5(connection_table="full"))
    assert paper["c3"] == 10 * 10 * 25 * 60
    assert full["c3"] == 10 * 10 * 25 * 6 * 16
    assert paper["c1"] == 28 * 28 * 25 * 6 and paper["c5"] == 25 * 16 * 120


def test_other_sizes_are_counted_from_shapes_and_equal_a_build_at_that_size():
    model = keras_archs.get_model("resnet18", include_top=False)
    fixed = keras_archs.get_model("resnet18", include_top=False, input_shape=(97, 131, 3))
    assert count_macs(model, input_shape=(97, 131, 3)) == count_macs(fixed)
    with pytest.raises(ValueError, match="input size is unknown"):
        count_macs(model)
    # A Flatten head is sized for one input: another size is an error, not a wrong count.
    with pytest.raises(ValueError, match="sized for another input"):
        count_macs(_graph("lenet5"), input_shape=(36, 36, 1))


def test_unknown_layer_with_a_kernel_is_an_error():
    class Bilinear(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 4), name="w")

        def call(self, x):
            return keras.ops.matmul(x, self.w)

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, Bilinear(name="bilinear")(inputs))
    with pytest.raises(NotImplementedError, match="bilinear"):
        count_macs(model)


def test_auxiliary_heads_are_counted_when_built():
    plain = count_macs(_graph("inception_v3"))
    with keras.StatelessScope():
        with_aux = keras_archs.get_model("inception_v3", aux_logits=True)
    aux = layer_macs(with_aux)
    assert count_macs(with_aux) - plain == sum(v for k, v in aux.items() if k.startswith("AuxLogits"))
    assert np.isclose(count_macs(with_aux) / plain, 1.0, atol=0.01)
    assert math.isfinite(plain)
