"""Shared machinery of the reproductions: options, trainer runs as subprocesses, results files.

Every training run is ``python -m trainers.run <flags> --model_dir <runs_dir>/<name>`` in a fresh
process; only the files it writes are read back (``metrics.json``, ``history.csv``,
``plan.json``). Long experiments survive interruption: a run whose ``metrics.json`` exists is
skipped, and a run with saved state (``state.json``) is continued with the trainer's ``--resume``.
A failed run (for example while the code is being edited) is retried after a pause; a run that
stops on a NaN/inf loss (exit code 3) is recorded as diverged and not retried.

Results go to ``<output>/reproductions/<experiment>.json`` (and its plot beside it), and
``<output>/reproductions.md`` is rebuilt from every JSON file there (``reproductions.report``).
Full mode writes to ``docs/``; ``--quick`` writes to a new temporary directory unless
``--output`` says otherwise.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REPORT_NAME = "reproductions.md"
ARTIFACTS = "reproductions"
FULL_RUNS = ROOT / "runs" / "reproductions"
EXIT_DIVERGED = 3
VERDICTS = ("reproduced", "not reproduced", "inconclusive")


@dataclasses.dataclass(frozen=True)
class Options:
    """Resolved command-line options of one experiment.

    Attributes:
        name: the experiment's name (its module and JSON file name).
        quick: the tiny smoke-test version.
        output: directory receiving ``reproductions.md`` and ``reproductions/<name>.json|png``.
        runs_dir: directory of the trainer runs (one ``--model_dir`` per run).
        retries: how many times a failed trainer run is retried.
        retry_wait: seconds to wait before a retry.
        command: the command line as typed, for the report.
        extra: the experiment's own flags (``None`` when not given).
    """

    name: str
    quick: bool
    output: Path
    runs_dir: Path
    retries: int
    retry_wait: float
    command: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def artifacts(self) -> Path:
        """Directory of this output's JSON results and plots."""
        return self.output / ARTIFACTS


