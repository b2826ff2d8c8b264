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
from keras_archs.registry import public_builder

PAPER = "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition"

preprocess_input = family_preprocess_input("VGG")

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


def _variant(public: str, registry: str, config: str, bn: bool, params: int, source: str):
    return public_builder(
        vgg,
        public,
        registry,
        family="VGG",
        paper=PAPER,
        default_size=224,
        min_size=32,
        params=params,
        param_source=source,
        summary=f"Configuration {config} of Table 1{' with batch normalisation' if bn else ''}.",
        config=config,
        batch_norm_layers=bn,
    )


VGG11 = _variant("VGG11", "vgg11", "A", False, 132_863_336, "torchvision vgg11")
VGG11LRN = _variant("VGG11LRN", "vgg11_lrn", "A-LRN", False, 132_863_336, "paper Table 2 (133M); LRN adds none")
VGG11BN = _variant("VGG11BN", "vgg11_bn", "A", True, 132_868_840, "torchvision vgg11_bn")
VGG13 = _variant("VGG13", "vgg13", "B", False, 133_047_848, "torchvision vgg13")
VGG13BN = _variant("VGG13BN", "vgg13_bn", "B", True, 133_053_736, "torchvision vgg13_bn")
VGG16C = _variant("VGG16C", "vgg16_c", "C", False, 133_638_952, "paper Table 2 (134M): B plus three 1x1 convs")
VGG16 = _variant("VGG16", "vgg16", "D", False, 138_357_544, "torchvision vgg16")
VGG16BN = _variant("VGG16BN", "vgg16_bn", "D", True, 138_365_992, "torchvision vgg16_bn")
VGG19 = _variant("VGG19", "vgg19", "E", False, 143_667_240, "torchvision vgg19")
VGG19BN = _variant("VGG19BN", "vgg19_bn", "E", True, 143_678_248, "torchvision vgg19_bn")
