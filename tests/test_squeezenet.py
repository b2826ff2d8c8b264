"""SqueezeNet: Table 1's output sizes and fire-module widths, the bypass variants'
parameter arithmetic and wiring, the honest minimum input sizes, and output equality
with torchvision's squeezenet1_0/1_1 under a weight copy by layer name."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
import torchvision

import keras_archs
from keras_archs.models.squeezenet import TORCHVISION_FEATURE_INDEX

# Paper Table 1 (227x227 input, the Caffe model's crop): layer -> output (H, W, C),
# and per fire module (s1x1, e1x1, e3x3).
TABLE1_OUTPUTS = {
    "conv1": (111, 111, 96),
    "pool1": (55, 55, 96),
    "fire2_concat": (55, 55, 128),
    "fire3_concat": (55, 55, 128),
    "fire4_concat": (55, 55, 256),
    "pool4": (27, 27, 256),
    "fire5_concat": (27, 27, 256),
    "fire6_concat": (27, 27, 384),
    "fire7_concat": (27, 27, 384),
    "fire8_concat": (27, 27, 512),
    "pool8": (13, 13, 512),
    "fire9_concat": (13, 13, 512),
    "conv10": (13, 13, 1000),
}
TABLE1_FIRES = {
    2: (16, 64, 64), 3: (16, 64, 64), 4: (32, 128, 128), 5: (32, 128, 128),
    6: (48, 192, 192), 7: (48, 192, 192), 8: (64, 256, 256), 9: (64, 256, 256),
}  # fmt: skip
FIRE_INPUT = {"1.0": 96, "1.1": 64}  # conv1 filters


def test_table1_output_sizes_and_fire_widths():
    model = keras_archs.SqueezeNet1_0()
    for layer, shape in TABLE1_OUTPUTS.items():
        assert tuple(model.get_layer(layer).output.shape[1:]) == shape, layer
    for fire, (s1, e1, e3) in TABLE1_FIRES.items():
        assert model.get_layer(f"fire{fire}_squeeze1x1").filters == s1
        assert model.get_layer(f"fire{fire}_squeeze1x1").kernel_size == (1, 1)
        assert model.get_layer(f"fire{fire}_expand1x1").filters == e1
        assert model.get_layer(f"fire{fire}_expand3x3").kernel_size == (3, 3)
        assert model.get_layer(f"fire{fire}_expand3x3").filters == e3
    # No dense layer: conv10 has one map per class, pooled; dropout 0.5 after fire9.
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert model.get_layer("drop9").rate == 0.5
    assert model.get_layer("conv10").kernel_size == (1, 1)


def test_v1_1_pools_earlier_with_a_3x3_conv1():
    model = keras_archs.SqueezeNet1_1()
    conv1 = model.get_layer("conv1")
    assert (conv1.filters, conv1.kernel_size, conv1.strides) == (64, (3, 3), (2, 2))
    # 227 -> 113 (conv1) -> 56 (pool1) -> 28 (pool3) -> 14 (pool5), ceil mode
    assert model.get_layer("pool1").output.shape[1] == 56
    assert model.get_layer("pool3").output.shape[1:] == (28, 28, 128)
    assert model.get_layer("pool5").output.shape[1:] == (14, 14, 256)
    assert model.get_layer("fire9_concat").output.shape[1:] == (14, 14, 512)


def _fire_widths(version: str):
    """(input, output) width of each fire module, from Table 1's expand filters."""
    widths, c = {}, FIRE_INPUT[version]
    for fire, (_, e1, e3) in TABLE1_FIRES.items():
        widths[fire] = (c, e1 + e3)
        c = e1 + e3
    return widths


@pytest.mark.parametrize("name,version", [("squeezenet1_0", "1.0"), ("squeezenet1_1", "1.1")])
def test_bypass_parameter_arithmetic(name, version):
    spec = keras_archs.get_spec(name)
    widths = _fire_widths(version)
    changing = [f for f, (cin, cout) in widths.items() if cin != cout]
    assert changing == [2, 4, 6, 8]
    # complex bypass: a 1x1 conv with bias from the input to the output width
    extra = sum(widths[f][0] * widths[f][1] + widths[f][1] for f in changing)
    if version == "1.0":  # 96*128+128 + 128*256+256 + 256*384+384 + 384*512+512
        assert extra == 12_416 + 33_024 + 98_688 + 197_120 == 341_248
    for bypass, expected in (("none", 0), ("simple", 0), ("complex", extra)):
        model = spec.builder(bypass=bypass)
        trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
        assert trainable == spec.params + expected, bypass


