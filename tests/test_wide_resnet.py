"""Wide ResNet: exact counts from a closed form of the paper's Table 1, block layout, dropout."""

from __future__ import annotations

import numpy as np
import pytest

import keras_archs


def wrn_param_count(depth: int, k: int, classes: int = 10) -> int:
    """Closed-form count of WRN-d-k from Table 1 of the paper: 3x3 stem of 16, three
    groups of n pre-activation B(3,3) blocks (BN has 2 trainable parameters per
    channel), a 1x1 projection where the width changes, final BN, dense layer."""
    n = (depth - 4) // 6
    total = 3 * 9 * 16
    c_in = 16
    for c in (16 * k, 32 * k, 64 * k):
        total += 2 * c_in + 9 * c_in * c + 2 * c + 9 * c * c + (c_in * c if c_in != c else 0)
        total += (n - 1) * 2 * (2 * c + 9 * c * c)
        c_in = c
    return total + 2 * c_in + c_in * classes + classes


# (depth, k, the paper's Table 4 figure in millions)
PAPER = [(16, 8, 11.0), (22, 8, 17.2), (28, 10, 36.5), (40, 2, 2.2), (40, 4, 8.9)]


@pytest.mark.parametrize("depth,k,millions", PAPER)
def test_registry_count_is_closed_form_and_rounds_to_paper(depth, k, millions):
    spec = keras_archs.get_spec(f"wrn{depth}_{k}")
    assert spec.params == wrn_param_count(depth, k)
    assert round(spec.params / 1e6, 1) == millions


def test_block_is_preactivation_with_dropout_between_convs():
    model = keras_archs.WRN16_8(dropout=0.3)
    names = [layer.name for layer in model.layers]
    block = [n for n in names if n.startswith("conv3_block2_")]
    assert block == [
        "conv3_block2_preact_bn", "conv3_block2_preact_relu", "conv3_block2_1_conv",
        "conv3_block2_2_bn", "conv3_block2_2_relu", "conv3_block2_dropout", "conv3_block2_2_conv",
        "conv3_block2_add",
    ]  # fmt: skip
    assert model.get_layer("conv3_block2_dropout").rate == 0.3
    assert "conv3_block1_0_conv" in names and "conv2_block2_0_conv" not in names


def test_no_dropout_option_and_widths():
    model = keras_archs.WRN28_10(dropout=0.0, include_top=False)
    assert not any("dropout" in layer.name for layer in model.layers)
    assert [model.get_layer(f"conv{g}_block1_2_conv").filters for g in (2, 3, 4)] == [160, 320, 640]
    x = np.zeros((1, 32, 32, 3), "float32")
    assert model(x).shape == (1, 8, 8, 640)


def test_invalid_depth():
    with pytest.raises(ValueError, match="6n\\+4"):
        keras_archs.WRN16_8(depth=17)


def test_imagenet_wide_bottleneck_width():
    model = keras_archs.WideResNet50_2(include_top=False, input_shape=(64, 64, 3))
    assert model.get_layer("conv2_block1_2_conv").filters == 128
    assert model.get_layer("conv2_block1_3_conv").filters == 256
