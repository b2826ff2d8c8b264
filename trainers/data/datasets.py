"""Datasets for training: Fashion-MNIST offline, any prepared TFDS dataset, or a folder of images.

:func:`load_dataset` returns an unbatched ``tf.data.Dataset`` of ``(image uint8 [H, W, C],
label int32)`` in a deterministic order (shuffling is the trainer's job) and a
:class:`DatasetInfo`. Dataset specs:

- ``"fashion_mnist"`` (default): the IDX files of Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``), or the same files in ``data_dir``, parsed with numpy.
  TFDS' checksums do not match Debian's re-gzipped files, so TFDS is only the last resort.
- any TFDS name (``"cifar10"``, ``"imagenet2012"``, ``"mnist:3.0.1"``): ``tfds.load(...,
  download=False)``; fails at once with a clear message if the data is not prepared.
- ``"folder:/path"``: one subfolder per class (class names sorted); ``/path/train`` and
  ``/path/test`` (or ``val``/``validation``) when present, else ``/path`` itself is the
  training split. Unreadable images are skipped and counted in a logged warning. The listing
  and the check of every file are kept in an index file and reused while the folder is
  unchanged (:mod:`trainers.data.folder_index`).
- ``"tfrecord:/path/train-*"``: TFRecord files in the ImageNet format
  (:mod:`trainers.data.tfrecord`; the test split is the matching ``validation-*`` files).
- ``"synthetic[:N]"``: N (default 512) random 28x28 grey images in 10 classes whose mean
  brightness depends on the class (learnable, not real data: for tests and smoke runs);
  N // 4 in the test split.

Model selection reads a validation split, never the test split: :func:`select_examples`
holds out a seeded, stratified fraction of the training split (and optionally keeps a
subset of classes or a number of examples per class), :func:`take_examples` applies it.
Datasets that ship their own validation split as well as a test split say so through
:func:`has_validation_split`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import gzip
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from trainers.data import tfrecord
from trainers.data.classes import FASHION_MNIST_CLASSES

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Extensions tf.io.decode_image reads.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# "test" falls back to "validation" for datasets that publish no test labels (imagenet2012);
# "validation" is only ever the dataset's own validation split.
_SPLIT_ALIASES = {"train": ("train",), "test": ("test", "validation"), "validation": ("validation",)}


class DatasetUnavailableError(FileNotFoundError):
    """The dataset is not on this machine (and nothing will be downloaded)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the trainer needs to know about a dataset.

    ``image_shape`` is ``(H, W, C)``; ``H`` and ``W`` are ``None`` when images vary in size.
    ``skipped`` counts unreadable files left out of this split (folder datasets).
    ``num_train`` counts the training split as loaded; after :func:`select_examples` the
    trainer replaces it (and ``num_validation``) with what it trains and selects on.
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    num_train: int
    num_test: int
    image_shape: tuple[int | None, int | None, int]
    split: str = "train"
    source: str = ""
    skipped: int = 0
    num_validation: int = 0


def _canonical_split(split: str) -> str:
    key = split.strip().lower()
    if key in ("val", "valid"):
        key = "validation"
    if key not in _SPLIT_ALIASES:
        raise ValueError(f"split must be 'train' or 'test' (or 'validation'), got {split!r}.")
    return key


def load_dataset(
    spec: str = "fashion_mnist", split: str = "train", data_dir: str | None = None
) -> tuple[tf.data.Dataset, DatasetInfo]:
    """Load one split of a dataset; see the module docstring for ``spec``.

    Returns:
        ``(dataset, info)``: unbatched ``(image uint8 [H, W, C], label int32)`` pairs in a
        fixed order, and the :class:`DatasetInfo`.

    Raises:
        DatasetUnavailableError: the data is not on this machine.
        ValueError: unknown split or malformed folder.
    """
    split = _canonical_split(split)
    spec = spec.strip()
    kind = _source_kind(spec)
    if kind == "folder":
        return _load_folder(_folder_root(spec), split)
    if kind == "fashion_mnist":
        return _load_fashion_mnist(split, data_dir)
    if kind == "synthetic":
        return _load_synthetic(spec, split)
    if kind == "tfrecord":
        ds, fields = tfrecord.load_split(spec, split)
        return ds, DatasetInfo(**fields)
    return _load_tfds(spec, split, data_dir)


