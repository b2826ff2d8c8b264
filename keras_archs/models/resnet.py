"""ResNet (He, Zhang, Ren & Sun 2015, "Deep Residual Learning for Image
Recognition"): the ImageNet networks of Table 1, their plain counterparts, and the
CIFAR-10 networks of Section 4.2.

The same core also builds the ImageNet Wide ResNets and ResNeXts (their modules
bind ``width_per_group`` and ``groups``), using torchvision's bottleneck width rule
``int(planes * width_per_group / 64) * groups``.
"""

from __future__ import annotations

import keras

from keras_archs.blocks import conv_bn_act, pool
from keras_archs.builder import build_classifier
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.layers import ZeroPadShortcut
from keras_archs.registry import public_builder

PAPER = "He et al. 2015, Deep Residual Learning for Image Recognition"

preprocess_input = family_preprocess_input("ResNet")

STAGE_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
SHORTCUTS = ("A", "B", "C")
DOWNSAMPLE = ("1x1", "3x3")
EXPANSION = {"basic": 1, "bottleneck": 4}


def shortcut(
    x, filters: int, strides: int, *, option: str, name: str, bn_epsilon: float, conv_bias: bool
):
    """Section 3.3: (A) zero-padded identity, (B) projection only when the shape
    changes, (C) projection always. Projections are 1x1 conv + BN, named ``{name}_0``."""
    same_shape = strides == 1 and x.shape[-1] == filters
    if option == "C" or (option == "B" and not same_shape):
        return conv_bn_act(
            x,
            filters,
            1,
            strides=strides,
            activation=None,
            use_bias=conv_bias,
            bn_epsilon=bn_epsilon,
            name=f"{name}_0",
        )
    if same_shape:
        return x
    return ZeroPadShortcut(filters, strides, name=f"{name}_0_pad")(x)


def residual_block(
    x,
    planes: int,
    *,
    kind: str,
    strides: int,
    name: str,
    residual: bool = True,
    shortcut_option: str = "B",
    downsample: str = "1x1",
    groups: int = 1,
    width_per_group: int = 64,
    bn_epsilon: float = 1e-5,
    conv_bias: bool = False,
):
    """A basic (two 3x3) or bottleneck (1x1-3x3-1x1) block; ``residual=False`` gives the plain block."""
    filters = planes * EXPANSION[kind]
    layer = dict(bn_epsilon=bn_epsilon, use_bias=conv_bias)
    if kind == "basic":
        y = conv_bn_act(x, planes, 3, strides=strides, name=f"{name}_1", **layer)
        y = conv_bn_act(y, planes, 3, activation=None, name=f"{name}_2", **layer)
    else:
        width = int(planes * width_per_group / 64) * groups
        # The paper strides the first 1x1 (Table 1: "downsampling is performed by
        # conv3_1, conv4_1, conv5_1"); torchvision ("v1.5") strides the 3x3.
        s1, s3 = (strides, 1) if downsample == "1x1" else (1, strides)
        y = conv_bn_act(x, width, 1, strides=s1, name=f"{name}_1", **layer)
        y = conv_bn_act(y, width, 3, strides=s3, groups=groups, name=f"{name}_2", **layer)
        y = conv_bn_act(y, filters, 1, activation=None, name=f"{name}_3", **layer)
    if residual:
        short = shortcut(
            x,
            filters,
            strides,
            option=shortcut_option,
            name=name,
            bn_epsilon=bn_epsilon,
            conv_bias=conv_bias,
        )
        y = keras.layers.Add(name=f"{name}_add")([short, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet_stage(x, planes: int, blocks: int, *, strides: int, name: str, **block_options):
    """``blocks`` residual blocks; only the first one strides."""
    for i in range(1, blocks + 1):
        x = residual_block(
            x, planes, strides=strides if i == 1 else 1, name=f"{name}_block{i}", **block_options
        )
    return x


def _check_options(shortcut_option: str, downsample: str) -> None:
    if shortcut_option not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut_option!r}.")
    if downsample not in DOWNSAMPLE:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE}, got {downsample!r}.")


