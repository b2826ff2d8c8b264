"""Input-pipeline throughput: every training augmentation policy of the trainer against a
torchvision ``DataLoader`` doing the same operations, and against what a model consumes.

    python -m benchmarks.input_pipeline                                  # every policy, 224 px, batch 64
    python -m benchmarks.input_pipeline --policies randaugment inception --rounds 5 --json out.json
    python -m benchmarks.input_pipeline --consumers resnet50:16 none     # training speeds to compare with

Data: ``--images`` real Fashion-MNIST training images (read where the trainer's data module
reads them), upscaled bicubically to ``--source_size`` pixels square and written as RGB JPEG
files (quality 90, one folder per class) into a temporary folder that is deleted at the end.
Both sides read and decode those same files.

Ours is the trainer's own training input for image files (``trainers.data.pipeline.make_train_dataset``
on a ``trainers.data.sharded.FileSource``, what ``trainers.run`` reads a ``folder:`` dataset
with when it is too large to keep decoded in memory: a shuffled file order, reading, JPEG
decoding and the policy's augmentation in one parallel map, batching, one-hot labels, mixup
where the policy has it, prefetch). torchvision's side is ``ImageFolder`` with
the same operations as ``torchvision.transforms`` on PIL images (RandomResizedCrop,
ColorJitter, RandAugment(2, 9), AutoAugment(IMAGENET), v2.MixUp in ``collate_fn``, ...;
:func:`torchvision_transform` lists them), in a ``DataLoader`` with ``--workers`` worker
processes. Each round builds each pipeline afresh, pulls ``--warmup`` batches (start-up,
tracing), then times ``--batches`` batches; the two sides alternate within every round
(the order flips each round). Reported per side: images/s (min, median, max over rounds)
and the ratio of the medians, ours / torchvision; and the CPU milliseconds per image (this
process's threads and the DataLoader's worker processes, while the timed batches ran) and
their ratio, torchvision / ours. On a machine shared with other work the wall-clock rate
also depends on how the scheduler shares the cores between each side's threads and the
other work; the CPU time per image much less.

Consumers: training images/s of ``--consumers`` models (``name:batch``; Keras
``train_on_batch`` at the same size on real batches, SGD, in the precision the trainer
picks on this machine), and the share of this machine a pipeline needs to feed each:
``consumer img/s / pipeline img/s`` (above 100 %: the pipeline is the bottleneck).
A table is printed; ``--json PATH`` also writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

DEFAULT_CONSUMERS = ("resnet50:16", "shufflenet_v2_x1_0:64")
# `python -m benchmarks.run_all --quick`: two policies, small images, one short round, no consumer.
QUICK_ARGS = (
    "--policies", "simple", "randaugment", "--images", "32", "--source_size", "64", "--image_size", "48",
    "--batch_size", "8", "--warmup", "1", "--batches", "2", "--rounds", "1", "--consumers", "none",
)  # fmt: skip

IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)  # fb.resnet.torch's, as trainers.data.augment
IMAGENET_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


# ----------------------------------------------------------------------------- data


def _torch_first(argv: list[str]) -> int | None:
    """torch must be imported before TensorFlow (the other order segfaults: TF 2.21 and
    torch's triton load clashing native libraries). If TensorFlow is already loaded in this
    process, run the benchmark in a fresh one and return its exit code."""
    if "tensorflow" in sys.modules and "torch" not in sys.modules:
        return subprocess.call([sys.executable, "-m", "benchmarks.input_pipeline", *argv])
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"this benchmark needs requirements-dev.txt (torch, torchvision): {e}") from None
    return None


def write_jpeg_folder(root: str, num_images: int, source_size: int) -> dict[str, Any]:
    """``num_images`` Fashion-MNIST training images, upscaled to ``source_size`` square, as RGB
    JPEG files in ``root/train/<class>/``; returns what was written."""
    import numpy as np
    from PIL import Image

    from trainers.data import datasets

    raw, info = datasets.load_dataset("fashion_mnist", "train")
    written = 0
    for image, label in raw.take(num_images).as_numpy_iterator():
        name = f"{int(label)}_" + "".join(c if c.isalnum() else "_" for c in info.class_names[int(label)]).lower()
        folder = os.path.join(root, "train", name)
        os.makedirs(folder, exist_ok=True)
        picture = Image.fromarray(np.asarray(image)[..., 0], mode="L").resize((source_size, source_size), Image.BICUBIC)
        picture.convert("RGB").save(os.path.join(folder, f"{written:05d}.jpg"), quality=90)
        written += 1
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    return {"images": written, "source": info.source, "size": source_size, "bytes": total}


# ----------------------------------------------------------------------------- ours


def ours_iterator(policy: str, root: str, *, image_size: int, batch_size: int, steps: int, seed: int = 0) -> Iterator:
    """``steps`` batches of the trainer's training input for image files (a
    ``trainers.data.sharded.FileSource`` through ``trainers.data.pipeline.make_train_dataset``,
    as ``trainers.run`` reads a ``folder:`` dataset too large to keep decoded in memory). The
    file list is repeated to one epoch of ``steps`` batches: no epoch starts while timing."""
    from trainers.data import pipeline, preprocess, sharded

    files, labels = list_folder(root)
    repeat = -(-steps * batch_size // len(files))
    source = sharded.FileSource(files * repeat, labels * repeat, channels=3, shape=(None, None))
    plan = types.SimpleNamespace(global_batch=batch_size, steps_per_epoch=steps,
                                 mixup_alpha=preprocess.get_policy(policy).mixup_alpha or 0.0)  # fmt: skip
    train = pipeline.make_train_dataset(None, len(files) * repeat, max(labels) + 1, policy=policy,
                                        image_size=image_size, channels=3, plan=plan, seed=seed, source=source)  # fmt: skip
    return iter(train(0))


def list_folder(root: str) -> tuple[list[str], list[int]]:
    """The training files of :func:`write_jpeg_folder` and their labels (class folders in sorted order)."""
    base = os.path.join(root, "train")
    classes = sorted(os.listdir(base))
    pairs = [(os.path.join(base, c, f), i) for i, c in enumerate(classes) for f in sorted(os.listdir(os.path.join(base, c)))]
    return [f for f, _ in pairs], [label for _, label in pairs]


# ----------------------------------------------------------------------------- torchvision


class _Lighting:
    """AlexNet's PCA colour lighting on a [0, 1] CHW tensor (fb.resnet.torch's numbers)."""

    def __init__(self, std: float) -> None:
        import torch

        self.std = std
        self.eigval = torch.tensor(IMAGENET_PCA_EIGVAL)
        self.eigvec = torch.tensor(IMAGENET_PCA_EIGVEC)

    def __call__(self, image):
        import torch

        alpha = torch.randn(3) * self.std
        return image + (self.eigvec @ (alpha * self.eigval)).view(3, 1, 1)


class _RandomShorterSide:
    """Resize the shorter side to a size drawn uniformly from ``[low, high]`` (VGG's scale jittering)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def __call__(self, image):
        import random

        from torchvision.transforms import functional

        return functional.resize(image, random.randint(self.low, self.high))


def _scaled(size: int, image_size: int) -> int:
    return round(size * image_size / 224)


def torchvision_transform(policy: str, image_size: int):
    """The torchvision (v1, PIL) counterpart of ``trainers.data.augment``'s training policy."""
    from torchvision import transforms as T  # noqa: N812

    from trainers.data import augment, preprocess

    norm = preprocess.normalization(policy)
    to_tensor = [T.ToTensor(), T.Normalize([m / 255 for m in norm.mean], [s / 255 for s in norm.std])]
    flip = T.RandomHorizontalFlip()
    s = image_size
    bicubic_crop = T.RandomResizedCrop(s, interpolation=T.InterpolationMode.BICUBIC)
    if policy == "alexnet":
        ops = [T.Resize(_scaled(256, s)), T.CenterCrop(_scaled(256, s)), T.RandomCrop(s), flip, T.ToTensor(),
               _Lighting(0.1), to_tensor[1]]  # fmt: skip
        return T.Compose(ops)
    if policy in ("vgg", "resnet"):
        high = 512 if policy == "vgg" else 480
        ops = [_RandomShorterSide(_scaled(256, s), _scaled(high, s)), T.RandomCrop(s), flip, T.ToTensor(),
               _Lighting(0.1), to_tensor[1]]  # fmt: skip
        return T.Compose(ops)
    if policy == "inception":
        modes = (T.InterpolationMode.BILINEAR, T.InterpolationMode.BOX, T.InterpolationMode.NEAREST,
                 T.InterpolationMode.BICUBIC)  # fmt: skip
        crop = T.RandomChoice([T.RandomResizedCrop(s, interpolation=m) for m in modes])
        jitter = T.ColorJitter(brightness=32 / 255, contrast=0.5, saturation=0.5, hue=0.2)
        return T.Compose([crop, flip, jitter, *to_tensor])
    if policy == "cifar":
        return T.Compose([T.Resize(s), T.CenterCrop(s), T.RandomCrop(s, padding=round(4 * s / 32)), flip, *to_tensor])
    if policy == "randaugment":
        randaugment = T.RandAugment(augment.RANDAUGMENT_NUM_OPS, int(augment.RANDAUGMENT_MAGNITUDE))
        return T.Compose([bicubic_crop, flip, randaugment, *to_tensor])
    if policy == "autoaugment":
        return T.Compose([bicubic_crop, flip, T.AutoAugment(T.AutoAugmentPolicy.IMAGENET), *to_tensor])
    if policy == "mixup":
        return T.Compose([bicubic_crop, flip, *to_tensor])
    if policy == "simple":
        return T.Compose([T.Resize(s), T.CenterCrop(s), flip, *to_tensor])
    raise ValueError(f"no torchvision counterpart for policy {policy!r}")


class _MixupCollate:
    """Default collation, then torchvision's v2.MixUp on the batch (in the worker)."""

    def __init__(self, alpha: float, num_classes: int) -> None:
        from torchvision.transforms import v2

        self.mixup = v2.MixUp(alpha=alpha, num_classes=num_classes)

    def __call__(self, batch):
        from torch.utils.data import default_collate

        return self.mixup(*default_collate(batch))


def torchvision_iterator(policy: str, root: str, *, image_size: int, batch_size: int, workers: int) -> Iterator:
    import torchvision
    from torch.utils.data import DataLoader

    from trainers.data import preprocess

    dataset = torchvision.datasets.ImageFolder(os.path.join(root, "train"), torchvision_transform(policy, image_size))
    alpha = preprocess.get_policy(policy).mixup_alpha
    collate = _MixupCollate(alpha, len(dataset.classes)) if alpha else None
    # Enough passes for any number of batches; each worker gets whole batches.
    repeated = torch_repeat(dataset, 1000)
    loader = DataLoader(repeated, batch_size=batch_size, num_workers=workers, drop_last=True, collate_fn=collate)
    return iter(loader)


def torch_repeat(dataset, times: int):
    """``dataset`` concatenated ``times`` times (a map-style dataset, no copies)."""
    from torch.utils.data import ConcatDataset

    return ConcatDataset([dataset] * times)


# ----------------------------------------------------------------------------- timing


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of this process and of the processes ``pids`` so far."""
    total = time.process_time()
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def measure(make: Callable[[], Iterator], *, warmup: int, batches: int, batch_size: int) -> dict[str, float]:
    """Build a pipeline, pull ``warmup`` batches, then time ``batches`` more; tear it down.

    Returns images per wall-clock second and the CPU milliseconds spent per image (this
    process's threads and the DataLoader's worker processes) while the timed batches ran.
    """
    iterator = make()
    for _ in range(warmup):
        next(iterator)
    pids = [w.pid for w in getattr(iterator, "_workers", [])]
    cpu, start = _cpu_seconds(pids), time.perf_counter()
    for _ in range(batches):
        next(iterator)
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu
    del iterator
    images = batches * batch_size
    return {"images_per_second": images / elapsed, "cpu_ms_per_image": 1e3 * cpu / images}


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def compare_policy(policy: str, root: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both pipelines of one policy, alternating within each round."""
    sides: dict[str, Callable[[], Iterator]] = {
        "ours": lambda: ours_iterator(
            policy, root, image_size=args.image_size, batch_size=args.batch_size, steps=args.warmup + args.batches
        ),
        "torchvision": lambda: torchvision_iterator(
            policy, root, image_size=args.image_size, batch_size=args.batch_size, workers=args.workers
        ),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for r in range(args.rounds):
        for name in list(sides)[:: 1 if r % 2 == 0 else -1]:
            runs[name].append(measure(sides[name], warmup=args.warmup, batches=args.batches,
                                      batch_size=args.batch_size))  # fmt: skip
    result: dict[str, Any] = {"policy": policy}
    for name, values in runs.items():
        rates = [v["images_per_second"] for v in values]
        cpu = [v["cpu_ms_per_image"] for v in values]
        result[name] = {"images_per_second": rates, **summary(rates), "cpu_ms_per_image": cpu,
                        "cpu_ms_median": statistics.median(cpu)}  # fmt: skip
    result["ratio"] = result["ours"]["median"] / result["torchvision"]["median"]
    result["cpu_ratio"] = result["torchvision"]["cpu_ms_median"] / result["ours"]["cpu_ms_median"]
    return result


def consumer_speed(spec: str, root: str, image_size: int, steps: int = 3) -> dict[str, Any]:
    """Training images/s of ``name:batch`` (Keras train_on_batch on real batches)."""
    import keras

    import keras_archs
    from trainers import precision
    from trainers.data import datasets, preprocess

    name, _, batch = spec.partition(":")
    batch_size = int(batch or 16)
    raw, info = datasets.load_dataset(f"folder:{root}", "train")
    ds = raw.map(preprocess.eval_transform("simple", image_size, 3)).batch(batch_size)
    x, y = next(iter(ds))
    policy_name = precision.choose("auto")
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy_name)
    try:
        model = keras_archs.get_model(name, input_shape=(image_size, image_size, 3), classes=info.num_classes,
                                      classifier_activation=None)  # fmt: skip
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
        model.train_on_batch(x, y)  # tracing
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        elapsed = time.perf_counter() - start
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return {"model": name, "batch_size": batch_size, "precision": policy_name, "steps": steps,
            "images_per_second": steps * batch_size / elapsed}  # fmt: skip


# ----------------------------------------------------------------------------- report


def _rate(s: dict[str, float]) -> str:
    return f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})"


