"""DenseNet (Huang, Liu, van der Maaten & Weinberger 2017, "Densely Connected
Convolutional Networks"): the ImageNet DenseNet-BC networks of Table 1 (plus
DenseNet-161 of the authors' release and torchvision) and the CIFAR networks of
Section 4 / Table 2, with and without bottleneck layers and compression.

Layer names follow keras.applications' DenseNet (``conv2_block1_0_bn``,
``pool2_conv``, ``bn``), so its weights load by name; torchvision's module names map
one-to-one (``features.denseblock1.denselayer1.norm1`` -> ``conv2_block1_0_bn``,
``.conv1`` -> ``_1_conv``, ``.norm2`` -> ``_1_bn``, ``.conv2`` -> ``_2_conv``,
``features.transition1.norm/conv`` -> ``pool2_bn/conv``, ``features.conv0/norm0`` ->
``conv1_conv/bn``, ``features.norm5`` -> ``bn``, ``classifier`` -> ``predictions``).
"""

from __future__ import annotations

import re

import keras

from keras_archs.blocks import batch_norm, conv, conv_bn_act, pool
from keras_archs.builder import build_classifier
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import KERAS_URL, keras_applications, torchvision
from keras_archs.weight_import.reference import Reference, rules

PAPER = "Huang et al. 2017, Densely Connected Convolutional Networks"

PREPROCESSING = {"torchvision": "torch", "keras": "torch"}
preprocess_input = family_preprocess_input("DenseNet", PREPROCESSING)

# Table 1: growth rate k, stem filters (2k) and layers per dense block.
# DenseNet-161 (k=48, 96 stem filters) is not in Table 1; it comes from the
# authors' released models, as in torchvision.
IMAGENET_CONFIGS: dict[int, tuple[int, int, tuple[int, ...]]] = {
    121: (32, 64, (6, 12, 24, 16)),
    161: (48, 96, (6, 12, 36, 24)),
    169: (32, 64, (6, 12, 32, 32)),
    201: (32, 64, (6, 12, 48, 32)),
    264: (32, 64, (6, 12, 64, 48)),
}
BOTTLENECK_WIDTH = 4  # Section 3: "each 1x1 convolution produce[s] 4k feature-maps"


def _bn_relu_conv(
    x, filters: int, kernel_size: int, *, bn_name: str, conv_name: str, bn_epsilon: float, dropout_rate: float
):
    """Section 3's pre-activation composite: BN - ReLU - conv (- dropout)."""
    x = batch_norm(x, name=f"{bn_name}_bn", epsilon=bn_epsilon)
    x = keras.layers.ReLU(name=f"{bn_name}_relu")(x)
    x = conv(x, filters, kernel_size, name=f"{conv_name}_conv")
    if dropout_rate:
        # Section 4.2: dropout after each convolution but the first, on the
        # datasets trained without augmentation.
        x = keras.layers.Dropout(dropout_rate, name=f"{conv_name}_dropout")(x)
    return x


def dense_layer(
    x, growth_rate: int, *, name: str, bottleneck: bool, bn_epsilon: float, dropout_rate: float
):
    """H_l: BN-ReLU-3x3 conv (k maps), or with a bottleneck BN-ReLU-1x1 conv (4k) first;
    its output is concatenated to its input."""
    layer = dict(bn_epsilon=bn_epsilon, dropout_rate=dropout_rate)
    y = x
    if bottleneck:
        y = _bn_relu_conv(y, BOTTLENECK_WIDTH * growth_rate, 1, bn_name=f"{name}_0", conv_name=f"{name}_1", **layer)
        y = _bn_relu_conv(y, growth_rate, 3, bn_name=f"{name}_1", conv_name=f"{name}_2", **layer)
    else:
        y = _bn_relu_conv(y, growth_rate, 3, bn_name=f"{name}_0", conv_name=f"{name}_1", **layer)
    return keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([x, y])


def dense_block(x, layers: int, growth_rate: int, *, name: str, **layer_options):
    """``layers`` dense layers named ``{name}_block1`` ... ; adds ``layers * k`` channels."""
    for i in range(1, layers + 1):
        x = dense_layer(x, growth_rate, name=f"{name}_block{i}", **layer_options)
    return x


def transition(x, *, compression: float, name: str, bn_epsilon: float, dropout_rate: float):
    """BN-ReLU-1x1 conv to floor(theta * m) maps, then 2x2 average pooling (Section 3)."""
    filters = int(x.shape[-1] * compression)
    x = _bn_relu_conv(x, filters, 1, bn_name=name, conv_name=name, bn_epsilon=bn_epsilon, dropout_rate=dropout_rate)
    return pool(x, 2, 2, kind="avg", name=f"{name}_pool")


