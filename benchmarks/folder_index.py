"""A large ``folder:`` dataset: the time to index it, and the images per second one core decodes.

    python -m benchmarks.folder_index                        # 10,000 files; decoding at ImageNet's sizes
    python -m benchmarks.folder_index --files 2000 --json out.json

Index: ``--files`` small JPEG files in ``--classes`` class folders are written to a temporary
folder (deleted at the end), then :func:`trainers.data.folder_index.load_folder_index` runs
three times with a fresh cache: cold (every file listed and checked with PIL, as every start
of every worker did before the index existed), warm (nothing changed: the index is reused),
and after one new file in one class (only that class's folder is checked again). The
folders' modification times are set an hour back first, as for data copied earlier (a
folder modified within two seconds of a scan is checked again at the next one).

Decoding: ``--decode_images`` JPEG files of ImageNet's typical size (``--decode_size``,
default 500x375, quality 90; about what an average ImageNet training file is) go through the
trainer's training input (:class:`trainers.data.sharded.TrainInput` on a
:class:`~trainers.data.sharded.FileSource`: read, decode, the policy's augmentation at
``--image_size``, batching) with tf.data limited to one thread (one core) and with its
default threading (every core). The images are random-textured so that the JPEG is not
trivially small. Each setting is measured ``--rounds`` times, alternating; reported: the
median images/s, and per core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# `python -m benchmarks.run_all --quick`: a few hundred files, a few decoded images.
QUICK_ARGS = ("--files", "300", "--classes", "10", "--decode_images", "24", "--batch_size", "8", "--batches", "2",
              "--policies", "resnet", "--rounds", "1")  # fmt: skip


def write_small_jpegs(root: str, files: int, classes: int, size: int = 32) -> None:
    """``files`` small JPEG files spread over ``classes`` class folders of ``root``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for c in range(classes):
        os.makedirs(os.path.join(root, f"class{c:04d}"), exist_ok=True)
    for i in range(files):
        Image.fromarray(np.roll(pixels, i, axis=0)).save(os.path.join(root, f"class{i % classes:04d}", f"{i:06d}.jpg"))


def set_mtimes_back(root: str, seconds: float = 3600.0) -> None:
    stamp = time.time() - seconds
    for directory, _, _ in os.walk(root):
        os.utime(directory, (stamp, stamp))


def time_index(root: str, classes: int, cache: str) -> dict[str, Any]:
    """Cold, warm and one-change index times (seconds) of ``root``."""
    from PIL import Image

    from trainers.data import folder_index

    names = tuple(sorted(os.listdir(root)))
    os.environ["KERAS_ARCHS_CACHE"] = cache
    result: dict[str, Any] = {}
    for label in ("cold", "warm"):
        start = time.perf_counter()
        index = folder_index.load_folder_index(root, names)
        result[label] = {"seconds": time.perf_counter() - start, "checked_files": index.checked_files,
                         "files": len(index.files)}  # fmt: skip
    Image.new("RGB", (32, 32)).save(os.path.join(root, names[0], "added.jpg"))
    start = time.perf_counter()
    index = folder_index.load_folder_index(root, names)
    result["one_change"] = {"seconds": time.perf_counter() - start, "checked_files": index.checked_files,
                            "files": len(index.files)}  # fmt: skip
    return result


