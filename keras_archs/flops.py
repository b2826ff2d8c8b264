"""Multiply-accumulates (MACs) of one image, counted from a model's graph and shapes.

The convention is torchvision's: the ``_ops`` figure of its weights' metadata (shown
as "GFLOPS" in its documentation) is the number of multiply-accumulates, in billions,
of the convolutions and matrix multiplications of one image at the weights' evaluation
crop size (``weights.transforms().crop_size``: 224 for most, 299 for Inception-v3, 240
to 600 for EfficientNet-B1 to B7). It was computed with PyTorch's FLOP counter, which
counts ``2 * MACs`` for exactly those operations, halved. So:

* counted: every convolution (``Conv1D/2D/3D``, grouped ones through their kernel
  shape, ``DepthwiseConv2D``, ``SeparableConv2D``, ``Conv2DTranspose``), every dense
  layer, and LeNet-5's partially connected C3: ``output positions x multiplications per
  position`` = ``positions x kernel size`` (height x width x input channels per group x
  filters);
* not counted: biases, batch/group normalisation, activations, pooling (average
  pooling's additions included), additions and concatenations, squeeze-and-excitation
  scaling, LRN, and input preprocessing layers.

A layer with a multi-dimensional weight this module does not know is an error rather
than a silent zero. Nothing is computed: shapes come from the graph (or, for another
input size, from each layer's ``compute_output_spec``), so even the largest networks
are counted in well under a second once built (build them inside
``keras.StatelessScope()`` to skip allocating weight values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras

from keras_archs.features import graph_nodes, trace_shapes
from keras_archs.layers import ConnectionTableConv2D

Shape = tuple[int | None, ...]

_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.DepthwiseConv2D)
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)


def _positions(shape: Shape, layer_name: str) -> int:
    """The number of spatial positions of a channels-last ``(batch, *spatial, channels)`` shape."""
    spatial = shape[1:-1]
    if any(d is None for d in spatial):
        raise ValueError(
            f"The input size is unknown at layer {layer_name!r} (shape {shape}): pass input_shape=(height, width, "
            "channels) to count_macs, or build the model with a fixed input_shape."
        )
    return math.prod(spatial)


def _size(weight: Any) -> int:
    return math.prod(int(d) for d in weight.shape)


def _layer_macs(layer: keras.layers.Layer, inputs: Sequence[Shape], outputs: Sequence[Shape]) -> int:
    """MACs of one call of ``layer`` with these input and output shapes (batch of one)."""
    if isinstance(layer, keras.Model):
        return count_macs(layer, input_shape=inputs[0][1:])
    if isinstance(layer, keras.layers.SeparableConv2D):
        positions = _positions(outputs[0], layer.name)
        return positions * (_size(layer.depthwise_kernel) + _size(layer.pointwise_kernel))
    if isinstance(layer, _TRANSPOSED):  # each input position scatters the whole kernel
        return _positions(inputs[0], layer.name) * _size(layer.kernel)
    if isinstance(layer, _CONVOLUTIONS):
        return _positions(outputs[0], layer.name) * _size(layer.kernel)
    if isinstance(layer, keras.layers.Dense):
        if inputs[0][-1] != layer.kernel.shape[0]:
            raise ValueError(
                f"Layer {layer.name!r} takes {layer.kernel.shape[0]} features but gets shape {inputs[0]} at this "
                "input size: its model is sized for another input (a Flatten head)."
            )
        return math.prod(d for d in inputs[0][1:-1]) * _size(layer.kernel)
    if isinstance(layer, ConnectionTableConv2D):
        return _positions(outputs[0], layer.name) * sum(_size(kernel) for kernel in layer.kernels)
    kernels = [w.path for w in layer.weights if len(w.shape) >= 2]
    if kernels:
        raise NotImplementedError(
            f"count_macs does not know layer {layer.name!r} of type {type(layer).__name__} "
            f"(multi-dimensional weights {kernels})."
        )
    return 0


def layer_macs(model: keras.Model, input_shape: Sequence[int | None] | None = None) -> dict[str, int]:
    """MACs of one image per layer of ``model`` (layers that count nothing are left out).

    Args:
        model: a functional Keras model.
        input_shape: ``(height, width, channels)`` to count at; default the model's own
            input shape, which must then be fully known.

    Example:
        >>> import keras_archs
        >>> macs = layer_macs(keras_archs.get_model("resnet18"))
        >>> macs["conv1_conv"]  # 112 * 112 positions x 7 * 7 * 3 * 64
        118013952
    """
    if len(model.inputs) != 1:
        raise ValueError(f"{model.name}: count_macs expects a model with one input, got {len(model.inputs)}.")
    nodes = graph_nodes(model.inputs, model.outputs)
    own = tuple(model.inputs[0].shape[1:])
    if input_shape is None or tuple(input_shape) == own:
        shapes = {id(t): tuple(t.shape) for node in nodes for t in (*node.input_tensors, *node.outputs)}
    else:
        shapes = trace_shapes(model.inputs, nodes, tuple(input_shape))
    counts: dict[str, int] = {}
    for node in nodes:
        tensors = (*node.input_tensors, *node.outputs)
        if any(id(t) not in shapes for t in tensors):
            raise ValueError(
                f"{model.name}: layer {node.operation.name!r} cannot take an input of shape {tuple(input_shape or own)}."
            )
        macs = _layer_macs(
            node.operation,
            [(1, *shapes[id(t)][1:]) for t in node.input_tensors],
            [(1, *shapes[id(t)][1:]) for t in node.outputs],
        )
        if macs:
            counts[node.operation.name] = counts.get(node.operation.name, 0) + macs
    return counts


def count_macs(model: keras.Model, input_shape: Sequence[int | None] | None = None) -> int:
    """Multiply-accumulates of one image through ``model``, in torchvision's convention.

    Convolutions (grouped and depthwise included) and dense layers count their kernel
    multiplications at every output position; biases, normalisation, activations,
    pooling and elementwise operations count nothing (see the module docstring). Every
    output is counted, auxiliary classifiers included when the model has them.

    Args:
        model: a functional Keras model with one image input (channels last).
        input_shape: ``(height, width, channels)`` to count at; default the model's own
            input shape (a model built with an open size needs it).

    Returns:
        The number of MACs (multiply by 2 for FLOPs, divide by 1e9 for torchvision's
        ``_ops`` "GFLOPS").

    Example:
        >>> import keras, keras_archs
        >>> with keras.StatelessScope():  # shapes only, no weight values
        ...     model = keras_archs.get_model("resnet50", downsample="3x3")
        >>> count_macs(model)  # torchvision's ResNet50_Weights _ops: 4.089
        4089184256
    """
    return sum(layer_macs(model, input_shape).values())