def _source_kind(spec: str) -> str:
    """``"folder"``, ``"tfrecord"``, ``"fashion_mnist"``, ``"synthetic"`` or ``"tfds"`` for a dataset spec."""
    key = spec.strip().lower()
    if key.startswith("folder:"):
        return "folder"
    if key.startswith("tfrecord:"):
        return "tfrecord"
    if key.replace("-", "_") == "fashion_mnist":
        return "fashion_mnist"
    if key.startswith("synthetic"):
        return "synthetic"
    return "tfds"


def _folder_root(spec: str) -> Path:
    return Path(spec.strip()[len("folder:") :]).expanduser()


def has_validation_split(spec: str, data_dir: str | None = None) -> bool:
    """Whether the dataset has its own validation split *and* a separate test split
    (a TFDS dataset with both, or a folder with ``val``/``validation`` beside ``test``)."""
    kind = _source_kind(spec)
    if kind == "folder":
        root = _folder_root(spec)
        return (root / "test").is_dir() and any((root / n).is_dir() for n in ("val", "validation"))
    if kind != "tfds":
        return False
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(spec, data_dir=data_dir)
    except Exception:  # unknown or unprepared: load_dataset reports it
        return False
    splits = dict(builder.info.splits) if _tfds_prepared(builder) else {}
    return "validation" in splits and "test" in splits


def split_labels(spec: str, split: str = "train", data_dir: str | None = None) -> np.ndarray:
    """The labels of one split in the order :func:`load_dataset` yields its examples,
    without decoding images where the source allows it (IDX files, folder listings, TFDS
    with its image decoder skipped)."""
    split = _canonical_split(split)
    kind = _source_kind(spec)
    if kind == "folder":
        _, info = _load_folder(_folder_root(spec), split)
        return np.asarray(_folder_scan(Path(info.source), info.class_names).labels, np.int32)
    if kind == "synthetic":
        return _synthetic_arrays(spec, split)[1]
    if kind == "tfrecord":
        return tfrecord.labels(spec, "train" if split == "train" else "test")
    if kind == "fashion_mnist":
        ds, _ = load_dataset(spec, split, data_dir=data_dir)
        return np.concatenate([y.numpy() for _, y in ds.batch(8192)]).astype(np.int32)
    return _tfds_labels(spec, split, data_dir)


def _tfds_labels(name: str, split: str, data_dir: str | None) -> np.ndarray:
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    chosen = next(s for s in _SPLIT_ALIASES[split] if s in builder.info.splits)
    files = tfrecord.tfds_record_files(builder, chosen)
    if files:  # TFRecord files: their labels are indexed once and reused
        return tfrecord.load_record_index(files, tfrecord.TFDS).labels.astype(np.int32)
    ds = builder.as_dataset(split=chosen, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
    return np.concatenate([b["label"].numpy() for b in ds.batch(8192)]).astype(np.int32)


# ----------------------------------------------------------------------------- validation and subsets


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which training examples a run uses.

    Attributes:
        train, validation: indices into the training split (disjoint, sorted).
        classes: the original class ids kept, in the order of the new labels 0..k-1
            (``None``: every class, labels unchanged).
    """

    train: np.ndarray
    validation: np.ndarray
    classes: tuple[int, ...] | None = None


def select_examples(
    labels: np.ndarray,
    *,
    validation_fraction: float,
    seed: int,
    classes: tuple[int, ...] | None = None,
    per_class: int | None = None,
) -> Selection:
    """A seeded, stratified choice of training and validation examples.

    ``classes`` keeps only those class ids (relabelled 0..k-1 in the given order);
    ``per_class`` keeps that many labelled examples of each class (drawn with ``seed``)
    before the split; ``validation_fraction`` of each class's examples (rounded, at least
    one when the fraction is positive) is held out for validation. The result depends
    only on the labels and the arguments.

    Raises:
        ValueError: a fraction outside [0, 1), an unknown class id, or a class with
            too few examples for the split (it names the class and the count).
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"the validation fraction must be in [0, 1), got {validation_fraction:g}.")
    labels = np.asarray(labels)
    present = sorted(int(c) for c in np.unique(labels))
    kept = tuple(int(c) for c in classes) if classes is not None else tuple(present)
    unknown = sorted(set(kept) - set(present))
    if unknown:
        raise ValueError(f"class id(s) {unknown} are not in the training split (it has classes {present}).")
    if len(set(kept)) != len(kept):
        raise ValueError(f"class ids must not repeat, got {list(kept)}.")
    if per_class is not None and per_class < 1:
        raise ValueError(f"examples per class must be positive, got {per_class}.")
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for c in kept:
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        if per_class is not None:
            if len(idx) < per_class:
                raise ValueError(f"class {c} has {len(idx)} training examples, fewer than the {per_class} asked for.")
            idx = idx[:per_class]
        n_val = max(1, round(validation_fraction * len(idx))) if validation_fraction > 0 else 0
        if len(idx) - n_val < 1:
            raise ValueError(
                f"class {c} has {len(idx)} training example(s): too few to hold out {n_val} for validation and "
                f"train on the rest. Lower --validation_split, or use a dataset with more examples per class."
            )
        validation.append(idx[:n_val])
        train.append(idx[n_val:])
    return Selection(
        train=np.sort(np.concatenate(train)),
        validation=np.sort(np.concatenate(validation)) if validation else np.zeros(0, np.int64),
        classes=kept if classes is not None else None,
    )