def parse_options(
    name: str,
    description: str,
    argv: Sequence[str] | None = None,
    extra: Sequence[tuple[str, dict[str, Any]]] = (),
) -> Options:
    """Parse the flags every experiment shares (and its own ``extra`` ones, as ``add_argument`` name and
    keywords), and resolve the output and runs directories."""
    parser = argparse.ArgumentParser(prog=f"python -m reproductions.{name}", description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny subsets and 1 epoch (a couple of minutes); writes a report and plot all the same")
    parser.add_argument("--output", type=Path, default=None,
                        help="directory for reproductions.md and reproductions/<name>.json|png (default: docs/ in "
                             "full mode, a new temporary directory with --quick)")
    parser.add_argument("--runs_dir", type=Path, default=None,
                        help=f"where the trainer runs go (default: runs/reproductions/{name} in full mode, "
                             "<output>/runs with --quick); finished runs there are reused")
    parser.add_argument("--retries", type=int, default=None,
                        help="retries of a failed trainer run (default: 3, 1 with --quick)")
    parser.add_argument("--retry_wait", type=float, default=None,
                        help="seconds before a retry (default: 120, 10 with --quick)")
    for flag, kwargs in extra:
        parser.add_argument(flag, **kwargs)
    args = parser.parse_args(argv)
    if args.output is None:
        output = Path(tempfile.mkdtemp(prefix=f"reproductions_{name}_")) if args.quick else DOCS
    else:
        output = args.output
    runs_dir = args.runs_dir or ((output / "runs") if args.quick else FULL_RUNS / name)
    typed = shlex.join(list(sys.argv[1:] if argv is None else argv))
    return Options(
        name=name,
        quick=args.quick,
        output=output.resolve(),
        runs_dir=runs_dir.resolve(),
        retries=args.retries if args.retries is not None else (1 if args.quick else 3),
        retry_wait=args.retry_wait if args.retry_wait is not None else (10.0 if args.quick else 120.0),
        command=f"python -m reproductions.{name}" + (f" {typed}" if typed else ""),
        extra={flag.lstrip("-"): getattr(args, flag.lstrip("-")) for flag, _ in extra},
    )


def parse_seeded_options(
    name: str, description: str, argv: Sequence[str] | None, full: dict[str, Any], quick: dict[str, Any],
    quick_extra: Sequence[str] = (),
) -> tuple[Options, dict[str, Any], list[str]]:
    """:func:`parse_options` with a ``--seeds`` flag, for the experiments run over several seeds.

    Returns the options, the configuration (``quick`` with ``--quick``, else ``full``; ``seeds``
    replaced by ``--seeds`` when given) and the extra trainer flags (``quick_extra`` with ``--quick``).
    """
    seeds_help = (f"seeds (default: {' '.join(map(str, full['seeds']))}; "
                  f"{' '.join(map(str, quick['seeds']))} with --quick)")  # fmt: skip
    opts = parse_options(name, description, argv,
                         extra=[("--seeds", {"type": int, "nargs": "+", "default": None, "help": seeds_help})])  # fmt: skip
    cfg = dict(quick if opts.quick else full)
    if opts.extra["seeds"]:
        cfg["seeds"] = tuple(opts.extra["seeds"])
    return opts, cfg, list(quick_extra) if opts.quick else []


def shown_path(path: Path, runs_dir: Path | None = None) -> str:
    """A path for the reports: relative to the project when inside it, else ``<runs_dir>/...`` or its name."""
    path = path.resolve()
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        pass
    if runs_dir is not None and path.is_relative_to(runs_dir.resolve()):
        return "<runs_dir>/" + path.relative_to(runs_dir.resolve()).as_posix()
    return path.name


def shown_command(flags: Sequence[str], runs_dir: Path) -> str:
    """The trainer command for the reports, with paths under the runs directory shown relative to the project."""
    runs = str(runs_dir)
    shown = [shown_path(Path(a), runs_dir) if a.startswith(runs) else a for a in flags]
    return shlex.join(["python", "-m", "trainers.run", *shown])


@dataclasses.dataclass
class RunResult:
    """What one trainer run left behind.

    Attributes:
        name: the run's name (its folder under the runs directory).
        command: the trainer command, with the model directory as shown in reports.
        status: ``ok`` or ``diverged`` (NaN/inf loss, exit code 3).
        metrics: ``metrics.json`` (None when diverged).
        history: ``history.csv`` rows as floats, one per epoch.
        plan: ``plan.json`` (the resolved recipe and split sizes).
        wall_seconds: wall time of the trainer processes, summed over attempts and resumptions.
    """

    name: str
    command: str
    status: str
    metrics: dict[str, Any] | None
    history: list[dict[str, float]]
    plan: dict[str, Any] | None
    wall_seconds: float

    @property
    def test_error(self) -> float:
        """Test error in percent (NaN when the run diverged)."""
        return error_pct(self.metrics["test_accuracy"]) if self.metrics else math.nan

    def column(self, key: str) -> list[float]:
        """One column of the history, e.g. ``accuracy`` or ``val_accuracy``."""
        return [row.get(key, math.nan) for row in self.history]

    def summary(self) -> dict[str, Any]:
        """The run as JSON: command, status, test figures, wall time and per-epoch errors in percent."""
        return {
            "name": self.name,
            "command": self.command,
            "status": self.status,
            "test_error": None if math.isnan(self.test_error) else round(self.test_error, 4),
            "test_accuracy": self.metrics["test_accuracy"] if self.metrics else None,
            "test_examples": self.metrics.get("examples") if self.metrics else None,
            "chosen_epoch": self.metrics.get("chosen_epoch") if self.metrics else None,
            "epochs": len(self.history),
            "splits": (self.plan or {}).get("splits"),
            "total_steps": (self.plan or {}).get("total_steps"),
            "wall_seconds": round(self.wall_seconds, 1),
            "train_error": [round(error_pct(a), 4) for a in self.column("accuracy")],
            "val_error": [round(error_pct(a), 4) for a in self.column("val_accuracy")],
            "train_loss": [round(v, 5) for v in self.column("loss")],
            "val_loss": [round(v, 5) for v in self.column("val_loss")],
        }


def error_pct(accuracy: float) -> float:
    """Error rate in percent from an accuracy in [0, 1]."""
    return 100.0 * (1.0 - float(accuracy))


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content, None when it does not exist."""
    return json.loads(path.read_text()) if path.exists() else None


def _read_history(model_dir: Path) -> list[dict[str, float]]:
    """The trainer's ``history.csv`` (one row per finished epoch) as floats; empty when absent."""
    path = model_dir / "history.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(f)]


def _add_wall(path: Path, seconds: float) -> float:
    """Add ``seconds`` to the wall-time total kept in ``path`` (across attempts and resumptions); the new total."""
    total = float((_read_json(path) or {}).get("seconds", 0.0)) + seconds
    path.write_text(json.dumps({"seconds": total}))
    return total


def run_trainer(name: str, flags: Sequence[str], opts: Options) -> RunResult:
    """Run ``python -m trainers.run <flags>`` into ``<runs_dir>/<name>`` unless it already finished.

    Args:
        name: the run's folder name.
        flags: trainer flags, without ``--model_dir`` and ``--resume``.
        opts: the experiment's options (runs directory, retries).

    Returns:
        The run's results, read from the files the trainer wrote.

    Raises:
        RuntimeError: the run failed more than ``opts.retries`` times for another reason than divergence.
    """
    opts.runs_dir.mkdir(parents=True, exist_ok=True)
    model_dir = opts.runs_dir / name
    wall_file = opts.runs_dir / f"{name}.wall.json"
    diverged_file = opts.runs_dir / f"{name}.diverged.json"
    log_file = opts.runs_dir / f"{name}.log"
    command = shown_command([*flags, "--model_dir", str(model_dir)], opts.runs_dir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    failures = 0
    while not (model_dir / "metrics.json").exists() and not diverged_file.exists():
        args = [*flags, "--model_dir", str(model_dir)]
        resume = (model_dir / "state.json").exists()
        if resume:
            args.append("--resume")
        print(f"[{opts.name}] {'resuming' if resume else 'running'} {name}: {command}", flush=True)
        start = time.time()
        with log_file.open("a") as log:
            code = subprocess.call([sys.executable, "-m", "trainers.run", *args], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        total = _add_wall(wall_file, time.time() - start)
        if code == 0 and (model_dir / "metrics.json").exists():
            print(f"[{opts.name}] {name} done in {total:.0f}s", flush=True)
            break
        if code == EXIT_DIVERGED:
            diverged_file.write_text(json.dumps({"exit_code": code}))
            print(f"[{opts.name}] {name} diverged (NaN/inf loss); recorded as such", flush=True)
            break
        failures += 1
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-5:])
        if failures > opts.retries:
            raise RuntimeError(f"{name} failed with exit code {code} ({failures} attempts); last lines of {log_file}:\n"
                               f"{tail}")  # fmt: skip
        print(f"[{opts.name}] {name} failed (exit {code}), retry {failures}/{opts.retries} in {opts.retry_wait:.0f}s:\n"
              f"{tail}", flush=True)  # fmt: skip
        time.sleep(opts.retry_wait)
    return RunResult(
        name=name,
        command=command,
        status="diverged" if diverged_file.exists() else "ok",
        metrics=_read_json(model_dir / "metrics.json"),
        history=_read_history(model_dir),
        plan=_read_json(model_dir / "plan.json"),
        wall_seconds=float((_read_json(wall_file) or {}).get("seconds", 0.0)),
    )


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for the report tables (``-`` when missing or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def write_result(opts: Options, result: dict[str, Any], runs: Sequence[RunResult]) -> Path:
    """Complete and write ``<artifacts>/<name>.json``, then rebuild the report; returns the JSON path.

    ``result`` holds the experiment's fields (title, claim, source, setup, seeds, table, plot,
    verdict, reason, notes); this adds the mode, the command, the date, the wall time and the runs.
    """
    from reproductions import report

    if result["verdict"] not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {result['verdict']!r}")
    opts.artifacts.mkdir(parents=True, exist_ok=True)
    full = {
        "name": opts.name,
        "mode": "quick" if opts.quick else "full",
        "command": opts.command,
        "date": datetime.date.today().isoformat(),
        "wall_seconds": round(sum(r.wall_seconds for r in runs), 1),
        **result,
        "runs": [r.summary() for r in runs],
    }
    path = opts.artifacts / f"{opts.name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(full, indent=1) + "\n")
    tmp.replace(path)
    report_path = report.write_report(opts.output)
    print(f"[{opts.name}] verdict: {result['verdict']}. {result['reason']}", flush=True)
    print(f"[{opts.name}] wrote {path} and {report_path}", flush=True)
    return path
