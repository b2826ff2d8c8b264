"""Magnitude pruning for Keras 3 models (Zhu & Gupta 2017, "To prune, or not to prune";
the pruning step of Han et al. 2016, "Deep Compression").

tensorflow-model-optimization prunes only tf-keras (Keras 2) models: its
``prune_low_magnitude`` rejects Keras 3 layers. So pruning is done here as a training
callback: every ``frequency`` steps the smallest-magnitude entries of each conv / dense
kernel are masked so that the layer reaches the sparsity of a polynomial schedule,

    s(t) = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0)) ** 3      for t_0 <= t <= t_1,

and the masks are re-applied after every step, so the optimizer cannot regrow pruned
weights. Pruning is layer-wise (each kernel reaches ``s(t)``, tfmot's default) or global
(one magnitude threshold over all kernels; the total reaches ``s(t)``); kernels with fewer
than ``min_weights`` entries are left dense. The model keeps its
architecture (zeros are ordinary values): save it as ``.keras`` and export it with
``trainers.export --sparse`` (TFLite sparse storage) or measure its gzip'd size.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from trainers.data import augment, datasets, pipeline
from trainers.data.preprocess import Preprocessing
from trainers.models import main_output


def polynomial_sparsity(
    step: int, *, initial: float, final: float, begin_step: int, end_step: int, power: float = 3.0
) -> float:
    """Zhu & Gupta's schedule: ``initial`` before ``begin_step``, ``final`` from ``end_step`` on."""
    if step <= begin_step:
        return initial
    if step >= end_step:
        return final
    progress = (step - begin_step) / max(1, end_step - begin_step)
    return final + (initial - final) * (1.0 - progress) ** power


def prunable_kernels(model: keras.Model, min_weights: int = 256, keep_ends: bool = True) -> list:
    """The kernels of Conv / DepthwiseConv / Dense layers with at least ``min_weights`` entries;
    with ``keep_ends`` the first and the last such layer (input conv, classifier) stay dense:
    they are small and the most sensitive (pruning SqueezeNet's conv10 to 60-70 % with the
    rest cost 7-8 points here)."""
    kernels = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D | keras.layers.Dense):
            kernel = getattr(layer, "depthwise_kernel", None)
            kernel = getattr(layer, "kernel", None) if kernel is None else kernel
            if kernel is not None:
                kernels.append(kernel)
    if keep_ends and len(kernels) > 2:
        kernels = kernels[1:-1]
    return [k for k in kernels if int(np.prod(k.shape)) >= min_weights]


def magnitude_mask(values: np.ndarray, sparsity: float) -> np.ndarray:
    """A 0/1 mask zeroing exactly ``round(sparsity * size)`` smallest-magnitude entries."""
    flat = np.abs(values).ravel()
    k = round(sparsity * flat.size)
    mask = np.ones(flat.size, np.float32)
    if k > 0:
        mask[np.argpartition(flat, k - 1)[:k]] = 0.0
    return mask.reshape(values.shape)


