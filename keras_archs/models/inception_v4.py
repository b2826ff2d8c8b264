"""Inception-v4, Inception-ResNet-v1 and Inception-ResNet-v2 (Szegedy, Ioffe,
Vanhoucke & Alemi 2016, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", Figures 3-20 and Table 1).

The three networks share the paper's building blocks: the stems (Figures 3 and 14),
Reduction-A with Table 1's filter counts (Figure 7), and the layout stem ->
A blocks -> Reduction-A -> B blocks -> Reduction-B -> C blocks -> average pooling ->
dropout (keep 0.8) -> softmax (Figures 9 and 15). Inception-ResNet-v2 defaults to the
layout of keras.applications (TF-slim's released network); ``layout="paper"`` gives
the paper's Figure 15 version (see the notes for every difference).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial

import keras
import numpy as np

from keras_archs.blocks import conv, conv_bn_act, pool
from keras_archs.builder import build_classifier, dense_top
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.models.inception_v3 import auxiliary_head
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.reference import Reference

PAPER = "Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning"

# timm's configurations use mean = std = 0.5: "tf" mode.
V4_PREPROCESSING = {"timm": "tf"}
PREPROCESSING = {"keras": "tf", "timm": "tf"}
preprocess_input = family_preprocess_input("Inception-ResNet", PREPROCESSING)

Tensor = keras.KerasTensor

# ---------------------------------------------------------------------------
# Layer specs of the tables. "V" in the paper's figures = valid padding; every
# other layer is same-padded (Section 3.1).
V = True


def C(filters: int, kernel: int | tuple[int, int], strides: int = 1, valid: bool = False) -> tuple:
    """A conv-BN-ReLU layer of a branch."""
    return ("conv", filters, kernel, strides, valid)


MAXPOOL = ("maxpool",)  # 3x3, stride 2, valid
AVGPOOL = ("avgpool",)  # 3x3, stride 1, same; averages the in-image pixels only (TF / timm)


def SPLIT(*alternatives: tuple) -> tuple:
    """The branch forks: each alternative sees the same input, outputs are concatenated (Figure 6)."""
    return ("split", alternatives)


# A block is a tuple of branches, a branch a tuple of layer specs, concatenated in
# the order of TF-slim / timm / keras (so their weights map one to one). Factorised
# kernels are in the order the paper's figures draw them.
V4_STEM = {  # Figure 3, after conv_1a/2a/2b
    "mixed_3a": ((MAXPOOL,), (C(96, 3, 2, V),)),
    "mixed_4a": (
        (C(64, 1), C(96, 3, valid=V)),
        (C(64, 1), C(64, (7, 1)), C(64, (1, 7)), C(96, 3, valid=V)),
    ),
    # The figure prints "3x3 Conv (192 V)" without a stride; stride 2 is needed for
    # the 35x35x384 output the figure states.
    "mixed_5a": ((C(192, 3, 2, V),), (MAXPOOL,)),
}
KERAS_MIXED_5B = (  # keras.applications / TF-slim Inception-ResNet-v2 stem top (not in the paper)
    (C(96, 1),),
    (C(48, 1), C(64, 5)),
    (C(64, 1), C(96, 3), C(96, 3)),
    (AVGPOOL, C(64, 1)),
)
V4_BLOCKS = {
    "a": (  # Figure 4
        (C(96, 1),),
        (C(64, 1), C(96, 3)),
        (C(64, 1), C(96, 3), C(96, 3)),
        (AVGPOOL, C(96, 1)),
    ),
    "b": (  # Figure 5
        (C(384, 1),),
        (C(192, 1), C(224, (1, 7)), C(256, (7, 1))),
        (C(192, 1), C(192, (1, 7)), C(224, (7, 1)), C(224, (1, 7)), C(256, (7, 1))),
        (AVGPOOL, C(128, 1)),
    ),
    "reduction_b": (  # Figure 8
        (C(192, 1), C(192, 3, 2, V)),
        (C(256, 1), C(256, (1, 7)), C(320, (7, 1)), C(320, 3, 2, V)),
        (MAXPOOL,),
    ),
    "c": (  # Figure 6
        (C(256, 1),),
        (C(384, 1), SPLIT(C(256, (1, 3)), C(256, (3, 1)))),
        (C(384, 1), C(448, (1, 3)), C(512, (3, 1)), SPLIT(C(256, (1, 3)), C(256, (3, 1)))),
        (AVGPOOL, C(256, 1)),
    ),
}
# Branches whose factorised kernels TF-slim (hence timm's and keras' weights) applies
# in the transposed order (7x1 before 1x7, 3x1 before 1x3); kernel_order="tf-slim".
TF_SLIM_TRANSPOSED = {("mixed_4a", 1), ("b", 2), ("c", 2)}

# The residual branches of Inception-ResNet-v1 (Figures 10, 11, 13) and -v2 (16, 17, 19);
# each is followed by a linear 1x1 convolution back to the input width.
RESIDUAL_BLOCKS = {
    "v1": {
        "a": ((C(32, 1),), (C(32, 1), C(32, 3)), (C(32, 1), C(32, 3), C(32, 3))),
        "b": ((C(128, 1),), (C(128, 1), C(128, (1, 7)), C(128, (7, 1)))),
        "c": ((C(192, 1),), (C(192, 1), C(192, (1, 3)), C(192, (3, 1)))),
    },
    "v2": {
        "a": ((C(32, 1),), (C(32, 1), C(32, 3)), (C(32, 1), C(48, 3), C(64, 3))),
        "b": ((C(192, 1),), (C(128, 1), C(160, (1, 7)), C(192, (7, 1)))),
        "c": ((C(192, 1),), (C(192, 1), C(224, (1, 3)), C(256, (3, 1)))),
    },
}
REDUCTION_B = {
    "v1": (  # Figure 12
        (C(256, 1), C(384, 3, 2, V)),
        (C(256, 1), C(256, 3, 2, V)),
        (C(256, 1), C(256, 3), C(256, 3, 2, V)),
        (MAXPOOL,),
    ),
    "v2": (  # Figure 18
        (C(256, 1), C(384, 3, 2, V)),
        (C(256, 1), C(288, 3, 2, V)),
        (C(256, 1), C(288, 3), C(320, 3, 2, V)),
        (MAXPOOL,),
    ),
}
# Table 1: the filter counts k, l, m, n of Reduction-A (Figure 7).
REDUCTION_A_KLMN = {"v4": (192, 224, 256, 384), "v1": (192, 192, 256, 384), "v2": (256, 256, 384, 384)}

# Layouts of the Inception-ResNets. "paper": Figure 15 (5/10/5 blocks, ReLU after
# every block, no extra convolution). "keras": keras.applications' (= TF-slim's
# released) Inception-ResNet-v2, the reference whose parameter count and weights we match.
IR_LAYOUTS = {
    ("v1", "paper"): dict(stem="v1", blocks=(5, 10, 5), last_block_linear=False, final_conv=0),
    ("v2", "paper"): dict(stem="v4", blocks=(5, 10, 5), last_block_linear=False, final_conv=0),
    ("v2", "keras"): dict(stem="keras", blocks=(10, 20, 10), last_block_linear=True, final_conv=1536),
}
STEMS = ("v4", "v1", "keras")
KERNEL_ORDERS = ("paper", "tf-slim")
# Section 3.3 scales residuals "by factors between 0.1 and 0.3"; the per-stage
# values (A, B, C) are keras.applications'/TF-slim's.
DEFAULT_RESIDUAL_SCALE = (0.17, 0.1, 0.2)
AUX_MIN_GRID = 17  # 5x5/3 average pooling then a 5x5 valid convolution
# Every convolution but the residual "up" convs is conv (no bias) -> BN -> ReLU; BN keeps
# Keras' default momentum, as keras.applications' Inception-ResNet-v2 does.
BN_MOMENTUM = 0.99


# ---------------------------------------------------------------------------
# Blocks


def _layer(x: Tensor, spec: tuple, *, name: str, bn: dict) -> Tensor:
    kind = spec[0]
    if kind == "conv":
        _, filters, kernel, strides, valid = spec
        return conv_bn_act(x, filters, kernel, strides=strides, padding="valid" if valid else "auto", name=name, **bn)
    if kind == "maxpool":
        return pool(x, 3, 2, name=f"{name}_pool")
    if kind == "avgpool":
        return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    if kind == "split":
        parts = [_layer(x, alt, name=f"{name}{letter}", bn=bn) for letter, alt in zip("abcd", spec[1])]
        return keras.layers.Concatenate(name=f"{name}_concat")(parts)
    raise ValueError(f"Unknown layer spec {spec!r}.")


def branches(x: Tensor, table: Sequence[Sequence[tuple]], *, name: str, bn: dict) -> list[Tensor]:
    """Apply each branch of ``table`` to ``x``; layer j of branch b is ``{name}_branch{b}_{j}``."""
    outputs = []
    for b, branch in enumerate(table):
        y = x
        for j, spec in enumerate(branch, start=1):
            y = _layer(y, spec, name=f"{name}_branch{b}_{j}", bn=bn)
        outputs.append(y)
    return outputs


def mixed(x: Tensor, table: Sequence[Sequence[tuple]], *, name: str, bn: dict) -> Tensor:
    """A concatenating block (Inception-A/B/C, reductions, stem parts); the concat layer is ``name``."""
    return keras.layers.Concatenate(name=name)(branches(x, table, name=name, bn=bn))


def inception_resnet_block(
    x: Tensor, table: Sequence[Sequence[tuple]], *, name: str, scale: float, activation: bool, bn: dict
) -> Tensor:
    """Figures 10-13 / 16-19: branches, concat, a linear 1x1 conv back to the input width
    (with bias, no BN: "BN only on top of the traditional layers", Section 3.2), the
    residual scaled by ``scale`` (Section 3.3, Figure 20), added, then ReLU."""
    up = keras.layers.Concatenate(name=f"{name}_mixed")(branches(x, table, name=name, bn=bn))
    up = conv(up, x.shape[-1], 1, use_bias=True, name=f"{name}_conv")
    up = keras.layers.Rescaling(scale, name=f"{name}_scale")(up)
    x = keras.layers.Add(name=f"{name}_add")([x, up])
    return keras.layers.ReLU(name=f"{name}_relu")(x) if activation else x


def reduction_a(x: Tensor, klmn: tuple[int, int, int, int], *, name: str, bn: dict) -> Tensor:
    """Figure 7 with Table 1's k, l, m, n."""
    k, l, m, n = klmn  # noqa: E741 (the paper's letters)
    table = ((C(n, 3, 2, V),), (C(k, 1), C(l, 3), C(m, 3, 2, V)), (MAXPOOL,))
    return mixed(x, table, name=name, bn=bn)


