"""Training input for one or many workers: each worker reads and decodes only its share.

An epoch is one sequence of examples, fixed by ``(seed, epoch)``; global step ``s`` trains on
its positions ``[s * B, (s + 1) * B)`` (``B`` the global batch). With ``W`` input pipelines
(one per worker: ``tf.distribute`` calls the dataset function once per worker, see
:meth:`TrainInput.distribute`) pipeline ``w`` reads and decodes only the positions
``p = w (mod W)``, in per-replica batches of ``B / R`` (``R`` replicas in all), so the
replicas' batches of one step add up to the global batch and no example is read twice.
Each example is augmented with a seed made of the epoch's key and its position, and mixup
with the step and replica number, so the data of a step depends on ``(seed, epoch, step)``
only: a run resumed at step ``s`` of an epoch (:meth:`TrainInput.dataset` with
``start_step``) sees exactly the batches the uninterrupted run saw from there, and skipping
the first ``s`` steps decodes nothing (the skipped positions are dropped before decoding).

Sources (the :class:`Source` protocol):

- :class:`FileSource` (``folder:`` datasets): the epoch's order is a full permutation of the
  file list; a worker opens only the files of its positions.
- :class:`RecordSource` (TFRecord files: ``tfrecord:`` datasets in the ImageNet format and
  prepared TFDS datasets): with at least as many files as workers, each worker reads only
  its own files (``files[w::W]``, in an order drawn per epoch, records shuffled in a buffer);
  then the data of a step also depends on the number of workers, and a run resumed mid-epoch
  must have as many. With fewer files every worker reads all the records' bytes and decodes
  only its positions.
- :class:`ElementSource` (anything else: arrays in memory, TFDS datasets of other formats):
  the shuffled sequence is read by every worker and each keeps its positions before the
  augmentation (the source's own decoding, if any, runs on every worker). With one worker
  and one replica it is the trainer's original pipeline, batch for batch.

``KERAS_ARCHS_INPUT_TRACE=DIR`` makes every worker append the epoch key, position and file
of every example it decodes to ``DIR/worker<w>.txt``: a debugging aid to see who reads what.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import tensorflow as tf

from trainers.data import augment

if TYPE_CHECKING:
    from trainers.recipes import Plan

TRACE_ENV = "KERAS_ARCHS_INPUT_TRACE"
SHUFFLE_BUFFER = 60_000  # the element sources' buffer (the trainer's original one)
RECORD_SHUFFLE_BUFFER = 10_000  # records of a worker's files mixed before decoding
RECORD_CYCLE = 16  # files read in parallel by one worker

_plain_python = tf.autograph.experimental.do_not_convert


def epoch_key(seed: int, epoch: int) -> int:
    """The key of an epoch's order and augmentation (the trainer's original ``seed * 1000 + epoch``)."""
    return int(seed) * 1000 + int(epoch)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where an input pipeline sits: pipeline ``worker`` of ``workers``, feeding
    ``local_replicas`` replicas with batches of ``per_replica_batch``."""

    worker: int = 0
    workers: int = 1
    local_replicas: int = 1
    per_replica_batch: int = 0

    @property
    def replicas(self) -> int:
        return self.workers * self.local_replicas

    @classmethod
    def from_context(cls, context: tf.distribute.InputContext | None, global_batch: int) -> Placement:
        """The placement ``tf.distribute`` gives a dataset function (``None``: one pipeline, one replica)."""
        if context is None:
            return cls(per_replica_batch=global_batch)
        workers = int(context.num_input_pipelines)
        replicas = int(context.num_replicas_in_sync)
        if replicas % workers or global_batch % replicas:
            raise ValueError(
                f"The global batch {global_batch} must split evenly over {replicas} replicas on {workers} worker(s)."
            )
        return cls(
            worker=int(context.input_pipeline_id),
            workers=workers,
            local_replicas=replicas // workers,
            per_replica_batch=int(context.get_per_replica_batch_size(global_batch)),
        )


class Source(Protocol):
    """Where the training examples come from (see the module docstring)."""

    num_examples: int
    position_invariant: bool  # a mid-epoch position holds for any number of workers

    def examples(self, key: int, placement: Placement, start: int) -> tf.data.Dataset:
        """This pipeline's ``(payload, label, seed_pair)`` from global position ``start`` on,
        not decoded (payload: what :meth:`decode` takes)."""

    def decode(self, payload: tf.Tensor) -> tf.Tensor:
        """The ``uint8 [H, W, C]`` image of a payload."""

    def describe(self, placement: Placement) -> str:
        """One line: what this pipeline reads."""