def format_table(rows: list[dict], consumers: list[dict], goal: float) -> str:
    header = ["policy", "ours img/s med (min-max)", "torchvision img/s med (min-max)", "ours/tv", f">={goal}x",
              "ours CPU ms/img", "tv CPU ms/img", "CPU tv/ours"]  # fmt: skip
    header += [f"share to feed {c['model']}" for c in consumers]
    lines = []
    for r in rows:
        line = [r["policy"], _rate(r["ours"]), _rate(r["torchvision"]), f"{r['ratio']:.2f}x",
                "yes" if r["ratio"] >= goal else "no", f"{r['ours']['cpu_ms_median']:.2f}",
                f"{r['torchvision']['cpu_ms_median']:.2f}", f"{r['cpu_ratio']:.2f}x"]  # fmt: skip
        line += [f"{100 * c['images_per_second'] / r['ours']['median']:.1f}%" for c in consumers]
        lines.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = ["  ".join(str(c).rjust(w) for c, w in zip(row, widths)) for row in (header, *lines)]
    out.insert(1, "  ".join("-" * w for w in widths))
    for c in consumers:
        out.append(f"{c['model']} training (batch {c['batch_size']}, {c['precision']}): "
                   f"{c['images_per_second']:.1f} img/s")  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.input_pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--policies", nargs="+", default=None, help="policy names (default: every policy)")
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--images", type=int, default=1024, help="JPEG files written (real Fashion-MNIST images)")
    p.add_argument("--source_size", type=int, default=320, help="side of the written JPEG files")
    p.add_argument("--workers", type=int, default=2, help="torchvision DataLoader worker processes")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches per round and side")
    p.add_argument("--batches", type=int, default=8, help="timed batches per round and side")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--consumers", nargs="+", default=list(DEFAULT_CONSUMERS), help="name:batch, or none")
    p.add_argument("--goal", type=float, default=1.5, help="ratio ours / torchvision to reach")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = p.parse_args(argv)

    code = _torch_first(argv)
    if code is not None:
        return code
    import tensorflow as tf
    import torch
    import torchvision

    from trainers.data import preprocess

    policies = args.policies or list(preprocess.POLICIES)
    consumers_specs = [c for c in args.consumers if c.lower() != "none"]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="input_pipeline_") as root:
        source = write_jpeg_folder(root, args.images, args.source_size)
        rows = []
        for policy in policies:
            rows.append(compare_policy(policy, root, args))
            print(f"  measured {policy}: {rows[-1]['ratio']:.2f}x", file=sys.stderr, flush=True)
        consumers = [consumer_speed(c, root, args.image_size) for c in consumers_specs]
    print(f"Input pipelines, {args.image_size}x{args.image_size}, batch {args.batch_size}, {source['images']} "
          f"Fashion-MNIST JPEGs at {args.source_size}px; images/s over {args.rounds} rounds of {args.batches} "
          f"batches (tensorflow {tf.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{args.workers} DataLoader workers, {os.cpu_count()} CPUs):")  # fmt: skip
    print(format_table(rows, consumers, args.goal))
    if args.json:
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "seconds": time.time() - started,
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "source": {k: v for k, v in source.items() if k != "source"},
            "versions": {
                "tensorflow": tf.__version__,
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "python": platform.python_version(),
            },
            "cpus": os.cpu_count(),
            "policies": rows,
            "consumers": consumers,
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
