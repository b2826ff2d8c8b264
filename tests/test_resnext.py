"""ResNeXt: grouped 3x3 convolutions (form c), every width of Table 3, torchvision counts."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.resnet import Bottleneck, ResNet

import keras_archs
from tests.conftest import trainable_count

TABLE3 = [(1, 64), (2, 40), (4, 24), (8, 14), (32, 4)]


@pytest.mark.parametrize("depth,layers,cardinality,width", [
    *[(50, [3, 4, 6, 3], c, d) for c, d in TABLE3],
    (101, [3, 4, 23, 3], 32, 4), (101, [3, 4, 23, 3], 32, 8), (101, [3, 4, 23, 3], 64, 4),
])  # fmt: skip
def test_count_equals_torchvision_resnet_with_same_groups(depth, layers, cardinality, width):
    with torch.device("meta"):
        reference = ResNet(Bottleneck, layers, groups=cardinality, width_per_group=width)
    expected = sum(p.numel() for p in reference.parameters())
    assert keras_archs.get_spec(f"resnext{depth}_{cardinality}x{width}d").params == expected


def test_table3_keeps_resnet50_complexity():
    """Section 5.1: all Table 3 variants keep ResNet-50's ~25M parameters (within 3%: 32x4d has 25.0M)."""
    base = keras_archs.get_spec("resnet50").params
    for c, d in TABLE3:
        assert abs(keras_archs.get_spec(f"resnext50_{c}x{d}d").params - base) / base < 0.03


def test_grouped_conv_and_stage_widths():
    model = keras_archs.ResNeXt50_32x4d(include_top=False, input_shape=(64, 64, 3))
    conv = model.get_layer("conv2_block1_2_conv")
    assert conv.groups == 32 and conv.filters == 128 and conv.strides == (1, 1)
    # Stride 2 in the grouped 3x3 of each stage's first block (Section 4).
    assert model.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert model.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert [model.get_layer(f"conv{s}_block1_2_conv").filters for s in (2, 3, 4, 5)] == [128, 256, 512, 1024]
    assert model.output.shape[1:] == (2, 2, 2048)


def test_one_group_is_resnet50():
    a = keras_archs.ResNeXt50_1x64d()
    b = keras_archs.ResNet50(downsample="3x3")
    assert trainable_count(a) == trainable_count(b)
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