def _transposed(branch: tuple) -> tuple:
    def swap(spec):
        if spec[0] != "conv" or isinstance(spec[2], int):
            return spec
        kh, kw = spec[2]
        return (*spec[:2], (kw, kh), *spec[3:])

    return tuple(swap(spec) for spec in branch)


def ordered(table: tuple, key: str, kernel_order: str) -> tuple:
    """``table`` in the requested order of factorised kernels."""
    if kernel_order == "paper":
        return table
    return tuple(_transposed(branch) if (key, b) in TF_SLIM_TRANSPOSED else branch for b, branch in enumerate(table))


def stem(x: Tensor, kind: str, *, kernel_order: str, bn: dict) -> Tensor:
    """The stems: ``"v4"`` Figure 3 (Inception-v4, Inception-ResNet-v2), ``"v1"`` Figure 14
    (Inception-ResNet-v1), ``"keras"`` keras.applications' Inception-ResNet-v2 stem."""
    x = conv_bn_act(x, 32, 3, strides=2, padding="valid", name="conv_1a", **bn)
    x = conv_bn_act(x, 32, 3, padding="valid", name="conv_2a", **bn)
    x = conv_bn_act(x, 64, 3, name="conv_2b", **bn)
    if kind == "v4":
        for key, table in V4_STEM.items():
            x = mixed(x, ordered(table, key, kernel_order), name=key, bn=bn)
        return x
    x = pool(x, 3, 2, name="pool_3a")
    x = conv_bn_act(x, 80, 1, name="conv_3b", **bn)
    x = conv_bn_act(x, 192, 3, padding="valid", name="conv_4a", **bn)
    if kind == "v1":
        return conv_bn_act(x, 256, 3, strides=2, padding="valid", name="conv_4b", **bn)
    x = pool(x, 3, 2, name="pool_5a")
    return mixed(x, KERAS_MIXED_5B, name="mixed_5b", bn=bn)


