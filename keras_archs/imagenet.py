"""ImageNet inputs and labels, as ``keras.applications.imagenet_utils`` has them.

:func:`keras_archs.preprocess_input` turns RGB pixels in ``[0, 255]`` into what a
variant's reference ImageNet weights expect, using keras.applications' modes
(:func:`apply_mode`): ``"caffe"`` (RGB -> BGR, minus the ImageNet mean pixel, no
scaling), ``"tf"`` (scaled to ``[-1, 1]``), ``"torch"`` (scaled to ``[0, 1]``, then the
ImageNet mean and standard deviation), plus ``"identity"`` for models that normalise
their own input (EfficientNet's ``include_preprocessing=True``, as keras.applications'
EfficientNet). Which mode each family's weights expect is declared by the family
module (``Family.preprocessing``).
:func:`decode_predictions` names the top classes with the class index shipped in
``keras_archs/data`` (keras' ``imagenet_class_index.json``, built offline; see
``scripts/make_imagenet_class_index.py``).

>>> import keras_archs, numpy as np
>>> x = keras_archs.preprocess_input(np.full((1, 2, 2, 3), 255.0), arch="resnet18")
>>> [round(float(v), 3) for v in x[0, 0, 0]]
[2.249, 2.429, 2.64]
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from importlib import resources

import keras
import numpy as np
from keras import ops

# ImageNet statistics of RGB pixels scaled to [0, 1] (torchvision's transforms, keras' "torch" mode).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLASSES = 1000


@dataclasses.dataclass(frozen=True)
class Mode:
    """``(x / divisor - mean) / std`` per channel on ``[0, 255]`` pixels, the channels
    reversed first (RGB -> BGR) if ``bgr``; a scalar mean/std serves any channel count."""

    divisor: float
    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]
    bgr: bool
    description: str


MODES: dict[str, Mode] = {
    # VGG's released BGR mean pixel (keras.applications' "caffe" mode).
    "caffe": Mode(1.0, (103.939, 116.779, 123.68), 1.0, True, "BGR, minus the ImageNet mean pixel, unscaled"),
    "tf": Mode(127.5, 1.0, 1.0, False, "scaled to [-1, 1]"),
    "torch": Mode(255.0, IMAGENET_MEAN, IMAGENET_STD, False, "scaled to [0, 1], then ImageNet mean/std"),
    "identity": Mode(1.0, 0.0, 1.0, False, "unchanged: the model normalises [0, 255] pixels itself"),
}

# Who made each kind of reference weights, in words.
_SOURCE_NAMES = {"torchvision": "torchvision", "keras": "keras.applications", "timm": "timm"}


def source_mode(family: str, modes: Mapping[str, str], source: str | None = None) -> str:
    """The mode of ``source``'s weights among a family's ``modes`` (source -> mode; ``None``: the first).

    Example:
        >>> source_mode("VGG", {"torchvision": "torch", "keras": "caffe"}, "keras")
        'caffe'
    """
    if source is None:
        return next(iter(modes.values()))
    if source not in modes:
        raise ValueError(f"{family} has no {source!r} ImageNet weights; sources: {', '.join(modes)}.")
    return modes[source]


def sources_doc(modes: Mapping[str, str]) -> str:
    """What each source's weights expect, in words (``modes``: source -> mode, the default first).

    Example:
        >>> sources_doc({"torchvision": "torch", "keras": "torch"})[:28]
        "'torch' (scaled to [0, 1], t"
    """
    return "; ".join(
        f"{mode!r} ({MODES[mode].description}) for {_SOURCE_NAMES[source]} weights"
        + (" (the default)" if i == 0 else f' (``source="{source}"``)')
        for i, (source, mode) in enumerate(modes.items())
    )


def input_doc(arch: str, modes: Mapping[str, str]) -> str:
    """One docstring paragraph for the builder of ``arch``: the input its reference weights expect.

    Example:
        >>> input_doc("lenet5", {})[:30]
        'Inputs: no reference ImageNet '
    """
    if not modes:
        return (
            "Inputs: no reference ImageNet weights, so no fixed input range: normalise as the "
            "model is trained (the trainer's recipe does)."
        )
    return (
        f'Inputs: RGB pixels in [0, 255] through ``keras_archs.preprocess_input(x, arch="{arch}")``: '
        f"{sources_doc(modes)}."
    )


def _channel_axis(ndim: int, data_format: str | None) -> int:
    data_format = data_format or keras.backend.image_data_format()
    if data_format == "channels_last":
        return ndim - 1
    if data_format == "channels_first":
        return 0 if ndim == 3 else 1
    raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}.")


def _per_channel(value: float | tuple[float, ...], shape: list[int], channels: int, mode: str) -> np.ndarray:
    if isinstance(value, tuple) and len(value) != channels:
        raise ValueError(f"mode {mode!r} needs {len(value)}-channel (RGB) images, got {channels} channels.")
    return np.reshape(np.asarray(value, "float64"), shape if isinstance(value, tuple) else ())


def apply_mode(x, mode: str, data_format: str | None = None):
    """Preprocess ``x`` (a NumPy array or backend tensor, 3D or 4D, values in ``[0, 255]``) by ``mode``.

    Unlike keras.applications, a NumPy input is never overwritten; non-float inputs
    become ``keras.backend.floatx()``.

    Example:
        >>> apply_mode(np.array([[[0.0, 127.5, 255.0]]]), "tf").tolist()
        [[[-1.0, 0.0, 1.0]]]
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}.")
    spec = MODES[mode]
    is_numpy = isinstance(x, np.ndarray)
    if not keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype)):
        x = x.astype(keras.backend.floatx()) if is_numpy else ops.cast(x, keras.backend.floatx())
    if mode == "identity":
        return x
    axis = _channel_axis(len(x.shape), data_format)
    shape = [1] * len(x.shape)
    shape[axis] = x.shape[axis]
    mean, std = (_per_channel(v, shape, x.shape[axis], mode) for v in (spec.mean, spec.std))
    if is_numpy:
        mean, std = mean.astype(x.dtype), std.astype(x.dtype)
        x = np.flip(x, axis) if spec.bgr else x
    else:
        mean, std = ops.convert_to_tensor(mean, x.dtype), ops.convert_to_tensor(std, x.dtype)
        x = ops.flip(x, axis) if spec.bgr else x
    return (x / spec.divisor - mean) / std


