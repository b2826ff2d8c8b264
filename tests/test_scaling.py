"""Scale-out: sharded input (each worker decodes only its share), the folder and record
indexes, mid-epoch checkpoints and resumption, TF_CONFIG checks, and a lost worker.

Library behaviour is tested in this process on tiny data; the command line and the
multi-worker runs in subprocesses with timeouts and free ports.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from trainers import checkpointing, cluster
from trainers.cli import UsageError
from trainers.data import augment, datasets, folder_index, sharded, tfrecord

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
PAST = 1_500_000_000  # a modification time long before any scan (2017)


# ----------------------------------------------------------------------------- helpers


def write_folder(root, per_class=(6, 6), size=8, test_per_class=2):
    """``root/train/<class>/<i>.png`` (and 2 images per class in ``root/test``): tiny RGB
    images whose red channel encodes a unique id."""
    ids = 0
    for split, counts in (("train", per_class), ("test", [test_per_class] * len(per_class))):
        for c, n in enumerate(counts):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.zeros((size, size, 3), np.uint8)
                pixels[..., 0] = ids
                pixels[..., 1] = c * 100
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
                ids += 1
    return root


def age(root, seconds=PAST):
    """Set every directory's mtime far in the past (as for a data set copied long ago)."""
    for directory, _, _ in os.walk(root):
        os.utime(directory, ns=(seconds * 10**9, seconds * 10**9))


def fake_plan(global_batch, steps, mixup=0.0):
    return SimpleNamespace(global_batch=global_batch, steps_per_epoch=steps, mixup_alpha=mixup)


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def jpeg_bytes(value, size=(10, 12)):
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[0], size[1], 3), value, np.uint8)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_imagenet_records(directory, files=4, per_file=6, classes=3, prefix="train"):
    """Records in the ImageNet TFRecord format: labels 1..classes (0 = background), synsets."""
    directory.mkdir(parents=True, exist_ok=True)
    record_id = 0
    for f in range(files):
        path = directory / f"{prefix}-{f:05d}-of-{files:05d}"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for _ in range(per_file):
                label = record_id % classes + 1
                feature = {
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg_bytes(record_id * 4)])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    "image/class/synset": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"n{label:08d}".encode()])),
                    "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
                record_id += 1
    return directory


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_ARCHS_CACHE", str(tmp_path / "cache"))
    tfrecord._RECORD_SETS.clear()


# ----------------------------------------------------------------------------- folder index


def test_folder_index_is_reused_on_an_unchanged_folder_and_rebuilt_where_it_changed(tmp_path):
    root = write_folder(tmp_path / "data", per_class=(3, 4))
    (root / "train" / "class1" / "notes.txt").write_text("not an image")
    age(root)
    classes = ("class0", "class1")
    first = folder_index.load_folder_index(root / "train", classes)
    assert (first.checked_dirs, first.reused_dirs, first.checked_files) == (2, 0, 8)
    assert len(first.files) == 7 and first.labels == (0, 0, 0, 1, 1, 1, 1)
    assert [os.path.basename(b) for b in first.bad] == ["notes.txt"]
    assert first.sizes == frozenset({(8, 8)}) and not first.grey
    assert first.index_path and os.path.exists(first.index_path)
    assert first.index_path.startswith(str(tmp_path / "cache"))

    again = folder_index.load_folder_index(root / "train", classes)
    assert (again.checked_dirs, again.reused_dirs, again.checked_files) == (0, 2, 0)
    assert (again.files, again.labels, again.bad) == (first.files, first.labels, first.bad)

    # A new image in one class: only that class's directory is listed and checked again.
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "class0" / "new.png")
    changed = folder_index.load_folder_index(root / "train", classes)
    assert (changed.checked_dirs, changed.reused_dirs, changed.checked_files) == (1, 1, 4)
    assert len(changed.files) == 8 and any(f.endswith("new.png") for f in changed.files)
    # Removed, and a nested subdirectory added: seen too.
    os.remove(root / "train" / "class1" / "000.png")
    (root / "train" / "class1" / "more").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "class1" / "more" / "x.png")
    age(root, PAST + 60)
    removed = folder_index.load_folder_index(root / "train", classes)
    assert not any(f.endswith("class1/000.png") for f in removed.files)
    assert any(f.endswith("class1/more/x.png") for f in removed.files) and len(removed.files) == 8


