"""EfficientNet (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks"): the baseline B0 of Table 1 and B1-B7, obtained
from it by compound scaling of width, depth and resolution (Section 3.3).

Layer names follow keras.applications (``stem_conv``, ``block1a_dwconv``,
``block2a_expand_conv``, ``top_conv``, ...), so its ImageNet weights map 1:1 by
name. The width/depth coefficients, resolutions and dropout rates per variant
are those of the authors' implementation (the paper gives only alpha, beta,
gamma of Equation 3 and the resolutions).
"""

from __future__ import annotations

import math
import re

import keras
import numpy as np

from keras_archs.blocks import batch_norm, conv, depthwise_conv
from keras_archs.builder import build_classifier
from keras_archs.imagenet import IMAGENET_MEAN, IMAGENET_STD, family_preprocess_input
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import keras_applications, torchvision
from keras_archs.weight_import.reference import Check, KerasLayers, Reference

PAPER = "Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"

# keras.applications' first: the default build (include_preprocessing=True) fits its files.
PREPROCESSING = {"keras": "identity", "torchvision": "torch"}
preprocess_input = family_preprocess_input("EfficientNet", PREPROCESSING)

# Table 1, stages 2-8 (stage 1 is the 3x3 stem with STEM_FILTERS maps, stage 9 the
# 1x1 conv with TOP_FILTERS maps, pooling and FC). One row per stage:
# (expand_ratio, kernel, strides, filters_out, repeats). A stage's stride is taken
# by its first block; the table lists the resolutions *entering* each stage.
BLOCKS = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_FILTERS = 32
TOP_FILTERS = 1280
SE_RATIO = 0.25  # of the block's *input* channels (Hu et al. 2018's squeeze, as in the authors' code)

# "keras": TensorFlow's "same" rule of the authors' code and keras.applications (for a
# strided layer on an even-sized map, one row/column less at the top/left); "torch":
# k // 2 on every side, as torchvision. Stride 1 pads symmetrically either way.
PADDINGS = {"keras": "same", "torch": "auto"}
# The authors' initialisers (keras.applications uses the same).
CONV_INIT = keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="truncated_normal")
DENSE_INIT = keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_out", distribution="uniform")


def round_filters(filters: int, width_coefficient: float, divisor: int = 8) -> int:
    """Scale a channel count by the width coefficient, rounded to a multiple of
    ``divisor`` but never more than 10% below the exact value."""
    scaled = filters * width_coefficient
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth_coefficient: float) -> int:
    """Scale a stage's block count by the depth coefficient, rounding up."""
    return math.ceil(depth_coefficient * repeats)


def block_configs(width_coefficient: float, depth_coefficient: float, divisor: int = 8) -> list[dict]:
    """Every MBConv block of the scaled network, in order, with its keras name
    (``block{stage}{letter}``) and the arguments of :func:`mbconv`."""
    configs = []
    filters_in = round_filters(STEM_FILTERS, width_coefficient, divisor)
    for stage, (expand, kernel, strides, filters, repeats) in enumerate(BLOCKS, start=1):
        filters_out = round_filters(filters, width_coefficient, divisor)
        for j in range(round_repeats(repeats, depth_coefficient)):
            configs.append(
                dict(
                    name=f"block{stage}{chr(ord('a') + j)}",
                    filters_in=filters_in,
                    filters_out=filters_out,
                    expand_ratio=expand,
                    kernel_size=kernel,
                    strides=strides if j == 0 else 1,
                )
            )
            filters_in = filters_out
    return configs


