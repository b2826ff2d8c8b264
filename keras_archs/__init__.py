"""keras_archs: the classic image-classification CNNs in Keras 3, faithful to their papers.

Every variant is a public builder with the keras.applications signature
(``keras_archs.ResNet50(include_top=True, weights=None, ...)``) and a registry
entry (``keras_archs.get_model("resnet50")``); ``python -m keras_archs`` prints
the table.

>>> import keras_archs
>>> model = keras_archs.get_model("resnet20")
>>> [s.name for s in keras_archs.list_models("VGG")][:2]
['vgg11', 'vgg11_bn']
"""

from keras_archs import models as _models  # noqa: F401  (registers every family)
from keras_archs.imagenet import decode_predictions, preprocess_input
from keras_archs.registry import ModelSpec, get_model, get_spec, list_models

__version__ = "0.1.0"

# The public builders (ResNet50, VGG16, ...) are exported under their own names.
_BUILDERS = {spec.builder.__name__: spec.builder for spec in list_models()}
globals().update(_BUILDERS)

__all__ = [
    "ModelSpec",
    "decode_predictions",
    "get_model",
    "get_spec",
    "list_models",
    "preprocess_input",
    *sorted(_BUILDERS),
]
