"""ShuffleNet V2 (Ma, Zhang, Zheng & Sun 2018, "ShuffleNet V2: Practical Guidelines
for Efficient CNN Architecture Design"): the networks of Table 5 at widths 0.5x,
1.0x, 1.5x and 2.0x, built from the units of Figure 3 (c) and (d).
"""

from __future__ import annotations

import keras

from keras_archs.blocks import batch_norm, conv_bn_act, depthwise_conv, pool
from keras_archs.builder import build_classifier
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.layers import ChannelShuffle, ChannelSplit
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import torchvision
from keras_archs.weight_import.reference import Reference, rules

PAPER = "Ma et al. 2018, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design"

PREPROCESSING = {"torchvision": "torch"}
preprocess_input = family_preprocess_input("ShuffleNetV2", PREPROCESSING)

# Table 5: units per stage (the first strides 2) and output channels of
# conv1, stage2, stage3, stage4 and conv5 for each width.
STAGE_REPEATS = (4, 8, 4)
WIDTHS: dict[str, tuple[int, int, int, int, int]] = {
    "0.5": (24, 48, 96, 192, 1024),
    "1.0": (24, 116, 232, 464, 1024),
    "1.5": (24, 176, 352, 704, 1024),
    "2.0": (24, 244, 488, 976, 2048),
}


def _dw_bn(x, strides: int, name: str):
    """3x3 depthwise conv and BN, no ReLU (Section 4: the depthwise conv is linear)."""
    x = depthwise_conv(x, 3, strides=strides, name=f"{name}_dwconv")
    return batch_norm(x, name=f"{name}_dw_bn")


def _branch(x, filters: int, strides: int, name: str):
    """The right branch: 1x1 conv-BN-ReLU, 3x3 depthwise-BN, 1x1 conv-BN-ReLU."""
    x = conv_bn_act(x, filters, 1, name=f"{name}_1")
    x = _dw_bn(x, strides, name)
    return conv_bn_act(x, filters, 1, name=f"{name}_2")


def shuffle_unit(x, filters: int, *, strides: int, name: str):
    """Figure 3(c) (stride 1) or 3(d) (stride 2) unit with ``filters`` output channels.

    (c): channel split, the right half goes through the branch, concat, shuffle.
    (d): no split; the left branch is depthwise-BN, 1x1 conv-BN-ReLU; each branch
    gives half the output channels.
    """
    half = filters // 2
    if strides == 1:
        if x.shape[-1] != filters:
            raise ValueError(f"{name}: a stride-1 unit keeps its {x.shape[-1]} channels, got filters={filters}.")
        left, right = ChannelSplit(2, name=f"{name}_split")(x)
        right = _branch(right, half, 1, f"{name}_branch2")
    else:
        left = _dw_bn(x, strides, f"{name}_branch1")
        left = conv_bn_act(left, half, 1, name=f"{name}_branch1_1")
        right = _branch(x, half, strides, f"{name}_branch2")
    x = keras.layers.Concatenate(name=f"{name}_concat")([left, right])
    return ChannelShuffle(2, name=f"{name}_shuffle")(x)


def shufflenet_v2(*, width: str, **common) -> keras.Model:
    """Core ShuffleNet V2 builder (Table 5).

    Args:
        width: ``"0.5"``, ``"1.0"``, ``"1.5"`` or ``"2.0"`` (the channel multiplier).
    """
    if width not in WIDTHS:
        raise ValueError(f"ShuffleNet V2 width must be one of {sorted(WIDTHS)}, got {width!r}.")
    conv1, *stage_filters, conv5 = WIDTHS[width]

    def features(x):
        x = conv_bn_act(x, conv1, 3, strides=2, name="conv1")
        x = pool(x, 3, 2, padding=1, name="maxpool")
        for s, (repeats, filters) in enumerate(zip(STAGE_REPEATS, stage_filters), start=2):
            for b in range(1, repeats + 1):
                x = shuffle_unit(x, filters, strides=2 if b == 1 else 1, name=f"stage{s}_block{b}")
        return conv_bn_act(x, conv5, 1, name="conv5")

    return build_classifier(features=features, **common)


TORCHVISION = Reference(
    rules(
        (r"(conv[15])_conv", "{1}.0"),
        (r"(conv[15])_bn", "{1}.1"),
        ("predictions", "fc"),
        (r"stage(\d)_block(\d+)_branch1_dwconv", "stage{1}.{2-1}.branch1.0"),
        (r"stage(\d)_block(\d+)_branch1_dw_bn", "stage{1}.{2-1}.branch1.1"),
        (r"stage(\d)_block(\d+)_branch1_1_conv", "stage{1}.{2-1}.branch1.2"),
        (r"stage(\d)_block(\d+)_branch1_1_bn", "stage{1}.{2-1}.branch1.3"),
        (r"stage(\d)_block(\d+)_branch2_1_conv", "stage{1}.{2-1}.branch2.0"),
        (r"stage(\d)_block(\d+)_branch2_1_bn", "stage{1}.{2-1}.branch2.1"),
        (r"stage(\d)_block(\d+)_branch2_dwconv", "stage{1}.{2-1}.branch2.3"),
        (r"stage(\d)_block(\d+)_branch2_dw_bn", "stage{1}.{2-1}.branch2.4"),
        (r"stage(\d)_block(\d+)_branch2_2_conv", "stage{1}.{2-1}.branch2.5"),
        (r"stage(\d)_block(\d+)_branch2_2_bn", "stage{1}.{2-1}.branch2.6"),
    ),
    bn_epsilon=1e-5,
    head=("fc",),
)

# total_params = torchvision's parameters + BN running_mean/running_var buffers.
FAMILIES = (
    Family(
        name="ShuffleNetV2",
        core=shufflenet_v2,
        paper=PAPER,
        recipe="shufflenet_v2",
        references={"torchvision": TORCHVISION},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "ShuffleNetV2x05", "shufflenet_v2_x0_5", 1_366_792, "torchvision shufflenet_v2_x0_5", {"width": "0.5"},
                total_params=1_374_744, summary="Table 5, 0.5x width.",
                weights=(torchvision("shufflenetv2_x0.5-f707e7126e.pth"),), macs=40_476_448,
            ),
            Variant(
                "ShuffleNetV2x10", "shufflenet_v2_x1_0", 2_278_604, "torchvision shufflenet_v2_x1_0", {"width": "1.0"},
                total_params=2_294_784, summary="Table 5, 1.0x width.",
                weights=(torchvision("shufflenetv2_x1-5666bf0f80.pth"),), macs=144_907_992,
            ),
            Variant(
                "ShuffleNetV2x15", "shufflenet_v2_x1_5", 3_503_624, "torchvision shufflenet_v2_x1_5", {"width": "1.5"},
                total_params=3_527_064, summary="Table 5, 1.5x width.",
                weights=(torchvision("shufflenetv2_x1_5-3c479a10.pth"),), macs=295_759_392,
            ),
            Variant(
                "ShuffleNetV2x20", "shufflenet_v2_x2_0", 7_393_996, "torchvision shufflenet_v2_x2_0", {"width": "2.0"},
                total_params=7_427_712, summary="Table 5, 2.0x width.",
                weights=(torchvision("shufflenetv2_x2_0-8be3c8ee.pth"),), macs=583_253_464,
            ),
        ),
    ),
)
