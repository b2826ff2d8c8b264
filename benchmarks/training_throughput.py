"""Training throughput on this machine: our trainer vs plain Keras ``model.fit`` vs PyTorch, side by side.

    python -m benchmarks.training_throughput                          # the default models, 3 rounds
    python -m benchmarks.training_throughput --models resnet20 --rounds 5 --steps 20
    python -m benchmarks.training_throughput --models resnet20 --sides ours ours_aug ours_xla keras
    python -m benchmarks.training_throughput --quick                  # tiny: seconds (CI)

Every side trains the same architecture on the same synthetic batches (seeded normal pixels,
random labels; a pool of two batches cycled), channels-last, in its own fresh process:

- ``ours``: the trainer's real training path: :class:`trainers.loop.Trainer` (the class
  ``python -m trainers.run`` drives) with the architecture's paper recipe (optimizer, weight
  decay, label smoothing, EMA, auxiliary heads, gradient clipping), the model built by
  ``trainers.run.build_model``, the strategy of ``--strategy auto`` and the progress line on
  (its periodic reads included). The figure is the trainer's own images/s of its second epoch.
- ``keras``: ``keras.applications``' same architecture (``weights=None``) under plain
  ``model.compile`` + ``model.fit`` (verbose 0) with the same optimizer, loss and label
  smoothing. For ResNet-20, which keras.applications lacks, our own builder under plain fit:
  that isolates the training loop itself.
- ``torch``: torchvision's same architecture (for ResNet-20 a CIFAR ResNet-20, option A,
  written here), ``channels_last``, ``torch.set_num_threads`` = TensorFlow's intra-op
  threads (the cores), the same optimizer settings, EMA, auxiliary loss and clipping.
- optional ``ours_aug``: ``ours`` fed by the command line's own input pipeline
  (``make_train_dataset``: shuffle, the recipe's augmentation, one-hot, prefetch) on
  synthetic uint8 images, to show what the pipeline costs; ``ours_xla``: ``ours`` with
  ``jit_compile=True``.

Each run is two epochs of ``--steps`` steps: the first (tracing, compilation, oneDNN primitive
creation) is the warm-up, the second is timed. Reported per model and side: min / median /
max images/s over the rounds, the median CPU time per image (process CPU seconds, all threads:
less sensitive than wall time to other load on the machine), and the ratios ours/keras and
ours/torch at the median. Sides alternate within each round (their order rotates from round
to round). Precision rows: ours and keras in ``mixed_bfloat16`` against ``float32``
(``--precision_models``). Results go to ``--json`` (default
``runs/benchmarks/training_throughput_<time>.json``) and a table is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@dataclasses.dataclass(frozen=True)
class Case:
    """One architecture as each side builds it, and how it is fed."""

    name: str  # our registry name
    image_size: int
    batch: int
    steps: int  # timed steps (and warm-up steps) per run
    classes: int
    keras_app: str | None  # keras.applications function; None: our builder under plain fit
    torch: str  # torchvision.models function, or "cifar_resnet20" (written here)


CASES = {
    c.name: c
    for c in (
        Case("resnet20", 32, 128, 10, 10, None, "cifar_resnet20"),
        Case("resnet50", 224, 16, 2, 1000, "ResNet50", "resnet50"),
        Case("densenet121", 224, 16, 2, 1000, "DenseNet121", "densenet121"),
        Case("inception_v3", 299, 16, 2, 1000, "InceptionV3", "inception_v3"),
        Case("efficientnet_b0", 224, 16, 2, 1000, "EfficientNetB0", "efficientnet_b0"),
        Case("vgg16", 224, 16, 1, 1000, "VGG16", "vgg16"),
    )
}
SIDES = ("ours", "keras", "torch", "ours_aug", "ours_xla")
DEFAULT_SIDES = ("ours", "keras", "torch")
PRECISION_SIDES = ("ours", "keras")  # the mixed_bfloat16 rows
POOL = 2  # distinct synthetic batches, cycled
# `python -m benchmarks.run_all --quick`: ResNet-20 at batch 8, 2 steps, 1 round.
QUICK_ARGS = ("--quick",)


# ----------------------------------------------------------------------------- data


def synthetic_batches(case: Case, batch: int, image_size: int) -> tuple[Any, Any]:
    """``POOL`` batches of seeded normal pixels ``[POOL, batch, S, S, 3]`` and int labels ``[POOL, batch]``."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.standard_normal((POOL, batch, image_size, image_size, 3), dtype=np.float32)
    labels = rng.integers(0, case.classes, (POOL, batch)).astype(np.int32)
    return images, labels


