"""TFRecord datasets: ``tfrecord:`` files in the ImageNet format, and prepared TFDS datasets read as files.

``--dataset tfrecord:/data/imagenet/train-*`` reads the ImageNet TFRecord format (the
TensorFlow models' ``build_imagenet_data.py`` and the TPU ``imagenet_to_gcs.py``): one
``tf.train.Example`` per image with ``image/encoded`` (JPEG or PNG bytes) and
``image/class/label`` (int64; ``image/class/synset`` is read when present, for the class
names). The pattern names the training files; the test split is the files whose name has
``validation`` (else ``test``, ``val``) in place of ``train``. Labels 1..1000, the format's
convention (0 was "background"), become 0..999: whenever no training record has label 0,
labels are shifted down by one, and the log says so.

A prepared TFDS dataset stored as TFRecord files (``imagenet2012`` from its manual
download, any other) is read the same way, with TFDS's feature names (``image``, ``label``):
:func:`tfds_record_files`.

The counts and labels of every file come from one pass that reads only the label feature,
kept in an index file (:func:`load_record_index`) beside the folder indexes
(:func:`trainers.data.folder_index.cache_dir`) and reused per file while the file's size
and modification time are unchanged. Training reads the files through
:class:`RecordSource` (see :mod:`trainers.data.sharded`): each worker only its own files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from trainers.data import sharded
from trainers.data.folder_index import cache_dir

INDEX_VERSION = 1
_TEST_NAMES = ("validation", "test", "val")


@dataclasses.dataclass(frozen=True)
class RecordFormat:
    """The feature names of a record format."""

    name: str
    image: str
    label: str
    synset: str | None = None


IMAGENET = RecordFormat("imagenet", "image/encoded", "image/class/label", "image/class/synset")
TFDS = RecordFormat("tfds", "image", "label")


# ----------------------------------------------------------------------------- the index


@dataclasses.dataclass(frozen=True)
class RecordIndex:
    """Every record's label, file by file.

    Attributes:
        files: the files, sorted; ``counts``: records per file.
        labels: every record's label as stored (int64), in file order.
        synsets: stored label -> synset, where the records carry one.
        checked_files, reused_files: files read by this call, and taken from the index.
    """

    files: tuple[str, ...]
    counts: tuple[int, ...]
    labels: np.ndarray
    synsets: dict[int, str]
    checked_files: int = 0
    reused_files: int = 0

    @property
    def offsets(self) -> np.ndarray:
        """The global id of each file's first record."""
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64) if self.counts else np.zeros(0, np.int64)

    @property
    def num_records(self) -> int:
        return int(sum(self.counts))


def _stat(path: str) -> tuple[int, int]:
    st = tf.io.gfile.stat(path)
    return int(st.length), int(st.mtime_nsec)


def _scan_file(path: str, fmt: RecordFormat) -> tuple[np.ndarray, dict[int, str]]:
    """The labels (and synsets) of one file's records, read without decoding images."""
    spec = {fmt.label: tf.io.FixedLenFeature([], tf.int64)}
    if fmt.synset:
        spec[fmt.synset] = tf.io.FixedLenFeature([], tf.string, default_value="")
    ds = tf.data.TFRecordDataset(path).batch(4096).map(lambda r: tf.io.parse_example(r, spec))
    labels, synsets = [], {}
    for batch in ds:
        values = batch[fmt.label].numpy()
        labels.append(values)
        if fmt.synset:
            for label, synset in zip(values, batch[fmt.synset].numpy()):
                if synset and int(label) not in synsets:
                    synsets[int(label)] = synset.decode("utf-8", "replace")
    return (np.concatenate(labels) if labels else np.zeros(0, np.int64)).astype(np.int64), synsets


