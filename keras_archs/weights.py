"""Loading weights into keras_archs models, by registry name.

``weights`` may be ``None`` (random initialisation), ``"imagenet"`` (official
files, where a variant has them; ``"imagenet:torchvision"`` or
``"imagenet:keras"`` picks the source) or a path to a file. The format is
detected from the file's content, never from its suffix alone, and nothing in a
file is executed: PyTorch state dicts (read without torch), Keras HDF5 files with
layer names (keras.applications' official files), ``.keras`` archives and Keras 3
``.weights.h5`` files. Every tensor is checked before any is assigned; on failure a
:class:`WeightsError` names the layer and both shapes and the model keeps its
previous values. The work is done by :mod:`keras_archs.weight_import.loader`, from
the variant's :class:`~keras_archs.spec.ModelSpec`; this module finds the spec by name.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_archs import registry
from keras_archs.spec import ModelSpec
from keras_archs.weight_import import loader
from keras_archs.weight_import.loader import WeightsError, classifier_layers, detect_format, incompatibility

__all__ = [
    "WeightsError",
    "classifier_layers",
    "detect_format",
    "incompatibility",
    "load_weights",
    "plan_assignments",
]


def _spec(arch: str | ModelSpec) -> ModelSpec:
    return arch if isinstance(arch, ModelSpec) else registry.get_spec(arch)


def load_weights(
    model: keras.Model, weights: str | os.PathLike, *, arch: str | ModelSpec, skip_head: bool = False
) -> list[str]:
    """Load ``weights`` into ``model`` in place, or raise :class:`WeightsError`: the loader's
    :func:`~keras_archs.weight_import.loader.load_weights`, with the variant named by ``arch``
    (a registry name or a spec). Returns the layers not loaded (the classifier with ``skip_head``).

    Example:
        >>> model = keras_archs.ResNet18(classes=10)
        >>> keras_archs.weights.load_weights(model, "resnet18-f37072fd.pth", arch="resnet18", skip_head=True)
        ['predictions']
    """
    return loader.load_weights(model, weights, _spec(arch), skip_head=skip_head)


def plan_assignments(
    model: keras.Model, path: str, *, arch: str | ModelSpec, skip: tuple[str, ...] = ()
) -> list[tuple[keras.Variable, np.ndarray]] | None:
    """Every (variable, value) pair ``path`` gives ``model``, fully checked, without assigning
    any (:func:`keras_archs.weight_import.loader.plan_assignments`).

    Example:
        >>> plan = plan_assignments(keras_archs.ResNet18(), "resnet18-f37072fd.pth", arch="resnet18")
    """
    return loader.plan_assignments(model, path, _spec(arch), skip=skip)