def test_folder_index_rechecks_a_directory_changed_while_it_was_scanned(tmp_path):
    root = write_folder(tmp_path / "data", per_class=(2,))  # just written: mtimes are "now"
    first = folder_index.load_folder_index(root / "train", ("class0",))
    again = folder_index.load_folder_index(root / "train", ("class0",))
    assert first.checked_files == 2 and again.checked_files == 2  # too recent to trust
    age(root)
    folder_index.load_folder_index(root / "train", ("class0",))
    assert folder_index.load_folder_index(root / "train", ("class0",)).checked_files == 0


def test_folder_index_keeps_the_order_of_a_sorted_recursive_listing(tmp_path):
    folder = tmp_path / "train" / "a"
    (folder / "b").mkdir(parents=True)
    for name in ("b-c.png", "b/c.png", "a.png", "b/a.png"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / name)
    index = folder_index.load_folder_index(tmp_path / "train", ("a",))
    expected = [str(p) for p in sorted(p for p in folder.rglob("*") if p.is_file())]
    assert list(index.files) == expected and index.grey


def test_unwritable_cache_only_means_scanning_again(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "data", per_class=(2,))
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    monkeypatch.setenv("KERAS_ARCHS_CACHE", str(blocker))
    index = folder_index.load_folder_index(root / "train", ("class0",))
    assert index.index_path is None and len(index.files) == 2


# ----------------------------------------------------------------------------- sharded input


def folder_source(root, classes=("class0", "class1")):
    index = folder_index.load_folder_index(root / "train", classes)
    return sharded.FileSource(index.files, index.labels, channels=3, shape=(8, 8)), index


def _decoded_ids(images):
    """The unique id written in each image's red channel (undone from the 'unit' normalisation)."""
    return [round(float(v)) for v in images[..., 0].reshape(len(images), -1).max(axis=1) * 255.0]


def test_two_workers_read_disjoint_halves_whose_union_is_the_epoch(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "data", per_class=(9, 9))
    source, index = folder_source(root)
    trace = tmp_path / "trace"
    monkeypatch.setenv(sharded.TRACE_ENV, str(trace))
    # 18 images, global batch 4: 4 steps = 16 images an epoch; 2 workers x 1 replica of 2.
    train = sharded.TrainInput(source, 2, policy="simple", image_size=8, channels=3, plan=fake_plan(4, 4), seed=5)
    per_worker = []
    for worker in range(2):
        placement = sharded.Placement(worker=worker, workers=2, local_replicas=1, per_replica_batch=2)
        got = batches(train.dataset(1, placement=placement))
        assert len(got) == 4 and all(x.shape == (2, 8, 8, 3) for x, _ in got)
        per_worker.append(got)
    read = [[line.split("\t")[2] for line in (trace / f"worker{w}.txt").read_text().splitlines()] for w in range(2)]
    assert not set(read[0]) & set(read[1])  # no file decoded by both workers
    # Each decoded only its own positions: its 9 of the 18 (8 used), plus perhaps a one-step
    # spare of its own files read ahead; never the other worker's.
    assert all(8 <= len(r) <= 9 + 2 for r in read)
    # Step s of the run: worker 0's batch s and worker 1's batch s = positions [4s, 4s + 4) of the epoch.
    whole = batches(train.dataset(1))
    for s in range(4):
        joined = sorted(_decoded_ids(per_worker[0][s][0]) + _decoded_ids(per_worker[1][s][0]))
        assert joined == sorted(_decoded_ids(whole[s][0]))
    ids = [i for w in per_worker for x, _ in w for i in _decoded_ids(x)]
    assert len(ids) == len(set(ids)) == 16  # no example twice in the epoch
    order = source.order(sharded.epoch_key(5, 1))
    expected = {int(Image.open(index.files[i]).getpixel((0, 0))[0]) for i in order[:16]}
    assert set(ids) == expected


