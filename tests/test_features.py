"""Feature pyramids (keras_archs.features): the graph rule, level shapes, and torchvision.

The level ``P{k}`` (stride ``2**k``) is the last cut point of the graph at that stride
(see the module's docstring). Checked here:

* the levels (names, channels, map sizes at the default and an odd input size) of a
  network of every family, built inside ``keras.StatelessScope`` (shapes only);
* numerically, against torchvision's ``create_feature_extractor`` on the same weights:
  the torchvision model gets random weights and BatchNorm statistics, is saved as a state
  dict and loaded into ours with the project's loader, and every level must equal the
  torchvision node named in ``TORCHVISION`` (NCHW -> NHWC) within 1e-4 of the map's scale,
  at an odd input size;
* the rule itself on small graphs: branch convolutions and zero padding are never
  levels, adaptive pooling in a head has no stride, auxiliary heads are ignored;
* the errors.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

import keras_archs
from keras_archs.features import feature_levels, get_feature_extractor, pyramid_outputs
from tests.test_weights_more import EFFICIENTNET_TORCH, INCEPTION_V3_TORCH
from tests.test_weights_torchvision import images, randomize

# name -> {level: (channels, map size at the default input size, at the odd size)}; the
# odd size is 199 for ImageNet networks and 33 for the CIFAR ones (LeNet-5: 33).
LEVELS = {
    "resnet50": {"P1": (64, 112, 100), "P2": (256, 56, 50), "P3": (512, 28, 25), "P4": (1024, 14, 13), "P5": (2048, 7, 7)},
    "plain18": {"P1": (64, 112, 100), "P2": (64, 56, 50), "P3": (128, 28, 25), "P4": (256, 14, 13), "P5": (512, 7, 7)},
    "resnet20": {"P0": (16, 32, 33), "P1": (32, 16, 17), "P2": (64, 8, 9)},
    "resnext50_32x4d": {"P1": (64, 112, 100), "P2": (256, 56, 50), "P3": (512, 28, 25), "P4": (1024, 14, 13), "P5": (2048, 7, 7)},
    "wide_resnet50_2": {"P1": (64, 112, 100), "P2": (256, 56, 50), "P3": (512, 28, 25), "P4": (1024, 14, 13), "P5": (2048, 7, 7)},
    "wrn16_8": {"P0": (128, 32, 33), "P1": (256, 16, 17), "P2": (512, 8, 9)},
    "densenet121": {"P1": (64, 112, 100), "P2": (128, 56, 50), "P3": (256, 28, 25), "P4": (512, 14, 12), "P5": (1024, 7, 6)},
    "densenet_bc_100_12": {"P0": (108, 32, 33), "P1": (150, 16, 16), "P2": (342, 8, 8)},
    "vgg16": {"P0": (64, 224, 199), "P1": (128, 112, 99), "P2": (256, 56, 49), "P3": (512, 28, 24), "P4": (512, 14, 12), "P5": (512, 7, 6)},
    "inception_v3": {"P1": (64, 147, 97), "P2": (192, 71, 46), "P3": (288, 35, 22), "P4": (768, 17, 10), "P5": (2048, 8, 4)},
    "inception_v4": {"P1": (64, 147, 97), "P2": (192, 71, 46), "P3": (384, 35, 22), "P4": (1024, 17, 10), "P5": (1536, 8, 4)},
    "inception_resnet_v2": {"P1": (64, 147, 97), "P2": (192, 71, 46), "P3": (320, 35, 22), "P4": (1088, 17, 10), "P5": (1536, 8, 4)},
    "googlenet": {"P1": (64, 112, 100), "P2": (192, 56, 50), "P3": (480, 28, 25), "P4": (832, 14, 12), "P5": (1024, 7, 6)},
    "efficientnet_b0": {"P1": (96, 112, 100), "P2": (144, 56, 50), "P3": (240, 28, 25), "P4": (672, 14, 13), "P5": (1280, 7, 7)},
    "mnasnet1_0": {"P1": (48, 112, 100), "P2": (72, 56, 50), "P3": (240, 28, 25), "P4": (576, 14, 13), "P5": (1280, 7, 7)},
    "shufflenet_v2_x1_0": {"P1": (24, 112, 100), "P2": (24, 56, 50), "P3": (116, 28, 25), "P4": (232, 14, 13), "P5": (1024, 7, 7)},
    "squeezenet1_0": {"P1": (96, 111, 97), "P2": (256, 55, 48), "P3": (512, 27, 24), "P4": (512, 13, 12)},
    "squeezenet1_1": {"P1": (64, 113, 99), "P2": (128, 56, 49), "P3": (256, 28, 24), "P4": (512, 14, 12)},
    "bit_r50x1": {"P1": (64, 112, 100), "P2": (256, 56, 50), "P3": (512, 28, 25), "P4": (1024, 14, 13), "P5": (2048, 7, 7)},
    "alexnet": {"P2": (96, 55, 48), "P3": (256, 27, 23), "P4": (256, 13, 11), "P5": (256, 6, 5)},
    "alexnet_owt": {"P2": (64, 55, 49), "P3": (192, 27, 24), "P4": (256, 13, 11), "P5": (256, 6, 5)},
    "nin": {"P2": (96, 54, 48), "P3": (256, 27, 24), "P4": (384, 13, 12), "P5": (1024, 6, 6)},
    "nin_cifar": {"P0": (96, 32, 33), "P1": (192, 16, 16), "P2": (192, 8, 8)},
    # "valid" 5x5 convolutions: nominal strides 1, 2, 4 (C1, C3, C5), which the 32-pixel input shrinks.
    "lenet5": {"P0": (6, 28, 29), "P1": (16, 10, 10), "P2": (120, 1, 1)},
}  # fmt: skip


def test_every_family_is_covered():
    families = {keras_archs.get_spec(name).family for name in LEVELS}
    assert families == {spec.family for spec in keras_archs.list_models()}


@pytest.mark.parametrize("name", list(LEVELS))
def test_levels_strides_channels_and_sizes(name):
    spec = keras_archs.get_spec(name)
    with keras.StatelessScope():
        extractor = get_feature_extractor(name, levels=None)
    odd = 199 if spec.default_size > 100 else 33
    shapes = {size: extractor.compute_output_shape((1, size, size, spec.channels)) for size in (spec.default_size, odd)}
    got = {
        level: (shapes[odd][level][3], shapes[spec.default_size][level][1], shapes[odd][level][1])
        for level in shapes[odd]
    }
    assert got == LEVELS[name]
    for level, (_, at_default, _) in LEVELS[name].items():  # the nominal stride, up to "valid" shrinking
        stride = 2 ** int(level[1:])
        assert spec.default_size / stride / 2 <= at_default <= spec.default_size / stride + 1 or name == "lenet5"


def test_resnet_levels_are_the_stage_outputs():
    """The brief's example: a ResNet level is the block's final ReLU, never a branch layer."""
    with keras.StatelessScope():
        model = keras_archs.get_model("resnet50", include_top=False)
    assert [(lv.name, lv.stride, lv.layer) for lv in feature_levels(model)] == [
        ("P1", 2, "conv1_relu"),
        ("P2", 4, "conv2_block3_out"),
        ("P3", 8, "conv3_block4_out"),
        ("P4", 16, "conv4_block6_out"),
        ("P5", 32, "conv5_block3_out"),
    ]


# --- against torchvision's create_feature_extractor, on shared weights ------------------

# registry name -> (torchvision builder, torchvision kwargs, our options, odd input size,
#                   {level: torchvision node})
RESNET_NODES = {"P1": "relu", "P2": "layer1", "P3": "layer2", "P4": "layer3", "P5": "layer4"}
NO_INIT = {"transform_input": False, "init_weights": False}
TORCHVISION = {
    "resnet18": ("resnet18", {}, {}, 67, RESNET_NODES),
    "resnet50": ("resnet50", {}, {"downsample": "3x3"}, 67, RESNET_NODES),
    "densenet121": (
        "densenet121", {}, {}, 67,
        {"P1": "features.relu0", "P2": "features.transition1.conv", "P3": "features.transition2.conv",
         "P4": "features.transition3.conv", "P5": "relu"},
    ),
    "vgg16": (
        "vgg16", {}, {}, 67,
        {"P0": "features.3", "P1": "features.8", "P2": "features.15", "P3": "features.22", "P4": "features.29",
         "P5": "features.30"},
    ),
    "efficientnet_b0": (
        "efficientnet_b0", {}, EFFICIENTNET_TORCH, 67,
        {"P1": "features.2.0.block.0", "P2": "features.3.0.block.0", "P3": "features.4.0.block.0",
         "P4": "features.6.0.block.0", "P5": "features.8"},
    ),
    "mnasnet0_5": (
        "mnasnet0_5", {}, {}, 67,
        {"P1": "layers.8.0.layers.2", "P2": "layers.9.0.layers.2", "P3": "layers.10.0.layers.2",
         "P4": "layers.12.0.layers.2", "P5": "layers.16"},
    ),
    "shufflenet_v2_x0_5": (
        "shufflenet_v2_x0_5", {}, {}, 67,
        {"P1": "conv1", "P2": "maxpool", "P3": "stage2", "P4": "stage3", "P5": "conv5"},
    ),
    "squeezenet1_0": (
        "squeezenet1_0", {}, {}, 67, {"P1": "features.1", "P2": "features.5", "P3": "features.10", "P4": "features.12"},
    ),
    "squeezenet1_1": (
        "squeezenet1_1", {}, {}, 67, {"P1": "features.1", "P2": "features.4", "P3": "features.7", "P4": "features.12"},
    ),
    "googlenet_bn": (
        "googlenet", NO_INIT, {}, 67,
        {"P1": "conv1", "P2": "conv3", "P3": "inception3b", "P4": "inception4e", "P5": "inception5b"},
    ),
    "inception_v3": (
        "inception_v3", NO_INIT, INCEPTION_V3_TORCH, 83,
        {"P1": "Conv2d_2b_3x3", "P2": "Conv2d_4a_3x3", "P3": "Mixed_5d", "P4": "Mixed_6e", "P5": "Mixed_7c"},
    ),
    "alexnet_owt": (
        "alexnet", {}, {}, 99, {"P2": "features.1", "P3": "features.4", "P4": "features.11", "P5": "features.12"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_levels_equal_torchvision_nodes(name, tmp_path):
    tv_name, tv_kwargs, options, size, nodes = TORCHVISION[name]
    reference = randomize(getattr(torchvision.models, tv_name)(weights=None, **tv_kwargs))
    torch.save(reference.state_dict(), tmp_path / f"{name}.pth")
    extractor = get_feature_extractor(name, levels=None, weights=str(tmp_path / f"{name}.pth"), **options)
    assert list(extractor.output) == list(nodes)  # exactly these levels, finest first

    x = images(size)
    ours = {level: np.asarray(value) for level, value in extractor(x, training=False).items()}
    with torch.no_grad():
        theirs = create_feature_extractor(reference, return_nodes={node: level for level, node in nodes.items()})(
            torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        )
    for level, node in nodes.items():
        ref = theirs[level].numpy().transpose(0, 2, 3, 1)
        assert ours[level].shape == ref.shape, (level, node)
        scale = max(1.0, float(np.max(np.abs(ref))))
        diff = float(np.max(np.abs(ours[level] - ref))) / scale
        assert diff <= 1e-4, f"{name} {level} vs torchvision {node!r}: max |diff| / scale = {diff:.2e}"


# --- the rule on small graphs ----------------------------------------------------------


def _residual_toy() -> keras.Model:
    inputs = keras.Input((None, None, 3))
    x = keras.layers.ZeroPadding2D(1, name="stem_pad")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, name="stem")(x)  # stride 2
    x = keras.layers.ReLU(name="stem_relu")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="branch_a")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="branch_b")(y)
    x = keras.layers.Add(name="block_add")([x, y])
    x = keras.layers.ReLU(name="block_out")(x)
    x = keras.layers.ZeroPadding2D(1, name="down_pad")(x)  # a padded stride-2 map: never a level
    x = keras.layers.Conv2D(16, 3, strides=2, name="down")(x)  # stride 4
    return keras.Model(inputs, x)


def test_branch_layers_and_padding_are_never_levels():
    levels = feature_levels(_residual_toy())
    assert [(lv.name, lv.stride, lv.channels, lv.layer) for lv in levels] == [
        ("P1", 2, 8, "block_out"),
        ("P2", 4, 16, "down"),
    ]


def test_a_head_does_not_move_the_levels():
    """With its classifier VGG-16 ends in adaptive pooling to 7x7: a fixed size, no stride;
    GoogLeNet's auxiliary heads hang off the main path: the main output's graph is read."""
    with keras.StatelessScope():
        pairs = [
            (keras_archs.get_model("vgg16"), keras_archs.get_model("vgg16", include_top=False)),
            (keras_archs.get_model("googlenet", aux_logits=True), keras_archs.get_model("googlenet", include_top=False)),
        ]
    assert isinstance(pairs[0][0].get_layer("avgpool"), keras.layers.AdaptiveAveragePooling2D)
    assert set(pairs[1][0].output) == {"main", "aux1", "aux2"}
    for with_top, headless in pairs:
        levels = [(lv.name, lv.layer) for lv in feature_levels(with_top)]
        assert levels == [(lv.name, lv.layer) for lv in feature_levels(headless)]
        assert levels[-1][0] == "P5"


def test_built_model_shares_weights_and_keeps_an_input_tensor():
    inputs = keras.Input((64, 64, 3))
    model = keras_archs.get_model("resnet18", include_top=False, input_tensor=inputs)
    extractor = get_feature_extractor(model, levels=["P3", 5])
    assert list(extractor.output) == ["P3", "P5"]
    assert extractor.inputs[0] is inputs
    assert {id(w) for w in extractor.weights} <= {id(w) for w in model.weights}
    x = images(64)
    np.testing.assert_array_equal(np.asarray(extractor(x)["P5"]), np.asarray(model(x)))


def test_levels_follow_the_model_input_when_it_is_computed():
    """A model built on an ``input_tensor`` computed by other layers (keras.applications'
    test does this): strides count from the model's own input."""
    raw = keras.Input((128, 128, 4))
    scaled = keras.layers.Conv2D(3, 2, strides=2)(raw)
    model = keras_archs.get_model("resnet18", include_top=False, input_tensor=scaled)
    levels = pyramid_outputs(model)
    assert tuple(levels["P5"].shape[1:]) == (2, 2, 512)


def test_errors_name_what_is_available():
    with keras.StatelessScope():
        with pytest.raises(ValueError, match=r"resnet20 has no level P3, P4, P5; its levels are: P0 \(stride 1, 16 channels\)"):
            get_feature_extractor("resnet20")
        with pytest.raises(ValueError, match="without the classifier"):
            get_feature_extractor("resnet20", include_top=True)
        with pytest.raises(ValueError, match="pooling"):
            get_feature_extractor("resnet20", pooling="avg")
        with pytest.raises(ValueError, match=r"named 'P<k>'"):
            get_feature_extractor("resnet20", levels=["C3"])
        model = keras_archs.get_model("resnet20", include_top=False)
        with pytest.raises(ValueError, match="apply to a registry name"):
            get_feature_extractor(model, weights=None)
    vector = keras.Input((8,))
    with pytest.raises(ValueError, match="need an image input"):
        pyramid_outputs(keras.Model(vector, keras.layers.Dense(4)(vector)))
    image = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match="no pyramid levels"):
        pyramid_outputs(keras.Model(image, keras.layers.Dense(4)(keras.layers.Flatten()(image))))
