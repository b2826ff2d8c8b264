"""What a run leaves in ``--model_dir``, and the atomic writes (temp file or directory, then
rename) every trainers tool writes its files with.

A run's folder::

    state.json          resume state: epochs done, history, best metric, plateau state
    checkpoints/        tf.train.Checkpoint of model, optimizer, plateau scale (last two)
    best.keras last.keras
    history.csv history.json curves.png
    metrics.json        the test split, evaluated once at the end on the chosen weights
    plan.json           the resolved recipe, flags, class names and split sizes
    logs/train logs/validation  TensorBoard
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any


def umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_mode(path: str, *, directory: bool = False) -> None:
    """Give a temp file (``mkstemp``: 0600) or directory (``mkdtemp``: 0700) the mode a
    plain ``open()`` / ``os.makedirs`` would have created: 0666 / 0777 minus the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temp file onto ``path`` (same directory).

    The file gets the permissions a plain ``open(path, "w")`` would give it: an existing
    file's mode is kept, a new one gets 0666 minus the umask (usually 0644)."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        if os.path.isfile(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        else:
            public_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def refuse_overwrite(paths: Sequence[str], *, overwrite: bool = False) -> None:
    """Raise ``FileExistsError`` (a one-line message naming the fix) if any of ``paths``
    exists and ``overwrite`` is false; call it before doing any work."""
    existing = [p for p in paths if os.path.lexists(p)]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists; pass --overwrite to replace it, or choose another --output."
        )


def atomic_write_bytes(path: str, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_dir(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_dir)`` then rename the temp directory onto ``path`` (same parent),
    replacing a directory already there; it gets 0777 minus the umask, as ``os.makedirs``
    would give it."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        write(tmp)
        public_mode(tmp, directory=True)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def write_json(path: str, data: Any) -> None:
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_history_csv(path: str, history: Sequence[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


def plot_history(path: str, history: Sequence[dict[str, Any]], title: str = "") -> None:
    """Loss and accuracy per epoch (training batches and the validation split) and the
    learning rate, as a PNG. The test split is never in it: it is measured once, at the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric in zip(axes[:2], ("loss", "accuracy")):
        for prefix, style, label in (("", "-", "train (augmented batches)"), ("val_", "--", "validation split")):
            values = [row.get(prefix + metric) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    rates = [row.get("lr") for row in history]
    axes[2].plot(epochs, rates, marker="o")
    if all(r is not None and r > 0 for r in rates):  # a schedule that ends at 0 cannot be log-scaled
        axes[2].set_yscale("log")
    axes[2].set_title("learning rate (end of epoch)")
    axes[2].set_xlabel("epoch")
    axes[2].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def write_scalars(writer: Any, scalars: dict[str, float], step: int) -> None:
    """TensorBoard scalars without the ``tensorboard`` package (tensorflow-cpu 2.21 no longer
    depends on it): ``tf.summary.write`` with the scalars plugin's metadata, which is what
    ``tf.summary.scalar`` writes."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars", content=b""),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )
    with writer.as_default():
        for tag, value in scalars.items():
            tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=metadata)
    writer.flush()


def save_keras(model: Any, path: str) -> None:
    """``model.save`` to a temp ``.keras`` file, then rename."""
    atomic_write(path, model.save)
