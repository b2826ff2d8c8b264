"""GoogLeNet / Inception-v1 (Szegedy et al. 2014, "Going Deeper with Convolutions",
Section 5, Table 1 and Figure 3), and the batch-normalised layout torchvision ships
as ``torchvision.models.googlenet``.

Layer names follow torchvision's module names with ``.`` replaced by ``_``
(``inception4a.branch2.1.conv`` -> ``inception4a_branch2_1_conv``), so its weights
map by name; the paper variant uses the same names for the same layers.
"""

from __future__ import annotations

import keras

from keras_archs.blocks import conv, conv_bn_act, pool
from keras_archs.builder import build_classifier, dense_top
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.layers import LocalResponseNormalization
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import torchvision
from keras_archs.weight_import.reference import Reference, rules

PAPER = "Szegedy et al. 2014, Going Deeper with Convolutions"

# torchvision's weights expect its transform_input, which maps torch-mode input to "tf" mode.
PREPROCESSING = {"torchvision": "tf"}
preprocess_input = family_preprocess_input("GoogLeNet", PREPROCESSING)

# Table 1, in order. A module row is (name, #1x1, #3x3 reduce, #3x3, #5x5 reduce,
# #5x5, pool proj); a string is a stride-2 max-pooling layer between stages.
INCEPTION_TABLE: tuple = (
    ("inception3a", 64, 96, 128, 16, 32, 32),
    ("inception3b", 128, 128, 192, 32, 96, 64),
    "maxpool3",
    ("inception4a", 192, 96, 208, 16, 48, 64),
    ("inception4b", 160, 112, 224, 24, 64, 64),
    ("inception4c", 128, 128, 256, 24, 64, 64),
    ("inception4d", 112, 144, 288, 32, 64, 64),
    ("inception4e", 256, 160, 320, 32, 128, 128),
    "maxpool4",
    ("inception5a", 256, 160, 320, 32, 128, 128),
    ("inception5b", 384, 192, 384, 48, 128, 128),
)
# Section 5: the auxiliary classifiers sit on top of the outputs of (4a) and (4d).
AUX_HEADS = {"inception4a": "aux1", "inception4d": "aux2"}

# What differs between the paper's network and torchvision's port of it.
LAYOUTS = {
    # Figure 3: biased convolutions + ReLU, LRN after pool1 and after conv3, a 5x5
    # convolution in the third branch, 3x3/2 max-pooling before (5a), dropout 0.4,
    # auxiliary heads that average-pool 5x5 with stride 3.
    "paper": dict(batch_norm=False, lrn=True, branch3_kernel=5, pool4_size=3, aux_pool="5x5/3", dropout=0.4),
    # torchvision: conv (no bias) + BN (eps 1e-3) + ReLU, no LRN, a 3x3 convolution
    # in the third branch (pytorch/vision#906, kept so its weights import),
    # 2x2/2 max-pooling before (5a), dropout 0.2, auxiliary heads that
    # adaptive-average-pool to 4x4.
    "torchvision": dict(batch_norm=True, lrn=False, branch3_kernel=3, pool4_size=2, aux_pool="adaptive", dropout=0.2),
}


def basic_conv(x, filters: int, kernel_size: int, *, name: str, strides: int = 1, batch_norm: bool):
    """A convolution and its ReLU: ``{name}_conv`` (+ ``{name}_bn``) + ``{name}_relu``."""
    if batch_norm:
        return conv_bn_act(x, filters, kernel_size, strides=strides, bn_epsilon=1e-3, name=name)
    x = conv(x, filters, kernel_size, strides=strides, use_bias=True, name=f"{name}_conv")
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def inception_module(x, row: tuple, *, branch3_kernel: int, batch_norm: bool):
    """Figure 2(b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max-pool -> 1x1, concatenated."""
    name, n1x1, n3x3red, n3x3, n5x5red, n5x5, pool_proj = row
    layer = dict(batch_norm=batch_norm)
    b1 = basic_conv(x, n1x1, 1, name=f"{name}_branch1", **layer)
    b2 = basic_conv(x, n3x3red, 1, name=f"{name}_branch2_0", **layer)
    b2 = basic_conv(b2, n3x3, 3, name=f"{name}_branch2_1", **layer)
    b3 = basic_conv(x, n5x5red, 1, name=f"{name}_branch3_0", **layer)
    b3 = basic_conv(b3, n5x5, branch3_kernel, name=f"{name}_branch3_1", **layer)
    b4 = pool(x, 3, 1, padding=1, name=f"{name}_branch4_0")
    b4 = basic_conv(b4, pool_proj, 1, name=f"{name}_branch4_1", **layer)
    return keras.layers.Concatenate(axis=-1, name=name)([b1, b2, b3, b4])