def _trunk(x, blocks, growth_rate, *, first_block: int, bottleneck, compression, bn_epsilon, dropout_rate):
    """Dense blocks ``conv{first_block}``... with transitions ``pool{n}`` between them,
    then the final BN-ReLU (``bn``, ``relu``)."""
    options = dict(bn_epsilon=bn_epsilon, dropout_rate=dropout_rate)
    for i, layers in enumerate(blocks):
        stage = first_block + i
        x = dense_block(x, layers, growth_rate, name=f"conv{stage}", bottleneck=bottleneck, **options)
        if i < len(blocks) - 1:
            x = transition(x, compression=compression, name=f"pool{stage}", **options)
    x = batch_norm(x, name="bn", epsilon=bn_epsilon)
    return keras.layers.ReLU(name="relu")(x)


def _check_compression(compression: float) -> None:
    if not 0 < compression <= 1:
        raise ValueError(f"compression (theta) must be in (0, 1], got {compression}.")


def densenet(
    *,
    depth: int,
    growth_rate: int | None = None,
    stem_filters: int | None = None,
    compression: float = 0.5,
    dropout_rate: float = 0.0,
    bn_epsilon: float = 1e-5,
    **common,
) -> keras.Model:
    """Core ImageNet DenseNet-BC builder (Table 1).

    A 7x7/2 convolution with 2k filters and 3x3/2 max pooling, four dense blocks of
    bottleneck layers joined by compressing transitions, BN-ReLU, global average
    pooling and a dense layer.

    Args:
        depth: 121, 161, 169, 201 or 264.
        growth_rate: k; default that of the configuration (32; 48 for DenseNet-161).
        stem_filters: filters of the first convolution; default 2k (96 for DenseNet-161).
        compression: theta, the fraction of maps a transition keeps (0.5).
        dropout_rate: dropout after every convolution but the first (0 on ImageNet).
        bn_epsilon: BatchNormalization epsilon (1e-5 torchvision and the authors'
            Torch code; keras.applications uses 1.001e-5).
    """
    if depth not in IMAGENET_CONFIGS:
        raise ValueError(f"ImageNet DenseNet depth must be one of {sorted(IMAGENET_CONFIGS)}, got {depth}.")
    _check_compression(compression)
    k, stem, blocks = IMAGENET_CONFIGS[depth]
    k = growth_rate or k
    stem = stem_filters or (stem if growth_rate is None else 2 * k)

    def features(x):
        x = conv_bn_act(x, stem, 7, strides=2, bn_epsilon=bn_epsilon, name="conv1")
        x = pool(x, 3, 2, padding=1, name="pool1")
        return _trunk(
            x,
            blocks,
            k,
            first_block=2,
            bottleneck=True,
            compression=compression,
            bn_epsilon=bn_epsilon,
            dropout_rate=dropout_rate,
        )

    return build_classifier(features=features, **common)


def cifar_depth_blocks(depth: int, bottleneck: bool) -> int:
    """Layers per dense block of a CIFAR DenseNet of depth L.

    L counts the first convolution, the two transition convolutions, the classifier
    and every convolution in the three equal dense blocks (two per bottleneck layer),
    so L = 3n + 4 without bottlenecks and L = 6n + 4 with them.
    """
    per_layer = 2 if bottleneck else 1
    n, rest = divmod(depth - 4, 3 * per_layer)
    if rest or n < 1:
        form = "6n+4 (100, 190, 250)" if bottleneck else "3n+4 (40, 100)"
        kind = "DenseNet-BC (bottleneck)" if bottleneck else "DenseNet"
        raise ValueError(f"CIFAR {kind} depth must be {form} with n >= 1, got {depth}.")
    return n


def cifar_densenet(
    *,
    depth: int,
    growth_rate: int,
    bottleneck: bool = False,
    compression: float = 1.0,
    stem_filters: int | None = None,
    dropout_rate: float = 0.0,
    bn_epsilon: float = 1e-5,
    **common,
) -> keras.Model:
    """Core CIFAR DenseNet builder (Section 3, "Implementation Details").

    A 3x3 convolution (16 filters, or 2k for DenseNet-BC), three dense blocks of equal
    length on 32, 16 and 8 pixel maps joined by transitions, BN-ReLU, global average
    pooling and a dense layer.

    Args:
        depth: L, 3n+4 without and 6n+4 with bottleneck layers.
        growth_rate: k.
        bottleneck: use BN-ReLU-1x1 (4k) before each 3x3 convolution (DenseNet-B).
        compression: theta of the transitions (1.0 plain, 0.5 for DenseNet-C/-BC).
        stem_filters: filters of the first convolution; default 2k when both
            bottleneck and compression are used, else 16.
        dropout_rate: dropout after every convolution but the first (the paper uses
            0.2 on C10/C100/SVHN without augmentation).
        bn_epsilon: BatchNormalization epsilon.
    """
    n = cifar_depth_blocks(depth, bottleneck)
    _check_compression(compression)
    if stem_filters is None:
        stem_filters = 2 * growth_rate if bottleneck and compression < 1 else 16

    def features(x):
        # The first dense layer starts with BN-ReLU, so the stem is a bare convolution.
        x = conv(x, stem_filters, 3, name="conv1_conv")
        return _trunk(
            x,
            (n, n, n),
            growth_rate,
            first_block=2,
            bottleneck=bottleneck,
            compression=compression,
            bn_epsilon=bn_epsilon,
            dropout_rate=dropout_rate,
        )

    return build_classifier(features=features, **common)


