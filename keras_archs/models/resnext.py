"""ResNeXt (Xie, Girshick, Dollar, Tu & He 2017, "Aggregated Residual
Transformations for Deep Neural Networks").

The aggregated transformation in its form (c) of Figure 3: the bottleneck's 3x3
convolution is a grouped convolution with C (cardinality) groups of width d. Stage
widths double from C*d, and the stride sits in the 3x3 layer (Section 4). Every
ResNeXt-50 of Table 3 keeps the complexity of ResNet-50: (C, d) = (1, 64),
(2, 40), (4, 24), (8, 14), (32, 4).
"""

from __future__ import annotations

from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.models.resnet import resnet
from keras_archs.registry import public_builder

PAPER = "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks"

preprocess_input = family_preprocess_input("ResNeXt")
OPTIONS = '``downsample="3x3"|"1x1"``, ``shortcut="B"``, ``conv_bias=False``, ``bn_epsilon=1e-5``'


def _variant(depth: int, cardinality: int, width: int, params: int, source: str):
    return public_builder(
        resnet,
        f"ResNeXt{depth}_{cardinality}x{width}d",
        f"resnext{depth}_{cardinality}x{width}d",
        family="ResNeXt",
        paper=PAPER,
        default_size=224,
        min_size=32,
        params=params,
        param_source=source,
        summary=f"ResNeXt-{depth} ({cardinality}x{width}d): cardinality {cardinality}, bottleneck width {width} per group.",
        options_doc=OPTIONS,
        depth=depth,
        groups=cardinality,
        width_per_group=width,
        downsample="3x3",
    )


_TV_RESNET = "torchvision ResNet(Bottleneck) with the same groups/width, see tests/test_resnext.py"
ResNeXt50_1x64d = _variant(50, 1, 64, 25_557_032, "torchvision resnet50 (1x64d is ResNet-50)")
ResNeXt50_2x40d = _variant(50, 2, 40, 25_425_000, _TV_RESNET)
ResNeXt50_4x24d = _variant(50, 4, 24, 25_292_968, _TV_RESNET)
ResNeXt50_8x14d = _variant(50, 8, 14, 25_603_016, _TV_RESNET)
ResNeXt50_32x4d = _variant(50, 32, 4, 25_028_904, "torchvision resnext50_32x4d")
ResNeXt101_32x4d = _variant(101, 32, 4, 44_177_704, _TV_RESNET)
ResNeXt101_32x8d = _variant(101, 32, 8, 88_791_336, "torchvision resnext101_32x8d")
ResNeXt101_64x4d = _variant(101, 64, 4, 83_455_272, "torchvision resnext101_64x4d")
