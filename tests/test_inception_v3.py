"""Inception-v3: grid sizes and widths of Table 1, the auxiliary classifier (only when
asked, named aux), and live checks against both references: keras.applications'
InceptionV3 (the default layout: counts and identical outputs with its weights) and
torchvision's inception_v3 (``bn_scale=True, count_include_pad=True``: counts with and
without the auxiliary head, identical outputs with its weights copied by name)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
import torchvision

import keras_archs
from tests.conftest import trainable_count

# Output (grid, channels) of every module at 299x299 (Table 1: 35x35x288 after the three
# Figure-5 modules, 17x17x768 after the Figure-6 modules, 8x8x2048 at the end).
MODULE_OUTPUTS = {
    "Mixed_5b": (35, 256),
    "Mixed_5c": (35, 288),
    "Mixed_5d": (35, 288),
    "Mixed_6a": (17, 768),
    "Mixed_6b": (17, 768),
    "Mixed_6c": (17, 768),
    "Mixed_6d": (17, 768),
    "Mixed_6e": (17, 768),
    "Mixed_7a": (8, 1280),
    "Mixed_7b": (8, 2048),
    "Mixed_7c": (8, 2048),
}
TORCHVISION = dict(bn_scale=True, count_include_pad=True)


def test_default_counts_equal_keras_applications_live():
    reference = keras.applications.InceptionV3(weights=None)
    spec = keras_archs.get_spec("inception_v3")
    assert reference.count_params() == spec.total_params
    assert trainable_count(reference) == spec.params
    keras.backend.clear_session()
    model = keras_archs.InceptionV3()
    assert model.count_params() == reference.count_params()


@pytest.mark.parametrize("aux_logits", [False, True])
def test_bn_scale_counts_equal_torchvision_live(aux_logits):
    with torch.device("meta"):
        tv = torchvision.models.inception_v3(weights=None, aux_logits=aux_logits, init_weights=False)
    model = keras_archs.InceptionV3(aux_logits=aux_logits, **TORCHVISION)
    assert trainable_count(model) == sum(p.numel() for p in tv.parameters())


def test_grid_sizes_and_widths_at_299():
    model = keras_archs.InceptionV3()
    assert tuple(model.get_layer("maxpool2").output.shape[1:]) == (35, 35, 192)
    for layer, (grid, channels) in MODULE_OUTPUTS.items():
        assert tuple(model.get_layer(layer).output.shape[1:]) == (grid, grid, channels), layer


def test_auxiliary_output_only_when_asked():
    plain = keras_archs.InceptionV3(classes=10)
    assert not isinstance(plain.output, dict)
    assert not any(layer.name.startswith("AuxLogits") for layer in plain.layers)

    model = keras_archs.InceptionV3(classes=10, aux_logits=True)
    x = np.random.default_rng(0).uniform(size=(1, 299, 299, 3)).astype("float32")
    y = model(x, training=False)
    assert set(y) == {"main", "aux"}
    for key in y:
        assert tuple(y[key].shape) == (1, 10)
    assert model.get_layer("AuxLogits_avgpool").input.shape[1:] == (17, 17, 768)  # after Mixed_6e
    assert tuple(model.get_layer("AuxLogits_conv1_conv").output.shape[1:]) == (1, 1, 768)

    trunk = keras_archs.InceptionV3(include_top=False, aux_logits=True, input_shape=(75, 75, 3))
    assert not isinstance(trunk.output, dict)
    with pytest.raises(ValueError, match="299x299"):
        keras_archs.InceptionV3(aux_logits=True, input_shape=(298, 298, 3))


def test_min_size_equals_keras_applications():
    keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    with pytest.raises(ValueError):
        keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(74, 74, 3))
    assert keras_archs.get_spec("inception_v3").min_size == 75


def test_options_change_the_layers():
    default = keras_archs.InceptionV3()
    tv = keras_archs.InceptionV3(dropout=0.5, **TORCHVISION)
    assert not default.get_layer("Mixed_5b_branch1x1_bn").scale
    assert tv.get_layer("Mixed_5b_branch1x1_bn").scale
    assert default.get_layer("Mixed_5b_branch1x1_bn").epsilon == pytest.approx(1e-3)
    assert default.get_layer("Mixed_6b_branch7x7_2_conv").kernel.shape == (1, 7, 128, 128)
    assert default.get_layer("Mixed_6b_branch7x7_3_conv").kernel.shape == (7, 1, 128, 192)
    assert tv.get_layer("top_dropout").rate == pytest.approx(0.5)
    assert not any(layer.name == "top_dropout" for layer in default.layers)


def _randomise_bn_statistics(model: keras.Model) -> None:
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.uniform(-0.1, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.uniform(-0.1, 0.1, n).astype("float32"))


def test_default_reproduces_keras_applications_outputs():
    """keras.applications names its convolutions conv2d_N in creation order; ours come in
    the same order, so its weights copy over layer by layer and give the same outputs."""
    reference = keras.applications.InceptionV3(weights=None, classifier_activation=None)
    _randomise_bn_statistics(reference)
    model = keras_archs.InceptionV3(classifier_activation=None)
    kinds = (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Dense)
    ref_layers = [layer for layer in reference.layers if isinstance(layer, kinds)]
    our_layers = [layer for layer in model.layers if isinstance(layer, kinds)]
    assert [type(a) for a in ref_layers] == [type(b) for b in our_layers]
    for src, dst in zip(ref_layers, our_layers):
        dst.set_weights(src.get_weights())
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 299, 299, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(model(x, training=False)), np.asarray(reference(x, training=False)), rtol=1e-3, atol=1e-4
    )


def test_bn_scale_reproduces_torchvision_outputs():
    torch.manual_seed(0)
    with torch.device("cpu"):
        tv = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    with torch.no_grad():
        for module in tv.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    model = keras_archs.InceptionV3(aux_logits=True, classifier_activation=None, **TORCHVISION)
    for module_name, module in tv.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            values = [module.weight.detach().permute(2, 3, 1, 0).numpy()]
        elif isinstance(module, torch.nn.BatchNorm2d):
            values = [t.detach().numpy() for t in (module.weight, module.bias, module.running_mean, module.running_var)]
        elif isinstance(module, torch.nn.Linear):
            values = [module.weight.detach().T.numpy(), module.bias.detach().numpy()]
        else:
            continue
        model.get_layer("predictions" if module_name == "fc" else module_name.replace(".", "_")).set_weights(values)

    x = np.random.default_rng(2).normal(size=(1, 299, 299, 3)).astype("float32")
    captured = {}
    hook = tv.Mixed_6e.register_forward_hook(lambda m, i, o: captured.__setitem__("x", o))
    with torch.no_grad():
        ref_main = tv(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
        ref_aux = tv.AuxLogits(captured["x"]).numpy()  # torchvision runs it only in training
    hook.remove()
    y = {k: np.asarray(v) for k, v in model(x, training=False).items()}
    np.testing.assert_allclose(y["main"], ref_main, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(y["aux"], ref_aux, rtol=1e-3, atol=1e-4)
