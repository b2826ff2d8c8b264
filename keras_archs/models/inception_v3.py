"""Inception-v3 (Szegedy, Vanhoucke, Ioffe, Shlens & Wojna 2015, "Rethinking the
Inception Architecture for Computer Vision", Section 6, Table 1, Figures 5-8 and 10).

Two reference implementations exist and differ in details that change parameter
counts or outputs: keras.applications.InceptionV3 (BatchNormalization without a
scale, "same" average pooling that excludes the padding, no auxiliary head) and
torchvision's ``inception_v3`` (BN with a scale, average pooling that counts the
zero padding, an auxiliary head). The default is keras.applications' layout;
``bn_scale=True, count_include_pad=True`` gives torchvision's. Layer names are
torchvision's module names with ``.`` replaced by ``_``
(``Mixed_6b.branch7x7dbl_2.conv`` -> ``Mixed_6b_branch7x7dbl_2_conv``);
keras.applications' unnamed ``conv2d_N`` layers come in the same order.
"""

from __future__ import annotations

import keras

from keras_archs.blocks import conv_bn_act, pool
from keras_archs.builder import build_classifier, dense_top
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import KERAS_URL, keras_applications, torchvision
from keras_archs.weight_import.reference import Check, Reference, rules

PAPER = "Szegedy et al. 2015, Rethinking the Inception Architecture for Computer Vision"

# keras.applications' first: the default build fits its files. torchvision's weights
# expect its transform_input, which maps torch-mode input to "tf" mode.
PREPROCESSING = {"keras": "tf", "torchvision": "tf"}
preprocess_input = family_preprocess_input("Inception-v3", PREPROCESSING)
# Every convolution is torchvision's BasicConv2d: conv (no bias), BN (eps 1e-3), ReLU.
BN_EPSILON = 1e-3

# Table 1's stem (299x299x3 -> 35x35x192): (name, filters, kernel, stride, padding);
# "maxpool1"/"maxpool2" are 3x3/2 max-pooling layers.
STEM: tuple = (
    ("Conv2d_1a_3x3", 32, 3, 2, "valid"),
    ("Conv2d_2a_3x3", 32, 3, 1, "valid"),
    ("Conv2d_2b_3x3", 64, 3, 1, "auto"),
    "maxpool1",
    ("Conv2d_3b_1x1", 80, 1, 1, "valid"),
    ("Conv2d_4a_3x3", 192, 3, 1, "valid"),
    "maxpool2",
)
# The modules in order: (name, kind, width). Kind A: Figure 5 at 35x35 (width = pool
# projection); B: the 35->17 grid reduction (Figure 10); C: Figure 6 at 17x17
# (width = the 1x7/7x1 channels); D: the 17->8 grid reduction; E: Figure 7 at 8x8.
MODULES: tuple = (
    ("Mixed_5b", "A", 32),
    ("Mixed_5c", "A", 64),
    ("Mixed_5d", "A", 64),
    ("Mixed_6a", "B", None),
    ("Mixed_6b", "C", 128),
    ("Mixed_6c", "C", 160),
    ("Mixed_6d", "C", 160),
    ("Mixed_6e", "C", 192),
    ("Mixed_7a", "D", None),
    ("Mixed_7b", "E", None),
    ("Mixed_7c", "E", None),
)
AUX_AFTER = "Mixed_6e"  # the auxiliary classifier reads the last 17x17 grid (Section 4)
AUX_MIN_GRID = 17  # its 5x5/3 pooling then 5x5 valid convolution need 17x17, i.e. 299x299 inputs


def avg_pool_3x3(x, *, name: str, count_include_pad: bool):
    """3x3/1 average pooling of the pool branches, padded to keep the grid size."""
    if count_include_pad:  # torchvision: the zero padding counts in the mean
        return pool(x, 3, 1, padding=1, kind="avg", name=name)
    return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)


