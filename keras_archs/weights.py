"""Loading weights into keras_archs models.

``weights`` may be ``None`` (random initialisation), ``"imagenet"`` (official
files, where a variant has them) or a path to a file we can read. The format is
detected from the file, never trusted from user code: ``.keras`` archives load
in Keras safe mode and only their weights are taken.
"""

from __future__ import annotations

import os
import zipfile

import keras


class WeightsError(ValueError):
    """A weights file that cannot be loaded into the model, with the reason."""


def load_weights(model: keras.Model, weights: str | os.PathLike, *, arch: str) -> None:
    """Load ``weights`` into ``model`` in place, or raise :class:`WeightsError`.

    Nothing half-loaded is left: on any failure the model's previous values are
    restored before the error is raised.
    """
    if isinstance(weights, str) and weights == "imagenet":
        raise WeightsError(
            f"No official ImageNet weights are registered for {arch!r} in this version. "
            f"Pass weights='/path/to/file' with a local weights file instead "
            f"(.weights.h5 or .keras)."
        )
    path = os.fspath(weights)
    if not os.path.exists(path):
        raise WeightsError(
            f"weights={path!r} is neither None, 'imagenet', nor an existing file. "
            f"Pass the path of a local weights file."
        )
    snapshot = [v.numpy() for v in model.weights]
    try:
        _load_file(model, path)
    except Exception as err:
        for variable, value in zip(model.weights, snapshot):
            variable.assign(value)
        if isinstance(err, WeightsError):
            raise
        raise WeightsError(f"Could not load {path!r} into {arch!r}: {err}") from err


def _load_file(model: keras.Model, path: str) -> None:
    if path.endswith(".keras"):
        if not zipfile.is_zipfile(path):
            raise WeightsError(f"{path!r} is not a valid .keras archive (corrupt or truncated).")
        source = keras.saving.load_model(path, compile=False, safe_mode=True)
        _copy_by_layer_name(source, model, path)
    elif path.endswith(".weights.h5"):
        model.load_weights(path)
    else:
        raise WeightsError(
            f"Unrecognised weights file {path!r}: expected a .keras or .weights.h5 file."
        )


def _copy_by_layer_name(source: keras.Model, target: keras.Model, path: str) -> None:
    source_layers = {layer.name: layer for layer in source.layers if layer.weights}
    target_layers = [layer for layer in target.layers if layer.weights]
    missing = [layer.name for layer in target_layers if layer.name not in source_layers]
    if missing:
        raise WeightsError(
            f"{path!r} has no weights for layer(s) {missing[:5]} of {target.name!r}; "
            f"is it a file for a different architecture ({source.name!r})?"
        )
    extra = sorted(set(source_layers) - {layer.name for layer in target_layers})
    if extra:
        raise WeightsError(
            f"{path!r} has weights for layer(s) {extra[:5]} that {target.name!r} does not have; "
            f"is it a file for a different architecture ({source.name!r})?"
        )
    for layer in target_layers:
        src = source_layers[layer.name]
        if len(layer.weights) != len(src.weights):
            raise WeightsError(
                f"Layer {layer.name!r} has {len(layer.weights)} weights in the model but "
                f"{len(src.weights)} in {path!r}."
            )
        for mine, theirs in zip(layer.weights, src.weights):
            if tuple(mine.shape) != tuple(theirs.shape):
                raise WeightsError(
                    f"Layer {layer.name!r}: weight {mine.path!r} has shape {tuple(mine.shape)} in the "
                    f"model but {tuple(theirs.shape)} in {path!r}."
                )
        layer.set_weights(src.get_weights())
