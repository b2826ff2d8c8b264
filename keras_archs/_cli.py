"""The command-line convention of ``python -m keras_archs`` and ``python -m keras_archs.convert``
(the trainers' command lines follow the same one).

- ``--help`` prints the options and exits 0, without importing Keras or TensorFlow.
- Exit code 2 (:data:`EXIT_USAGE`) for a bad command line: an unknown flag, a malformed
  value, an unknown architecture or family, a file named on the command line that does not
  exist; one line on stderr, ``error: <the problem>; <the fix>``.
- Exit code 1 (:data:`EXIT_FAILURE`) when the work fails (a corrupt weights file, weights of
  another architecture); one line on stderr too.

Only the standard library is imported here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(ValueError):
    """A bad command line: exit code 2."""


class FailedError(RuntimeError):
    """The work failed (a corrupt or mismatched file): one line, exit code :attr:`exit_code`."""

    exit_code = EXIT_FAILURE


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are the convention's one line (argparse prints the usage
    block first; this line says where the options are listed instead)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message}; `{self.prog} --help` lists the options.\n")


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name if the message is empty)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def report(error: BaseException | str, code: int) -> int:
    """Print ``error: <message>`` on one line of stderr and return ``code``.

    Example:
        >>> report("--from x.pth: no such file; pass an existing file", EXIT_USAGE)
        2
    """
    print(f"error: {error if isinstance(error, str) else first_line(error)}", file=sys.stderr)
    return code


def run_command(main: Callable[[], int]) -> int:
    """``main()``, with :class:`UsageError` and :class:`FailedError` reported as one line and
    their exit code (anything else is a bug and keeps its traceback)."""
    try:
        return main()
    except UsageError as e:
        return report(e, EXIT_USAGE)
    except FailedError as e:
        return report(e, e.exit_code)