# ----------------------------------------------------------------------------- the sides (in a worker)


@dataclasses.dataclass
class Measured:
    """One run's figures: the timed (second) epoch and the warm-up."""

    images_per_second: float
    cpu_ms_per_image: float
    warmup_seconds: float


class _Marked:
    """A training input (``epoch -> dataset``) that notes the clocks when an epoch's data is asked for."""

    def __init__(self, inner: Callable[[int], Any]) -> None:
        self.inner = inner
        self.marks: dict[int, tuple[float, float]] = {}

    def _mark(self, epoch: int) -> None:
        self.marks[epoch] = (time.perf_counter(), time.process_time())

    def __call__(self, epoch: int) -> Any:
        self._mark(epoch)
        return self.inner(epoch)


class _MarkedTrainInput(_Marked):
    """The same around a :class:`trainers.data.sharded.TrainInput`, which the trainer distributes itself."""

    def distribute(self, strategy: Any, epoch: int, start_step: int = 0) -> Any:
        self._mark(epoch)
        return self.inner.distribute(strategy, epoch, start_step)


def _tf_plan(case: Case, batch: int, steps: int) -> tuple[Any, Any]:
    from trainers import recipes

    recipe = recipes.recipe_for(case.name)
    return recipe, recipes.resolve(recipe, num_train=steps * batch, global_batch=batch, epochs=2, steps_per_epoch=steps)


def run_ours(case: Case, batch: int, image_size: int, steps: int, policy: str, *, jit: bool = False,
             pipeline: bool = False) -> Measured:  # fmt: skip
    """The trainer's training path (``Trainer.fit``) on the synthetic batches, or with
    ``pipeline`` on the command line's input pipeline over synthetic uint8 images."""
    import keras
    import numpy as np
    import tensorflow as tf

    from trainers import distribute
    from trainers.loop import Trainer
    from trainers.run import build_model

    strategy = distribute.make_strategy("auto")  # what `trainers.run` does first
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(policy)
    recipe, plan = _tf_plan(case, batch, steps)
    images, labels = synthetic_batches(case, batch, image_size)
    onehot = np.eye(case.classes, dtype=np.float32)[labels]
    if pipeline:  # the command line's input: a trainers.data.sharded.TrainInput
        from trainers.data.pipeline import make_train_dataset

        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (steps * batch, image_size, image_size, 3), dtype=np.uint8)
        classes = rng.integers(0, case.classes, steps * batch).astype(np.int32)
        raw = tf.data.Dataset.from_tensor_slices((pixels, classes))
        train_input = _MarkedTrainInput(make_train_dataset(
            raw, steps * batch, case.classes, policy=recipe.augment, image_size=image_size, channels=3, plan=plan, seed=0
        ))  # fmt: skip
    else:
        data = tf.data.Dataset.from_tensor_slices((images, onehot))
        train_input = _Marked(lambda epoch: data.repeat().take(steps).prefetch(tf.data.AUTOTUNE))

    records = {}

    def callback(trainer: Trainer, record: Any) -> None:
        records[record.epoch] = (record, time.perf_counter(), time.process_time())

    build = lambda: build_model(case.name, image_size=image_size, channels=3, classes=case.classes,  # noqa: E731
                                recipe=recipe, log=lambda m: None)  # fmt: skip
    trainer = Trainer(build, plan, strategy, model_dir=None, jit_compile=jit, log=lambda m: None, progress=True,
                      callbacks=[callback])  # fmt: skip
    trainer.fit(train_input)
    record, _, cpu_end = records[2]
    cpu = (cpu_end - train_input.marks[2][1]) * 1e3 / (steps * batch)
    return Measured(record.images_per_second, cpu, records[1][0].seconds)


class _EpochClock:
    """Keras callback: wall and CPU time of each epoch."""

    def __init__(self) -> None:
        import keras

        class Clock(keras.callbacks.Callback):
            def on_epoch_begin(inner, epoch: int, logs: Any = None) -> None:  # noqa: N805
                inner.start = (time.perf_counter(), time.process_time())

            def on_epoch_end(inner, epoch: int, logs: Any = None) -> None:  # noqa: N805
                self.epochs.append((time.perf_counter() - inner.start[0], time.process_time() - inner.start[1]))

        self.epochs: list[tuple[float, float]] = []
        self.callback = Clock()