def aux_head(x: Tensor, classes: int, classifier_activation, *, bn: dict) -> Tensor:
    """Auxiliary classifier on the 17x17 grid, as in TF-slim's released Inception-v4 and
    Inception-ResNet-v2: 5x5/3 average pooling, 1x1x128, 5x5x768 (valid), classifier.
    The 5x5 output is 1x1 at 299 pixels; larger inputs are averaged globally (as
    torchvision's Inception-v3 head does) so the weights do not depend on the size."""
    grid = x.shape[1:3]
    if any(d is None or d < AUX_MIN_GRID for d in grid):
        raise ValueError(
            f"aux_logits=True needs a known input size giving at least a {AUX_MIN_GRID}x{AUX_MIN_GRID} "
            f"grid at the B blocks, i.e. inputs of at least 299x299; that grid is {tuple(grid)} here."
        )
    names = ("aux_pool", "aux_conv1", "aux_conv2", "aux_avg_pool", "aux_predictions")
    return auxiliary_head(x, classes, classifier_activation, names=names, **bn)


def _check(value, allowed, option: str) -> None:
    if value not in allowed:
        raise ValueError(f"{option} must be one of {allowed}, got {value!r}.")


# ---------------------------------------------------------------------------
# Core builders


def inception_v4(
    *,
    aux_logits: bool = False,
    kernel_order: str = "paper",
    bn_scale: bool = True,
    bn_epsilon: float = 1e-3,
    dropout: float = 0.2,
    **common,
) -> keras.Model:
    """Core Inception-v4 builder (Figure 9): stem, 4 x Inception-A, Reduction-A,
    7 x Inception-B, Reduction-B, 3 x Inception-C, average pooling, dropout, dense.

    Args:
        aux_logits: add the auxiliary classifier on the 17x17 grid (output ``"aux"``).
        kernel_order: ``"paper"`` (the figures' order of 1x7/7x1 and 1x3/3x1 kernels) or
            ``"tf-slim"`` (the released code's, which timm's weights use).
        bn_scale: BN with a learned scale (timm); TF-slim's BN has none.
        bn_epsilon: BN epsilon (1e-3 in TF-slim and timm).
        dropout: dropout before the classifier (the paper keeps 0.8).
    """
    _check(kernel_order, KERNEL_ORDERS, "kernel_order")
    bn = dict(bn_scale=bn_scale, bn_epsilon=bn_epsilon, bn_momentum=BN_MOMENTUM)
    include_top = common.get("include_top", True)
    classes, activation = common.get("classes"), common.get("classifier_activation")

    def features(x):
        x = stem(x, "v4", kernel_order=kernel_order, bn=bn)
        for i in range(1, 5):
            x = mixed(x, V4_BLOCKS["a"], name=f"inception_a{i}", bn=bn)
        x = reduction_a(x, REDUCTION_A_KLMN["v4"], name="reduction_a", bn=bn)
        for i in range(1, 8):
            x = mixed(x, ordered(V4_BLOCKS["b"], "b", kernel_order), name=f"inception_b{i}", bn=bn)
        aux = {"aux": aux_head(x, classes, activation, bn=bn)} if aux_logits and include_top else {}
        x = mixed(x, V4_BLOCKS["reduction_b"], name="reduction_b", bn=bn)
        for i in range(1, 4):
            x = mixed(x, ordered(V4_BLOCKS["c"], "c", kernel_order), name=f"inception_c{i}", bn=bn)
        return (x, aux) if aux else x

    return build_classifier(features=features, top=partial(dense_top, dropout=dropout), **common)


