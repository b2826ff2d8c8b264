"""Multi-scale feature maps ("feature pyramids") of every network, by one graph rule.

Detection and segmentation heads read a backbone at several strides: ``P2`` is the
map at stride 4 (a quarter of the input's height and width), ``P3`` at 8, ``P4`` at 16,
``P5`` at 32; in general ``P{k}`` has stride ``2**k``. timm calls this ``features_only``
and keras-hub ``pyramid_outputs``. Here no family has a table of layer names: one rule
reads every functional model's graph.

**The rule.** ``P{k}`` is the output of the *last* layer, in the order the graph
computes them, that

1. is a *cut point* of the graph: every path from the input to the output passes
   through it (in a topological order no connection jumps over it). A residual
   block's output (its final add/ReLU), a concatenation that closes an Inception or
   dense block, or a plain layer of a chain are cut points; a convolution inside a
   branch is not, since the shortcut or the other branches bypass it;
2. has stride ``2**k``: ``round(log2(input size / map size)) == k`` in height and
   width, measured symbolically (no computation) at two large inputs, 512 and 1024
   pixels, where the shrinking of "valid" convolutions no longer blurs the ratio
   (Inception-v3's 35x35 map at 299 pixels is stride 8). A layer whose output size
   does not follow the input's (adaptive pooling to a fixed grid, in a head) has no
   stride;
3. is not a zero-padding layer (a padded copy of the previous map, made for the next
   layer's window), and follows at least one layer with a kernel (so neither the
   input nor an input-scaling layer such as EfficientNet's ``Normalization`` is a
   feature).

So a level is the last map a network computes at its stride, whatever the family
calls its blocks: in ResNet a stage's last block output, in VGG the ReLU before the
pooling, in Inception a stage's last concatenation. Built with ``include_top=False`` (as
:func:`get_feature_extractor` does) the deepest level is the last map of the trunk,
the map ``include_top=False`` returns (EfficientNet's and MnasNet's 1x1 head
convolution of 1280 maps included, as keras.applications keeps it).

Where the rule lands, per family (torchvision's ``create_feature_extractor`` node that
computes the same tensor, checked numerically on shared weights in
``tests/test_features.py``):

========================  ==========================================================
ResNet/ResNeXt/WRN        P1 ``relu`` (stem), P2-P5 ``layer1``-``layer4``
DenseNet                  P1 ``features.relu0``, P2-P4 ``features.transition{1,2,3}.conv``
                          (the transition's 1x1 convolution, before its pooling),
                          P5 ``relu`` (after ``features.norm5``)
VGG-16                    P0-P4 ``features.{3,8,15,22,29}`` (the ReLU before each
                          pooling), P5 ``features.30`` (pool5)
EfficientNet-B0           P1-P4 ``features.{2,3,4,6}.0.block.0``, P5 ``features.8``
MnasNet                   P1-P4 ``layers.{8,9,10,12}.0.layers.2``, P5 ``layers.16``
ShuffleNet-v2             P1 ``conv1``, P2 ``maxpool``, P3-P4 ``stage2``-``stage3``,
                          P5 ``conv5``
SqueezeNet 1.0 / 1.1      P1 ``features.1``, P2-P4 ``features.{5,10,12}`` /
                          ``features.{4,7,12}``; no P5 (stride 16 at most)
GoogLeNet (BN)            P1 ``conv1``, P2 ``conv3``, P3 ``inception3b``,
                          P4 ``inception4e``, P5 ``inception5b``
Inception-v3              P1 ``Conv2d_2b_3x3``, P2 ``Conv2d_4a_3x3``, P3 ``Mixed_5d``,
                          P4 ``Mixed_6e``, P5 ``Mixed_7c``
AlexNet (torchvision's)   P2 ``features.1``, P3 ``features.4``, P4 ``features.11``,
                          P5 ``features.12``
========================  ==========================================================

In inverted-residual networks (EfficientNet, MnasNet) the last computation at a stride
is the 1x1 expansion (convolution, BN, activation) of the next stage's first block, whose
depthwise convolution strides: that expanded map is the level (timm's
``feature_location="expansion"``, the layer torchvision's SSDlite taps), not the narrower
block output before it (timm's default, ``features.{1,2,3,5}``). Likewise DenseNet's
level is its transition's convolution and a pre-activation network's (BiT, the CIFAR Wide
ResNets) is the next stage's shared normalisation-ReLU: the last map computed at that
stride. CIFAR networks (strides 1 to 4) have ``P0``-``P2``. LeNet-5 has ``P0``-``P2``
(C1, C3, C5) at the nominal strides of its subsampling layers, which its 32-pixel input
shrinks to 28, 10 and 1 pixels. Asking for a level a network does not have is an error
that lists the levels it has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
from keras import tree

from keras_archs.registry import get_spec

Tensor = keras.KerasTensor

DEFAULT_LEVELS = ("P2", "P3", "P4", "P5")
# The two input sizes at which strides are measured (symbolically: shapes only).
PROBE_SIZES = (512, 1024)
# Layers that only pad their input for the next layer's window: never a feature.
_PADDING_LAYERS = (keras.layers.ZeroPadding2D,)


@dataclass(frozen=True)
class FeatureLevel:
    """One level of a network's pyramid.

    Attributes:
        name: ``"P{k}"``.
        stride: ``2**k``, the nominal ratio of the input size to the map size.
        channels: number of channels of the map.
        layer: name of the layer whose output the level is.
        tensor: that output, a tensor of the model's graph.
    """

    name: str
    stride: int
    channels: int
    layer: str
    tensor: Tensor


# ----------------------------------------------------------------------------
# Graph walking (shared with keras_archs.flops). Keras 3 keeps a functional graph in
# each tensor's ``_keras_history`` and each layer's ``_inbound_nodes`` (what
# ``keras.Model`` itself reads); these helpers use only that and ``Node``'s
# ``input_tensors``, ``outputs`` and ``arguments.fill_in``.
# ----------------------------------------------------------------------------


def _producer(tensor: Tensor) -> Any:
    """The node (one call of a layer) that computed ``tensor``."""
    operation, node_index, _ = tensor._keras_history
    return operation._inbound_nodes[node_index]


def graph_nodes(inputs: Sequence[Tensor], outputs: Sequence[Tensor]) -> list[Any]:
    """The nodes (layer calls) between ``inputs`` and ``outputs``, in a topological order.

    Iterative, so networks thousands of layers deep need no recursion. Tensors in
    ``inputs`` are sources even when they are not ``keras.Input`` tensors (a model
    built on an ``input_tensor`` computed by other layers).

    Example:
        >>> import keras_archs
        >>> model = keras_archs.get_model("resnet18", include_top=False)
        >>> nodes = graph_nodes(model.inputs, model.outputs)
        >>> nodes[-1].operation.name
        'conv5_block2_out'
    """
    sources = {id(t) for t in inputs}

    def parents(node: Any) -> list[Any]:
        return [_producer(t) for t in node.input_tensors if id(t) not in sources]

    visited: set[int] = set()
    order: list[Any] = []
    for output in outputs:
        if id(output) in sources:
            continue
        root = _producer(output)
        if id(root) in visited:
            continue
        visited.add(id(root))
        stack = [(root, iter(parents(root)))]
        while stack:
            node, pending = stack[-1]
            for parent in pending:
                if id(parent) not in visited:
                    visited.add(id(parent))
                    stack.append((parent, iter(parents(parent))))
                    break
            else:
                stack.pop()
                if not node.is_input:
                    order.append(node)
    return order


def trace_shapes(
    inputs: Sequence[Tensor], nodes: Sequence[Any], input_shape: Sequence[int | None]
) -> dict[int, tuple[int | None, ...]]:
    """The shape of every tensor of ``nodes`` when the (single) input has ``input_shape``.

    Shapes only (each layer's ``compute_output_spec``), so any size is cheap. Keys are
    ``id(tensor)`` of the model's own tensors; a layer that cannot take the new shape
    (a dense layer sized for another input) leaves its outputs, and what depends on
    them, out.

    Example:
        >>> import keras_archs
        >>> model = keras_archs.get_model("resnet18", include_top=False)
        >>> shapes = trace_shapes(model.inputs, graph_nodes(model.inputs, model.outputs), (64, 64, 3))
        >>> shapes[id(model.outputs[0])]
        (None, 2, 2, 512)
    """
    if len(inputs) != 1:
        raise ValueError(f"Expected a model with one image input, got {len(inputs)} inputs.")
    values: dict[int, Any] = {id(inputs[0]): keras.KerasTensor((None, *input_shape), dtype=inputs[0].dtype)}
    for node in nodes:
        if any(id(t) not in values for t in node.input_tensors):
            continue
        args, kwargs = node.arguments.fill_in(values)
        try:
            outputs = node.operation.compute_output_spec(*args, **kwargs)
        except Exception:  # a layer fixed to another size: its outputs stay unknown
            continue
        for tensor, spec in zip(node.outputs, tree.flatten(outputs)):
            values[id(tensor)] = spec
    return {key: tuple(spec.shape) for key, spec in values.items()}


def _main_output(model: keras.Model) -> Tensor:
    """The main output: the only one, ``"main"`` of a dict (auxiliary heads), else the first."""
    structure = model.output
    if isinstance(structure, dict):
        return structure["main"] if "main" in structure else tree.flatten(structure)[0]
    return tree.flatten(structure)[0]


def _cut_points(source: Tensor, nodes: Sequence[Any]) -> list[Tensor]:
    """The tensors every path from ``source`` to the last node's output passes through,
    in graph order: those no edge jumps over in the topological order of ``nodes``."""
    order: list[Tensor] = [source]
    position = {id(source): 0}
    for node in nodes:
        for tensor in node.outputs:
            position[id(tensor)] = len(order)
            order.append(tensor)
    reach = list(range(len(order)))  # farthest position each tensor feeds
    for node in nodes:
        last = max(position[id(t)] for t in node.outputs)
        for tensor in node.input_tensors:
            p = position[id(tensor)]
            reach[p] = max(reach[p], last)
    cuts, farthest = [], 0
    for p, tensor in enumerate(order):
        if farthest <= p:
            cuts.append(tensor)
        farthest = max(farthest, reach[p])
    return cuts


def _has_kernel(layer: Any) -> bool:
    """A layer with a multi-dimensional weight: a convolution or dense kernel (not a
    per-channel scale, bias or normalisation statistic)."""
    return any(len(w.shape) >= 2 for w in getattr(layer, "weights", ()))


def _level_of(shapes: Sequence[dict[int, tuple]], tensor: Tensor) -> int | None:
    """``k`` such that ``tensor``'s map is the input's size divided by ``2**k`` at every
    probe size, in height and width; ``None`` if there is no such ``k``."""
    found = set()
    for probe, table in zip(PROBE_SIZES, shapes):
        shape = table.get(id(tensor))
        if shape is None or len(shape) != 4 or shape[1] is None or shape[2] is None:
            return None
        for size in shape[1:3]:
            if size < 1:
                return None
            found.add(round(math.log2(probe / size)))
    return found.pop() if len(found) == 1 else None


def feature_levels(model: keras.Model) -> list[FeatureLevel]:
    """Every pyramid level of ``model`` by the module's rule, from the finest to the coarsest.

    Read from the graph of the model as built: for a backbone pass a model built with
    ``include_top=False``. Raises ``ValueError`` for a model with no level.

    Example:
        >>> import keras_archs
        >>> model = keras_archs.get_model("resnet50", include_top=False)
        >>> [(lv.name, lv.stride, lv.channels, lv.layer) for lv in feature_levels(model)][-1]
        ('P5', 32, 2048, 'conv5_block3_out')
    """
    if len(model.inputs) != 1:
        raise ValueError(f"{model.name}: feature pyramids need a model with one image input.")
    source, output = model.inputs[0], _main_output(model)
    if len(source.shape) != 4:
        raise ValueError(f"{model.name}: feature pyramids need an image input (batch, height, width, channels).")
    nodes = graph_nodes(model.inputs, [output])
    channels = source.shape[-1]
    shapes = [trace_shapes(model.inputs, nodes, (size, size, channels)) for size in PROBE_SIZES]

    learned: set[int] = set()  # tensors computed after at least one layer with a kernel
    for node in nodes:
        if _has_kernel(node.operation) or any(id(t) in learned for t in node.input_tensors):
            learned.update(id(t) for t in node.outputs)

    last: dict[int, Tensor] = {}
    for tensor in _cut_points(source, nodes):
        if (
            len(tensor.shape) != 4
            or id(tensor) not in learned
            or isinstance(_producer(tensor).operation, _PADDING_LAYERS)
        ):
            continue
        k = _level_of(shapes, tensor)
        if k is not None and k >= 0:
            last[k] = tensor
    if not last:
        raise ValueError(
            f"{model.name}: no feature map has a stride (a cut point of the graph whose "
            "size follows the input's); it has no pyramid levels."
        )
    return [
        FeatureLevel(f"P{k}", 2**k, int(t.shape[-1]), _producer(t).operation.name, t) for k, t in sorted(last.items())
    ]


def pyramid_outputs(model: keras.Model) -> dict[str, Tensor]:
    """The pyramid levels of ``model``: ``{"P1": tensor, "P2": ..., ...}``, finest first.

    Each level ``P{k}`` is the model's own tensor at stride ``2**k`` chosen by the
    module's rule (the last cut point of the graph at that stride), so
    ``keras.Model(model.inputs, pyramid_outputs(model))`` shares the model's weights.

    Example:
        >>> import keras_archs
        >>> model = keras_archs.get_model("resnet18", include_top=False, input_shape=(224, 224, 3))
        >>> {k: tuple(v.shape[1:]) for k, v in pyramid_outputs(model).items()}["P5"]
        (7, 7, 512)
    """
    return {level.name: level.tensor for level in feature_levels(model)}


def _normalise_levels(levels: Iterable[str | int]) -> list[str]:
    names = []
    for level in levels:
        if isinstance(level, int) and not isinstance(level, bool):
            level = f"P{level}"
        if not (isinstance(level, str) and level[:1] in "Pp" and level[1:].isdigit()):
            raise ValueError(f"Pyramid levels are named 'P<k>' (stride 2**k), e.g. 'P3'; got {level!r}.")
        names.append("P" + str(int(level[1:])))
    if not names:
        raise ValueError("Ask for at least one pyramid level.")
    if len(set(names)) != len(names):
        raise ValueError(f"Pyramid levels are repeated: {list(levels)}.")
    return names


def get_feature_extractor(
    arch_or_model: str | keras.Model,
    levels: Sequence[str | int] | None = DEFAULT_LEVELS,
    **build_kwargs: Any,
) -> keras.Model:
    """A model that returns a network's feature maps at several strides, as a dict.

    Args:
        arch_or_model: a registry name (the network is built with ``include_top=False``
            and ``build_kwargs``: ``weights``, ``input_shape``, family options) or an
            already built functional model, whose graph is read as it is.
        levels: the levels to return, ``"P{k}"`` for stride ``2**k`` (ints ``k`` work
            too); ``None`` returns every level the network has.
        **build_kwargs: builder arguments when ``arch_or_model`` is a name.

    Returns:
        A functional ``keras.Model`` sharing the network's layers and weights, whose
        output is ``{"P2": map, "P3": map, ...}`` (channels-last maps).

    Raises:
        ValueError: a level the network does not have (the message lists those it has),
            or ``include_top``/``pooling`` asked for a name.

    Example:
        >>> from keras_archs.features import get_feature_extractor
        >>> extractor = get_feature_extractor("resnet50", input_shape=(224, 224, 3))
        >>> {k: tuple(v.shape[1:]) for k, v in extractor.output.items()}
        {'P2': (56, 56, 256), 'P3': (28, 28, 512), 'P4': (14, 14, 1024), 'P5': (7, 7, 2048)}
    """
    if isinstance(arch_or_model, str):
        if build_kwargs.pop("include_top", False):
            raise ValueError("A feature extractor is built without the classifier: do not pass include_top=True.")
        if build_kwargs.get("pooling") is not None:
            raise ValueError("A feature extractor returns feature maps: do not pass pooling.")
        model = get_spec(arch_or_model).build(include_top=False, **build_kwargs)
    elif isinstance(arch_or_model, keras.Model):
        if build_kwargs:
            raise ValueError(f"build arguments {sorted(build_kwargs)} apply to a registry name, not to a built model.")
        model = arch_or_model
    else:
        raise TypeError(f"Expected a registry name or a keras.Model, got {type(arch_or_model).__name__}.")

    available = {level.name: level for level in feature_levels(model)}
    wanted = list(available) if levels is None else _normalise_levels(levels)
    missing = [name for name in wanted if name not in available]
    if missing:
        have = ", ".join(f"{lv.name} (stride {lv.stride}, {lv.channels} channels)" for lv in available.values())
        raise ValueError(f"{model.name} has no level {', '.join(missing)}; its levels are: {have}.")
    outputs = {name: available[name].tensor for name in sorted(wanted, key=lambda n: int(n[1:]))}
    return keras.Model(model.inputs[0], outputs, name=f"{model.name}_features")
