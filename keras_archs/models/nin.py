"""Network in Network (Lin, Chen & Yan 2013, "Network In Network").

An mlpconv layer is a spatial convolution followed by two 1x1 convolutions (the
"micro network", Section 3.1); the last mlpconv has one map per class, and global
average pooling replaces the dense classifier (Section 3.2). Layouts follow the
authors' released Caffe models (the paper gives no tables): the CIFAR-10 net of
Section 4.2 and the ImageNet net of their model zoo.
"""

from __future__ import annotations

import keras

from keras_archs.blocks import conv, pool
from keras_archs.builder import build_classifier, conv_top
from keras_archs.spec import Family, Variant

PAPER = "Lin et al. 2013, Network In Network"

# Per mlpconv block: (spatial filters, kernel, stride, padding, 1x1 widths, pooling
# after the block, dropout after the pooling). The last 1x1 width of the last block
# is the number of classes. "max"/"avg" pool 3x3 stride 2 with Caffe's ceil rounding.
IMAGENET_BLOCKS = (
    (96, 11, 4, 0, (96, 96), "max", 0.0),
    (256, 5, 1, 2, (256, 256), "max", 0.0),
    (384, 3, 1, 1, (384, 384), "max", 0.5),
    (1024, 3, 1, 1, (1024, None), None, 0.0),
)
CIFAR_BLOCKS = (
    (192, 5, 1, 2, (160, 96), "max", 0.5),
    (192, 5, 1, 2, (192, 192), "avg", 0.5),
    (192, 3, 1, 1, (192, None), None, 0.0),
)


def _mlpconv(x, spatial: int, kernel: int, stride: int, padding, widths, *, block: int, classes: int):
    x = conv(x, spatial, kernel, strides=stride, padding=padding or "valid", use_bias=True, name=f"mlpconv{block}_conv")
    x = keras.layers.ReLU(name=f"mlpconv{block}_conv_relu")(x)
    for j, width in enumerate(widths, start=1):
        x = keras.layers.Conv2D(width or classes, 1, kernel_initializer="he_normal", name=f"mlpconv{block}_cccp{j}")(x)
        x = keras.layers.ReLU(name=f"mlpconv{block}_cccp{j}_relu")(x)
    return x


def nin(
    *, blocks: tuple[tuple, ...] = IMAGENET_BLOCKS, classes: int = 1000, include_top: bool = True, **common
) -> keras.Model:
    """Core NiN builder.

    The last 1x1 convolution of the last mlpconv block is the classifier: it is
    part of the top (``include_top=False`` stops before it), and has ``classes``
    maps that global average pooling turns into scores.
    """

    def trunk(x, with_classifier: bool):
        for b, (spatial, kernel, stride, padding, widths, pooling, dropout) in enumerate(blocks, start=1):
            last = b == len(blocks)
            if last and not with_classifier:
                widths = widths[:-1]
            x = _mlpconv(x, spatial, kernel, stride, padding, widths, block=b, classes=classes)
            if pooling == "max":
                x = pool(x, 3, 2, ceil_mode=True, name=f"mlpconv{b}_pool")
            elif pooling == "avg":
                # Keras "same" average pooling excludes the padded cells from the mean,
                # which is what Caffe's ceil-mode window does on even-sized maps.
                x = keras.layers.AveragePooling2D(3, 2, padding="same", name=f"mlpconv{b}_pool")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"mlpconv{b}_dropout")(x)
        return x

    return build_classifier(
        features=lambda x: trunk(x, with_classifier=include_top),
        top=conv_top,
        classes=classes,
        include_top=include_top,
        **common,
    )


FAMILIES = (
    Family(
        name="NiN",
        core=nin,
        paper=PAPER,
        recipe="nin",
        variants=(
            # conv1 34,944 + 2 x 9,312; conv2 614,656 + 2 x 65,792; conv3 885,120 + 2 x 147,840;
            # conv4 3,539,968 + cccp7 1,049,600 + cccp8 1,025,000 (all with biases).
            Variant(
                "NiN", "nin", 7_595_176, "paper authors' Caffe ImageNet model, counted layer by layer",
                summary=(
                    "The authors' ImageNet NiN: four mlpconv blocks, the last with 1000 maps, then global average "
                    "pooling."
                ),
                min_size=55, macs=1_100_188_800,
            ),
            # conv1 14,592 + cccp 30,880 + 15,456; conv2 460,992 + 2 x 37,056; conv3 331,968
            # + 37,056 + cccp6 1,930 (10 classes).
            Variant(
                "NiNCIFAR", "nin_cifar", 966_986,
                "paper Section 4.2 CIFAR-10 net (authors' Caffe model), counted layer by layer",
                {"blocks": CIFAR_BLOCKS},
                summary=(
                    "The CIFAR-10 NiN of Section 4.2: three mlpconv blocks (192-160-96, 192-192-192, 192-192-10), "
                    "dropout 0.5."
                ),
                default_size=32,
                min_size=4,
                default_classes=10, macs=222_486_528,
            ),
        ),
    ),
)