def test_bypass_wiring():
    simple = keras_archs.SqueezeNet1_0(bypass="simple")
    adds = {layer.name for layer in simple.layers if isinstance(layer, keras.layers.Add)}
    assert adds == {"fire3_add", "fire5_add", "fire7_add", "fire9_add"}
    # fire3's shortcut is its own input (fire2's output); fire5's comes through pool4.
    assert {t.name for t in [*simple.get_layer("fire3_add").input]} == {
        simple.get_layer("fire2_concat").output.name,
        simple.get_layer("fire3_concat").output.name,
    }
    assert simple.get_layer("fire5_add").input[0].name == simple.get_layer("pool4").output.name

    complex_ = keras_archs.SqueezeNet1_0(bypass="complex")
    adds = {layer.name for layer in complex_.layers if isinstance(layer, keras.layers.Add)}
    assert adds == {f"fire{i}_add" for i in range(2, 10)}
    for fire in (2, 4, 6, 8):
        projection = complex_.get_layer(f"fire{fire}_bypass")
        assert projection.kernel_size == (1, 1) and projection.filters == _fire_widths("1.0")[fire][1]
        assert projection.activation.__name__ == "linear"
    with pytest.raises(ValueError, match="bypass must be one of"):
        keras_archs.SqueezeNet1_0(bypass="full")
    with pytest.raises(ValueError, match="version must be one of"):
        keras_archs.SqueezeNet1_0(version="1.2")


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_min_size_is_torchvisions_smallest_valid_input(name):
    size = keras_archs.get_spec(name).min_size
    tv = torchvision.models.get_model(name, weights=None).features.eval()
    with torch.no_grad():
        assert tv(torch.zeros(1, 3, size, size)).shape[-1] == 1
        with pytest.raises(RuntimeError):
            tv(torch.zeros(1, 3, size - 1, size - 1))


def _copy_torchvision(tv: torch.nn.Module, model: keras.Model, version: str) -> set[str]:
    """Weight import by name: conv1 / fireN / conv10 from torchvision's positions."""
    modules = {"conv10": tv.classifier[1]}
    for name, index in TORCHVISION_FEATURE_INDEX[version].items():
        if name == "conv1":
            modules[name] = tv.features[index]
        else:
            for part, keras_part in (("squeeze", "squeeze1x1"), ("expand1x1", "expand1x1"), ("expand3x3", "expand3x3")):
                modules[f"{name}_{keras_part}"] = getattr(tv.features[index], part)
    for name, module in modules.items():
        model.get_layer(name).set_weights(
            [module.weight.detach().numpy().transpose(2, 3, 1, 0), module.bias.detach().numpy()]
        )
    return set(modules)


@pytest.mark.parametrize("name,version", [("squeezenet1_0", "1.0"), ("squeezenet1_1", "1.1")])
def test_torchvision_weights_give_the_same_outputs(name, version):
    torch.manual_seed(0)
    tv = torchvision.models.get_model(name, weights=None, num_classes=10).eval()
    with torch.no_grad():  # positive conv10 biases so ReLU leaves something to compare
        tv.classifier[1].bias.uniform_(0.1, 0.5)
    # One open-size model: 224 (torchvision's size), 227 (the paper's), an odd size, and
    # the minimum, where ceil mode pools a 2x2 map to one pixel.
    model = keras_archs.get_model(name, classes=10, input_shape=(None, None, 3), classifier_activation=None)
    copied = _copy_torchvision(tv, model, version)
    assert copied == {layer.name for layer in model.layers if layer.weights}
    rng = np.random.default_rng(0)
    for size in (224, 227, 101, keras_archs.get_spec(name).min_size):
        x = rng.uniform(0, 1, (2, size, size, 3)).astype("float32")
        with torch.no_grad():
            expected = tv(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
        np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, rtol=1e-4, atol=1e-5)
