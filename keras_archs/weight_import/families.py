"""Per-family name maps from our layers to the reference implementations.

Each family lists, per reference (``"torchvision"`` or ``"keras"``), how our
layer names translate to the reference's module names: a short table of
``(our-name regex, reference template)`` rules, where ``{n}`` in the template is
regex group ``n`` and ``{n-1}`` / ``{n+1}`` shift a numeric group (torchvision
counts blocks from 0, our names from 1). A family whose reference is an
``nn.Sequential`` with running indices (VGG) walks the model instead. A
reference also states its BatchNormalization epsilon (state dicts do not store
it) and may check other options that change outputs without changing shapes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import keras

NameMap = Callable[[keras.Model], dict[str, str]]
Check = Callable[[keras.Model], "str | None"]

_SHIFT = re.compile(r"\{(\d+)([+-]\d+)?\}")


def rules(*table: tuple[str, str]) -> NameMap:
    """A name map from ``(regex, template)`` rules; the first full match wins."""
    compiled = [(re.compile(pattern), template) for pattern, template in table]

    def expand(match: re.Match, template: str) -> str:
        def one(m: re.Match) -> str:
            value = match.group(int(m.group(1)))
            return str(int(value) + int(m.group(2))) if m.group(2) else value

        return _SHIFT.sub(one, template)

    def names(model: keras.Model) -> dict[str, str]:
        out = {}
        for layer in model.layers:
            if not layer.weights:
                continue
            for pattern, template in compiled:
                match = pattern.fullmatch(layer.name)
                if match:
                    out[layer.name] = expand(match, template)
                    break
        return out

    return names


def identity(model: keras.Model) -> dict[str, str]:
    return {layer.name: layer.name for layer in model.layers if layer.weights}


@dataclasses.dataclass(frozen=True)
class Reference:
    """How one reference implementation names and configures a family.

    Attributes:
        names: our layer name -> reference module (torch) or layer (Keras) name.
        bn_epsilon: the reference's BatchNormalization epsilon, or ``None``.
        head: reference names of the classifier, ignored when our model has no top.
        check: returns why the model's options differ from the reference, or ``None``.
        flatten: ``"chw"`` when the reference flattens channels first (torch).
    """

    names: NameMap = identity
    bn_epsilon: float | None = None
    head: Sequence[str] = ()
    check: Check | None = None
    flatten: str = "hwc"


def _bottleneck_stride(model: keras.Model) -> str | None:
    """Which conv of the first strided bottleneck strides: "1x1", "3x3" or None (basic blocks)."""
    try:
        first = model.get_layer("conv3_block1_1_conv")
        model.get_layer("conv3_block1_3_conv")
    except ValueError:
        return None
    return "1x1" if tuple(first.strides) == (2, 2) else "3x3"


def _resnet_check(downsample: str, conv_bias: bool, source: str) -> Check:
    def check(model: keras.Model) -> str | None:
        actual = _bottleneck_stride(model)
        if actual not in (None, downsample):
            return (
                f"{source}'s bottleneck strides its {downsample} convolution, this model its {actual} one: "
                f"build it with downsample={downsample!r}"
            )
        try:
            bias = model.get_layer("conv1_conv").use_bias
        except ValueError:
            return None
        if bias != conv_bias:
            return f"{source}'s convolutions {'have' if conv_bias else 'have no'} biases: build with conv_bias={conv_bias}"
        return None

    return check


def _vgg_torch_names(model: keras.Model) -> dict[str, str]:
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


_RESNET_TORCH = rules(
    ("conv1_conv", "conv1"),
    ("conv1_bn", "bn1"),
    (r"conv(\d)_block(\d+)_0_conv", "layer{1-1}.{2-1}.downsample.0"),
    (r"conv(\d)_block(\d+)_0_bn", "layer{1-1}.{2-1}.downsample.1"),
    (r"conv(\d)_block(\d+)_(\d)_conv", "layer{1-1}.{2-1}.conv{3}"),
    (r"conv(\d)_block(\d+)_(\d)_bn", "layer{1-1}.{2-1}.bn{3}"),
    ("predictions", "fc"),
)
RESNET = {
    "torchvision": Reference(
        _RESNET_TORCH, bn_epsilon=1e-5, head=("fc",), check=_resnet_check("3x3", False, "torchvision")
    ),
    # keras.applications' ResNet50/101/152 use our layer names.
    "keras": Reference(
        bn_epsilon=1.001e-5, head=("predictions",), check=_resnet_check("1x1", True, "keras.applications")
    ),
}

FAMILIES: dict[str, dict[str, Reference]] = {
    "AlexNet": {
        "torchvision": Reference(
            rules(
                (r"conv1", "features.0"),
                (r"conv2", "features.3"),
                (r"conv3", "features.6"),
                (r"conv4", "features.8"),
                (r"conv5", "features.10"),
                (r"fc1", "classifier.1"),
                (r"fc2", "classifier.4"),
                (r"predictions", "classifier.6"),
            ),
            head=("classifier",),
            flatten="chw",
        )
    },
    "VGG": {
        "torchvision": Reference(_vgg_torch_names, bn_epsilon=1e-5, head=("classifier",), flatten="chw"),
        "keras": Reference(head=("fc1", "fc2", "predictions")),
    },
    "ResNet": RESNET,
    # Same core and layer names as ResNet; torchvision builds them from its ResNet class.
    "ResNeXt": {"torchvision": RESNET["torchvision"]},
    "WideResNet": {"torchvision": RESNET["torchvision"]},
}


def reference(family: str, kind: str) -> Reference | None:
    """The reference ``kind`` of ``family``, or ``None`` if we have no table for it."""
    return FAMILIES.get(family, {}).get(kind)
