"""Read Keras weight files by layer name.

Two layouts carry layer names: the legacy HDF5 layout of keras.applications'
official files and of Keras 2's ``save_weights("x.h5")`` (root attribute
``layer_names``; one group per layer whose ``weight_names`` attribute lists
``layer/kernel:0``-style names), also found under ``model_weights`` in a legacy
``model.save("x.h5")``; and ``.keras`` archives, whose model is rebuilt in
safe mode. Keras 3's ``.weights.h5`` keys weights by position, not name, and
is loaded structurally by :mod:`keras_archs.weights`.
"""

from __future__ import annotations

import h5py
import numpy as np

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# {layer name: [(variable name, array), ...]} in the layer's weight order.
LayerWeights = dict[str, list[tuple[str, np.ndarray]]]


def is_hdf5(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == HDF5_MAGIC


def _decode(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _legacy_group(f: h5py.File) -> h5py.Group | None:
    if "layer_names" in f.attrs:
        return f
    if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
        return f["model_weights"]
    return None


def h5_layout(path: str) -> str:
    """``"legacy"`` (names), ``"keras3"`` (a Keras 3 ``.weights.h5``) or ``"unknown"``."""
    with h5py.File(path, "r") as f:
        if _legacy_group(f) is not None:
            return "legacy"
        if "layers" in f or "vars" in f:
            return "keras3"
    return "unknown"


def _variable_name(weight_name: str) -> str:
    # "conv1_conv/kernel:0" -> "kernel"; Keras 3's legacy writer stores "kernel".
    return weight_name.split("/")[-1].split(":")[0]


def read_legacy_h5(path: str) -> LayerWeights:
    """Every layer with weights in a legacy (named) Keras HDF5 file."""
    out: LayerWeights = {}
    with h5py.File(path, "r") as f:
        group = _legacy_group(f)
        if group is None:
            raise ValueError(f"{path!r} is not a legacy Keras weights file (no 'layer_names').")
        for layer in _decode(group.attrs["layer_names"]):
            g = group[layer]
            names = _decode(g.attrs.get("weight_names", []))
            if names:
                out[layer] = [(_variable_name(n), np.asarray(g[n])) for n in names]
    return out


def read_keras_model(model) -> LayerWeights:
    """The named weights of an already built Keras model (e.g. from a ``.keras`` archive)."""
    return {
        layer.name: [(v.name.split("/")[-1], np.asarray(v)) for v in layer.weights]
        for layer in model.layers
        if layer.weights
    }
