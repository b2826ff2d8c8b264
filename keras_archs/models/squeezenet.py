"""SqueezeNet (Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer 2016, "SqueezeNet:
AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size"): v1.0 of
Table 1 and v1.1 of the authors' repository (as in torchvision), with the simple and
complex bypass connections of Section 6 / Figure 2.

Layer names follow the authors' Caffe models with ``/`` as ``_`` (``conv1``,
``fire2_squeeze1x1``, ``fire2_expand1x1``, ``fire2_expand3x3``, ``conv10``);
torchvision's ``features.<i>.squeeze`` etc. map to them by the position of the fire
module in ``features`` (see ``TORCHVISION_FEATURE_INDEX``).
"""

from __future__ import annotations

import keras

from keras_archs.blocks import conv, pool
from keras_archs.builder import build_classifier, conv_top
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import torchvision
from keras_archs.weight_import.reference import Reference

PAPER = "Iandola et al. 2016, SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size"

PREPROCESSING = {"torchvision": "torch"}
preprocess_input = family_preprocess_input("SqueezeNet", PREPROCESSING)

# conv1 (filters, kernel), then the trunk: "pool" is 3x3/2 max pooling in Caffe's
# ceil mode, a tuple is a fire module (squeeze 1x1, expand 1x1, expand 3x3 filters);
# fire modules are numbered fire2 ... fire9 in order.
# v1.0: Table 1. v1.1 (SqueezeNet_v1.1 in the authors' repository): a 3x3/2 conv1 of
# 64 filters and the pools moved earlier, after conv1, fire3 and fire5.
VERSIONS: dict[str, tuple[tuple[int, int], tuple]] = {
    "1.0": (
        (96, 7),
        ("pool", (16, 64, 64), (16, 64, 64), (32, 128, 128), "pool", (32, 128, 128),
         (48, 192, 192), (48, 192, 192), (64, 256, 256), "pool", (64, 256, 256)),
    ),
    "1.1": (
        (64, 3),
        ("pool", (16, 64, 64), (16, 64, 64), "pool", (32, 128, 128), (32, 128, 128),
         "pool", (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)),
    ),
}
# Position of each fire module in torchvision's ``features`` Sequential, for weight import.
TORCHVISION_FEATURE_INDEX = {
    "1.0": dict(conv1=0, fire2=3, fire3=4, fire4=5, fire5=7, fire6=8, fire7=9, fire8=10, fire9=12),
    "1.1": dict(conv1=0, fire2=3, fire3=4, fire4=6, fire5=7, fire6=9, fire7=10, fire8=11, fire9=12),
}
BYPASS = ("none", "simple", "complex")


def fire_module(x, squeeze: int, expand1x1: int, expand3x3: int, *, name: str):
    """Section 3.2: a 1x1 squeeze layer, then 1x1 and 3x3 expand layers side by side,
    each followed by ReLU, their outputs concatenated (expand1x1 first)."""
    s = conv(x, squeeze, 1, use_bias=True, kernel_initializer="he_uniform", name=f"{name}_squeeze1x1")
    s = keras.layers.ReLU(name=f"{name}_squeeze1x1_relu")(s)
    e1 = conv(s, expand1x1, 1, use_bias=True, kernel_initializer="he_uniform", name=f"{name}_expand1x1")
    e1 = keras.layers.ReLU(name=f"{name}_expand1x1_relu")(e1)
    e3 = conv(s, expand3x3, 3, use_bias=True, kernel_initializer="he_uniform", name=f"{name}_expand3x3")
    e3 = keras.layers.ReLU(name=f"{name}_expand3x3_relu")(e3)
    return keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([e1, e3])


def bypass_fire_module(x, widths: tuple[int, int, int], *, bypass: str, name: str):
    """A fire module with Section 6's bypass: identity where input and output widths
    match ("simple" and "complex"), a 1x1 convolution (with bias, no activation) where
    they differ ("complex" only)."""
    y = fire_module(x, *widths, name=name)
    if bypass == "none":
        return y
    if x.shape[-1] == y.shape[-1]:
        return keras.layers.Add(name=f"{name}_add")([x, y])
    if bypass == "complex":
        shortcut = conv(x, y.shape[-1], 1, use_bias=True, kernel_initializer="he_uniform", name=f"{name}_bypass")
        return keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return y


def squeezenet_top(dropout: float):
    """Dropout after fire9, conv10 (``classes`` 1x1 filters) + ReLU, global average
    pooling and the classifier activation: no dense layer (Section 3.3)."""

    def top(x, classes: int, classifier_activation):
        if dropout:
            x = keras.layers.Dropout(dropout, name="drop9")(x)
        x = conv(
            x,
            classes,
            1,
            use_bias=True,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="conv10",
        )
        x = keras.layers.ReLU(name="conv10_relu")(x)
        return conv_top(x, classes, classifier_activation)

    return top