def inception_a(x, pool_features: int, *, name: str, layer: dict, count_include_pad: bool):
    """Figure 5: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1 (35x35)."""
    b1 = conv_bn_act(x, 64, 1, name=f"{name}_branch1x1", **layer)
    b5 = conv_bn_act(x, 48, 1, name=f"{name}_branch5x5_1", **layer)
    b5 = conv_bn_act(b5, 64, 5, name=f"{name}_branch5x5_2", **layer)
    b3 = conv_bn_act(x, 64, 1, name=f"{name}_branch3x3dbl_1", **layer)
    b3 = conv_bn_act(b3, 96, 3, name=f"{name}_branch3x3dbl_2", **layer)
    b3 = conv_bn_act(b3, 96, 3, name=f"{name}_branch3x3dbl_3", **layer)
    bp = avg_pool_3x3(x, name=f"{name}_avgpool", count_include_pad=count_include_pad)
    bp = conv_bn_act(bp, pool_features, 1, name=f"{name}_branch_pool", **layer)
    return keras.layers.Concatenate(name=name)([b1, b5, b3, bp])


def inception_b(x, *, name: str, layer: dict):
    """Figure 10: grid reduction 35 -> 17 by stride-2 convolutions beside a stride-2 max-pool."""
    b3 = conv_bn_act(x, 384, 3, strides=2, padding="valid", name=f"{name}_branch3x3", **layer)
    bd = conv_bn_act(x, 64, 1, name=f"{name}_branch3x3dbl_1", **layer)
    bd = conv_bn_act(bd, 96, 3, name=f"{name}_branch3x3dbl_2", **layer)
    bd = conv_bn_act(bd, 96, 3, strides=2, padding="valid", name=f"{name}_branch3x3dbl_3", **layer)
    bp = pool(x, 3, 2, name=f"{name}_maxpool")
    return keras.layers.Concatenate(name=name)([b3, bd, bp])


def inception_c(x, c7: int, *, name: str, layer: dict, count_include_pad: bool):
    """Figure 6 with n=7: 7x7 convolutions factorised into 1x7 and 7x1 (17x17)."""
    b1 = conv_bn_act(x, 192, 1, name=f"{name}_branch1x1", **layer)
    b7 = conv_bn_act(x, c7, 1, name=f"{name}_branch7x7_1", **layer)
    b7 = conv_bn_act(b7, c7, (1, 7), name=f"{name}_branch7x7_2", **layer)
    b7 = conv_bn_act(b7, 192, (7, 1), name=f"{name}_branch7x7_3", **layer)
    bd = conv_bn_act(x, c7, 1, name=f"{name}_branch7x7dbl_1", **layer)
    bd = conv_bn_act(bd, c7, (7, 1), name=f"{name}_branch7x7dbl_2", **layer)
    bd = conv_bn_act(bd, c7, (1, 7), name=f"{name}_branch7x7dbl_3", **layer)
    bd = conv_bn_act(bd, c7, (7, 1), name=f"{name}_branch7x7dbl_4", **layer)
    bd = conv_bn_act(bd, 192, (1, 7), name=f"{name}_branch7x7dbl_5", **layer)
    bp = avg_pool_3x3(x, name=f"{name}_avgpool", count_include_pad=count_include_pad)
    bp = conv_bn_act(bp, 192, 1, name=f"{name}_branch_pool", **layer)
    return keras.layers.Concatenate(name=name)([b1, b7, bd, bp])


def inception_d(x, *, name: str, layer: dict):
    """Grid reduction 17 -> 8 (Figure 10's scheme with a factorised 7x7 branch)."""
    b3 = conv_bn_act(x, 192, 1, name=f"{name}_branch3x3_1", **layer)
    b3 = conv_bn_act(b3, 320, 3, strides=2, padding="valid", name=f"{name}_branch3x3_2", **layer)
    b7 = conv_bn_act(x, 192, 1, name=f"{name}_branch7x7x3_1", **layer)
    b7 = conv_bn_act(b7, 192, (1, 7), name=f"{name}_branch7x7x3_2", **layer)
    b7 = conv_bn_act(b7, 192, (7, 1), name=f"{name}_branch7x7x3_3", **layer)
    b7 = conv_bn_act(b7, 192, 3, strides=2, padding="valid", name=f"{name}_branch7x7x3_4", **layer)
    bp = pool(x, 3, 2, name=f"{name}_maxpool")
    return keras.layers.Concatenate(name=name)([b3, b7, bp])


