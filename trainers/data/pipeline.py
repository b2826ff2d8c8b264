"""The datasets a training run reads: its splits, and the batched training and evaluation pipelines.

:func:`load_splits` loads the training, validation and test splits of a dataset spec (see
:mod:`trainers.data.datasets`), holding out a seeded, stratified validation split from the
training data unless the dataset has its own; :func:`make_train_dataset` and
:func:`make_eval_dataset` batch them with the policy's training augmentation or its
evaluation preprocessing. Data errors a user can fix are :class:`trainers.cli.UsageError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from trainers.cli import UsageError
from trainers.data import augment, datasets, preprocess

if TYPE_CHECKING:
    from trainers.recipes import Plan


def load_splits(
    spec: str, data_dir: str | None, *, validation_split: float, seed: int, classes: tuple[int, ...] | None = None,
    per_class: int | None = None, train: bool = True, log: Callable[[str], None] = print,
) -> tuple[tf.data.Dataset | None, tf.data.Dataset | None, tf.data.Dataset, datasets.DatasetInfo]:
    """``(train, validation, test, info)``: unbatched datasets (``train``/``validation``
    ``None`` when not needed) and the :class:`trainers.data.datasets.DatasetInfo` with the counts
    of what is trained on, selected on and tested on."""
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
        return None, None, raw_test, info
    raw_validation = None
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
    return raw_train, raw_validation, raw_test, info


def _distribute_options() -> tf.data.Options:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def make_train_dataset(
    raw: tf.data.Dataset, num_train: int, num_classes: int, *, policy: str, image_size: int, channels: int,
    plan: Plan, seed: int,
) -> Callable[[int], tf.data.Dataset]:
    """``epoch -> batched (images, onehot) dataset``; the shuffle order is a function of
    ``seed`` and the epoch, so a resumed run sees the same data as an uninterrupted one."""
    buffer = max(1, min(num_train, 60_000))
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
