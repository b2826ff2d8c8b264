"""Train or evaluate a keras_archs model with its paper's recipe.

    python -m trainers.run                       # the demo: ResNet-20 on Fashion-MNIST (offline), minutes on CPU
    python -m trainers.run --arch lenet5         # LeNet-5 with its paper's schedule (20 passes)
    python -m trainers.run --arch resnet20 --dataset cifar10 --epochs 10
    python -m trainers.run --arch resnet18 --weights resnet18.pth --finetune full --dataset folder:/data/flowers
    python -m trainers.run --helpfull            # every flag

The recipe defaults to the architecture's paper (``trainers.recipes``); flags override
single values. Model selection (best checkpoint, plateau schedules, early stopping) reads a
validation split held out from the training data; the test split is evaluated once, at the
end, on the chosen weights. Outputs go to ``--model_dir`` (see ``trainers.outputs``);
``--resume`` continues an interrupted run there. Exit codes: :mod:`trainers.cli` (3 for a
run whose loss becomes NaN or infinite).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from absl import app, flags

from trainers import cli
from trainers.cli import UsageError

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

flags.DEFINE_string(
    "arch", None, "Registry name of the model (`python -m keras_archs` lists them). Default: the demo, "
    "resnet20 with the 'budgeted' recipe at the dataset's own image size."
)  # fmt: skip
flags.DEFINE_string(
    "dataset",
    "fashion_mnist",
    "fashion_mnist (offline, Debian's files), a prepared TFDS name (e.g. cifar10, imagenet2012; see --data_dir), "
    "folder:/path (one subfolder per class), tfrecord:/path/train-* (ImageNet-format TFRecord files), "
    "or synthetic[:N] (random images, for tests).",
)
flags.DEFINE_string(
    "data_dir", None, "Where Fashion-MNIST's IDX files or prepared TFDS datasets are read from (nothing is downloaded)."
)
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
flags.DEFINE_float("dropout", None, "Override the model's dropout rate (families with a `dropout` option).")
flags.DEFINE_string("augment", None, "Override the augmentation policy (trainers.data.augment).")
flags.DEFINE_float(
    "validation_split", 0.1, "Fraction of each class of the training split held out for validation (seeded, "
    "stratified) when the dataset has no validation split of its own; 0 trains on all of it (best = last).",
)  # fmt: skip
flags.DEFINE_list("classes", None, "Keep only these class ids (e.g. 5,6,7,8,9), relabelled 0..k-1 in this order.")
flags.DEFINE_integer(
    "train_examples_per_class", None, "Use this many labelled training examples per class (seeded), "
    "validation included.",
)  # fmt: skip
flags.DEFINE_integer("early_stopping_patience", 0, "Stop after this many epochs without a better validation accuracy (0: never).")
flags.DEFINE_integer("eval_crops", 1, "Test-time crops: 1 (centre) or 10 (corners, centre and their flips, averaged).")
flags.DEFINE_enum(
    "finetune", None, ["full", "head"], "With --weights: load every layer but the classifier and train all of it "
    "(full) or only a new classifier on a frozen backbone with BatchNorm in inference mode (head).",
)  # fmt: skip
flags.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored", "multi_worker", "tpu"], "Distribution strategy.")
flags.DEFINE_string("tpu", "", "TPU address for --strategy tpu.")
flags.DEFINE_bool("sync_bn", False, "Synchronize BatchNorm statistics over replicas.")
flags.DEFINE_enum(
    "precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"],
    "Compute precision (variables stay float32). auto: mixed_bfloat16 where the hardware computes bfloat16 fast "
    "(CPUs with AVX512_BF16/AMX, TPUs, GPUs of compute capability 8.0+), mixed_float16 on older GPUs, else float32.",
)  # fmt: skip
flags.DEFINE_bool("mixed_precision", False, "Same as --precision mixed_float16 (kept for old command lines).")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the training step.")
flags.DEFINE_bool("verbose", False, "Show TensorFlow's native start-up log lines (oneDNN, absl; hidden by default).")
flags.DEFINE_string("model_dir", None, "Output directory (default: runs/<arch>_<dataset>_<time>).")
flags.DEFINE_bool("resume", False, "Continue the run saved in --model_dir (within an epoch if it was saved there).")
flags.DEFINE_string(
    "checkpoint_every", None, "Also save the resume state within epochs: every N steps (500) or every so long "
    "(90s, 10m, 1h); --resume then continues at that step. Default: at the end of each epoch only.",
)  # fmt: skip
flags.DEFINE_integer("seed", 0, "Random seed (initialisation, validation split, shuffling, augmentation).")
flags.DEFINE_integer("steps_per_epoch", None, "Cap on the steps per epoch.")
flags.DEFINE_integer("eval_steps", None, "Cap on the validation batches per epoch (default: all).")
flags.DEFINE_bool("eval_only", False, "Only evaluate --weights on the test split.")
flags.DEFINE_string(
    "weights", None, "Weights to start from: 'imagenet' or a file (.keras, .weights.h5, a torchvision .pth, a "
    "keras.applications .h5). With --finetune the classifier is left out.",
)  # fmt: skip

FLAGS = flags.FLAGS

# `python -m trainers.run` with no --arch is the demo: ResNet-20 (He et al. 2015, Section 4.2)
# with the short `budgeted` recipe on Fashion-MNIST at its own 28x28, a few minutes on 2 CPU cores.
DEMO_ARCH = "resnet20"
DEMO_RECIPE = "budgeted"


def _parse_classes(values: list[str] | None) -> tuple[int, ...] | None:
    if not values:
        return None
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise UsageError(f"--classes takes class ids (integers), got {','.join(values)!r}.") from None


# ----------------------------------------------------------------------------- model


def build_model(
    arch: str, *, image_size: int, channels: int, classes: int, recipe: Any, dropout: float | None = None,
    sync_bn: bool = False, weights: str | None = None, finetune: str | None = None,
    log: Callable[[str], None] = print,
) -> Any:
    """The logits model for training: aux heads if the recipe weights them, dropout, sync BN,
    and the starting weights (``finetune``: every layer but the classifier; ``"head"``
    freezes the rest)."""

    import keras_archs
    from keras_archs import weights as weights_lib
    from trainers import distribute

    spec = keras_archs.get_spec(arch)
    kwargs = dict(
        include_top=True, input_shape=(image_size, image_size, channels), classes=classes, classifier_activation=None
    )
    kwargs.update({k: v for k, v in recipe.model_options.items() if k in spec.options})
    rate = dropout if dropout is not None else recipe.dropout
    if rate is not None:
        if "dropout" in spec.options:
            kwargs["dropout"] = float(rate)
        elif dropout is not None:
            log(f"note: {arch} has no dropout option; --dropout {rate:g} is not applied.")
    model = None
    if recipe.aux_weights and "aux_logits" in spec.options:
        try:
            model = spec.build(**kwargs, aux_logits=True)
        except ValueError as e:  # e.g. Inception-v3's aux head needs 299x299 inputs
            log(f"note: no auxiliary classifiers at {image_size}x{image_size}: {e}")
    elif recipe.aux_weights:
        log(f"note: {arch} has no auxiliary classifiers; the recipe's aux weights are unused.")
    if model is None:
        model = spec.build(**kwargs)
    if weights:
        if weights != "imagenet" and not os.path.exists(weights):
            raise UsageError(f"--weights file not found: {weights}")
        try:
            skipped = weights_lib.load_weights(model, weights, arch=spec.name, skip_head=bool(finetune))
        except weights_lib.WeightsError as e:
            raise cli.FailedError(str(e)) from None
        loaded = sum(len(layer.weights) > 0 for layer in model.layers) - len(skipped)
        log(
            f"weights: {loaded} layers loaded from {weights}"
            + (f"; new (not loaded): {', '.join(skipped)}" if skipped else "")
        )
        if finetune == "head":
            for layer in model.layers:
                layer.trainable = layer.name in skipped
            log(f"finetune head: backbone frozen (BatchNorm in inference mode); training {', '.join(skipped)}")
    if sync_bn:
        if distribute.count_batchnorm(model) == 0:
            log(f"note: {arch} has no BatchNormalization layers; --sync_bn changes nothing.")
        else:
            model = distribute.sync_batchnorm(model)
    return model


def input_channels(weights: str | None, *, dataset_channels: int, default: int) -> int:
    """The model's input channels: the dataset's (grey images train a 1-channel model), or,
    when starting from weights, the channels those weights were trained on (a ``.keras``
    file says; ImageNet files are RGB)."""
    import json
    import zipfile

    if not weights:
        return dataset_channels if dataset_channels in (1, 3) else default
    if os.path.isfile(weights) and zipfile.is_zipfile(weights):
        try:
            with zipfile.ZipFile(weights) as archive:
                config = json.loads(archive.read("config.json"))
            layer = config["config"]["layers"][0]
            return int(layer["config"]["batch_shape"][-1])
        except (KeyError, IndexError, TypeError, ValueError):
            pass  # not a .keras archive (a torch zip): RGB
    return default


# ----------------------------------------------------------------------------- main


def _default_model_dir(arch: str, dataset: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset)
    return os.path.join("runs", f"{arch}_{safe}_{time.strftime('%Y%m%d-%H%M%S')}")


def _check_flags() -> None:
    if FLAGS.batch_size < 1:
        raise UsageError(f"--batch_size must be a positive integer, got {FLAGS.batch_size}.")
    if FLAGS.eval_batch_size is not None and FLAGS.eval_batch_size < 1:
        raise UsageError(f"--eval_batch_size must be a positive integer, got {FLAGS.eval_batch_size}.")
    if FLAGS.epochs is not None and FLAGS.epochs < 1:
        raise UsageError(f"--epochs must be a positive integer, got {FLAGS.epochs}.")
    if not 0.0 <= FLAGS.validation_split < 1.0:
        raise UsageError(f"--validation_split must be in [0, 1), got {FLAGS.validation_split:g}.")
    if FLAGS.eval_crops not in (1, 10):
        raise UsageError(f"--eval_crops must be 1 or 10, got {FLAGS.eval_crops}.")
    if FLAGS.finetune and not FLAGS.weights:
        raise UsageError("--finetune needs --weights (imagenet or a file) to fine-tune from.")
    if FLAGS.train_examples_per_class is not None and FLAGS.train_examples_per_class < 1:
        raise UsageError(f"--train_examples_per_class must be positive, got {FLAGS.train_examples_per_class}.")
    if FLAGS.early_stopping_patience < 0:
        raise UsageError(f"--early_stopping_patience must be >= 0, got {FLAGS.early_stopping_patience}.")
    if FLAGS.eval_only and not FLAGS.weights:
        raise UsageError("--eval_only needs --weights (the .keras file to evaluate).")
    from trainers import checkpointing, cluster

    checkpointing.CheckpointEvery.parse(FLAGS.checkpoint_every)
    if FLAGS.strategy in ("auto", "multi_worker"):
        cluster.check_tf_config()


def run(argv: list[str] | None = None) -> int:
    """Train (or with ``--eval_only`` evaluate) as the flags say; returns the exit code."""
    start = time.time()
    _check_flags()
    # Strategies must exist before other TensorFlow work (multi-worker in particular).
    import keras
    import tensorflow as tf

    import keras_archs
    from trainers import checkpointing, cluster, distribute, outputs, precision, recipes
    from trainers.data import sharded
    from trainers.data.pipeline import load_run_splits, make_eval_dataset, make_train_dataset, train_source
    from trainers.loop import Trainer

    strategy = distribute.make_strategy(FLAGS.strategy, tpu=FLAGS.tpu)
    chief = distribute.is_chief(strategy)

    def log(message: str) -> None:
        if chief:
            print(message, flush=True)

    demo = FLAGS.arch is None
    try:
        spec = keras_archs.get_spec(DEMO_ARCH if demo else FLAGS.arch)
    except ValueError as e:
        raise UsageError(str(e)) from None
    recipe_name = FLAGS.recipe or (DEMO_RECIPE if demo else None)
    if FLAGS.finetune and not recipe_name:
        recipe_name = recipes.finetune_recipe_name(spec.name)
    try:
        recipe = recipes.get_recipe(recipe_name) if recipe_name else recipes.recipe_for(spec.name)
    except (KeyError, ValueError) as e:
        raise UsageError(e.args[0] if e.args else str(e)) from None
    recipe = recipes.apply_overrides(
        recipe,
        optimizer=FLAGS.optimizer,
        weight_decay=FLAGS.weight_decay,
        label_smoothing=FLAGS.label_smoothing,
        schedule=FLAGS.schedule,
        warmup_epochs=FLAGS.warmup_epochs,
        augment=FLAGS.augment,
    )
    if FLAGS.image_size is not None and FLAGS.image_size < spec.min_size:
        raise UsageError(f"{spec.name} needs --image_size >= {spec.min_size}, got {FLAGS.image_size}.")
    policy = recipe.augment
    classes = _parse_classes(FLAGS.classes)
    splits = load_run_splits(
        FLAGS.dataset, FLAGS.data_dir, validation_split=FLAGS.validation_split, seed=FLAGS.seed, classes=classes,
        per_class=FLAGS.train_examples_per_class, train=not FLAGS.eval_only, log=log,
    )  # fmt: skip
    raw_train, raw_val, raw_test, info = splits.train, splits.validation, splits.test, splits.info
    image_size = FLAGS.image_size
    if image_size is None:
        native = info.image_shape[0]
        use_native = demo and native is not None and native == info.image_shape[1] and native >= spec.min_size
        image_size = native if use_native else spec.default_size
    if image_size < spec.min_size:
        raise UsageError(f"{spec.name} needs --image_size >= {spec.min_size}, got {image_size}.")
    channels = input_channels(FLAGS.weights, dataset_channels=info.image_shape[-1], default=spec.channels)
    keras.utils.set_random_seed(FLAGS.seed)
    policy_name = precision.choose("mixed_float16" if FLAGS.mixed_precision else FLAGS.precision)
    keras.mixed_precision.set_global_policy(policy_name)

    eval_batch = FLAGS.eval_batch_size or FLAGS.batch_size
    test_ds = make_eval_dataset(
        raw_test, policy=policy, image_size=image_size, channels=channels, batch_size=eval_batch, crops=FLAGS.eval_crops
    )
    build = lambda: build_model(  # noqa: E731
        spec.name, image_size=image_size, channels=channels, classes=info.num_classes, recipe=recipe,
        dropout=FLAGS.dropout, sync_bn=FLAGS.sync_bn, weights=FLAGS.weights, finetune=FLAGS.finetune, log=log,
    )  # fmt: skip

    if FLAGS.eval_only:
        plan = recipes.resolve(recipe, num_train=max(info.num_train, 1), global_batch=FLAGS.batch_size, epochs=1)
        trainer = Trainer(build, plan, strategy, model_dir=None, log=log)
        final = trainer.evaluate(test_ds)
        log(f"test accuracy {final['accuracy']:.4f} (top-5 {final['top5']:.4f}, loss {final['loss']:.4f}) on "
            f"{final['examples']} images of the test split; {FLAGS.weights}")  # fmt: skip
        return 0

    if demo and FLAGS.epochs is None:
        log(
            f"demo run: {spec.name} with the '{recipe.name}' recipe ({recipe.paper}); --arch {spec.name} for its "
            f"paper's recipe, --arch lenet5 for LeNet-5 with the paper's schedule"
        )
    plan = recipes.resolve(
        recipe,
        num_train=info.num_train,
        global_batch=FLAGS.batch_size,
        epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch,
        lr=FLAGS.lr,
    )
    model_dir = FLAGS.model_dir or _default_model_dir(spec.name, info.name)
    identity = checkpointing.run_identity(
        arch=spec.name, dataset=info.name, image_size=image_size, channels=channels, class_names=list(info.class_names)
    )
    if FLAGS.resume:
        checkpointing.check_resumable(model_dir, identity)
    log(
        f"{spec.name} ({spec.family}) on {info.name}: {info.num_train} train / {info.num_validation} validation / "
        f"{info.num_test} test, {info.num_classes} classes, input {image_size}x{image_size}x{channels}; "
        f"{distribute.strategy_name(strategy)} with {strategy.num_replicas_in_sync} replica(s), {policy_name}"
    )
    log(
        f"recipe {recipe.name}: {recipe.optimizer} lr {plan.base_lr:.4g} (recipe {recipe.lr:g} at batch "
        f"{recipe.batch_size}), batch {plan.global_batch}, {plan.epochs} epochs x {plan.steps_per_epoch} steps, "
        f"schedule {plan.schedule.kind}, wd {recipe.weight_decay:g}, augment {policy}; outputs in {model_dir}"
    )
    val_ds = None
    if raw_val is not None:
        val_ds = make_eval_dataset(
            raw_val, policy=policy, image_size=image_size, channels=channels, batch_size=eval_batch,
            steps=FLAGS.eval_steps,
        )  # fmt: skip

    trainer = Trainer(
        build,
        plan,
        strategy,
        model_dir=model_dir,
        jit_compile=FLAGS.jit_compile,
        log=log,
        loss_scale=policy_name == "mixed_float16",
        early_stopping_patience=FLAGS.early_stopping_patience,
        refresh_seconds=30.0,
        checkpoint_every=checkpointing.CheckpointEvery.parse(FLAGS.checkpoint_every),
        identity=identity,
    )
    if trainer.has_state() and not FLAGS.resume:
        raise UsageError(f"{model_dir} already holds a run; pass --resume to continue it or choose another --model_dir.")
    if chief:
        outputs.write_json(
            os.path.join(model_dir, "plan.json"),
            {**plan.summary(), "arch": spec.name, "dataset": info.name, "image_size": image_size,
             "class_names": list(info.class_names), "precision": policy_name,
             "splits": {"train": info.num_train, "validation": info.num_validation, "test": info.num_test},
             "flags": {f.name: f.value for f in FLAGS.get_key_flags_for_module(sys.modules[__name__])}},
        )  # fmt: skip

    workers = distribute.num_workers(strategy)
    train_fn = make_train_dataset(
        raw_train, info.num_train, info.num_classes, policy=policy, image_size=image_size, channels=channels,
        plan=plan, seed=FLAGS.seed, source=train_source(FLAGS.dataset, FLAGS.data_dir, splits, workers=workers),
    )  # fmt: skip
    replicas = strategy.num_replicas_in_sync
    placement = sharded.Placement(0, workers, max(1, replicas // workers), plan.global_batch // replicas)
    log(f"input: {train_fn.describe(placement)}"
        + (f"; mid-epoch saves {trainer.checkpoint_every.describe()}" if trainer.checkpoint_every else ""))  # fmt: skip
    try:
        trainer.fit(train_fn, val_ds, resume=FLAGS.resume)
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError) as e:
        if workers < 2:
            raise
        raise cli.FailedError(
            cluster.lost_peer_message(e, model_dir=model_dir, checkpoint=trainer.last_saved())
        ) from None
    chosen = trainer.restore_best()
    final = trainer.evaluate(test_ds)
    wall = time.time() - start
    metrics = {
        "arch": spec.name,
        "dataset": info.name,
        "recipe": recipe.name,
        "split": "test",
        "test_loss": final["loss"],
        "test_accuracy": final["accuracy"],
        "test_top5": final["top5"],
        "examples": final["examples"],
        "eval_crops": FLAGS.eval_crops,
        "epochs": trainer.epochs_done,
        "chosen_epoch": chosen,
        "chosen_on": "validation" if val_ds is not None else "last epoch (no validation split)",
        "best": trainer.best,
        "class_names": list(info.class_names),
        "wall_seconds": wall,
        "ema": bool(recipe.ema_decay),
        "precision": policy_name,
    }
    if chief:
        outputs.write_json(os.path.join(model_dir, "metrics.json"), metrics)
    selection = f"epoch {chosen}, chosen on validation" if val_ds is not None else f"epoch {chosen}, the last"
    log(f"test accuracy {final['accuracy']:.4f} (top-5 {final['top5']:.4f}, loss {final['loss']:.4f}) on "
        f"{final['examples']} test images, measured once on the weights of {selection}; wall time {wall:.0f}s")  # fmt: skip
    log(f"outputs in {model_dir}: best.keras {os.path.join(model_dir, 'best.keras')}")
    return 0


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, following :mod:`trainers.cli`: a bad flag is one line and exit
    code 2 (absl prints "FATAL Flags parsing error" and exits 1), ``--help`` exits 0."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        message = f"{cli.first_line(e)}; `python -m trainers.run --helpfull` lists the flags."
        sys.exit(cli.report(message, cli.EXIT_USAGE))
    except SystemExit as e:  # absl's --help, --helpshort and --helpfull print the flags, then exit 1
        raise SystemExit(0 if e.code == 1 else e.code) from None


def main(argv: list[str]) -> int:
    """The command line (after :func:`parse_flags`); returns the exit code."""
    if len(argv) > 1:
        return cli.report(
            f"unexpected arguments {argv[1:]}; flags take the form --name=value "
            "(`python -m trainers.run --helpfull` lists them).",
            cli.EXIT_USAGE,
        )
    from absl import logging

    cli.quiet().import_tensorflow(verbose=FLAGS.verbose)  # before anything imports TensorFlow
    logging.set_verbosity(logging.WARNING)
    try:
        code = cli.run_command(lambda: run(argv))
    except (ValueError, KeyError, FileNotFoundError) as e:  # settings rejected deeper down (strategy, model options)
        code = cli.report(e, cli.EXIT_USAGE)
    if os.environ.get("TF_CONFIG"):
        # A multi-worker process whose run has ended (every output written atomically) can still
        # abort while the interpreter tears down TensorFlow's collective threads ("terminate
        # called ... exception not rethrown", exit -6; seen under load). Leave without teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