def family_preprocess_input(family: str, modes: Mapping[str, str]) -> Callable:
    """A family module's keras.applications-style ``preprocess_input(x, data_format=None, source=None)``,
    from the family's ``modes`` (reference weights source -> mode, the default first).

    Example:
        >>> from keras_archs.models import resnet
        >>> float(resnet.preprocess_input(np.zeros((1, 1, 1, 3)), source="keras")[0, 0, 0, 0])
        -103.939
    """

    def preprocess_input(x, data_format: str | None = None, source: str | None = None):
        return apply_mode(x, source_mode(family, modes, source), data_format)

    preprocess_input.__doc__ = (
        f"Preprocess RGB images in [0, 255] for {family}'s ImageNet weights: {sources_doc(modes)}.\n\n"
        f"Args:\n    x: NumPy array or tensor, 3D or 4D.\n    data_format: channels_last (default) or "
        f"channels_first.\n    source: one of {', '.join(map(repr, modes))}.\n"
    )
    return preprocess_input


@functools.lru_cache(maxsize=1)
def class_index() -> dict[str, list[str]]:
    """``{"0": ["n01440764", "tench"], ...}``: keras' ImageNet class index, shipped in the package."""
    text = resources.files("keras_archs").joinpath("data", "imagenet_class_index.json").read_text()
    return json.loads(text)


def decode_predictions(preds, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` classes of each row of ImageNet predictions, as keras.applications returns them.

    Args:
        preds: array or tensor of shape ``(samples, 1000)``.
        top: how many classes per sample.

    Returns:
        One list per sample of ``(synset, class_name, score)`` tuples, best first.

    Example:
        >>> preds = np.zeros((1, 1000)); preds[0, 1] = 1.0
        >>> decode_predictions(preds, top=1)[0][0][:2]
        ('n01443537', 'goldfish')
    """
    preds = np.asarray(ops.convert_to_numpy(preds))
    if preds.ndim != 2 or preds.shape[1] != CLASSES:
        raise ValueError(
            f"decode_predictions expects a batch of ImageNet predictions of shape (samples, {CLASSES}), "
            f"got shape {preds.shape}."
        )
    index = class_index()
    return [
        [(*index[str(i)], pred[i]) for i in np.argsort(-pred, kind="stable")[:top]]
        for pred in preds
    ]
