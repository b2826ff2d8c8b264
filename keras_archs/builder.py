"""The one builder every family goes through.

A family describes its network as two pure functions on Keras tensors:
``features(x) -> x`` (the convolutional trunk) and optionally
``top(x, classes, classifier_activation) -> x`` (the paper's classifier; the
default is global average pooling plus a dense layer). :func:`build_classifier`
owns everything else, identically for every family: input validation and
creation, the keras.applications ``include_top`` / ``pooling`` semantics and
auxiliary outputs. Weights are loaded afterwards by the public builder
(:mod:`keras_archs.registry`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping

import keras

Tensor = keras.KerasTensor
FeaturesFn = Callable[[Tensor], "Tensor | tuple[Tensor, Mapping[str, Tensor]]"]
TopFn = Callable[[Tensor, int, "str | Callable | None"], Tensor]

_POOLING = (None, "avg", "max")
# 20,000 overflowed the C stack on the 8 MiB main-thread stack; 10,000 leaves room.
DEEP_GRAPH_RECURSION_LIMIT = 10_000


@contextlib.contextmanager
def deep_graphs(limit: int = DEEP_GRAPH_RECURSION_LIMIT) -> Iterator[None]:
    """Raise Python's recursion limit to at least ``limit`` inside the block, then restore it.

    Keras assembles a functional model (``keras.Model(inputs, outputs)``, and so also
    ``keras.saving.load_model`` and ``keras.models.clone_model``) by a recursive walk
    from the outputs whose depth grows with the graph's: ResNet-1202 needs about 1,200
    frames, past Python's default limit of 1,000. Calling, training and saving a built
    model do not recurse.

    Example:
        >>> with deep_graphs():
        ...     model = keras.saving.load_model("resnet1202.keras")
    """
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def dense_top(x: Tensor, classes: int, classifier_activation, *, dropout: float = 0.0) -> Tensor:
    """Global average pooling, optional dropout, then the ``predictions`` dense layer."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def conv_top(x: Tensor, classes: int, classifier_activation) -> Tensor:
    """For nets whose last convolution already has ``classes`` maps (NiN, SqueezeNet):
    global average pooling, then the classifier activation as ``predictions``."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Activation(classifier_activation or "linear", name="predictions")(x)


def resolve_input_shape(
    input_shape: tuple[int | None, ...] | None,
    *,
    default_size: int,
    min_size: int,
    channels: int,
    include_top: bool,
    model_name: str,
) -> tuple[int | None, int | None, int]:
    """The (height, width, channels) of the model input, validated.

    As in keras.applications: with ``include_top`` and no ``input_shape`` the
    default size is used; without a top the spatial size is left open.
    """
    if input_shape is None:
        size = default_size if include_top else None
        return (size, size, channels)
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"{model_name}: input_shape must be (height, width, channels) in channels-last "
            f"order, got {input_shape!r}."
        )
    height, width, chans = shape
    if chans is None or chans < 1:
        raise ValueError(f"{model_name}: the channel count of input_shape must be known, got {shape}.")
    for label, dim in (("height", height), ("width", width)):
        if dim is not None and dim < min_size:
            raise ValueError(
                f"{model_name} needs inputs of at least {min_size}x{min_size} pixels; got "
                f"{label} {dim} in input_shape={shape}. Resize the images or pass "
                f"input_shape=({min_size}, {min_size}, {chans}) or larger."
            )
    return (height, width, chans)


def build_classifier(
    *,
    name: str,
    features: FeaturesFn,
    top: TopFn | None = None,
    include_top: bool = True,
    input_tensor: Tensor | None = None,
    input_shape: tuple[int | None, ...] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable | None = "softmax",
    default_size: int = 224,
    min_size: int = 32,
    channels: int = 3,
) -> keras.Model:
    """Assemble a classifier from a family's ``features`` and ``top`` functions.

    Args:
        name: the Keras model name.
        features: builds the trunk; may return ``(x, aux_outputs)`` where
            ``aux_outputs`` maps names (``"aux1"``, ...) to auxiliary classifier
            outputs. Those become extra named outputs when ``include_top``.
        top: builds the classifier from the trunk output; default :func:`dense_top`.
        include_top, input_tensor, input_shape, pooling, classes,
            classifier_activation: as in ``keras.applications``.
        default_size, min_size, channels: the family's input contract.

    Returns:
        A functional ``keras.Model``. With auxiliary outputs its outputs are a dict
        ``{"main": ..., "aux1": ..., ...}``.
    """
    if pooling not in _POOLING:
        raise ValueError(f"{name}: pooling must be one of {_POOLING}, got {pooling!r}.")
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"{name}: classes must be a positive integer, got {classes!r}.")

    if input_tensor is None:
        shape = resolve_input_shape(
            input_shape,
            default_size=default_size,
            min_size=min_size,
            channels=channels,
            include_top=include_top,
            model_name=name,
        )
        inputs = keras.Input(shape=shape, name="input")
        x = inputs
    else:
        if not keras.backend.is_keras_tensor(input_tensor):
            inputs = keras.Input(tensor=input_tensor, name="input")
        else:
            inputs = input_tensor
        resolve_input_shape(
            tuple(inputs.shape[1:]),
            default_size=default_size,
            min_size=min_size,
            channels=channels,
            include_top=include_top,
            model_name=name,
        )
        x = inputs

    trunk = features(x)
    x, aux = trunk if isinstance(trunk, tuple) else (trunk, {})

    if include_top:
        x = (top or dense_top)(x, classes, classifier_activation)
        outputs = {"main": x, **aux} if aux else x
    else:
        if pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
        outputs = x

    with deep_graphs():
        return keras.Model(inputs, outputs, name=name)