def inception_e(x, *, name: str, layer: dict, count_include_pad: bool):
    """Figure 7: the 8x8 module whose 3x3 outputs split into parallel 1x3 and 3x1
    convolutions, widening the representation on the coarsest grid."""
    b1 = conv_bn_act(x, 320, 1, name=f"{name}_branch1x1", **layer)
    b3 = conv_bn_act(x, 384, 1, name=f"{name}_branch3x3_1", **layer)
    b3 = keras.layers.Concatenate(name=f"{name}_branch3x3")(
        [
            conv_bn_act(b3, 384, (1, 3), name=f"{name}_branch3x3_2a", **layer),
            conv_bn_act(b3, 384, (3, 1), name=f"{name}_branch3x3_2b", **layer),
        ]
    )
    bd = conv_bn_act(x, 448, 1, name=f"{name}_branch3x3dbl_1", **layer)
    bd = conv_bn_act(bd, 384, 3, name=f"{name}_branch3x3dbl_2", **layer)
    bd = keras.layers.Concatenate(name=f"{name}_branch3x3dbl")(
        [
            conv_bn_act(bd, 384, (1, 3), name=f"{name}_branch3x3dbl_3a", **layer),
            conv_bn_act(bd, 384, (3, 1), name=f"{name}_branch3x3dbl_3b", **layer),
        ]
    )
    bp = avg_pool_3x3(x, name=f"{name}_avgpool", count_include_pad=count_include_pad)
    bp = conv_bn_act(bp, 192, 1, name=f"{name}_branch_pool", **layer)
    return keras.layers.Concatenate(name=name)([b1, b3, bd, bp])


# Layer names of the auxiliary classifier: pooling, 1x1 conv, 5x5 conv, global pooling, dense.
AUX_NAMES = ("AuxLogits_avgpool", "AuxLogits_conv0", "AuxLogits_conv1", "AuxLogits_gap", "AuxLogits_fc")


def auxiliary_head(x, classes: int, classifier_activation, *, names: tuple[str, ...] = AUX_NAMES, **conv_bn):
    """Figure 8 as torchvision builds it, also TF-slim's head of Inception-v4 and
    Inception-ResNet-v2: 5x5/3 average pooling (17 -> 5), 1x1 conv 128, 5x5 conv 768
    (5 -> 1), global average pooling, linear layer. ``conv_bn``: BN options of the convs."""
    pool_name, conv0, conv1, gap, fc = names
    x = keras.layers.AveragePooling2D(5, strides=3, padding="valid", name=pool_name)(x)
    x = conv_bn_act(x, 128, 1, name=conv0, **conv_bn)
    x = conv_bn_act(x, 768, 5, padding="valid", name=conv1, **conv_bn)
    x = keras.layers.GlobalAveragePooling2D(name=gap)(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name=fc)(x)


def inception_v3(
    *,
    bn_scale: bool = False,
    count_include_pad: bool = False,
    aux_logits: bool = False,
    dropout: float = 0.0,
    **common,
) -> keras.Model:
    """Core Inception-v3 builder (Table 1 of the paper).

    Args:
        bn_scale: give every BatchNormalization a learned scale (gamma) as
            torchvision does; keras.applications (the default) has none, since a
            ReLU follows and the next convolution can absorb it.
        count_include_pad: count the zero padding in the pool branches' 3x3 average
            pooling (torchvision) instead of excluding it (TensorFlow / keras.applications).
        aux_logits: with ``include_top``, add the auxiliary classifier on ``Mixed_6e``:
            the model then returns ``{"main", "aux"}`` (use ``"main"`` at inference).
            Needs inputs of at least 299x299.
        dropout: dropout before the classifier (keras.applications: none; torchvision
            0.5; the TF-slim reference 0.2).
    """
    layer = dict(bn_scale=bn_scale, bn_epsilon=BN_EPSILON)
    pools = dict(count_include_pad=count_include_pad)
    with_aux = aux_logits and common.get("include_top", True)
    classes, activation = common.get("classes", 1000), common.get("classifier_activation", "softmax")

    def features(x):
        for row in STEM:
            if isinstance(row, str):
                x = pool(x, 3, 2, name=row)
            else:
                name, filters, kernel, strides, padding = row
                x = conv_bn_act(x, filters, kernel, strides=strides, padding=padding, name=name, **layer)
        aux = {}
        for name, kind, width in MODULES:
            if kind == "A":
                x = inception_a(x, width, name=name, layer=layer, **pools)
            elif kind == "B":
                x = inception_b(x, name=name, layer=layer)
            elif kind == "C":
                x = inception_c(x, width, name=name, layer=layer, **pools)
            elif kind == "D":
                x = inception_d(x, name=name, layer=layer)
            else:
                x = inception_e(x, name=name, layer=layer, **pools)
            if with_aux and name == AUX_AFTER:
                if any(d is not None and d < AUX_MIN_GRID for d in x.shape[1:3]):
                    raise ValueError(
                        f"aux_logits=True needs inputs of at least 299x299: the auxiliary classifier reads a "
                        f"{AUX_MIN_GRID}x{AUX_MIN_GRID} grid, got {tuple(x.shape[1:3])}."
                    )
                aux["aux"] = auxiliary_head(x, classes, activation, **layer)
        return (x, aux) if aux else x

    def top(x, classes, classifier_activation):
        return dense_top(x, classes, classifier_activation, dropout=dropout)

    return build_classifier(features=features, top=top, **common)


