"""MnasNet (Tan, Chen, Pang, Vasudevan, Sandler, Howard & Le 2019, "MnasNet:
Platform-Aware Neural Architecture Search for Mobile"), the B1 network at depth
multipliers 0.5, 0.75, 1.0 and 1.3, as torchvision ships it.

B1 is the searched model without squeeze-and-excitation that the authors'
reference code (tensorflow/tpu, ``mnasnet_b1``) defines; the CVPR paper's Figure 7
shows the later A1, which adds SE and changes stages 2, 4, 5 and 6. torchvision's
``MNASNet`` is B1 (its docstring says so and its stage table matches); so is
this module.
"""

from __future__ import annotations

from functools import partial

import keras

from keras_archs.blocks import batch_norm, conv, depthwise_conv
from keras_archs.builder import build_classifier, dense_top
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import torchvision
from keras_archs.weight_import.reference import Reference, rules

PAPER = "Tan et al. 2019, MnasNet: Platform-Aware Neural Architecture Search for Mobile"

PREPROCESSING = {"torchvision": "torch"}
preprocess_input = family_preprocess_input("MnasNet", PREPROCESSING)

# The reference trains with TensorFlow's BN decay 0.9997 (torchvision: momentum
# 1 - 0.9997); eps is torchvision's default 1e-5.
BN_MOMENTUM = 0.9997
BN_EPSILON = 1e-5

STEM = 32  # stem conv filters at multiplier 1.0
SEPCONV = 16  # filters of the depthwise-separable block after the stem
HEAD = 1280  # final 1x1 conv; not scaled by the multiplier
# The MBConv stacks of MnasNet-B1: (expansion, kernel, first stride, repeats, filters at 1.0).
STACKS: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 3, 2, 3, 24),
    (3, 5, 2, 3, 40),
    (6, 5, 2, 3, 80),
    (6, 3, 1, 2, 96),
    (6, 5, 2, 4, 192),
    (6, 3, 1, 1, 320),
)


def round_to_multiple_of(value: float, divisor: int = 8, round_up_bias: float = 0.9) -> int:
    """Round ``value`` to a multiple of ``divisor`` (at least ``divisor``), rounding to
    nearest but going up a step if that would lose more than ``1 - round_up_bias`` of
    ``value`` (MobileNet's rule, as in the reference code and torchvision)."""
    if not 0.0 < round_up_bias < 1.0:
        raise ValueError(f"round_up_bias must be in (0, 1), got {round_up_bias}.")
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded if rounded >= round_up_bias * value else rounded + divisor


def mnasnet_depths(alpha: float) -> list[int]:
    """Stem, separable-block and stack widths at depth multiplier ``alpha`` (head excluded)."""
    base = [STEM, SEPCONV, *(filters for *_, filters in STACKS)]
    return [round_to_multiple_of(d * alpha, 8) for d in base]


def _bn(x, name: str):
    return batch_norm(x, name=name, epsilon=BN_EPSILON, momentum=BN_MOMENTUM)


def inverted_residual(x, filters: int, *, expansion: int, kernel_size: int, strides: int, name: str):
    """MBConv: 1x1 expand-BN-ReLU, kxk depthwise-BN-ReLU, linear 1x1 project-BN, plus
    the input when the shape is unchanged."""
    in_channels = x.shape[-1]
    mid = in_channels * expansion
    y = conv(x, mid, 1, name=f"{name}_expand_conv")
    y = _bn(y, f"{name}_expand_bn")
    y = keras.layers.ReLU(name=f"{name}_expand_relu")(y)
    y = depthwise_conv(y, kernel_size, strides=strides, name=f"{name}_dwconv")
    y = _bn(y, f"{name}_dw_bn")
    y = keras.layers.ReLU(name=f"{name}_dw_relu")(y)
    y = conv(y, filters, 1, name=f"{name}_project_conv")
    y = _bn(y, f"{name}_project_bn")
    if strides == 1 and in_channels == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def mnasnet(*, alpha: float, dropout: float = 0.2, **common) -> keras.Model:
    """Core MnasNet-B1 builder.

    Args:
        alpha: depth multiplier; every width but the 1280-filter head is scaled and
            rounded by :func:`round_to_multiple_of`.
        dropout: dropout rate before the classifier (torchvision 0.2).
    """
    if alpha <= 0:
        raise ValueError(f"MnasNet alpha must be positive, got {alpha}.")
    stem, sep, *stack_filters = mnasnet_depths(alpha)

    def features(x):
        x = conv(x, stem, 3, strides=2, name="stem_conv")
        x = _bn(x, "stem_bn")
        x = keras.layers.ReLU(name="stem_relu")(x)
        # Depthwise-separable block without residual (the SepConv of the paper).
        x = depthwise_conv(x, 3, name="sep_dwconv")
        x = _bn(x, "sep_dw_bn")
        x = keras.layers.ReLU(name="sep_dw_relu")(x)
        x = conv(x, sep, 1, name="sep_pw_conv")
        x = _bn(x, "sep_pw_bn")
        for s, ((expansion, kernel, stride, repeats, _), filters) in enumerate(zip(STACKS, stack_filters), start=1):
            for b in range(1, repeats + 1):
                x = inverted_residual(
                    x,
                    filters,
                    expansion=expansion,
                    kernel_size=kernel,
                    strides=stride if b == 1 else 1,
                    name=f"stack{s}_block{b}",
                )
        x = conv(x, HEAD, 1, name="head_conv")
        x = _bn(x, "head_bn")
        return keras.layers.ReLU(name="head_relu")(x)

    return build_classifier(features=features, top=partial(dense_top, dropout=dropout), **common)


