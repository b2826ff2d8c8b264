"""The training loop and ``python -m trainers.run``: losses, updates, outputs, resume, errors.

The per-family test is a plumbing test: the smallest variant of each family, at its
minimum input size, trains two steps on a tiny synthetic batch with its paper's recipe.
It checks that everything connects (recipe -> optimizer -> loss -> update), not accuracy.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import family_representatives

import keras_archs
from trainers import distribute, run
from trainers.loop import XLA_CPU_WARNING, Trainer, TrainingDivergedError, per_example_loss
from trainers.recipes import RECIPES, Recipe, Schedule, recipe_for, resolve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic(n: int, size: int, channels: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, size, size, channels)).astype("float32")
    y = rng.integers(0, classes, n)
    return x, y


def train_fn_of(x, y, classes, batch):
    onehot = np.eye(classes, dtype="float32")[y]

    def fn(epoch):
        ds = tf.data.Dataset.from_tensor_slices((x, onehot))
        return ds.shuffle(len(x), seed=epoch, reshuffle_each_iteration=False).batch(batch, drop_remainder=True)

    return fn


def plain_recipe(**changes) -> Recipe:
    base = Recipe(
        name="test", paper="test", section="Section 0", optimizer="sgd", momentum=0.0, lr=0.1, batch_size=4,
        epochs=1, schedule=Schedule("constant"),
    )  # fmt: skip
    return base.replace(**changes)


def dense_model(inputs=4, classes=3, aux=()):
    x = keras.Input((inputs,))
    main = keras.layers.Dense(classes, name="main_dense")(x)
    if not aux:
        return keras.Model(x, main)
    outs = {"main": main, **{a: keras.layers.Dense(classes, name=f"{a}_dense")(x) for a in aux}}
    return keras.Model(x, outs)


# ----------------------------------------------------------------------------- plumbing


# Families whose smallest variant is this large (VGG, AlexNet, WRN-50-2, Inception-v4) run
# under the `slow` marker: their two steps cost more in memory than the plumbing is worth locally.
PLUMBING_SLOW_PARAMS = 40_000_000


def plumbing_params():
    return [
        pytest.param(p.values[0], marks=[*p.marks, pytest.mark.slow], id=p.id)
        if keras_archs.get_spec(p.values[0]).params > PLUMBING_SLOW_PARAMS
        else p
        for p in family_representatives()
    ]


@pytest.fixture
def eager_functions():
    # Tracing a deep net's train step costs far more than running two steps eagerly; the
    # traced path is covered by the other tests.
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.mark.parametrize("name", plumbing_params())
def test_every_family_trains_two_steps(name, eager_functions):
    """Plumbing: recipe, model (aux heads, dropout), loss and update connect for every family."""
    spec = keras_archs.get_spec(name)
    recipe = recipe_for(name)
    classes, size = 3, spec.min_size
    plan = resolve(recipe, num_train=4, global_batch=2, epochs=1)
    assert plan.steps_per_epoch == 2
    x, y = synthetic(4, size, spec.channels, classes)
    trainer = Trainer(
        lambda: run.build_model(name, image_size=size, channels=spec.channels, classes=classes, recipe=recipe),
        plan,
        log=lambda m: None,
    )
    if isinstance(trainer.model.output, dict):  # aux heads: every one has a recipe weight
        assert set(trainer.model.output) - {"main"} <= set(recipe.aux_weights)
    before = [v.numpy().copy() for v in trainer.model.trainable_variables]
    history = trainer.fit(train_fn_of(x, y, classes, 2))
    assert len(history) == 1 and math.isfinite(history[0]["loss"])
    assert int(trainer.optimizer.iterations.numpy()) == 2
    changed = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, trainer.model.trainable_variables))
    assert changed > 0


# ----------------------------------------------------------------------------- losses and updates


def test_aux_loss_is_main_plus_weighted_aux():
    rng = np.random.default_rng(0)
    onehot = np.eye(3, dtype="float32")[[0, 2, 1, 1]]
    outs = {k: tf.constant(rng.normal(size=(4, 3)).astype("float32")) for k in ("main", "aux1", "aux2")}
    xent = {k: keras.losses.categorical_crossentropy(onehot, v, from_logits=True).numpy() for k, v in outs.items()}
    got = per_example_loss(outs, onehot, aux_weights=RECIPES["googlenet"].aux_weights).numpy()
    np.testing.assert_allclose(got, xent["main"] + 0.3 * xent["aux1"] + 0.3 * xent["aux2"], rtol=1e-6)
    with pytest.raises(ValueError, match="no weight"):
        per_example_loss(outs, onehot, aux_weights={"aux1": 0.3})


def test_training_step_loss_uses_aux_weights():
    """The loss the loop reports for a dict-output model is main + 0.3 * (aux1 + aux2)."""
    recipe = RECIPES["googlenet"].replace(weight_decay=0.0)
    plan = resolve(recipe, num_train=4, global_batch=4, epochs=1)
    trainer = Trainer(lambda: dense_model(aux=("aux1", "aux2")), plan, log=lambda m: None)
    x, y = synthetic(4, 1, 4, 3)
    x = x.reshape(4, 4)
    onehot = np.eye(3, dtype="float32")[y]
    outs = trainer.model(x)
    expected = {k: float(np.mean(keras.losses.categorical_crossentropy(onehot, v, from_logits=True))) for k, v in outs.items()}
    loss, _ = trainer.train_on_batch(tf.constant(x), tf.constant(onehot))
    assert loss == pytest.approx(expected["main"] + 0.3 * expected["aux1"] + 0.3 * expected["aux2"], rel=1e-5)


def test_jit_compile_on_cpu_warns_with_the_measured_reason():
    plan = resolve(plain_recipe(lr=0.1, weight_decay=0.0), num_train=4, global_batch=4, epochs=1)
    logged = []
    Trainer(dense_model, plan, jit_compile=True, log=logged.append)
    assert XLA_CPU_WARNING in logged and "oneDNN" in XLA_CPU_WARNING
    logged.clear()
    Trainer(dense_model, plan, jit_compile=False, log=logged.append)
    assert XLA_CPU_WARNING not in logged


def test_weight_decay_is_coupled_l2_on_kernels_only():
    lr, wd = 0.1, 0.01
    plan = resolve(plain_recipe(lr=lr, weight_decay=wd), num_train=4, global_batch=4, epochs=1)
    trainer = Trainer(dense_model, plan, log=lambda m: None)
    x, y = synthetic(4, 1, 4, 3)
    x, onehot = x.reshape(4, 4), np.eye(3, dtype="float32")[y]
    kernel, bias = trainer.model.trainable_variables
    k0, b0 = kernel.numpy(), bias.numpy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(onehot, trainer.model(x), from_logits=True))
    gk, gb = tape.gradient(loss, [kernel, bias])
    trainer.train_on_batch(tf.constant(x), tf.constant(onehot))
    np.testing.assert_allclose(kernel.numpy(), k0 - lr * (gk.numpy() + wd * k0), atol=1e-6)
    np.testing.assert_allclose(bias.numpy(), b0 - lr * gb.numpy(), atol=1e-6)


def test_gradient_clipping_bounds_the_global_norm():
    lr, clip = 1.0, 1e-3
    plan = resolve(plain_recipe(lr=lr, clip_norm=clip), num_train=4, global_batch=4, epochs=1)
    trainer = Trainer(dense_model, plan, log=lambda m: None)
    x, y = synthetic(4, 1, 4, 3)
    before = [v.numpy() for v in trainer.model.trainable_variables]
    trainer.train_on_batch(tf.constant(x.reshape(4, 4)), tf.constant(np.eye(3, dtype="float32")[y]))
    step = np.sqrt(sum(np.sum((v.numpy() - b) ** 2) for v, b in zip(trainer.model.trainable_variables, before)))
    assert step == pytest.approx(lr * clip, rel=1e-4)


def test_nan_loss_stops_with_a_clear_message():
    plan = resolve(plain_recipe(lr=1e30), num_train=64, global_batch=16, epochs=2)
    def two_layers():
        x = keras.Input((16,))
        h = keras.layers.Dense(8, activation="relu")(x)
        return keras.Model(x, keras.layers.Dense(3)(h))

    trainer = Trainer(two_layers, plan, log=lambda m: None)
    x, y = synthetic(64, 4, 1, 3)
    with pytest.raises(TrainingDivergedError, match=r"diverged: the loss is (nan|inf)"):
        trainer.fit(train_fn_of(x.reshape(64, 16), y, 3, 16))


def test_plateau_divides_the_rate():
    schedule = Schedule("plateau", factor=0.1, patience=2, max_reductions=1)
    plan = resolve(plain_recipe(schedule=schedule), num_train=4, global_batch=4, epochs=1)
    trainer = Trainer(dense_model, plan, log=lambda m: None)
    for acc in (0.5, 0.6, 0.6, 0.59):
        trainer._plateau_update(acc)
    assert float(trainer.lr_scale.numpy()) == pytest.approx(0.1)
    assert trainer.current_lr() == pytest.approx(0.01)
    for acc in (0.1, 0.1, 0.1):
        trainer._plateau_update(acc)
    assert float(trainer.lr_scale.numpy()) == pytest.approx(0.1)  # max_reductions reached


def test_ema_weights_are_swapped_in_and_out():
    plan = resolve(plain_recipe(ema_decay=0.5), num_train=8, global_batch=4, epochs=1)
    trainer = Trainer(dense_model, plan, log=lambda m: None)
    x, y = synthetic(8, 1, 4, 3)
    trainer.fit(train_fn_of(x.reshape(8, 4), y, 3, 4))
    live = [v.numpy() for v in trainer.model.trainable_variables]
    averages = [a.numpy() for a in trainer.optimizer._model_variables_moving_average]
    with trainer.ema_weights():
        for v, a in zip(trainer.model.trainable_variables, averages):
            np.testing.assert_array_equal(v.numpy(), a)
    for v, w in zip(trainer.model.trainable_variables, live):
        np.testing.assert_array_equal(v.numpy(), w)
    assert not all(np.array_equal(a, w) for a, w in zip(averages, live))


def test_mixed_precision_step():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        plan = resolve(RECIPES["resnet_cifar"], num_train=8, global_batch=4, epochs=1)
        trainer = Trainer(
            lambda: keras_archs.get_model("resnet20", input_shape=(8, 8, 3), classes=3, classifier_activation=None),
            plan,
            log=lambda m: None,
            loss_scale=True,
        )
        assert trainer.model.layers[-1].compute_dtype == "float16"
        x, y = synthetic(8, 8, 3, 3)
        history = trainer.fit(train_fn_of(x, y, 3, 4))
        assert math.isfinite(history[0]["loss"])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_sync_batchnorm_copy():
    model = keras_archs.get_model("resnet20", input_shape=(8, 8, 3), classes=3, classifier_activation=None)
    synced = distribute.sync_batchnorm(model)
    bns = [layer for layer in synced.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(layer.synchronized for layer in bns)
    assert len(bns) == distribute.count_batchnorm(model)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(synced(x).numpy(), model(x).numpy(), atol=1e-6)


# ----------------------------------------------------------------------------- outputs and resume


def lenet_trainer(model_dir, callbacks=(), epochs=3):
    # A recipe with momentum and weight decay, so the resumed optimizer state matters.
    recipe = RECIPES["resnet_cifar"].replace(lr=0.05, batch_size=16)
    plan = resolve(recipe, num_train=64, global_batch=16, epochs=epochs)
    keras.utils.set_random_seed(7)
    return Trainer(
        lambda: keras_archs.get_model("lenet5", classes=10, classifier_activation=None),
        plan,
        model_dir=str(model_dir),
        callbacks=callbacks,
        log=lambda m: None,
    )


def lenet_data():
    x, y = synthetic(64, 32, 1, 10, seed=3)
    ev = tf.data.Dataset.from_tensor_slices((x[:32], y[:32].astype("int32"))).batch(16)
    return train_fn_of(x, y, 10, 16), ev


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    train, ev = lenet_data()
    whole = lenet_trainer(tmp_path / "whole")
    whole.fit(train, ev)

    class KilledError(Exception):
        pass

    def kill_after_first(trainer, record):
        if record.epoch == 1:
            raise KilledError

    first = lenet_trainer(tmp_path / "cut", callbacks=[kill_after_first])
    with pytest.raises(KilledError):
        first.fit(train, ev)
    seen = []
    resumed = lenet_trainer(tmp_path / "cut", callbacks=[lambda t, r: seen.append(r.epoch)])
    history = resumed.fit(train, ev, resume=True)
    assert seen == [2, 3]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert int(resumed.optimizer.iterations.numpy()) == 3 * 4
    for a, b in zip(whole.model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)

    out = tmp_path / "whole"
    for name in ("best.keras", "last.keras", "state.json", "history.csv", "history.json", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert glob.glob(str(out / "logs" / "train" / "events.out.tfevents.*"))
    assert glob.glob(str(out / "logs" / "validation" / "events.out.tfevents.*"))
    assert not glob.glob(str(out / ".*tmp*")), "temporary files left behind"
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 3
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    loaded = keras.saving.load_model(str(out / "last.keras"))
    x = np.zeros((1, 32, 32, 1), "float32")
    np.testing.assert_allclose(loaded(x).numpy(), whole.model(x).numpy(), atol=1e-6)


# ----------------------------------------------------------------------------- the command line


def run_cli(*args, timeout=300, extra_env=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "trainers.run", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_cli_trains_and_reports(tmp_path):
    out = tmp_path / "run"
    r = run_cli("--dataset", "synthetic:64", "--epochs", "1", "--batch_size", "16", "--model_dir", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "epoch 1/1" in r.stdout and "test accuracy" in r.stdout and "chosen on validation" in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"] == "resnet20" and metrics["examples"] == 16 and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["chosen_on"] == "validation" and metrics["chosen_epoch"] == 1
    plan = json.loads((out / "plan.json").read_text())
    assert plan["recipe"] == "budgeted" and plan["image_size"] == 28
    assert plan["splits"] == {"train": 54, "validation": 10, "test": 16}  # at least one per class
    # The directory now holds a run: without --resume it is refused, with it the run is complete.
    again = run_cli("--dataset", "synthetic:64", "--epochs", "1", "--batch_size", "16", "--model_dir", str(out))
    assert again.returncode == 2 and "--resume" in again.stderr
    nan = run_cli("--dataset", "synthetic:64", "--arch", "resnet20", "--image_size", "8", "--epochs", "1",
                  "--batch_size", "16", "--lr", "1e30", "--model_dir", str(tmp_path / "nan"))  # fmt: skip
    assert nan.returncode == 3 and "diverged" in nan.stderr, nan.stderr[-3000:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "resnet5O"], "Did you mean"),
        (["--validation_split", "1.5"], "--validation_split must be in [0, 1)"),
        (["--validation_split", "-0.1"], "--validation_split must be in [0, 1)"),
        (["--finetune", "full"], "--finetune needs --weights"),
        (["--batch_size", "0"], "--batch_size must be a positive integer"),
        (["--dataset", "synthetic:8"], "too few to hold out"),
        (["--eval_crops", "5"], "--eval_crops must be 1 or 10"),
        (["--dataset", "no_such_dataset_xyz"], "no_such_dataset_xyz"),
        (["--dataset", "folder:/nonexistent/images"], "/nonexistent/images"),
        (["--arch", "resnet20", "--image_size", "2", "--dataset", "synthetic:16"], "image_size"),
    ],
    ids=["unknown-arch", "split-above-1", "split-negative", "finetune-no-weights", "batch-0", "too-few-per-class",
         "eval-crops", "unknown-dataset", "missing-folder", "too-small"],
)  # fmt: skip
def test_cli_errors_are_clear(args, message, tmp_path):
    r = run_cli(*args, "--model_dir", str(tmp_path / "x"), timeout=180)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    err = r.stderr.strip().splitlines()
    assert err and err[-1].startswith("error:") and message in err[-1], r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists(), "a failed command left files behind"


def test_cli_weights_of_another_architecture_name_the_layer(tmp_path):
    lenet = keras_archs.get_model("lenet5", classes=10)
    lenet.save(tmp_path / "lenet.keras")
    r = run_cli("--dataset", "synthetic:64", "--arch", "resnet20", "--weights", str(tmp_path / "lenet.keras"),
                "--model_dir", str(tmp_path / "x"), timeout=180)  # fmt: skip
    assert r.returncode == 1, r.stderr[-3000:]  # a failure, not a usage error
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "conv1_conv" in last and "different architecture" in last, last
    assert not (tmp_path / "x").exists()


def _write_folder_dataset(root, permute_test: bool):
    """Grey 8x8 images of 3 classes whose brightness depends on the class; the test images
    are the same in both copies, only their class folders (labels) are permuted in one."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, per_class in (("train", 20), ("test", 6)):
        for cls in range(3):
            for i in range(per_class):
                pixels = np.clip(cls * 80 + rng.normal(0, 40, (8, 8)), 0, 255).astype(np.uint8)
                label = (cls + 1) % 3 if permute_test and split == "test" else cls
                folder = root / split / f"class{label}"
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(folder / f"{cls}_{i}.png")


