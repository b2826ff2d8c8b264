"""Inception-v4 / Inception-ResNet family: grids and widths of the paper's figures,
live reference checks (keras.applications, timm), layout and option behaviour."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import timm
import torch

import keras_archs
from tests.conftest import trainable_count


def _shape(model, layer):
    return tuple(model.get_layer(layer).output.shape[1:])


def _names(model, pattern):
    return [layer.name for layer in model.layers if re.fullmatch(pattern, layer.name)]


# ---------------------------------------------------------------------------
# References


def test_inception_resnet_v2_count_equals_keras_applications_live():
    spec = keras_archs.get_spec("inception_resnet_v2")
    assert spec.param_source == "keras.applications InceptionResNetV2"
    reference = keras.applications.InceptionResNetV2(weights=None)
    assert reference.count_params() == spec.total_params == 55_873_736
    assert trainable_count(reference) == spec.params


def test_inception_resnet_v2_computes_what_keras_applications_computes():
    """Same weights, same outputs: keras' unnamed layers pair one to one, in model order,
    with ours (the mapping weight import will use)."""
    shape = (75, 75, 3)
    reference = keras.applications.InceptionResNetV2(weights=None, include_top=False, input_shape=shape, pooling="avg")
    ours = keras_archs.InceptionResNetV2(include_top=False, input_shape=shape, pooling="avg")
    pairs = list(zip(*([layer for layer in m.layers if layer.weights] for m in (reference, ours)), strict=True))
    rng = np.random.default_rng(0)
    for theirs, mine in pairs:
        values = [
            (rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.normal(0, 0.05, w.shape)).astype("float32")
            for w in theirs.weights
        ]
        theirs.set_weights(values)
        mine.set_weights(values)
    x = np.random.default_rng(1).uniform(-1, 1, (2, *shape)).astype("float32")
    expected = np.asarray(reference(x, training=False))
    np.testing.assert_allclose(np.asarray(ours(x, training=False)), expected, rtol=1e-5, atol=1e-5)
    up_convs = [mine.name for theirs, mine in pairs if theirs.name.endswith("_conv")]
    assert up_convs == [theirs.name for theirs, _ in pairs if theirs.name.endswith("_conv")]  # block35_1_conv, ...
    # timm's inception_resnet_v2 is the same network with a BN scale (gamma) per channel.
    with torch.device("meta"):
        timm_trunk = timm.create_model("inception_resnet_v2", pretrained=False, num_classes=0)
    gammas = sum(
        layer.weights[0].shape[0] for layer in ours.layers if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert trainable_count(ours) + gammas == sum(p.numel() for p in timm_trunk.parameters())


# Block order of Figure 9, for sorting our conv/BN layers into timm's module order.
_V4_BLOCKS = [
    "conv_1a", "conv_2a", "conv_2b", "mixed_3a", "mixed_4a", "mixed_5a",
    *[f"inception_a{i}" for i in range(1, 5)], "reduction_a",
    *[f"inception_b{i}" for i in range(1, 8)], "reduction_b",
    *[f"inception_c{i}" for i in range(1, 4)],
]  # fmt: skip


def _v4_order(name):
    block = next(b for b in sorted(_V4_BLOCKS, key=len, reverse=True) if name.startswith(b))
    rest = re.fullmatch(r"_branch(\d)_(\d)([ab]?)_(conv|bn)", name[len(block) :])
    return (_V4_BLOCKS.index(block), *((int(rest[1]), int(rest[2]), rest[3]) if rest else (0, 0, "")))


def test_inception_v4_computes_what_timm_computes():
    """timm's inception_v4 (TF-slim's layout) with our kernel_order="tf-slim": same
    weights give the same features, so every branch, padding and pooling agrees."""
    reference = timm.create_model("inception_v4", pretrained=False).eval()
    ours = keras_archs.InceptionV4(include_top=False, input_shape=(75, 75, 3), kernel_order="tf-slim")
    convs = sorted((layer for layer in ours.layers if layer.name.endswith("_conv")), key=lambda la: _v4_order(la.name))
    torch_convs = [m for m in reference.features.modules() if isinstance(m, torch.nn.Conv2d)]
    torch_bns = [m for m in reference.features.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == len(torch_convs) == len(torch_bns) == 149
    gen = torch.Generator().manual_seed(0)
    for layer, tconv, tbn in zip(convs, torch_convs, torch_bns):
        with torch.no_grad():
            tconv.weight.normal_(0, 0.05, generator=gen)
            tbn.weight.uniform_(0.5, 1.5, generator=gen)
            tbn.bias.normal_(0, 0.1, generator=gen)
            tbn.running_mean.normal_(0, 0.1, generator=gen)
            tbn.running_var.uniform_(0.5, 1.5, generator=gen)
        layer.set_weights([tconv.weight.detach().numpy().transpose(2, 3, 1, 0)])
        bn = ours.get_layer(layer.name[: -len("conv")] + "bn")
        bn.set_weights([t.detach().numpy() for t in (tbn.weight, tbn.bias, tbn.running_mean, tbn.running_var)])
        assert bn.epsilon == tbn.eps
    x = np.random.default_rng(2).uniform(-1, 1, (2, 75, 75, 3)).astype("float32")
    with torch.no_grad():
        expected = reference.forward_features(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(ours(x, training=False)), expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# Grids and widths at 299 pixels, from the paper's figures


V4_GRIDS = {
    # Figure 3: 149x149x32, 147x147x32, 147x147x64, 73x73x160, 71x71x192, 35x35x384;
    # Figure 9: 35x35x384 -> Reduction-A 17x17x1024 -> Reduction-B 8x8x1536.
    "conv_1a_relu": (149, 149, 32),
    "conv_2a_relu": (147, 147, 32),
    "conv_2b_relu": (147, 147, 64),
    "mixed_3a": (73, 73, 160),
    "mixed_4a": (71, 71, 192),
    "mixed_5a": (35, 35, 384),
    "inception_a4": (35, 35, 384),
    "reduction_a": (17, 17, 1024),
    "inception_b7": (17, 17, 1024),
    "reduction_b": (8, 8, 1536),
    "inception_c3": (8, 8, 1536),
}
IR_V1_GRIDS = {
    # Figure 14: 149x149x32, 147x147x32, 147x147x64, 73x73x64, 73x73x80, 71x71x192, 35x35x256;
    # Reduction-A: 256 + n 384 + m 256 = 896 (Figure 11); Reduction-B: 896 + 384 + 256 + 256 = 1792 (Figure 13).
    "conv_1a_relu": (149, 149, 32),
    "conv_2b_relu": (147, 147, 64),
    "pool_3a": (73, 73, 64),
    "conv_3b_relu": (73, 73, 80),
    "conv_4a_relu": (71, 71, 192),
    "conv_4b_relu": (35, 35, 256),
    "block35_5_relu": (35, 35, 256),
    "mixed_6a": (17, 17, 896),
    "block17_10_relu": (17, 17, 896),
    "mixed_7a": (8, 8, 1792),
    "block8_5_relu": (8, 8, 1792),
}
IR_V2_KERAS_GRIDS = {
    # keras.applications: 35x35x192 -> mixed_5b 320 -> 17x17x1088 -> 8x8x2080 -> conv_7b 1536.
    "pool_5a": (35, 35, 192),
    "mixed_5b": (35, 35, 320),
    "mixed_6a": (17, 17, 320 + 384 + 384),
    "mixed_7a": (8, 8, 1088 + 384 + 288 + 320),
    "block8_10_add": (8, 8, 2080),
    "conv_7b_relu": (8, 8, 1536),
}
IR_V2_PAPER_GRIDS = {
    # Figure 3 stem (35x35x384); Reduction-A k,l,m,n = 256,256,384,384: 384+384+384 = 1152;
    # Reduction-B (Figure 18): 1152+384+288+320 = 2144.
    "mixed_5a": (35, 35, 384),
    "mixed_6a": (17, 17, 1152),
    "mixed_7a": (8, 8, 2144),
    "block8_5_relu": (8, 8, 2144),
}


@pytest.mark.parametrize(
    "name,options,grids,blocks",
    [
        ("inception_v4", {"aux_logits": True}, V4_GRIDS, (4, 7, 3)),
        ("inception_resnet_v1", {}, IR_V1_GRIDS, (5, 10, 5)),
        ("inception_resnet_v2", {}, IR_V2_KERAS_GRIDS, (10, 20, 10)),
        ("inception_resnet_v2", {"layout": "paper"}, IR_V2_PAPER_GRIDS, (5, 10, 5)),
    ],
    ids=["v4", "ir_v1", "ir_v2_keras", "ir_v2_paper"],
)
def test_grids_widths_and_block_counts_at_299(name, options, grids, blocks):
    model = keras_archs.get_model(name, input_shape=(299, 299, 3), **options)
    assert {layer: _shape(model, layer) for layer in grids} == grids
    if name == "inception_v4":
        counts = tuple(len(_names(model, rf"inception_{k}\d")) for k in "abc")
        # Figure 3 draws 7x1 before 1x7; Figure 6 1x3 (448) before 3x1 (512).
        assert model.get_layer("mixed_4a_branch1_2_conv").kernel_size == (7, 1)
        assert model.get_layer("inception_c1_branch2_2_conv").kernel_size == (1, 3)
        # aux_logits=True: the auxiliary head reads the last Inception-B block's 17x17x1024 output.
        assert set(model.output) == {"main", "aux"}
        assert model.get_layer("aux_pool").input is model.get_layer("inception_b7").output
    else:
        counts = tuple(len(_names(model, rf"{k}_\d+_add")) for k in ("block35", "block17", "block8"))
        assert not isinstance(model.output, dict) and not _names(model, "aux_.*")  # no aux unless asked
        # Every residual "up" conv is linear with a bias and restores the block's input width.
        for up in _names(model, r"block\d+_\d+_conv"):
            layer = model.get_layer(up)
            assert layer.use_bias and layer.activation.__name__ == "linear"
            assert layer.filters == model.get_layer(up[: -len("conv")] + "add").output.shape[-1]
    assert counts == blocks
    keras_layout = name == "inception_resnet_v2" and not options
    assert bool(_names(model, "conv_7b_conv")) == keras_layout
    if name != "inception_v4":
        last = f"block8_{blocks[2]}"
        assert bool(_names(model, f"{last}_relu")) != keras_layout
        assert model.get_layer(f"{last}_scale").scale == (1.0 if keras_layout else 0.2)


# ---------------------------------------------------------------------------
# Options


def test_residual_scale_changes_outputs_and_is_per_stage():
    shape = (75, 75, 3)
    a = keras_archs.InceptionResNetV1(include_top=False, input_shape=shape, pooling="avg", residual_scale=0.1)
    b = keras_archs.InceptionResNetV1(
        include_top=False, input_shape=shape, pooling="avg", residual_scale=(0.3, 0.2, 0.25)
    )
    assert {a.get_layer(f"{k}_scale").scale for k in ("block35_1", "block17_3", "block8_5")} == {0.1}
    assert [b.get_layer(f"{k}_scale").scale for k in ("block35_1", "block17_3", "block8_5")] == [0.3, 0.2, 0.25]
    b.set_weights(a.get_weights())  # same weights: only the scaling differs
    x = np.random.default_rng(3).uniform(-1, 1, (1, *shape)).astype("float32")
    assert not np.allclose(np.asarray(a(x, training=False)), np.asarray(b(x, training=False)), rtol=1e-3)
    with pytest.raises(ValueError, match="residual_scale"):
        keras_archs.InceptionResNetV1(residual_scale=(0.1, 0.2))


def test_layout_and_option_validation():
    with pytest.raises(ValueError, match="layout must be one of"):
        keras_archs.InceptionResNetV1(layout="keras")
    with pytest.raises(ValueError, match="kernel_order"):
        keras_archs.InceptionV4(kernel_order="slim")
    with pytest.raises(ValueError, match="stem_type"):
        keras_archs.InceptionResNetV2(stem_type="v3")


def test_aux_head_outputs():
    aux = keras_archs.InceptionResNetV1(classes=5, aux_logits=True)
    assert set(aux.output) == {"main", "aux"}
    # On the 17x17 grid of the last B block: 5x5/3 pooling -> 5x5, then a 5x5 valid conv -> 1x1.
    assert tuple(aux.get_layer("aux_pool").input.shape[1:]) == (17, 17, 896)
    assert tuple(aux.get_layer("aux_conv2_relu").output.shape[1:]) == (1, 1, 768)
    x = np.random.default_rng(4).uniform(-1, 1, (1, 299, 299, 3)).astype("float32")
    y = aux(x, training=False)
    assert {k: tuple(v.shape) for k, v in y.items()} == {"main": (1, 5), "aux": (1, 5)}
    np.testing.assert_allclose(np.asarray(y["aux"]).sum(), 1.0, rtol=1e-5)
    # Without a top there is nothing to attach the head to.
    assert not isinstance(keras_archs.InceptionResNetV1(include_top=False, aux_logits=True).output, dict)
    with pytest.raises(ValueError, match="299x299"):
        keras_archs.InceptionResNetV1(aux_logits=True, input_shape=(298, 298, 3))
