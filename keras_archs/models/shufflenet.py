"""ShuffleNet V2 (Ma, Zhang, Zheng & Sun 2018, "ShuffleNet V2: Practical Guidelines
for Efficient CNN Architecture Design"): the networks of Table 5 at widths 0.5x,
1.0x, 1.5x and 2.0x, built from the units of Figure 3 (c) and (d).
"""

from __future__ import annotations

import re

import keras

from keras_archs.blocks import batch_norm, conv_bn_act, depthwise_conv, pool
from keras_archs.builder import build_classifier
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.layers import ChannelShuffle, ChannelSplit
from keras_archs.registry import public_builder

PAPER = "Ma et al. 2018, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design"

preprocess_input = family_preprocess_input("ShuffleNetV2")

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


# Keras layer name -> torchvision module path (state-dict key prefix).
TORCHVISION_MODULES = {
    "conv1_conv": "conv1.0",
    "conv1_bn": "conv1.1",
    "conv5_conv": "conv5.0",
    "conv5_bn": "conv5.1",
    "predictions": "fc",
}
TORCHVISION_UNIT_MODULES = {
    "branch1_dwconv": "branch1.0",
    "branch1_dw_bn": "branch1.1",
    "branch1_1_conv": "branch1.2",
    "branch1_1_bn": "branch1.3",
    "branch2_1_conv": "branch2.0",
    "branch2_1_bn": "branch2.1",
    "branch2_dwconv": "branch2.3",
    "branch2_dw_bn": "branch2.4",
    "branch2_2_conv": "branch2.5",
    "branch2_2_bn": "branch2.6",
}
_UNIT_NAME = re.compile(r"stage(\d)_block(\d+)_(\w+)")


def torchvision_module(layer_name: str) -> str | None:
    """torchvision's module path for a weighted Keras layer (``None`` if it has no weights there)."""
    if layer_name in TORCHVISION_MODULES:
        return TORCHVISION_MODULES[layer_name]
    match = _UNIT_NAME.fullmatch(layer_name)
    if match and match[3] in TORCHVISION_UNIT_MODULES:
        return f"stage{match[1]}.{int(match[2]) - 1}.{TORCHVISION_UNIT_MODULES[match[3]]}"
    return None


def _variant(public: str, registry: str, width: str, params: int, total: int):
    return public_builder(
        shufflenet_v2,
        public,
        registry,
        family="ShuffleNetV2",
        paper=PAPER,
        default_size=224,
        min_size=32,
        params=params,
        param_source=f"torchvision {registry}",
        total_params=total,
        summary=f"Table 5, {width}x width.",
        width=width,
    )


# total_params = torchvision's parameters + BN running_mean/running_var buffers.
ShuffleNetV2x05 = _variant("ShuffleNetV2x05", "shufflenet_v2_x0_5", "0.5", 1_366_792, 1_374_744)
ShuffleNetV2x10 = _variant("ShuffleNetV2x10", "shufflenet_v2_x1_0", "1.0", 2_278_604, 2_294_784)
ShuffleNetV2x15 = _variant("ShuffleNetV2x15", "shufflenet_v2_x1_5", "1.5", 3_503_624, 3_527_064)
ShuffleNetV2x20 = _variant("ShuffleNetV2x20", "shufflenet_v2_x2_0", "2.0", 7_393_996, 7_427_712)