def test_mid_epoch_start_gives_the_remaining_batches_of_the_uninterrupted_epoch(tmp_path):
    root = write_folder(tmp_path / "data", per_class=(9, 9))
    source, _ = folder_source(root)
    train = sharded.TrainInput(source, 2, policy="cifar", image_size=8, channels=3, plan=fake_plan(4, 4), seed=1)
    whole = batches(train.dataset(2))
    for start in (1, 3):
        rest = batches(train.dataset(2, start_step=start))
        assert len(rest) == 4 - start
        for (x, y), (x2, y2) in zip(whole[start:], rest):
            np.testing.assert_array_equal(x, x2)  # same images, same augmentation
            np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(whole[0][0], batches(train.dataset(3))[0][0])  # another epoch, another order
    # Per worker too: worker 1's batches from step 2 are the tail of its uninterrupted ones.
    placement = sharded.Placement(worker=1, workers=2, local_replicas=1, per_replica_batch=2)
    full = batches(train.dataset(2, placement=placement))
    tail = batches(train.dataset(2, start_step=2, placement=placement))
    for (x, _), (x2, _) in zip(full[2:], tail):
        np.testing.assert_array_equal(x, x2)


def test_position_is_kept_when_the_number_of_workers_changes(tmp_path):
    """Folder data: the examples of a step are the same for 1 or 2 workers, so a run
    checkpointed with two workers can resume mid-epoch with one."""
    root = write_folder(tmp_path / "data", per_class=(8, 8))
    source, _ = folder_source(root)
    train = sharded.TrainInput(source, 2, policy="simple", image_size=8, channels=3, plan=fake_plan(4, 4), seed=2)
    one = batches(train.dataset(1, start_step=2))
    two = [
        batches(train.dataset(1, start_step=2, placement=sharded.Placement(w, 2, 1, 2))) for w in range(2)
    ]  # fmt: skip
    for s in range(2):
        assert sorted(_decoded_ids(one[s][0])) == sorted(_decoded_ids(two[0][s][0]) + _decoded_ids(two[1][s][0]))


def old_pipeline(raw, num_classes, *, policy, image_size, channels, global_batch, steps, seed, epoch, buffer):
    """The trainer's single-pipeline input before sharding (trainers.data.pipeline, no mixup)."""
    ds = raw.shuffle(buffer, seed=seed * 1000 + epoch, reshuffle_each_iteration=False)
    ds = augment.map_train(ds, policy, image_size, channels, seed * 1000 + epoch)
    ds = ds.batch(global_batch, drop_remainder=True)
    ds = ds.map(lambda x, y: (x, tf.one_hot(tf.cast(y, tf.int32), num_classes)))
    return ds.take(steps)


def test_element_source_with_one_worker_is_the_original_pipeline():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 12, 12, 1)).astype("uint8")
    y = rng.integers(0, 3, 40).astype("int32")
    raw = tf.data.Dataset.from_tensor_slices((x, y))
    source = sharded.ElementSource(raw, 40)
    train = sharded.TrainInput(source, 3, policy="cifar", image_size=12, channels=1, plan=fake_plan(8, 5), seed=4)
    new = batches(train(2))
    old = batches(old_pipeline(raw, 3, policy="cifar", image_size=12, channels=1, global_batch=8, steps=5, seed=4,
                               epoch=2, buffer=40))  # fmt: skip
    assert len(new) == len(old) == 5
    for (a, b), (c, d) in zip(new, old):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    # Two workers split each global batch: worker w keeps positions w, w + 2, ...
    halves = [batches(train.dataset(2, placement=sharded.Placement(w, 2, 1, 4))) for w in range(2)]
    for s in range(5):
        np.testing.assert_array_equal(halves[0][s][0], new[s][0][0::2])
        np.testing.assert_array_equal(halves[1][s][0], new[s][0][1::2])
    resumed = batches(train.dataset(2, start_step=3))
    np.testing.assert_array_equal(resumed[0][0], new[3][0])


def test_mixup_is_seeded_by_the_step_and_survives_a_mid_epoch_start():
    x = np.arange(32 * 4 * 4).reshape(32, 4, 4, 1).astype("uint8")
    raw = tf.data.Dataset.from_tensor_slices((x, np.arange(32, dtype="int32") % 2))
    train = sharded.TrainInput(sharded.ElementSource(raw, 32), 2, policy="simple", image_size=4, channels=1,
                               plan=fake_plan(8, 4, mixup=0.2), seed=0)  # fmt: skip
    whole = batches(train(1))
    assert any(0 < v < 1 for _, y in whole for v in y.ravel())  # labels are mixed
    rest = batches(train.dataset(1, start_step=2))
    np.testing.assert_array_equal(whole[2][1], rest[0][1])
    np.testing.assert_array_equal(whole[3][0], rest[1][0])


