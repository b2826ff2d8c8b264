"""VGG (Simonyan & Zisserman 2014, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", Table 1): the six configurations A, A-LRN, B, C, D, E and the
batch-norm versions of A, B, D and E that torchvision ships.
"""

from __future__ import annotations

import keras

from keras_archs.blocks import batch_norm, conv, make_flatten_top, pool
from keras_archs.builder import build_classifier
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.layers import LocalResponseNormalization
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import KERAS_URL, keras_applications, torchvision
from keras_archs.weight_import.reference import Reference

PAPER = "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition"

PREPROCESSING = {"torchvision": "torch", "keras": "caffe"}
preprocess_input = family_preprocess_input("VGG", PREPROCESSING)

# Table 1, one tuple per block (each block ends in 2x2/2 max-pooling). An int is a
# 3x3 convolution with that many filters; ("1x1", n) is configuration C's 1x1
# convolution; "LRN" is A-LRN's local response normalisation.
CONFIGS: dict[str, tuple[tuple, ...]] = {
    "A": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "A-LRN": ((64, "LRN"), (128,), (256, 256), (512, 512), (512, 512)),
    "B": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "C": ((64, 64), (128, 128), (256, 256, ("1x1", 256)), (512, 512, ("1x1", 512)), (512, 512, ("1x1", 512))),
    "D": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "E": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}


def vgg(*, config: str, batch_norm_layers: bool = False, **common) -> keras.Model:
    """Core VGG builder for a configuration of Table 1.

    Args:
        config: ``"A"``, ``"A-LRN"``, ``"B"``, ``"C"``, ``"D"`` or ``"E"``.
        batch_norm_layers: insert BatchNormalization after every convolution
            (torchvision's ``vgg*_bn``; not in the paper).
    """
    if config not in CONFIGS:
        raise ValueError(f"Unknown VGG configuration {config!r}; choose from {sorted(CONFIGS)}.")

    def features(x):
        for b, block in enumerate(CONFIGS[config], start=1):
            index = 0
            for item in block:
                if item == "LRN":
                    # Section 2.1: Krizhevsky et al.'s LRN parameters (the layer's defaults).
                    x = LocalResponseNormalization(name=f"block{b}_lrn")(x)
                    continue
                index += 1
                kernel, filters = (1, item[1]) if isinstance(item, tuple) else (3, item)
                name = f"block{b}_conv{index}"
                x = conv(x, filters, kernel, name=name, use_bias=True)
                if batch_norm_layers:
                    x = batch_norm(x, name=f"{name}_bn")
                x = keras.layers.ReLU(name=f"{name}_relu")(x)
            x = pool(x, 2, 2, name=f"block{b}_pool")
        return x

    # As torchvision: the dense layers see 7x7 maps at any input size (identity at 224).
    return build_classifier(features=features, top=make_flatten_top(pool_to=(7, 7)), **common)


# --------------------------------------------------------------------------- weights


def _torchvision_names(model: keras.Model) -> dict[str, str]:
    # torchvision's VGG is features = Sequential(conv, [bn,] relu, ..., maxpool) with
    # running indices, then classifier = Sequential(fc, relu, drop, fc, relu, drop, fc).
    out, index = {}, 0
    for layer in model.layers:
        if not layer.name.startswith("block") or layer.name.endswith("_pad"):
            continue
        if layer.weights:
            out[layer.name] = f"features.{index}"
        index += 1
    out.update({"fc1": "classifier.0", "fc2": "classifier.3", "predictions": "classifier.6"})
    return out


TORCHVISION = Reference(_torchvision_names, bn_epsilon=1e-5, head=("classifier",), flatten="chw")
KERAS = Reference(head=("fc1", "fc2", "predictions"))


def _keras_file(name: str, top_md5: str, notop_md5: str):
    return keras_applications(f"{KERAS_URL}{name}/{name}_weights_tf_dim_ordering_tf_kernels", top_md5, notop_md5)


# --------------------------------------------------------------------------- variants

FAMILIES = (
    Family(
        name="VGG",
        core=vgg,
        paper=PAPER,
        recipe="vgg",
        references={"torchvision": TORCHVISION, "keras": KERAS},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "VGG11", "vgg11", 132_863_336, "torchvision vgg11", {"config": "A"},
                summary="Configuration A of Table 1.", weights=(torchvision("vgg11-8a719046.pth"),), macs=7_609_090_048,
            ),
            Variant(
                "VGG11LRN", "vgg11_lrn", 132_863_336, "paper Table 2 (133M); LRN adds none", {"config": "A-LRN"},
                summary="Configuration A-LRN of Table 1.", macs=7_609_090_048,
            ),
            Variant(
                "VGG11BN", "vgg11_bn", 132_868_840, "torchvision vgg11_bn", {"config": "A", "batch_norm_layers": True},
                summary="Configuration A of Table 1 with batch normalisation.",
                weights=(torchvision("vgg11_bn-6002323d.pth"),), macs=7_609_090_048,
            ),
            Variant(
                "VGG13", "vgg13", 133_047_848, "torchvision vgg13", {"config": "B"},
                summary="Configuration B of Table 1.", weights=(torchvision("vgg13-19584684.pth"),),
                macs=11_308_466_176,
            ),
            Variant(
                "VGG13BN", "vgg13_bn", 133_053_736, "torchvision vgg13_bn", {"config": "B", "batch_norm_layers": True},
                summary="Configuration B of Table 1 with batch normalisation.",
                weights=(torchvision("vgg13_bn-abd245e5.pth"),), macs=11_308_466_176,
            ),
            Variant(
                "VGG16C", "vgg16_c", 133_638_952, "paper Table 2 (134M): B plus three 1x1 convs", {"config": "C"},
                summary="Configuration C of Table 1.", macs=11_770_888_192,
            ),
            Variant(
                "VGG16", "vgg16", 138_357_544, "torchvision vgg16", {"config": "D"},
                summary="Configuration D of Table 1.",
                weights=(
                    torchvision("vgg16-397923af.pth"),
                    _keras_file("vgg16", "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
                ), macs=15_470_264_320,
            ),
            Variant(
                "VGG16BN", "vgg16_bn", 138_365_992, "torchvision vgg16_bn", {"config": "D", "batch_norm_layers": True},
                summary="Configuration D of Table 1 with batch normalisation.",
                weights=(torchvision("vgg16_bn-6c64b313.pth"),), macs=15_470_264_320,
            ),
            Variant(
                "VGG19", "vgg19", 143_667_240, "torchvision vgg19", {"config": "E"},
                summary="Configuration E of Table 1.",
                weights=(
                    torchvision("vgg19-dcbb9e9d.pth"),
                    _keras_file("vgg19", "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
                ), macs=19_632_062_464,
            ),
            Variant(
                "VGG19BN", "vgg19_bn", 143_678_248, "torchvision vgg19_bn", {"config": "E", "batch_norm_layers": True},
                summary="Configuration E of Table 1 with batch normalisation.",
                weights=(torchvision("vgg19_bn-c79401a0.pth"),), macs=19_632_062_464,
            ),
        ),
    ),
)
