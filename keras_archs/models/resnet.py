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
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import KERAS_URL, keras_applications, torchvision
from keras_archs.weight_import.reference import Check, Reference, rules

PAPER = "He et al. 2015, Deep Residual Learning for Image Recognition"

# Reference weights source -> the preprocess_input mode its ImageNet weights expect.
PREPROCESSING = {"torchvision": "torch", "keras": "caffe"}
preprocess_input = family_preprocess_input("ResNet", PREPROCESSING)

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


# --------------------------------------------------------------------------- weights


def _bottleneck_stride(model: keras.Model) -> str | None:
    """Which conv of the first strided bottleneck strides: "1x1", "3x3" or None (basic blocks)."""
    try:
        first = model.get_layer("conv3_block1_1_conv")
        model.get_layer("conv3_block1_3_conv")
    except ValueError:
        return None
    return "1x1" if tuple(first.strides) == (2, 2) else "3x3"


def _check(downsample: str, conv_bias: bool, source: str) -> Check:
    def check(model: keras.Model) -> str | None:
        actual = _bottleneck_stride(model)
        if actual not in (None, downsample):
            return (
                f"{source}'s bottleneck strides its {downsample} convolution, this model its {actual} one: "
                f"build it with downsample={downsample!r}"
            )
        try:
            bias = model.get_layer("conv1_conv").use_bias
        except ValueError:
            return None
        if bias != conv_bias:
            has = "have" if conv_bias else "have no"
            return f"{source}'s convolutions {has} biases: build with conv_bias={conv_bias}"
        return None

    return check


# torchvision's ResNet (also its ResNeXt and Wide ResNet): layer{s}.{b} are our conv{s+1}_block{b+1}.
TORCHVISION = Reference(
    rules(
        ("conv1_conv", "conv1"),
        ("conv1_bn", "bn1"),
        (r"conv(\d)_block(\d+)_0_conv", "layer{1-1}.{2-1}.downsample.0"),
        (r"conv(\d)_block(\d+)_0_bn", "layer{1-1}.{2-1}.downsample.1"),
        (r"conv(\d)_block(\d+)_(\d)_conv", "layer{1-1}.{2-1}.conv{3}"),
        (r"conv(\d)_block(\d+)_(\d)_bn", "layer{1-1}.{2-1}.bn{3}"),
        ("predictions", "fc"),
    ),
    bn_epsilon=1e-5,
    head=("fc",),
    check=_check("3x3", False, "torchvision"),
)
# keras.applications' ResNet50/101/152 use our layer names.
KERAS = Reference(bn_epsilon=1.001e-5, head=("predictions",), check=_check("1x1", True, "keras.applications"))
# The build options each reference's files need (weights="imagenet" applies them).
TORCHVISION_OPTIONS = {"downsample": "3x3", "conv_bias": False, "bn_epsilon": 1e-5}
KERAS_OPTIONS = {"downsample": "1x1", "conv_bias": True, "bn_epsilon": 1.001e-5}
BASIC_TORCHVISION_OPTIONS = {"conv_bias": False, "bn_epsilon": 1e-5}  # basic blocks: no downsample choice


def _keras_file(depth: int, top_md5: str, notop_md5: str):
    base = f"{KERAS_URL}resnet/resnet{depth}_weights_tf_dim_ordering_tf_kernels"
    return keras_applications(base, top_md5, notop_md5, **KERAS_OPTIONS)


# --------------------------------------------------------------------------- variants

OPTIONS = (
    '``shortcut="A"|"B"|"C"``, ``downsample="1x1"|"3x3"`` (bottleneck only), ``conv_bias=False``, '
    "``bn_epsilon=1e-5``"
)
# The plain nets: the same layers without shortcuts, so resnet minus its projections.
PLAIN_PARAMS = 172_032 + 1_792
PLAIN_COUNT = "torchvision resnet{} minus its 3 projection shortcuts"
# Reference counts for 10 classes, option A: 16 + 2n 3x3 layers and a 64x10 dense
# layer; they agree with the widely used reimplementation's printout
# (0.27M/0.46M/0.66M/0.85M/1.7M/19.4M, Table 6).
CIFAR_COUNT = "paper Table 6 ({}), exact count of option A"
PLAIN_CIFAR_COUNT = "= resnet{} (option A adds no parameters)"