# --------------------------------------------------------------------------- weights

_OLD_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$")


def _current_key(key: str) -> str:
    # torchvision's official DenseNet files spell "norm.1.weight" (its loader renames them to "norm1.weight").
    return _OLD_KEY.sub(r"\1\2", key)


TORCHVISION = Reference(
    rules(
        ("conv1_conv", "features.conv0"),
        ("conv1_bn", "features.norm0"),
        (r"conv(\d)_block(\d+)_0_bn", "features.denseblock{1-1}.denselayer{2}.norm1"),
        (r"conv(\d)_block(\d+)_1_conv", "features.denseblock{1-1}.denselayer{2}.conv1"),
        (r"conv(\d)_block(\d+)_1_bn", "features.denseblock{1-1}.denselayer{2}.norm2"),
        (r"conv(\d)_block(\d+)_2_conv", "features.denseblock{1-1}.denselayer{2}.conv2"),
        (r"pool(\d)_bn", "features.transition{1-1}.norm"),
        (r"pool(\d)_conv", "features.transition{1-1}.conv"),
        ("bn", "features.norm5"),
        ("predictions", "classifier"),
    ),
    bn_epsilon=1e-5,
    head=("classifier",),
    rename_keys=_current_key,
)
# keras.applications' DenseNet121/169/201 use our layer names (its Keras 2 files: "conv1/conv").
KERAS = Reference(bn_epsilon=1.001e-5, head=("predictions",))


def _keras_file(depth: int, top_md5: str, notop_md5: str):
    base = f"{KERAS_URL}densenet/densenet{depth}_weights_tf_dim_ordering_tf_kernels"
    return keras_applications(base, top_md5, notop_md5, bn_epsilon=1.001e-5)


# --------------------------------------------------------------------------- variants

IMAGENET_OPTIONS = "``growth_rate``, ``stem_filters``, ``compression=0.5``, ``dropout_rate=0.0``, ``bn_epsilon=1e-5``"
CIFAR_OPTIONS = (
    "``bottleneck``, ``compression``, ``stem_filters``, ``dropout_rate=0.0`` (paper: 0.2 without augmentation), "
    "``bn_epsilon=1e-5``"
)
KERAS_COUNT = "Table 1, k=32; total_params is keras.applications DenseNet{}'s count_params()."
# Exact counts for 10 classes, derived from Section 3 in tests/test_densenet.py
# (`paper_cifar_param_count`); they round to Table 2's parameter column.
CIFAR_COUNT = "paper Table 2 ({}), exact count derived from Section 3"
BC = {"bottleneck": True, "compression": 0.5}