# torchvision's ``layers`` Sequential: 0-7 stem and separable block, 8-13 the stacks, 14-15
# head; inside a block, ``layers.{0,1,3,4,6,7}`` are expand conv/BN, depthwise conv/BN,
# project conv/BN.
TORCHVISION = Reference(
    rules(
        ("stem_conv", "layers.0"),
        ("stem_bn", "layers.1"),
        ("sep_dwconv", "layers.3"),
        ("sep_dw_bn", "layers.4"),
        ("sep_pw_conv", "layers.6"),
        ("sep_pw_bn", "layers.7"),
        (r"stack(\d)_block(\d+)_expand_conv", "layers.{1+7}.{2-1}.layers.0"),
        (r"stack(\d)_block(\d+)_expand_bn", "layers.{1+7}.{2-1}.layers.1"),
        (r"stack(\d)_block(\d+)_dwconv", "layers.{1+7}.{2-1}.layers.3"),
        (r"stack(\d)_block(\d+)_dw_bn", "layers.{1+7}.{2-1}.layers.4"),
        (r"stack(\d)_block(\d+)_project_conv", "layers.{1+7}.{2-1}.layers.6"),
        (r"stack(\d)_block(\d+)_project_bn", "layers.{1+7}.{2-1}.layers.7"),
        ("head_conv", "layers.14"),
        ("head_bn", "layers.15"),
        ("predictions", "classifier.1"),
    ),
    bn_epsilon=1e-5,
    head=("classifier",),
)

SUMMARY = "MnasNet-B1 (no squeeze-and-excitation) at depth multiplier {}, as torchvision's {}."
# total_params = torchvision's parameters + BN running_mean/running_var buffers.
FAMILIES = (
    Family(
        name="MnasNet",
        core=mnasnet,
        paper=PAPER,
        recipe="mnasnet",
        options_doc="``dropout=0.2``",
        references={"torchvision": TORCHVISION},
        preprocessing=PREPROCESSING,
        variants=(
            # mnasnet0_5's official file predates torchvision's MNASNet "version 2" (scaled
            # stem) and may not fit our version-2 builder: not registered (BUILD_NOTES.md).
            Variant(
                "MnasNet05", "mnasnet0_5", 2_218_512, "torchvision mnasnet0_5", {"alpha": 0.5},
                total_params=2_239_136, summary=SUMMARY.format(0.5, "mnasnet0_5"), macs=104_455_968,
            ),
            Variant(
                "MnasNet075", "mnasnet0_75", 3_170_208, "torchvision mnasnet0_75", {"alpha": 0.75},
                total_params=3_200_016, summary=SUMMARY.format(0.75, "mnasnet0_75"),
                weights=(torchvision("mnasnet0_75-7090bc5f.pth"),), macs=215_493_104,
            ),
            Variant(
                "MnasNet10", "mnasnet1_0", 4_383_312, "torchvision mnasnet1_0", {"alpha": 1.0},
                total_params=4_421_232, summary=SUMMARY.format(1.0, "mnasnet1_0"),
                weights=(torchvision("mnasnet1.0_top1_73.512-f206786ef8.pth"),), macs=314_415_872,
            ),
            Variant(
                "MnasNet13", "mnasnet1_3", 6_282_256, "torchvision mnasnet1_3", {"alpha": 1.3},
                total_params=6_331_072, summary=SUMMARY.format(1.3, "mnasnet1_3"),
                weights=(torchvision("mnasnet1_3-a4c69d6f.pth"),), macs=526_362_432,
            ),
        ),
    ),
)
