"""ShuffleNet V2 (Ma et al. 2018): Table 5's stages, the channel shuffle and split,
parameters against torchvision, and TFLite built-in ops only. (Logits equal to
torchvision's with its weights, loaded through ``weights=``: tests/test_weights_more.py.)"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
import torchvision

import keras_archs
from keras_archs.layers import ChannelShuffle, ChannelSplit
from keras_archs.models import shufflenet
from tests.conftest import assert_loads_in_fresh_process

# Table 5 of the paper: output channels of stage2, stage3, stage4 and conv5.
TABLE5 = {
    "shufflenet_v2_x0_5": (48, 96, 192, 1024),
    "shufflenet_v2_x1_0": (116, 232, 464, 1024),
    "shufflenet_v2_x1_5": (176, 352, 704, 1024),
    "shufflenet_v2_x2_0": (244, 488, 976, 2048),
}


@pytest.mark.parametrize("name", sorted(TABLE5))
def test_table5_stages(name):
    model = keras_archs.get_model(name, include_top=False, input_shape=(224, 224, 3))
    c2, c3, c4, c5 = TABLE5[name]
    assert model.get_layer("conv1_relu").output.shape[1:] == (112, 112, 24)
    assert model.get_layer("maxpool").output.shape[1:] == (56, 56, 24)
    # Table 5: 1 + 3, 1 + 7, 1 + 3 units; only the first unit of a stage strides.
    for stage, (units, size, channels) in {2: (4, 28, c2), 3: (8, 14, c3), 4: (4, 7, c4)}.items():
        names = [layer.name for layer in model.layers if layer.name.startswith(f"stage{stage}_")]
        assert {n for n in names if n.endswith("_shuffle")} == {f"stage{stage}_block{b}_shuffle" for b in range(1, units + 1)}
        assert {n for n in names if n.endswith("_branch1_dwconv")} == {f"stage{stage}_block1_branch1_dwconv"}
        for b in range(1, units + 1):
            assert model.get_layer(f"stage{stage}_block{b}_shuffle").output.shape[1:] == (size, size, channels)
    assert model.output.shape[1:] == (7, 7, c5)


def test_channel_shuffle_interleaves_the_two_halves():
    channels = 10
    x = np.broadcast_to(np.arange(channels, dtype="float32"), (2, 3, 4, channels)).copy()
    y = np.asarray(ChannelShuffle(2)(x))
    # groups=2: the output alternates the first and second halves: 0, 5, 1, 6, 2, 7, ...
    expected = np.stack([np.arange(5), np.arange(5, 10)], axis=-1).reshape(-1)
    np.testing.assert_array_equal(y[0, 0, 0], expected)
    np.testing.assert_array_equal(y, np.broadcast_to(expected.astype("float32"), y.shape))


def test_channel_shuffle_general_groups_is_reshape_transpose_flatten():
    # ShuffleNet's definition (Zhang et al. 2017, Section 3.1): reshape the channels
    # to (g, n), transpose to (n, g), flatten.
    g, n = 3, 4
    x = np.random.default_rng(0).normal(size=(2, 5, 6, g * n)).astype("float32")
    expected = x.reshape(2, 5, 6, g, n).swapaxes(-1, -2).reshape(2, 5, 6, g * n)
    np.testing.assert_array_equal(np.asarray(ChannelShuffle(g)(x)), expected)
    # Output channel i * g + j is input channel j * n + i.
    y = np.asarray(ChannelShuffle(g)(x))
    for i in range(n):
        for j in range(g):
            np.testing.assert_array_equal(y[..., i * g + j], x[..., j * n + i])


def test_channel_shuffle_and_split_with_open_spatial_size():
    inp = keras.Input((None, None, 8))
    left, right = ChannelSplit(2)(ChannelShuffle(2)(inp))
    model = keras.Model(inp, [left, right])
    x = np.random.default_rng(1).normal(size=(1, 5, 7, 8)).astype("float32")
    a, b = (np.asarray(t) for t in model(x))
    # Shuffled order 0, 4, 1, 5, 2, 6, 3, 7, split into its two halves.
    np.testing.assert_array_equal(a, x[..., [0, 4, 1, 5]])
    np.testing.assert_array_equal(b, x[..., [2, 6, 3, 7]])


def test_channel_layers_reject_indivisible_channels():
    with pytest.raises(ValueError, match="groups"):
        ChannelShuffle(3)(keras.Input((4, 4, 8)))
    with pytest.raises(ValueError, match="parts"):
        ChannelSplit(2)(keras.Input((4, 4, 7)))


@pytest.mark.parametrize("name", sorted(TABLE5))
def test_total_params_are_torchvision_parameters_plus_bn_statistics(name):
    with torch.device("meta"):
        tv = torchvision.models.get_model(name, weights=None)
    stats = sum(b.numel() for k, b in tv.named_buffers() if k.endswith(("running_mean", "running_var")))
    assert keras_archs.get_spec(name).total_params == sum(p.numel() for p in tv.parameters()) + stats


def test_units_convert_to_tflite_builtins_only():
    """A stride-2 and a stride-1 unit (split, concat, shuffle, depthwise, padding)
    convert with TFLite's built-in op set alone and give the same outputs."""
    import tensorflow as tf

    inp = keras.Input((16, 16, 8), batch_size=1)
    x = shufflenet.shuffle_unit(inp, 16, strides=2, name="s2")
    x = shufflenet.shuffle_unit(x, 16, strides=1, name="s1")
    model = keras.Model(inp, x)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    x = np.random.default_rng(4).normal(size=(1, 16, 16, 8)).astype("float32")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(y, np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-5)


def test_unit_keras_file_loads_in_fresh_process(tmp_path):
    """ChannelShuffle and ChannelSplit are registered serializables: a new process
    that imports keras_archs loads the file in safe mode with the same outputs."""
    inp = keras.Input((None, None, 8))
    x = shufflenet.shuffle_unit(inp, 16, strides=2, name="s2")
    model = keras.Model(inp, shufflenet.shuffle_unit(x, 16, strides=1, name="s1"))
    x = np.random.default_rng(5).normal(size=(2, 9, 11, 8)).astype("float32")
    assert_loads_in_fresh_process(model, x, tmp_path)