def index_file(files: Sequence[str], fmt: RecordFormat) -> str:
    key = json.dumps([sorted(os.path.abspath(f) if "://" not in f else f for f in files), fmt.name]).encode()
    return os.path.join(str(cache_dir().parent / "record_index"), hashlib.sha256(key).hexdigest()[:24] + ".json")


def load_record_index(files: Sequence[str], fmt: RecordFormat, *, path: str | None = None) -> RecordIndex:
    """The :class:`RecordIndex` of ``files``, reading only the files whose size or mtime
    changed since the index at ``path`` (default :func:`index_file`) was written."""
    from trainers.outputs import atomic_write

    files = tuple(sorted(files))
    path = path or index_file(files, fmt)
    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        old = old["files"] if old.get("version") == INDEX_VERSION and old.get("format") == fmt.name else {}
    except (OSError, ValueError, KeyError, AttributeError):
        old = {}
    entries, checked, reused = {}, 0, 0
    for name in files:
        size, mtime = _stat(name)
        previous = old.get(name)
        if previous and previous.get("size") == size and previous.get("mtime_ns") == mtime:
            entries[name] = previous
            reused += 1
            continue
        labels, synsets = _scan_file(name, fmt)
        entries[name] = {
            "size": size, "mtime_ns": mtime, "labels": labels.tolist(), "synsets": {str(k): v for k, v in synsets.items()},
        }  # fmt: skip
        checked += 1
    if checked or set(entries) != set(old):

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"version": INDEX_VERSION, "format": fmt.name, "files": entries}, f, separators=(",", ":"))

        try:
            atomic_write(path, write)
        except OSError:
            pass  # an unwritable cache only means the next run reads the labels again
    synsets: dict[int, str] = {}
    for name in files:
        synsets.update({int(k): v for k, v in entries[name]["synsets"].items()})
    labels = [np.asarray(entries[name]["labels"], np.int64) for name in files]
    return RecordIndex(
        files=files,
        counts=tuple(len(x) for x in labels),
        labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        synsets=synsets,
        checked_files=checked,
        reused_files=reused,
    )


# ----------------------------------------------------------------------------- tfrecord: datasets


def split_pattern(spec: str, split: str) -> str | None:
    """The file pattern of ``split`` for a ``tfrecord:PATTERN`` spec (``None``: no such split)."""
    pattern = spec.strip()[len("tfrecord:") :]
    pattern = os.path.expanduser(pattern)
    if split == "train":
        return pattern
    if split == "validation":
        return None  # the test split is the format's validation files; validation is held out
    directory, base = os.path.split(pattern)
    if "train" not in base:
        return None
    for name in _TEST_NAMES:
        candidate = os.path.join(directory, base.replace("train", name))
        if tf.io.gfile.glob(candidate):
            return candidate
    return None


def list_files(pattern: str) -> tuple[str, ...]:
    return tuple(sorted(tf.io.gfile.glob(pattern)))


@dataclasses.dataclass(frozen=True)
class RecordSet:
    """A ``tfrecord:`` dataset: the indexes of its splits and the label convention."""

    spec: str
    train: RecordIndex
    test: RecordIndex | None
    shift: int
    num_classes: int
    class_names: tuple[str, ...]

    def index(self, split: str) -> RecordIndex | None:
        return self.train if split == "train" else self.test


_RECORD_SETS: dict[str, RecordSet] = {}


def record_set(spec: str) -> RecordSet:
    """The :class:`RecordSet` of a ``tfrecord:PATTERN`` spec (indexed once per process).

    Raises:
        FileNotFoundError: no training file matches the pattern.
    """
    if spec in _RECORD_SETS:
        return _RECORD_SETS[spec]
    train_files = list_files(split_pattern(spec, "train"))
    if not train_files:
        raise FileNotFoundError(f"no TFRecord file matches {split_pattern(spec, 'train')!r}.")
    train = load_record_index(train_files, IMAGENET)
    test_pattern = split_pattern(spec, "test")
    test = load_record_index(list_files(test_pattern), IMAGENET) if test_pattern else None
    every = np.concatenate([train.labels] + ([test.labels] if test is not None else []))
    shift = 1 if len(train.labels) and int(train.labels.min()) >= 1 else 0
    num_classes = int(every.max()) + 1 - shift if len(every) else 0
    synsets = {**(test.synsets if test else {}), **train.synsets}
    names = tuple(synsets.get(c + shift, str(c)) for c in range(num_classes))
    result = RecordSet(spec, train, test, shift, num_classes, names)
    _RECORD_SETS[spec] = result
    return result