def global_magnitude_masks(values: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """0/1 masks zeroing the ``round(sparsity * total)`` smallest-magnitude entries over all
    ``values`` together: one threshold, so each layer's share follows its weights (layers
    with large fan-in, hence small weights, are pruned hardest, as in Deep Compression's
    per-layer rates)."""
    flat = np.concatenate([np.abs(v).ravel() for v in values])
    masks = magnitude_mask(flat, sparsity)
    out, start = [], 0
    for v in values:
        out.append(masks[start : start + v.size].reshape(v.shape))
        start += v.size
    return out


class MagnitudePruning(keras.callbacks.Callback):
    """Prune the model's kernels to a polynomial sparsity schedule during ``fit``.

    Args:
        final_sparsity: fraction of each kernel's entries that end at zero.
        end_step: step at which ``final_sparsity`` is reached (training may go on after,
            with the masks fixed: the fine-tuning phase).
        begin_step, initial_sparsity, power: the schedule's start and shape.
        frequency: steps between mask updates.
        min_weights: kernels smaller than this stay dense.
        scope: "layer" (each kernel reaches the sparsity, tfmot's default) or "global" (one
            magnitude threshold over all kernels; the total reaches it).
    """

    def __init__(
        self,
        final_sparsity: float,
        end_step: int,
        *,
        begin_step: int = 0,
        initial_sparsity: float = 0.0,
        power: float = 3.0,
        frequency: int = 50,
        min_weights: int = 256,
        scope: str = "layer",
    ) -> None:
        super().__init__()
        if scope not in ("layer", "global"):
            raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}.")
        self.scope = scope
        if not 0.0 <= initial_sparsity <= final_sparsity < 1.0:
            raise ValueError(f"need 0 <= initial_sparsity <= final_sparsity < 1, got {initial_sparsity}, {final_sparsity}.")
        self.final_sparsity = final_sparsity
        self.initial_sparsity = initial_sparsity
        self.begin_step = begin_step
        self.end_step = end_step
        self.power = power
        self.frequency = max(1, frequency)
        self.min_weights = min_weights
        self.step = 0
        self.kernels: list = []
        self.masks: list = []

    def sparsity_at(self, step: int) -> float:
        return polynomial_sparsity(
            step, initial=self.initial_sparsity, final=self.final_sparsity,
            begin_step=self.begin_step, end_step=self.end_step, power=self.power,
        )  # fmt: skip

    def _update_masks(self) -> None:
        target = self.sparsity_at(self.step)
        values = [np.asarray(kernel.numpy()) for kernel in self.kernels]
        if self.scope == "global":
            masks = global_magnitude_masks(values, target)
        else:
            masks = [magnitude_mask(v, target) for v in values]
        for mask, new in zip(self.masks, masks):
            mask.assign(new)

    def _apply(self) -> None:
        for kernel, mask in zip(self.kernels, self.masks):
            kernel.assign(kernel * mask)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.kernels:
            self.kernels = prunable_kernels(self.model, self.min_weights)
            self.masks = [keras.Variable(np.ones(k.shape, np.float32), trainable=False) for k in self.kernels]
        self._update_masks()
        self._apply()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1
        if self.step <= self.end_step and (self.step % self.frequency == 0 or self.step == self.end_step):
            self._update_masks()
        self._apply()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["sparsity"] = self.sparsity_at(self.step)


def sparsity_report(model: keras.Model, min_weights: int = 256) -> dict[str, float]:
    """Fraction of zeros per prunable kernel, and ``"total"`` over all of them."""
    out, zeros, total = {}, 0, 0
    for kernel in prunable_kernels(model, min_weights):
        v = np.asarray(kernel.numpy())
        out[kernel.path] = float(np.mean(v == 0))
        zeros += int(np.sum(v == 0))
        total += v.size
    out["total"] = zeros / total if total else 0.0
    return out


# ----------------------------------------------------------------------------- fine-tuning


def fine_tuning_data(
    prep: Preprocessing, *, batch_size: int, seed: int = 0, dataset: str = "fashion_mnist", data_dir: str | None = None
) -> tuple[tf.data.Dataset, tf.data.Dataset, datasets.DatasetInfo]:
    """``(train, test, info)``: batched datasets with the policy's training augmentation and
    its evaluation preprocessing."""
    train, info = datasets.load_dataset(dataset, "train", data_dir=data_dir)
    test, _ = datasets.load_dataset(dataset, "test", data_dir=data_dir)
    train = train.shuffle(min(info.num_train, 60_000), seed=seed, reshuffle_each_iteration=True)
    train = augment.map_train(train, prep.policy, prep.image_size, prep.channels, seed)
    train = train.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    test = pipeline.make_eval_dataset(
        test, policy=prep.policy, image_size=prep.image_size, channels=prep.channels, batch_size=256
    )
    return train, test, info


def evaluate(model: keras.Model, test: tf.data.Dataset) -> float:
    """Top-1 accuracy of the model's main output on a batched ``(image, label)`` dataset."""
    correct = total = 0
    for x, y in test:
        logits = main_output(model(x, training=False))
        correct += int(np.sum(np.argmax(logits, -1) == y.numpy()))
        total += len(y)
    return correct / total


def prune(
    model: keras.Model,
    train: tf.data.Dataset,
    *,
    final_sparsity: float,
    epochs: int,
    steps_per_epoch: int,
    lr: float = 3e-4,
    prune_fraction: float = 0.6,
    frequency: int = 50,
    scope: str = "layer",
) -> MagnitudePruning:
    """Prune ``model`` in place while fine-tuning it with Adam: the sparsity ramps up over the
    first ``prune_fraction`` of the steps, the rest fine-tunes with the masks fixed."""
    total = epochs * steps_per_epoch
    callback = MagnitudePruning(
        final_sparsity, end_step=max(1, int(total * prune_fraction)), frequency=frequency, scope=scope
    )
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=[callback], verbose=2)
    return callback


def uncompiled_copy(model: keras.Model) -> keras.Model:
    """The model rebuilt from its config with the same weights and no optimizer: a compiled
    model's ``.keras`` file also holds the Adam moments (3x the size), and ``clone_model``
    keeps the compilation."""
    plain = keras.Model.from_config(model.get_config())
    plain.set_weights(model.get_weights())
    return plain