def auxiliary_head(
    x, classes: int, classifier_activation, *, name: str, aux_pool: str, batch_norm: bool, dropout: float
):
    """Section 5: average-pool to 4x4, 1x1 conv 128 + ReLU, fc 1024 + ReLU, dropout 0.7, linear."""
    if aux_pool == "adaptive":
        x = keras.layers.AdaptiveAveragePooling2D((4, 4), name=f"{name}_avgpool")(x)
    else:
        if any(d is not None and d < 5 for d in x.shape[1:3]):
            raise ValueError(
                f"aux_logits=True: the auxiliary classifier's 5x5 average pooling needs a grid of at "
                f"least 5x5 at {name}'s input, got {tuple(x.shape[1:3])}; use inputs of at least 79x79."
            )
        x = keras.layers.AveragePooling2D(5, strides=3, padding="valid", name=f"{name}_avgpool")(x)
    x = basic_conv(x, 128, 1, name=f"{name}_conv", batch_norm=batch_norm)
    # torchvision flattens NCHW: its fc1 rows are ordered (channel, row, col), ours (row, col, channel).
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc1")(x)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name=f"{name}_fc2")(x)


def googlenet(*, layout: str = "paper", aux_logits: bool = False, aux_dropout: float = 0.7, **common) -> keras.Model:
    """Core GoogLeNet builder (Table 1).

    Args:
        layout: ``"paper"`` (Figure 3: biased convolutions, LRN, 5x5 branch) or
            ``"torchvision"`` (batch norm, no LRN, torchvision's 3x3 "5x5" branch,
            2x2 pooling before (5a)); see :data:`LAYOUTS`.
        aux_logits: with ``include_top``, add the two auxiliary classifiers of
            Section 5 as extra outputs: the model then returns
            ``{"main", "aux1", "aux2"}`` (the paper weights the auxiliary losses by
            0.3 during training and uses ``"main"`` alone at inference).
        aux_dropout: dropout rate of the auxiliary classifiers (0.7 in the paper).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"GoogLeNet layout must be one of {sorted(LAYOUTS)}, got {layout!r}.")
    cfg = LAYOUTS[layout]
    bn = cfg["batch_norm"]
    with_aux = aux_logits and common.get("include_top", True)
    classes, activation = common.get("classes", 1000), common.get("classifier_activation", "softmax")

    def features(x):
        x = basic_conv(x, 64, 7, strides=2, name="conv1", batch_norm=bn)
        x = pool(x, 3, 2, ceil_mode=True, name="maxpool1")
        if cfg["lrn"]:
            # Caffe's reference model (bvlc_googlenet): size 5, alpha 1e-4 (divided by
            # the size in Caffe's formula), beta 0.75, k 1; the paper gives no values.
            x = LocalResponseNormalization(depth=5, k=1.0, alpha=1e-4 / 5, beta=0.75, name="norm1")(x)
        x = basic_conv(x, 64, 1, name="conv2", batch_norm=bn)
        x = basic_conv(x, 192, 3, name="conv3", batch_norm=bn)
        if cfg["lrn"]:
            x = LocalResponseNormalization(depth=5, k=1.0, alpha=1e-4 / 5, beta=0.75, name="norm2")(x)
        x = pool(x, 3, 2, ceil_mode=True, name="maxpool2")
        aux = {}
        for row in INCEPTION_TABLE:
            if row == "maxpool4":
                x = pool(x, cfg["pool4_size"], 2, ceil_mode=True, name=row)
            elif isinstance(row, str):
                x = pool(x, 3, 2, ceil_mode=True, name=row)
            else:
                x = inception_module(x, row, branch3_kernel=cfg["branch3_kernel"], batch_norm=bn)
                if with_aux and row[0] in AUX_HEADS:
                    head = AUX_HEADS[row[0]]
                    aux[head] = auxiliary_head(
                        x, classes, activation, name=head, aux_pool=cfg["aux_pool"], batch_norm=bn, dropout=aux_dropout
                    )
        return (x, aux) if aux else x

    def top(x, classes, classifier_activation):
        # The paper's 7x7/1 average pooling covers the whole 7x7 grid at 224x224: global
        # average pooling is the same there and keeps other input sizes usable.
        return dense_top(x, classes, classifier_activation, dropout=cfg["dropout"])

    return build_classifier(features=features, top=top, **common)


# --------------------------------------------------------------------------- weights


def _torchvision_check(model: keras.Model) -> str | None:
    if not any(layer.name == "conv1_bn" for layer in model.layers):
        return "torchvision's GoogLeNet has batch normalisation: use googlenet_bn (layout='torchvision')"
    return None


# Our names are torchvision's module paths with "." -> "_".
TORCHVISION = Reference(
    rules(
        (r"(conv\d)_(conv|bn)", "{1}.{2}"),
        (r"(inception\d[a-e])_(branch1)_(conv|bn)", "{1}.{2}.{3}"),
        (r"(inception\d[a-e])_(branch\d)_(\d)_(conv|bn)", "{1}.{2}.{3}.{4}"),
        (r"(aux\d)_conv_(conv|bn)", "{1}.conv.{2}"),
        (r"(aux\d)_(fc\d)", "{1}.{2}"),
        ("predictions", "fc"),
    ),
    bn_epsilon=1e-3,
    head=("fc",),
    check=_torchvision_check,
    flatten="chw",
    aux=("aux1", "aux2"),
)

# --------------------------------------------------------------------------- variants

# Exact count of the paper's network without the auxiliary heads, from Table 1's filter
# columns (every convolution has a bias; Table 1's "params" column is weights / 1024,
# rounded, and not always consistent with its own filter counts):
#   stem: conv1 7*7*3*64+64 = 9,472; conv2 (3x3 reduce) 64*64+64 = 4,160;
#         conv3 3*3*64*192+192 = 110,784                                    -> 124,416
#   module (C in, a, r3, b, r5, c, p) = C*(a+r3+r5+p) + 9*r3*b + 25*r5*c + (a+r3+b+r5+c+p):
#     3a 163,696  3b 388,736  4a 376,176  4b 449,160  4c 510,104
#     4d 605,376  4e 868,352  5a 1,043,456  5b 1,444,080                     -> 5,849,136
#   classifier 1024*1000+1000                                               -> 1,025,000
#   total 124,416 + 5,849,136 + 1,025,000 = 6,998,552
# (e.g. 3a: 192*(64+96+16+32) + 9*96*128 + 25*16*32 + 368 = 39,936 + 110,592 + 12,800 + 368.)
# torchvision.models.googlenet builds its auxiliary heads by default (13,004,888
# parameters); 6,624,904 is its count with aux_logits=False, checked live in
# tests/test_googlenet.py.
FAMILIES = (
    Family(
        name="GoogLeNet",
        core=googlenet,
        paper=PAPER,
        recipe="googlenet",
        options_doc=(
            '``layout="paper"|"torchvision"``, ``aux_logits=False`` (outputs main/aux1/aux2), ``aux_dropout=0.7``'
        ),
        references={"torchvision": TORCHVISION},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "GoogLeNet", "googlenet", 6_998_552,
                "paper Table 1 filter counts, exact count computed by hand (googlenet.py)", {"layout": "paper"},
                summary=(
                    "The paper's network (Figure 3): LRN, 5x5 branches, dropout 0.4; optional auxiliary classifiers."
                ),
                min_size=31, macs=1_582_671_872,
            ),
            Variant(
                "GoogLeNetBN", "googlenet_bn", 6_624_904,
                "torchvision googlenet without aux heads, live-checked in test_googlenet.py",
                {"layout": "torchvision"},
                summary=(
                    "torchvision's batch-norm GoogLeNet (its 3x3 convolution where the paper has 5x5 is kept, "
                    "so its weights import); its transform_input is preprocessing, not a layer."
                ),
                min_size=15,
                weights=(torchvision("googlenet-1378be20.pth", layout="torchvision"),), macs=1_498_376_192,
            ),
        ),
    ),
)