def run_keras(case: Case, batch: int, image_size: int, steps: int, policy: str) -> Measured:
    """keras.applications' architecture (or our builder for ResNet-20) under plain ``model.fit``."""
    import keras
    import numpy as np
    import tensorflow as tf

    from trainers import recipes

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(policy)
    recipe, plan = _tf_plan(case, batch, steps)
    shape = (image_size, image_size, 3)
    if case.keras_app:
        model = getattr(keras.applications, case.keras_app)(
            weights=None, input_shape=shape, classes=case.classes, classifier_activation=None
        )
    else:
        import keras_archs

        model = keras_archs.get_model(case.name, input_shape=shape, classes=case.classes, classifier_activation=None)
    optimizer = recipes.make_optimizer(plan, recipes.make_schedule(plan))
    if recipe.clip_norm:
        optimizer.global_clipnorm = recipe.clip_norm
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    images, labels = synthetic_batches(case, batch, image_size)
    onehot = np.eye(case.classes, dtype=np.float32)[labels]
    data = tf.data.Dataset.from_tensor_slices((images, onehot)).repeat().prefetch(tf.data.AUTOTUNE)
    clock = _EpochClock()
    model.fit(data, epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[clock.callback])
    (warm, _), (wall, cpu) = clock.epochs
    return Measured(steps * batch / wall, cpu * 1e3 / (steps * batch), warm)


