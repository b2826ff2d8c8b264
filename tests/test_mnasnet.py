"""MnasNet-B1 (Tan et al. 2019; torchvision's mnasnet*): widths and their rounding,
stage shapes, residual placement, BN settings, and parameters against torchvision. (Logits
equal to torchvision's with its weights, loaded through ``weights=``: tests/test_weights_more.py.)"""

from __future__ import annotations

import keras
import pytest
import torch
import torchvision
from torchvision.models import mnasnet as tv_mnasnet

import keras_archs
from keras_archs.models import mnasnet

# Widths of stem, SepConv and the six stacks, by the reference's rounding
# round(v) = max(8, int(v + 4) // 8 * 8), plus 8 if that is below 0.9 * v:
#   0.5:  16, 8, 12->16, 20->24, 40, 48, 96, 160
#   0.75: 24, 12->16, 18->16 (< 16.2)->24, 30->32, 60->64, 72, 144, 240
#   1.3:  41.6->40, 20.8->24, 31.2->32, 52->56, 104, 124.8->128, 249.6->248, 416
DEPTHS = {
    0.5: [16, 8, 16, 24, 40, 48, 96, 160],
    0.75: [24, 16, 24, 32, 64, 72, 144, 240],
    1.0: [32, 16, 24, 40, 80, 96, 192, 320],
    1.3: [40, 24, 32, 56, 104, 128, 248, 416],
}
REGISTRY = {0.5: "mnasnet0_5", 0.75: "mnasnet0_75", 1.0: "mnasnet1_0", 1.3: "mnasnet1_3"}
# (last block name, spatial size at 224) of the SepConv block and each stack.
STAGE_OUTPUTS = [
    ("sep_pw_bn", 112),
    ("stack1_block3_add", 56),
    ("stack2_block3_add", 28),
    ("stack3_block3_add", 14),
    ("stack4_block2_add", 14),
    ("stack5_block4_add", 7),
    ("stack6_block1_project_bn", 7),
]


@pytest.mark.parametrize("alpha", sorted(DEPTHS))
def test_depth_rounding(alpha):
    assert mnasnet.mnasnet_depths(alpha) == DEPTHS[alpha]
    assert mnasnet.mnasnet_depths(alpha) == tv_mnasnet._get_depths(alpha)


def test_round_to_multiple_of_edges():
    assert mnasnet.round_to_multiple_of(83, 8) == 80  # 80 >= 0.9 * 83
    assert mnasnet.round_to_multiple_of(84, 8) == 88  # nearest is 88
    assert mnasnet.round_to_multiple_of(3, 8) == 8  # never below the divisor
    with pytest.raises(ValueError, match="round_up_bias"):
        mnasnet.round_to_multiple_of(10, 8, round_up_bias=1.0)


@pytest.mark.parametrize("alpha", sorted(DEPTHS))
def test_stage_channels_and_sizes(alpha):
    model = keras_archs.get_model(REGISTRY[alpha], include_top=False, input_shape=(224, 224, 3))
    stem, *stage_channels = DEPTHS[alpha]
    assert model.get_layer("stem_relu").output.shape[1:] == (112, 112, stem)
    for (layer, size), channels in zip(STAGE_OUTPUTS, stage_channels):
        assert model.get_layer(layer).output.shape[1:] == (size, size, channels), layer
    # The 1280-filter head is not scaled by the multiplier.
    assert model.output.shape[1:] == (7, 7, 1280)


def test_table_at_1_0_matches_the_reference_channels():
    # torchvision / tensorflow-tpu mnasnet_b1 at 1.0: 16, 24, 40, 80, 96, 192, 320, 1280.
    model = keras_archs.MnasNet10(include_top=False, input_shape=(224, 224, 3))
    got = [model.get_layer(layer).output.shape[-1] for layer, _ in STAGE_OUTPUTS] + [model.output.shape[-1]]
    assert got == [16, 24, 40, 80, 96, 192, 320, 1280]


def test_residuals_only_where_shape_is_kept():
    model = keras_archs.MnasNet10(include_top=False, input_shape=(224, 224, 3))
    adds = {layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)}
    # Repeats 3, 3, 3, 2, 4, 1: every block but the first of a stack; stack4's first
    # block keeps stride 1 but widens 80 -> 96, so it has none either.
    expected = {f"stack{s}_block{b}_add" for s, n in enumerate((3, 3, 3, 2, 4, 1), start=1) for b in range(2, n + 1)}
    assert adds == expected


def test_depthwise_layers_and_strided_padding():
    model = keras_archs.MnasNet05(include_top=False, input_shape=(224, 224, 3))
    depthwise = [layer for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == 1 + 3 + 3 + 3 + 2 + 4 + 1
    for layer in depthwise:
        k = layer.kernel_size[0]
        if layer.strides == (2, 2):
            # torch padding=k//2 on every side, then a valid convolution.
            pad = model.get_layer(f"{layer.name}_pad")
            assert pad.padding == ((k // 2, k // 2), (k // 2, k // 2)) and layer.padding == "valid"
        else:
            assert layer.padding == "same"
    assert not any(isinstance(layer, keras.layers.Conv2D) and layer.groups > 1 for layer in model.layers)


def test_batch_norm_settings_follow_the_reference():
    model = keras_archs.MnasNet05(include_top=False, input_shape=(64, 64, 3))
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(bn.momentum == 0.9997 and bn.epsilon == 1e-5 for bn in bns)


def test_dropout_option():
    assert keras_archs.MnasNet05().get_layer("top_dropout").rate == 0.2
    assert keras_archs.MnasNet05(dropout=0.5).get_layer("top_dropout").rate == 0.5
    names = {layer.name for layer in keras_archs.MnasNet05(dropout=0.0).layers}
    assert "top_dropout" not in names
    with pytest.raises(ValueError, match="alpha must be positive"):
        keras_archs.MnasNet05(alpha=0)


@pytest.mark.parametrize("name", sorted(REGISTRY.values()))
def test_total_params_are_torchvision_parameters_plus_bn_statistics(name):
    with torch.device("meta"):
        tv = torchvision.models.get_model(name, weights=None)
    stats = sum(b.numel() for k, b in tv.named_buffers() if k.endswith(("running_mean", "running_var")))
    assert keras_archs.get_spec(name).total_params == sum(p.numel() for p in tv.parameters()) + stats
