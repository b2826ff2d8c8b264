"""The registry: names, lookup errors, table, and the metadata every entry must carry."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys

import pytest

import keras_archs
from keras_archs import registry
from keras_archs.registry import format_macs, format_table
from keras_archs.weight_import import official
from trainers import recipes


def test_every_public_builder_is_registered_and_exported():
    names = {s.name for s in keras_archs.list_models()}
    assert len(names) == len(keras_archs.list_models())
    for spec in keras_archs.list_models():
        assert getattr(keras_archs, spec.builder.__name__) is spec.builder, spec.name
        assert spec.min_size <= spec.default_size
        assert spec.params > 0
        assert spec.param_source
        assert spec.builder.__doc__ and spec.name in spec.builder.__doc__
        assert spec.recipe in recipes.RECIPES, spec.name


def test_builders_have_the_keras_applications_signature_and_say_the_input_range():
    application = [
        "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes", "classifier_activation", "name",
    ]  # fmt: skip
    for spec in keras_archs.list_models():
        parameters = inspect.signature(spec.builder).parameters
        assert list(parameters)[: len(application)] == application, spec.name
        assert parameters["classes"].default == spec.default_classes
        assert set(spec.options) <= set(parameters), spec.name  # family options, with their defaults
        assert "Inputs:" in spec.builder.__doc__ and "Pretrained weights:" in spec.builder.__doc__
    doc = " ".join(keras_archs.ResNet50.__doc__.split())
    assert "RGB pixels in [0, 255]" in doc and "``downsample='3x3'``" in doc
    assert inspect.signature(keras_archs.ResNet50).parameters["depth"].default == 50
    with pytest.raises(TypeError, match=r"ResNet50\(\) got unexpected keyword argument\(s\) 'shortcutt'.*shortcut"):
        keras_archs.ResNet50(shortcutt="A")


@pytest.mark.parametrize(
    "name",
    ["lenet5", "alexnet", "alexnet_owt", "vgg11_lrn", "vgg16_c", "vgg16_bn", "plain34", "resnet20", "plain56", "resnet1202"],
)
def test_the_documented_names_exist(name):
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


def _table_cells(table: str) -> list[dict[str, str]]:
    """The rows of a format_table() table by column header, each cell's wrapped lines joined by spaces."""
    lines = table.splitlines()
    bounds = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[1])]
    header = [lines[0][a:b].strip() for a, b in bounds]
    blocks: list[list[str]] = []
    for line in lines[2:]:
        if not line.startswith(" "):
            blocks.append([])
        blocks[-1].append(line)
    return [
        dict(zip(header, (" ".join(word for line in block for word in line[a:b].split()) for a, b in bounds)))
        for block in blocks
    ]


@pytest.mark.parametrize("with_macs", [True, False], ids=["as registered", "without MACs"])
def test_table_fits_120_columns_and_keeps_every_cell(with_macs):
    specs = keras_archs.list_models()
    assert all(s.macs is not None for s in specs)
    if not with_macs:  # a list of specs without the figure has no MACs column
        specs = [dataclasses.replace(s, macs=None) for s in specs]
    table = format_table(specs)
    assert max(len(line) for line in table.splitlines()) <= 120
    rows = _table_cells(table)
    assert [row["name"] for row in rows] == [spec.name for spec in specs]
    for row, spec in zip(rows, specs):  # wrapped, not cut
        assert row["paper"] == spec.paper.split(",")[0]
        assert row["params"] == f"{spec.params:,}"
        assert row["source"] == " ".join(spec.param_source.split())
        assert row["pretrained"] == ",".join({"torchvision": "tv"}.get(f.kind, f.kind) for f in spec.weights)
        assert ("MACs" in row) == with_macs
        if with_macs:
            assert row["MACs"] == format_macs(spec.macs)
    narrow = format_table(keras_archs.list_models("AlexNet"), width=90)
    assert max(len(line) for line in narrow.splitlines()) <= 90


def test_pretrained_variants_are_those_with_official_files():
    pretrained = keras_archs.list_models(pretrained=True)
    assert {s.name for s in pretrained} == {s.name for s in keras_archs.list_models() if s.weights}
    assert {"resnet50", "vgg16", "efficientnet_b0", "alexnet_owt"} <= {s.name for s in pretrained}
    assert not {"resnet20", "lenet5", "googlenet", "bit_r50x1"} & {s.name for s in pretrained}
    assert [s.name for s in keras_archs.list_models("resnet", pretrained=True)] == [
        "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
    ]  # fmt: skip
    tv, keras_file = keras_archs.get_spec("resnet50").weights
    assert (tv.source, tv.preprocessing, dict(tv.options)) == (
        "torchvision", "torch", {"downsample": "3x3", "conv_bias": False, "bn_epsilon": 1e-5},
    )  # fmt: skip
    assert (keras_file.source, keras_file.preprocessing, keras_file.options["conv_bias"]) == (
        "keras.applications", "caffe", True,
    )  # fmt: skip


def test_every_variant_gets_the_recipe_the_trainer_gave_its_family():
    """The recipe each variant declares is the one trainers.recipes' family rules chose for it."""
    assert keras_archs.get_spec("resnet110").recipe == keras_archs.get_spec("plain110").recipe == "resnet110_cifar"
    expected = {"resnet20": "resnet_cifar", "resnet50": "resnet", "wrn28_10": "wide_resnet_cifar", "lenet5": "lenet5"}
    expected |= {"nin_cifar": "nin", "inception_resnet_v2": "inception_v4", "googlenet_bn": "googlenet"}
    expected |= {"densenet_bc_100_12": "densenet_cifar", "shufflenet_v2_x1_0": "shufflenet_v2", "bit_r50x1": "bit"}
    for name, recipe in expected.items():
        assert keras_archs.get_spec(name).recipe == recipe, name


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
    result = subprocess.run([sys.executable, "-m", "keras_archs", "ResNet"], capture_output=True, text=True, check=True)
    assert "resnet50" in result.stdout and "25,557,032" in result.stdout and "vgg16" not in result.stdout
    assert "oneDNN" not in result.stderr and "absl::InitializeLog" not in result.stderr  # TensorFlow's start-up lines
    pretrained = subprocess.run(
        [sys.executable, "-m", "keras_archs", "squeezenet", "--pretrained"], capture_output=True, text=True, check=True
    ).stdout
    assert "squeezenet1_0" in pretrained and "2 models" in pretrained
    unknown = subprocess.run([sys.executable, "-m", "keras_archs", "NoSuchNet"], capture_output=True, text=True)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: Unknown family 'NoSuchNet'")
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="shortcut must be one of"):
        keras_archs.ResNet20(shortcut="D")
