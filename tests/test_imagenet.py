"""preprocess_input and decode_predictions against keras.applications, and which mode each
family's reference weights get."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import torch
import torchvision
from keras.applications import imagenet_utils

import keras_archs
from keras_archs import imagenet
from keras_archs import weights as weights_lib
from keras_archs.models import densenet, efficientnet, inception_v3, inception_v4, resnet, vgg

ROOT = Path(__file__).resolve().parents[1]
# keras/src/applications/imagenet_utils.py checks its download of imagenet_class_index.json with this md5.
KERAS_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"


def _pixels(shape=(2, 5, 4, 3), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_modes_equal_keras_applications(mode):
    x = _pixels()
    kept = x.copy()
    for layout, data in (("channels_last", x), ("channels_first", np.moveaxis(x, -1, 1)), ("channels_last", x[0])):
        expected = imagenet_utils.preprocess_input(data.copy(), data_format=layout, mode=mode)
        np.testing.assert_array_equal(keras_archs.preprocess_input(data, mode=mode, data_format=layout), expected)
        tensor = keras_archs.preprocess_input(keras.ops.convert_to_tensor(data), mode=mode, data_format=layout)
        np.testing.assert_allclose(np.asarray(tensor), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(x, kept)  # unlike keras, the input is not overwritten
    as_uint8 = keras_archs.preprocess_input(x.astype("uint8"), mode=mode)
    assert as_uint8.dtype == np.float32


def test_identity_and_bad_inputs():
    x = _pixels()
    np.testing.assert_array_equal(keras_archs.preprocess_input(x, mode="identity"), x)
    np.testing.assert_array_equal(keras_archs.preprocess_input(x[..., :1], mode="tf"), x[..., :1] / 127.5 - 1)
    with pytest.raises(ValueError, match="3-channel"):
        keras_archs.preprocess_input(x[..., :1], mode="torch")
    with pytest.raises(ValueError, match="mode must be one of"):
        keras_archs.preprocess_input(x, mode="inception")
    with pytest.raises(ValueError, match=r"arch= .* or mode="):
        keras_archs.preprocess_input(x)
    with pytest.raises(ValueError, match="no reference ImageNet weights"):
        keras_archs.preprocess_input(x, arch="resnet20")
    with pytest.raises(ValueError, match="no 'keras' ImageNet weights"):
        keras_archs.preprocess_input(x, arch="shufflenet_v2_x1_0", source="keras")


@pytest.mark.parametrize(
    "family_function, keras_function",
    [
        (vgg.preprocess_input, keras.applications.vgg16.preprocess_input),
        (resnet.preprocess_input, keras.applications.resnet.preprocess_input),
        (densenet.preprocess_input, keras.applications.densenet.preprocess_input),
        (inception_v3.preprocess_input, keras.applications.inception_v3.preprocess_input),
        (inception_v4.preprocess_input, keras.applications.inception_resnet_v2.preprocess_input),
        (efficientnet.preprocess_input, keras.applications.efficientnet.preprocess_input),
    ],
    ids=["vgg", "resnet", "densenet", "inception_v3", "inception_resnet_v2", "efficientnet"],
)
def test_keras_source_matches_keras_applications_module(family_function, keras_function):
    """source="keras": exactly what keras.applications' own preprocess_input does for that model."""
    x = _pixels()
    np.testing.assert_allclose(family_function(x, source="keras"), keras_function(x.copy()), rtol=1e-6)


def test_arch_picks_the_default_reference_mode():
    x = _pixels()
    assert keras_archs.get_spec("resnet50").preprocessing == "torch"
    np.testing.assert_array_equal(keras_archs.preprocess_input(x, arch="resnet50"), imagenet.apply_mode(x, "torch"))
    np.testing.assert_array_equal(
        keras_archs.preprocess_input(x, arch="resnet50", source="keras"), imagenet.apply_mode(x, "caffe")
    )
    assert keras_archs.get_spec("efficientnet_b0").preprocessing == "identity"
    assert keras_archs.get_spec("lenet5").preprocessing is None
    assert 'preprocess_input(x, arch="resnet50")' in " ".join(keras_archs.ResNet50.__doc__.split())
    assert "no reference ImageNet weights" in " ".join(keras_archs.LeNet5.__doc__.split())