def labels(spec: str, split: str) -> np.ndarray:
    """The labels (0-based) of a split in record order."""
    records = record_set(spec)
    index = records.index(split)
    if index is None:
        raise FileNotFoundError(f"{spec!r} has no {split!r} split.")
    return (index.labels - records.shift).astype(np.int32)


def decode_record(fmt: RecordFormat, shift: int, channels: int = 3):
    """``serialized Example -> (uint8 image [H, W, channels], int32 label)``."""
    spec = {fmt.image: tf.io.FixedLenFeature([], tf.string), fmt.label: tf.io.FixedLenFeature([], tf.int64)}

    def fn(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_image(parsed[fmt.image], channels=channels, dtype=tf.uint8, expand_animations=False)
        image.set_shape([None, None, channels])
        return image, tf.cast(parsed[fmt.label] - shift, tf.int32)

    return fn


def load_split(spec: str, split: str) -> tuple[tf.data.Dataset, dict[str, Any]]:
    """One split of a ``tfrecord:`` dataset: decoded ``(image, label)`` in file order, and the
    fields of its :class:`trainers.data.datasets.DatasetInfo`."""
    records = record_set(spec)
    which = "train" if split == "train" else "test"
    index = records.index(which)
    if index is None:
        raise FileNotFoundError(
            f"{spec!r} has no test files: expected the pattern's 'train' replaced by one of {', '.join(_TEST_NAMES)}."
        )
    ds = tf.data.TFRecordDataset(list(index.files)).map(
        decode_record(IMAGENET, records.shift), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    pattern = split_pattern(spec, which) or ""
    info = dict(
        name=os.path.basename(os.path.dirname(pattern)) or "tfrecord",
        num_classes=records.num_classes,
        class_names=records.class_names,
        num_train=records.train.num_records,
        num_test=records.test.num_records if records.test else 0,
        image_shape=(None, None, 3),
        split=which,
        source=pattern,
    )
    return ds, info


# ----------------------------------------------------------------------------- TFDS files


def tfds_record_files(builder: Any, split: str) -> tuple[str, ...] | None:
    """The TFRecord files of a prepared TFDS split, ``None`` if it is stored otherwise."""
    file_format = str(getattr(builder.info, "file_format", "tfrecord") or "tfrecord").lower()
    if "tfrecord" not in file_format:
        return None
    info = builder.info.splits[split]
    paths = getattr(info, "filepaths", None)
    if not paths:
        return None
    return tuple(str(p) for p in paths)


# ----------------------------------------------------------------------------- the training source


class RecordSource:
    """Training examples in TFRecord files (see :mod:`trainers.data.sharded`).

    Args:
        index: the files and their labels.
        fmt: the feature names.
        shift: subtracted from the stored labels.
        keep: global record ids trained on (sorted; ``None``: all).
        classes: the kept original class ids in the order of the new labels (``None``: labels unchanged).
        channels: channels to decode to.
    """

    position_invariant = False  # a worker's records are those of its own files
    may_fail = True

    def __init__(
        self, index: RecordIndex, fmt: RecordFormat, *, shift: int = 0, keep: np.ndarray | None = None,
        classes: Sequence[int] | None = None, channels: int = 3,
    ) -> None:  # fmt: skip
        self.index = index
        self.fmt = fmt
        self.shift = int(shift)
        self.channels = int(channels)
        self.keep = None if keep is None else np.asarray(keep, np.int64)
        self.num_examples = index.num_records if keep is None else len(self.keep)
        self.classes = None if classes is None else tuple(int(c) for c in classes)

    def _mode(self, placement: sharded.Placement) -> str:
        return "files" if placement.workers > 1 and len(self.index.files) >= placement.workers else "elements"

    def _records(self, files: np.ndarray, offsets: np.ndarray) -> tf.data.Dataset:
        """``(global id, serialized record)`` of ``files`` read in parallel, kept ones only."""
        ds = tf.data.Dataset.from_tensor_slices((files.astype(str), offsets))
        ds = ds.interleave(
            lambda f, o: tf.data.TFRecordDataset(f).enumerate(start=o),
            cycle_length=max(1, min(sharded.RECORD_CYCLE, len(files))), block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )  # fmt: skip
        if self.keep is not None:
            mask = np.zeros(self.index.num_records, bool)
            mask[self.keep] = True
            mask_t = tf.constant(mask)
            ds = ds.filter(lambda gid, record: tf.gather(mask_t, gid))
        return ds

    def examples(self, key: int, placement: sharded.Placement, start: int) -> tf.data.Dataset:
        files = np.asarray(self.index.files, dtype=object)
        offsets = self.index.offsets
        buffer = max(1, min(sharded.RECORD_SHUFFLE_BUFFER, self.num_examples))
        if self._mode(placement) == "files":
            mine = np.arange(placement.worker, len(files), placement.workers)
            order = mine[np.random.default_rng([key, placement.worker]).permutation(len(mine))]
            ds = self._records(files[order], offsets[order])
            ds = ds.shuffle(buffer, seed=key * 4099 + placement.worker, reshuffle_each_iteration=False).repeat()
            ds = ds.enumerate().skip(start // placement.workers)
            worker, workers = placement.worker, placement.workers
            ds = ds.map(lambda pos, item: (item[1], tf.stack([tf.constant(key, tf.int64), pos * workers + worker])))
        else:
            order = np.random.default_rng(key).permutation(len(files))
            ds = self._records(files[order], offsets[order])
            ds = ds.shuffle(buffer, seed=key, reshuffle_each_iteration=False).repeat()
            ds = ds.enumerate().skip(start)
            if placement.workers > 1:
                ds = ds.shard(placement.workers, placement.worker)
            ds = ds.map(lambda pos, item: (item[1], tf.stack([tf.constant(key, tf.int64), pos])))
        spec = {self.fmt.image: tf.io.FixedLenFeature([], tf.string), self.fmt.label: tf.io.FixedLenFeature([], tf.int64)}
        shift = self.shift
        table = None
        if self.classes is not None:
            values = np.full(max(self.classes) + 1, -1, np.int32)
            values[list(self.classes)] = np.arange(len(self.classes), dtype=np.int32)
            table = tf.constant(values)
        fmt = self.fmt

        def parse(record: tf.Tensor, pair: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            parsed = tf.io.parse_single_example(record, spec)
            label = tf.cast(parsed[fmt.label] - shift, tf.int32)
            if table is not None:
                label = tf.gather(table, label)
            return parsed[fmt.image], label, pair

        return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def decode(self, payload: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(payload, channels=self.channels, dtype=tf.uint8, expand_animations=False)
        image.set_shape([None, None, self.channels])
        return image

    def describe(self, placement: sharded.Placement) -> str:
        n = len(self.index.files)
        w = placement.workers
        if self._mode(placement) == "files":
            mine = len(range(placement.worker, n, w))
            return f"each of {w} workers reads its own record files: {mine} of {n} (worker {placement.worker})"
        if w > 1:
            return f"{n} record file(s), fewer than the {w} workers: each worker reads every record, decodes 1/{w}"
        return f"{n} record file(s), {self.num_examples} examples"
