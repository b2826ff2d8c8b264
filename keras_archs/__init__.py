"""keras_archs: the classic image-classification CNNs in Keras 3, faithful to their papers.

Every variant is a public builder with the keras.applications signature
(``keras_archs.ResNet50(include_top=True, weights=None, ...)``) and a registry
entry (``keras_archs.get_model("resnet50")``); ``python -m keras_archs`` prints
the table.

>>> import keras_archs
>>> model = keras_archs.get_model("resnet20")
>>> [s.name for s in keras_archs.list_models("VGG")][:2]
['vgg11', 'vgg11_bn']

``import keras_archs`` imports neither Keras nor a family module: the names below are
loaded on first use (PEP 562), the builders from the registry, which reads every family
module then. ``keras_archs/__init__.pyi`` (written by ``scripts/make_stubs.py``) declares
them all for IDEs and type checkers. The custom layers that ``.keras`` files may hold are
registered with Keras by ``import keras_archs.layers``, which this import does at once
when Keras is already imported (``import keras, keras_archs``), and any builder does.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it. The builders (ResNet50, VGG16, ...) are the
# registry's; their names are capitalised, and no other public name is.
EXPORTS = {
    "ModelSpec": "keras_archs.spec",
    "count_macs": "keras_archs.flops",
    "decode_predictions": "keras_archs.imagenet",
    "feature_levels": "keras_archs.features",
    "get_feature_extractor": "keras_archs.features",
    "get_model": "keras_archs.registry",
    "get_spec": "keras_archs.registry",
    "layer_macs": "keras_archs.flops",
    "list_models": "keras_archs.registry",
    "preprocess_input": "keras_archs.registry",
    "pyramid_outputs": "keras_archs.features",
}

if "keras" in sys.modules:  # cheap now: lets `import keras, keras_archs` load .keras files in safe mode
    importlib.import_module("keras_archs.layers")


def _builders() -> dict[str, Any]:
    return importlib.import_module("keras_archs.registry").builders()


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        value = getattr(importlib.import_module(EXPORTS[name]), name)
    elif name == "__all__":
        value = [*sorted(EXPORTS), *sorted(_builders())]
    elif name[:1].isupper() and name in _builders():
        value = _builders()[name]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS, *_builders()})
