"""The convention every trainers command line follows (``run``, ``export``, ``predict``, ``prune``).

- ``--help`` prints the options and exits 0.
- Exit code 2 (:data:`EXIT_USAGE`) for a bad command line: an unknown flag, a malformed
  value, a file named on the command line that does not exist, an unknown architecture.
  One line on stderr, ``error: <the problem>; <the fix>``, and nothing written.
- Exit code 1 (:data:`EXIT_FAILURE`) when the work itself fails: a corrupt weights file,
  weights of another architecture, a conversion that cannot be done. One line on stderr too.
  A training run whose loss becomes NaN or infinite is the one failure with a code of its
  own, 3 (:data:`EXIT_DIVERGED`), so that scripts can tell it from a crash.

Library code raises :class:`UsageError` or :class:`FailedError` (or subclasses); the commands
turn them into the line and the exit code with :func:`run_command`. Anything else is a bug
and keeps its traceback (Python exits with 1).

Every command hides TensorFlow's native start-up lines unless ``--verbose``
(:func:`quiet`).
"""

from __future__ import annotations

from types import ModuleType

from keras_archs._cli import (
    EXIT_FAILURE,
    EXIT_USAGE,
    ArgumentParser,
    FailedError,
    UsageError,
    first_line,
    report,
    run_command,
)

__all__ = [
    "EXIT_DIVERGED",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "ArgumentParser",
    "FailedError",
    "UsageError",
    "first_line",
    "quiet",
    "report",
    "run_command",
]

EXIT_DIVERGED = 3


def quiet() -> ModuleType:
    """:mod:`keras_archs._quiet` (importing the ``keras_archs`` package imports no
    TensorFlow, so the filter is in place before TensorFlow starts)."""
    from keras_archs import _quiet

    return _quiet
