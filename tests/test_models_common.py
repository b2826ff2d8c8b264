"""Behaviour every registry entry must show, driven by the registry itself, so a
new family is covered the moment it registers.

Parameter convention: ``trainable`` = trainable weights only, which is what
torchvision's ``sum(p.numel() for p in model.parameters())`` counts (BN running
statistics are buffers there and non-trainable weights here). Where a reference
is keras.applications' ``count_params()`` (BN statistics included), the entry's
``total_params`` holds it and is compared with ``model.count_params()``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_archs
from tests.conftest import (
    DEEPEST_VARIANTS,
    ROUND_TRIP_MAX_PARAMS,
    SLOW_PARAMS,
    assert_loads_in_fresh_process,
    family_representatives,
    registry_params,
    trainable_count,
)

GLOBAL_POOLING = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}


def _outputs(model, x):
    y = model(x, training=False)
    return {k: np.asarray(v) for k, v in y.items()} if isinstance(y, dict) else np.asarray(y)


def assert_parameter_counts(spec, model) -> None:
    assert trainable_count(model) == spec.params, spec.param_source
    if spec.total_params is not None:
        assert model.count_params() == spec.total_params


# What a .keras round trip exercises is each layer's class and configuration; the numbers in a
# configuration (filters, kernel sizes, depths) take the same code path whatever they are. Each
# process round-trips a model only while it holds a layer kind (class, configuration keys and
# non-numeric values) that no model round-tripped before it in that process: every kind in the
# registry is round-tripped in every worker that meets it, and ResNet-152 does not repeat ResNet-50.
_ROUND_TRIPPED_KINDS: set = set()


def _layer_kinds(model) -> set:
    kinds = set()
    for layer in model.layers:
        config = layer.get_config()
        settings = tuple(sorted((k, v) for k, v in config.items()
                                if k not in ("name", "trainable") and isinstance(v, (str, bool, type(None)))))  # fmt: skip
        kinds.add((type(layer).__module__, type(layer).__name__, tuple(sorted(config)), settings))
    return kinds


def _has_flatten_head(model) -> bool:
    """Flatten -> Dense heads (LeNet, AlexNet, VGG) have input-size-dependent weights."""
    return any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)


def assert_default_build_counts(spec) -> None:
    """The counts of the default-size build, made inside a StatelessScope, where variables
    get shapes but no values."""
    with keras.StatelessScope():
        assert_parameter_counts(spec, spec.builder(weights=None, classes=spec.default_classes))


@pytest.mark.parametrize("name", registry_params(min_params=ROUND_TRIP_MAX_PARAMS + 1))
def test_parameter_count_of_the_largest(name):
    """The entries too big to build with weights here (BiT R101x3, R152x4): counted only."""
    assert_default_build_counts(keras_archs.get_spec(name))


@pytest.mark.parametrize("name", registry_params(max_params=ROUND_TRIP_MAX_PARAMS))
def test_parameters_and_minimum_size_and_round_trip(name, tmp_path):
    """Every entry builds at its minimum input size with its classifier, has its reference's
    parameter count (a Flatten head's count holds at the default size: built there without
    weight values), computes finite logits, and a ``.keras`` save/load (safe mode: registered
    layers only) gives identical outputs (not for the deepest and the largest variants, whose
    layers and configurations are those of smaller siblings, round-tripped here; see
    DEEPEST_VARIANTS and SLOW_PARAMS; nor for a model whose layer kinds were all round-tripped
    before it in this process: _ROUND_TRIPPED_KINDS)."""
    spec = keras_archs.get_spec(name)
    size = spec.min_size
    model = spec.builder(classes=spec.default_classes, classifier_activation=None, input_shape=(size, size, spec.channels))
    if _has_flatten_head(model):
        assert_default_build_counts(spec)
    else:
        assert_parameter_counts(spec, model)
    x = np.random.default_rng(0).uniform(0, 1, (2, size, size, spec.channels)).astype("float32")
    y = _outputs(model, x)
    assert y.shape == (2, spec.default_classes)
    assert np.isfinite(y).all()
    if name in DEEPEST_VARIANTS or spec.params > SLOW_PARAMS:
        return
    kinds = _layer_kinds(model)
    if kinds <= _ROUND_TRIPPED_KINDS:
        return
    path = tmp_path / f"{name}.keras"
    model.save(path)
    np.testing.assert_array_equal(y, _outputs(keras.saving.load_model(path), x))
    _ROUND_TRIPPED_KINDS.update(kinds)


@pytest.mark.parametrize("name", registry_params())
def test_input_below_minimum_names_the_minimum(name):
    spec = keras_archs.get_spec(name)
    small = spec.min_size - 1
    with pytest.raises(ValueError, match=rf"at least {spec.min_size}x{spec.min_size}"):
        spec.builder(include_top=False, input_shape=(small, spec.min_size, spec.channels))


@pytest.mark.parametrize("name", family_representatives())
def test_top_and_pooling_shapes(name):
    spec = keras_archs.get_spec(name)
    size, ch = spec.default_size, spec.channels
    x = np.random.default_rng(1).normal(size=(1, size, size, ch)).astype("float32")

    model = spec.builder(classes=7, input_shape=(size, size, ch))
    y = _outputs(model, x)
    main = y["main"] if isinstance(y, dict) else y
    assert main.shape == (1, 7)
    np.testing.assert_allclose(main.sum(axis=-1), 1.0, rtol=1e-5)  # softmax by default

    features = spec.builder(include_top=False, input_shape=(size, size, ch))
    fmap = _outputs(features, x)
    assert fmap.ndim == 4 and fmap.shape[0] == 1
    # As keras.applications: adaptive pooling belongs to the head, never to the features.
    assert not any(isinstance(layer, keras.layers.AdaptiveAveragePooling2D) for layer in features.layers)
    with keras.StatelessScope():  # graphs only (shapes, layers): no weight values needed
        logits = spec.builder(classes=7, classifier_activation=None, input_shape=(size, size, ch))
        assert logits.get_layer("predictions").activation.__name__ == "linear"
        for pooling in ("avg", "max"):
            pooled = spec.builder(include_top=False, pooling=pooling, input_shape=(size, size, ch))
            assert tuple(pooled.output.shape) == (None, fmap.shape[-1])
            assert isinstance(pooled.layers[-1], GLOBAL_POOLING[pooling])
    with pytest.raises(ValueError, match="pooling must be one of"):
        spec.builder(include_top=False, pooling="sum")


@pytest.mark.parametrize("name", family_representatives())
def test_non_default_size_and_grayscale(name):
    spec = keras_archs.get_spec(name)
    size = max(spec.min_size, spec.default_size // 2) + 3  # odd, non-default
    gray = spec.builder(include_top=False, pooling="avg", input_shape=(size, size + 8, 1))
    x = np.random.default_rng(2).uniform(size=(1, size, size + 8, 1)).astype("float32")
    assert _outputs(gray, x).shape[0] == 1
    # Open spatial size without a top: one model serves several sizes.
    open_model = spec.builder(include_top=False, pooling="avg", input_shape=(None, None, spec.channels))
    for s in (spec.min_size, size):
        out = _outputs(open_model, np.zeros((1, s, s, spec.channels), "float32"))
        assert out.shape[0] == 1


@pytest.mark.parametrize("name", family_representatives())
def test_input_tensor(name):
    spec = keras_archs.get_spec(name)
    inp = keras.Input((spec.default_size, spec.default_size, spec.channels))
    with keras.StatelessScope():
        model = spec.builder(input_tensor=inp, classes=3)
    assert model.inputs[0] is inp
    assert tuple(model.output.shape) == (None, 3)


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg11_lrn", "resnet20"])
def test_keras_file_loads_in_fresh_process(name, tmp_path):
    """Custom layers (LRN, LeNet's subsampling and C3, option-A shortcuts) are
    registered serializables: a new process that imports keras_archs loads the file
    in safe mode and computes the same outputs."""
    spec = keras_archs.get_spec(name)
    model = spec.builder(classes=5)
    size = spec.default_size
    x = np.random.default_rng(4).uniform(size=(2, size, size, spec.channels)).astype("float32")
    assert_loads_in_fresh_process(model, x, tmp_path)


def test_weights_file_round_trip(tmp_path):
    model = keras_archs.ResNet20()
    path = tmp_path / "r20.weights.h5"
    model.save_weights(path)
    other = keras_archs.ResNet20(weights=str(path))
    x = np.random.default_rng(5).uniform(size=(1, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(_outputs(model, x), _outputs(other, x))


def test_weights_errors_leave_nothing_half_loaded(tmp_path):
    from keras_archs.weights import WeightsError

    with pytest.raises(WeightsError, match="neither None, 'imagenet', nor an existing file"):
        keras_archs.ResNet20(weights=str(tmp_path / "missing.weights.h5"))
    wrong = tmp_path / "r32.keras"
    keras_archs.ResNet32().save(wrong)
    with pytest.raises(WeightsError, match="different architecture"):
        keras_archs.ResNet20(weights=str(wrong))
    corrupt = tmp_path / "bad.keras"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="corrupt"):
        keras_archs.ResNet20(weights=str(corrupt))
    with pytest.raises(WeightsError, match=r"(imagenet|ImageNet)"):
        keras_archs.LeNet5(weights="imagenet")
