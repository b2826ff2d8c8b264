"""GoogLeNet family: Table 1's module widths and grid sizes, the auxiliary classifiers
(only when asked, named aux1/aux2), the paper vs torchvision layouts, and live
checks against torchvision's googlenet parameter counts. (Main and auxiliary logits equal to
torchvision's with its weights, loaded through ``weights=``: tests/test_weights_more.py.)"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
import torchvision

import keras_archs
from keras_archs.blocks import pool
from tests.conftest import trainable_count

# Table 1: output channels of every inception module, and its grid at 224x224.
TABLE1_OUTPUTS = {
    "inception3a": (28, 256),
    "inception3b": (28, 480),
    "inception4a": (14, 512),
    "inception4b": (14, 512),
    "inception4c": (14, 512),
    "inception4d": (14, 528),
    "inception4e": (14, 832),
    "inception5a": (7, 832),
    "inception5b": (7, 1024),
}


def _torchvision_googlenet(aux_logits: bool, device: str = "cpu"):
    with torch.device(device):
        return torchvision.models.googlenet(weights=None, aux_logits=aux_logits, init_weights=False)


def test_googlenet_bn_counts_equal_torchvision_live():
    tv_plain = _torchvision_googlenet(False, "meta")
    tv_aux = _torchvision_googlenet(True, "meta")
    spec = keras_archs.get_spec("googlenet_bn")
    assert sum(p.numel() for p in tv_plain.parameters()) == spec.params
    assert trainable_count(keras_archs.GoogLeNetBN(aux_logits=True)) == sum(p.numel() for p in tv_aux.parameters())


def test_googlenet_paper_count_with_auxiliary_heads():
    # Section 5, per head: 1x1 conv 128 (+bias), fc 128*4*4 -> 1024 (+bias), linear 1024 -> 1000 (+bias).
    head = 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    aux1 = 512 * 128 + 128 + head
    aux2 = 528 * 128 + 128 + head
    model = keras_archs.GoogLeNet(aux_logits=True)
    assert trainable_count(model) == keras_archs.get_spec("googlenet").params + aux1 + aux2


@pytest.mark.parametrize("name", ["googlenet", "googlenet_bn"])
def test_inception_modules_match_table1(name):
    model = keras_archs.get_model(name)
    for layer, (grid, channels) in TABLE1_OUTPUTS.items():
        assert tuple(model.get_layer(layer).output.shape[1:]) == (grid, grid, channels), layer
    assert tuple(model.get_layer("maxpool1").output.shape[1:]) == (56, 56, 64)
    assert tuple(model.get_layer("maxpool2").output.shape[1:]) == (28, 28, 192)


@pytest.mark.parametrize("name", ["googlenet", "googlenet_bn"])
def test_auxiliary_outputs_only_when_asked(name):
    x = np.random.default_rng(0).uniform(size=(2, 224, 224, 3)).astype("float32")
    plain = keras_archs.get_model(name, classes=10)
    assert not isinstance(plain.output, dict)
    assert not any(layer.name.startswith("aux") for layer in plain.layers)

    model = keras_archs.get_model(name, classes=10, aux_logits=True)
    y = model(x, training=False)
    assert set(y) == {"main", "aux1", "aux2"}
    for key in y:
        assert tuple(y[key].shape) == (2, 10)
        np.testing.assert_allclose(np.asarray(y[key]).sum(-1), 1.0, rtol=1e-5)
    # The heads branch off (4a) and (4d) (Section 5).
    assert model.get_layer("aux1_avgpool").input.shape[-1] == 512
    assert model.get_layer("aux2_avgpool").input.shape[-1] == 528
    assert tuple(model.get_layer("aux1_conv_conv").output.shape[1:]) == (4, 4, 128)

    # Without a top the heads are not built.
    trunk = keras_archs.get_model(name, include_top=False, aux_logits=True)
    assert not isinstance(trunk.output, dict)
    assert not any(layer.name.startswith("aux") for layer in trunk.layers)


def test_paper_and_torchvision_layouts_differ_where_documented():
    paper = keras_archs.GoogLeNet()
    tv = keras_archs.GoogLeNetBN()
    assert paper.get_layer("inception4a_branch3_1_conv").kernel.shape == (5, 5, 16, 48)
    assert tv.get_layer("inception4a_branch3_1_conv").kernel.shape == (3, 3, 16, 48)
    assert paper.get_layer("conv1_conv").use_bias and not tv.get_layer("conv1_conv").use_bias
    assert tv.get_layer("conv1_bn").epsilon == pytest.approx(1e-3)
    assert {"norm1", "norm2"} <= {layer.name for layer in paper.layers}
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in paper.layers)
    assert paper.get_layer("maxpool4").pool_size == 3
    assert tv.get_layer("maxpool4").pool_size == 2
    assert paper.get_layer("top_dropout").rate == pytest.approx(0.4)


def test_paper_auxiliary_head_needs_a_5x5_grid():
    with pytest.raises(ValueError, match="79x79"):
        keras_archs.GoogLeNet(aux_logits=True, input_shape=(78, 78, 3))
    model = keras_archs.GoogLeNet(aux_logits=True, input_shape=(79, 79, 3))
    assert tuple(model.get_layer("aux1_avgpool").output.shape[1:3]) == (1, 1)


def test_googlenet_bn_min_size_equals_torchvision():
    meta = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.meta
    assert meta["min_size"] == (15, 15)
    assert keras_archs.get_spec("googlenet_bn").min_size == 15


@pytest.mark.parametrize("size", [7, 8, 14, 15, 28, 29, 31])
@pytest.mark.parametrize("pool_size, strides, padding", [(2, 2, 0), (3, 2, 0), (3, 1, 1), (3, 2, 1)])
def test_ceil_max_pool_equals_torch_ceil_mode(size, pool_size, strides, padding):
    # Negative inputs: padding that could win the max (zeros) would show.
    x = np.random.default_rng(size).normal(size=(1, size, size + 3, 4)).astype("float32") - 1
    inp = keras.Input((None, None, 4))  # open size: the padding needs no known shape
    ours = keras.Model(inp, pool(inp, pool_size, strides, padding=padding, ceil_mode=True, name="p"))(x)
    ref = torch.nn.functional.max_pool2d(
        torch.from_numpy(x).permute(0, 3, 1, 2), pool_size, strides, padding, ceil_mode=True
    )
    np.testing.assert_array_equal(np.asarray(ours), ref.permute(0, 2, 3, 1).numpy())


def test_ceil_max_pool_rejects_windows_torch_would_drop():
    with pytest.raises(ValueError, match="strides <= pool_size - padding"):
        pool(keras.Input((8, 8, 1)), 2, 3, ceil_mode=True, name="p")