def test_model_selection_never_reads_the_test_split(tmp_path):
    """Two runs that differ only in the test labels choose the same epoch with the same
    validation figures; only the final test figure differs."""
    results = []
    for permuted in (False, True):
        root = tmp_path / f"data{int(permuted)}"
        _write_folder_dataset(root, permute_test=permuted)
        out = tmp_path / f"run{int(permuted)}"
        r = run_cli("--dataset", f"folder:{root}", "--arch", "resnet20", "--image_size", "8", "--epochs", "3",
                    "--batch_size", "8", "--validation_split", "0.25", "--precision", "float32",
                    "--model_dir", str(out), extra_env={"TF_DETERMINISTIC_OPS": "1"})  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        history = json.loads((out / "history.json").read_text())
        metrics = json.loads((out / "metrics.json").read_text())
        results.append((history, metrics))
    (h0, m0), (h1, m1) = results
    assert [h["val_accuracy"] for h in h0] == [h["val_accuracy"] for h in h1]
    np.testing.assert_allclose([h["loss"] for h in h0], [h["loss"] for h in h1], rtol=1e-6)
    assert m0["chosen_epoch"] == m1["chosen_epoch"] and m0["best"] == m1["best"]
    assert m0["test_accuracy"] != m1["test_accuracy"]


