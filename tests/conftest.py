"""Shared test set-up: quiet TensorFlow, fresh Keras state per test, registry helpers."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Folder-dataset indexes go to a temporary cache, not the user's ~/.cache/keras_archs
# (subprocesses and xdist workers inherit it); the process that made it removes it at exit.
if "KERAS_ARCHS_CACHE" not in os.environ:
    os.environ["KERAS_ARCHS_CACHE"] = tempfile.mkdtemp(prefix="keras_archs_cache_")
    atexit.register(shutil.rmtree, os.environ["KERAS_ARCHS_CACHE"], ignore_errors=True)

# torchvision must be imported before TensorFlow: the other order segfaults (TF 2.21
# and torchvision 0.29 / triton load clashing native libraries). Both are test
# dependencies (requirements-dev.txt), so conftest imports the references first.
import torch  # noqa: F401
import torchvision  # noqa: F401

# isort: split
import gc
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_archs

# Variants whose default-size build is heavy (hundreds of MB of weights); they run
# under the `slow` marker, which CI also runs.
SLOW_PARAMS = 150_000_000
# Above this size (BiT R101x3, R152x4: 1.5 and 3.7 GB of weights) models are only
# counted, without weight values; from SLOW_PARAMS up (BiT R50x3, R152x2: 0.8-0.9 GB
# files) the .keras round trip is left to BiT-R50x1, which has the same layers.
ROUND_TRIP_MAX_PARAMS = 300_000_000
# Variants so deep that building them takes tens of seconds (slow); their layers are
# those of shallower siblings, so the .keras round trip is left to those.
DEEPEST_VARIANTS = {"resnet1202", "densenet264", "densenet_bc_250_24", "densenet_bc_190_40"}


def trainable_count(model: keras.Model) -> int:
    """Trainable parameters: torchvision's ``sum(p.numel() for p in model.parameters())``."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def registry_params(names=None, max_params=None, min_params=0):
    """pytest params over registry names (``min_params`` to ``max_params`` parameters), heavy ones marked slow."""
    specs = keras_archs.list_models() if names is None else [keras_archs.get_spec(n) for n in names]
    specs = [s for s in specs if s.params >= min_params and (max_params is None or s.params <= max_params)]
    params = []
    for s in specs:
        marks = []
        if s.params > SLOW_PARAMS or s.name in DEEPEST_VARIANTS:
            marks.append(pytest.mark.slow)
        if s.params > SLOW_PARAMS:
            # Big builds share one xdist worker (--dist loadgroup): two never overlap in memory.
            marks.append(pytest.mark.xdist_group("big"))
        params.append(pytest.param(s.name, marks=marks, id=s.name))
    return params


def family_representatives():
    """The smallest variant of each family: where the per-family behaviour tests run."""
    smallest = {}
    for spec in keras_archs.list_models():
        if spec.family not in smallest or spec.params < smallest[spec.family].params:
            smallest[spec.family] = spec
    return [pytest.param(s.name, id=s.name) for s in smallest.values()]


def _built_big_model() -> bool:
    """Resident memory above 4 GiB (Linux /proc; the CI and dev machines are Linux)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") > 4 * 2**30


# `make test-fast` (-m "not slow") also leaves out every test whose last recorded setup + call took
# FAST_SECONDS or more (tests/durations.json, written by `make durations`); `make test` runs them all.
DURATIONS = os.environ.get("KERAS_ARCHS_TEST_DURATIONS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "durations.json"
)
FAST_SECONDS = 2.0
_measured: dict[str, float] = {}


def pytest_addoption(parser) -> None:
    parser.addoption("--record-durations", action="store_true",
                     help=f"write each test's setup + call seconds to {os.path.relpath(DURATIONS)} (make durations)")  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items) -> None:
    if not os.path.exists(DURATIONS):
        return
    with open(DURATIONS, encoding="utf-8") as f:
        recorded = json.load(f)
    for item in items:
        if recorded.get(item.nodeid, 0.0) >= FAST_SECONDS:
            item.add_marker(pytest.mark.slow)


def pytest_runtest_logreport(report) -> None:
    if report.when in ("setup", "call"):
        _measured[report.nodeid] = _measured.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus) -> None:
    if not session.config.getoption("--record-durations") or hasattr(session.config, "workerinput"):
        return  # xdist workers report to the controller, which writes
    recorded = {}
    if os.path.exists(DURATIONS):  # a partial run updates its own tests' figures only
        with open(DURATIONS, encoding="utf-8") as f:
            recorded = json.load(f)
    recorded.update({k: round(v, 2) for k, v in _measured.items()})
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(DURATIONS), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(recorded.items())), f, indent=0)
        f.write("\n")
    os.replace(tmp, DURATIONS)


def pytest_collection_finish(session) -> None:
    """Move everything imported so far (TensorFlow, PyTorch, Keras, the test modules: over 600,000
    objects) out of the garbage collector's reach: a full collection then walks only what the tests
    made (measured: 0.33 s per collection before, microseconds after). Without this the teardown below
    took 0.4-1.2 s in every test of a worker that had built a big model: a quarter of the suite."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.set_random_seed(1234)
    yield
    # Free the test's models (clear_session also collects garbage: only when the process is big).
    keras.backend.clear_session(free_memory=_built_big_model())


def assert_loads_in_fresh_process(model: keras.Model, x: np.ndarray, tmp_path) -> None:
    """Save ``model`` as .keras; a new process that imports keras_archs must load it in
    safe mode and compute exactly the same outputs on ``x``."""
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.asarray(model(x, training=False)))
    model.save(tmp_path / "m.keras")
    script = textwrap.dedent(
        f"""
        import numpy as np, keras, keras_archs
        m = keras.saving.load_model({str(tmp_path / "m.keras")!r}, safe_mode=True)
        y = m(np.load({str(tmp_path / "x.npy")!r}), training=False)
        np.testing.assert_array_equal(np.asarray(y), np.load({str(tmp_path / "y.npy")!r}))
        print("same")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "same" in out.stdout