def _residual_scales(residual_scale) -> tuple[float, float, float]:
    scales = residual_scale if isinstance(residual_scale, Sequence) else (residual_scale,) * 3
    if len(scales) != 3 or not all(isinstance(s, (int, float)) and s > 0 for s in scales):
        raise ValueError(
            f"residual_scale must be a positive number or three of them (A, B, C blocks), got {residual_scale!r}."
        )
    return tuple(float(s) for s in scales)


def inception_resnet(
    *,
    version: str,
    layout: str = "paper",
    stem_type: str | None = None,
    blocks: tuple[int, int, int] | None = None,
    residual_scale: float | Sequence[float] = DEFAULT_RESIDUAL_SCALE,
    last_block_linear: bool | None = None,
    final_conv: int | None = None,
    aux_logits: bool = False,
    kernel_order: str = "paper",
    bn_scale: bool = False,
    bn_epsilon: float = 1e-3,
    dropout: float = 0.2,
    **common,
) -> keras.Model:
    """Core Inception-ResNet builder (Figure 15): stem, Inception-ResNet-A blocks,
    Reduction-A, Inception-ResNet-B blocks, Reduction-B, Inception-ResNet-C blocks,
    average pooling, dropout, dense.

    Args:
        version: ``"v1"`` or ``"v2"`` (block filter counts, Table 1's k, l, m, n).
        layout: ``"paper"`` (Figure 15) or, for v2, ``"keras"`` (keras.applications);
            sets the defaults of the four options below.
        stem_type: ``"v1"`` (Figure 14), ``"v4"`` (Figure 3) or ``"keras"``.
        blocks: numbers of A, B and C blocks (paper 5, 10, 5; keras 10, 20, 10).
        residual_scale: residual scaling (Section 3.3), one number or one per A/B/C stage.
        last_block_linear: the last C block adds its residual unscaled and has no
            ReLU (keras.applications).
        final_conv: width of a 1x1 conv-BN-ReLU after the last block (keras: 1536); 0: none.
        aux_logits: add the auxiliary classifier on the 17x17 grid (output ``"aux"``).
        kernel_order: order of factorised kernels in the Figure 3 stem (see Inception-v4).
        bn_scale: BN with a learned scale (timm); keras.applications / TF-slim have none.
        bn_epsilon: BN epsilon (1e-3 in keras.applications and timm).
        dropout: dropout before the classifier (the paper keeps 0.8).
    """
    _check(version, ("v1", "v2"), "version")
    if (version, layout) not in IR_LAYOUTS:
        raise ValueError(
            f"layout must be one of {[lay for ver, lay in IR_LAYOUTS if ver == version]} "
            f"for Inception-ResNet-{version}, got {layout!r}."
        )
    preset = IR_LAYOUTS[(version, layout)]
    stem_type = preset["stem"] if stem_type is None else stem_type
    blocks = preset["blocks"] if blocks is None else tuple(blocks)
    last_block_linear = preset["last_block_linear"] if last_block_linear is None else last_block_linear
    final_conv = preset["final_conv"] if final_conv is None else final_conv
    _check(stem_type, STEMS, "stem_type")
    _check(kernel_order, KERNEL_ORDERS, "kernel_order")
    if len(blocks) != 3 or not all(isinstance(n, int) and n >= 1 for n in blocks):
        raise ValueError(f"blocks must be three positive integers (A, B, C), got {blocks!r}.")
    scales = _residual_scales(residual_scale)
    bn = dict(bn_scale=bn_scale, bn_epsilon=bn_epsilon, bn_momentum=BN_MOMENTUM)
    tables = RESIDUAL_BLOCKS[version]
    include_top = common.get("include_top", True)
    classes, activation = common.get("classes"), common.get("classifier_activation")

    def features(x):
        x = stem(x, stem_type, kernel_order=kernel_order, bn=bn)
        for i in range(1, blocks[0] + 1):
            x = inception_resnet_block(x, tables["a"], name=f"block35_{i}", scale=scales[0], activation=True, bn=bn)
        x = reduction_a(x, REDUCTION_A_KLMN[version], name="mixed_6a", bn=bn)
        for i in range(1, blocks[1] + 1):
            x = inception_resnet_block(x, tables["b"], name=f"block17_{i}", scale=scales[1], activation=True, bn=bn)
        aux = {"aux": aux_head(x, classes, activation, bn=bn)} if aux_logits and include_top else {}
        x = mixed(x, REDUCTION_B[version], name="mixed_7a", bn=bn)
        for i in range(1, blocks[2] + 1):
            linear = last_block_linear and i == blocks[2]
            x = inception_resnet_block(
                x,
                tables["c"],
                name=f"block8_{i}",
                scale=1.0 if linear else scales[2],
                activation=not linear,
                bn=bn,
            )
        if final_conv:
            x = conv_bn_act(x, final_conv, 1, name="conv_7b", **bn)
        return (x, aux) if aux else x

    return build_classifier(features=features, top=partial(dense_top, dropout=dropout), **common)