def test_cli_unknown_flag():
    r = run_cli("--no_such_flag=1", timeout=120)
    assert r.returncode != 0 and "no_such_flag" in r.stderr


def test_plan_summary_is_json():
    plan = resolve(RECIPES["bit"], num_train=1000, global_batch=8)
    json.dumps(plan.summary())
    assert dataclasses.asdict(plan.schedule)["kind"] == "step"


def test_ten_crop_evaluation_averages_the_crops_probabilities(tmp_path):
    """--eval_crops 10: ten copies of one image score exactly as the image alone; ten
    different crops score as the mean of their softmax probabilities."""
    trainer = lenet_trainer(tmp_path / "ten")
    x, y = synthetic(8, 32, 1, 10, seed=4)
    labels = y.astype("int32")
    single = trainer.evaluate(tf.data.Dataset.from_tensor_slices((x, labels)).batch(4))
    tens = np.repeat(x[:, None], 10, axis=1)
    repeated = trainer.evaluate(tf.data.Dataset.from_tensor_slices((tens, labels)).batch(4))
    assert repeated["accuracy"] == single["accuracy"] and repeated["examples"] == 8
    np.testing.assert_allclose(repeated["loss"], single["loss"], rtol=1e-5)
    crops = np.random.default_rng(0).uniform(-1, 1, (8, 10, 32, 32, 1)).astype("float32")
    probs = tf.nn.softmax(trainer.model(crops.reshape(80, 32, 32, 1))).numpy().reshape(8, 10, 10).mean(1)
    mixed = trainer.evaluate(tf.data.Dataset.from_tensor_slices((crops, labels)).batch(4))
    assert mixed["accuracy"] == np.mean(probs.argmax(-1) == labels)
    np.testing.assert_allclose(mixed["loss"], -np.mean(np.log(probs[np.arange(8), labels])), rtol=1e-4)
