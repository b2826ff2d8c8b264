"""The training loop: one custom loop for every strategy (single device, mirrored,
multi-worker, TPU), with the recipe's loss, resumable state and the run's outputs.

Why a custom loop: Keras 3.15's ``model.fit`` breaks under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585). Here ``strategy.run`` executes the per-replica step inside a
``tf.function``; each replica's loss is averaged over the *global* batch
(``tf.nn.compute_average_loss``), so the SUM all-reduce the Keras optimizer performs on the
gradients gives exactly the single-device gradient of the global batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_archs.builder import deep_graphs
from trainers import distribute, outputs
from trainers.checkpointing import AGREE_EVERY, CheckpointEvery, SaveClock
from trainers.cli import EXIT_DIVERGED, FailedError, UsageError
from trainers.models import main_output
from trainers.recipes import Plan, make_optimizer, make_schedule


class TrainingDivergedError(FailedError):
    """The training loss became NaN or infinite."""

    exit_code = EXIT_DIVERGED


# ----------------------------------------------------------------------------- losses


def per_example_loss(
    outputs_: Any,
    onehot: tf.Tensor,
    *,
    aux_weights: Mapping[str, float] | None = None,
    label_smoothing: float = 0.0,
) -> tf.Tensor:
    """Cross-entropy from logits per example: ``main + sum_k w_k * aux_k`` for dict outputs.

    Every head gets the same (smoothed) targets. Logits are cast to float32 first (mixed
    precision computes them in float16). An auxiliary output without a weight in
    ``aux_weights`` is an error rather than silently ignored.
    """
    aux_weights = dict(aux_weights or {})
    onehot = tf.cast(onehot, tf.float32)

    def xent(logits):
        return keras.losses.categorical_crossentropy(
            onehot, tf.cast(logits, tf.float32), from_logits=True, label_smoothing=label_smoothing
        )

    if not isinstance(outputs_, Mapping):
        return xent(outputs_)
    total = xent(outputs_["main"])
    for name, logits in outputs_.items():
        if name == "main":
            continue
        if name not in aux_weights:
            raise ValueError(f"The model has an auxiliary output {name!r} but the recipe gives it no weight.")
        total = total + aux_weights[name] * xent(logits)
    return total


def decayed_variables(model: keras.Model) -> list:
    """The variables weight decay applies to: trainable kernels (rank >= 2), not biases or BN."""
    return [v for v in model.trainable_variables if len(v.shape) >= 2]


def l2_penalty(variables: Sequence, weight_decay: float) -> tf.Tensor:
    """``0.5 * wd * sum ||w||^2``: its gradient is the papers' ``wd * w``."""
    if not weight_decay or not variables:
        return tf.constant(0.0)
    return 0.5 * weight_decay * tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables])


# Measured with tensorflow-cpu 2.21 on 2 AVX-512 cores, ResNet-20 at batch 128: whole steps by
# `python -m benchmarks.training_throughput --models resnet20 --sides ours ours_xla`; single ops (3x3
# convolution 16->16 at 32x32: forward and input gradient 1.5x, weight gradient 3.7x; batch norm with
# its gradient 1.9x) as tf.functions with and without jit_compile. The optimised HLO of the step holds
# 56 plain XLA `convolution` ops and no oneDNN call; no XLA_FLAGS setting tried (use_onednn,
# onednn_custom_call, use_xnnpack, thunk runtime off, fast math) made it faster.
XLA_CPU_WARNING = (
    "warning: --jit_compile on CPU trains slower: XLA compiles its own convolutions instead of TensorFlow's "
    "oneDNN kernels (measured: ResNet-20 steps 1.4-1.6x slower; weight-gradient convolutions 3.7x, batch norm "
    "1.9x) and compiling takes seconds per input shape; leave it off on CPU."
)


# ----------------------------------------------------------------------------- input iterators


def release_in_background(holder: list) -> None:
    """Destroy the finished tf.data iterators in ``holder`` (which must hold their only
    references) on a daemon thread, not the training thread.

    Destroying an iterator joins its tf.data autotuning thread, which can first sleep out the
    rest of its optimisation period (it doubles while the iterator lives). On the training
    thread that wait stalled training at epoch boundaries and after evaluations (measured on 2
    CPU cores: 1-5 s after epochs of a few seconds, 25 s after the demo's first epoch); on
    another thread it costs nothing.
    """
    threading.Thread(target=holder.clear, name="release-iterators", daemon=True).start()