def mbconv(
    x,
    *,
    name: str,
    filters_in: int,
    filters_out: int,
    expand_ratio: int,
    kernel_size: int,
    strides: int,
    drop_rate: float,
    activation: str,
    padding: str,
    bn_epsilon: float,
    bn_momentum: float,
    se_ratio: float = SE_RATIO,
):
    """Mobile inverted bottleneck (Sandler et al. 2018) with squeeze-and-excitation:
    1x1 expansion, k x k depthwise conv, SE, linear 1x1 projection, and an identity
    skip (with drop-connect) when the shape is kept."""
    bn = dict(epsilon=bn_epsilon, momentum=bn_momentum)
    filters = filters_in * expand_ratio
    y = x
    if expand_ratio != 1:
        y = conv(y, filters, 1, kernel_initializer=CONV_INIT, name=f"{name}_expand_conv")
        y = batch_norm(y, name=f"{name}_expand_bn", **bn)
        y = keras.layers.Activation(activation, name=f"{name}_expand_activation")(y)
    y = depthwise_conv(
        y,
        kernel_size,
        strides=strides,
        padding=PADDINGS[padding],
        depthwise_initializer=CONV_INIT,
        name=f"{name}_dwconv",
    )
    y = batch_norm(y, name=f"{name}_bn", **bn)
    y = keras.layers.Activation(activation, name=f"{name}_activation")(y)

    squeezed = max(1, int(filters_in * se_ratio))
    se = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(y)
    se_conv = dict(use_bias=True, kernel_initializer=CONV_INIT)
    se = conv(se, squeezed, 1, activation=activation, name=f"{name}_se_reduce", **se_conv)
    se = conv(se, filters, 1, activation="sigmoid", name=f"{name}_se_expand", **se_conv)
    y = keras.layers.Multiply(name=f"{name}_se_excite")([y, se])

    y = conv(y, filters_out, 1, kernel_initializer=CONV_INIT, name=f"{name}_project_conv")
    y = batch_norm(y, name=f"{name}_project_bn", **bn)
    if strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            # Drop-connect (Huang et al. 2016's stochastic depth): the whole residual
            # branch of a sample is dropped, survivors are scaled by 1 / (1 - rate).
            y = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(y)
        y = keras.layers.Add(name=f"{name}_add")([y, x])
    return y


def _preprocessing(x, channels: int):
    """keras.applications' in-model preprocessing: pixels in [0, 255] -> [0, 1] ->
    ImageNet-standardised (identity standardisation unless there are 3 channels)."""
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(x)
    norm = keras.layers.Normalization(axis=-1, name="normalization")
    x = norm(x)
    if channels == 3:
        norm.adapt_mean.assign(IMAGENET_MEAN)
        norm.adapt_variance.assign([s * s for s in IMAGENET_STD])
        norm.finalize_state()
    return x