def _torch_cifar_resnet(depth: int, classes: int) -> Any:
    """He et al. (2015) Section 4.2's CIFAR ResNet with option-A shortcuts (as ours)."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            short = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
            if self.extra:
                short = F.pad(short, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
            return F.relu(out + short)

    n = (depth - 2) // 6
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for i, width in enumerate((16, 32, 64)):
        for j in range(n):
            layers.append(Block(cin, width, 2 if i and not j else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*layers)


def torch_settings(case: Case, batch: int, steps: int) -> dict[str, Any]:
    """The recipe's optimizer settings for the torch side, read in a TensorFlow process: the
    torch worker must not import TensorFlow (both in one process: a crash, or torch several
    times slower, measured)."""
    recipe, plan = _tf_plan(case, batch, steps)
    return {
        "optimizer": recipe.optimizer, "lr": plan.base_lr, "momentum": recipe.momentum, "nesterov": recipe.nesterov,
        "weight_decay": recipe.weight_decay, "rho": recipe.rmsprop_rho, "epsilon": recipe.epsilon,
        "ema_decay": float(recipe.ema_decay or 0.0), "label_smoothing": recipe.label_smoothing,
        "aux_weight": float(dict(recipe.aux_weights or {}).get("aux", 0.0)), "clip_norm": float(recipe.clip_norm or 0.0),
    }  # fmt: skip


def run_torch(case: Case, batch: int, image_size: int, steps: int, threads: int, settings: dict[str, Any]) -> Measured:
    """torchvision's architecture, channels-last, the recipe's optimizer settings (:func:`torch_settings`),
    EMA, auxiliary loss and clipping."""
    import torch
    import torchvision

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    aux_weight = settings["aux_weight"]
    if case.torch == "cifar_resnet20":
        model = _torch_cifar_resnet(20, case.classes)
    elif case.torch == "inception_v3":
        model = torchvision.models.inception_v3(weights=None, num_classes=case.classes, aux_logits=aux_weight > 0,
                                                init_weights=False)  # fmt: skip
    else:
        model = getattr(torchvision.models, case.torch)(weights=None, num_classes=case.classes)
    model = model.to(memory_format=torch.channels_last).train()
    params = [p for p in model.parameters() if p.requires_grad]
    kind, lr, wd = settings["optimizer"], settings["lr"], settings["weight_decay"]
    if kind == "sgd":
        opt = torch.optim.SGD(
            params, lr=lr, momentum=settings["momentum"], nesterov=settings["nesterov"], weight_decay=wd
        )
    elif kind == "rmsprop":
        opt = torch.optim.RMSprop(params, lr=lr, alpha=settings["rho"], momentum=settings["momentum"],
                                  eps=settings["epsilon"], weight_decay=wd)  # fmt: skip
    else:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=wd)
    ema_decay, clip_norm = settings["ema_decay"], settings["clip_norm"]
    ema = [p.detach().clone() for p in params] if ema_decay else []
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=settings["label_smoothing"])
    images, labels = synthetic_batches(case, batch, image_size)
    xs = [torch.from_numpy(b).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last) for b in images]
    ys = [torch.from_numpy(b).long() for b in labels]

    def step(i: int) -> torch.Tensor:
        x, y = xs[i % POOL], ys[i % POOL]
        out = model(x)
        if isinstance(out, tuple):  # torchvision's InceptionOutputs(logits, aux_logits)
            loss = criterion(out[0], y) + aux_weight * criterion(out[1], y)
        else:
            loss = criterion(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm:
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
        opt.step()
        if ema:
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - ema_decay)
        return loss

    times = []
    for _ in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(steps):
            loss = step(i)
        float(loss.item())
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    (warm, _), (wall, cpu) = times
    return Measured(steps * batch / wall, cpu * 1e3 / (steps * batch), warm)


def _worker(args: argparse.Namespace) -> int:
    if args.worker == "settings":  # the torch side's recipe settings of every model, from TensorFlow's side
        out: Any = {m: torch_settings(CASES[m], args.batch or CASES[m].batch, args.steps or CASES[m].steps)
                    for m in args.models}  # fmt: skip
        with open(args.result, "w", encoding="utf-8") as f:
            json.dump(out, f)
        return 0
    case = CASES[args.model]
    batch, size = args.batch or case.batch, args.image_size or case.image_size
    steps = args.steps or case.steps
    if args.threads and args.worker != "torch":  # the torch worker must not import TensorFlow
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    side = args.worker
    if side.startswith("ours"):
        m = run_ours(case, batch, size, steps, args.precision, jit=side == "ours_xla", pipeline=side == "ours_aug")
    elif side == "keras":
        m = run_keras(case, batch, size, steps, args.precision)
    else:
        m = run_torch(case, batch, size, steps, args.threads or os.cpu_count() or 1, json.loads(args.torch_settings))
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(m), f)
    return 0


# ----------------------------------------------------------------------------- the driver


def torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("torchvision") is not None
    except (ImportError, ValueError):
        return False


def jobs(models: list[str], sides: list[str], precision_models: list[str]) -> list[tuple[str, str, str]]:
    """``(model, side, precision)`` of one round, model by model."""
    out = []
    for model in models:
        out += [(model, side, "float32") for side in sides]
        if model in precision_models:
            out += [(model, side, "mixed_bfloat16") for side in PRECISION_SIDES if side in sides]
    return out


def rotated(items: list, k: int) -> list:
    k %= max(len(items), 1)
    return items[k:] + items[:k]


def summarize(runs: list[dict]) -> list[dict]:
    """Per (model, side, precision): min / median / max images/s and the median CPU ms per image."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for run in runs:
        if "error" not in run:
            groups.setdefault((run["model"], run["side"], run["precision"]), []).append(run)
    rows = []
    for (model, side, precision), group in groups.items():
        ips = [r["images_per_second"] for r in group]
        rows.append({
            "model": model, "side": side, "precision": precision, "rounds": len(group),
            "min": min(ips), "median": statistics.median(ips), "max": max(ips),
            "cpu_ms_per_image": statistics.median(r["cpu_ms_per_image"] for r in group),
            "warmup_seconds": statistics.median(r["warmup_seconds"] for r in group),
        })  # fmt: skip
    return rows


def _ratio(a: dict | None, b: dict | None, key: str = "median", invert: bool = False) -> float | None:
    if not a or not b or not a[key] or not b[key]:
        return None
    return b[key] / a[key] if invert else a[key] / b[key]


def comparisons(rows: list[dict], models: list[str]) -> list[dict]:
    """Per model (float32): ours/keras and ours/torch at the median images/s and in CPU time per image."""
    find = {(r["model"], r["side"], r["precision"]): r for r in rows}
    out = []
    for model in models:
        ours, keras_, torch_ = (find.get((model, s, "float32")) for s in ("ours", "keras", "torch"))
        out.append({
            "model": model,
            "ours_over_keras": _ratio(ours, keras_), "ours_over_torch": _ratio(ours, torch_),
            # CPU time per image, inverted so that > 1 means ours is cheaper, like the speed ratios.
            "ours_over_keras_cpu": _ratio(ours, keras_, "cpu_ms_per_image", invert=True),
            "ours_over_torch_cpu": _ratio(ours, torch_, "cpu_ms_per_image", invert=True),
        })  # fmt: skip
    return out


