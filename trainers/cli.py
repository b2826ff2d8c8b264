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

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import NoReturn

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3


class UsageError(ValueError):
    """A bad command line: exit code 2, one line naming the problem and the fix."""


class FailedError(RuntimeError):
    """The work failed (a corrupt or mismatched file, a diverged run): one line, exit code
    :attr:`exit_code`."""

    exit_code = EXIT_FAILURE


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name if the message is empty)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def report(error: BaseException | str, code: int) -> int:
    """Print ``error: <message>`` on one line of stderr and return ``code``."""
    message = error if isinstance(error, str) else first_line(error)
    print(f"error: {message}", file=sys.stderr)
    return code


def run_command(main: Callable[[], int]) -> int:
    """``main()``, with :class:`UsageError` and :class:`FailedError` reported as one line and
    their exit code."""
    try:
        return main()
    except UsageError as e:
        return report(e, EXIT_USAGE)
    except FailedError as e:
        return report(e, e.exit_code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the convention's one-line usage errors (argparse prints the usage block
    first; here the line says where the options are listed instead)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message}; `{self.prog} --help` lists the options.\n")


def quiet() -> ModuleType:
    """:mod:`keras_archs._quiet`, loaded without importing the ``keras_archs`` package: the
    package's ``__init__`` imports TensorFlow, and the module must act before that import."""
    name = "keras_archs._quiet"
    if name not in sys.modules:
        package = importlib.util.find_spec("keras_archs")
        path = os.path.join(next(iter(package.submodule_search_locations)), "_quiet.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
