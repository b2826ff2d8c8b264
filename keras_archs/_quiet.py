"""Keep TensorFlow's native start-up lines away from the user of the command-line tools.

Importing TensorFlow 2.21 prints, from C++, before any Python code can intervene::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. ...

(twice: two native libraries each log it) and, unless ``TF_CPP_MIN_LOG_LEVEL`` >= 1, the
``cpu_feature_guard.cc`` note about CPU instructions. ``TF_CPP_MIN_LOG_LEVEL`` (even 3)
does not silence the first two: they are logged before TensorFlow reads it.
``TF_ENABLE_ONEDNN_OPTS=0`` would, but it turns off oneDNN's faster kernels, so it is not
touched. What works is redirecting file descriptor 2 while TensorFlow is imported:
:func:`import_tensorflow` does that, then writes back every captured line that is not one
of these (:data:`NOISE`), so real errors still show. A command line calls it before anything
imports TensorFlow (Keras does); a ``--verbose`` flag skips the filter. LiteRT's "Created
TensorFlow Lite XNNPACK delegate" line, printed whenever an interpreter is made, is dropped
the same way (:func:`quietly`).

Only the standard library is imported here, so that this module can act before TensorFlow
is loaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType

# Substrings of the native start-up lines that are dropped (all of TensorFlow's import-time
# INFO/WARNING chatter seen with tensorflow-cpu 2.21 on x86-64).
NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    "Created TensorFlow Lite XNNPACK delegate",
)
_verbose = False


def set_verbose(verbose: bool) -> None:
    """Let native log lines through (``--verbose``) or filter them (the default)."""
    global _verbose
    _verbose = bool(verbose)


def is_noise(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's start-up lines (:data:`NOISE`)."""
    return any(pattern in line for pattern in NOISE)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Capture file descriptor 2 (native and Python writes alike) for the duration of the
    block, then write back the captured lines that are not :func:`is_noise`."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (a detached process): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not is_noise(line)]
            if kept:
                os.write(2, "".join(kept).encode("utf-8"))


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """:func:`filtered_stderr`, unless :func:`set_verbose` asked for everything."""
    if _verbose:
        yield
        return
    with filtered_stderr():
        yield


def import_tensorflow(verbose: bool = False) -> ModuleType:
    """Import TensorFlow (once), dropping its start-up lines unless ``verbose``.

    Call it before anything else imports TensorFlow (``import keras`` does, with the
    TensorFlow backend); once TensorFlow is loaded this is a plain import.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    set_verbose(verbose)
    with quietly():
        import tensorflow
    return tensorflow
