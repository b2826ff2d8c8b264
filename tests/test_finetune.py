"""Fine-tuning: loading every layer but the classifier, on purpose only.

A file whose classifier has another number of classes is an error that names the way to
ask for a partial load (``skip_head=True``); with it every backbone tensor equals the
file's and the classifier keeps its fresh initialisation. The trainer's ``--finetune head``
freezes the backbone (weights and BatchNorm statistics do not move) and trains the head.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
import torchvision
from test_train import synthetic, train_fn_of
from test_weights_torchvision import randomize

import keras_archs
from keras_archs import weights as weights_lib
from trainers import run
from trainers.loop import Trainer
from trainers.recipes import RECIPES, resolve


def _values(model: keras.Model, skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    return {v.path: v.numpy() for layer in model.layers if layer.name not in skip for v in layer.weights}


@pytest.fixture(scope="module")
def resnet20_file(tmp_path_factory):
    """A trained-looking ResNet-20 with 5 classes, random weights and BN statistics, as .keras."""
    keras.utils.set_random_seed(1)
    model = keras_archs.get_model("resnet20", input_shape=(32, 32, 1), classes=5, classifier_activation=None)
    rng = np.random.default_rng(0)
    for v in model.weights:
        if "moving_variance" in v.path:
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
        else:
            v.assign(v.numpy() + rng.normal(0, 0.01, v.shape).astype("float32"))
    path = tmp_path_factory.mktemp("pretrained") / "resnet20_5.keras"
    model.save(path)
    return path, model


def test_classifier_layers_are_found_for_each_kind_of_head():
    with keras.StatelessScope():
        assert weights_lib.classifier_layers(keras_archs.get_model("resnet20", classes=3)) == ["predictions"]
        squeeze = keras_archs.get_model("squeezenet1_1", classes=3, input_shape=(64, 64, 3))
        assert weights_lib.classifier_layers(squeeze) == ["conv10"]
        aux = keras_archs.get_model("googlenet_bn", classes=3, aux_logits=True)
        assert len(weights_lib.classifier_layers(aux)) == 3
        assert weights_lib.classifier_layers(keras_archs.get_model("resnet20", include_top=False)) == []


def test_other_class_count_is_an_error_naming_skip_head(resnet20_file):
    path, _ = resnet20_file
    with pytest.raises(weights_lib.WeightsError, match=r"another number of classes.*skip_head=True") as err:
        keras_archs.get_model("resnet20", weights=str(path), input_shape=(32, 32, 1), classes=3)
    assert "predictions" in str(err.value) and "include_top=False" in str(err.value)


def test_skip_head_loads_every_backbone_tensor_and_keeps_a_fresh_head(resnet20_file):
    path, source = resnet20_file
    keras.utils.set_random_seed(2)
    fresh = keras_archs.get_model("resnet20", input_shape=(32, 32, 1), classes=3)
    keras.utils.set_random_seed(2)
    model = keras_archs.get_model("resnet20", weights=str(path), input_shape=(32, 32, 1), classes=3, skip_head=True)
    loaded, expected = _values(model, ("predictions",)), _values(source, ("predictions",))
    assert loaded.keys() == expected.keys() and len(loaded) > 60
    for key, value in expected.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)
    head = model.get_layer("predictions")
    assert head.kernel.shape == (64, 3)
    np.testing.assert_array_equal(head.kernel.numpy(), fresh.get_layer("predictions").kernel.numpy())
    with pytest.raises(ValueError, match="pass weights="):
        keras_archs.get_model("resnet20", classes=3, skip_head=True)


def test_skip_head_from_a_torchvision_file(tmp_path):
    reference = randomize(torchvision.models.resnet18(num_classes=1000))
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    with pytest.raises(weights_lib.WeightsError, match="skip_head=True"):
        keras_archs.get_model("resnet18", weights=str(path), classes=10, input_shape=(64, 64, 3))
    model = keras_archs.get_model("resnet18", weights=str(path), classes=10, input_shape=(64, 64, 3), skip_head=True)
    conv1 = reference.conv1.weight.detach().numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(model.get_layer("conv1_conv").kernel.numpy(), conv1)
    last_bn = model.get_layer("conv5_block2_2_bn")
    np.testing.assert_array_equal(last_bn.moving_variance.numpy(), reference.layer4[1].bn2.running_var.numpy())
    # the same file, other architecture: the mismatching layer is named
    with pytest.raises(weights_lib.WeightsError, match=r"different architecture.*conv2_block3_1_conv"):
        keras_archs.get_model("resnet34", weights=str(path), classes=10, input_shape=(64, 64, 3), skip_head=True)


def _finetune_trainer(path, mode: str) -> Trainer:
    recipe = RECIPES["finetune"]
    plan = resolve(recipe, num_train=32, global_batch=8, epochs=1)
    return Trainer(
        lambda: run.build_model("resnet20", image_size=32, channels=1, classes=3, recipe=recipe,
                                weights=str(path), finetune=mode, log=lambda m: None),
        plan,
        log=lambda m: None,
    )  # fmt: skip


def _train_a_little(trainer: Trainer) -> tuple[dict, dict]:
    before = _values(trainer.model)
    x, y = synthetic(32, 32, 1, 3)
    trainer.fit(train_fn_of(x, y, 3, 8))
    return before, _values(trainer.model)


def test_head_finetuning_freezes_the_backbone_and_trains_the_head(resnet20_file):
    trainer = _finetune_trainer(resnet20_file[0], "head")
    model = trainer.model
    assert [v.path for v in model.trainable_variables] == [v.path for v in model.get_layer("predictions").weights]
    before, after = _train_a_little(trainer)
    moved = [k for k in before if not np.array_equal(before[k], after[k])]
    assert moved and all(k.startswith("predictions/") for k in moved), moved
    bn_stats = [k for k in before if "moving_" in k]
    assert bn_stats and not set(bn_stats) & set(moved)


def test_full_finetuning_trains_the_backbone_too(resnet20_file):
    before, after = _train_a_little(_finetune_trainer(resnet20_file[0], "full"))
    assert not np.array_equal(before["conv1_conv/kernel"], after["conv1_conv/kernel"])