FAMILIES = (
    Family(
        name="ResNet",
        core=resnet,
        paper=PAPER,
        recipe="resnet",
        options_doc=OPTIONS,
        references={"torchvision": TORCHVISION, "keras": KERAS},
        preprocessing=PREPROCESSING,
        variants=(
            Variant("ResNet18", "resnet18", 11_689_512, "torchvision resnet18", {"depth": 18}, weights=(
                torchvision("resnet18-f37072fd.pth", **BASIC_TORCHVISION_OPTIONS),
            ), macs=1_814_073_344),
            Variant("ResNet34", "resnet34", 21_797_672, "torchvision resnet34", {"depth": 34}, weights=(
                torchvision("resnet34-b627a593.pth", **BASIC_TORCHVISION_OPTIONS),
            ), macs=3_663_761_408),
            Variant("ResNet50", "resnet50", 25_557_032, "torchvision resnet50", {"depth": 50}, weights=(
                torchvision("resnet50-0676ba61.pth", **TORCHVISION_OPTIONS),
                _keras_file(50, "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
            ), macs=3_857_973_248),
            Variant("ResNet101", "resnet101", 44_549_160, "torchvision resnet101", {"depth": 101}, weights=(
                torchvision("resnet101-63fe2227.pth", **TORCHVISION_OPTIONS),
                _keras_file(101, "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
            ), macs=7_570_194_432),
            Variant("ResNet152", "resnet152", 60_192_808, "torchvision resnet152", {"depth": 152}, weights=(
                torchvision("resnet152-394f9c45.pth", **TORCHVISION_OPTIONS),
                _keras_file(152, "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
            ), macs=11_282_415_616),
            Variant(
                "Plain18", "plain18", 11_689_512 - PLAIN_PARAMS, PLAIN_COUNT.format(18),
                {"depth": 18, "residual": False}, summary="Figure 4 (left): ResNet-18's layers without shortcuts.",
                macs=1_794_805_760,
            ),
            Variant(
                "Plain34", "plain34", 21_797_672 - PLAIN_PARAMS, PLAIN_COUNT.format(34),
                {"depth": 34, "residual": False}, summary="Figure 3 (middle): ResNet-34's layers without shortcuts.",
                macs=3_644_493_824,
            ),
        ),
    ),
    Family(
        name="ResNet-CIFAR",
        core=cifar_resnet,
        paper=PAPER,
        default_size=32,
        min_size=4,
        default_classes=10,
        recipe="resnet_cifar",
        options_doc='``shortcut="A"|"B"|"C"`` (the paper uses A on CIFAR)',
        variants=(
            Variant("ResNet20", "resnet20", 269_722, CIFAR_COUNT.format("0.27M"), {"depth": 20}, macs=40_551_040),
            Variant("ResNet32", "resnet32", 464_154, CIFAR_COUNT.format("0.46M"), {"depth": 32}, macs=68_862_592),
            Variant("ResNet44", "resnet44", 658_586, CIFAR_COUNT.format("0.66M"), {"depth": 44}, macs=97_174_144),
            Variant("ResNet56", "resnet56", 853_018, CIFAR_COUNT.format("0.85M"), {"depth": 56}, macs=125_485_696),
            Variant(
                "ResNet110", "resnet110", 1_727_962, CIFAR_COUNT.format("1.7M"), {"depth": 110},
                recipe="resnet110_cifar", macs=252_887_680,
            ),
            Variant("ResNet1202", "resnet1202", 19_421_274, CIFAR_COUNT.format("19.4M"), {"depth": 1202},
                macs=2_829_238_912),
            Variant("Plain20", "plain20", 269_722, PLAIN_CIFAR_COUNT.format(20), {"depth": 20, "residual": False},
                macs=40_551_040),
            Variant("Plain32", "plain32", 464_154, PLAIN_CIFAR_COUNT.format(32), {"depth": 32, "residual": False},
                macs=68_862_592),
            Variant("Plain44", "plain44", 658_586, PLAIN_CIFAR_COUNT.format(44), {"depth": 44, "residual": False},
                macs=97_174_144),
            Variant("Plain56", "plain56", 853_018, PLAIN_CIFAR_COUNT.format(56), {"depth": 56, "residual": False},
                macs=125_485_696),
            Variant(
                "Plain110", "plain110", 1_727_962, PLAIN_CIFAR_COUNT.format(110), {"depth": 110, "residual": False},
                recipe="resnet110_cifar", macs=252_887_680,
            ),
        ),
    ),
)
