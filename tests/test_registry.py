"""The registry: names, lookup errors, table, and the metadata every entry must carry."""

from __future__ import annotations

import subprocess
import sys

import pytest

import keras_archs
from keras_archs.registry import format_table


def test_every_public_builder_is_registered_and_exported():
    names = {s.name for s in keras_archs.list_models()}
    assert len(names) == len(keras_archs.list_models())
    for spec in keras_archs.list_models():
        assert getattr(keras_archs, spec.builder.__name__) is spec.builder, spec.name
        assert spec.min_size <= spec.default_size
        assert spec.params > 0
        assert spec.param_source
        assert spec.builder.__doc__ and spec.name in spec.builder.__doc__


@pytest.mark.parametrize(
    "name",
    ["lenet5", "alexnet", "alexnet_owt", "vgg11_lrn", "vgg16_c", "vgg16_bn", "plain34", "resnet20", "plain56", "resnet1202"],
)
def test_issue_names_exist(name):
    assert keras_archs.get_spec(name).name == name


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match=r"Unknown model 'resnet5O'.*resnet50"):
        keras_archs.get_model("resnet5O")


def test_unknown_family_lists_families():
    with pytest.raises(ValueError, match="known families"):
        keras_archs.list_models("NoSuchNet")


def test_names_are_normalised():
    assert keras_archs.get_spec("VGG16-BN").name == "vgg16_bn"


def test_table_lists_every_model():
    table = format_table()
    for spec in keras_archs.list_models():
        assert f"\n{spec.name} " in table or table.startswith(spec.name)


def test_cli_prints_table():
    out = subprocess.run(
        [sys.executable, "-m", "keras_archs", "ResNet"], capture_output=True, text=True, check=True
    ).stdout
    assert "resnet50" in out and "25,557,032" in out and "vgg16" not in out


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="shortcut must be one of"):
        keras_archs.ResNet20(shortcut="D")