def test_trainer_killed_mid_epoch_resumes_at_the_saved_step_with_the_same_result(tmp_path):
    """One process: a run stopped in the middle of epoch 2 and resumed ends with the weights,
    history and step count of the uninterrupted run."""
    import keras

    import keras_archs
    from trainers.checkpointing import CheckpointEvery
    from trainers.loop import Trainer
    from trainers.recipes import RECIPES, resolve

    rng = np.random.default_rng(3)
    x = rng.integers(0, 255, (48, 32, 32, 1)).astype("uint8")
    y = rng.integers(0, 10, 48).astype("int32")
    recipe = RECIPES["resnet_cifar"].replace(lr=0.05, batch_size=8, augment="cifar")
    plan = resolve(recipe, num_train=48, global_batch=8, epochs=3)
    train = sharded.TrainInput(sharded.ElementSource(tf.data.Dataset.from_tensor_slices((x, y)), 48), 10,
                               policy="cifar", image_size=32, channels=1, plan=plan, seed=0)  # fmt: skip

    class KilledError(Exception):
        pass

    class Dies(sharded.TrainInput):
        """The same input, but the process 'dies' after the 4th step of epoch 2."""

        def distribute(self, strategy, epoch, start_step=0):
            for i, batch in enumerate(super().distribute(strategy, epoch, start_step)):
                if epoch == 2 and start_step + i == 4:
                    raise KilledError
                yield batch

    keras.utils.set_random_seed(7)
    start = keras_archs.get_model("lenet5", classes=10, classifier_activation=None).get_weights()

    def build():
        model = keras_archs.get_model("lenet5", classes=10, classifier_activation=None)
        model.set_weights(start)  # both runs start from the same weights
        return model

    def trainer(model_dir):
        return Trainer(build, plan, model_dir=str(model_dir), log=lambda m: None,
                       checkpoint_every=CheckpointEvery(steps=3))  # fmt: skip

    whole = trainer(tmp_path / "whole")
    whole.fit(train)
    dying = Dies(train.source, 10, policy="cifar", image_size=32, channels=1, plan=plan, seed=0)
    with pytest.raises(KilledError):
        trainer(tmp_path / "cut").fit(dying)
    state = json.loads((tmp_path / "cut" / "state.json").read_text())
    assert (state["epochs_done"], state["step_in_epoch"], state["global_step"]) == (1, 3, 9)
    resumed = trainer(tmp_path / "cut")
    history = resumed.fit(train, resume=True)
    assert int(resumed.optimizer.iterations.numpy()) == 3 * 6
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for a, b in zip(whole.history, history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6) and a["accuracy"] == b["accuracy"]
    for a, b in zip(whole.model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)


# ----------------------------------------------------------------------------- TFRecord


def test_imagenet_format_records_index_labels_and_decoding(tmp_path):
    write_imagenet_records(tmp_path / "rec", files=3, per_file=4, classes=3)
    write_imagenet_records(tmp_path / "rec", files=1, per_file=3, classes=3, prefix="validation")
    spec = f"tfrecord:{tmp_path / 'rec'}/train-*"
    records = tfrecord.record_set(spec)
    assert records.shift == 1 and records.num_classes == 3  # 1..3 in the files -> 0..2
    assert records.class_names == ("n00000001", "n00000002", "n00000003")
    assert records.train.counts == (4, 4, 4) and records.train.checked_files == 3
    np.testing.assert_array_equal(tfrecord.labels(spec, "train"), np.arange(12) % 3)
    ds, info = datasets.load_dataset(spec, "test")
    assert (info.num_train, info.num_test, info.num_classes, info.image_shape) == (12, 3, 3, (None, None, 3))
    got = [(x.numpy(), int(y)) for x, y in ds]
    assert [y for _, y in got] == [0, 1, 2] and got[0][0].shape == (10, 12, 3)
    # The index is reused while the files are unchanged.
    tfrecord._RECORD_SETS.clear()
    assert tfrecord.record_set(spec).train.reused_files == 3
    with pytest.raises(FileNotFoundError, match="no TFRecord file"):
        tfrecord.record_set(f"tfrecord:{tmp_path}/absent-*")


