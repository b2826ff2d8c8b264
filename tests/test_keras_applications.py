"""keras.applications' own tests (keras/src/applications/applications_test.py), run on ours.

Every architecture keras.applications and this package share is checked the way Keras
checks its applications, with the same inputs and the same expected shapes (the number of
channels of the last feature map, ``last_dim``, is Keras' ``MODEL_LIST`` entry;
``test_shared_architectures_match_keras_model_list`` reads that list when the installed
Keras ships its tests):

========================================  ===================================================
keras test                                here
========================================  ===================================================
test_application_notop_variable_input_    same: ``include_top=False`` with ``(None, None, 1)``
channels                                  and ``(None, None, 4)`` inputs give
                                          ``[None, None, None, last_dim]``
test_application_notop_custom_input_      same: ``(123, 123, 3)``
shape
test_application_notop_custom_input_      same: a 200x200x4 input through a 2x2/2 ``Conv2D``
tensor                                    to 3 channels is the ``input_tensor``
test_application_pooling                  same: ``pooling="max"`` gives ``[None, last_dim]``
test_application_classifier_activation    same: the last layer's activation is softmax
test_application_base                     only its network-free half: the default model's
                                          config is serialised and deserialised to a model
                                          with as many weights
========================================  ===================================================

What differs, and why:

* Shared architectures: ResNet-50/101/152, VGG-16/19, DenseNet-121/169/201,
  Inception-v3, Inception-ResNet-v2 and EfficientNet-B0 to B7 (18 of the 40). We
  have no Xception, MobileNet v1-v3, EfficientNetV2, ConvNeXt or NASNet, and no
  ResNet-v2 with BatchNorm (our pre-activation ResNets are BiT's, with GroupNorm and
  standardised weights: another network).
* Channels-first: Keras runs each test in both data formats; our models are
  channels-last only (as Keras' DenseNet, ConvNeXt and NASNet), so the channels-first
  half is not ported.
* ``weights="imagenet"``: ``test_application_base`` downloads the official weights and
  an elephant photo and checks the top-3 classes. Tests here never use the network; our
  official-weights path is checked against local files elsewhere
  (test_weights_keras / test_weights_torchvision), so only the serialisation half is kept.
* ``input_tensor``: keras.applications makes the model start at the tensor's source
  ``Input`` (the 200x200x4 one, the ``Conv2D`` inside the model); ours start at the tensor
  given (100x100x3). Keras' test checks the output only, which agrees; the difference is
  asserted below so that it stays known.
* Each model is built inside ``keras.StatelessScope`` (graph and shapes, no weight
  values), since every check is about shapes and layers, and the checks that share a
  model share one build: the classifier test and the serialisation round trip use the
  same default model. The custom-shape, custom-tensor and pooling checks of the eight
  largest siblings (EfficientNet-B4 to B7, DenseNet-169/201, ResNet-101/152) carry the
  slow marker: they repeat their family's code path, which the smaller members check
  in every run.
"""

from __future__ import annotations

import keras
import pytest
from keras.src.saving import serialization_lib

import keras_archs

# registry name -> (keras.applications name, last_dim in Keras' MODEL_LIST)
SHARED = {
    "vgg16": ("VGG16", 512),
    "vgg19": ("VGG19", 512),
    "inception_v3": ("InceptionV3", 2048),
    "inception_resnet_v2": ("InceptionResNetV2", 1536),
    "efficientnet_b0": ("EfficientNetB0", 1280),
    "efficientnet_b1": ("EfficientNetB1", 1280),
    "efficientnet_b2": ("EfficientNetB2", 1408),
    "efficientnet_b3": ("EfficientNetB3", 1536),
    "efficientnet_b4": ("EfficientNetB4", 1792),
    "efficientnet_b5": ("EfficientNetB5", 2048),
    "efficientnet_b6": ("EfficientNetB6", 2304),
    "efficientnet_b7": ("EfficientNetB7", 2560),
    "densenet121": ("DenseNet121", 1024),
    "densenet169": ("DenseNet169", 1664),
    "densenet201": ("DenseNet201", 1920),
    "resnet50": ("ResNet50", 2048),
    "resnet101": ("ResNet101", 2048),
    "resnet152": ("ResNet152", 2048),
}
NAMES = list(SHARED)
# The deepest siblings take the longest to build: in the checks that only repeat their
# family's code path at other input shapes (custom shape, custom tensor, pooling) they
# run under the slow marker; every variant's last_dim and head are checked in every run.
BIG_SIBLINGS = {f"efficientnet_b{i}" for i in range(4, 8)} | {"densenet169", "densenet201", "resnet101", "resnet152"}
SHAPE_ONLY = [pytest.param(n, marks=pytest.mark.slow) if n in BIG_SIBLINGS else n for n in NAMES]


def _build(name: str, **kwargs) -> keras.Model:
    with keras.StatelessScope():
        return keras_archs.get_model(name, weights=None, **kwargs)


def test_shared_architectures_match_keras_model_list():
    applications_test = pytest.importorskip("keras.src.applications.applications_test")
    keras_list = {app.__name__: last_dim for app, last_dim, _ in applications_test.MODEL_LIST}
    assert {app: keras_list[app] for app, _ in SHARED.values()} == dict(SHARED.values())
    ours = {spec.name for spec in keras_archs.list_models()}
    assert set(SHARED) <= ours


@pytest.mark.parametrize("name", NAMES)
def test_application_notop_variable_input_channels(name):
    last_dim = SHARED[name][1]
    for channels in (1, 4):
        model = _build(name, include_top=False, input_shape=(None, None, channels))
        assert list(model.outputs[0].shape) == [None, None, None, last_dim]


@pytest.mark.parametrize("name", SHAPE_ONLY)
def test_application_notop_custom_input_shape(name):
    model = _build(name, include_top=False, input_shape=(123, 123, 3))
    assert list(model.outputs[0].shape)[-1] == SHARED[name][1]


@pytest.mark.parametrize("name", SHAPE_ONLY)
def test_application_notop_custom_input_tensor(name):
    with keras.StatelessScope():
        source = keras.Input(shape=(200, 200, 4), name="custom_input")
        inputs_custom = keras.layers.Conv2D(3, (2, 2), padding="valid", strides=(2, 2))(source)
        model = keras_archs.get_model(name, weights=None, include_top=False, input_tensor=inputs_custom)
    assert list(model.outputs[0].shape)[-1] == SHARED[name][1]
    # The known difference: keras.applications would start at `source` (200, 200, 4).
    assert tuple(model.inputs[0].shape) == (None, 100, 100, 3)


@pytest.mark.parametrize("name", SHAPE_ONLY)
def test_application_pooling(name):
    model = _build(name, include_top=False, pooling="max")
    assert list(model.outputs[0].shape) == [None, SHARED[name][1]]


@pytest.mark.parametrize("name", NAMES)
def test_application_classifier_activation_and_serialization(name):
    model = _build(name, include_top=True, classifier_activation="softmax")
    assert model.layers[-1].activation.__name__ == "softmax"
    # test_application_base, without the download: the default model round-trips its config.
    config = serialization_lib.serialize_keras_object(model)
    with keras.StatelessScope():
        reconstructed = serialization_lib.deserialize_keras_object(config)
    assert len(model.weights) == len(reconstructed.weights)
