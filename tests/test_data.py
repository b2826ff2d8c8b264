"""Dataset loading (trainers/data/datasets.py): Debian's Fashion-MNIST, fast TFDS failures, image folders."""

from __future__ import annotations

import gzip
import logging
import time
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from trainers.data import datasets


def _first(ds, n):
    return [(x.numpy(), int(y)) for x, y in ds.take(n)]


def test_fashion_mnist_from_debian_files():
    train, info = datasets.load_dataset("fashion_mnist", "train")
    assert (info.num_train, info.num_test, info.num_classes) == (60_000, 10_000, 10)
    assert info.class_names[0] == "T-shirt/top" and info.class_names[9] == "Ankle boot"
    assert info.image_shape == (28, 28, 1)
    assert train.element_spec[0].dtype == tf.uint8 and train.element_spec[1].dtype == tf.int32
    assert train.cardinality() == 60_000
    test, test_info = datasets.load_dataset("fashion-mnist", "test")
    assert test_info.split == "test" and test.cardinality() == 10_000
    labels = next(iter(test.map(lambda x, y: y).batch(10_000))).numpy()
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)  # the test set is balanced
    first = _first(train, 3)
    again = _first(datasets.load_dataset("fashion_mnist", "train")[0], 3)
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, again))
    assert first[0][0].shape == (28, 28, 1) and first[0][0].max() > 0


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_data_dir(tmp_path):
    rng = np.random.RandomState(0)
    images = {"train": rng.randint(0, 256, (5, 28, 28)), "t10k": rng.randint(0, 256, (3, 28, 28))}
    labels = {"train": np.array([0, 1, 2, 3, 9]), "t10k": np.array([4, 5, 6])}
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images[prefix])
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels[prefix])
    ds, info = datasets.load_dataset("fashion_mnist", "test", data_dir=str(tmp_path))
    assert (info.num_train, info.num_test, info.source) == (5, 3, str(tmp_path))
    got = _first(ds, 10)
    assert [y for _, y in got] == [4, 5, 6]
    np.testing.assert_array_equal(got[1][0][..., 0], images["t10k"][1])


def test_missing_fashion_mnist_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(datasets.DatasetUnavailableError) as err:
        datasets.load_dataset("fashion_mnist", "train")
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    assert "--data_dir" in str(err.value)


def test_bad_split_is_rejected():
    with pytest.raises(ValueError, match="split must be"):
        datasets.load_dataset("fashion_mnist", "holdout")