# ---------------------------------------------------------------------------
# Weights


def _keras_check(model: keras.Model) -> str | None:
    """keras.applications' InceptionResNetV2: BN without scale, residuals scaled by
    0.17/0.1/0.2 per stage, the last block8 linear (scale 1, no ReLU)."""
    layers = {layer.name: layer for layer in model.layers}
    scales = {layer.scale for layer in layers.values() if isinstance(layer, keras.layers.BatchNormalization)}
    blocks = sorted((n for n in layers if re.fullmatch(r"block8_\d+_scale", n)), key=lambda n: int(n.split("_")[1]))
    wanted = dict(zip(("block35", "block17", "block8"), DEFAULT_RESIDUAL_SCALE))
    residual_ok = all(
        np.isclose(layer.scale, wanted[name.split("_")[0]])
        for name, layer in layers.items()
        if re.fullmatch(r"block(35|17|8)_\d+_scale", name) and (not blocks or name != blocks[-1])
    )
    last_linear = bool(blocks) and np.isclose(layers[blocks[-1]].scale, 1.0) and f"{blocks[-1][:-6]}_relu" not in layers
    if scales != {False} or not residual_ok or not last_linear:
        return (
            "keras.applications' InceptionResNetV2 needs layout='keras', bn_scale=False, "
            f"residual_scale={DEFAULT_RESIDUAL_SCALE} and last_block_linear=True"
        )
    return None


