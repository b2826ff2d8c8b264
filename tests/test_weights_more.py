"""Weight import for the families added after the first importer: SqueezeNet, DenseNet,
MnasNet, ShuffleNet-v2, GoogLeNet (BN), Inception-v3 and EfficientNet from torchvision;
DenseNet, Inception-v3, Inception-ResNet-v2 and EfficientNet from keras.applications.

As in test_weights_torchvision / test_weights_keras: the reference gets random weights
and random BatchNorm statistics, is put in eval mode and saved the way a user has it
(``torch.save(state_dict)``; the official named-layer HDF5 layout), our model loads the
file through ``keras_archs.get_model(name, weights=path, ...)`` and both compute logits
on the same random images (max |diff| <= 1e-4 of the logit scale, same top-1).
"""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest
import torch
import torchvision

import keras_archs
from keras_archs import weights as weights_lib
from keras_archs.imagenet import IMAGENET_STD
from keras_archs.weight_import import loader
from tests.test_weights_keras import randomize as randomize_keras
from tests.test_weights_keras import save_official_layout
from tests.test_weights_torchvision import (
    RTOL,
    assert_equivalent,
    images,
    keras_logits,
    randomize,
    relative_diff,
    torch_logits,
)

EFFICIENTNET_TORCH = {"padding": "torch", "bn_epsilon": 1e-5, "include_preprocessing": False}
INCEPTION_V3_TORCH = {"bn_scale": True, "count_include_pad": True}

# registry name -> (torchvision builder, input size, torchvision kwargs, our options, slow)
TORCH_PAIRS = {
    "squeezenet1_0": ("squeezenet1_0", 64, {}, {}, False),
    "squeezenet1_1": ("squeezenet1_1", 64, {}, {}, False),
    "densenet121": ("densenet121", 64, {}, {}, True),  # fast: test_old_densenet_keys_of_the_official_files
    "densenet161": ("densenet161", 64, {}, {}, True),
    "densenet169": ("densenet169", 64, {}, {}, True),
    "densenet201": ("densenet201", 64, {}, {}, True),
    "mnasnet0_5": ("mnasnet0_5", 64, {}, {}, False),
    "mnasnet0_75": ("mnasnet0_75", 64, {}, {}, True),
    "mnasnet1_0": ("mnasnet1_0", 64, {}, {}, True),
    "mnasnet1_3": ("mnasnet1_3", 64, {}, {}, True),
    "shufflenet_v2_x0_5": ("shufflenet_v2_x0_5", 64, {}, {}, False),
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0", 64, {}, {}, True),
    "shufflenet_v2_x1_5": ("shufflenet_v2_x1_5", 64, {}, {}, True),
    "shufflenet_v2_x2_0": ("shufflenet_v2_x2_0", 64, {}, {}, True),
    # the file carries the auxiliary heads; the default model (no aux) ignores them
    "googlenet_bn": ("googlenet", 64, {"transform_input": False, "init_weights": False}, {}, False),
    "inception_v3": ("inception_v3", 75, {"transform_input": False, "init_weights": False}, INCEPTION_V3_TORCH, False),
    "efficientnet_b0": ("efficientnet_b0", 64, {}, EFFICIENTNET_TORCH, False),
    **{
        f"efficientnet_b{i}": (
            f"efficientnet_b{i}",
            64,
            {},
            {**EFFICIENTNET_TORCH, "bn_epsilon": 1e-5 if i < 5 else 1e-3},
            True,
        )
        for i in range(1, 8)
    },
}


def _param(name: str, slow: bool):
    return pytest.param(name, marks=pytest.mark.slow, id=name) if slow else pytest.param(name, id=name)


def save_torch_reference(tv_name: str, path, tv_kwargs: dict, seed: int = 0) -> torch.nn.Module:
    module = randomize(getattr(torchvision.models, tv_name)(weights=None, **tv_kwargs), seed)
    if tv_name.startswith("squeezenet"):  # a ReLU follows conv10: positive biases keep the logits apart
        with torch.no_grad():
            module.classifier[1].bias.uniform_(0.1, 0.5)
    torch.save(module.state_dict(), path)
    return module


@pytest.mark.parametrize("name", [_param(n, p[-1]) for n, p in TORCH_PAIRS.items()])
def test_torchvision_logits_match(name, tmp_path):
    tv_name, size, tv_kwargs, options, _ = TORCH_PAIRS[name]
    path = tmp_path / f"{name}.pth"
    reference = save_torch_reference(tv_name, path, tv_kwargs)
    model = keras_archs.get_model(
        name, weights=str(path), input_shape=(size, size, 3), classifier_activation=None, **options
    )
    x = images(size)
    diff = assert_equivalent(keras_logits(model, x), torch_logits(reference, x), name)
    print(f"{name}: max relative diff {diff:.2e}")


