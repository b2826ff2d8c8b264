"""What the trainers read off a Keras model: its main output, its input size, what its last
layer emits, its outputs on preprocessed pixels, and a saved ``.keras`` file loaded back
(optionally in float32).

Models with auxiliary classifiers (GoogLeNet, Inception) return a dict whose ``"main"`` entry
is the classifier; every consumer (the training loop, evaluation, export, prediction,
pruning) reads that one through :func:`main_output`.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from trainers.cli import FailedError, UsageError, first_line
from trainers.data import preprocess


def main_output(outputs: Any) -> Any:
    """The main logits of a model's outputs (a tensor, or a dict with ``"main"``)."""
    return outputs["main"] if isinstance(outputs, Mapping) else outputs


def output_kind(model: Any) -> str:
    """``"probabilities"`` if the model ends in a softmax, else ``"logits"``."""
    activation = getattr(model.layers[-1], "activation", None)
    return "probabilities" if getattr(activation, "__name__", "") == "softmax" else "logits"


def keras_outputs(model: Any, pixels: np.ndarray, prep: preprocess.Preprocessing, batch_size: int = 64) -> np.ndarray:
    """The model's main output on pixels already resized by :func:`trainers.data.preprocess.resize_crop`
    (normalised here), as float32 ``[n, classes]``."""
    out = []
    for start in range(0, len(pixels), batch_size):
        x = preprocess.normalize(pixels[start : start + batch_size], prep)
        out.append(np.asarray(main_output(model(x, training=False))))
    return np.concatenate(out).astype(np.float32)


def model_input_spec(model: Any) -> tuple[int, int]:
    """``(image_size, channels)`` of a square, fixed-size model input."""
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or shape[0] is None or shape[0] != shape[1]:
        raise UsageError(f"the model input must be a fixed square image (H, W, C); got {shape}. Pass --image_size.")
    return int(shape[0]), int(shape[2])


_REDUCED = {"bfloat16", "float16", "mixed_bfloat16", "mixed_float16"}


def _float32_config(config: Any) -> tuple[Any, bool]:
    """``(config, changed)``: a Keras config with every mixed-precision dtype policy
    (``mixed_bfloat16``, ``mixed_float16``) and reduced-precision tensor dtype made float32."""
    if isinstance(config, list):
        items = [_float32_config(v) for v in config]
        return [v for v, _ in items], any(c for _, c in items)
    if not isinstance(config, dict):
        return config, False
    if config.get("class_name") == "DTypePolicy" and (config.get("config") or {}).get("name") in _REDUCED:
        return {**config, "config": {**config["config"], "name": "float32"}}, True
    out, changed = {}, False
    for key, value in config.items():
        reduced = key == "dtype" and isinstance(value, str) and value in _REDUCED
        value, hit = ("float32", True) if reduced else _float32_config(value)
        out[key] = value
        changed = changed or hit
    return out, changed


def load_keras(path: str, *, float32: bool = False) -> Any:
    """A ``.keras`` file as a model (not compiled); a file that cannot be read is a
    :class:`trainers.cli.FailedError`.

    ``float32``: a model trained with ``--precision mixed_bfloat16`` (trainers.run's default
    on CPUs with AVX512_BF16) or ``mixed_float16`` is saved with that policy; TFLite has no
    built-in bfloat16 kernels, so such a model is rebuilt from its config with float32
    policies and its (float32) weights loaded.
    """
    import keras

    import keras_archs.layers  # noqa: F401  (registers the custom layers)
    from keras_archs.builder import deep_graphs

    try:
        if float32:
            with zipfile.ZipFile(path) as archive:
                config, changed = _float32_config(json.loads(archive.read("config.json")))
            if changed:
                model = keras.saving.deserialize_keras_object(config)
                model.load_weights(path)
                return model
        with deep_graphs():
            return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise FailedError(f"cannot load the model in {path}: {first_line(e)}") from None