def test_record_source_gives_each_worker_its_own_files(tmp_path):
    write_imagenet_records(tmp_path / "rec", files=4, per_file=6, classes=3)
    index = tfrecord.record_set(f"tfrecord:{tmp_path / 'rec'}/train-*").train
    source = tfrecord.RecordSource(index, tfrecord.IMAGENET, shift=1)
    train = sharded.TrainInput(source, 3, policy="simple", image_size=8, channels=3, plan=fake_plan(4, 5), seed=0)
    seen = []
    for worker in range(2):
        placement = sharded.Placement(worker=worker, workers=2, local_replicas=1, per_replica_batch=2)
        assert "reads its own record files: 2 of 4" in source.describe(placement)
        raw = source.examples(sharded.epoch_key(0, 1), placement, 0).take(12)
        values = [round(float(np.mean(tf.io.decode_jpeg(p).numpy())) / 4) for p, _, _ in raw]
        seen.append(values)
        files = {v // 6 for v in values}  # record id // records per file = file
        assert files == {worker, worker + 2}
        got = batches(train.dataset(1, placement=placement))
        assert len(got) == 5
        tail = batches(train.dataset(1, start_step=3, placement=placement))
        np.testing.assert_array_equal(got[3][0], tail[0][0])
    assert sorted(seen[0] + seen[1]) == list(range(24))
    # A held-out subset: only the kept records are read.
    kept = tfrecord.RecordSource(index, tfrecord.IMAGENET, shift=1, keep=np.arange(0, 24, 2))
    ids = [round(float(np.mean(tf.io.decode_jpeg(p).numpy())) / 4)
           for p, _, _ in kept.examples(1, sharded.Placement(per_replica_batch=4), 0).take(12)]  # fmt: skip
    assert sorted(ids) == list(range(0, 24, 2))


# ----------------------------------------------------------------------------- checkpoint policy


@pytest.mark.parametrize(
    "text, expected",
    [("500", checkpointing.CheckpointEvery(steps=500)), ("10m", checkpointing.CheckpointEvery(seconds=600.0)),
     ("90s", checkpointing.CheckpointEvery(seconds=90.0)), ("1h", checkpointing.CheckpointEvery(seconds=3600.0)),
     ("2.5min", checkpointing.CheckpointEvery(seconds=150.0)), ("", None), ("0", None), (None, None)],
)  # fmt: skip
def test_checkpoint_every_parses_steps_and_durations(text, expected):
    assert checkpointing.CheckpointEvery.parse(text) == expected


@pytest.mark.parametrize("text", ["ten", "10x", "-5", "1.5", "0m", "5 steps", "m"])
def test_checkpoint_every_rejects_malformed_values(text):
    with pytest.raises(UsageError, match="--checkpoint_every"):
        checkpointing.CheckpointEvery.parse(text)


def test_time_based_saves_are_agreed_by_all_workers():
    now = [0.0]
    votes = []

    def agree(flag):
        votes.append(flag)
        return flag or len(votes) == 3  # another worker's clock says "due" at the third agreement

    clock = checkpointing.SaveClock(checkpointing.CheckpointEvery(seconds=60), agree=agree, clock=lambda: now[0])
    due = [step for step in range(1, 101) if clock.due(step)]
    assert due == [60]  # only at agreement steps (every 20), and then when any worker says so
    now[0] = 61.0
    assert clock.due(80) and not clock.due(81)
    alone = checkpointing.SaveClock(checkpointing.CheckpointEvery(seconds=60), clock=lambda: now[0])
    assert not alone.due(1)
    now[0] = 121.0
    assert alone.due(2)  # one process: its own clock, at any step
    alone.saved()
    assert not alone.due(3)


def test_resume_check_names_the_setting_that_differs(tmp_path):
    identity = checkpointing.run_identity(arch="lenet5", dataset="synthetic", image_size=32, channels=1,
                                          class_names=[str(i) for i in range(10)])  # fmt: skip
    (tmp_path / "state.json").write_text(json.dumps({"identity": identity}))
    checkpointing.check_resumable(str(tmp_path), identity)
    with pytest.raises(UsageError, match="--arch lenet5, this command has resnet20"):
        checkpointing.check_resumable(str(tmp_path), {**identity, "arch": "resnet20"})
    with pytest.raises(UsageError, match="--dataset synthetic"):
        checkpointing.check_resumable(str(tmp_path), {**identity, "dataset": "fashion_mnist"})
    # Runs saved before the identity was recorded: plan.json says.
    (tmp_path / "state.json").write_text(json.dumps({"epochs_done": 1}))
    (tmp_path / "plan.json").write_text(json.dumps({"arch": "lenet5", "dataset": "synthetic", "image_size": 32}))
    with pytest.raises(UsageError, match="--image_size 32"):
        checkpointing.check_resumable(str(tmp_path), {**identity, "image_size": 64})


# ----------------------------------------------------------------------------- TF_CONFIG


@pytest.mark.parametrize(
    "config, message",
    [
        ({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}},
         "names 127.0.0.1:1 twice"),
        ({"cluster": {"chief": ["h:1"], "worker": ["h:1"]}, "task": {"type": "worker", "index": 0}}, "twice"),
        ({"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}, "task worker 2 is not in"),
        ({"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "chief", "index": 0}}, "task chief 0 is not in"),
        ({"cluster": {"worker": ["h:1", "h:2"]}}, "no task for this process"),
        ({"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}, "list of 'host:port'"),
    ],
)  # fmt: skip
def test_tf_config_naming_a_worker_twice_or_not_at_all_is_refused(config, message):
    with pytest.raises(UsageError, match=message):
        cluster.check_tf_config(json.dumps(config))


def test_valid_tf_config_passes():
    config = {"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 1}}
    assert cluster.check_tf_config(json.dumps(config)) == config
    assert cluster.check_tf_config("") == {}
    with pytest.raises(UsageError, match="not valid JSON"):
        cluster.check_tf_config("{worker")


def test_lost_peer_message_is_one_line_with_the_fix():
    error = RuntimeError(
        "Collective ops is aborted by: The following tasks are unhealthy (stopped sending heartbeats):\n"
        "/job:worker/replica:0/task:1\nThe tasks have crashed."
    )
    line = cluster.lost_peer_message(error, model_dir="runs/x", checkpoint="epoch 1, step 6")
    assert "\n" not in line and "/job:worker/replica:0/task:1" in line
    assert "--resume --model_dir runs/x" in line and "epoch 1, step 6" in line


# ----------------------------------------------------------------------------- the command line


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def trainer_cli(args, *, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "trainers.run", *args], cwd=ROOT, env={**ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}})


def start_workers(args, ports, *, env=None):
    procs = []
    for index in range(len(ports)):
        worker_env = {**ENV, **(env or {}), "TF_CONFIG": tf_config(ports, index)}
        procs.append(subprocess.Popen([sys.executable, "-m", "trainers.run", *args], cwd=ROOT, env=worker_env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    return procs


def wait_all(procs, timeout=420):
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return outs


@pytest.mark.parametrize("value", ["10x", "0.5", "-3", "fast"])
def test_cli_malformed_checkpoint_every_is_a_usage_error(value, tmp_path):
    out = tmp_path / "run"
    r = trainer_cli(["--arch", "lenet5", "--dataset", "synthetic:64", "--checkpoint_every", value,
                     "--model_dir", str(out)], timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().count("\n") == 0 and "--checkpoint_every" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "cluster_spec, task, message",
    [(["127.0.0.1:{0}", "127.0.0.1:{0}"], 0, "twice"), (["127.0.0.1:{0}", "127.0.0.1:{1}"], 2, "not in its cluster")],
)  # fmt: skip
def test_cli_tf_config_naming_this_worker_twice_or_not_at_all(cluster_spec, task, message, tmp_path):
    ports = free_ports(2)
    config = {"cluster": {"worker": [a.format(*ports) for a in cluster_spec]}, "task": {"type": "worker", "index": task}}
    out = tmp_path / "run"
    r = trainer_cli(["--arch", "lenet5", "--dataset", "synthetic:64", "--model_dir", str(out)],
                    env={"TF_CONFIG": json.dumps(config)}, timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr and "TF_CONFIG" in r.stderr
    assert not out.exists()


def test_cli_resume_with_another_arch_or_dataset_is_refused_and_overwrites_nothing(tmp_path):
    out = tmp_path / "run"
    base = ["--dataset", "synthetic:64", "--epochs", "1", "--steps_per_epoch", "2", "--batch_size", "8",
            "--model_dir", str(out)]  # fmt: skip
    r = trainer_cli(["--arch", "lenet5", "--checkpoint_every", "1", *base])
    assert r.returncode == 0, r.stderr[-3000:]
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    state = json.loads(before["state.json"])
    assert state["identity"]["arch"] == "lenet5" and state["step_in_epoch"] == 0
    for args, flag in ((["--arch", "resnet20", *base], "--arch lenet5"),
                       (["--arch", "lenet5", *base, "--dataset", "synthetic:64", "--image_size", "36"], "--image_size 32"),
                       (["--arch", "lenet5", *base, "--dataset", f"folder:{write_folder(tmp_path / 'f')}"], "--dataset")):  # fmt: skip
        r = trainer_cli([*args, "--resume"], timeout=120)
        assert r.returncode == 2, r.stderr[-2000:]
        assert r.stderr.strip().count("\n") == 0 and flag in r.stderr and "--resume" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.fixture(scope="module")
def two_worker_folder(tmp_path_factory):
    """A folder dataset and an uninterrupted two-worker run on it (module-wide: the runs are the slow part)."""
    tmp = tmp_path_factory.mktemp("two_workers")
    data = write_folder(tmp / "data", per_class=(30, 30))
    age(data)
    args = ["--strategy", "multi_worker", "--arch", "lenet5", "--dataset", f"folder:{data}", "--image_size", "32",
            "--epochs", "3", "--batch_size", "8", "--validation_split", "0.2", "--checkpoint_every", "2"]  # fmt: skip
    trace = tmp / "trace"
    env = {"KERAS_ARCHS_CACHE": str(tmp / "cache"), sharded.TRACE_ENV: str(trace)}
    procs = start_workers([*args, "--model_dir", str(tmp / "whole")], free_ports(2), env=env)
    outs = wait_all(procs)
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
    return SimpleNamespace(tmp=tmp, data=data, args=args, env=env, trace=trace, outs=outs, whole=tmp / "whole")


def test_two_local_workers_each_decode_exactly_their_half(two_worker_folder):
    run = two_worker_folder
    chief_out = run.outs[0][0]
    assert "MultiWorkerMirroredStrategy with 2 replica(s)" in chief_out and "epoch 3/3" in chief_out
    assert "input: each of 2 workers reads its own" in chief_out, chief_out
    plan = json.loads((run.whole / "plan.json").read_text())
    train, batch, steps = plan["splits"]["train"], plan["global_batch"], plan["steps_per_epoch"]
    assert (train, batch, steps) == (48, 8, 6)
    per_epoch: dict = {}
    for worker in range(2):
        for line in (run.trace / f"worker{worker}.txt").read_text().splitlines():
            key, position, path = line.split("\t")
            per_epoch.setdefault(int(key), {0: {}, 1: {}})[worker][int(position)] = path
    assert sorted(per_epoch) == [1, 2, 3]  # seed 0: epoch keys 1..3
    for key, workers in per_epoch.items():
        # Worker w decoded the positions w, w + 2, ... of the epoch (and perhaps a one-step
        # spare of its own read ahead, numbered past the epoch), never the other's.
        for w in (0, 1):
            assert all(p % 2 == w for p in workers[w]), (key, w)
            used = [p for p in workers[w] if p < steps * batch]
            assert len(used) == steps * batch // 2
        files = [workers[w][p] for w in (0, 1) for p in workers[w] if p < steps * batch]
        assert len(files) == len(set(files)) == steps * batch  # the epoch: no example twice
        assert not set(workers[0].values()) & set(workers[1].values())


def read_weights(path):
    import keras

    import keras_archs  # noqa: F401  (registers the layers)

    return [np.asarray(w) for w in keras.saving.load_model(path, compile=False, safe_mode=True).weights]


def test_lost_worker_restarted_with_resume_ends_like_an_uninterrupted_run(two_worker_folder):
    run = two_worker_folder
    cut = run.tmp / "cut"
    args = [*run.args, "--model_dir", str(cut)]
    procs = start_workers(args, free_ports(2), env=run.env)
    state_path = cut / "state.json"
    killed_at = None
    deadline = time.time() + 300
    try:
        while time.time() < deadline and procs[0].poll() is None:
            try:
                state = json.loads(state_path.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("step_in_epoch"):
                procs[1].kill()  # SIGKILL: the worker vanishes mid-epoch
                killed_at = state
                break
            time.sleep(0.02)
        assert killed_at is not None, "no mid-epoch checkpoint seen before the run ended"
        started = time.time()
        _, err = procs[0].communicate(timeout=120)
        waited = time.time() - started
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert procs[0].returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: a worker of the cluster stopped") and "--resume" in last, err[-3000:]
    assert waited < 90
    assert killed_at["epochs_done"] < 3

    procs = start_workers([*args, "--resume"], free_ports(2), env=run.env)
    outs = wait_all(procs)
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
    assert "resumed from" in outs[0][0] and "epoch 3/3" in outs[0][0]
    whole, resumed = (json.loads((d / "state.json").read_text()) for d in (run.whole, cut))
    assert resumed["epochs_done"] == whole["epochs_done"] == 3
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    for a, b in zip(whole["history"], resumed["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
    for a, b in zip(read_weights(run.whole / "last.keras"), read_weights(cut / "last.keras")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_workers_that_do_not_share_the_run_directory_are_stopped(two_worker_folder, tmp_path):
    import shutil

    shared = tmp_path / "copy"
    shutil.copytree(two_worker_folder.whole, shared)
    ports = free_ports(2)
    procs = []
    for index, model_dir in enumerate((shared, tmp_path / "elsewhere")):
        env = {**ENV, **two_worker_folder.env, "TF_CONFIG": tf_config(ports, index)}
        procs.append(subprocess.Popen([sys.executable, "-m", "trainers.run", *two_worker_folder.args, "--resume",
                                       "--model_dir", str(model_dir)], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    outs = wait_all(procs, timeout=300)
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 1, err[-3000:]
        assert "start from different saved steps" in err and "--model_dir must be storage every worker" in err


# ----------------------------------------------------------------------------- record files through --dataset


def test_cli_trains_on_imagenet_format_tfrecord_files(tmp_path):
    write_imagenet_records(tmp_path / "rec", files=4, per_file=6, classes=3)
    write_imagenet_records(tmp_path / "rec", files=1, per_file=6, classes=3, prefix="validation")
    out = tmp_path / "run"
    r = trainer_cli(["--arch", "lenet5", "--dataset", f"tfrecord:{tmp_path / 'rec'}/train-*", "--image_size", "32",
                     "--epochs", "2", "--batch_size", "4", "--checkpoint_every", "2", "--validation_split", "0.25",
                     "--model_dir", str(out)], env={"KERAS_ARCHS_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "input: 4 record file(s), 18 examples" in r.stdout, r.stdout
    plan = json.loads((out / "plan.json").read_text())
    assert plan["class_names"] == ["n00000001", "n00000002", "n00000003"]
    assert plan["splits"] == {"train": 18, "validation": 6, "test": 6}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["examples"] == 6 and metrics["epochs"] == 2


def write_imagenet_archives(manual):
    """ILSVRC2012_img_train.tar (two synsets of six JPEGs) and ILSVRC2012_img_val.tar (four
    JPEGs): what TFDS' imagenet2012 builder reads from its manual download directory."""
    import tarfile

    def add(tar, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    manual.mkdir(parents=True)
    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as outer:
        for c, synset in enumerate(("n01440764", "n01443537")):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as tar:
                for i in range(6):
                    add(tar, f"{synset}_{i}.JPEG", jpeg_bytes(c * 100 + i * 10, size=(20, 24)))
            add(outer, f"{synset}.tar", inner.getvalue())
    with tarfile.open(manual / "ILSVRC2012_img_val.tar", "w") as tar:
        for i in range(4):
            add(tar, f"ILSVRC2012_val_{i + 1:08d}.JPEG", jpeg_bytes(50 + i, size=(20, 24)))


def test_cli_trains_on_tfds_imagenet2012_prepared_from_its_manual_download(tmp_path):
    manual, data = tmp_path / "manual", tmp_path / "tfds"
    write_imagenet_archives(manual)
    prepare = textwrap.dedent(
        f"""
        import tensorflow_datasets as tfds
        builder = tfds.builder("imagenet2012", data_dir={str(data)!r})
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir={str(manual)!r}))
        """
    )
    r = subprocess.run([sys.executable, "-c", prepare], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "run"
    r = trainer_cli(["--arch", "lenet5", "--dataset", "imagenet2012", "--data_dir", str(data), "--image_size", "32",
                     "--epochs", "1", "--batch_size", "4", "--validation_split", "0.25", "--model_dir", str(out)],
                    env={"KERAS_ARCHS_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "input: 1 record file(s), 8 examples" in r.stdout, r.stdout  # TFDS' files, read as records
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["class_names"]) == 1000 and plan["splits"] == {"train": 8, "validation": 4, "test": 4}
    assert json.loads((out / "metrics.json").read_text())["examples"] == 4
