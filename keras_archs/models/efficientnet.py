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

import keras

from keras_archs.builder import build_classifier
from keras_archs.imagenet import IMAGENET_MEAN, IMAGENET_STD, family_preprocess_input
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.registry import public_builder

PAPER = "Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"

preprocess_input = family_preprocess_input("EfficientNet")

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

# (width_coefficient, depth_coefficient, resolution, dropout) of the authors' code.
VARIANTS = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}

PADDINGS = ("keras", "torch")
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


def _pad_for_stride(x, kernel_size: int, strides: int, padding: str, name: str):
    """Padding before a (depthwise) convolution: returns ``(x, keras_padding)``.

    ``"keras"`` is TensorFlow's ``"same"`` rule of the authors' code and of
    keras.applications (for a strided layer on an even-sized map: one row/column
    less at the top/left); ``"torch"`` pads ``k // 2`` on every side, as torchvision.
    Stride 1 pads symmetrically either way.
    """
    if strides == 1 or padding == "keras":
        return x, "same"
    return keras.layers.ZeroPadding2D(kernel_size // 2, name=name)(x), "valid"


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
        y = keras.layers.Conv2D(filters, 1, use_bias=False, kernel_initializer=CONV_INIT, name=f"{name}_expand_conv")(y)
        y = keras.layers.BatchNormalization(name=f"{name}_expand_bn", **bn)(y)
        y = keras.layers.Activation(activation, name=f"{name}_expand_activation")(y)
    y, pad = _pad_for_stride(y, kernel_size, strides, padding, f"{name}_dwconv_pad")
    y = keras.layers.DepthwiseConv2D(
        kernel_size, strides=strides, padding=pad, use_bias=False, depthwise_initializer=CONV_INIT, name=f"{name}_dwconv"
    )(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn", **bn)(y)
    y = keras.layers.Activation(activation, name=f"{name}_activation")(y)

    squeezed = max(1, int(filters_in * se_ratio))
    se = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(y)
    se = keras.layers.Conv2D(squeezed, 1, activation=activation, kernel_initializer=CONV_INIT, name=f"{name}_se_reduce")(se)
    se = keras.layers.Conv2D(filters, 1, activation="sigmoid", kernel_initializer=CONV_INIT, name=f"{name}_se_expand")(se)
    y = keras.layers.Multiply(name=f"{name}_se_excite")([y, se])

    y = keras.layers.Conv2D(filters_out, 1, use_bias=False, kernel_initializer=CONV_INIT, name=f"{name}_project_conv")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_project_bn", **bn)(y)
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
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}.")
    configs = block_configs(width_coefficient, depth_coefficient, depth_divisor)
    bn = dict(epsilon=bn_epsilon, momentum=bn_momentum)
    channels = common.get("channels", 3)

    def features(x):
        if include_preprocessing:
            x = _preprocessing(x, x.shape[-1] or channels)
        x, pad = _pad_for_stride(x, 3, 2, padding, "stem_conv_pad")
        x = keras.layers.Conv2D(
            round_filters(STEM_FILTERS, width_coefficient, depth_divisor),
            3,
            strides=2,
            padding=pad,
            use_bias=False,
            kernel_initializer=CONV_INIT,
            name="stem_conv",
        )(x)
        x = keras.layers.BatchNormalization(name="stem_bn", **bn)(x)
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
        x = keras.layers.Conv2D(
            round_filters(TOP_FILTERS, width_coefficient, depth_divisor),
            1,
            use_bias=False,
            kernel_initializer=CONV_INIT,
            name="top_conv",
        )(x)
        x = keras.layers.BatchNormalization(name="top_bn", **bn)(x)
        return keras.layers.Activation(activation, name="top_activation")(x)

    def top(x, classes, classifier_activation):
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        return keras.layers.Dense(
            classes, activation=classifier_activation, kernel_initializer=DENSE_INIT, name="predictions"
        )(x)

    return build_classifier(features=features, top=top, **common)


OPTIONS = (
    "``drop_connect_rate=0.2``, ``padding=\"keras\"|\"torch\"``, ``bn_epsilon=1e-3``, "
    "``bn_momentum=0.99``, ``include_preprocessing=True`` (inputs are [0, 255] pixels), "
    "``activation=\"swish\"``, ``dropout`` (per variant)"
)

# params: torchvision efficientnet_b* (sum of parameters' numel), architecture
# identical to the authors'. total_params: keras.applications EfficientNetB*
# count_params() with weights=None (BN statistics and the Normalization layer's
# mean, variance and count included); tests/test_efficientnet.py checks it live.
_REFERENCE = {
    "b0": (5_288_548, 5_330_571),
    "b1": (7_794_184, 7_856_239),
    "b2": (9_109_994, 9_177_569),
    "b3": (12_233_232, 12_320_535),
    "b4": (19_341_616, 19_466_823),
    "b5": (30_389_784, 30_562_527),
    "b6": (43_040_704, 43_265_143),
    "b7": (66_347_960, 66_658_687),
}


def _variant(key: str):
    width, depth, size, dropout = VARIANTS[key]
    params, total = _REFERENCE[key]
    public = f"EfficientNet{key.upper()}"
    return public_builder(
        efficientnet,
        public,
        f"efficientnet_{key}",
        family="EfficientNet",
        paper=PAPER,
        default_size=size,
        min_size=32,
        params=params,
        param_source=f"torchvision efficientnet_{key}",
        total_params=total,
        summary=f"Width x{width}, depth x{depth}, {size}x{size} inputs, dropout {dropout}.",
        options_doc=OPTIONS,
        width_coefficient=width,
        depth_coefficient=depth,
        dropout=dropout,
    )


EfficientNetB0 = _variant("b0")
EfficientNetB1 = _variant("b1")
EfficientNetB2 = _variant("b2")
EfficientNetB3 = _variant("b3")
EfficientNetB4 = _variant("b4")
EfficientNetB5 = _variant("b5")
EfficientNetB6 = _variant("b6")
EfficientNetB7 = _variant("b7")