def _torch_aux(module: torch.nn.Module, x: np.ndarray, taps: dict[str, tuple[str, str]]) -> dict[str, np.ndarray]:
    """torchvision runs its auxiliary heads only in training: run them on hooked inputs."""
    captured = {}
    hooks = [
        getattr(module, src).register_forward_hook(lambda m, i, o, src=src: captured.__setitem__(src, o))
        for _, src in taps.values()
    ]
    with torch.no_grad():
        module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
        out = {aux: getattr(module, head)(captured[src]).numpy() for aux, (head, src) in taps.items()}
    for hook in hooks:
        hook.remove()
    return out


@pytest.mark.parametrize(
    "name,size,taps",
    [
        # GoogLeNet's aux fc1 reads a flattened 4x4x128 map: exercises the (C,H,W) row permutation.
        ("googlenet_bn", 96, {"aux1": ("aux1", "inception4a"), "aux2": ("aux2", "inception4d")}),
        pytest.param("inception_v3", 299, {"aux": ("AuxLogits", "Mixed_6e")}, marks=pytest.mark.slow),
    ],
)
def test_torchvision_auxiliary_heads_match(name, size, taps, tmp_path):
    tv_name, _, tv_kwargs, options, _ = TORCH_PAIRS[name]
    path = tmp_path / f"{name}.pth"
    reference = save_torch_reference(tv_name, path, tv_kwargs)
    model = keras_archs.get_model(
        name, weights=str(path), aux_logits=True, input_shape=(size, size, 3), classifier_activation=None, **options
    )
    x = images(size)
    ours = {k: np.asarray(v) for k, v in model(x, training=False).items()}
    assert_equivalent(ours["main"], torch_logits(reference, x), name)
    for aux, expected in _torch_aux(reference, x, taps).items():
        assert relative_diff(ours[aux], expected) <= RTOL, aux


