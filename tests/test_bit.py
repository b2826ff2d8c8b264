"""BiT: weight standardisation, GroupNorm(32), the ResNet-v2 layout, the zero head,
and equivalence with timm's resnetv2_50x1_bit when given its weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

import keras_archs
from keras_archs.layers import WeightStandardizedConv2D


def _numpy_conv_valid(x, kernel, stride):
    """Plain NHWC 'valid' convolution, loops over the kernel window."""
    kh, kw = kernel.shape[:2]
    h = (x.shape[1] - kh) // stride + 1
    w = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], h, w, kernel.shape[-1]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * (h - 1) + 1 : stride, j : j + stride * (w - 1) + 1 : stride, :]
            out += np.einsum("nhwc,co->nhwo", patch, kernel[i, j])
    return out


def test_weight_standardized_conv_matches_numpy():
    rng = np.random.default_rng(0)
    layer = WeightStandardizedConv2D(5, 3, strides=2, use_bias=False, epsilon=1e-10)
    x = rng.normal(size=(2, 9, 9, 4)).astype("float32")
    layer.build(x.shape)
    kernel = rng.normal(loc=0.7, scale=3.0, size=(3, 3, 4, 5)).astype("float32")
    layer.set_weights([kernel])

    standardized = np.asarray(layer.standardized_kernel())
    flat = standardized.reshape(-1, 5)  # 36 weights per output channel
    np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(flat.std(axis=0), 1.0, atol=1e-5)

    k64 = kernel.astype("float64").reshape(-1, 5)
    expected_kernel = ((k64 - k64.mean(axis=0)) / np.sqrt(k64.var(axis=0) + 1e-10)).reshape(kernel.shape)
    expected = _numpy_conv_valid(x.astype("float64"), expected_kernel, 2)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-4)
    # The stored kernel is left as it was: reference weights load unchanged.
    np.testing.assert_array_equal(layer.get_weights()[0], kernel)
    # Standardisation makes the output invariant to the kernel's scale and offset per filter.
    layer.set_weights([kernel * 10.0 - 3.0])
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-4)


def test_weight_standardized_conv_config_round_trip():
    layer = WeightStandardizedConv2D(8, 1, epsilon=1e-8, name="ws")
    clone = WeightStandardizedConv2D.from_config(layer.get_config())
    assert clone.epsilon == 1e-8 and clone.filters == 8
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, WeightStandardizedConv2D)


def test_r50x1_layout():
    model = keras_archs.BiTR50x1(include_top=False, input_shape=(224, 224, 3))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert all(layer.groups == 32 for layer in norms)
    assert len(norms) == 3 * 16 + 1  # three per bottleneck, one before the head
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(isinstance(layer, WeightStandardizedConv2D) and not layer.use_bias for layer in convs)
    # 1 stem + 3 per block + 4 projections = 53 convolutions (the "50" counts stem, 48, fc).
    assert len(convs) == 1 + 3 * 16 + 4

    assert model.get_layer("stem_conv").output.shape[1:] == (112, 112, 64)
    assert model.get_layer("stem_pool").output.shape[1:] == (56, 56, 64)
    for stage, (blocks, size, channels) in enumerate(((3, 56, 256), (4, 28, 512), (6, 14, 1024), (3, 7, 2048)), start=1):
        assert model.get_layer(f"stage{stage}_block{blocks}_add").output.shape[1:] == (size, size, channels)
        assert model.get_layer(f"stage{stage}_block1_conv2").output.shape[1:] == (size, size, channels // 4)
        # The stride is on the 3x3 convolution, not on the first 1x1.
        assert model.get_layer(f"stage{stage}_block1_conv1").strides == (1, 1)
        with pytest.raises(ValueError):
            model.get_layer(f"stage{stage}_block{blocks + 1}_add")
    assert model.output.shape[1:] == (7, 7, 2048)
    assert model.layers[-1].name == "norm_relu"  # pre-activation nets end with GN+ReLU


def test_preactivation_wiring():
    model = keras_archs.BiTR50x1(include_top=False, input_shape=(64, 64, 3))
    # Projection shortcuts and the residual branch both read the pre-activated input...
    preact = model.get_layer("stage2_block1_norm1_relu").output
    assert model.get_layer("stage2_block1_downsample").input is preact
    assert model.get_layer("stage2_block1_conv1").input is preact
    # ...identity shortcuts carry the raw sum of the previous block.
    add = model.get_layer("stage2_block2_add")
    assert add.input[0] is model.get_layer("stage2_block1_add").output
    assert add.input[1] is model.get_layer("stage2_block2_conv3").output
    with pytest.raises(ValueError):
        model.get_layer("stage2_block2_downsample")


def test_widths_and_depths_of_the_table():
    for depth, width, stage_blocks in ((101, 1, (3, 4, 23, 3)),):
        model = keras_archs.get_model(f"bit_r{depth}x{width}", include_top=False, input_shape=(32, 32, 3))
        for stage, blocks in enumerate(stage_blocks, start=1):
            model.get_layer(f"stage{stage}_block{blocks}_add")
            with pytest.raises(ValueError):
                model.get_layer(f"stage{stage}_block{blocks + 1}_add")
    from keras_archs.models import bit

    assert bit.STAGE_DEPTHS == {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
    # Width factor x3 on R50: trainable count from the widths alone (no build of 217M weights).
    assert keras_archs.get_spec("bit_r50x3").params == _r50_params(3)
    assert keras_archs.get_spec("bit_r50x1").params == _r50_params(1)


def _r50_params(wf: int, classes: int = 1000) -> int:
    """Hand count of ResNet-v2-50 x wf with GroupNorm (2 per channel) and a dense head."""
    total = 7 * 7 * 3 * 64 * wf  # stem
    cin = 64 * wf
    for blocks, out in zip((3, 4, 6, 3), (256, 512, 1024, 2048)):
        out *= wf
        mid = out // 4
        for b in range(blocks):
            total += 2 * cin + cin * mid + 2 * mid + 9 * mid * mid + 2 * mid + mid * out
            if b == 0:
                total += cin * out  # projection
            cin = out
    return total + 2 * cin + cin * classes + classes


def test_zero_head():
    model = keras_archs.BiTR50x1(classes=5, input_shape=(64, 64, 3))
    kernel, bias = model.get_layer("predictions").get_weights()
    assert not kernel.any() and not bias.any()
    y = np.asarray(model(np.random.default_rng(3).normal(size=(2, 64, 64, 3)).astype("float32")))
    np.testing.assert_allclose(y, 0.2, rtol=1e-6)  # uniform until fine-tuned
    other = keras_archs.BiTR50x1(classes=5, input_shape=(64, 64, 3), zero_head=False)
    assert other.get_layer("predictions").get_weights()[0].any()


def _timm_name(layer_name: str) -> str:
    if layer_name.startswith("stage"):
        stage, block, module = layer_name.split("_", 2)
        prefix = f"stages.{int(stage[5:]) - 1}.blocks.{int(block[5:]) - 1}"
        return f"{prefix}.downsample.conv" if module == "downsample" else f"{prefix}.{module}"
    return {"stem_conv": "stem.conv", "norm": "norm", "predictions": "head.fc"}[layer_name]


def test_same_outputs_as_timm_with_its_weights():
    import timm

    torch.manual_seed(0)
    reference = timm.create_model("resnetv2_50x1_bit", pretrained=False, num_classes=10).eval()
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if "norm" in name:  # make GroupNorm's affine parameters non-trivial
                p.copy_(torch.rand_like(p) + 0.5 if name.endswith("weight") else 0.1 * torch.randn_like(p))
            elif name.startswith("head.fc"):
                p.copy_(0.01 * torch.randn_like(p))
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    # timm standardises with eps 1e-8 (the official code: 1e-10).
    model = keras_archs.BiTR50x1(classes=10, classifier_activation=None, ws_epsilon=1e-8)
    loaded = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        ref = _timm_name(layer.name)
        if isinstance(layer, keras.layers.Dense):
            layer.set_weights([state[f"{ref}.weight"][:, :, 0, 0].T, state[f"{ref}.bias"]])
        elif isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([state[f"{ref}.weight"].transpose(2, 3, 1, 0)])
        else:
            layer.set_weights([state[f"{ref}.weight"], state[f"{ref}.bias"]])
        loaded += len(layer.weights)
    assert loaded == len(state)
    x = np.random.default_rng(4).normal(size=(2, 224, 224, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    out = np.asarray(model(x))
    assert np.abs(out - expected).max() < 1e-4 * np.abs(expected).max()