def efficientnet(
    *,
    width_coefficient: float,
    depth_coefficient: float,
    dropout: float,
    drop_connect_rate: float = 0.2,
    depth_divisor: int = 8,
    activation: str = "swish",
    padding: str = "keras",
    bn_epsilon: float = 1e-3,
    bn_momentum: float = 0.99,
    include_preprocessing: bool = True,
    **common,
) -> keras.Model:
    """Core EfficientNet builder: Table 1 scaled by Equation 3's coefficients.

    Args:
        width_coefficient: multiplies every channel count (rounded by :func:`round_filters`).
        depth_coefficient: multiplies every stage's block count (rounded up).
        dropout: dropout rate before the classifier.
        drop_connect_rate: drop-connect rate of the last block; block ``i`` of ``n``
            (counted from 0 over the whole net) drops its branch with rate
            ``drop_connect_rate * i / n``.
        depth_divisor: channel counts are multiples of this.
        activation: the paper's swish (= SiLU).
        padding: ``"keras"`` (TensorFlow "same", as the authors' code and
            keras.applications) or ``"torch"`` (symmetric, as torchvision) for the
            strided convolutions; parameters are identical.
        bn_epsilon, bn_momentum: BatchNormalization settings (authors: 1e-3, 0.99;
            torchvision B0-B4: 1e-5, 0.9).
        include_preprocessing: start with keras.applications' ``Rescaling`` (1/255)
            and ``Normalization`` (ImageNet mean/std) layers, so inputs are pixels in
            [0, 255]; the normalisation's mean/variance/count are counted by
            ``count_params()`` as in keras.applications.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {tuple(PADDINGS)}, got {padding!r}.")
    configs = block_configs(width_coefficient, depth_coefficient, depth_divisor)
    bn = dict(epsilon=bn_epsilon, momentum=bn_momentum)
    channels = common.get("channels", 3)

    def features(x):
        if include_preprocessing:
            x = _preprocessing(x, x.shape[-1] or channels)
        stem_filters = round_filters(STEM_FILTERS, width_coefficient, depth_divisor)
        x = conv(
            x, stem_filters, 3, strides=2, padding=PADDINGS[padding], kernel_initializer=CONV_INIT, name="stem_conv"
        )
        x = batch_norm(x, name="stem_bn", **bn)
        x = keras.layers.Activation(activation, name="stem_activation")(x)
        for index, config in enumerate(configs):
            x = mbconv(
                x,
                drop_rate=drop_connect_rate * index / len(configs),
                activation=activation,
                padding=padding,
                bn_epsilon=bn_epsilon,
                bn_momentum=bn_momentum,
                **config,
            )
        top_filters = round_filters(TOP_FILTERS, width_coefficient, depth_divisor)
        x = conv(x, top_filters, 1, kernel_initializer=CONV_INIT, name="top_conv")
        x = batch_norm(x, name="top_bn", **bn)
        return keras.layers.Activation(activation, name="top_activation")(x)

    def top(x, classes, classifier_activation):
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        return keras.layers.Dense(
            classes, activation=classifier_activation, kernel_initializer=DENSE_INIT, name="predictions"
        )(x)

    return build_classifier(features=features, top=top, **common)


# --------------------------------------------------------------------------- weights

_BLOCK = re.compile(r"(block\d[a-z])_(expand_conv|expand_bn|dwconv|bn|se_reduce|se_expand|project_conv|project_bn)")
# our part -> (torchvision step of the block without/with expansion, module in the step)
_TORCHVISION_PARTS = {
    "expand_conv": (None, 0, "0"),
    "expand_bn": (None, 0, "1"),
    "dwconv": (0, 1, "0"),
    "bn": (0, 1, "1"),
    "se_reduce": (1, 2, "fc1"),
    "se_expand": (1, 2, "fc2"),
    "project_conv": (2, 3, "0"),
    "project_bn": (2, 3, "1"),
}


def _torchvision_names(model: keras.Model) -> dict[str, str]:
    # features = [stem, stage 1 ... stage 7, top]; block "block{s}{letter}" is features.s.(letter index),
    # whose Sequential "block" has an expansion step only when expand_ratio > 1.
    names = {layer.name for layer in model.layers if layer.weights}
    out = {
        "stem_conv": "features.0.0",
        "stem_bn": "features.0.1",
        "top_conv": "features.8.0",
        "top_bn": "features.8.1",
        "predictions": "classifier.1",
    }
    for name in names:
        match = _BLOCK.fullmatch(name)
        if match:
            block, part = match.groups()
            plain, expanded, module = _TORCHVISION_PARTS[part]
            step = expanded if f"{block}_expand_conv" in names else plain
            out[name] = f"features.{block[5]}.{ord(block[6]) - ord('a')}.block.{step}.{module}"
    return out


def _check(padding: str, preprocessing: bool, source: str, epsilons: str) -> Check:
    def check(model: keras.Model) -> str | None:
        actual_padding = "torch" if any(layer.name == "stem_conv_pad" for layer in model.layers) else "keras"
        actual_preprocessing = any(layer.name == "normalization" for layer in model.layers)
        if actual_padding != padding or actual_preprocessing != preprocessing:
            return (
                f"{source}'s EfficientNet needs padding={padding!r}, include_preprocessing={preprocessing} "
                f"and bn_epsilon={epsilons}"
            )
        return None

    return check


def _keras_variance(layers: KerasLayers) -> KerasLayers:
    """keras.applications' official EfficientNet files store the ImageNet *std* as the
    Normalization layer's variance (keras then divides by sqrt(std) once more with a
    Rescaling layer added only for weights="imagenet"; tensorflow/tensorflow#49930). Our model has no
    such layer, so such a variance is squared: (x - mean) / sqrt(std**2) = (x - mean) / std."""
    out = dict(layers)
    for name, values in layers.items():
        if re.fullmatch(r"normalization(_\d+)?", name):
            out[name] = [
                (var, value**2 if var == "variance" and value.shape == (3,) and _is_std(value) else value)
                for var, value in values
            ]
    return out


def _is_std(value: np.ndarray) -> bool:
    return bool(np.allclose(value, IMAGENET_STD, atol=1e-4))


# torchvision's B0-B4 (rwightman's weights) use BN epsilon 1e-5, B5-B7 (ported from TF) 1e-3.
TORCHVISION_EPSILON = {"efficientnet_b5": 1e-3, "efficientnet_b6": 1e-3, "efficientnet_b7": 1e-3, "*": 1e-5}
TORCHVISION = Reference(
    _torchvision_names,
    bn_epsilon=TORCHVISION_EPSILON,
    head=("classifier",),
    check=_check("torch", False, "torchvision", "1e-5 for B0-B4, 1e-3 for B5-B7"),
)
# keras.applications' EfficientNetB0-B7 use our layer names.
KERAS = Reference(
    bn_epsilon=1e-3,
    head=("predictions",),
    check=_check("keras", True, "keras.applications", "1e-3"),
    fix_keras=_keras_variance,
)
KERAS_OPTIONS = {"padding": "keras", "include_preprocessing": True, "bn_epsilon": 1e-3}
TORCHVISION_OPTIONS = {"padding": "torch", "include_preprocessing": False}
# keras/src/applications/efficientnet.py: BASE_WEIGHTS_PATH + "efficientnetb0" + ".h5" / "_notop.h5"
KERAS_BASE = "https://storage.googleapis.com/keras-applications/efficientnet"

# --------------------------------------------------------------------------- variants

OPTIONS = (
    "``drop_connect_rate=0.2``, ``padding=\"keras\"|\"torch\"``, ``bn_epsilon=1e-3``, "
    "``bn_momentum=0.99``, ``include_preprocessing=True`` (inputs are [0, 255] pixels), "
    "``activation=\"swish\"``, ``dropout`` (per variant)"
)
SUMMARY = "Width x{}, depth x{}, {}x{} inputs, dropout {}."

# The width/depth coefficients, resolution and dropout of each variant are the authors' code's.
# params: torchvision efficientnet_b* (sum of parameters' numel), architecture
# identical to the authors'. total_params: keras.applications EfficientNetB*
# count_params() with weights=None (BN statistics and the Normalization layer's
# mean, variance and count included); tests/test_efficientnet.py checks it live.
FAMILIES = (
    Family(
        name="EfficientNet",
        core=efficientnet,
        paper=PAPER,
        recipe="efficientnet",
        options_doc=OPTIONS,
        references={"keras": KERAS, "torchvision": TORCHVISION},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "EfficientNetB0", "efficientnet_b0", 5_288_548, "torchvision efficientnet_b0",
                {"width_coefficient": 1.0, "depth_coefficient": 1.0, "dropout": 0.2},
                total_params=5_330_571, summary=SUMMARY.format(1.0, 1.0, 224, 224, 0.2), default_size=224,
                weights=(
                    keras_applications(
                        f"{KERAS_BASE}b0", "902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d",
                        **KERAS_OPTIONS,
                    ),
                    torchvision("efficientnet_b0_rwightman-7f5810bc.pth", **TORCHVISION_OPTIONS, bn_epsilon=1e-5),
                ), macs=385_814_752,
            ),
            Variant(
                "EfficientNetB1", "efficientnet_b1", 7_794_184, "torchvision efficientnet_b1",
                {"width_coefficient": 1.0, "depth_coefficient": 1.1, "dropout": 0.2},
                total_params=7_856_239, summary=SUMMARY.format(1.0, 1.1, 240, 240, 0.2), default_size=240,
                weights=(
                    keras_applications(
                        f"{KERAS_BASE}b1", "1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432",
                        **KERAS_OPTIONS,
                    ),
                    torchvision("efficientnet_b1-c27df63c.pth", **TORCHVISION_OPTIONS, bn_epsilon=1e-5),
                ), macs=686_802_832,
            ),
            Variant(
                "EfficientNetB2", "efficientnet_b2", 9_109_994, "torchvision efficientnet_b2",
                {"width_coefficient": 1.1, "depth_coefficient": 1.2, "dropout": 0.3},
                total_params=9_177_569, summary=SUMMARY.format(1.1, 1.2, 260, 260, 0.3), default_size=260,
                weights=(
                    keras_applications(
                        f"{KERAS_BASE}b2", "b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39",
                        **KERAS_OPTIONS,
                    ),
                    torchvision("efficientnet_b2_rwightman-c35c1473.pth", **TORCHVISION_OPTIONS, bn_epsilon=1e-5),
                ), macs=993_561_872,
            ),
            Variant(
                "EfficientNetB3", "efficientnet_b3", 12_233_232, "torchvision efficientnet_b3",
                {"width_coefficient": 1.2, "depth_coefficient": 1.4, "dropout": 0.3},
                total_params=12_320_535, summary=SUMMARY.format(1.2, 1.4, 300, 300, 0.3), default_size=300,
                weights=(
                    keras_applications(
                        f"{KERAS_BASE}b3", "ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226",
                        **KERAS_OPTIONS,
                    ),
                    torchvision("efficientnet_b3_rwightman-b3899882.pth", **TORCHVISION_OPTIONS, bn_epsilon=1e-5),
                ), macs=1_827_141_392,
            ),
            Variant(
                "EfficientNetB4", "efficientnet_b4", 19_341_616, "torchvision efficientnet_b4",
                {"width_coefficient": 1.4, "depth_coefficient": 1.8, "dropout": 0.4},
                total_params=19_466_823, summary=SUMMARY.format(1.4, 1.8, 380, 380, 0.4), default_size=380,
                weights=(
                    keras_applications(
                        f"{KERAS_BASE}b4", "18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba",
                        **KERAS_OPTIONS,
                    ),
                    torchvision("efficientnet_b4_rwightman-23ab8bcd.pth", **TORCHVISION_OPTIONS, bn_epsilon=1e-5),
                ), macs=4_393_771_024,
            ),
            Variant(
                "EfficientNetB5", "efficientnet_b5", 30_389_784, "torchvision efficientnet_b5",
                {"width_coefficient": 1.6, "depth_coefficient": 2.2, "dropout": 0.4},
                total_params=30_562_527, summary=SUMMARY.format(1.6, 2.2, 456, 456, 0.4), default_size=456,
                weights=(
                    keras_applications(
                        f"{KERAS_BASE}b5", "ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f",
                        **KERAS_OPTIONS,
                    ),
                    torchvision("efficientnet_b5_lukemelas-1a07897c.pth", **TORCHVISION_OPTIONS, bn_epsilon=1e-3),
                ), macs=10_266_384_752,
            ),
            Variant(
                "EfficientNetB6", "efficientnet_b6", 43_040_704, "torchvision efficientnet_b6",
                {"width_coefficient": 1.8, "depth_coefficient": 2.6, "dropout": 0.5},
                total_params=43_265_143, summary=SUMMARY.format(1.8, 2.6, 528, 528, 0.5), default_size=528,
                weights=(
                    keras_applications(
                        f"{KERAS_BASE}b6", "165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743",
                        **KERAS_OPTIONS,
                    ),
                    torchvision("efficientnet_b6_lukemelas-24a108a5.pth", **TORCHVISION_OPTIONS, bn_epsilon=1e-3),
                ), macs=19_067_593_536,
            ),
            Variant(
                "EfficientNetB7", "efficientnet_b7", 66_347_960, "torchvision efficientnet_b7",
                {"width_coefficient": 2.0, "depth_coefficient": 3.1, "dropout": 0.5},
                total_params=66_658_687, summary=SUMMARY.format(2.0, 3.1, 600, 600, 0.5), default_size=600,
                weights=(
                    keras_applications(
                        f"{KERAS_BASE}b7", "8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a",
                        **KERAS_OPTIONS,
                    ),
                    torchvision("efficientnet_b7_lukemelas-c5b4e57e.pth", **TORCHVISION_OPTIONS, bn_epsilon=1e-3),
                ), macs=37_745_884_192,
            ),
        ),
    ),
)