def write_imagenet_sized(root: str, images: int, size: tuple[int, int]) -> list[str]:
    """JPEG files of ``size`` (width, height) with a random texture, quality 90."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    os.makedirs(root, exist_ok=True)
    paths = []
    base = rng.integers(0, 256, (size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    for i in range(images):
        # Smooth blocks plus noise: JPEG sizes near natural photos (about 100 KB at 500x375).
        block = np.kron(np.roll(base, i, axis=1), np.ones((8, 8, 1), np.uint8))[: size[1], : size[0]]
        noise = rng.integers(-24, 25, block.shape)
        image = np.clip(block.astype(int) + noise, 0, 255).astype(np.uint8)
        path = os.path.join(root, f"{i:05d}.jpg")
        Image.fromarray(image).save(path, quality=90)
        paths.append(path)
    return paths


def decode_rate(paths: list[str], *, policy: str, image_size: int, batch_size: int, batches: int,
                threads: int | None) -> float:  # fmt: skip
    """Images/s of the training input (read, decode, augment, batch) on these files."""
    import tensorflow as tf

    from trainers.data import sharded

    source = sharded.FileSource(paths, [0] * len(paths), channels=3, shape=(None, None))
    steps = max(1, len(paths) // batch_size)
    plan = types.SimpleNamespace(global_batch=batch_size, steps_per_epoch=steps, mixup_alpha=0.0)
    train = sharded.TrainInput(source, 1, policy=policy, image_size=image_size, channels=3, plan=plan, seed=0)
    ds = train.dataset(1).repeat()
    if threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        ds = ds.with_options(options)
    iterator = iter(ds)
    for _ in range(3):  # start-up, tracing, tf.data's autotuning
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.folder_index", description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=10_000, help="files of the indexed folder")
    p.add_argument("--classes", type=int, default=100, help="class folders they are spread over")
    p.add_argument("--decode_images", type=int, default=256, help="ImageNet-sized JPEG files decoded")
    p.add_argument("--decode_size", default="500x375", help="their width x height")
    p.add_argument("--image_size", type=int, default=224, help="training crop")
    p.add_argument("--policies", nargs="+", default=["resnet", "inception"], help="training augmentation policies")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--batches", type=int, default=8, help="timed batches per measurement")
    p.add_argument("--rounds", type=int, default=3, help="measurements per setting (the median is reported)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.decode_size.lower().split("x"))
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {"machine": {"cpus": cores, "processor": platform.processor() or platform.machine()}}
    with tempfile.TemporaryDirectory(prefix="folder_index_") as tmp:
        root = os.path.join(tmp, "train")
        write_small_jpegs(root, args.files, args.classes)
        set_mtimes_back(root)
        result["index"] = {"files": args.files, "classes": args.classes,
                           **time_index(root, args.classes, os.path.join(tmp, "cache"))}  # fmt: skip
        paths = write_imagenet_sized(os.path.join(tmp, "big"), args.decode_images, (width, height))
        mean_kb = sum(os.path.getsize(q) for q in paths) / len(paths) / 1024
        decode = {"size": [width, height], "mean_file_kb": mean_kb, "policies": {}}
        for policy in args.policies:
            kwargs = dict(policy=policy, image_size=args.image_size, batch_size=args.batch_size, batches=args.batches)
            ones, everys = [], []
            for _ in range(max(1, args.rounds)):  # alternate, so that a busy moment hits both settings
                ones.append(decode_rate(paths, threads=1, **kwargs))
                everys.append(decode_rate(paths, threads=None, **kwargs))
            one, every = statistics.median(ones), statistics.median(everys)
            decode["policies"][policy] = {"one_core": one, "all_cores": every, "per_core_all": every / cores,
                                          "rounds": {"one_core": ones, "all_cores": everys}}  # fmt: skip
        result["decode"] = decode
    idx = result["index"]
    print(f"folder index of {args.files} files in {args.classes} classes: cold {idx['cold']['seconds']:.2f} s "
          f"({idx['cold']['seconds'] / args.files * 1e3:.3f} ms/file), warm {idx['warm']['seconds']:.3f} s, "
          f"one new file {idx['one_change']['seconds']:.3f} s ({idx['one_change']['checked_files']} files checked)")  # fmt: skip
    print(f"training input on {args.decode_images} JPEG files of {width}x{height} ({mean_kb:.0f} KB on average), "
          f"crop {args.image_size}, batch {args.batch_size}, {cores} core(s):")  # fmt: skip
    for policy, r in decode["policies"].items():
        print(f"  {policy:<10} one core {r['one_core']:7.1f} img/s   all cores {r['all_cores']:7.1f} img/s "
              f"({r['per_core_all']:.1f} per core)")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
