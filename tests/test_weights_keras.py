"""keras.applications weight files load into our models with the same logits.

The reference keras.applications model gets random weights and random
BatchNormalization statistics, and is saved the ways a user has such weights:
the legacy named-layer HDF5 layout of the official files (``*_tf_kernels.h5``),
a legacy ``model.save("x.h5")``, and a ``.keras`` archive.
"""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

import keras_archs
from keras_archs import weights as weights_lib
from tests.test_weights_torchvision import RTOL, assert_equivalent, images, keras_logits, relative_diff

SIZE = 64
KERAS_RESNET = {"conv_bias": True, "bn_epsilon": 1.001e-5, "downsample": "1x1"}

# registry name -> (keras.applications class, input size, include_top, our options, slow)
PAIRS = {
    "resnet50": ("ResNet50", SIZE, True, KERAS_RESNET, False),
    "resnet101": ("ResNet101", SIZE, True, KERAS_RESNET, True),
    "resnet152": ("ResNet152", SIZE, True, KERAS_RESNET, True),
    "vgg16": ("VGG16", 224, True, {}, True),
    "vgg19": ("VGG19", 224, True, {}, True),
    "vgg16_notop": ("VGG16", SIZE, False, {}, False),
}


def randomize(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random non-symmetric weights, biases and BatchNormalization statistics."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            values = {
                "gamma": lambda n: 0.5 + rng.uniform(size=n),
                "beta": lambda n: 0.2 * rng.normal(size=n),
                "moving_mean": lambda n: 0.2 * rng.normal(size=n),
                "moving_variance": lambda n: 0.5 + rng.uniform(size=n),
            }
            for v in layer.weights:
                v.assign(values[v.name](v.shape[0]).astype("float32"))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.use_bias:
            layer.bias.assign((0.1 * rng.normal(size=layer.bias.shape)).astype("float32"))
    return model


def reference(app: str, size: int, include_top: bool) -> keras.Model:
    build = getattr(keras.applications, app)
    kwargs = dict(weights=None, input_shape=(size, size, 3), include_top=include_top)
    if include_top:
        kwargs["classifier_activation"] = None
    else:
        kwargs["pooling"] = "avg"
    return randomize(build(**kwargs))


def save_official_layout(model: keras.Model, path) -> None:
    """As keras.applications' official files: root ``layer_names``, per-layer ``weight_names``."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def _params():
    return [pytest.param(n, marks=pytest.mark.slow, id=n) if p[-1] else pytest.param(n, id=n) for n, p in PAIRS.items()]


@pytest.mark.parametrize("name", _params())
def test_keras_applications_logits_match(name, tmp_path):
    app, size, include_top, options, _ = PAIRS[name]
    ref = reference(app, size, include_top)
    path = tmp_path / f"{name}_weights_tf_dim_ordering_tf_kernels.h5"
    save_official_layout(ref, path)
    assert weights_lib.detect_format(str(path)) == "keras_h5"
    arch = name.removesuffix("_notop")
    extra = {"classifier_activation": None} if include_top else {"pooling": "avg"}
    model = keras_archs.get_model(
        arch, weights=str(path), include_top=include_top, input_shape=(size, size, 3), **extra, **options
    )
    x = images(size)
    ours, theirs = keras_logits(model, x), np.asarray(ref(x, training=False))
    if include_top:
        diff = assert_equivalent(ours, theirs, name)
    else:
        diff = relative_diff(ours, theirs)
        assert diff <= RTOL
    print(f"{name}: max relative diff {diff:.2e}")


def test_legacy_full_model_h5_and_keras_archive(tmp_path):
    ref = reference("ResNet50", SIZE, True)
    x = images(SIZE)
    expected = np.asarray(ref(x, training=False))
    legacy = tmp_path / "resnet50_full.h5"
    ref.save(legacy)  # legacy whole-model HDF5: weights under model_weights/
    archive = tmp_path / "resnet50.keras"
    ref.save(archive)
    for path in (legacy, archive):
        model = keras_archs.ResNet50(
            weights=str(path), input_shape=(SIZE, SIZE, 3), classifier_activation=None, **KERAS_RESNET
        )
        assert_equivalent(keras_logits(model, x), expected, path.name)


def test_mismatched_keras_files_are_refused(tmp_path):
    ref = reference("ResNet50", SIZE, True)
    path = tmp_path / "resnet50.h5"
    save_official_layout(ref, path)
    # the paper's ResNet-50 has no conv biases: named layer, both weight counts
    with pytest.raises(weights_lib.WeightsError, match=r"layer 'conv1_conv' has 1 weights in the model but 2"):
        keras_archs.ResNet50(weights=str(path), input_shape=(SIZE, SIZE, 3))
    # a different architecture
    with pytest.raises(weights_lib.WeightsError, match="different architecture"):
        keras_archs.ResNet18(weights=str(path), input_shape=(SIZE, SIZE, 3))
    # an epsilon that differs, seen in a .keras archive
    archive = tmp_path / "resnet50.keras"
    ref.save(archive)
    with pytest.raises(weights_lib.WeightsError, match=r"epsilon 1e-05 in the model, 1.001e-05 in the file"):
        keras_archs.ResNet50(weights=str(archive), input_shape=(SIZE, SIZE, 3), conv_bias=True)
    # a Keras 3 .weights.h5 is matched by position: it fits only a model with the same layers
    positional = tmp_path / "resnet50.weights.h5"
    ref.save_weights(positional)
    model = keras_archs.ResNet50(input_shape=(SIZE, SIZE, 3))
    before = [np.array(v) for v in model.weights]
    with pytest.raises(weights_lib.WeightsError, match="matched by position"):
        weights_lib.load_weights(model, str(positional), arch="resnet50")
    for old, variable in zip(before, model.weights):
        np.testing.assert_array_equal(old, np.asarray(variable))


def test_keras3_weights_h5_of_keras_applications(tmp_path):
    """keras.applications' Keras 3 ``save_weights`` file: our keras-option ResNet-50
    creates its layers in the same order, so the positional match is exact."""
    ref = reference("ResNet50", SIZE, True)
    path = tmp_path / "resnet50.weights.h5"
    ref.save_weights(path)
    assert weights_lib.detect_format(str(path)) == "keras3_h5"
    model = keras_archs.ResNet50(weights=str(path), input_shape=(SIZE, SIZE, 3), classifier_activation=None, **KERAS_RESNET)
    x = images(SIZE)
    assert_equivalent(keras_logits(model, x), np.asarray(ref(x, training=False)), "resnet50 .weights.h5")


def test_keras_applications_parameter_counts_agree():
    """Our keras-option ResNet-50 has exactly keras.applications' weights, variable for variable."""
    ours = keras_archs.ResNet50(**KERAS_RESNET)
    theirs = keras.applications.ResNet50(weights=None)
    assert ours.count_params() == theirs.count_params()
    shapes = {layer.name: [tuple(v.shape) for v in layer.weights] for layer in theirs.layers if layer.weights}
    assert shapes == {layer.name: [tuple(v.shape) for v in layer.weights] for layer in ours.layers if layer.weights}