def resnet(
    *,
    depth: int,
    shortcut: str = "B",
    downsample: str = "1x1",
    residual: bool = True,
    groups: int = 1,
    width_per_group: int = 64,
    conv_bias: bool = False,
    bn_epsilon: float = 1e-5,
    **common,
) -> keras.Model:
    """Core ImageNet ResNet builder (Table 1), also used by Wide ResNet and ResNeXt.

    Args:
        depth: 18, 34, 50, 101 or 152.
        shortcut: ``"A"``, ``"B"`` (default) or ``"C"`` (Section 3.3).
        downsample: where a bottleneck block strides: ``"1x1"`` (the paper) or
            ``"3x3"`` (torchvision, "ResNet v1.5").
        residual: ``False`` builds the plain network (no shortcuts).
        groups, width_per_group: bottleneck width rule (ResNeXt / Wide ResNet).
        conv_bias: give convolutions a bias (keras.applications' ResNet does).
        bn_epsilon: BatchNormalization epsilon (1e-5 torchvision, 1.001e-5 keras).
    """
    if depth not in STAGE_DEPTHS:
        raise ValueError(f"ResNet depth must be one of {sorted(STAGE_DEPTHS)}, got {depth}.")
    _check_options(shortcut, downsample)
    kind, stage_blocks = STAGE_DEPTHS[depth]
    block_options = dict(
        kind=kind,
        residual=residual,
        shortcut_option=shortcut,
        downsample=downsample,
        groups=groups,
        width_per_group=width_per_group,
        bn_epsilon=bn_epsilon,
        conv_bias=conv_bias,
    )

    def features(x):
        x = conv_bn_act(x, 64, 7, strides=2, use_bias=conv_bias, bn_epsilon=bn_epsilon, name="conv1")
        x = pool(x, 3, 2, padding=1, name="pool1_pool")
        for stage, blocks in enumerate(stage_blocks):
            x = resnet_stage(
                x,
                64 * 2**stage,
                blocks,
                strides=1 if stage == 0 else 2,
                name=f"conv{stage + 2}",
                **block_options,
            )
        return x

    return build_classifier(features=features, **common)


def cifar_resnet(
    *, depth: int, shortcut: str = "A", residual: bool = True, **common
) -> keras.Model:
    """Core CIFAR-10 ResNet builder (Section 4.2): 6n+2 layers, a 3x3 stem of 16
    filters, three stages of n basic blocks with 16, 32 and 64 filters on 32, 16 and 8
    pixel maps, global average pooling and a dense layer. Option A shortcuts, so the
    residual and plain nets have exactly the same parameters."""
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, 1202), got {depth}.")
    _check_options(shortcut, "1x1")
    n = (depth - 2) // 6

    def features(x):
        x = conv_bn_act(x, 16, 3, name="conv1")
        for stage, planes in enumerate((16, 32, 64)):
            x = resnet_stage(
                x,
                planes,
                n,
                strides=1 if stage == 0 else 2,
                name=f"conv{stage + 2}",
                kind="basic",
                residual=residual,
                shortcut_option=shortcut,
            )
        return x

    return build_classifier(features=features, **common)


IMAGENET = dict(family="ResNet", paper=PAPER, default_size=224, min_size=32)
RESNET_OPTIONS = (
    '``shortcut="A"|"B"|"C"``, ``downsample="1x1"|"3x3"`` (bottleneck only), '
    "``conv_bias=False``, ``bn_epsilon=1e-5``"
)

ResNet18 = public_builder(resnet, "ResNet18", "resnet18", depth=18, params=11_689_512, param_source="torchvision resnet18", options_doc=RESNET_OPTIONS, **IMAGENET)
ResNet34 = public_builder(resnet, "ResNet34", "resnet34", depth=34, params=21_797_672, param_source="torchvision resnet34", options_doc=RESNET_OPTIONS, **IMAGENET)
ResNet50 = public_builder(resnet, "ResNet50", "resnet50", depth=50, params=25_557_032, param_source="torchvision resnet50", options_doc=RESNET_OPTIONS, **IMAGENET)
ResNet101 = public_builder(resnet, "ResNet101", "resnet101", depth=101, params=44_549_160, param_source="torchvision resnet101", options_doc=RESNET_OPTIONS, **IMAGENET)
ResNet152 = public_builder(resnet, "ResNet152", "resnet152", depth=152, params=60_192_808, param_source="torchvision resnet152", options_doc=RESNET_OPTIONS, **IMAGENET)