def squeezenet(*, version: str, bypass: str = "none", dropout: float = 0.5, **common) -> keras.Model:
    """Core SqueezeNet builder.

    Args:
        version: ``"1.0"`` (Table 1) or ``"1.1"`` (authors' v1.1, about 2.4x less
            computation at the same accuracy).
        bypass: ``"none"`` (the vanilla net), ``"simple"`` (identity shortcuts around
            fire3, fire5, fire7, fire9) or ``"complex"`` (also 1x1-conv shortcuts
            around fire2, fire4, fire6, fire8), Figure 2.
        dropout: dropout rate after fire9 (0.5 in the paper).
    """
    if version not in VERSIONS:
        raise ValueError(f"SqueezeNet version must be one of {sorted(VERSIONS)}, got {version!r}.")
    if bypass not in BYPASS:
        raise ValueError(f"bypass must be one of {BYPASS}, got {bypass!r}.")
    (conv1_filters, conv1_kernel), trunk = VERSIONS[version]

    def features(x):
        x = conv(
            x,
            conv1_filters,
            conv1_kernel,
            strides=2,
            padding="valid",
            use_bias=True,
            kernel_initializer="he_uniform",
            name="conv1",
        )
        x = keras.layers.ReLU(name="conv1_relu")(x)
        fire, pools = 2, 0
        for item in trunk:
            if item == "pool":
                # Named after the layer they follow, as in the paper (maxpool1/4/8).
                x = pool(x, 3, 2, ceil_mode=True, name=f"pool{1 if pools == 0 else fire - 1}")
                pools += 1
            else:
                x = bypass_fire_module(x, item, bypass=bypass, name=f"fire{fire}")
                fire += 1
        return x

    return build_classifier(features=features, top=squeezenet_top(dropout), **common)


# --------------------------------------------------------------------------- weights


def _torchvision_names(model: keras.Model) -> dict[str, str]:
    # torchvision's features is an indexed Sequential whose indices differ between 1.0
    # (7x7 conv1) and 1.1 (3x3 conv1): TORCHVISION_FEATURE_INDEX.
    try:
        version = "1.0" if model.get_layer("conv1").kernel_size[0] == 7 else "1.1"
    except ValueError:
        return {}
    out = {"conv10": "classifier.1"}
    for name, index in TORCHVISION_FEATURE_INDEX[version].items():
        if name == "conv1":
            out[name] = f"features.{index}"
            continue
        for ours, theirs in (("squeeze1x1", "squeeze"), ("expand1x1", "expand1x1"), ("expand3x3", "expand3x3")):
            out[f"{name}_{ours}"] = f"features.{index}.{theirs}"
    return out


def _torchvision_check(model: keras.Model) -> str | None:
    if any("bypass" in layer.name for layer in model.layers):
        return "torchvision's SqueezeNet has no bypass connections: build it with bypass='none'"
    return None


TORCHVISION = Reference(_torchvision_names, head=("classifier",), check=_torchvision_check)

# --------------------------------------------------------------------------- variants

# min_size: a ceil-mode pool maps n -> floor((n - 2) / 2) + 1 and needs n >= 2; working
# back from one pixel after the third pool, conv1 must output 8 (8 -> 4 -> 2 -> 1):
# v1.0 (7x7/2 valid conv1) 21 -> 8, v1.1 (3x3/2 valid) 17 -> 8. tests/test_squeezenet.py
# checks that torchvision accepts these sizes and rejects one pixel less.
FAMILIES = (
    Family(
        name="SqueezeNet",
        core=squeezenet,
        paper=PAPER,
        default_size=227,
        recipe="squeezenet",
        options_doc='``bypass="none"|"simple"|"complex"``, ``dropout=0.5``',
        references={"torchvision": TORCHVISION},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "SqueezeNet1_0", "squeezenet1_0", 1_248_424, "torchvision squeezenet1_0", {"version": "1.0"},
                summary="Table 1's SqueezeNet; 227x227 input as in the paper's Caffe model (torchvision uses 224).",
                min_size=21,
                weights=(torchvision("squeezenet1_0-b66bff10.pth", bypass="none"),), macs=832_667_936,
            ),
            Variant(
                "SqueezeNet1_1", "squeezenet1_1", 1_235_496, "torchvision squeezenet1_1", {"version": "1.1"},
                summary=(
                    "The authors' v1.1: 3x3 conv1 of 64 filters, earlier pooling; 227x227 input as their Caffe model."
                ),
                min_size=17,
                weights=(torchvision("squeezenet1_1-b8a52dc0.pth", bypass="none"),), macs=387_747_520,
            ),
        ),
    ),
)
