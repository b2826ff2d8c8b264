"""Mid-epoch checkpoints and the checks made before a run resumes.

``--checkpoint_every`` saves the model, the optimizer (its step counter included) and the
position in the epoch every N steps (``500``) or every so often (``10m``, ``90s``, ``1h``);
:class:`CheckpointEvery` parses it and says when a save is due. Under several workers a save
is collective (every worker writes), so every worker must decide the same: a step interval
is the same everywhere; a time interval is decided by all of them together, through one
small all-reduce every :data:`AGREE_EVERY` steps (a save is due as soon as one worker's clock
says so), so the workers' clocks can differ but never split a save.

:func:`check_resumable` compares what a ``--resume`` would continue (``plan.json`` and
``state.json`` of the run directory) with what this command line trains, before anything
is written: another architecture, dataset, image size or class list is a usage error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from collections.abc import Callable
from typing import Any

from trainers.cli import FailedError, UsageError

AGREE_EVERY = 20  # steps between the workers' agreements on a time-based save
_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class CheckpointEvery:
    """Save every ``steps`` steps, or every ``seconds`` of training (one of them is set)."""

    steps: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> CheckpointEvery | None:
        """``"500"`` (steps), ``"10m"``, ``"90s"``, ``"1h"``; ``None``/``""``/``"0"``: no mid-epoch saves.

        Raises:
            UsageError: anything else (one line naming the accepted forms).
        """
        if text is None or not str(text).strip() or str(text).strip() == "0":
            return None
        match = _PATTERN.match(str(text))
        hint = "give a number of steps (500) or a duration (90s, 10m, 1h)"
        if not match:
            raise UsageError(f"--checkpoint_every {text!r} is not understood: {hint}.")
        value, unit = float(match.group(1)), (match.group(2) or "").lower()
        if not unit:
            if value != int(value) or value < 1:
                raise UsageError(f"--checkpoint_every {text!r}: a number of steps must be a positive integer; {hint}.")
            return cls(steps=int(value))
        seconds = value * _UNITS[unit]
        if seconds <= 0 or not math.isfinite(seconds):
            raise UsageError(f"--checkpoint_every {text!r} must be positive; {hint}.")
        return cls(seconds=seconds)

    def describe(self) -> str:
        if self.steps is not None:
            return f"every {self.steps} steps"
        return f"every {self.seconds:g} s of training"


class SaveClock:
    """When the next mid-epoch save is due.

    Args:
        every: the interval.
        agree: ``flag -> bool``, the OR of every worker's flag (a collective under several
            workers; ``None`` with one process). Called every ``agree_every`` steps
            (default :data:`AGREE_EVERY`).
        clock: the time source (tests pass a fake one).
    """

    def __init__(
        self, every: CheckpointEvery, agree: Callable[[bool], bool] | None = None,
        clock: Callable[[], float] = time.time, agree_every: int = AGREE_EVERY,
    ) -> None:  # fmt: skip
        self.every = every
        self.agree = agree
        self.clock = clock
        self.agree_every = max(1, int(agree_every))
        self.last = clock()

    def saved(self) -> None:
        """A save happened (mid-epoch or at an epoch's end)."""
        self.last = self.clock()

    def due(self, global_step: int) -> bool:
        """Whether to save after ``global_step`` (the optimizer's step count)."""
        if self.every.steps is not None:
            return global_step % self.every.steps == 0
        late = self.clock() - self.last >= float(self.every.seconds or 0.0)
        if self.agree is None:
            return late
        if global_step % self.agree_every:
            return False
        return bool(self.agree(late))


# ----------------------------------------------------------------------------- resume checks


def run_identity(*, arch: str, dataset: str, image_size: int, channels: int, class_names: list[str]) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    return {
        "arch": arch, "dataset": dataset, "image_size": int(image_size), "channels": int(channels),
        "class_names": list(class_names),
    }  # fmt: skip


def _read(path: str) -> dict[str, Any] | None:
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise FailedError(
            f"cannot read {path}: {e}; the run directory is damaged (choose another --model_dir)."
        ) from None
    return data if isinstance(data, dict) else None


def saved_identity(model_dir: str) -> dict[str, Any] | None:
    """The identity of the run saved in ``model_dir`` (``state.json``, else ``plan.json``); ``None`` if none."""
    state = _read(os.path.join(model_dir, "state.json"))
    if state and isinstance(state.get("identity"), dict):
        return state["identity"]
    plan = _read(os.path.join(model_dir, "plan.json"))
    if not plan:
        return None
    found = {k: plan[k] for k in ("arch", "dataset", "image_size", "class_names") if k in plan}
    return found or None


def check_resumable(model_dir: str, identity: dict[str, Any]) -> None:
    """Raise :class:`UsageError` if ``model_dir`` holds a run that this command cannot continue.

    Only what the saved run recorded is compared (runs saved before ``channels`` was
    recorded are compared on the rest).
    """
    saved = saved_identity(model_dir)
    if not saved:
        return
    labels = {"arch": "--arch", "dataset": "--dataset", "image_size": "--image_size", "channels": "input channels",
              "class_names": "classes"}  # fmt: skip
    for key, flag in labels.items():
        if key in saved and key in identity and saved[key] != identity[key]:
            was, now = _short(saved[key]), _short(identity[key])
            raise UsageError(
                f"--resume: {model_dir} holds a run with {flag} {was}, this command has {now}; pass the saved run's "
                f"settings to continue it, or another --model_dir to start a new run."
            )


def _short(value: Any) -> str:
    if isinstance(value, list):
        text = ",".join(map(str, value))
        return f"[{text[:60]}{'...' if len(text) > 60 else ''}] ({len(value)} classes)"
    return str(value)
