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
from keras_archs.models.resnet import resnet
from keras_archs.registry import public_builder

PAPER = "Zagoruyko & Komodakis 2016, Wide Residual Networks"

preprocess_input = family_preprocess_input("WideResNet")


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


CIFAR = dict(family="WideResNet-CIFAR", paper=PAPER, default_size=32, min_size=4, default_classes=10)
CIFAR_OPTIONS = "``dropout=0.3``"


def _cifar(public: str, depth: int, k: int, params: int, paper_millions: str):
    return public_builder(
        cifar_wide_resnet,
        public,
        f"wrn{depth}_{k}",
        depth=depth,
        widen_factor=k,
        params=params,
        param_source=f"paper Table 4 ({paper_millions}); exact closed-form count in tests/test_wide_resnet.py",
        summary=f"WRN-{depth}-{k}: {(depth - 4) // 6} blocks per group, widths {16 * k}/{32 * k}/{64 * k}.",
        options_doc=CIFAR_OPTIONS,
        **CIFAR,
    )


WRN16_8 = _cifar("WRN16_8", 16, 8, 10_961_370, "11.0M")
WRN22_8 = _cifar("WRN22_8", 22, 8, 17_158_106, "17.2M")
WRN28_10 = _cifar("WRN28_10", 28, 10, 36_479_194, "36.5M")
WRN40_2 = _cifar("WRN40_2", 40, 2, 2_243_546, "2.2M")
WRN40_4 = _cifar("WRN40_4", 40, 4, 8_949_210, "8.9M")

IMAGENET = dict(family="WideResNet", paper=PAPER, default_size=224, min_size=32)
IMAGENET_OPTIONS = '``downsample="3x3"|"1x1"`` and the other ResNet options'

# Bottleneck width 128 per group instead of 64; the stride sits in the 3x3 conv as
# in the authors' fb.resnet.torch-based code and torchvision.
WideResNet50_2 = public_builder(
    resnet, "WideResNet50_2", "wide_resnet50_2", depth=50, width_per_group=128, downsample="3x3",
    params=68_883_240, param_source="torchvision wide_resnet50_2", options_doc=IMAGENET_OPTIONS, **IMAGENET,
)  # fmt: skip
WideResNet101_2 = public_builder(
    resnet, "WideResNet101_2", "wide_resnet101_2", depth=101, width_per_group=128, downsample="3x3",
    params=126_886_696, param_source="torchvision wide_resnet101_2", options_doc=IMAGENET_OPTIONS, **IMAGENET,
)  # fmt: skip
