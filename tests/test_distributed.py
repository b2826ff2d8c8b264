"""Distributed training: MirroredStrategy over two logical CPU devices, and
MultiWorkerMirroredStrategy with two local worker processes.

Both run in subprocesses: logical devices must be configured before TensorFlow
initialises, and each worker is its own process. Every subprocess has a timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, os
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    keras.utils.set_random_seed(0)
    from trainers import distribute, run
    from trainers.loop import Trainer
    from trainers.recipes import RECIPES, resolve

    auto = distribute.make_strategy("auto")
    mirrored = distribute.make_strategy("mirrored")
    default = distribute.make_strategy("default")
    # SGD momentum 0.9, wd 1e-4; LeNet-5 with the Glorot initialisation its own recipe trains with
    recipe = RECIPES["resnet_cifar"].replace(batch_size=8, model_options=RECIPES["lenet5"].model_options)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32, 32, 1)).astype("float32")
    onehot = np.eye(10, dtype="float32")[rng.integers(0, 10, 8)]

    def one_step(arch, strategy, sync_bn, init, channels):
        xs = np.repeat(x, channels, axis=-1)
        plan = resolve(recipe, num_train=8, global_batch=8, epochs=1)

        def build():
            m = run.build_model(arch, image_size=32, channels=channels, classes=10, recipe=recipe, sync_bn=sync_bn)
            if init is not None:
                m.set_weights(init)
            return m

        t = Trainer(build, plan, strategy, log=lambda m: None)
        start = [v.numpy() for v in t.model.weights]
        start_trainable = [v.numpy() for v in t.model.trainable_variables]
        batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((xs, onehot)).batch(8))))
        loss, _ = t.train_on_batch(*batch)
        trainable = [v.numpy() for v in t.model.trainable_variables]
        return start, start_trainable, loss, trainable

    result = {"auto": type(auto).__name__, "replicas": mirrored.num_replicas_in_sync}
    for arch, channels, sync in (("lenet5", 1, False), ("resnet20", 3, True), ("resnet20", 3, False)):
        init, t0, loss1, w1 = one_step(arch, default, False, None, channels)
        _, _, loss2, w2 = one_step(arch, mirrored, sync, init, channels)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2))
        moved = max(float(np.max(np.abs(a - b))) for a, b in zip(w1, t0))
        result[f"{arch}_sync{sync}"] = {"diff": diff, "loss": [loss1, loss2], "moved": moved}
    print("RESULT " + json.dumps(result))
    """
)


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_mirrored_two_devices_matches_one_device():
    r = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=420
    )
    assert r.returncode == 0, r.stderr[-4000:]
    res = _result(r.stdout)
    assert res["auto"] == "MirroredStrategy" and res["replicas"] == 2
    # Float32 all-reduce sums in another order than one device does, and synchronized BatchNorm
    # computes its moments from per-replica sums: the updates agree to round-off, which is measured
    # against the size of the step itself (up to 6e-4 of it seen over six seeds).
    # No BatchNorm (LeNet-5): the all-reduced update equals the one-device update.
    lenet = res["lenet5_syncFalse"]
    assert lenet["moved"] > 1e-4
    assert lenet["diff"] < 1e-2 * lenet["moved"], lenet
    assert lenet["loss"][0] == pytest.approx(lenet["loss"][1], rel=1e-5)
    # BatchNorm with synchronized statistics: also the one-device update.
    synced = res["resnet20_syncTrue"]
    assert synced["diff"] < 1e-2 * synced["moved"], synced
    # Per-replica BatchNorm normalises each half-batch with its own statistics: a different
    # (but legitimate) update, 7-25 % of the step over six seeds; this is why --sync_bn exists.
    per_replica = res["resnet20_syncFalse"]
    assert per_replica["diff"] > 3e-2 * per_replica["moved"], (per_replica, synced)


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def test_multi_worker_two_local_processes(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    model_dir = tmp_path / "mw"
    args = [
        sys.executable, "-m", "trainers.run", "--strategy", "multi_worker", "--arch", "lenet5",
        "--dataset", "synthetic:128", "--epochs", "2", "--steps_per_epoch", "2", "--batch_size", "16",
        "--model_dir", str(model_dir),
    ]  # fmt: skip
    procs = []
    for index in range(2):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(
            subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=420))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
    chief_out, worker_out = outs[0][0], outs[1][0]
    assert "MultiWorkerMirroredStrategy with 2 replica(s)" in chief_out, chief_out
    assert "epoch 2/2" in chief_out and "test accuracy" in chief_out
    assert "epoch" not in worker_out  # only the chief reports and writes
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["examples"] == 32
    state = json.loads((model_dir / "state.json").read_text())
    assert state["epochs_done"] == 2 and np.isfinite(state["history"][-1]["loss"])
    assert (model_dir / "last.keras").exists()
    assert not list(model_dir.glob(".worker*_tmp"))


SHARDED_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from types import SimpleNamespace
    from trainers import distribute
    from trainers.data import sharded

    x = np.arange(24 * 4 * 4).reshape(24, 4, 4, 1).astype("uint8")
    raw = tf.data.Dataset.from_tensor_slices((x, np.arange(24, dtype="int32") % 3))
    plan = SimpleNamespace(global_batch=8, steps_per_epoch=3, mixup_alpha=0.0)
    train = sharded.TrainInput(sharded.ElementSource(raw, 24), 3, policy="simple", image_size=4, channels=1,
                               plan=plan, seed=0)
    strategy = distribute.make_strategy("mirrored")
    whole = [b[0].numpy() for b in train(1)]
    same = []
    for step, (images, _) in enumerate(train.distribute(strategy, 1)):
        parts = [p.numpy() for p in strategy.experimental_local_results(images)]
        same.append(bool(np.array_equal(np.concatenate(parts), whole[step])) and all(len(p) == 4 for p in parts))
    print("RESULT " + json.dumps({"replicas": strategy.num_replicas_in_sync, "same": same}))
    """
)


def test_mirrored_replicas_get_the_halves_of_each_global_batch():
    r = subprocess.run(
        [sys.executable, "-c", SHARDED_MIRRORED_SCRIPT], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-4000:]
    res = _result(r.stdout)
    assert res == {"replicas": 2, "same": [True, True, True]}
