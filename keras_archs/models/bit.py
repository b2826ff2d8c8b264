"""BiT (Kolesnikov, Beyer, Zhai, Puigcerver, Yung, Gelly & Houlsby 2020, "Big
Transfer (BiT): General Visual Representation Learning"): ResNet-v2 (He et al.
2016, pre-activation) with every BatchNorm replaced by GroupNorm and every
convolution weight-standardised (Section 2.1), at depths 50/101/152 and width
factors 1-4 (R50x1 ... R152x4).

Details the paper leaves to its code follow the official implementation
(big_transfer, bit_pytorch) and timm's ``resnetv2_*_bit``: the 3x3 convolution of a
bottleneck takes the stride, the projection shortcut is a 1x1 convolution of the
pre-activated input, the stem max-pool pads with zeros, and the head is the final
GN+ReLU, global average pooling and a zero-initialised classifier.

Layer names map to timm's modules: ``stage{s}_block{b}_{conv1,norm2,...}`` is
``stages.{s-1}.blocks.{b-1}.{conv1,norm2,...}``, ``stage{s}_block{b}_downsample`` is
``...downsample.conv``, ``stem_conv`` is ``stem.conv``, ``norm`` is ``norm`` and
``predictions`` is ``head.fc`` (a 1x1 convolution there, a dense layer here).
"""

from __future__ import annotations

import keras

from keras_archs.blocks import pad_for, pool
from keras_archs.builder import build_classifier
from keras_archs.imagenet import decode_predictions as decode_predictions
from keras_archs.imagenet import family_preprocess_input
from keras_archs.layers import WeightStandardizedConv2D
from keras_archs.spec import Family, Variant

PAPER = "Kolesnikov et al. 2020, Big Transfer (BiT): General Visual Representation Learning"

# timm's BiT configurations use mean = std = 0.5: "tf" mode.
PREPROCESSING = {"timm": "tf"}
preprocess_input = family_preprocess_input("BiT", PREPROCESSING)

# ResNet-v2 bottleneck stages (He et al. 2016, Table 1 of the v1 paper): blocks per stage.
STAGE_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STEM_FILTERS = 64  # times the width factor
STAGE_FILTERS = (256, 512, 1024, 2048)  # block outputs, times the width factor; bottleneck width is 1/4
GN_GROUPS = 32


def ws_conv(x, filters: int, kernel_size: int, *, name: str, strides: int = 1, ws_epsilon: float):
    """A weight-standardised convolution without bias, padded ``k // 2`` on each side as the references."""
    x, padding = pad_for(x, kernel_size, strides=strides, name=name)
    return WeightStandardizedConv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        epsilon=ws_epsilon,
        kernel_initializer="he_normal",
        name=name,
    )(x)


