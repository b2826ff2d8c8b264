"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet Classification with Deep
Convolutional Neural Networks", Section 3) and torchvision's single-tower variant
from Krizhevsky 2014, "One weird trick for parallelizing convolutional neural
networks".
"""

from __future__ import annotations

import keras

from keras_archs.blocks import conv, make_flatten_top, pool
from keras_archs.builder import build_classifier
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.layers import LocalResponseNormalization
from keras_archs.spec import Family, Variant
from keras_archs.weight_import.official import torchvision
from keras_archs.weight_import.reference import Reference, rules

PAPER = "Krizhevsky et al. 2012, ImageNet Classification with Deep Convolutional Neural Networks"

PREPROCESSING = {"torchvision": "torch"}
preprocess_input = family_preprocess_input("AlexNet", PREPROCESSING)

# (name, filters, kernel, stride, padding, towers, LRN after ReLU, max-pool after)
# Section 3.5 / Figure 2: conv2, conv4 and conv5 read only the maps of their own GPU
# ("towers"); conv3 and the dense layers read both.
_PAPER_LAYERS = (
    ("conv1", 96, 11, 4, 0, 1, True, True),
    ("conv2", 256, 5, 1, 2, 2, True, True),
    ("conv3", 384, 3, 1, 1, 1, False, False),
    ("conv4", 384, 3, 1, 1, 2, False, False),
    ("conv5", 256, 3, 1, 1, 2, False, True),
)
# torchvision's alexnet: one tower with the widths of "one weird trick" (64-192-384-256-256).
_OWT_LAYERS = (
    ("conv1", 64, 11, 4, 2, 1, False, True),
    ("conv2", 192, 5, 1, 2, 1, False, True),
    ("conv3", 384, 3, 1, 1, 1, False, False),
    ("conv4", 256, 3, 1, 1, 1, False, False),
    ("conv5", 256, 3, 1, 1, 1, False, True),
)
# Section 5: conv2, conv4, conv5 and the hidden dense layers start with bias 1 so
# that early ReLUs receive positive inputs; all weights start from N(0, 0.01).
_BIAS_ONE = {"conv2", "conv4", "conv5"}


def alexnet(
    *,
    layers: tuple[tuple, ...] = _PAPER_LAYERS,
    lrn: bool = True,
    grouped: bool = True,
    adaptive_pool: bool = False,
    **common,
) -> keras.Model:
    """Core AlexNet builder.

    Args:
        layers: the convolution table (paper or one-weird-trick widths).
        lrn: apply local response normalisation after conv1 and conv2 (Section 3.3).
        grouped: keep the paper's two-tower split as grouped convolutions
            (``groups=2``) and LRN windows within each tower; ``False`` connects
            every map (more parameters) and normalises across all of them.
        adaptive_pool: the classifier first average-pools the maps to 6x6, as
            torchvision does, so any input size keeps the dense layers' shape
            (``include_top=False`` returns the full maps).
    """
    init = keras.initializers.RandomNormal(stddev=0.01)

    def features(x):
        for name, filters, kernel, stride, padding, towers, has_lrn, has_pool in layers:
            x = conv(
                x,
                filters,
                kernel,
                name=name,
                strides=stride,
                padding=padding if padding else "valid",
                groups=towers if grouped else 1,
                use_bias=True,
                kernel_initializer=init,
                bias_initializer="ones" if name in _BIAS_ONE else "zeros",
            )
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
            if has_lrn and lrn:
                # Section 3.2: each GPU normalises its own half of the maps (conv1's included).
                x = LocalResponseNormalization(
                    depth=5, k=2.0, alpha=1e-4, beta=0.75, groups=2 if grouped else 1, name=f"{name}_lrn"
                )(x)
            if has_pool:
                x = pool(x, 3, 2, name=f"{name}_pool")  # overlapping pooling, Section 3.4
        return x

    top = make_flatten_top(
        hidden_units=(4096, 4096),
        dropout=0.5,
        kernel_initializer=init,
        hidden_bias_initializer="ones",
        pool_to=(6, 6) if adaptive_pool else None,
    )
    return build_classifier(features=features, top=top, **common)


TORCHVISION = Reference(
    rules(
        ("conv1", "features.0"),
        ("conv2", "features.3"),
        ("conv3", "features.6"),
        ("conv4", "features.8"),
        ("conv5", "features.10"),
        ("fc1", "classifier.1"),
        ("fc2", "classifier.4"),
        ("predictions", "classifier.6"),
    ),
    head=("classifier",),
    flatten="chw",
)

FAMILIES = (
    Family(
        name="AlexNet",
        core=alexnet,
        paper=PAPER,
        recipe="alexnet",
        options_doc="``lrn=True``, ``grouped=True`` (two-tower split as groups=2, LRN per tower)",
        references={"torchvision": TORCHVISION},
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "AlexNet", "alexnet", 60_965_224, "paper (Section 3.5 architecture; 60,965,224 with groups=2)",
                summary=(
                    "The paper's network: LRN, overlapping pooling, dropout 0.5, two towers as grouped convolutions."
                ),
                default_size=227,
                min_size=67, macs=724_406_816,
            ),
            Variant(
                "AlexNetOWT", "alexnet_owt", 61_100_840, "torchvision alexnet",
                {"layers": _OWT_LAYERS, "lrn": False, "grouped": False, "adaptive_pool": True},
                summary="torchvision's single-tower AlexNet (64-192-384-256-256, no LRN, 6x6 adaptive pooling).",
                paper="Krizhevsky 2014, One weird trick for parallelizing convolutional neural networks",
                min_size=63,
                weights=(torchvision("alexnet-owt-7be5be79.pth"),), macs=714_188_480,
            ),
        ),
    ),
)
