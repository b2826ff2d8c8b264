"""Train or evaluate a keras_archs model with its paper's recipe.

    python -m trainers.run                       # LeNet-5 on Fashion-MNIST (offline), a few minutes on CPU
    python -m trainers.run --arch resnet20 --dataset cifar10 --epochs 10
    python -m trainers.run --arch googlenet --dataset folder:/data/flowers --image_size 224 --batch_size 64
    python -m trainers.run --helpfull            # every flag

The recipe defaults to the architecture's paper (``trainers.recipes``); flags override
single values. Outputs go to ``--model_dir`` (see ``trainers.outputs``); ``--resume``
continues an interrupted run there.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app, flags

flags.DEFINE_string("arch", "lenet5", "Registry name of the model (`python -m keras_archs` lists them).")
flags.DEFINE_string(
    "dataset",
    "fashion_mnist",
    "fashion_mnist (offline, Debian files), a TFDS name, folder:/path, or synthetic[:N] (random images, for tests).",
)
flags.DEFINE_string("data_dir", None, "Where datasets are read from / downloaded to.")
flags.DEFINE_integer("epochs", None, "Epochs (default: the recipe's training length).")
flags.DEFINE_integer("batch_size", 128, "Global batch size (split over replicas); the lr scales linearly with it.")
flags.DEFINE_integer("eval_batch_size", None, "Evaluation batch size (default: --batch_size).")
flags.DEFINE_integer("image_size", None, "Input height = width (default: the model's default size).")
flags.DEFINE_string("recipe", None, "Recipe name or registry name (default: the arch's paper).")
flags.DEFINE_enum("optimizer", None, ["sgd", "rmsprop", "adam"], "Override the recipe's optimizer.")
flags.DEFINE_float("lr", None, "Override the base learning rate (used as given, not batch-scaled).")
flags.DEFINE_float("weight_decay", None, "Override the L2 weight decay.")
flags.DEFINE_float("label_smoothing", None, "Override label smoothing.")
flags.DEFINE_enum(
    "schedule", None, ["constant", "step", "exponential", "linear", "cosine", "plateau"], "Override the schedule kind."
)
flags.DEFINE_float("warmup_epochs", None, "Override the warm-up length (epochs of this dataset).")
flags.DEFINE_float("dropout", None, "Override the dropout rate(s) of the model.")
flags.DEFINE_string("augment", None, "Override the augmentation policy (trainers.augment).")
flags.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored", "multi_worker", "tpu"], "Distribution strategy.")
flags.DEFINE_string("tpu", "", "TPU address for --strategy tpu.")
flags.DEFINE_bool("sync_bn", False, "Synchronize BatchNorm statistics over replicas.")
flags.DEFINE_bool("mixed_precision", False, "Use the mixed_float16 policy (logits and loss in float32).")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the training step.")
flags.DEFINE_string("model_dir", None, "Output directory (default: runs/<arch>_<dataset>_<time>).")
flags.DEFINE_bool("resume", False, "Continue the run saved in --model_dir.")
flags.DEFINE_integer("seed", 0, "Random seed (initialisation, shuffling, augmentation).")
flags.DEFINE_integer("steps_per_epoch", None, "Cap on the steps per epoch.")
flags.DEFINE_integer("eval_steps", None, "Cap on the evaluation batches (default: the whole test split).")
flags.DEFINE_bool("eval_only", False, "Only evaluate --weights on the test split.")
flags.DEFINE_string("weights", None, "A .keras / .weights.h5 file to start from, or 'imagenet'.")

FLAGS = flags.FLAGS

# `python -m trainers.run` with no --arch and no --epochs is the demo: LeNet-5 on
# Fashion-MNIST for DEMO_EPOCHS epochs (the paper's 20 passes, compressed), a few minutes on CPU.
DEMO_EPOCHS = 5
EXIT_USAGE = 2
EXIT_DIVERGED = 3


class UsageError(ValueError):
    """A bad flag combination or input; reported without a traceback."""


# ----------------------------------------------------------------------------- data


def load_data(spec: str, split: str, data_dir: str | None, seed: int = 0):
    """``(unbatched dataset of (uint8 HWC image, int32 label), DatasetInfo)``.

    ``synthetic[:N]``: N (default 512) random 28x28 grey images in 10 classes whose mean
    brightness depends on the class (learnable), N // 4 for the test split.
    """
    import numpy as np
    import tensorflow as tf

    from trainers import data

    if spec.startswith("synthetic"):
        n = int(spec.split(":", 1)[1]) if ":" in spec else 512
        n = n if split == "train" else max(n // 4, 1)
        rng = np.random.default_rng(seed + (0 if split == "train" else 1))
        labels = rng.integers(0, 10, n).astype("int32")
        base = (labels[:, None, None, None] * 25).astype("float32")
        images = np.clip(base + rng.normal(0, 30, (n, 28, 28, 1)), 0, 255).astype("uint8")
        info = data.DatasetInfo(
            name="synthetic", num_classes=10, class_names=tuple(str(i) for i in range(10)),
            num_train=n if split == "train" else n * 4, num_test=max(n // 4, 1) if split == "train" else n,
            image_shape=(28, 28, 1),
        )  # fmt: skip
        return tf.data.Dataset.from_tensor_slices((images, labels)), info
    return data.load_dataset(spec, split, data_dir=data_dir)


def _distribute_options():
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def make_train_dataset(raw, info, *, policy, image_size, channels, plan, seed):
    """``epoch -> batched (images, onehot) dataset``; the shuffle order is a function of
    ``seed`` and the epoch, so a resumed run sees the same data as an uninterrupted one."""
    import tensorflow as tf

    from trainers import augment

    num_classes = info.num_classes
    buffer = max(1, min(info.num_train, 50_000))
    mixup = augment.make_mixup(plan.mixup_alpha, seed) if plan.mixup_alpha > 0 else None

    def for_epoch(epoch: int) -> tf.data.Dataset:
        ds = raw.shuffle(buffer, seed=seed * 1000 + epoch, reshuffle_each_iteration=False)
        ds = augment.map_train(ds, policy, image_size, channels, seed * 1000 + epoch)
        ds = ds.batch(plan.global_batch, drop_remainder=True)
        ds = ds.map(lambda x, y: (x, tf.one_hot(tf.cast(y, tf.int32), num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
        if mixup is not None:
            ds = ds.map(mixup)
        ds = ds.take(plan.steps_per_epoch).prefetch(tf.data.AUTOTUNE)
        return ds.with_options(_distribute_options())

    return for_epoch


def make_eval_dataset(raw, *, policy, image_size, channels, batch_size, steps=None):
    import tensorflow as tf

    from trainers import augment

    ds = raw.map(augment.eval_transform(policy, image_size, channels), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size)
    if steps:
        ds = ds.take(steps)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_distribute_options())


# ----------------------------------------------------------------------------- model


def build_model(arch: str, *, image_size: int, channels: int, classes: int, recipe, dropout=None, sync_bn=False,
                weights=None, log=print):  # fmt: skip
    """The logits model for training: aux heads if the recipe weights them, dropout, sync BN."""
    import keras

    import keras_archs
    from trainers import distribute

    kwargs = dict(
        include_top=True,
        weights=weights if weights == "imagenet" else None,
        input_shape=(image_size, image_size, channels),
        classes=classes,
        classifier_activation=None,
    )

    def get(**extra):
        try:
            return keras_archs.get_model(arch, **kwargs, **extra)
        except TypeError as e:  # the family has no such option
            if extra and any(k in str(e) for k in extra):
                return None
            raise
        except ValueError as e:  # e.g. Inception aux heads need 299x299 inputs
            if extra.get("aux_logits") and "aux_logits" in str(e):
                log(f"note: no auxiliary classifiers at {image_size}x{image_size}: {e}")
                return None
            raise

    model = None
    rate = dropout if dropout is not None else recipe.dropout
    extra = {}
    if recipe.aux_weights:
        extra["aux_logits"] = True
    if rate is not None:
        model = get(**extra, dropout=rate)
    if model is None:
        model = get(**extra) if extra else None
    if model is None:
        model = keras_archs.get_model(arch, **kwargs)
        if extra:
            log(f"note: {arch} has no auxiliary classifiers; the recipe's aux weights are unused.")
    if rate is not None:
        drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
        for layer in drops:
            layer.rate = float(rate)
        if not drops and rate > 0:
            log(f"note: {arch} has no dropout layers; dropout {rate} is not applied.")
    if weights and weights != "imagenet":
        if not os.path.exists(weights):
            raise UsageError(f"--weights file not found: {weights}")
        model.load_weights(weights)
    if sync_bn:
        if distribute.count_batchnorm(model) == 0:
            log(f"note: {arch} has no BatchNormalization layers; --sync_bn changes nothing.")
        else:
            model = distribute.sync_batchnorm(model)
    return model


# ----------------------------------------------------------------------------- main


def _default_model_dir(arch: str, dataset: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset)
    return os.path.join("runs", f"{arch}_{safe}_{time.strftime('%Y%m%d-%H%M%S')}")


def run(argv=None) -> int:
    start = time.time()
    # Strategies must exist before other TensorFlow work (multi-worker in particular).
    import keras
    import tensorflow as tf  # noqa: F401

    import keras_archs
    from trainers import distribute, outputs, recipes
    from trainers.loop import Trainer

    strategy = distribute.make_strategy(FLAGS.strategy, tpu=FLAGS.tpu)
    chief = distribute.is_chief(strategy)

    def log(message: str) -> None:
        if chief:
            print(message, flush=True)

    try:
        spec = keras_archs.get_spec(FLAGS.arch)
    except ValueError as e:
        raise UsageError(str(e)) from None
    recipe = recipes.get_recipe(FLAGS.recipe) if FLAGS.recipe else recipes.recipe_for(spec.name)
    recipe = recipes.apply_overrides(
        recipe,
        optimizer=FLAGS.optimizer,
        weight_decay=FLAGS.weight_decay,
        label_smoothing=FLAGS.label_smoothing,
        schedule=FLAGS.schedule,
        warmup_epochs=FLAGS.warmup_epochs,
        augment=FLAGS.augment,
    )
    image_size = FLAGS.image_size or spec.default_size
    if image_size < spec.min_size:
        raise UsageError(f"{spec.name} needs --image_size >= {spec.min_size}, got {image_size}.")
    channels = spec.channels
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    try:
        raw_test, info = load_data(FLAGS.dataset, "test", FLAGS.data_dir, FLAGS.seed)
        raw_train = None if FLAGS.eval_only else load_data(FLAGS.dataset, "train", FLAGS.data_dir, FLAGS.seed)[0]
    except (FileNotFoundError, KeyError, NotImplementedError) as e:
        raise UsageError(f"cannot load dataset {FLAGS.dataset!r}: {e}") from None
    policy = recipe.augment
    epochs = FLAGS.epochs
    if epochs is None and not FLAGS["arch"].present and not FLAGS.recipe:
        epochs = DEMO_EPOCHS
        log(f"demo run: {DEMO_EPOCHS} epochs (the recipe's schedule compressed; --epochs {recipe.epochs:g} for the paper's length)")
    plan = recipes.resolve(
        recipe,
        num_train=info.num_train,
        global_batch=FLAGS.batch_size,
        epochs=epochs,
        steps_per_epoch=FLAGS.steps_per_epoch,
        lr=FLAGS.lr,
    )
    model_dir = FLAGS.model_dir or _default_model_dir(spec.name, info.name)
    log(
        f"{spec.name} ({spec.family}) on {info.name}: {info.num_train} train / {info.num_test} test, "
        f"{info.num_classes} classes, input {image_size}x{image_size}x{channels}; "
        f"{distribute.strategy_name(strategy)} with {strategy.num_replicas_in_sync} replica(s)"
    )
    log(
        f"recipe {recipe.name}: {recipe.optimizer} lr {plan.base_lr:.4g} (paper {recipe.lr:g} at batch "
        f"{recipe.batch_size}), batch {plan.global_batch}, {plan.epochs} epochs x {plan.steps_per_epoch} steps, "
        f"schedule {plan.schedule.kind}, wd {recipe.weight_decay:g}, augment {policy}; outputs in {model_dir}"
    )
    eval_ds = make_eval_dataset(
        raw_test, policy=policy, image_size=image_size, channels=channels,
        batch_size=FLAGS.eval_batch_size or FLAGS.batch_size, steps=FLAGS.eval_steps,
    )  # fmt: skip

    trainer = Trainer(
        lambda: build_model(
            spec.name, image_size=image_size, channels=channels, classes=info.num_classes, recipe=recipe,
            dropout=FLAGS.dropout, sync_bn=FLAGS.sync_bn, weights=FLAGS.weights, log=log,
        ),
        plan,
        strategy,
        model_dir=model_dir,
        jit_compile=FLAGS.jit_compile,
        log=log,
        loss_scale=FLAGS.mixed_precision,
    )  # fmt: skip
    if trainer.has_state() and not FLAGS.resume and not FLAGS.eval_only:
        raise UsageError(f"{model_dir} already holds a run; pass --resume to continue it or choose another --model_dir.")
    if chief and not FLAGS.eval_only:
        outputs.write_json(
            os.path.join(model_dir, "plan.json"),
            {**plan.summary(), "arch": spec.name, "dataset": info.name, "image_size": image_size,
             "flags": {f.name: f.value for f in FLAGS.get_key_flags_for_module(sys.modules[__name__])}},
        )  # fmt: skip

    if not FLAGS.eval_only:
        train_fn = make_train_dataset(
            raw_train, info, policy=policy, image_size=image_size, channels=channels, plan=plan, seed=FLAGS.seed
        )
        trainer.fit(train_fn, eval_ds, resume=FLAGS.resume)
    final = trainer.evaluate(eval_ds)
    wall = time.time() - start
    metrics = {
        "arch": spec.name,
        "dataset": info.name,
        "split": "test",
        "test_loss": final["loss"],
        "test_accuracy": final["accuracy"],
        "test_top5": final["top5"],
        "examples": final["examples"],
        "epochs": trainer.epochs_done,
        "best": trainer.best,
        "wall_seconds": wall,
        "ema": bool(recipe.ema_decay),
    }
    if chief:
        os.makedirs(model_dir, exist_ok=True)
        outputs.write_json(os.path.join(model_dir, "metrics.json"), metrics)
    log(f"test accuracy {final['accuracy']:.4f} (top-5 {final['top5']:.4f}, loss {final['loss']:.4f}) on "
        f"{final['examples']} images; wall time {wall:.0f}s; outputs in {model_dir}")  # fmt: skip
    return 0


def main(argv) -> int:
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return EXIT_USAGE
    from absl import logging

    from trainers.loop import TrainingDivergedError

    logging.set_verbosity(logging.WARNING)
    try:
        return run(argv)
    except TrainingDivergedError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except (UsageError, ValueError, KeyError, FileNotFoundError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    app.run(main)