def test_old_densenet_keys_of_the_official_files(tmp_path):
    """torchvision's official DenseNet files spell ``denselayer1.norm.1.weight``."""
    reference = randomize(torchvision.models.densenet121(weights=None))
    old = {}
    for key, value in reference.state_dict().items():
        for part in ("norm1", "norm2", "conv1", "conv2"):
            key = key.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        old[key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    torch.save(old, tmp_path / "old.pth")
    model = keras_archs.DenseNet121(weights=str(tmp_path / "old.pth"), input_shape=(64, 64, 3), classifier_activation=None)
    x = images(64)
    assert_equivalent(keras_logits(model, x), torch_logits(reference, x), "densenet121 (old keys)")


def test_options_the_torchvision_references_need_are_named(tmp_path):
    path = tmp_path / "b0.pth"
    save_torch_reference("efficientnet_b0", path, {})
    with pytest.raises(weights_lib.WeightsError, match=r"padding='torch', include_preprocessing=False and bn_epsilon=1e-5"):
        keras_archs.EfficientNetB0(weights=str(path), input_shape=(64, 64, 3))
    with pytest.raises(weights_lib.WeightsError, match=r"bn_epsilon=1e-05"):
        keras_archs.EfficientNetB0(weights=str(path), input_shape=(64, 64, 3), padding="torch", include_preprocessing=False)
    path = tmp_path / "inception_v3.pth"
    save_torch_reference("inception_v3", path, {"init_weights": False})
    with pytest.raises(weights_lib.WeightsError, match=r"bn_scale=True, count_include_pad=True"):
        keras_archs.InceptionV3(weights=str(path), input_shape=(75, 75, 3), bn_scale=True)
    path = tmp_path / "googlenet.pth"
    save_torch_reference("googlenet", path, {"init_weights": False})
    with pytest.raises(weights_lib.WeightsError, match=r"googlenet_bn"):
        keras_archs.get_model("googlenet", weights=str(path), input_shape=(64, 64, 3))


# ---------------------------------------------------------------------------------
# keras.applications

# registry name -> (keras.applications class, input size, include_top, our options, slow)
KERAS_PAIRS = {
    "densenet121": ("DenseNet121", 64, True, {"bn_epsilon": 1.001e-5}, False),
    "densenet169": ("DenseNet169", 64, True, {"bn_epsilon": 1.001e-5}, True),
    "densenet201": ("DenseNet201", 64, True, {"bn_epsilon": 1.001e-5}, True),
    "inception_v3": ("InceptionV3", 75, True, {}, False),
    "efficientnet_b0": ("EfficientNetB0", 64, True, {}, True),  # fast: the official-std test
    # B1-B7 scale widths and depths (the name table is shared): small inputs keep them cheap.
    **{f"efficientnet_b{i}": (f"EfficientNetB{i}", 32, True, {}, True) for i in range(1, 8)},
}


def save_keras2_layout(model: keras.Model, path, rename=lambda name: name) -> None:
    """The official (Keras 2) files' layout: names may hold "/" (DenseNet's "conv1/conv"),
    weight names are "layer/var:0"."""
    layers = [layer for layer in model.layers if layer.weights]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [rename(layer.name).encode() for layer in model.layers]
        for layer in model.layers:
            name = rename(layer.name)
            group = f.create_group(name)
            weight_names = [f"{name}/{v.name}:0" for v in layer.weights] if layer in layers else []
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            for weight_name, variable in zip(weight_names, layer.weights):
                group.create_dataset(weight_name, data=np.asarray(variable))


def _randomize_normalization(model: keras.Model, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.adapt_mean.assign(rng.uniform(0.3, 0.6, 3).astype("float32"))
            layer.adapt_variance.assign(rng.uniform(0.02, 0.1, 3).astype("float32"))
            layer.finalize_state()


def keras_reference(app: str, size: int, include_top: bool) -> keras.Model:
    kwargs = {"weights": None, "input_shape": (size, size, 3), "include_top": include_top}
    kwargs.update({"classifier_activation": None} if include_top else {"pooling": "avg"})
    model = randomize_keras(getattr(keras.applications, app)(**kwargs))
    _randomize_normalization(model)
    return model


def _pixels(size: int) -> np.ndarray:
    return np.random.default_rng(5).uniform(0, 255, (2, size, size, 3)).astype("float32")


@pytest.mark.parametrize("name", [_param(n, p[-1]) for n, p in KERAS_PAIRS.items()])
def test_keras_applications_logits_match(name, tmp_path):
    app, size, include_top, options, _ = KERAS_PAIRS[name]
    ref = keras_reference(app, size, include_top)
    path = tmp_path / f"{name}.h5"
    # DenseNet's official files were written by Keras 2, whose stem is named "conv1/conv".
    save_keras2_layout(ref, path, lambda n: n.replace("conv1_", "conv1/") if app.startswith("DenseNet") else n)
    model = keras_archs.get_model(name, weights=str(path), input_shape=(size, size, 3), classifier_activation=None, **options)
    x = _pixels(size)
    diff = assert_equivalent(keras_logits(model, x), np.asarray(ref(x, training=False)), name)
    print(f"{name}: max relative diff {diff:.2e}")


@pytest.mark.slow
def test_keras_inception_v3_by_order_and_without_top(tmp_path):
    """keras' InceptionV3 layers are conv2d_N / batch_normalization_N (N depends on what the
    process built before): matched by order."""
    ref = keras_reference("InceptionV3", 75, False)
    assert "Conv2d_1a_3x3_conv" not in {layer.name for layer in ref.layers}
    path = tmp_path / "inception_v3_notop.h5"
    save_official_layout(ref, path)
    model = keras_archs.InceptionV3(weights=str(path), include_top=False, pooling="avg", input_shape=(75, 75, 3))
    x = _pixels(75) / 127.5 - 1
    assert relative_diff(np.asarray(model(x)), np.asarray(ref(x, training=False))) <= RTOL
    with pytest.raises(weights_lib.WeightsError, match=r"bn_scale=False, count_include_pad=False"):
        keras_archs.InceptionV3(weights=str(path), include_top=False, input_shape=(75, 75, 3), count_include_pad=True)


@pytest.mark.parametrize(
    "size, include_top",
    [
        pytest.param(75, True, id="75_top", marks=pytest.mark.slow),
        pytest.param(75, False, id="75_notop"),
        pytest.param(299, True, id="299_top", marks=pytest.mark.slow),
    ],
)
def test_keras_inception_resnet_v2_by_order(size, include_top, tmp_path):
    """keras' InceptionResNetV2 names its branch layers conv2d_N / batch_normalization_N and
    its block convs, conv_7b and predictions like ours: the file is matched by order."""
    ref = keras_reference("InceptionResNetV2", size, include_top)
    names = {layer.name for layer in ref.layers}
    assert "mixed_5b_branch1_1_conv" not in names and "block35_1_conv" in names
    path = tmp_path / "inception_resnet_v2.h5"
    save_official_layout(ref, path)
    assert weights_lib.detect_format(str(path)) == "keras_h5"
    head = {"classifier_activation": None} if include_top else {"include_top": False, "pooling": "avg"}
    model = keras_archs.get_model("inception_resnet_v2", weights=str(path), input_shape=(size, size, 3), **head)
    x = _pixels(size) / 127.5 - 1
    diff = assert_equivalent(keras_logits(model, x), np.asarray(ref(x, training=False)), "inception_resnet_v2")
    print(f"inception_resnet_v2 ({size}, top={include_top}): max relative diff {diff:.2e}")
    if size == 75 and not include_top:  # options that change outputs but no shapes are refused
        with pytest.raises(weights_lib.WeightsError, match=r"residual_scale=\(0.17, 0.1, 0.2\)"):
            keras_archs.InceptionResNetV2(weights=str(path), include_top=False, input_shape=(75, 75, 3), residual_scale=0.2)
        with pytest.raises(weights_lib.WeightsError, match=r"last_block_linear=True"):
            keras_archs.InceptionResNetV2(
                weights=str(path), include_top=False, input_shape=(75, 75, 3), last_block_linear=False
            )


def test_keras_efficientnet_official_std_becomes_variance(tmp_path):
    """keras' official EfficientNet files hold the ImageNet std in normalization/variance
    (keras adds a Rescaling(1/sqrt(std)) for them); we load variance = std**2. A second
    model in the process names the layer normalization_1."""
    ref = keras_reference("EfficientNetB0", 64, True)
    norm = ref.get_layer(next(layer.name for layer in ref.layers if layer.name.startswith("normalization")))
    std = np.array(IMAGENET_STD, "float32")
    norm.adapt_mean.assign(np.array([0.485, 0.456, 0.406], "float32"))
    norm.adapt_variance.assign(std**2)
    norm.finalize_state()
    x = _pixels(64)
    expected = np.asarray(ref(x, training=False))  # what the official model computes: (x - mean) / std
    norm.adapt_variance.assign(std)  # as stored in the official file
    path = tmp_path / "efficientnetb0.h5"
    save_keras2_layout(ref, path)
    model = keras_archs.EfficientNetB0(weights=str(path), input_shape=(64, 64, 3), classifier_activation=None)
    np.testing.assert_allclose(np.asarray(model.get_layer("normalization").adapt_variance), std**2, rtol=1e-6)
    assert_equivalent(keras_logits(model, x), expected, "efficientnet_b0 (official std)")


def test_normalization_state_is_refreshed_after_loading_and_after_a_failure(tmp_path, monkeypatch):
    """keras' Normalization caches mean/variance: without finalize_state() the loaded
    values would be ignored (and a restored snapshot too)."""
    ref = keras_reference("EfficientNetB0", 64, False)
    path = tmp_path / "b0_notop.h5"
    save_official_layout(ref, path)
    model = keras_archs.EfficientNetB0(include_top=False, pooling="avg", input_shape=(64, 64, 3))
    probe = keras.Model(model.input, model.get_layer("normalization").output)
    x = _pixels(64)
    before = np.asarray(probe(x))
    weights_lib.load_weights(model, str(path), arch="efficientnet_b0")
    layer = model.get_layer("normalization")
    expected = (x / 255.0 - np.asarray(layer.adapt_mean)) / np.sqrt(np.asarray(layer.adapt_variance))
    np.testing.assert_allclose(np.asarray(probe(x)), expected, rtol=1e-4, atol=1e-4)
    assert relative_diff(np.asarray(model(x)), np.asarray(ref(x, training=False))) <= RTOL
    # a failure after some variables were assigned restores the snapshot, and the cache with it
    loaded = np.asarray(probe(x))
    real_plan = loader.plan_assignments

    def failing_plan(model, path, spec, *, skip=()):
        plan = real_plan(model, path, spec, skip=skip)
        return [*plan, (plan[0][0], np.zeros((1, 2, 3), "float32"))]

    monkeypatch.setattr(loader, "plan_assignments", failing_plan)
    fresh = keras_archs.EfficientNetB0(include_top=False, pooling="avg", input_shape=(64, 64, 3))
    fresh_probe = keras.Model(fresh.input, fresh.get_layer("normalization").output)
    with pytest.raises(weights_lib.WeightsError):
        weights_lib.load_weights(fresh, str(path), arch="efficientnet_b0")
    np.testing.assert_allclose(np.asarray(fresh_probe(x)), before, rtol=1e-6)
    assert not np.allclose(loaded, before)
