"""Distribution strategies for the training loop, and synchronized BatchNorm.

Keras 3.15's ``model.fit`` does not work under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585), so the trainer never calls ``fit``: :mod:`trainers.loop` is a
custom loop (``strategy.run`` inside a ``tf.function``; the Keras optimizer all-reduces
the per-replica gradients with a SUM), the same code for every strategy.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from keras_archs.builder import deep_graphs

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def tf_config() -> dict:
    """The parsed ``TF_CONFIG`` environment variable ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None


def _num_workers(config: dict) -> int:
    cluster = config.get("cluster", {})
    return sum(len(cluster.get(k, [])) for k in ("chief", "worker"))


def make_strategy(name: str = "auto", tpu: str = "") -> tf.distribute.Strategy:
    """The strategy called ``name`` (one of :data:`STRATEGIES`).

    ``auto``: multi-worker when ``TF_CONFIG`` names more than one worker, else mirrored
    when there is more than one GPU (or more than one logical CPU, as in the tests),
    else the default (one device). Create the strategy before any other TensorFlow op.
    ``TF_CONFIG`` is checked first (:func:`trainers.cluster.check_tf_config`).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose from {STRATEGIES}.")
    if name in ("auto", "multi_worker"):
        from trainers.cluster import check_tf_config

        check_tf_config()
    if name == "auto":
        if _num_workers(tf_config()) > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1 or (
            not tf.config.list_logical_devices("GPU") and len(tf.config.list_logical_devices("CPU")) > 1
        ):
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        config = tf_config()
        if not config.get("cluster"):
            raise ValueError(
                "--strategy multi_worker needs TF_CONFIG with a cluster and this process's task, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}.'
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public name (MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy)."""
    for cls, name in (
        (tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
        (tf.distribute.MirroredStrategy, "MirroredStrategy"),
        (tf.distribute.TPUStrategy, "TPUStrategy"),
    ):
        if isinstance(strategy, cls):
            return name
    return "default strategy"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs (the chief, or worker 0 with no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """The worker processes of ``strategy``'s cluster (1 without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, sum(len(spec.get(k, [])) for k in ("chief", "worker")))


def worker_id(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", 0) or 0) if resolver is not None else 0


def count_batchnorm(model: keras.Model) -> int:
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in _all_layers(model))


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def sync_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of a functional ``model`` whose BatchNormalization layers compute their batch
    statistics over the global batch (``synchronized=True``), with the same weights.

    Call it inside ``strategy.scope()``.
    """

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    with deep_graphs():
        new = keras.models.clone_model(model, clone_function=clone)
    new.set_weights(model.get_weights())
    return new
