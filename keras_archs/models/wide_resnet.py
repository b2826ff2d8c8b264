"""Wide Residual Networks (Zagoruyko & Komodakis 2016, "Wide Residual Networks").

CIFAR WRN-d-k (Section 2, Table 1): a 3x3 stem of 16 filters, three groups of
n = (d - 4) / 6 pre-activation blocks B(3,3) of widths 16k, 32k, 64k, dropout
between the two convolutions of a block (Section 2.4), then BN-ReLU, global
average pooling and a dense layer. The ImageNet wide bottleneck ResNets are the
ResNet-50/101 layouts with twice the bottleneck width (Section 4 / torchvision).
"""

from __future__ import annotations

import keras

from keras_archs.blocks import batch_norm, conv
from keras_archs.builder import build_classifier
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.models.resnet import TORCHVISION, TORCHVISION_OPTIONS, resnet
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import torchvision

PAPER = "Zagoruyko & Komodakis 2016, Wide Residual Networks"

PREPROCESSING = {"torchvision": "torch"}
preprocess_input = family_preprocess_input("WideResNet", PREPROCESSING)


def _bn_relu(x, name: str):
    x = batch_norm(x, name=f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def wide_basic_block(x, filters: int, *, strides: int, dropout: float, name: str):
    """Pre-activation B(3,3) block. When the width or stride changes, the 1x1
    projection reads the pre-activated input, as in the authors' code."""
    preact = _bn_relu(x, f"{name}_preact")
    y = conv(preact, filters, 3, strides=strides, name=f"{name}_1_conv")
    y = _bn_relu(y, f"{name}_2")
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = conv(y, filters, 3, name=f"{name}_2_conv")
    if strides != 1 or x.shape[-1] != filters:
        x = conv(preact, filters, 1, strides=strides, padding="valid", name=f"{name}_0_conv")
    return keras.layers.Add(name=f"{name}_add")([x, y])


def cifar_wide_resnet(*, depth: int, widen_factor: int, dropout: float = 0.3, **common) -> keras.Model:
    """Core WRN-d-k builder. ``dropout`` between the convolutions of each block
    (0.3 in the paper's CIFAR experiments, Section 2.4; 0 disables)."""
    if (depth - 4) % 6 or depth < 10:
        raise ValueError(f"WRN depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}.")
    if widen_factor < 1:
        raise ValueError(f"WRN widen_factor must be >= 1, got {widen_factor}.")
    n = (depth - 4) // 6

    def features(x):
        x = conv(x, 16, 3, name="conv1")
        for group, width in enumerate((16, 32, 64)):
            for i in range(1, n + 1):
                x = wide_basic_block(
                    x,
                    width * widen_factor,
                    strides=2 if group and i == 1 else 1,
                    dropout=dropout,
                    name=f"conv{group + 2}_block{i}",
                )
        return _bn_relu(x, "post")

    return build_classifier(features=features, **common)


CIFAR_COUNT = "paper Table 4 ({}); exact closed-form count in test_wide_resnet.py"
# Bottleneck width 128 per group instead of 64; the stride sits in the 3x3 conv as
# in the authors' fb.resnet.torch-based code and torchvision.
IMAGENET_OPTIONS = {"width_per_group": 128, "downsample": "3x3"}

FAMILIES = (
    Family(
        name="WideResNet-CIFAR",
        core=cifar_wide_resnet,
        paper=PAPER,
        default_size=32,
        min_size=4,
        default_classes=10,
        recipe="wide_resnet_cifar",
        options_doc="``dropout=0.3``",
        variants=(
            Variant(
                "WRN16_8", "wrn16_8", 10_961_370, CIFAR_COUNT.format("11.0M"), {"depth": 16, "widen_factor": 8},
                summary="WRN-16-8: 2 blocks per group, widths 128/256/512.", macs=1_548_145_664,
            ),
            Variant(
                "WRN22_8", "wrn22_8", 17_158_106, CIFAR_COUNT.format("17.2M"), {"depth": 22, "widen_factor": 8},
                summary="WRN-22-8: 3 blocks per group, widths 128/256/512.", macs=2_454_115_328,
            ),
            Variant(
                "WRN28_10", "wrn28_10", 36_479_194, CIFAR_COUNT.format("36.5M"), {"depth": 28, "widen_factor": 10},
                summary="WRN-28-10: 4 blocks per group, widths 160/320/640.", macs=5_243_328_768,
            ),
            Variant(
                "WRN40_2", "wrn40_2", 2_243_546, CIFAR_COUNT.format("2.2M"), {"depth": 40, "widen_factor": 2},
                summary="WRN-40-2: 6 blocks per group, widths 32/64/128.", macs=327_599_360,
            ),
            Variant(
                "WRN40_4", "wrn40_4", 8_949_210, CIFAR_COUNT.format("8.9M"), {"depth": 40, "widen_factor": 4},
                summary="WRN-40-4: 6 blocks per group, widths 64/128/256.", macs=1_298_582_016,
            ),
        ),
    ),
    Family(
        name="WideResNet",
        core=resnet,
        paper=PAPER,
        recipe="wide_resnet",
        options_doc='``downsample="3x3"|"1x1"`` and the other ResNet options',
        references={"torchvision": TORCHVISION},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "WideResNet50_2", "wide_resnet50_2", 68_883_240, "torchvision wide_resnet50_2",
                {"depth": 50, **IMAGENET_OPTIONS},
                weights=(torchvision("wide_resnet50_2-95faca4d.pth", **TORCHVISION_OPTIONS),), macs=11_398_021_120,
            ),
            Variant(
                "WideResNet101_2", "wide_resnet101_2", 126_886_696, "torchvision wide_resnet101_2",
                {"depth": 101, **IMAGENET_OPTIONS},
                weights=(torchvision("wide_resnet101_2-32ee1156.pth", **TORCHVISION_OPTIONS),), macs=22_753_050_624,
            ),
        ),
    ),
)