# ----------------------------------------------------------------------------- the trainer


@dataclasses.dataclass
class Epoch:
    """What happened in one epoch: training loss and accuracy (on the augmented batches, as
    trained) and the validation split's loss, accuracy and top-5."""

    epoch: int
    lr: float
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_top5: float | None = None
    seconds: float = 0.0
    images_per_second: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


class Trainer:
    """Builds the model and optimizer under ``strategy`` and trains them with ``plan``.

    Args:
        build_model: returns the (logits) model; called inside ``strategy.scope()``.
        plan: the resolved recipe.
        strategy: a ``tf.distribute.Strategy``.
        model_dir: where outputs and resume state go (None: nothing is written).
        jit_compile: XLA-compile the per-replica step (single replica only).
        callbacks: ``fn(trainer, epoch_record)`` called after each epoch's state is saved.
        log: progress printer (chief only).
        early_stopping_patience: stop after this many epochs without a better validation
            accuracy (0: never).
        progress: show a progress line within each epoch (a bar on a terminal, a plain line
            every tenth of the epoch otherwise).
        refresh_seconds: ``last.keras`` and ``curves.png`` are rewritten at most this often
            (and always after the last epoch); the resume state, ``best.keras`` and the
            history are written after every epoch.
        checkpoint_every: also save the resume state within epochs, every so many steps or
            seconds (:class:`trainers.checkpointing.CheckpointEvery`); a resumed run continues
            at the saved step of the epoch.
        identity: what the run is (architecture, dataset, ...), recorded in the resume state
            so that a resumption can be checked against it.
    """

    def __init__(
        self,
        build_model: Callable[[], keras.Model],
        plan: Plan,
        strategy: tf.distribute.Strategy | None = None,
        *,
        model_dir: str | None = None,
        jit_compile: bool = False,
        callbacks: Sequence[Callable[[Trainer, Epoch], None]] = (),
        log: Callable[[str], None] = print,
        loss_scale: bool = False,
        early_stopping_patience: int = 0,
        progress: bool = True,
        refresh_seconds: float = 0.0,
        checkpoint_every: CheckpointEvery | None = None,
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        self.plan = plan
        self.checkpoint_every = checkpoint_every
        self.identity = dict(identity) if identity else None
        self._resume_step = 0  # the step within epoch epochs_done + 1 the saved state is at
        self._partial = {"loss_sum": 0.0, "correct": 0.0}
        self._saved_workers: int | None = None
        self.recipe = plan.recipe
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self.chief = distribute.is_chief(self.strategy)
        self.model_dir = model_dir
        self.callbacks = list(callbacks)
        self._log = log
        self.early_stopping_patience = int(early_stopping_patience)
        self.progress = progress
        self.refresh_seconds = float(refresh_seconds)
        self._refreshed_at = -math.inf
        self.jit_compile = bool(jit_compile) and self.replicas == 1
        if jit_compile and self.replicas > 1:
            self.log("note: --jit_compile is applied only with one replica; ignored under distribution.")
        if self.jit_compile and not tf.config.list_logical_devices("GPU") and not tf.config.list_logical_devices("TPU"):
            self.log(XLA_CPU_WARNING)
        if plan.global_batch % self.replicas:
            raise ValueError(
                f"The global batch {plan.global_batch} must be divisible by the {self.replicas} replicas."
            )
        with self.strategy.scope():
            self.model = build_model()
            self.lr_scale = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="lr_scale")
            self.schedule = make_schedule(plan, scale=self.lr_scale)
            optimizer = make_optimizer(plan, self.schedule)
            if loss_scale:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            # Build the slots now: creating variables inside strategy.run fails.
            self.optimizer.build(self.model.trainable_variables)
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, lr_scale=self.lr_scale)
        self._decayed = decayed_variables(self.model)
        self.history: list[dict[str, Any]] = []
        self.epochs_done = 0
        self.best: dict[str, Any] = {}
        self.plateau = {"best": None, "wait": 0, "reductions": 0}
        self._best_values: list[np.ndarray] | None = None
        self._train_step = None
        self._eval_step = None
        self._agree_fn = None
        self._ckpt_manager = None

    # ------------------------------------------------------------------ helpers

    def log(self, message: str) -> None:
        if self.chief:
            self._log(message)

    def current_lr(self) -> float:
        return float(self.schedule(self._iterations()))

    def _iterations(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def _ema_averages(self) -> list:
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        averages = getattr(inner, "_model_variables_moving_average", None)
        return list(averages) if self.recipe.ema_decay and averages else []

    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[None]:
        """Within the block the model holds the EMA of its weights (if the recipe uses one)."""
        averages = self._ema_averages()
        if not averages:
            yield
            return
        variables = self.model.trainable_variables
        saved = [v.numpy() for v in variables]
        for v, a in zip(variables, averages):
            v.assign(a.numpy())
        try:
            yield
        finally:
            for v, s in zip(variables, saved):
                v.assign(s)

    # ------------------------------------------------------------------ steps

    def _clip(self, grads: list) -> list:
        """Clip by the norm of the *global* (all-replica) gradient, like one device would."""
        ctx = tf.distribute.get_replica_context()
        present = [g for g in grads if g is not None]
        summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, present) if self.replicas > 1 else present
        scale = self.optimizer.loss_scale_factor if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer) else None
        norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in summed])
        if scale is not None:
            norm = norm / tf.cast(scale, tf.float32)
        factor = tf.minimum(1.0, self.recipe.clip_norm / tf.maximum(norm, 1e-12))
        return [None if g is None else g * tf.cast(factor, g.dtype) for g in grads]

    def _make_train_step(self):
        model, optimizer, recipe = self.model, self.optimizer, self.recipe
        global_batch = self.plan.global_batch

        def step_fn(images, onehot):
            with tf.GradientTape() as tape:
                outs = model(images, training=True)
                per_example = per_example_loss(
                    outs, onehot, aux_weights=recipe.aux_weights, label_smoothing=recipe.label_smoothing
                )
                data_loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                reg = l2_penalty(self._decayed, recipe.weight_decay)
                if model.losses:
                    reg = reg + tf.add_n([tf.cast(x, tf.float32) for x in model.losses])
                loss = data_loss + tf.nn.scale_regularization_loss(reg)
                scaled = optimizer.scale_loss(loss)
            variables = model.trainable_variables
            grads = tape.gradient(scaled, variables)
            if recipe.clip_norm:
                grads = self._clip(grads)
            optimizer.apply_gradients(zip(grads, variables))
            logits = tf.cast(main_output(outs), tf.float32)
            correct = tf.reduce_sum(
                tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(onehot, -1)), tf.float32)
            )
            return data_loss, correct

        replica_fn = tf.function(step_fn, jit_compile=True) if self.jit_compile else step_fn

        @tf.function
        def train_step(images, onehot):
            loss, correct = self.strategy.run(replica_fn, args=(images, onehot))
            s = tf.distribute.ReduceOp.SUM
            return self.strategy.reduce(s, loss, axis=None), self.strategy.reduce(s, correct, axis=None)

        return train_step

    def _make_eval_step(self):
        model = self.model

        def step_fn(images, labels):
            labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
            if images.shape.rank == 5:  # [batch, crops, H, W, C]: average the crops' probabilities
                crops = tf.shape(images)[1]
                flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[2:]], 0))
                logits = tf.cast(main_output(model(flat, training=False)), tf.float32)
                probs = tf.reduce_mean(tf.reshape(tf.nn.softmax(logits), [-1, crops, logits.shape[-1]]), axis=1)
                logits = tf.math.log(tf.maximum(probs, 1e-12))
            else:
                logits = tf.cast(main_output(model(images, training=False)), tf.float32)
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.cast(tf.argmax(logits, -1), tf.int32), labels), tf.float32))
            k = min(5, int(logits.shape[-1]))
            top5 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, k), tf.float32))
            count = tf.cast(tf.shape(labels)[0], tf.float32)
            return tf.stack([loss, correct, top5, count])

        @tf.function
        def eval_step(images, labels):
            out = self.strategy.run(step_fn, args=(images, labels))
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, out, axis=None)

        return eval_step

    def train_on_batch(self, images: tf.Tensor, onehot: tf.Tensor) -> tuple[float, float]:
        """One optimisation step on an already distributed (or plain, one replica) batch."""
        loss, correct = self._step(images, onehot)
        return float(loss), float(correct)

    def _step(self, images, onehot) -> tuple[tf.Tensor, tf.Tensor]:
        if self._train_step is None:
            self._train_step = self._make_train_step()
        return self._train_step(images, onehot)

    def evaluate(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """Loss, top-1 and top-5 accuracy on a batched ``(image, int label)`` dataset."""
        if self._eval_step is None:
            self._eval_step = self._make_eval_step()
        totals = np.zeros(4)
        with self.ema_weights():
            iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
            for images, labels in iterator:
                totals += self._eval_step(images, labels).numpy()
            holder, iterator = [iterator], None
            release_in_background(holder)
        n = max(totals[3], 1.0)
        return {"loss": totals[0] / n, "accuracy": totals[1] / n, "top5": totals[2] / n, "examples": int(totals[3])}

    # ------------------------------------------------------------------ state

    def _paths(self) -> dict[str, str]:
        d = self.model_dir or ""
        return {
            "state": os.path.join(d, "state.json"),
            "ckpt": os.path.join(d, "checkpoints"),
            "best": os.path.join(d, "best.keras"),
            "last": os.path.join(d, "last.keras"),
            "history_csv": os.path.join(d, "history.csv"),
            "history_json": os.path.join(d, "history.json"),
            "png": os.path.join(d, "curves.png"),
            "logs": os.path.join(d, "logs"),
        }

    def _manager(self) -> tf.train.CheckpointManager:
        if self._ckpt_manager is None:
            directory = self._paths()["ckpt"]
            if not self.chief:
                # Every worker must write (saving is collective); only the chief's copy is kept.
                directory = os.path.join(self.model_dir, f".worker{distribute.worker_id(self.strategy)}_tmp")
            self._ckpt_manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=2)
        return self._ckpt_manager

    def has_state(self) -> bool:
        return bool(self.model_dir) and os.path.exists(self._paths()["state"])

    def restore(self) -> int:
        """Restore the last saved state from ``model_dir``; returns the number of epochs done
        (a mid-epoch state also sets the step within the next epoch to continue at)."""
        state = outputs.read_json(self._paths()["state"])
        prefix = os.path.join(self.model_dir, state["checkpoint"])
        try:
            self.checkpoint.restore(prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise FailedError(
                f"cannot restore {prefix}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
            ) from None
        self.epochs_done = int(state["epochs_done"])
        self._resume_step = int(state.get("step_in_epoch", 0))
        self._partial = dict(state.get("partial") or {"loss_sum": 0.0, "correct": 0.0})
        self._saved_workers = state.get("workers")
        self.history = list(state["history"])
        self.best = dict(state.get("best", {}))
        self.plateau = dict(state.get("plateau", self.plateau))
        self._best_values = None  # read from best.keras if needed (restore_best)
        return self.epochs_done

    def _save_state(self, step_in_epoch: int = 0, partial: Mapping[str, float] | None = None) -> None:
        """Save the model, optimizer and position: after ``epochs_done`` epochs and
        ``step_in_epoch`` steps of the next (``partial``: that epoch's sums so far)."""
        if not self.model_dir:
            return
        number = self._iterations() if self.checkpoint_every else self.epochs_done
        prefix = self._manager().save(checkpoint_number=number)
        if not self.chief:
            shutil.rmtree(os.path.dirname(prefix), ignore_errors=True)
            self._ckpt_manager = None
            return
        # state.json is renamed into place only after the checkpoint is complete, so a kill
        # at any moment leaves a state that points to a whole checkpoint.
        outputs.write_json(
            self._paths()["state"],
            {
                "epochs_done": self.epochs_done,
                "step_in_epoch": int(step_in_epoch),
                "partial": dict(partial) if partial else None,
                "global_step": self.epochs_done * self.plan.steps_per_epoch + int(step_in_epoch),
                "workers": distribute.num_workers(self.strategy),
                "checkpoint": os.path.relpath(prefix, self.model_dir),
                "history": self.history,
                "best": self.best,
                "plateau": self.plateau,
                "plan": self.plan.summary(),
                **({"identity": self.identity} if self.identity else {}),
            },
        )

    # ------------------------------------------------------------------ plateau

    def _plateau_update(self, metric: float) -> None:
        s = self.plan.schedule
        if s.kind != "plateau":
            return
        best = self.plateau["best"]
        if best is None or metric > best + 1e-4:
            self.plateau.update(best=metric, wait=0)
            return
        self.plateau["wait"] += 1
        if self.plateau["wait"] >= s.patience and self.plateau["reductions"] < s.max_reductions:
            self.lr_scale.assign(self.lr_scale * s.factor)
            self.plateau.update(wait=0, reductions=self.plateau["reductions"] + 1)
            self.log(f"  plateau: learning rate x{s.factor} (reduction {self.plateau['reductions']})")

    # ------------------------------------------------------------------ fit

    def _epoch_input(self, train_dataset: Any, epoch: int, start_step: int):
        """An iterator over the epoch's distributed batches from ``start_step`` on: a
        :class:`trainers.data.sharded.TrainInput` gives each worker its share; a plain
        ``epoch -> dataset`` of global batches is split by the strategy (and skipped into)."""
        if hasattr(train_dataset, "distribute"):
            return iter(train_dataset.distribute(self.strategy, epoch, start_step))
        ds = train_dataset(epoch)
        if start_step:
            ds = ds.skip(start_step)
        return iter(self.strategy.experimental_distribute_dataset(ds))

    def _all_max(self, value: float) -> float:
        """The largest of every worker's ``value`` (a collective: every worker must call it)."""
        if self._agree_fn is None:

            @tf.function
            def all_max(x):  # tf.distribute reduces by SUM or MEAN only: gather, then the max
                per_replica = self.strategy.run(lambda v: tf.reshape(v, [1]), args=(x,))
                return tf.reduce_max(self.strategy.gather(per_replica, axis=0))

            self._agree_fn = all_max
        return float(self._agree_fn(tf.constant(float(value), tf.float64)).numpy())

    def _agree(self, flag: bool) -> bool:
        """The OR of every worker's ``flag`` (a collective: every worker must call it)."""
        return self._all_max(1.0 if flag else 0.0) > 0

    def _check_same_start(self) -> None:
        """Under several workers, check that all start from the same saved step: a
        ``model_dir`` that is not shared storage gives the chief's state to the chief only."""
        step = self.epochs_done * self.plan.steps_per_epoch + self._resume_step
        highest, lowest = self._all_max(step), -self._all_max(-step)
        if highest != lowest:
            raise FailedError(
                f"the workers start from different saved steps ({lowest:.0f} to {highest:.0f}; this one {step}): "
                "--model_dir must be storage every worker reads and writes (a shared file system or a bucket)."
            )

    def last_saved(self) -> str | None:
        """Where the saved state is, in words ("epoch 2, step 40"), ``None`` if nothing is saved."""
        if not self.has_state():
            return None
        try:
            state = outputs.read_json(self._paths()["state"])
        except (OSError, ValueError):
            return None
        done, step = int(state.get("epochs_done", 0)), int(state.get("step_in_epoch", 0))
        return f"epoch {done + 1}, step {step}" if step else f"the end of epoch {done}"

    def fit(
        self,
        train_dataset: Any,
        eval_dataset: tf.data.Dataset | None = None,
        *,
        resume: bool = False,
    ) -> list[dict[str, Any]]:
        """Train for ``plan.epochs`` epochs.

        ``train_dataset`` is a :class:`trainers.data.sharded.TrainInput` (each worker reads its
        share) or any ``epoch -> dataset`` of batched ``(images, onehot)`` global batches (at
        least ``plan.steps_per_epoch`` of them); ``eval_dataset`` is the batched ``(images, int
        labels)`` *validation* split: the only data model selection (best epoch, plateau,
        early stopping) reads. With ``resume`` and saved state in ``model_dir``, training
        continues where it was saved: after the last completed epoch, or within an epoch at
        the saved step (``checkpoint_every``), with the same batches the uninterrupted run
        would have had from there.
        """
        if resume and self.has_state():
            done = self.restore()
            workers = distribute.num_workers(self.strategy)
            position_invariant = bool(getattr(train_dataset, "position_invariant", True))
            if self._resume_step and self._saved_workers not in (None, workers) and not position_invariant:
                raise UsageError(
                    f"--resume: the run was saved mid-epoch with {self._saved_workers} worker(s) reading their own "
                    f"record files; restart it with {self._saved_workers} worker(s) (this cluster has {workers})."
                )
            at = f", step {self._resume_step} of epoch {done + 1}" if self._resume_step else ""
            self.log(
                f"resumed from {self.model_dir}: {done} epoch(s) done{at}, lr scale {float(self.lr_scale.numpy()):g}"
            )
        multi = distribute.num_workers(self.strategy) > 1
        if multi:
            self._check_same_start()
        clock = None
        if self.checkpoint_every and self.model_dir:
            agree_every = min(AGREE_EVERY, max(1, self.plan.steps_per_epoch // 2))
            clock = SaveClock(self.checkpoint_every, agree=self._agree if multi else None, agree_every=agree_every)
        writers = {}
        if self.model_dir and self.chief:
            logs = self._paths()["logs"]
            writers = {k: tf.summary.create_file_writer(os.path.join(logs, k)) for k in ("train", "validation")}
        spe = self.plan.steps_per_epoch
        if eval_dataset is None:
            self.log("no validation split: plateau schedules follow the training accuracy; best = last epoch")
        for epoch in range(self.epochs_done + 1, self.plan.epochs + 1):
            if self._should_stop():
                break
            start = time.time()
            first, self._resume_step = self._resume_step, 0
            iterator = self._epoch_input(train_dataset, epoch, first)
            log = self.log if self.progress else None
            bar = ProgressLine(epoch, self.plan.epochs, spe, self.plan.global_batch, log, start_step=first)
            loss_sum = tf.constant(float(self._partial["loss_sum"]) if first else 0.0)
            correct = tf.constant(float(self._partial["correct"]) if first else 0.0)
            for step in range(first, spe):
                try:
                    images, onehot = next(iterator)
                except StopIteration:
                    raise ValueError(
                        f"The training data ran out after {step} of {spe} steps in epoch {epoch}."
                    ) from None
                loss, corr = self._step(images, onehot)
                loss_sum += loss
                correct += corr
                # Reading values waits for the step: only when the progress line is due.
                if bar.due(step + 1):
                    self._check_finite(float(loss_sum), epoch, step + 1)
                    bar.update(step + 1, float(loss_sum) / (step + 1))
                if clock is not None and step + 1 < spe and clock.due((epoch - 1) * spe + step + 1):
                    self._check_finite(float(loss_sum), epoch, step + 1)
                    self._save_state(step + 1, {"loss_sum": float(loss_sum), "correct": float(correct)})
                    clock.saved()
            holder, iterator = [iterator], None
            release_in_background(holder)
            loss_sum, correct = float(loss_sum), float(correct)
            bar.close()
            self._check_finite(loss_sum, epoch, spe)
            train_seconds = time.time() - start
            record = Epoch(
                epoch=epoch,
                lr=self.current_lr(),
                loss=loss_sum / spe,
                accuracy=correct / (spe * self.plan.global_batch),
                images_per_second=(spe - first) * self.plan.global_batch / max(train_seconds, 1e-9),
            )
            if eval_dataset is not None:
                ev = self.evaluate(eval_dataset)
                record.val_loss, record.val_accuracy, record.val_top5 = ev["loss"], ev["accuracy"], ev["top5"]
            self._plateau_update(record.val_accuracy if eval_dataset is not None else record.accuracy)
            record.seconds = time.time() - start
            self.epochs_done = epoch
            row = record.as_dict()
            self.history.append(row)
            self._write_epoch_outputs(record, writers)
            self._save_state()
            if clock is not None:
                clock.saved()
            self.log(
                f"epoch {epoch}/{self.plan.epochs}  loss {record.loss:.4f}  acc {record.accuracy:.4f}"
                + (
                    f"  val_loss {record.val_loss:.4f}  val_acc {record.val_accuracy:.4f}"
                    if record.val_loss is not None
                    else ""
                )
                + f"  lr {record.lr:.3g}  {record.images_per_second:.0f} img/s  {record.seconds:.1f}s"
            )
            for callback in self.callbacks:
                callback(self, record)
        self._refresh_outputs(force=True)
        return self.history

    def _check_finite(self, loss_sum: float, epoch: int, step: int) -> None:
        if not math.isfinite(loss_sum):
            raise TrainingDivergedError(
                f"Training diverged: the loss is {loss_sum} by epoch {epoch}, step {step} "
                f"(learning rate {self.current_lr():.4g}). Lower --lr, add --warmup_epochs, or check the data."
            )

    def _should_stop(self) -> bool:
        """Early stopping: ``early_stopping_patience`` epochs since the best validation accuracy."""
        patience = self.early_stopping_patience
        if not patience or not self.best or self.epochs_done - self.best["epoch"] < patience:
            return False
        self.log(
            f"early stopping: no better validation accuracy for {patience} epoch(s) since epoch {self.best['epoch']}"
        )
        return True

    def _snapshot(self) -> list[np.ndarray]:
        return [v.numpy() for v in [*self.model.weights, *self._ema_averages()]]

    def restore_best(self) -> int:
        """Put the chosen weights in the model (the epoch of the best validation accuracy,
        else the last one) and return that epoch. With an EMA recipe, evaluation then uses
        the EMA weights of that epoch."""
        epoch = int(self.best.get("epoch", self.epochs_done))
        if epoch == self.epochs_done:
            return epoch
        values = self._best_values
        targets = [*self.model.weights, *self._ema_averages()]
        if values is None:  # resumed: the best epoch's weights are in best.keras (EMA applied)
            with deep_graphs():
                best = keras.saving.load_model(self._paths()["best"], compile=False, safe_mode=True)
            weights = [np.asarray(v) for v in best.weights]
            ema = [np.asarray(v) for v, m in zip(best.weights, self.model.weights) if m.trainable]
            values = weights + ema[: len(self._ema_averages())]
        for variable, value in zip(targets, values):
            variable.assign(value)
        self.log(f"chosen weights: epoch {epoch} (best validation accuracy {self.best['val_accuracy']:.4f})")
        return epoch

    def _write_epoch_outputs(self, record: Epoch, writers: dict) -> None:
        improved = False
        if record.val_accuracy is not None and (
            not self.best or record.val_accuracy > self.best.get("val_accuracy", -1.0)
        ):
            self.best = {"epoch": record.epoch, "val_accuracy": record.val_accuracy, "val_loss": record.val_loss}
            self._best_values = self._snapshot()
            improved = True
        elif record.val_accuracy is None:
            improved = True  # no validation: best = last
        if not self.chief or not self.model_dir:
            return
        paths = self._paths()
        if improved:
            with self.ema_weights():
                outputs.save_keras(self.model, paths["best"])
        if writers:
            outputs.write_scalars(
                writers["train"], {"loss": record.loss, "accuracy": record.accuracy, "learning_rate": record.lr}, record.epoch
            )
            if record.val_loss is not None:
                outputs.write_scalars(
                    writers["validation"], {"loss": record.val_loss, "accuracy": record.val_accuracy}, record.epoch
                )
        outputs.write_history_csv(paths["history_csv"], self.history)
        outputs.write_json(paths["history_json"], self.history)
        self._refresh_outputs()

    def _refresh_outputs(self, force: bool = False) -> None:
        """``last.keras`` and ``curves.png``: after the last epoch, else at most every
        ``refresh_seconds`` (a short epoch should not spend its time plotting)."""
        if not self.chief or not self.model_dir or not self.history:
            return
        if not force and time.time() - self._refreshed_at < self.refresh_seconds:
            return
        paths = self._paths()
        with self.ema_weights():
            outputs.save_keras(self.model, paths["last"])
        outputs.plot_history(paths["png"], self.history, title=self.model.name)
        self._refreshed_at = time.time()


class ProgressLine:
    """Progress within an epoch: steps, images/s, ETA and the running loss.

    On a terminal one line is redrawn at most every half second; otherwise (a log file, a
    pipe) a plain line is printed every tenth of the epoch.
    """

    def __init__(
        self, epoch: int, epochs: int, steps: int, batch: int, log: Callable[[str], None] | None, start_step: int = 0
    ) -> None:
        self.epoch, self.epochs, self.steps, self.batch, self.log = epoch, epochs, steps, batch, log
        self.start_step = start_step  # a resumed epoch starts there: the rate counts the steps since
        self.tty = log is not None and sys.stdout.isatty()
        self.start = self.last = time.time()
        self.every = max(1, steps // 10)

    def due(self, step: int) -> bool:
        if self.log is None or step == self.steps:
            return False
        if self.tty:
            return time.time() - self.last >= 0.5
        return step % self.every == 0

    def update(self, step: int, loss: float) -> None:
        now = time.time()
        self.last = now
        rate = (step - self.start_step) * self.batch / max(now - self.start, 1e-9)
        eta = (self.steps - step) * self.batch / max(rate, 1e-9)
        done = int(20 * step / self.steps)
        text = (
            f"epoch {self.epoch}/{self.epochs} [{'=' * done}{'.' * (20 - done)}] {step}/{self.steps}  "
            f"loss {loss:.4f}  {rate:.0f} img/s  ETA {eta:.0f}s"
        )
        if self.tty:
            sys.stdout.write("\r" + text + "\x1b[K")
            sys.stdout.flush()
        else:
            self.log(text)

    def close(self) -> None:
        """Clear the terminal line before the epoch's summary is printed."""
        if self.tty and self.last > self.start:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()
