"""The datasets a training run reads: its splits, and the batched training and evaluation pipelines.

:func:`load_splits` loads the training, validation and test splits of a dataset spec (see
:mod:`trainers.data.datasets`), holding out a seeded, stratified validation split from the
training data unless the dataset has its own; :func:`make_train_dataset` and
:func:`make_eval_dataset` batch them with the policy's training augmentation or its
evaluation preprocessing. Data errors a user can fix are :class:`trainers.cli.UsageError`.

Training input is a :class:`trainers.data.sharded.TrainInput`: called with an epoch it gives
that epoch's batches for one pipeline; under several workers each reads only its share
(:func:`train_source` picks by files where the dataset has files: folder listings, TFRecord
files; by elements otherwise).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from trainers.cli import UsageError
from trainers.data import datasets, preprocess, sharded

if TYPE_CHECKING:
    from trainers.recipes import Plan


@dataclasses.dataclass(frozen=True)
class Splits:
    """A run's splits (see :func:`load_splits`), with which training examples were kept:
    ``train_indices`` into the training split (``None``: all of it) and ``classes`` (the
    kept original class ids in the order of the new labels; ``None``: all, unchanged)."""

    train: tf.data.Dataset | None
    validation: tf.data.Dataset | None
    test: tf.data.Dataset
    info: datasets.DatasetInfo
    train_indices: np.ndarray | None = None
    classes: tuple[int, ...] | None = None


def load_splits(
    spec: str, data_dir: str | None, *, validation_split: float, seed: int, classes: tuple[int, ...] | None = None,
    per_class: int | None = None, train: bool = True, log: Callable[[str], None] = print,
) -> tuple[tf.data.Dataset | None, tf.data.Dataset | None, tf.data.Dataset, datasets.DatasetInfo]:
    """``(train, validation, test, info)``: unbatched datasets (``train``/``validation``
    ``None`` when not needed) and the :class:`trainers.data.datasets.DatasetInfo` with the counts
    of what is trained on, selected on and tested on."""
    splits = load_run_splits(
        spec, data_dir, validation_split=validation_split, seed=seed, classes=classes, per_class=per_class,
        train=train, log=log,
    )  # fmt: skip
    return splits.train, splits.validation, splits.test, splits.info


def load_run_splits(
    spec: str, data_dir: str | None, *, validation_split: float, seed: int, classes: tuple[int, ...] | None = None,
    per_class: int | None = None, train: bool = True, log: Callable[[str], None] = print,
) -> Splits:
    """:func:`load_splits` as a :class:`Splits`, which also says which training examples are kept."""
    try:
        raw_test, info = datasets.load_dataset(spec, "test", data_dir=data_dir)
        raw_train = datasets.load_dataset(spec, "train", data_dir=data_dir)[0] if train else None
    except (FileNotFoundError, KeyError, NotImplementedError) as e:
        raise UsageError(f"cannot load dataset {spec!r}: {e}") from None
    own_validation = train and datasets.has_validation_split(spec, data_dir)

    def count_kept(split: str) -> int:
        """Examples of ``split`` in the kept classes."""
        labels = datasets.split_labels(spec, split, data_dir)
        return len(labels) if classes is None else int(np.isin(labels, classes).sum())

    names = info.class_names
    if classes is not None:
        unknown = [c for c in classes if not 0 <= c < info.num_classes]
        if unknown:
            raise UsageError(f"--classes {unknown} out of range: {info.name} has classes 0..{info.num_classes - 1}.")
        raw_test = datasets.relabel(raw_test, classes)
        names = tuple(info.class_names[c] for c in classes)
        info = dataclasses.replace(info, num_test=count_kept("test"))
    info = dataclasses.replace(info, num_classes=len(names), class_names=names)
    if not train:
        return Splits(None, None, raw_test, info)
    raw_validation = None
    train_indices = None
    fraction = 0.0 if own_validation else validation_split
    if fraction or classes is not None or per_class is not None:
        labels = datasets.split_labels(spec, "train", data_dir)
        try:
            chosen = datasets.select_examples(
                labels, validation_fraction=fraction, seed=seed, classes=classes, per_class=per_class
            )
        except ValueError as e:
            raise UsageError(str(e)) from None
        if len(chosen.validation):
            raw_validation = datasets.take_examples(raw_train, chosen.validation, chosen.classes)
        raw_train = datasets.take_examples(raw_train, chosen.train, chosen.classes)
        train_indices = chosen.train
        info = dataclasses.replace(info, num_train=len(chosen.train), num_validation=len(chosen.validation))
    if own_validation:
        raw_validation, val_info = datasets.load_dataset(spec, "validation", data_dir=data_dir)
        if classes is not None:
            raw_validation = datasets.relabel(raw_validation, classes)
        info = dataclasses.replace(info, num_validation=count_kept("validation"))
        log(f"validation: the dataset's own '{val_info.split}' split ({info.num_validation} examples)")
    elif raw_validation is not None:
        log(
            f"validation: {info.num_validation} examples held out from the training split "
            f"(--validation_split {fraction:g}, stratified, seed {seed}); the test split is evaluated once, at the end"
        )
    else:
        log("validation: none (--validation_split 0): the final weights are the chosen ones (best = last)")
    return Splits(raw_train, raw_validation, raw_test, info, train_indices, classes)


def _distribute_options() -> tf.data.Options:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def make_train_dataset(
    raw: tf.data.Dataset, num_train: int, num_classes: int, *, policy: str, image_size: int, channels: int,
    plan: Plan, seed: int, source: sharded.Source | None = None,
) -> sharded.TrainInput:
    """The training input: called with an epoch, its batched ``(images, onehot)`` global
    batches; :meth:`~trainers.data.sharded.TrainInput.distribute` gives each worker its share.
    The order and the augmentation are functions of ``seed``, the epoch and the position in
    it, so a resumed run sees the same data as an uninterrupted one, from any step.
    ``source`` (:func:`train_source`) defaults to ``raw`` read element by element."""
    source = source if source is not None else sharded.ElementSource(raw, num_train)
    return sharded.TrainInput(
        source, num_classes, policy=policy, image_size=image_size, channels=channels, plan=plan, seed=seed
    )


def train_source(spec: str, data_dir: str | None, splits: Splits, *, workers: int = 1) -> sharded.Source:
    """Where training reads ``splits``' training examples from.

    By files where the dataset has them (a folder's images: :class:`~trainers.data.sharded.FileSource`;
    TFRecord files, ``tfrecord:`` or a prepared TFDS dataset stored so:
    :class:`~trainers.data.tfrecord.RecordSource`), so that each of ``workers`` reads and
    decodes only its share. With one worker, a dataset small enough to be kept decoded in
    memory (:data:`trainers.data.datasets.CACHE_LIMIT_BYTES`, images of one size) is read
    element by element as before (decoded once, then from memory).
    """
    from trainers.data import tfrecord

    info = splits.info
    kind = datasets._source_kind(spec)
    if kind not in ("folder", "tfrecord", "tfds"):
        return sharded.ElementSource(splits.train, info.num_train)
    shape = info.image_shape
    if workers <= 1 and None not in shape and info.num_train * int(np.prod(shape)) <= datasets.CACHE_LIMIT_BYTES:
        return sharded.ElementSource(splits.train, info.num_train)
    indices, classes = splits.train_indices, splits.classes
    if kind == "folder":
        _, train_info = datasets.load_dataset(spec, "train", data_dir=data_dir)
        scan = datasets._folder_scan(Path(train_info.source), train_info.class_names)
        files, labels = np.asarray(scan.files, dtype=object), np.asarray(scan.labels, np.int32)
        if indices is not None:
            files, labels = files[indices], labels[indices]
        if classes is not None:
            labels = np.asarray(datasets._relabel_table(classes))[labels]
        height, width, channels = train_info.image_shape
        return sharded.FileSource(list(files), labels, channels=channels, shape=(height, width))
    if kind == "tfrecord":
        records = tfrecord.record_set(spec)
        return tfrecord.RecordSource(records.train, tfrecord.IMAGENET, shift=records.shift, keep=indices, classes=classes)
    import tensorflow_datasets as tfds

    builder = tfds.builder(spec, data_dir=data_dir)
    files = tfrecord.tfds_record_files(builder, "train")
    if not files:  # another file format: element by element
        return sharded.ElementSource(splits.train, info.num_train)
    index = tfrecord.load_record_index(files, tfrecord.TFDS)
    return tfrecord.RecordSource(index, tfrecord.TFDS, keep=indices, classes=classes, channels=shape[-1] or 3)


def make_eval_dataset(
    raw: tf.data.Dataset, *, policy: str, image_size: int, channels: int, batch_size: int, steps: int | None = None,
    crops: int = 1,
) -> tf.data.Dataset:
    """Batched ``(image, label)`` pairs with the policy's evaluation transform; ``crops=10``
    gives ``[batch, 10, S, S, C]`` (AlexNet's ten crops, averaged by the evaluation)."""
    transform = preprocess.ten_crop_transform if crops == 10 else preprocess.eval_transform
    ds = raw.map(transform(policy, image_size, channels), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size)
    if steps:
        ds = ds.take(steps)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_distribute_options())