def gn_relu(x, *, name: str, groups: int, gn_epsilon: float):
    """GroupNorm (Wu & He 2018) followed by ReLU, named ``name`` and ``{name}_relu``."""
    x = keras.layers.GroupNormalization(groups=groups, epsilon=gn_epsilon, name=name)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def preact_bottleneck(
    x, filters: int, *, strides: int, name: str, groups: int, gn_epsilon: float, ws_epsilon: float
):
    """ResNet-v2 bottleneck: GN-ReLU-conv1x1, GN-ReLU-conv3x3 (strided), GN-ReLU-conv1x1,
    plus the input (or a 1x1 projection of the pre-activated input when the shape changes)."""
    conv = dict(ws_epsilon=ws_epsilon)
    norm = dict(groups=groups, gn_epsilon=gn_epsilon)
    preact = gn_relu(x, name=f"{name}_norm1", **norm)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = ws_conv(preact, filters, 1, strides=strides, name=f"{name}_downsample", **conv)
    else:
        shortcut = x
    y = ws_conv(preact, filters // 4, 1, name=f"{name}_conv1", **conv)
    y = gn_relu(y, name=f"{name}_norm2", **norm)
    y = ws_conv(y, filters // 4, 3, strides=strides, name=f"{name}_conv2", **conv)
    y = gn_relu(y, name=f"{name}_norm3", **norm)
    y = ws_conv(y, filters, 1, name=f"{name}_conv3", **conv)
    return keras.layers.Add(name=f"{name}_add")([shortcut, y])


def bit(
    *,
    depth: int,
    width_factor: int,
    groups: int = GN_GROUPS,
    gn_epsilon: float = 1e-5,
    ws_epsilon: float = 1e-10,
    zero_head: bool = True,
    **common,
) -> keras.Model:
    """Core BiT builder: a ResNet-v2 with GroupNorm and weight standardisation.

    Args:
        depth: 50, 101 or 152.
        width_factor: multiplies every channel count (the "x3" of R50x3).
        groups: GroupNorm groups (the paper's 32).
        gn_epsilon: GroupNorm epsilon (1e-5 as torch.nn.GroupNorm in the official code).
        ws_epsilon: weight-standardisation epsilon (1e-10 official code; timm 1e-8).
        zero_head: initialise the classifier's kernel and bias to zero, as the official
            fine-tuning code does for a new head (BiT-HyperRule transfer); ``False``
            uses Keras' default initialisers.
    """
    if depth not in STAGE_DEPTHS:
        raise ValueError(f"BiT depth must be one of {sorted(STAGE_DEPTHS)}, got {depth}.")
    block_options = dict(groups=groups, gn_epsilon=gn_epsilon, ws_epsilon=ws_epsilon)

    def features(x):
        x = ws_conv(x, STEM_FILTERS * width_factor, 7, strides=2, name="stem_conv", ws_epsilon=ws_epsilon)
        # The stem is not normalised before pooling (pre-activation), so this is
        # zero padding, not -inf padding: exactly the references' ConstantPad2d(1, 0).
        x = pool(x, 3, 2, padding=1, name="stem_pool")
        for stage, blocks in enumerate(STAGE_DEPTHS[depth], start=1):
            filters = STAGE_FILTERS[stage - 1] * width_factor
            for block in range(1, blocks + 1):
                x = preact_bottleneck(
                    x,
                    filters,
                    strides=2 if block == 1 and stage > 1 else 1,
                    name=f"stage{stage}_block{block}",
                    **block_options,
                )
        # Pre-activation nets end with one last GN+ReLU before the head.
        return gn_relu(x, name="norm", groups=groups, gn_epsilon=gn_epsilon)

    def top(x, classes, classifier_activation):
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        init = "zeros" if zero_head else "glorot_uniform"
        return keras.layers.Dense(
            classes, activation=classifier_activation, kernel_initializer=init, name="predictions"
        )(x)

    return build_classifier(features=features, top=top, **common)


SUMMARY = "ResNet-v2-{} with width factor {}, GroupNorm and weight standardisation."

# Reference counts: timm resnetv2_*_bit with num_classes=1000 (checked live by
# tests/test_reference_counts.py).
FAMILIES = (
    Family(
        name="BiT",
        core=bit,
        paper=PAPER,
        recipe="bit",
        options_doc="``groups=32``, ``gn_epsilon=1e-5``, ``ws_epsilon=1e-10``, ``zero_head=True``",
        preprocessing=PREPROCESSING,
        variants=(
            Variant(
                "BiTR50x1", "bit_r50x1", 25_549_352, "timm resnetv2_50x1_bit", {"depth": 50, "width_factor": 1},
                summary=SUMMARY.format(50, 1), macs=4_089_184_256,
            ),
            Variant(
                "BiTR50x3", "bit_r50x3", 217_319_080, "timm resnetv2_50x3_bit", {"depth": 50, "width_factor": 3},
                summary=SUMMARY.format(50, 3), macs=36_082_286_592,
            ),
            Variant(
                "BiTR101x1", "bit_r101x1", 44_541_480, "timm resnetv2_101x1_bit", {"depth": 101, "width_factor": 1},
                summary=SUMMARY.format(101, 1), macs=7_801_405_440,
            ),
            Variant(
                "BiTR101x3", "bit_r101x3", 387_934_888, "timm resnetv2_101x3_bit", {"depth": 101, "width_factor": 3},
                summary=SUMMARY.format(101, 3), macs=69_492_277_248,
            ),
            Variant(
                "BiTR152x2", "bit_r152x2", 236_335_208, "timm resnetv2_152x2_bit", {"depth": 152, "width_factor": 2},
                summary=SUMMARY.format(152, 2), macs=45_814_382_592,
            ),
            Variant(
                "BiTR152x4", "bit_r152x4", 936_533_224, "timm resnetv2_152x4_bit", {"depth": 152, "width_factor": 4},
                summary=SUMMARY.format(152, 4), macs=182_777_282_560,
            ),
        ),
    ),
)