# DenseNet-264 by hand from Table 1 (k=32, blocks 6-12-64-48, theta=0.5). A dense block of n
# bottleneck layers entering with c0 maps has n(2+4k)c0 + (2+4k)k n(n-1)/2 + n(8k+36k^2) weights
# (BN 2c, 1x1 conv c*4k, BN 2*4k, 3x3 conv 4k*k*9 per layer); with 2+4k=130, 8k+36k^2=37,120:
#   stem conv 3*64*49 + BN 2*64                                    =      9,536
#   block1 (c0=64,   n=6):  49,920 + 62,400 + 222,720              =    335,040
#   trans1 (256 -> 128):    2*256 + 256*128                        =     33,280
#   block2 (c0=128,  n=12): 199,680 + 274,560 + 445,440            =    919,680
#   trans2 (512 -> 256):    2*512 + 512*256                        =    132,096
#   block3 (c0=256,  n=64): 2,129,920 + 8,386,560 + 2,375,680      = 12,892,160
#   trans3 (2304 -> 1152):  2*2304 + 2304*1152                     =  2,658,816
#   block4 (c0=1152, n=48): 7,188,480 + 4,692,480 + 1,781,760      = 13,662,720
#   final BN 2*2688 + dense 2688*1000 + 1000                       =  2,694,376
#   total                                                          = 33,337,704
# tests/test_densenet.py recomputes it with a pure-python counter that also reproduces
# torchvision's DenseNet-121/161/169/201 counts exactly.
FAMILIES = (
    Family(
        name="DenseNet",
        core=densenet,
        paper=PAPER,
        # 29 -> 15 (conv1) -> 8 (pool1) -> 4 -> 2 -> 1 (the three 2x2 average poolings).
        min_size=29,
        recipe="densenet",
        options_doc=IMAGENET_OPTIONS,
        references={"torchvision": TORCHVISION, "keras": KERAS},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "DenseNet121", "densenet121", 7_978_856, "torchvision densenet121", {"depth": 121},
                total_params=8_062_504, summary=KERAS_COUNT.format(121),
                weights=(
                    torchvision("densenet121-a639ec97.pth", bn_epsilon=1e-5),
                    _keras_file(121, "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
                ), macs=2_834_161_664,
            ),
            Variant(
                "DenseNet161", "densenet161", 28_681_000, "torchvision densenet161", {"depth": 161},
                summary="k=48, 96 stem filters, blocks 6-12-36-24 (authors' release, torchvision).",
                weights=(torchvision("densenet161-8d451a50.pth", bn_epsilon=1e-5),), macs=7_727_907_072,
            ),
            Variant(
                "DenseNet169", "densenet169", 14_149_480, "torchvision densenet169", {"depth": 169},
                total_params=14_307_880, summary=KERAS_COUNT.format(169),
                weights=(
                    torchvision("densenet169-b2777c0a.pth", bn_epsilon=1e-5),
                    _keras_file(169, "d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
                ), macs=3_359_843_328,
            ),
            Variant(
                "DenseNet201", "densenet201", 20_013_928, "torchvision densenet201", {"depth": 201},
                total_params=20_242_984, summary=KERAS_COUNT.format(201),
                weights=(
                    torchvision("densenet201-c1103571.pth", bn_epsilon=1e-5),
                    _keras_file(201, "1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
                ), macs=4_291_365_888,
            ),
            Variant(
                "DenseNet264", "densenet264", 33_337_704,
                "paper Table 1 (k=32, blocks 6-12-64-48), exact count derived in test_densenet.py",
                {"depth": 264}, summary="Table 1's deepest network, k=32.", macs=5_751_653_376,
            ),
        ),
    ),
    Family(
        name="DenseNet-CIFAR",
        core=cifar_densenet,
        paper=PAPER,
        default_size=32,
        min_size=4,  # two 2x2 average poolings (4 -> 2 -> 1)
        default_classes=10,
        recipe="densenet_cifar",
        options_doc=CIFAR_OPTIONS,
        variants=(
            Variant(
                "DenseNet40_12", "densenet_40_12", 1_019_722, CIFAR_COUNT.format("1.0M"),
                {"depth": 40, "growth_rate": 12},
                summary="DenseNet (L=40, k=12): no bottleneck, no compression, 16 stem filters.", macs=264_812_928,
            ),
            Variant(
                "DenseNet100_12", "densenet_100_12", 6_979_642, CIFAR_COUNT.format("7.0M"),
                {"depth": 100, "growth_rate": 12},
                summary="DenseNet (L=100, k=12): no bottleneck, no compression, 16 stem filters.", macs=1_769_516_448,
            ),
            Variant(
                "DenseNet100_24", "densenet_100_24", 27_249_082, CIFAR_COUNT.format("27.2M"),
                {"depth": 100, "growth_rate": 24},
                summary="DenseNet (L=100, k=24): no bottleneck, no compression, 16 stem filters.", macs=6_889_347_744,
            ),
            Variant(
                "DenseNetBC100_12", "densenet_bc_100_12", 769_162, CIFAR_COUNT.format("0.8M"),
                {"depth": 100, "growth_rate": 12, **BC},
                summary="DenseNet-BC (L=100, k=12): bottleneck layers, compression 0.5, 2k stem filters.",
                macs=287_929_692,
            ),
            Variant(
                "DenseNetBC250_24", "densenet_bc_250_24", 15_324_406, CIFAR_COUNT.format("15.3M"),
                {"depth": 250, "growth_rate": 24, **BC},
                summary="DenseNet-BC (L=250, k=24): bottleneck layers, compression 0.5, 2k stem filters.",
                macs=5_418_785_724,
            ),
            Variant(
                "DenseNetBC190_40", "densenet_bc_190_40", 25_624_430, CIFAR_COUNT.format("25.6M"),
                {"depth": 190, "growth_rate": 40, **BC},
                summary="DenseNet-BC (L=190, k=40): bottleneck layers, compression 0.5, 2k stem filters.",
                macs=9_301_945_740,
            ),
        ),
    ),
)
