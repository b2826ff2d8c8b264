"""EfficientNet: Table 1's stages, compound scaling, drop-connect and SE, and
equivalence with keras.applications and torchvision when given their weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
import torchvision

import keras_archs
from keras_archs.models import efficientnet as eff

VARIANTS = [f"b{i}" for i in range(8)]


def _relative_error(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def _copy_by_name(source: keras.Model, target: keras.Model) -> int:
    mine = {layer.name: layer for layer in target.layers}
    copied = 0
    for layer in source.layers:
        if layer.weights:
            mine[layer.name].set_weights(layer.get_weights())
            copied += 1
    # keras' Normalization caches its mean/variance when built; set_weights alone leaves them stale.
    mine["normalization"].finalize_state()
    return copied


@pytest.mark.parametrize(
    "key", [pytest.param(k, marks=pytest.mark.slow) if k in ("b5", "b6", "b7") else k for k in VARIANTS]
)
def test_total_params_equal_keras_applications(key):
    spec = keras_archs.get_spec(f"efficientnet_{key}")
    assert spec.param_source == f"torchvision efficientnet_{key}"
    reference = getattr(keras.applications, f"EfficientNet{key.upper()}")(weights=None)
    assert reference.count_params() == spec.total_params
    assert sum(int(np.prod(w.shape)) for w in reference.trainable_weights) == spec.params


def test_b0_stages_follow_table_1():
    model = keras_archs.EfficientNetB0(include_top=False, input_shape=(224, 224, 3))
    assert model.get_layer("stem_activation").output.shape[1:] == (112, 112, 32)
    # Table 1, stages 2-8: (resolution after the stage, channels, layers).
    table = [(112, 16, 1), (56, 24, 2), (28, 40, 2), (14, 80, 3), (14, 112, 3), (7, 192, 4), (7, 320, 1)]
    for stage, (size, channels, layers) in enumerate(table, start=1):
        last = f"block{stage}{chr(ord('a') + layers - 1)}"
        assert model.get_layer(f"{last}_project_bn").output.shape[1:] == (size, size, channels)
        with pytest.raises(ValueError):
            model.get_layer(f"block{stage}{chr(ord('a') + layers)}_project_bn")
    assert model.output.shape[1:] == (7, 7, 1280)
    # MBConv1 in stage 2 has no expansion; MBConv6 expands 6x with the stage's kernel.
    with pytest.raises(ValueError):
        model.get_layer("block1a_expand_conv")
    assert model.get_layer("block2a_expand_conv").filters == 16 * 6
    assert model.get_layer("block3a_dwconv").kernel_size == (5, 5)
    assert model.get_layer("block4a_dwconv").kernel_size == (3, 3)


def test_compound_scaling_rounding():
    # B7: width 2.0, depth 3.1 -> channels double; repeats ceil(3.1 * r).
    assert [eff.round_filters(f, 2.0) for f in (32, 16, 24, 40, 80, 112, 192, 320, 1280)] == [
        64, 32, 48, 80, 160, 224, 384, 640, 2560,
    ]
    configs = eff.block_configs(2.0, 3.1)
    per_stage = [sum(c["name"].startswith(f"block{s}") for c in configs) for s in range(1, 8)]
    assert per_stage == [4, 7, 7, 10, 10, 13, 4]  # ceil(3.1 * (1, 2, 2, 3, 3, 4, 1))
    # B3 (width 1.2): 16 * 1.2 = 19.2 rounds to 16, more than 10% down, so 24;
    # 112 * 1.2 = 134.4 -> 136; 192 * 1.2 = 230.4 -> 232; 38.4 -> 40.
    model = keras_archs.EfficientNetB3(include_top=False, input_shape=(64, 64, 3))
    assert model.get_layer("stem_conv").filters == 40
    assert model.get_layer("block1b_project_conv").filters == 24
    assert model.get_layer("block5e_project_conv").filters == 136
    assert model.get_layer("block6f_project_conv").filters == 232
    assert model.get_layer("block7b_project_conv").filters == 384
    assert model.get_layer("top_conv").filters == 1536
    # depth 1.4: ceil(1.4 * 4) = 6 blocks in stage 6 (block6a..f), ceil(1.4) = 2 in stage 7.
    with pytest.raises(ValueError):
        model.get_layer("block6g_project_conv")


def test_drop_connect_grows_with_block_index():
    model = keras_archs.EfficientNetB0()
    blocks = [layer.name[: -len("_project_bn")] for layer in model.layers if layer.name.endswith("_project_bn")]
    assert len(blocks) == 16
    rates = {}
    for index, block in enumerate(blocks):
        try:
            rates[block] = model.get_layer(f"{block}_drop").rate
        except ValueError:
            continue
        assert rates[block] == pytest.approx(0.2 * index / 16)
    # Only same-shape blocks have a skip (and hence drop-connect): the first block of
    # each stage changes shape, all others keep it.
    assert sorted(rates) == sorted(b for b in blocks if not b.endswith("a"))
    values = [rates[b] for b in blocks if b in rates]
    # The last block (block7a, index 15) changes shape, so the last drop-connect is block6d's.
    assert values == sorted(values) and values[-1] == pytest.approx(0.2 * 14 / 16)
    assert model.get_layer("top_dropout").rate == 0.2
    plain = keras_archs.EfficientNetB0(include_top=False, input_shape=(32, 32, 3), drop_connect_rate=0.0)
    assert not [layer for layer in plain.layers if layer.name.endswith("_drop")]
    assert plain.get_layer("block2b_add")  # the skip stays without drop-connect
    # Drop-connect drops a sample's whole branch in training, and is the identity at inference.
    layer = model.get_layer("block6d_drop")
    y = np.asarray(layer(np.ones((64, 2, 2, 3), "float32"), training=True))
    per_sample = y.reshape(64, -1)
    assert np.all((per_sample == 0).all(axis=1) | np.isclose(per_sample, 1 / (1 - layer.rate)).all(axis=1))
    assert (per_sample == 0).all(axis=1).any()


def test_squeeze_excitation_ratio():
    model = keras_archs.EfficientNetB0(include_top=False, input_shape=(32, 32, 3))
    # Squeeze to a quarter of the block's *input* channels, excite back to the expanded ones.
    for block, filters_in, expanded in (("block1a", 32, 32), ("block2a", 16, 96), ("block2b", 24, 144), ("block6a", 112, 672)):
        assert model.get_layer(f"{block}_se_reduce").filters == filters_in // 4
        assert model.get_layer(f"{block}_se_expand").filters == expanded
        assert model.get_layer(f"{block}_se_expand").activation.__name__ == "sigmoid"


def test_same_outputs_as_keras_applications_with_its_weights():
    ours = keras_archs.EfficientNetB0(classifier_activation=None)
    reference = keras.applications.EfficientNetB0(weights=None, classifier_activation=None)
    assert _copy_by_name(reference, ours) == sum(1 for layer in ours.layers if layer.weights)
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    assert _relative_error(ours(x), reference(x)) < 1e-5


def test_padding_option():
    x = np.random.default_rng(1).uniform(0, 255, (1, 225, 225, 3)).astype("float32")
    keras_pad = keras_archs.EfficientNetB0(include_top=False, input_shape=(None, None, 3))
    torch_pad = keras_archs.EfficientNetB0(include_top=False, input_shape=(None, None, 3), padding="torch")
    assert torch_pad.count_params() == keras_pad.count_params()
    _copy_by_name(keras_pad, torch_pad)
    # Every strided layer sees an odd size at 225 (225, 113, 57, 29, 15): "same" pads
    # symmetrically there. At 224 TensorFlow pads one less row/column at the top/left.
    assert _relative_error(torch_pad(x), keras_pad(x)) < 1e-5
    assert _relative_error(torch_pad(x[:, :224, :224]), keras_pad(x[:, :224, :224])) > 1e-2
    assert torch_pad.get_layer("block2a_dwconv_pad").padding == ((1, 1), (1, 1))
    with pytest.raises(ValueError, match="padding must be one of"):
        keras_archs.EfficientNetB0(padding="tf")


def test_preprocessing_option():
    with_pre = keras_archs.EfficientNetB0()
    without = keras_archs.EfficientNetB0(include_preprocessing=False)
    # keras.applications counts the Normalization layer's mean (3), variance (3) and count (1).
    assert with_pre.count_params() - without.count_params() == 7
    names = {layer.name for layer in without.layers}
    assert not {"rescaling", "normalization"} & names
    probe = keras.Model(with_pre.input, with_pre.get_layer("normalization").output)
    mean_image = np.broadcast_to(np.array(eff.IMAGENET_MEAN) * 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(probe(mean_image)), 0.0, atol=1e-5)
    std_image = mean_image + np.array(eff.IMAGENET_STD, "float32") * 255
    np.testing.assert_allclose(np.asarray(probe(std_image)), 1.0, atol=1e-5)


def _torchvision_b0_keras_names(tv) -> dict:
    """torchvision efficientnet_b0 module -> our layer name (conv, bn) pairs."""
    mapping = {"features.0.0": "stem_conv", "features.0.1": "stem_bn", "features.8.0": "top_conv", "features.8.1": "top_bn"}
    for stage in range(1, 8):
        for j, block in enumerate(tv.features[stage]):
            name = f"block{stage}{chr(ord('a') + j)}"
            parts = ["dwconv", "se", "project"] if len(block.block) == 3 else ["expand", "dwconv", "se", "project"]
            for k, part in enumerate(parts):
                prefix = f"features.{stage}.{j}.block.{k}"
                if part == "se":
                    mapping[f"{prefix}.fc1"] = f"{name}_se_reduce"
                    mapping[f"{prefix}.fc2"] = f"{name}_se_expand"
                elif part == "dwconv":
                    mapping[f"{prefix}.0"] = f"{name}_dwconv"
                    mapping[f"{prefix}.1"] = f"{name}_bn"
                else:
                    mapping[f"{prefix}.0"] = f"{name}_{part}_conv"
                    mapping[f"{prefix}.1"] = f"{name}_{part}_bn"
    mapping["classifier.1"] = "predictions"
    return mapping


def test_same_outputs_as_torchvision_with_its_weights():
    """torchvision's B0 is the same network with symmetric padding and BN eps 1e-5."""
    torch.manual_seed(0)
    tv = torchvision.models.efficientnet_b0(weights=None).eval()
    with torch.no_grad():
        for module in tv.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    ours = keras_archs.EfficientNetB0(
        padding="torch", bn_epsilon=1e-5, include_preprocessing=False, classifier_activation=None
    )
    modules = dict(tv.named_modules())
    mapping = _torchvision_b0_keras_names(tv)
    assert len(mapping) == sum(1 for layer in ours.layers if layer.weights)
    for module_name, layer_name in mapping.items():
        module, layer = modules[module_name], ours.get_layer(layer_name)
        if isinstance(module, torch.nn.BatchNorm2d):
            values = [module.weight, module.bias, module.running_mean, module.running_var]
        elif isinstance(module, torch.nn.Linear):
            values = [module.weight.T, module.bias]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [module.weight.permute(2, 3, 0, 1)]
        else:
            values = [module.weight.permute(2, 3, 1, 0)] + ([module.bias] if module.bias is not None else [])
        layer.set_weights([v.detach().numpy() for v in values])
    x = np.random.default_rng(2).normal(size=(2, 224, 224, 3)).astype("float32")
    with torch.no_grad():
        expected = tv(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    assert _relative_error(ours(x), expected) < 1e-4
