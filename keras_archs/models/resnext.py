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
from keras_archs.models.resnet import TORCHVISION, TORCHVISION_OPTIONS, resnet
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import torchvision

PAPER = "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks"

PREPROCESSING = {"torchvision": "torch"}
preprocess_input = family_preprocess_input("ResNeXt", PREPROCESSING)
OPTIONS = '``downsample="3x3"|"1x1"``, ``shortcut="B"``, ``conv_bias=False``, ``bn_epsilon=1e-5``'


# Counts of the ResNeXts torchvision does not ship: its ResNet(Bottleneck) with the same groups/width.
TV_RESNET = "torchvision ResNet(Bottleneck) with the same groups/width, see test_resnext.py"
V1_5 = {"downsample": "3x3"}  # the stride sits in the 3x3 layer (Section 4)

FAMILIES = (
    Family(
        name="ResNeXt",
        core=resnet,
        paper=PAPER,
        recipe="resnext",
        options_doc=OPTIONS,
        # Same core and layer names as ResNet; torchvision builds them from its ResNet class.
        references={"torchvision": TORCHVISION},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "ResNeXt50_1x64d", "resnext50_1x64d", 25_557_032, "torchvision resnet50 (1x64d is ResNet-50)",
                {"depth": 50, "groups": 1, "width_per_group": 64, **V1_5},
                summary="ResNeXt-50 (1x64d): cardinality 1, bottleneck width 64 per group.", macs=4_089_184_256,
            ),
            Variant(
                "ResNeXt50_2x40d", "resnext50_2x40d", 25_425_000, TV_RESNET,
                {"depth": 50, "groups": 2, "width_per_group": 40, **V1_5},
                summary="ResNeXt-50 (2x40d): cardinality 2, bottleneck width 40 per group.", macs=4_124_508_160,
            ),
            Variant(
                "ResNeXt50_4x24d", "resnext50_4x24d", 25_292_968, TV_RESNET,
                {"depth": 50, "groups": 4, "width_per_group": 24, **V1_5},
                summary="ResNeXt-50 (4x24d): cardinality 4, bottleneck width 24 per group.", macs=4_159_832_064,
            ),
            Variant(
                "ResNeXt50_8x14d", "resnext50_8x14d", 25_603_016, TV_RESNET,
                {"depth": 50, "groups": 8, "width_per_group": 14, **V1_5},
                summary="ResNeXt-50 (8x14d): cardinality 8, bottleneck width 14 per group.", macs=4_267_409_408,
            ),
            Variant(
                "ResNeXt50_32x4d", "resnext50_32x4d", 25_028_904, "torchvision resnext50_32x4d",
                {"depth": 50, "groups": 32, "width_per_group": 4, **V1_5},
                summary="ResNeXt-50 (32x4d): cardinality 32, bottleneck width 4 per group.",
                weights=(torchvision("resnext50_32x4d-7cdf4587.pth", **TORCHVISION_OPTIONS),), macs=4_230_479_872,
            ),
            Variant(
                "ResNeXt101_32x4d", "resnext101_32x4d", 44_177_704, TV_RESNET,
                {"depth": 101, "groups": 32, "width_per_group": 4, **V1_5},
                summary="ResNeXt-101 (32x4d): cardinality 32, bottleneck width 4 per group.", macs=7_969_996_800,
            ),
            Variant(
                "ResNeXt101_32x8d", "resnext101_32x8d", 88_791_336, "torchvision resnext101_32x8d",
                {"depth": 101, "groups": 32, "width_per_group": 8, **V1_5},
                summary="ResNeXt-101 (32x8d): cardinality 32, bottleneck width 8 per group.",
                weights=(torchvision("resnext101_32x8d-8ba56ff5.pth", **TORCHVISION_OPTIONS),), macs=16_414_015_488,
            ),
            Variant(
                "ResNeXt101_64x4d", "resnext101_64x4d", 83_455_272, "torchvision resnext101_64x4d",
                {"depth": 101, "groups": 64, "width_per_group": 4, **V1_5},
                summary="ResNeXt-101 (64x4d): cardinality 64, bottleneck width 4 per group.",
                weights=(torchvision("resnext101_64x4d-173b62eb.pth", **TORCHVISION_OPTIONS),), macs=15_460_270_080,
            ),
        ),
    ),
)