def test_every_official_file_has_a_mode_and_a_name_table():
    for spec in keras_archs.list_models(pretrained=True):
        assert {f.kind for f in spec.weights} <= set(spec.preprocessing_modes), spec.name
        assert {f.kind for f in spec.weights} <= set(spec.references), spec.name
        for file in spec.weights:
            assert file.preprocessing == spec.preprocessing_modes[file.kind], spec.name
            assert file.source in ("torchvision", "keras.applications"), spec.name
            assert set(file.options) <= set(spec.options), spec.name


@pytest.mark.parametrize("arch", ["vgg16", "densenet121", "inception_v3", "efficientnet_b0"])
def test_default_source_is_what_imagenet_weights_load(arch):
    """A default build with weights="imagenet" gets the first official file that fits it:
    that source's mode is the family's default."""
    spec = keras_archs.get_spec(arch)
    with keras.StatelessScope():
        model = spec.builder()
    fitting = [
        f.kind for f in spec.weights if weights_lib.incompatibility(model, spec.references[f.kind], f.kind, arch) is None
    ]
    assert next(iter(spec.preprocessing_modes)) == fitting[0] == spec.weights[0].kind
    assert spec.preprocessing == spec.weights[0].preprocessing


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_torchvision_transform_input_is_tf_mode(name):
    """torchvision's GoogLeNet/Inception-v3 weights re-normalise torch-mode input to [-1, 1]
    (transform_input), a step our models leave to preprocessing: "tf" mode."""
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None, init_weights=False, aux_logits=False, transform_input=True)
    x = _pixels((2, 8, 8, 3))
    normalised = torch.from_numpy(imagenet.apply_mode(x, "torch")).permute(0, 3, 1, 2)
    transformed = model._transform_input(normalised).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(transformed, keras_archs.preprocess_input(x, mode="tf"), rtol=1e-5, atol=1e-5)
    arch = "googlenet_bn" if name == "googlenet" else "inception_v3"
    assert keras_archs.get_spec(arch).preprocessing_modes["torchvision"] == "tf"


def test_class_index_is_keras_file_and_package_data():
    path = ROOT / "keras_archs" / "data" / "imagenet_class_index.json"
    assert hashlib.md5(path.read_bytes()).hexdigest() == KERAS_CLASS_INDEX_MD5
    index = imagenet.class_index()
    assert len(index) == 1000
    assert index["0"] == ["n01440764", "tench"] and index["999"] == ["n15075141", "toilet_tissue"]
    # tomllib is Python 3.11+; the package supports 3.10.
    section = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    globs = ast.literal_eval(re.search(r"^keras_archs = (\[.*\])$", section, re.M).group(1))
    assert any(path in (ROOT / "keras_archs").glob(pattern) for pattern in globs)


def test_decode_predictions():
    preds = np.full((2, 1000), 1e-4, "float32")
    preds[0, [1, 207, 999]] = [0.5, 0.3, 0.1]
    preds[1, 0] = 0.9
    decoded = keras_archs.decode_predictions(keras.ops.convert_to_tensor(preds), top=3)
    assert [entry[:2] for entry in decoded[0]] == [
        ("n01443537", "goldfish"), ("n02099601", "golden_retriever"), ("n15075141", "toilet_tissue"),
    ]  # fmt: skip
    assert [round(float(entry[2]), 3) for entry in decoded[0]] == [0.5, 0.3, 0.1]
    assert decoded[1][0][:2] == ("n01440764", "tench") and len(decoded[1]) == 3
    assert resnet.decode_predictions is keras_archs.decode_predictions
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        keras_archs.decode_predictions(preds[:, :10])