def _relabel_table(classes: tuple[int, ...]) -> tf.Tensor:
    table = np.full(max(classes) + 1, -1, np.int32)
    table[list(classes)] = np.arange(len(classes), dtype=np.int32)
    return tf.constant(table)


# A selection this small (decoded) is kept in memory after its first pass, so later epochs
# do not walk the whole source again to pick it out.
CACHE_LIMIT_BYTES = 1 << 30


def take_examples(ds: tf.data.Dataset, indices: np.ndarray, classes: tuple[int, ...] | None = None) -> tf.data.Dataset:
    """The examples of ``ds`` at ``indices`` (in dataset order), relabelled by ``classes``;
    cached in memory when their size is known and at most :data:`CACHE_LIMIT_BYTES`."""
    size = int(indices.max()) + 1 if len(indices) else 1
    mask = np.zeros(size, bool)
    mask[indices] = True
    mask_t = tf.constant(mask)
    picked = ds.enumerate().filter(lambda i, ex: i < size and tf.gather(mask_t, tf.minimum(i, size - 1)))
    picked = picked.map(lambda i, ex: ex)
    picked = relabel(picked, classes) if classes is not None else picked
    image = picked.element_spec[0]
    if image.shape.is_fully_defined() and len(indices) * image.shape.num_elements() * image.dtype.size <= CACHE_LIMIT_BYTES:
        picked = picked.cache()
    return picked


def relabel(ds: tf.data.Dataset, classes: tuple[int, ...]) -> tf.data.Dataset:
    """Keep the examples of ``classes`` and give them labels 0..k-1 in that order."""
    table = _relabel_table(classes)
    top = int(table.shape[0])

    def keep(image, label):
        label = tf.cast(label, tf.int32)
        return tf.logical_and(label < top, tf.gather(table, tf.minimum(label, top - 1)) >= 0)

    return ds.filter(keep).map(lambda image, label: (image, tf.gather(table, tf.cast(label, tf.int32))))


# ----------------------------------------------------------------------------- synthetic (tests)


