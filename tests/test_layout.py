"""The package's layout: no import cycles, a static declaration of every public builder,
and command lines that answer ``--help`` without importing Keras or TensorFlow."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import pydoc
import subprocess
import sys
from pathlib import Path

import keras_archs
from keras_archs import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keras_archs", "trainers")
STUB = ROOT / "keras_archs" / "__init__.pyi"


def module_files() -> dict[str, Path]:
    """Every module of the checked packages by dotted name (a package by its ``__init__.py``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The checked modules ``name`` imports anywhere in its source: at module level, inside
    functions, and by ``importlib.import_module("literal")``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(node.args[0].value)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    # keras_archs.models imports its family modules by name (keras_archs.models.families()).
    graph["keras_archs.models"] |= {m for m in modules if m.startswith("keras_archs.models.")}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for component in components:
        start = min(component)
        path, seen = [start], {start}
        while True:  # walk inside the component until a module repeats
            nxt = min(n for n in graph[path[-1]] if n in component)
            if nxt in seen:
                cycles.append([*path[path.index(nxt) :], nxt])
                break
            path.append(nxt)
            seen.add(nxt)
    return cycles


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    """keras_archs and trainers import in one direction only, counting imports inside
    functions too (an import moved into a function still depends on its module)."""
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_library_does_not_import_the_trainers():
    graph = import_graph()
    offenders = {m: sorted(i for i in graph[m] if i.startswith("trainers")) for m in graph if m.startswith("keras_archs")}
    assert not {m: i for m, i in offenders.items() if i}


def _stub_functions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(STUB.read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_builder_is_declared_statically_with_its_docstring():
    """``keras_archs/__init__.pyi`` declares every registry builder with the signature and the
    docstring it has at run time, and re-exports the package's other public names."""
    functions = _stub_functions()
    for spec in keras_archs.list_models():
        name = spec.builder.__name__
        assert name in functions, f"{name} is not in {STUB.name}: run python scripts/make_stubs.py"
        node = functions[name]
        doc = ast.get_docstring(node)
        assert doc and spec.name in doc and ("RGB pixels" in doc or "no reference ImageNet weights" in doc), name
        parameters = [a.arg for a in node.args.args] + [a.arg for a in node.args.kwonlyargs]
        assert parameters == list(inspect.signature(spec.builder).parameters), name
    stub = ast.parse(STUB.read_text())
    imported = {alias.asname for node in stub.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert set(keras_archs.EXPORTS) <= imported


def test_stub_is_up_to_date():
    loader = importlib.util.spec_from_file_location("make_stubs", ROOT / "scripts" / "make_stubs.py")
    make_stubs = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(make_stubs)
    assert make_stubs.stub_text() == STUB.read_text(), f"{STUB.name} is out of date: run python scripts/make_stubs.py"


def test_help_shows_the_keras_applications_signature_and_the_input_range():
    text = pydoc.render_doc(keras_archs.ResNet50, renderer=pydoc.plaintext)
    for argument in ("include_top", "weights", "input_tensor", "input_shape", "pooling", "classifier_activation"):
        assert f"{argument}:" in text
    assert "classes: 'int' = 1000" in text and "downsample: 'str' = '1x1'" in text
    assert "RGB pixels in [0, 255]" in " ".join(text.split())
    assert keras_archs.ResNet50 is registry.get_spec("resnet50").builder is registry.builders()["ResNet50"]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _imported(importtime_stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


def test_import_is_lazy():
    """``import keras_archs`` loads neither Keras nor a family module; a builder loads them."""
    result = _run("-X", "importtime", "-c", "import keras_archs")
    assert result.returncode == 0, result.stderr[-2000:]
    imported = _imported(result.stderr)
    assert "keras_archs" in imported
    assert not {m for m in imported if m.split(".")[0] in ("keras", "tensorflow") or m.startswith("keras_archs.")}
    script = "import sys, keras_archs; keras_archs.ResNet50; print('keras_archs.models.resnet' in sys.modules)"
    assert _run("-c", script).stdout.strip().splitlines()[-1] == "True"


def test_convert_help_imports_neither_keras_nor_tensorflow():
    result = _run("-X", "importtime", "-m", "keras_archs.convert", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--arch" in result.stdout
    imported = _imported(result.stderr)
    assert "keras_archs._cli" in imported
    assert not {m for m in imported if m.split(".")[0] in ("keras", "tensorflow", "torch", "h5py")}


def test_recorded_durations_decide_what_test_fast_leaves_out(tmp_path):
    """`--record-durations` writes each test's seconds (merging with what is there); a test recorded
    at FAST_SECONDS or more is marked slow, so `-m "not slow"` (make test-fast) leaves it out."""
    from conftest import FAST_SECONDS

    durations = tmp_path / "durations.json"
    durations.write_text(json.dumps({"elsewhere::kept": 1.0}))
    env = {**os.environ, "KERAS_ARCHS_TEST_DURATIONS": str(durations)}
    target = "tests/test_layout.py::test_no_import_cycles"
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", target]
    r = subprocess.run([*run, "--record-durations"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:]
    recorded = json.loads(durations.read_text())
    assert recorded["elsewhere::kept"] == 1.0 and recorded[target] >= 0
    durations.write_text(json.dumps({target: FAST_SECONDS}))
    r = subprocess.run([*run, "-m", "not slow", "--collect-only"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert "1 deselected" in r.stdout, r.stdout[-2000:]