# --------------------------------------------------------------------------- weights


def _check(bn_scale: bool, count_include_pad: bool, source: str) -> Check:
    def check(model: keras.Model) -> str | None:
        scales = {layer.scale for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
        include_pad = any(layer.name.endswith("_avgpool_pad") for layer in model.layers)
        if scales != {bn_scale} or include_pad != count_include_pad:
            return f"{source}'s Inception-v3 needs bn_scale={bn_scale}, count_include_pad={count_include_pad}"
        return None

    return check


TORCHVISION = Reference(
    rules(
        (r"(Conv2d_\d[a-z]_\dx\d)_(conv|bn)", "{1}.{2}"),
        (r"(Mixed_\d[a-e])_(branch\w+?)_(conv|bn)", "{1}.{2}.{3}"),
        (r"AuxLogits_(conv\d)_(conv|bn)", "AuxLogits.{1}.{2}"),
        ("AuxLogits_fc", "AuxLogits.fc"),
        ("predictions", "fc"),
    ),
    bn_epsilon=BN_EPSILON,
    head=("fc",),
    check=_check(True, True, "torchvision"),
    aux=("AuxLogits",),
)
# keras.applications' InceptionV3 names its layers conv2d_N / batch_normalization_N in
# creation order, which is ours: matched by order.
KERAS = Reference(
    bn_epsilon=BN_EPSILON, head=("predictions",), check=_check(False, False, "keras.applications"), by_order=True
)

# --------------------------------------------------------------------------- variants

# keras.applications.InceptionV3(weights=None): 23,851,784 weights in count_params()
# (BN beta + moving mean/variance, no gamma); 23,817,352 of them trainable (the BN
# moving statistics, 2 * 17,216, are not). Both are checked live in
# tests/test_inception_v3.py, as are torchvision's counts for bn_scale=True
# (23,834,568 without and 27,161,264 with the auxiliary head).
FAMILIES = (
    Family(
        name="Inception-v3",
        core=inception_v3,
        paper=PAPER,
        default_size=299,
        min_size=75,
        recipe="inception_v3",
        options_doc=(
            "``bn_scale=False``, ``count_include_pad=False``, ``aux_logits=False`` (outputs main/aux), "
            "``dropout=0.0``"
        ),
        references={"keras": KERAS, "torchvision": TORCHVISION},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "InceptionV3", "inception_v3", 23_817_352, "keras.applications InceptionV3",
                total_params=23_851_784,
                summary=(
                    "keras.applications' layout by default (BN without scale); bn_scale=True and "
                    "count_include_pad=True give torchvision's inception_v3."
                ),
                weights=(
                    keras_applications(
                        f"{KERAS_URL}inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels",
                        "9a0d58056eeedaa3f26cb7ebd46da564",
                        "bcbd6486424b2319ff4ef7d526e38f63",
                        bn_scale=False,
                        count_include_pad=False,
                    ),
                    torchvision("inception_v3_google-0cc3c7bd.pth", bn_scale=True, count_include_pad=True),
                ), macs=5_713_216_096,
            ),
        ),
    ),
)