def test_unprepared_tfds_dataset_fails_fast(tmp_path):
    # Warm-up: importing TFDS and its first builder lookup load modules (seconds on a busy
    # machine); what is measured is that a missing dataset never waits on the network.
    with pytest.raises(datasets.DatasetUnavailableError):
        datasets.load_dataset("cifar10", "train", data_dir=str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(datasets.DatasetUnavailableError, match="not prepared") as err:
        datasets.load_dataset("mnist", "train", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 2.0
    assert "tfds build mnist" in str(err.value)
    start = time.perf_counter()
    with pytest.raises(datasets.DatasetUnavailableError, match="Did you mean: cifar10"):
        datasets.load_dataset("cifar_10", "train", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 2.0


def test_tfds_split_mapping_and_info(monkeypatch):
    """The loader's use of a prepared builder (TFDS cannot prepare one offline here)."""
    import tensorflow_datasets as tfds

    calls = {}

    class FakeBuilder:
        data_dir = "/prepared"
        info = SimpleNamespace(
            name="tiny",
            splits={"train": SimpleNamespace(num_examples=5), "validation": SimpleNamespace(num_examples=3)},
            features={
                "image": SimpleNamespace(shape=(None, None, 3)),
                "label": SimpleNamespace(num_classes=2, names=["a", "b"]),
            },
        )

        def as_dataset(self, split, as_supervised, shuffle_files):
            calls["split"], calls["shuffle"] = split, shuffle_files
            images = np.zeros((3, 4, 4, 3), np.uint8)
            return tf.data.Dataset.from_tensor_slices((images, np.array([0, 1, 1], np.int64)))

    monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: FakeBuilder())
    monkeypatch.setattr(datasets, "_tfds_prepared", lambda builder: True)
    ds, info = datasets.load_dataset("tiny", "test")
    assert calls == {"split": "validation", "shuffle": False}
    assert (info.num_train, info.num_test, info.class_names, info.image_shape) == (5, 3, ("a", "b"), (None, None, 3))
    assert ds.element_spec[1].dtype == tf.int32


def _make_folder(root, split, grey=False):
    rng = np.random.RandomState(1)
    written = {}
    for cls, fmt in (("cat", "PNG"), ("dog", "JPEG")):
        folder = root / split / cls
        folder.mkdir(parents=True)
        for i in range(3):
            pixels = rng.randint(0, 256, (8, 6) if grey else (8, 6, 3)).astype(np.uint8)
            path = folder / f"{i}.{'png' if fmt == 'PNG' else 'jpg'}"
            Image.fromarray(pixels).save(path, fmt)
            written[str(path)] = pixels
    return written


def test_folder_dataset_skips_and_counts_corrupt_files(tmp_path, caplog):
    written = _make_folder(tmp_path, "train")
    _make_folder(tmp_path, "test")
    (tmp_path / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    png = (tmp_path / "train" / "cat" / "0.png").read_bytes()
    (tmp_path / "train" / "cat" / "truncated.png").write_bytes(png[: len(png) // 2])
    with caplog.at_level(logging.WARNING, logger="trainers.data.datasets"):
        ds, info = datasets.load_dataset(f"folder:{tmp_path}", "train")
    assert "skipped 2 unreadable" in caplog.text and "broken.jpg" in caplog.text
    assert info.skipped == 2
    assert info.class_names == ("cat", "dog") and info.num_classes == 2
    assert (info.num_train, info.image_shape) == (6, (8, 6, 3))
    got = [(x.numpy(), int(y)) for x, y in ds]
    assert [y for _, y in got] == [0, 0, 0, 1, 1, 1]
    assert got[0][0].dtype == np.uint8 and got[0][0].shape == (8, 6, 3)
    np.testing.assert_array_equal(got[0][0], written[str(tmp_path / "train" / "cat" / "0.png")])  # PNG is lossless
    test_ds, test_info = datasets.load_dataset(f"folder:{tmp_path}", "test")
    assert test_info.num_test == 6 and test_info.num_train == 8  # train files counted, not decoded
    assert len(list(test_ds)) == 6


def test_folder_without_splits_and_grey_images(tmp_path):
    _make_folder(tmp_path, "all", grey=True)
    root = tmp_path / "all"
    ds, info = datasets.load_dataset(f"folder:{root}", "train")
    assert info.image_shape == (8, 6, 1) and info.num_train == 6 and info.num_test == 0
    assert next(iter(ds))[0].shape == (8, 6, 1)
    with pytest.raises(ValueError, match="no 'test' split"):
        datasets.load_dataset(f"folder:{root}", "test")
    with pytest.raises(datasets.DatasetUnavailableError, match="does not exist"):
        datasets.load_dataset(f"folder:{tmp_path / 'nowhere'}", "train")


# ----------------------------------------------------------------------------- validation split and subsets


def _labels(counts):
    return np.concatenate([np.full(n, c, np.int32) for c, n in enumerate(counts)])[np.random.default_rng(5).permutation(sum(counts))]


def test_validation_split_is_disjoint_stratified_and_seeded():
    labels = _labels([100, 200, 50, 30])
    a = datasets.select_examples(labels, validation_fraction=0.1, seed=3)
    assert not set(a.train) & set(a.validation)
    assert len(a.train) + len(a.validation) == len(labels)
    assert [int((labels[a.validation] == c).sum()) for c in range(4)] == [10, 20, 5, 3]  # 10 % of each class
    again = datasets.select_examples(labels, validation_fraction=0.1, seed=3)
    np.testing.assert_array_equal(a.validation, again.validation)
    other = datasets.select_examples(labels, validation_fraction=0.1, seed=4)
    assert set(other.validation) != set(a.validation)
    none = datasets.select_examples(labels, validation_fraction=0.0, seed=3)
    assert len(none.validation) == 0 and len(none.train) == len(labels)


def test_class_subset_and_examples_per_class():
    labels = _labels([40, 40, 40, 40])
    s = datasets.select_examples(labels, validation_fraction=0.25, seed=0, classes=(3, 1), per_class=20)
    assert s.classes == (3, 1)
    assert set(labels[s.train]) | set(labels[s.validation]) == {1, 3}
    assert [int((labels[s.validation] == c).sum()) for c in (3, 1)] == [5, 5]
    assert len(s.train) == 30
    images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    picked = [(int(x[0, 0, 0]), int(y)) for x, y in datasets.take_examples(ds, s.train, s.classes)]
    assert [i for i, _ in picked] == sorted(s.train.tolist())
    assert all(y == {3: 0, 1: 1}[int(labels[i])] for i, y in picked)


@pytest.mark.parametrize(
    ("counts", "kwargs", "message"),
    [
        ([10, 10], {"validation_fraction": 1.0}, r"\[0, 1\)"),
        ([10, 10], {"validation_fraction": -0.1}, r"\[0, 1\)"),
        ([10, 10], {"validation_fraction": 0.1, "classes": (7,)}, "not in the training split"),
        ([10, 10, 3], {"validation_fraction": 0.1, "per_class": 5}, "class 2 has 3 training examples, fewer than the 5"),
        ([10, 10, 1], {"validation_fraction": 0.1}, "class 2 has 1 training example"),
    ],
    ids=["fraction-1", "negative", "unknown-class", "per-class", "too-few-to-split"],
)
def test_selection_errors_name_the_problem(counts, kwargs, message):
    with pytest.raises(ValueError, match=message):
        datasets.select_examples(_labels(counts), seed=0, **kwargs)


def test_split_labels_match_the_dataset_order(tmp_path):
    ds, _ = datasets.load_dataset("synthetic:40", "train")
    np.testing.assert_array_equal(datasets.split_labels("synthetic:40", "train"), [int(y) for _, y in ds])
    _make_folder(tmp_path, "train")
    ds, _ = datasets.load_dataset(f"folder:{tmp_path}", "train")
    np.testing.assert_array_equal(datasets.split_labels(f"folder:{tmp_path}", "train"), [int(y) for _, y in ds])
    assert not datasets.has_validation_split(f"folder:{tmp_path}")
    _make_folder(tmp_path, "test")
    _make_folder(tmp_path, "val")
    assert datasets.has_validation_split(f"folder:{tmp_path}")
    val, info = datasets.load_dataset(f"folder:{tmp_path}", "validation")
    assert info.split == "val" and len(list(val)) == 6
