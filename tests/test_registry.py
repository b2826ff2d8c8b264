"""The registry: names, lookup errors, table, and the metadata every entry must carry."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import keras_archs
from keras_archs import registry
from keras_archs.registry import format_table
from keras_archs.weight_import import official


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


def test_family_filter_is_a_case_insensitive_prefix():
    """ "ResNet" includes the CIFAR ResNets (family "ResNet-CIFAR"), as a user expects."""
    assert {s.family for s in keras_archs.list_models("resnet")} == {"ResNet", "ResNet-CIFAR"}
    assert "resnet20" in {s.name for s in keras_archs.list_models("ResNet")}
    assert {s.family for s in keras_archs.list_models("ResNet-CIFAR")} == {"ResNet-CIFAR"}
    assert {s.family for s in keras_archs.list_models("wideresnet")} == {"WideResNet", "WideResNet-CIFAR"}
    assert {s.family for s in keras_archs.list_models(" VGG ")} == {"VGG"}


def _table_cells(table: str) -> list[list[str]]:
    """The rows of a format_table() table, each cell's wrapped lines joined by spaces."""
    lines = table.splitlines()
    bounds = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[1])]
    blocks: list[list[str]] = []
    for line in lines[2:]:
        if not line.startswith(" "):
            blocks.append([])
        blocks[-1].append(line)
    return [[" ".join(word for line in block for word in line[a:b].split()) for a, b in bounds] for block in blocks]


def test_table_fits_120_columns_and_keeps_every_cell():
    table = format_table()
    assert max(len(line) for line in table.splitlines()) <= 120
    rows = _table_cells(table)
    specs = keras_archs.list_models()
    assert [row[0] for row in rows] == [spec.name for spec in specs]
    for row, spec in zip(rows, specs):  # wrapped, not cut
        assert row[2] == spec.paper.split(",")[0]
        assert row[6] == " ".join(spec.param_source.split())
    narrow = format_table(keras_archs.list_models("AlexNet"), width=80)
    assert max(len(line) for line in narrow.splitlines()) <= 80


def test_imagenet_weights_need_the_reference_classes_before_any_download(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(official, "fetch", no_download)
    message = "If using `weights='imagenet'` with `include_top=True`, `classes` should be 1000.  Received classes=10"
    with pytest.raises(ValueError) as error:
        keras_archs.get_model("resnet18", weights="imagenet", classes=10)
    assert str(error.value) == message
    with pytest.raises(ValueError, match="`classes` should be 1000"):
        keras_archs.VGG16(weights="imagenet:keras", classes=7)
    with pytest.raises(ValueError, match=r"`classes` should be 10\.  "):  # CIFAR default
        keras_archs.get_model("resnet20", weights="imagenet", classes=100)
    # Without a top, or when the classifier is left out on purpose, other counts are fine.
    registry.check_imagenet_classes("imagenet", False, 10, 1000)
    registry.check_imagenet_classes("imagenet", True, 10, 1000, skip_head=True)
    registry.check_imagenet_classes("/tmp/file.h5", True, 10, 1000)


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