# keras.applications' InceptionResNetV2 names its branch convs conv2d_N / batch_normalization_N
# (N depends on what the process built before) and its block convs like ours; its weighted
# layers come in our order: matched by order.
KERAS = Reference(bn_epsilon=1e-3, head=("predictions",), check=_keras_check, by_order=True)

# ---------------------------------------------------------------------------
# Variants

V4_OPTIONS = (
    '``aux_logits=False``, ``kernel_order="paper"|"tf-slim"``, ``bn_scale=True``, ``bn_epsilon=1e-3``, ``dropout=0.2``'
)
IR_OPTIONS = (
    '``layout``, ``stem_type="v1"|"v4"|"keras"``, ``blocks=(A, B, C)``, ``residual_scale``, '
    "``last_block_linear``, ``final_conv``, ``aux_logits=False``, ``kernel_order``, ``bn_scale=False``, "
    "``bn_epsilon=1e-3``, ``dropout=0.2``"
)

FAMILIES = (
    Family(
        name="Inception-v4",
        core=inception_v4,
        paper=PAPER,
        default_size=299,
        min_size=75,
        recipe="inception_v4",
        options_doc=V4_OPTIONS,
        preprocessing=V4_PREPROCESSING,
        variants=(
            Variant(
                "InceptionV4", "inception_v4", 42_679_816, "timm inception_v4",
                summary="Figure 9: the Figure 3 stem, 4/7/3 Inception-A/B/C blocks and Reduction-A/B.",
                macs=12_253_974_624,
            ),
        ),
    ),
    Family(
        name="Inception-ResNet",
        core=inception_resnet,
        paper=PAPER,
        default_size=299,
        min_size=75,
        recipe="inception_v4",
        options_doc=IR_OPTIONS,
        references={"keras": KERAS},
        preprocessing=PREPROCESSING,
        variants=(
            # No reference implementation: the paper's count, by hand from Figures 10-15 and
            # Table 1 (conv-BN: k*k*cin*cout + cout BN offsets; the linear 1x1 "up" convs have
            # a bias; BN without scale as in TF-slim):
            #   stem (Fig 14): 896 + 9,248 + 18,496 + 5,200 + 138,432 + 442,624      =    614,896
            #   5 x A (Fig 10): 3*8,224 + 3*9,248 + 24,832 (96*256+256) = 77,248      =    386,240
            #   Reduction-A (192,192,256,384): 885,120 + 49,344 + 331,968 + 442,624   =  1,709,056
            #   10 x B (Fig 11): 4*114,816 + 230,272 (256*896+896) = 689,536          =  6,895,360
            #   Reduction-B (Fig 12): 3*229,632 + 885,120 + 3*590,080                 =  3,344,256
            #   5 x C (Fig 13): 2*344,256 + 2*110,784 + 689,920 (384*1792+1792) = 1.6M =  8,000,000
            #   dense 1792 -> 1000: 1,793,000                                          = 22,742,808
            # count_params() adds each BN's moving mean and variance: 2 x 13,520 BN channels
            # (stem 656, A 5*192, RA 1,024, B 10*512, RB 1,920, C 5*768) -> 22,769,848.
            Variant(
                "InceptionResNetV1", "inception_resnet_v1", 22_742_808,
                "paper Figures 10-15 and Table 1, counted by hand (module comment)",
                {"version": "v1", "layout": "paper"},
                total_params=22_769_848,
                summary="Figure 15 with the Figure 14 stem and the Figure 10-13 blocks (5/10/5).", macs=6_206_361_696,
            ),
            Variant(
                "InceptionResNetV2", "inception_resnet_v2", 55_813_192, "keras.applications InceptionResNetV2",
                {"version": "v2", "layout": "keras"},
                total_params=55_873_736,
                summary=(
                    "Default layout='keras': keras.applications' network (TF-slim stem with mixed_5b, "
                    "10/20/10 blocks, conv_7b); layout='paper': Figure 15 with the Figure 3 stem (5/10/5)."
                ), macs=13_155_794_016,
            ),
        ),
    ),
)