def _fmt(row: dict | None) -> str:
    return f"{row['min']:.1f} / **{row['median']:.1f}** / {row['max']:.1f}" if row else "-"


def _fmt_ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def table(rows: list[dict], comps: list[dict], settings: dict) -> str:
    """The markdown tables: float32 side by side, extra sides, and the precision rows."""
    find = {(r["model"], r["side"], r["precision"]): r for r in rows}
    lines = [
        "| model | input, batch | ours img/s (min / **median** / max) | keras | torch | ours/keras | ours/torch "
        "| CPU ms/img ours, keras, torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for comp in comps:
        model = comp["model"]
        cells = [find.get((model, s, "float32")) for s in ("ours", "keras", "torch")]
        cpu = ", ".join(f"{c['cpu_ms_per_image']:.0f}" if c else "-" for c in cells)
        lines.append(
            f"| {model} | {settings['image_size'].get(model)}², {settings['batch'].get(model)} | {_fmt(cells[0])} | "
            f"{_fmt(cells[1])} | {_fmt(cells[2])} | {_fmt_ratio(comp['ours_over_keras'])} | "
            f"{_fmt_ratio(comp['ours_over_torch'])} | {cpu} |"
        )
    keras_sides = [f"{c['model']}: keras.applications.{CASES[c['model']].keras_app}" if CASES[c["model"]].keras_app
                   else f"{c['model']}: our builder" for c in comps]  # fmt: skip
    lines.append(f"\nkeras side (plain `model.fit`): {'; '.join(keras_sides)}.")
    extra = [r for r in rows if r["side"] in ("ours_aug", "ours_xla")]
    if extra:
        lines += ["", "| model | side | img/s (min / **median** / max) | vs ours | CPU ms/img | warm-up s |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for r in extra:
            ours = find.get((r["model"], "ours", r["precision"]))
            lines.append(f"| {r['model']} | {r['side']} ({r['precision']}) | {_fmt(r)} | {_fmt_ratio(_ratio(r, ours))} "
                         f"| {r['cpu_ms_per_image']:.1f} | {r['warmup_seconds']:.1f} |")  # fmt: skip
    bf16 = [r for r in rows if r["precision"] == "mixed_bfloat16"]
    if bf16:
        lines += ["", "| model | side | float32 img/s (median) | mixed_bfloat16 img/s (min / **median** / max) | "
                  "bf16/fp32 | CPU ms/img fp32, bf16 |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in bf16:
            fp32 = find.get((r["model"], r["side"], "float32"))
            lines.append(
                f"| {r['model']} | {r['side']} | {fp32['median']:.1f} | {_fmt(r)} | {_fmt_ratio(_ratio(r, fp32))} | "
                f"{fp32['cpu_ms_per_image']:.1f}, {r['cpu_ms_per_image']:.1f} |"
                if fp32
                else f"| {r['model']} | {r['side']} | - | {_fmt(r)} | - | - |"
            )
    return "\n".join(lines)


def _write_json(path: str, payload: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("tensorflow-cpu", "tensorflow", "keras", "torch", "torchvision"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.training_throughput",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--sides", nargs="+", default=list(DEFAULT_SIDES), choices=SIDES)
    p.add_argument("--precision_models", nargs="*", default=["resnet20"],
                   help="models also run in mixed_bfloat16 by ours and keras (none: no precision rows)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="timed steps per run (default: per model, small)")
    p.add_argument("--batch", type=int, default=None, help="batch size for every model (default: per model)")
    p.add_argument("--image_size", type=int, default=None, help="input size for every model (default: per model)")
    p.add_argument("--threads", type=int, default=None,
                   help="TensorFlow intra-op threads and torch threads (default: TensorFlow's default, the cores)")  # fmt: skip
    p.add_argument("--json", default=None, help="JSON path (default runs/benchmarks/training_throughput_<time>.json)")
    p.add_argument("--quick", action="store_true", help="ResNet-20 at batch 8, 2 steps, 1 round: a smoke run")
    p.add_argument("--worker", choices=(*SIDES, "settings"), help=argparse.SUPPRESS)
    p.add_argument("--torch_settings", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return _worker(args)
    if args.quick:
        args.models, args.rounds, args.steps, args.batch = ["resnet20"], 1, 2, 8
        args.precision_models = ["resnet20"]
    if args.rounds < 1 or (args.steps is not None and args.steps < 1):
        p.error("--rounds and --steps must be positive")
    sides = list(args.sides)
    notes = []
    if "torch" in sides and not torch_available():
        sides.remove("torch")
        notes.append("torch side skipped: PyTorch/torchvision not installed (make test installs them)")
    out = args.json or os.path.join("runs", "benchmarks", f"training_throughput_{time.strftime('%Y%m%d-%H%M%S')}.json")
    settings = {
        "models": args.models, "sides": sides, "rounds": args.rounds, "precision_models": args.precision_models,
        "steps": {m: args.steps or CASES[m].steps for m in args.models},
        "batch": {m: args.batch or CASES[m].batch for m in args.models},
        "image_size": {m: args.image_size or CASES[m].image_size for m in args.models},
        "threads": args.threads or os.cpu_count(),
    }  # fmt: skip
    plan = jobs(args.models, sides, args.precision_models)
    runs: list[dict] = []
    status = 0
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        common = []
        for flag in ("steps", "batch", "image_size", "threads"):
            if getattr(args, flag):
                common += [f"--{flag}", str(getattr(args, flag))]
        torch_json = "{}"
        if "torch" in sides:
            result = os.path.join(tmp, "settings.json")
            r = subprocess.run([sys.executable, "-m", "benchmarks.training_throughput", "--worker", "settings", "--models",
                                *args.models, "--result", result, *common], capture_output=True, text=True)  # fmt: skip
            if r.returncode:
                print(r.stderr[-3000:], file=sys.stderr)
                return 1
            with open(result, encoding="utf-8") as f:
                torch_json = f.read()
        for rnd in range(args.rounds):
            for model in args.models:
                todo = rotated([j for j in plan if j[0] == model], rnd)
                for _, side, precision in todo:
                    result = os.path.join(tmp, "result.json")
                    cmd = [sys.executable, "-m", "benchmarks.training_throughput", "--worker", side, "--model", model,
                           "--precision", precision, "--result", result, *common]  # fmt: skip
                    if side == "torch":
                        cmd += ["--torch_settings", json.dumps(json.loads(torch_json)[model])]
                    load = os.getloadavg()[0]
                    t = time.time()
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    run = {"round": rnd + 1, "model": model, "side": side, "precision": precision,
                           "load_average_1min": load, "process_seconds": time.time() - t}  # fmt: skip
                    if r.returncode:
                        tail = r.stderr.strip().splitlines()[-1:] or ["(no output)"]
                        run["error"] = tail[0]
                        print(f"  {model} {side} {precision}: FAILED: {tail[0]}", file=sys.stderr, flush=True)
                        status = 1
                    else:
                        with open(result, encoding="utf-8") as f:
                            run.update(json.load(f))
                        os.remove(result)
                        print(f"round {rnd + 1} {model:16s} {side:9s} {precision:15s} {run['images_per_second']:8.1f} "
                              f"img/s  {run['cpu_ms_per_image']:7.1f} CPU ms/img  (load {load:.1f})", flush=True)  # fmt: skip
                    runs.append(run)
    rows = summarize(runs)
    comps = comparisons(rows, args.models)
    text = table(rows, comps, settings)
    loads = [r["load_average_1min"] for r in runs]
    _write_json(out, {
        "date": time.strftime("%Y-%m-%d"), "command": " ".join(["python -m benchmarks.training_throughput", *(argv or sys.argv[1:])]),
        "wall_seconds": time.time() - started, "cpus": os.cpu_count(), "cpu_flags": _cpu_flags(),
        "versions": _versions(), "settings": settings, "notes": notes, "runs": runs, "summary": rows,
        "comparisons": comps, "table": text,
    })  # fmt: skip
    print(text)
    for note in notes:
        print(f"note: {note}")
    print(f"{len(runs)} runs in {(time.time() - started) / 60:.1f} min; 1-min load average at the runs' starts "
          f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores; written to {out}")  # fmt: skip
    return status


if __name__ == "__main__":
    sys.exit(main())