def _trace(dataset: tf.data.Dataset, worker: int, by_name: bool) -> tf.data.Dataset:
    """Append ``epoch key<TAB>position<TAB>file`` (or position twice, for sources without
    files) of every element to ``$KERAS_ARCHS_INPUT_TRACE/worker<w>.txt``."""
    directory = os.environ.get(TRACE_ENV)
    if not directory:
        return dataset
    os.makedirs(directory, exist_ok=True)
    stream = "file://" + os.path.join(os.path.abspath(directory), f"worker{worker}.txt")

    @_plain_python
    def log(payload, label, pair):
        what = payload if by_name else tf.strings.as_string(pair[1])
        with tf.control_dependencies([tf.print(pair[0], pair[1], what, sep="\t", output_stream=stream)]):
            return tf.identity(payload), tf.identity(label), tf.identity(pair)

    return dataset.map(log)


class ElementSource:
    """An unbatched ``(image, label)`` dataset (decoded, or cheap to produce), shuffled per
    epoch in a buffer; every worker reads the whole sequence and keeps its positions."""

    position_invariant = True

    def __init__(self, dataset: tf.data.Dataset, num_examples: int, buffer: int = SHUFFLE_BUFFER) -> None:
        self.dataset = dataset
        self.num_examples = int(num_examples)
        self.buffer = max(1, min(self.num_examples, buffer))

    def examples(self, key: int, placement: Placement, start: int) -> tf.data.Dataset:
        shuffled = self.dataset.shuffle(self.buffer, seed=key, reshuffle_each_iteration=False)
        seeds = tf.data.Dataset.random(seed=key, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((shuffled, seeds)).map(_flatten_pair)
        if start:
            ds = ds.skip(start)
        if placement.workers > 1:
            ds = ds.shard(placement.workers, placement.worker)
        return ds

    def decode(self, payload: tf.Tensor) -> tf.Tensor:
        return payload

    def describe(self, placement: Placement) -> str:
        if placement.workers == 1:
            return f"{self.num_examples} examples, read element by element"
        return (
            f"each of {placement.workers} workers reads all {self.num_examples} examples and keeps 1/{placement.workers} "
            "(no files to split)"
        )


@_plain_python
def _flatten_pair(example, pair):
    image, label = example
    return image, label, pair


class FileSource:
    """Image files (``folder:`` datasets): the epoch's order is a seeded permutation of the
    file list, and a worker opens only the files at its positions.

    Args:
        files, labels: the training examples (after the validation hold-out and class
            selection), labels already final.
        channels: channels to decode to; ``shape``: ``(height, width)`` when every image
            has that size (else ``(None, None)``).
    """

    position_invariant = True
    traces_payload = True  # the trace names the files
    may_fail = True

    def __init__(
        self, files: Sequence[str], labels: Sequence[int], *, channels: int, shape: tuple[int | None, int | None]
    ) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels.")
        self.files = list(files)
        self.labels = np.asarray(labels, np.int32)
        self.num_examples = len(self.files)
        self.channels = int(channels)
        self.shape = shape
        self._paths: tf.Tensor | None = None  # every path, one string tensor (about 100 MB for ImageNet)

    def order(self, key: int) -> np.ndarray:
        """The epoch's permutation of the file list."""
        return np.random.default_rng(key).permutation(self.num_examples)

    def positions(self, placement: Placement, start: int, spare: int = 0) -> np.ndarray:
        """The global positions pipeline ``placement.worker`` reads from ``start`` on:
        ``start + worker``, ``start + worker + workers``, ... and then ``spare`` of its own
        first positions again (read only if files fail to decode), numbered past the epoch."""
        own = np.arange(placement.worker, self.num_examples, placement.workers, dtype=np.int64)
        return np.concatenate([own[own >= start], own[:spare] + self.num_examples])

    def examples(self, key: int, placement: Placement, start: int) -> tf.data.Dataset:
        if self._paths is None:
            self._paths = tf.constant(self.files, tf.string)
        paths = self._paths
        order = self.order(key)
        positions = self.positions(placement, start, spare=placement.per_replica_batch * placement.local_replicas)
        picked = order[positions % self.num_examples]
        seeds = np.stack([np.full(len(positions), key, np.int64), positions], axis=1)
        ds = tf.data.Dataset.from_tensor_slices((picked.astype(np.int64), self.labels[picked], seeds))
        return ds.map(lambda i, label, pair: (tf.gather(paths, i), label, pair))

    def decode(self, payload: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(tf.io.read_file(payload), channels=self.channels, dtype=tf.uint8, expand_animations=False)
        image.set_shape([self.shape[0], self.shape[1], self.channels])
        return image

    def describe(self, placement: Placement) -> str:
        if placement.workers == 1:
            return f"{self.num_examples} image files per epoch, in a new order each epoch"
        share = len(range(placement.worker, self.num_examples, placement.workers))
        return (
            f"each of {placement.workers} workers reads its own image files: {share} of {self.num_examples} per epoch "
            f"(worker {placement.worker})"
        )


class TrainInput:
    """The training input of a run: ``epoch -> dataset`` for one pipeline (callable, the
    trainer's original interface) and :meth:`distribute` for a strategy's workers.

    Args:
        source: a :class:`Source`.
        num_classes: for the one-hot labels.
        policy, image_size, channels: the training augmentation (:mod:`trainers.data.augment`).
        plan: the resolved recipe (global batch, steps per epoch, mixup).
        seed: the run's seed.
    """

    def __init__(
        self, source: Source, num_classes: int, *, policy: str, image_size: int, channels: int, plan: Plan, seed: int
    ) -> None:
        self.source = source
        self.num_classes = int(num_classes)
        self.policy = policy
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.global_batch = int(plan.global_batch)
        self.steps_per_epoch = int(plan.steps_per_epoch)
        self.mixup_alpha = float(plan.mixup_alpha)
        self.seed = int(seed)
        self.transform = augment.TrainTransform(policy, self.image_size, self.channels, seed=self.seed)

    @property
    def position_invariant(self) -> bool:
        """Whether a mid-epoch position holds whatever the number of workers."""
        return bool(self.source.position_invariant)

    def __call__(self, epoch: int) -> tf.data.Dataset:
        """The epoch's global batches for one pipeline and one replica."""
        return self.dataset(epoch)

    def dataset(self, epoch: int, start_step: int = 0, placement: Placement | None = None) -> tf.data.Dataset:
        """Batched ``(images, onehot)`` of ``epoch`` for one pipeline, from ``start_step`` on:
        ``local_replicas`` per-replica batches per step (the global batch with the default placement)."""
        placement = placement or Placement(per_replica_batch=self.global_batch)
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step must be in [0, {self.steps_per_epoch}], got {start_step}.")
        key = epoch_key(self.seed, epoch)
        source, transform = self.source, self.transform
        ds = source.examples(key, placement, start_step * self.global_batch)
        ds = _trace(ds, placement.worker, bool(getattr(source, "traces_payload", False)))

        @_plain_python
        def prepare(payload, label, pair):
            image = transform.apply(source.decode(payload), pair)
            return image, tf.cast(label, tf.int32)

        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if getattr(source, "may_fail", False):  # an image that fails to decode is dropped (and logged) here
            ds = ds.ignore_errors(log_warning=True)
        ds = ds.batch(placement.per_replica_batch, drop_remainder=True)
        num_classes = self.num_classes
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
        if self.mixup_alpha > 0:
            ds = self._mixup(ds, key, placement, start_step)
        ds = ds.take((self.steps_per_epoch - start_step) * placement.local_replicas)
        ds = ds.prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options)

    def _mixup(self, ds: tf.data.Dataset, key: int, placement: Placement, start_step: int) -> tf.data.Dataset:
        """mixup on each per-replica batch, seeded by (epoch key, step, replica)."""
        alpha, local, replicas = self.mixup_alpha, placement.local_replicas, placement.replicas
        first = placement.worker * local

        @_plain_python
        def mix(index, batch):
            images, onehot = batch
            step = start_step + index // local
            replica = first + index % local
            return augment.mixup(images, onehot, alpha, tf.stack([tf.constant(key, tf.int64), step * replicas + replica]))

        return ds.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE)

    def distribute(self, strategy: tf.distribute.Strategy, epoch: int, start_step: int = 0):
        """The epoch as a distributed dataset of ``strategy``: one pipeline per worker, each
        reading its share (``strategy.distribute_datasets_from_function``)."""

        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return self.dataset(epoch, start_step, Placement.from_context(context, self.global_batch))

        return strategy.distribute_datasets_from_function(dataset_fn)

    def describe(self, placement: Placement) -> str:
        """One line: what this pipeline reads per epoch."""
        return self.source.describe(placement)
