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
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np

from keras_archs.imagenet import IMAGENET_STD

NameMap = Callable[[keras.Model], dict[str, str]]
Check = Callable[[keras.Model], "str | None"]
# {layer name: [(variable name, array), ...]} of a Keras file, as keras_reader returns it.
KerasLayers = dict[str, list[tuple[str, np.ndarray]]]

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
        aux: reference names of auxiliary heads; their tensors are ignored when our
            model is built without them (official files carry them).
        rename_keys: torch key -> current key (old checkpoint spellings), or ``None``.
        by_order: Keras files whose layer names are auto-generated (``conv2d_7``):
            match our weighted layers to the file's in order, when the names differ.
        fix_keras: adjusts a Keras file's values before matching, or ``None``.
    """

    names: NameMap = identity
    bn_epsilon: float | Mapping[str, float] | None = None
    head: Sequence[str] = ()
    check: Check | None = None
    flatten: str = "hwc"
    aux: Sequence[str] = ()
    rename_keys: Callable[[str], str] | None = None
    by_order: bool = False
    fix_keras: Callable[[KerasLayers], KerasLayers] | None = None

    def epsilon(self, arch: str | None) -> float | None:
        """The BatchNormalization epsilon for the variant ``arch`` (``"*"``: the others)."""
        if isinstance(self.bn_epsilon, Mapping):
            return self.bn_epsilon.get(arch, self.bn_epsilon.get("*"))
        return self.bn_epsilon


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

# SqueezeNet: torchvision's features is an indexed Sequential whose indices differ
# between 1.0 (7x7 conv1) and 1.1 (3x3 conv1); the squeezenet module lists them.
def _squeezenet_torch_names(model: keras.Model) -> dict[str, str]:
    from keras_archs.models.squeezenet import TORCHVISION_FEATURE_INDEX

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


def _squeezenet_check(model: keras.Model) -> str | None:
    if any("bypass" in layer.name for layer in model.layers):
        return "torchvision's SqueezeNet has no bypass connections: build it with bypass='none'"
    return None


_DENSENET_OLD_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$")


def _densenet_key(key: str) -> str:
    # torchvision's official DenseNet files spell "norm.1.weight" (its loader renames them to "norm1.weight").
    return _DENSENET_OLD_KEY.sub(r"\1\2", key)


_DENSENET_TORCH = rules(
    ("conv1_conv", "features.conv0"),
    ("conv1_bn", "features.norm0"),
    (r"conv(\d)_block(\d+)_0_bn", "features.denseblock{1-1}.denselayer{2}.norm1"),
    (r"conv(\d)_block(\d+)_1_conv", "features.denseblock{1-1}.denselayer{2}.conv1"),
    (r"conv(\d)_block(\d+)_1_bn", "features.denseblock{1-1}.denselayer{2}.norm2"),
    (r"conv(\d)_block(\d+)_2_conv", "features.denseblock{1-1}.denselayer{2}.conv2"),
    (r"pool(\d)_bn", "features.transition{1-1}.norm"),
    (r"pool(\d)_conv", "features.transition{1-1}.conv"),
    ("bn", "features.norm5"),
    ("predictions", "classifier"),
)

_MNASNET_TORCH = rules(
    ("stem_conv", "layers.0"),
    ("stem_bn", "layers.1"),
    ("sep_dwconv", "layers.3"),
    ("sep_dw_bn", "layers.4"),
    ("sep_pw_conv", "layers.6"),
    ("sep_pw_bn", "layers.7"),
    (r"stack(\d)_block(\d+)_expand_conv", "layers.{1+7}.{2-1}.layers.0"),
    (r"stack(\d)_block(\d+)_expand_bn", "layers.{1+7}.{2-1}.layers.1"),
    (r"stack(\d)_block(\d+)_dwconv", "layers.{1+7}.{2-1}.layers.3"),
    (r"stack(\d)_block(\d+)_dw_bn", "layers.{1+7}.{2-1}.layers.4"),
    (r"stack(\d)_block(\d+)_project_conv", "layers.{1+7}.{2-1}.layers.6"),
    (r"stack(\d)_block(\d+)_project_bn", "layers.{1+7}.{2-1}.layers.7"),
    ("head_conv", "layers.14"),
    ("head_bn", "layers.15"),
    ("predictions", "classifier.1"),
)

_SHUFFLENET_TORCH = rules(
    (r"(conv[15])_conv", "{1}.0"),
    (r"(conv[15])_bn", "{1}.1"),
    ("predictions", "fc"),
    (r"stage(\d)_block(\d+)_branch1_dwconv", "stage{1}.{2-1}.branch1.0"),
    (r"stage(\d)_block(\d+)_branch1_dw_bn", "stage{1}.{2-1}.branch1.1"),
    (r"stage(\d)_block(\d+)_branch1_1_conv", "stage{1}.{2-1}.branch1.2"),
    (r"stage(\d)_block(\d+)_branch1_1_bn", "stage{1}.{2-1}.branch1.3"),
    (r"stage(\d)_block(\d+)_branch2_1_conv", "stage{1}.{2-1}.branch2.0"),
    (r"stage(\d)_block(\d+)_branch2_1_bn", "stage{1}.{2-1}.branch2.1"),
    (r"stage(\d)_block(\d+)_branch2_dwconv", "stage{1}.{2-1}.branch2.3"),
    (r"stage(\d)_block(\d+)_branch2_dw_bn", "stage{1}.{2-1}.branch2.4"),
    (r"stage(\d)_block(\d+)_branch2_2_conv", "stage{1}.{2-1}.branch2.5"),
    (r"stage(\d)_block(\d+)_branch2_2_bn", "stage{1}.{2-1}.branch2.6"),
)

# torchvision GoogLeNet / Inception-v3: our names are its module paths with "." -> "_".
_GOOGLENET_TORCH = rules(
    (r"(conv\d)_(conv|bn)", "{1}.{2}"),
    (r"(inception\d[a-e])_(branch1)_(conv|bn)", "{1}.{2}.{3}"),
    (r"(inception\d[a-e])_(branch\d)_(\d)_(conv|bn)", "{1}.{2}.{3}.{4}"),
    (r"(aux\d)_conv_(conv|bn)", "{1}.conv.{2}"),
    (r"(aux\d)_(fc\d)", "{1}.{2}"),
    ("predictions", "fc"),
)


def _googlenet_check(model: keras.Model) -> str | None:
    if not any(layer.name == "conv1_bn" for layer in model.layers):
        return "torchvision's GoogLeNet has batch normalisation: use googlenet_bn (layout='torchvision')"
    return None


_INCEPTION_V3_TORCH = rules(
    (r"(Conv2d_\d[a-z]_\dx\d)_(conv|bn)", "{1}.{2}"),
    (r"(Mixed_\d[a-e])_(branch\w+?)_(conv|bn)", "{1}.{2}.{3}"),
    (r"AuxLogits_(conv\d)_(conv|bn)", "AuxLogits.{1}.{2}"),
    ("AuxLogits_fc", "AuxLogits.fc"),
    ("predictions", "fc"),
)


def _inception_v3_check(bn_scale: bool, count_include_pad: bool, source: str) -> Check:
    def check(model: keras.Model) -> str | None:
        scales = {layer.scale for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
        include_pad = any(layer.name.endswith("_avgpool_pad") for layer in model.layers)
        if scales != {bn_scale} or include_pad != count_include_pad:
            return f"{source}'s Inception-v3 needs bn_scale={bn_scale}, count_include_pad={count_include_pad}"
        return None

    return check


_EFFICIENTNET_BLOCK = re.compile(r"(block\d[a-z])_(expand_conv|expand_bn|dwconv|bn|se_reduce|se_expand|project_conv|project_bn)")
# our part -> (torchvision step of the block without/with expansion, module in the step)
_EFFICIENTNET_PARTS = {
    "expand_conv": (None, 0, "0"),
    "expand_bn": (None, 0, "1"),
    "dwconv": (0, 1, "0"),
    "bn": (0, 1, "1"),
    "se_reduce": (1, 2, "fc1"),
    "se_expand": (1, 2, "fc2"),
    "project_conv": (2, 3, "0"),
    "project_bn": (2, 3, "1"),
}


def _efficientnet_torch_names(model: keras.Model) -> dict[str, str]:
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
        match = _EFFICIENTNET_BLOCK.fullmatch(name)
        if match:
            block, part = match.groups()
            plain, expanded, module = _EFFICIENTNET_PARTS[part]
            step = expanded if f"{block}_expand_conv" in names else plain
            out[name] = f"features.{block[5]}.{ord(block[6]) - ord('a')}.block.{step}.{module}"
    return out


def _efficientnet_check(padding: str, preprocessing: bool, source: str, epsilons: str) -> Check:
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



def _keras_efficientnet_variance(layers: KerasLayers) -> KerasLayers:
    """keras.applications' official EfficientNet files store the ImageNet *std* as the
    Normalization layer's variance (keras then divides by sqrt(std) once more with a
    Rescaling layer added only for weights="imagenet"; TF issue 49930). Our model has no
    such layer, so such a variance is squared: (x - mean) / sqrt(std**2) = (x - mean) / std."""
    out = dict(layers)
    for name, values in layers.items():
        if re.fullmatch(r"normalization(_\d+)?", name):
            out[name] = [
                (var, value**2 if var == "variance" and value.shape == (3,) and np.allclose(value, IMAGENET_STD, atol=1e-4) else value)
                for var, value in values
            ]
    return out


def _keras_inception_resnet_check(model: keras.Model) -> str | None:
    """keras.applications' InceptionResNetV2: BN without scale, residuals scaled by
    0.17/0.1/0.2 per stage, the last block8 linear (scale 1, no ReLU)."""
    from keras_archs.models.inception_v4 import DEFAULT_RESIDUAL_SCALE

    layers = {layer.name: layer for layer in model.layers}
    scales = {layer.scale for layer in layers.values() if isinstance(layer, keras.layers.BatchNormalization)}
    blocks = sorted((n for n in layers if re.fullmatch(r"block8_\d+_scale", n)), key=lambda n: int(n.split("_")[1]))
    wanted = dict(zip(("block35", "block17", "block8"), DEFAULT_RESIDUAL_SCALE))
    residual_ok = all(
        np.isclose(layer.scale, wanted[name.split("_")[0]])
        for name, layer in layers.items()
        if re.fullmatch(r"block(35|17|8)_\d+_scale", name) and (not blocks or name != blocks[-1])
    )
    last_linear = bool(blocks) and np.isclose(layers[blocks[-1]].scale, 1.0) and f"{blocks[-1][:-6]}_relu" not in layers
    if scales != {False} or not residual_ok or not last_linear:
        return (
            "keras.applications' InceptionResNetV2 needs layout='keras', bn_scale=False, "
            f"residual_scale={DEFAULT_RESIDUAL_SCALE} and last_block_linear=True"
        )
    return None


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
    "SqueezeNet": {
        "torchvision": Reference(_squeezenet_torch_names, head=("classifier",), check=_squeezenet_check),
    },
    "DenseNet": {
        "torchvision": Reference(_DENSENET_TORCH, bn_epsilon=1e-5, head=("classifier",), rename_keys=_densenet_key),
        # keras.applications' DenseNet121/169/201 use our layer names (its Keras 2 files: "conv1/conv").
        "keras": Reference(bn_epsilon=1.001e-5, head=("predictions",)),
    },
    "MnasNet": {"torchvision": Reference(_MNASNET_TORCH, bn_epsilon=1e-5, head=("classifier",))},
    "ShuffleNetV2": {"torchvision": Reference(_SHUFFLENET_TORCH, bn_epsilon=1e-5, head=("fc",))},
    "GoogLeNet": {
        "torchvision": Reference(
            _GOOGLENET_TORCH, bn_epsilon=1e-3, head=("fc",), check=_googlenet_check, flatten="chw", aux=("aux1", "aux2")
        ),
    },
    "Inception-v3": {
        "torchvision": Reference(
            _INCEPTION_V3_TORCH,
            bn_epsilon=1e-3,
            head=("fc",),
            check=_inception_v3_check(True, True, "torchvision"),
            aux=("AuxLogits",),
        ),
        # keras.applications' InceptionV3 names its layers conv2d_N / batch_normalization_N in
        # creation order, which is ours: matched by order.
        "keras": Reference(
            bn_epsilon=1e-3,
            head=("predictions",),
            check=_inception_v3_check(False, False, "keras.applications"),
            by_order=True,
        ),
    },
    "Inception-ResNet": {
        # keras.applications' InceptionResNetV2 names its branch convs conv2d_N /
        # batch_normalization_N (N depends on what the process built before) and its block
        # convs like ours; its weighted layers come in our order: matched by order.
        "keras": Reference(
            bn_epsilon=1e-3, head=("predictions",), check=_keras_inception_resnet_check, by_order=True
        ),
    },
    "EfficientNet": {
        # torchvision's B0-B4 (rwightman's weights) use BN epsilon 1e-5, B5-B7 (ported from TF) 1e-3.
        "torchvision": Reference(
            _efficientnet_torch_names,
            bn_epsilon={"efficientnet_b5": 1e-3, "efficientnet_b6": 1e-3, "efficientnet_b7": 1e-3, "*": 1e-5},
            head=("classifier",),
            check=_efficientnet_check("torch", False, "torchvision", "1e-5 for B0-B4, 1e-3 for B5-B7"),
        ),
        # keras.applications' EfficientNetB0-B7 use our layer names.
        "keras": Reference(
            bn_epsilon=1e-3,
            head=("predictions",),
            check=_efficientnet_check("keras", True, "keras.applications", "1e-3"),
            fix_keras=_keras_efficientnet_variance,
        ),
    },
}


def reference(family: str, kind: str) -> Reference | None:
    """The reference ``kind`` of ``family``, or ``None`` if we have no table for it."""
    return FAMILIES.get(family, {}).get(kind)