# Plain nets: the same layers without shortcuts, so resnet minus its projections.
Plain18 = public_builder(resnet, "Plain18", "plain18", depth=18, residual=False, params=11_689_512 - 172_032 - 1_792, param_source="torchvision resnet18 minus its 3 projection shortcuts", summary="Figure 4 (left): ResNet-18's layers without shortcuts.", **IMAGENET)
Plain34 = public_builder(resnet, "Plain34", "plain34", depth=34, residual=False, params=21_797_672 - 172_032 - 1_792, param_source="torchvision resnet34 minus its 3 projection shortcuts", summary="Figure 3 (middle): ResNet-34's layers without shortcuts.", **IMAGENET)

CIFAR = dict(family="ResNet-CIFAR", paper=PAPER, default_size=32, min_size=4, default_classes=10)
CIFAR_OPTIONS = '``shortcut="A"|"B"|"C"`` (the paper uses A on CIFAR)'
# Reference counts for 10 classes, option A: 16 + 2n 3x3 layers and a 64x10 dense
# layer; they agree with the widely used reimplementation's printout
# (0.27M/0.46M/0.66M/0.85M/1.7M/19.4M, Table 6).
ResNet20 = public_builder(cifar_resnet, "ResNet20", "resnet20", depth=20, params=269_722, param_source="paper Table 6 (0.27M), exact count of option A", options_doc=CIFAR_OPTIONS, **CIFAR)
ResNet32 = public_builder(cifar_resnet, "ResNet32", "resnet32", depth=32, params=464_154, param_source="paper Table 6 (0.46M), exact count of option A", options_doc=CIFAR_OPTIONS, **CIFAR)
ResNet44 = public_builder(cifar_resnet, "ResNet44", "resnet44", depth=44, params=658_586, param_source="paper Table 6 (0.66M), exact count of option A", options_doc=CIFAR_OPTIONS, **CIFAR)
ResNet56 = public_builder(cifar_resnet, "ResNet56", "resnet56", depth=56, params=853_018, param_source="paper Table 6 (0.85M), exact count of option A", options_doc=CIFAR_OPTIONS, **CIFAR)
ResNet110 = public_builder(cifar_resnet, "ResNet110", "resnet110", depth=110, params=1_727_962, param_source="paper Table 6 (1.7M), exact count of option A", options_doc=CIFAR_OPTIONS, **CIFAR)
ResNet1202 = public_builder(cifar_resnet, "ResNet1202", "resnet1202", depth=1202, params=19_421_274, param_source="paper Table 6 (19.4M), exact count of option A", options_doc=CIFAR_OPTIONS, **CIFAR)
Plain20 = public_builder(cifar_resnet, "Plain20", "plain20", depth=20, residual=False, params=269_722, param_source="= resnet20 (option A adds no parameters)", **CIFAR)
Plain32 = public_builder(cifar_resnet, "Plain32", "plain32", depth=32, residual=False, params=464_154, param_source="= resnet32 (option A adds no parameters)", **CIFAR)
Plain44 = public_builder(cifar_resnet, "Plain44", "plain44", depth=44, residual=False, params=658_586, param_source="= resnet44 (option A adds no parameters)", **CIFAR)
Plain56 = public_builder(cifar_resnet, "Plain56", "plain56", depth=56, residual=False, params=853_018, param_source="= resnet56 (option A adds no parameters)", **CIFAR)
Plain110 = public_builder(cifar_resnet, "Plain110", "plain110", depth=110, residual=False, params=1_727_962, param_source="= resnet110 (option A adds no parameters)", **CIFAR)