def _synthetic_arrays(spec: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        n = int(spec.split(":", 1)[1]) if ":" in spec else 512
    except ValueError:
        raise ValueError(f"synthetic dataset spec must be 'synthetic' or 'synthetic:N', got {spec!r}.") from None
    n = n if split == "train" else max(n // 4, 1)
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = rng.integers(0, 10, n).astype("int32")
    base = (labels[:, None, None, None] * 25).astype("float32")
    images = np.clip(base + rng.normal(0, 30, (n, 28, 28, 1)), 0, 255).astype("uint8")
    return images, labels


def _load_synthetic(spec: str, split: str) -> tuple[tf.data.Dataset, DatasetInfo]:
    images, labels = _synthetic_arrays(spec, split)
    n_train = len(_synthetic_arrays(spec, "train")[1])
    info = DatasetInfo(
        name="synthetic", num_classes=10, class_names=tuple(str(i) for i in range(10)),
        num_train=n_train, num_test=max(n_train // 4, 1), image_shape=(28, 28, 1),
        split="train" if split == "train" else "test", source="random images (not real data)",
    )  # fmt: skip
    return tf.data.Dataset.from_tensor_slices((images, labels)), info


# ----------------------------------------------------------------------------- IDX (Fashion-MNIST)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (LeCun's MNIST format, optionally gzipped) as a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number).")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX element type 0x{data[2]:02x}.")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    array = np.frombuffer(data, dtypes[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {array.size} values (truncated?).")
    return array.reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _idx_candidates(data_dir: str | None) -> list[Path]:
    if data_dir is None:
        return [FASHION_MNIST_DIR]
    root = Path(data_dir).expanduser()
    return [root, root / "fashion-mnist", root / "fashion_mnist"]


@functools.lru_cache(maxsize=4)
def _read_fashion_mnist(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path).astype(np.int32)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{images_path} / {labels_path}: shapes {images.shape} and {labels.shape} do not match.")
    return images[..., None], labels


def _load_fashion_mnist(split: str, data_dir: str | None) -> tuple[tf.data.Dataset, DatasetInfo]:
    which = "train" if split == "train" else "test"
    tried = _idx_candidates(data_dir)
    for directory in tried:
        paths = {s: [_find_idx(directory, stem) for stem in _IDX_FILES[s]] for s in _IDX_FILES}
        if all(p is not None for ps in paths.values() for p in ps):
            images, labels = _read_fashion_mnist(*map(str, paths[which]))
            counts = {s: int(read_idx_count(paths[s][1])) for s in paths}
            info = DatasetInfo(
                name="fashion_mnist",
                num_classes=len(FASHION_MNIST_CLASSES),
                class_names=FASHION_MNIST_CLASSES,
                num_train=counts["train"],
                num_test=counts["test"],
                image_shape=tuple(images.shape[1:]),
                split=which,
                source=str(directory),
            )
            return tf.data.Dataset.from_tensor_slices((images, labels)), info
    if data_dir is not None:
        try:  # a TFDS-prepared copy in data_dir
            return _load_tfds("fashion_mnist", split, data_dir)
        except DatasetUnavailableError:
            pass
    raise DatasetUnavailableError(
        "Fashion-MNIST not found: looked for train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in {', '.join(map(str, tried))}. "
        "Install Debian's copy with `sudo apt-get install dataset-fashion-mnist` (files in "
        f"{FASHION_MNIST_DIR}), or download the four files from "
        "https://github.com/zalandoresearch/fashion-mnist and pass --data_dir=<their folder>."
    )


def read_idx_count(path: str | os.PathLike) -> int:
    """The first dimension of an IDX file, read from its header only."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        header = f.read(8)
    return int(np.frombuffer(header, ">u4", count=1, offset=4)[0])


# ----------------------------------------------------------------------------- TFDS


def _load_tfds(name: str, split: str, data_dir: str | None) -> tuple[tf.data.Dataset, DatasetInfo]:
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - tfds is a train dependency
        raise DatasetUnavailableError(
            f"Dataset {name!r} needs tensorflow-datasets (pip install 'keras_archs[train]')."
        ) from e

    where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    try:
        # No try_gcs and download=False: TFDS only reads local files, so a missing
        # dataset fails at once instead of retrying the network.
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        close = difflib.get_close_matches(name.split(":")[0], tfds.list_builders(), n=5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise DatasetUnavailableError(
            f"{name!r} is neither 'fashion_mnist', 'folder:/path', nor a TFDS dataset name.{hint}"
        ) from e
    splits = dict(builder.info.splits) if _tfds_prepared(builder) else {}
    if not splits:
        raise DatasetUnavailableError(
            f"TFDS dataset {name!r} is not prepared in {where} (nothing is downloaded here). Prepare it once "
            f"with `tfds build {name.split(':')[0]} --data_dir={where}` (or "
            f"tfds.builder({name.split(':')[0]!r}).download_and_prepare()); manual-download datasets such as "
            "imagenet2012 need their archives in <data_dir>/downloads/manual first. Then pass --data_dir."
        )
    chosen = next((s for s in _SPLIT_ALIASES[split] if s in splits), None)
    if chosen is None:
        raise ValueError(f"TFDS dataset {name!r} has splits {sorted(splits)}; none matches {split!r}.")
    test_split = next((s for s in _SPLIT_ALIASES["test"] if s in splits), None)
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise ValueError(f"TFDS dataset {name!r} has no 'image' and 'label' features: {list(features)}.")
    label = features["label"]
    ds = builder.as_dataset(split=chosen, as_supervised=True, shuffle_files=False)
    ds = ds.map(lambda image, y: (image, tf.cast(y, tf.int32)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    info = DatasetInfo(
        name=builder.info.name,
        num_classes=int(label.num_classes),
        class_names=tuple(label.names),
        num_train=int(splits["train"].num_examples) if "train" in splits else 0,
        num_test=int(splits[test_split].num_examples) if test_split else 0,
        image_shape=tuple(features["image"].shape),
        split=chosen,
        source=str(builder.data_dir),
    )
    return ds, info


def _tfds_prepared(builder) -> bool:
    return tf.io.gfile.exists(os.path.join(str(builder.data_dir), "dataset_info.json"))


# ----------------------------------------------------------------------------- folder of images


@dataclasses.dataclass(frozen=True)
class _Scan:
    files: tuple[str, ...]
    labels: tuple[int, ...]
    bad: tuple[str, ...]
    sizes: frozenset
    grey: bool


def _split_dir(root: Path, split: str) -> Path | None:
    names = {"train": ("train",), "validation": ("val", "validation")}.get(split, ("test", "val", "validation"))
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _class_names(directory: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")))


def _scan(directory: Path, class_names: tuple[str, ...]) -> _Scan:
    """List the images and check each with PIL (header and, for PNG, checksums), so
    unreadable files are known before training starts; the result is kept in an index
    file and reused while the folder is unchanged (:mod:`trainers.data.folder_index`)."""
    from trainers.data import folder_index

    index = folder_index.load_folder_index(directory, class_names)
    if index.checked_files:
        log.info("folder dataset %s: %d file(s) checked, %d directories reused from the index %s",
                 directory, index.checked_files, index.reused_dirs, index.index_path)  # fmt: skip
    return _Scan(index.files, index.labels, index.bad, index.sizes, index.grey)


@functools.lru_cache(maxsize=8)
def _folder_scan(directory: Path, class_names: tuple[str, ...]) -> _Scan:
    return _scan(directory, class_names)


def _count_images(directory: Path | None, class_names: tuple[str, ...]) -> int:
    if directory is None:
        return 0
    return sum(
        1
        for name in class_names
        if (directory / name).is_dir()
        for p in (directory / name).rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _load_folder(root: Path, split: str) -> tuple[tf.data.Dataset, DatasetInfo]:
    if not root.is_dir():
        raise DatasetUnavailableError(f"folder dataset {str(root)!r} does not exist or is not a directory.")
    train_dir = _split_dir(root, "train")
    test_dir = _split_dir(root, "test")
    if train_dir is None and test_dir is None:
        train_dir = root  # the folder itself holds the classes: a training split only
    directory = {"train": train_dir, "validation": _split_dir(root, "validation")}.get(split, test_dir)
    if directory is None:
        raise ValueError(
            f"folder dataset {str(root)!r} has no {split!r} split: put the class folders in "
            f"{root}/train and {root}/test (or val/), or use split='train' with the class folders directly in {root}."
        )
    class_names = _class_names(train_dir or directory)
    if not class_names:
        raise ValueError(f"folder dataset {str(train_dir or directory)!r} has no class subfolders.")
    extra = set(_class_names(directory)) - set(class_names)
    if extra:
        raise ValueError(f"{directory} has classes {sorted(extra)} that {train_dir} lacks.")

    scan = _folder_scan(directory, class_names)
    if scan.bad:
        shown = ", ".join(scan.bad[:5]) + (" ..." if len(scan.bad) > 5 else "")
        log.warning(
            "folder dataset %s: skipped %d unreadable or non-image file(s): %s", directory, len(scan.bad), shown
        )
    if not scan.files:
        raise ValueError(f"folder dataset {str(directory)!r} holds no readable images.")
    channels = 1 if scan.grey else 3
    height, width = None, None
    if len(scan.sizes) == 1:
        width, height = next(iter(scan.sizes))  # PIL sizes are (width, height)

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, dtype=tf.uint8, expand_animations=False)
        image.set_shape([height, width, channels])
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((list(scan.files), np.asarray(scan.labels, np.int32)))
    # Files that pass PIL's check but still fail to decode are dropped (and logged) here.
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors(log_warning=True)
    num = len(scan.files)
    other = _count_images(test_dir if split == "train" else train_dir, class_names)
    info = DatasetInfo(
        name=root.name or str(root),
        num_classes=len(class_names),
        class_names=class_names,
        num_train=num if split == "train" else other,
        num_test=other if split == "train" else num,
        image_shape=(height, width, channels),
        split=split if split == "train" else directory.name,
        source=str(directory),
        skipped=len(scan.bad),
    )
    return ds, info
