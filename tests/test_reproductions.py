"""The reproduction scripts: each quick mode runs end to end into a temporary directory and writes its
report section and plot; the verdict rules and the report rendering are checked without training.

The quick runs go through ``python -m trainers.run`` in subprocesses (tiny seeded subsets, 1 epoch,
16x16 images), so they share one xdist worker. None of them touches the tracked ``docs/`` files.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from reproductions import common, degradation, precision, report, transfer, wrn_dropout

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRACKED = (ROOT / "docs" / "reproductions.md", ROOT / "docs" / "reproductions")


def _fingerprint() -> dict[str, str]:
    """Hashes of the tracked report files (absent files included), to show the tests leave them alone."""
    files = [TRACKED[0], *sorted(TRACKED[1].glob("*"))] if TRACKED[1].exists() else [TRACKED[0]]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "absent" for p in files}


def _run_quick(module: str, output: Path, *extra: str) -> dict:
    """Run ``python -m reproductions.<module> --quick --output <output>``; returns its result JSON."""
    before = _fingerprint()
    proc = subprocess.run(
        [sys.executable, "-m", f"reproductions.{module}", "--quick", "--output", str(output), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _fingerprint() == before, "a quick run changed the tracked docs/ files"
    result = json.loads((output / common.ARTIFACTS / f"{module}.json").read_text())
    assert result["mode"] == "quick"
    return result


def _check_report(output: Path, result: dict) -> None:
    """The plot is a PNG, and the report has the verdict line, the table rows and the plot link."""
    png = output / common.ARTIFACTS / result["plot"]
    assert png.exists() and png.read_bytes()[:8] == PNG_MAGIC
    md = (output / common.REPORT_NAME).read_text()
    assert f"**Verdict: {result['verdict']}.** {result['reason']}" in md
    assert result["verdict"] in common.VERDICTS
    for row in result["table"]["rows"]:
        assert "| " + " | ".join(row) + " |" in md
    assert f"({common.ARTIFACTS}/{result['plot']})" in md
    assert result["command"].startswith(f"python -m reproductions.{result['name']} --quick")
    for run in result["runs"]:
        assert run["command"] in md
        assert str(ROOT) not in run["command"]


@pytest.mark.xdist_group("reproductions")
def test_degradation_quick(tmp_path: Path) -> None:
    result = _run_quick("degradation", tmp_path)
    assert [r["name"] for r in result["runs"]] == list(degradation.ARCHS)
    _check_report(tmp_path, result)
    for run in result["runs"]:  # the table's final training error is the last epoch's running error
        row = next(r for r in result["table"]["rows"] if r[0] == run["name"])
        assert row[2] == common.fmt(run["train_error"][-1])
        assert row[4] == common.fmt(run["test_error"])


@pytest.mark.xdist_group("reproductions")
def test_wrn_dropout_quick(tmp_path: Path) -> None:
    result = _run_quick("wrn_dropout", tmp_path, "--seeds", "0")
    _check_report(tmp_path, result)
    assert {r["name"] for r in result["runs"]} == {wrn_dropout.run_name(p, 0) for p in wrn_dropout.DROPOUTS}
    assert any("--dropout 0 " in r["command"] for r in result["runs"])
    assert any("--dropout 0.3 " in r["command"] for r in result["runs"])


@pytest.mark.xdist_group("reproductions")
def test_transfer_quick(tmp_path: Path) -> None:
    result = _run_quick("transfer", tmp_path)
    _check_report(tmp_path, result)
    names = [r["name"] for r in result["runs"]]
    assert names == ["pretrain_0-4", "finetune_40", "scratch_40"]
    finetune, scratch = result["runs"][1], result["runs"][2]
    assert "--finetune full" in finetune["command"] and f"--lr {transfer.FINETUNE_LR:g}" in finetune["command"]
    assert "<runs_dir>/pretrain_0-4/best.keras" in finetune["command"]
    assert finetune["total_steps"] == scratch["total_steps"]  # same number of steps from both starts
    assert result["gains"]["40"] == pytest.approx(scratch["test_error"] - finetune["test_error"], abs=1e-3)


@pytest.mark.xdist_group("reproductions")
def test_precision_quick(tmp_path: Path) -> None:
    result = _run_quick("precision", tmp_path)
    _check_report(tmp_path, result)
    assert [r["name"] for r in result["runs"]] == [precision.run_name(p, 0) for p in precision.PRECISIONS]
    for run, policy in zip(result["runs"], precision.PRECISIONS):
        assert f"--precision {policy} " in run["command"]
    rows = {row[0]: row for row in result["table"]["rows"] if row[1] == "0"}
    for run in result["runs"]:  # the table's test accuracy is the run's own
        assert rows[run["command"].split("--precision ")[1].split()[0]][2] == common.fmt(100 - run["test_error"])
    assert result["stats"]["speedup_median"] > 0


def test_quick_output_defaults_to_a_temporary_directory() -> None:
    opts = common.parse_options("degradation", "x", ["--quick"])
    assert opts.output != common.DOCS.resolve() and common.DOCS.resolve() not in opts.output.parents
    assert opts.runs_dir == opts.output / "runs"
    full = common.parse_options("degradation", "x", [])
    assert full.output == common.DOCS.resolve() and full.runs_dir == (common.FULL_RUNS / "degradation").resolve()
    opts.output.rmdir()


def test_skips_finished_runs(tmp_path: Path) -> None:
    """A run whose metrics.json exists is read back, not re-run (how interrupted experiments resume)."""
    opts = common.parse_options("degradation", "x", ["--quick", "--output", str(tmp_path)])
    run_dir = opts.runs_dir / "plain20"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"test_accuracy": 0.9, "examples": 10000, "chosen_epoch": 2}))
    (run_dir / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy\n1,1.0,0.5,1.1,0.6\n2,0.5,0.8,0.6,0.85\n")
    run = common.run_trainer("plain20", ["--arch", "plain20"], opts)
    assert run.status == "ok" and run.test_error == pytest.approx(10.0)
    assert run.summary()["train_error"] == [50.0, 20.0] and run.summary()["val_error"] == [40.0, 15.0]


class _Fake(common.RunResult):
    """A finished run with a given final training error (percent)."""

    def __init__(self, train_error: float) -> None:
        super().__init__("x", "cmd", "ok", {"test_accuracy": 0.9}, [{"accuracy": 1 - train_error / 100}], None, 1.0)


def test_degradation_verdict_rule() -> None:
    runs = {"plain20": _Fake(10), "plain56": _Fake(20), "resnet20": _Fake(10), "resnet56": _Fake(5)}
    assert degradation.verdict(runs)[0] == "reproduced"
    runs["resnet56"] = _Fake(15)
    assert degradation.verdict(runs)[0] == "not reproduced"
    runs["resnet56"] = _Fake(10.5)  # within the margin
    assert degradation.verdict(runs)[0] == "inconclusive"


def test_wrn_and_transfer_verdict_rules() -> None:
    assert wrn_dropout.verdict({0.0: [6.0, 6.2, 6.1], 0.3: [5.0, 5.1, 5.2]})[0] == "reproduced"
    assert wrn_dropout.verdict({0.0: [5.0, 5.1, 5.2], 0.3: [6.0, 6.2, 6.1]})[0] == "not reproduced"
    assert wrn_dropout.verdict({0.0: [5.0, 6.0, 7.0], 0.3: [5.5, 6.5, 5.0]})[0] == "inconclusive"
    assert wrn_dropout.verdict({0.0: [5.0, math.nan, 7.0], 0.3: [5.5, 6.5, 5.0]})[0] == "inconclusive"
    assert transfer.verdict({100: 3.0, 300: 1.0, 1000: 0.2})[0] == "reproduced"
    assert transfer.verdict({100: -1.0, 300: 0.0, 1000: 0.0})[0] == "not reproduced"
    assert transfer.verdict({100: 0.2, 300: 0.0, 1000: 0.0})[0] == "inconclusive"
    assert transfer.verdict({100: 1.0, 300: 2.0, 1000: 3.0})[0] == "inconclusive"


def test_precision_verdict_rule() -> None:
    same = {"float32": [90.1, 90.4, 90.2], "mixed_bfloat16": [90.3, 90.0, 90.2]}
    assert precision.verdict(same)[0] == "reproduced"
    worse = {"float32": [90.1, 90.2, 90.15], "mixed_bfloat16": [89.0, 89.1, 89.05]}
    assert precision.verdict(worse)[0] == "not reproduced"
    tight = {"float32": [90.0, 90.0, 90.0], "mixed_bfloat16": [90.15, 90.15, 90.15]}  # no spread, under the margin
    assert precision.verdict(tight)[0] == "reproduced"
    assert precision.verdict({"float32": [90.0, math.nan], "mixed_bfloat16": [90.0, 90.1]})[0] == "inconclusive"


def test_report_renders_every_result(tmp_path: Path) -> None:
    art = tmp_path / common.ARTIFACTS
    art.mkdir()
    base = {"claim": "C", "source": "S", "setup": "U", "command": "python -m reproductions.x", "mode": "full",
            "date": "2026-11-29", "wall_seconds": 120.0, "seeds": [0], "plot": "x.png", "reason": "R.",
            "table": {"header": ["a", "b"], "rows": [["1.23", "4.56"]]}, "runs": [{"command": "python -m trainers.run"}]}
    for name, verdict in (("transfer", "inconclusive"), ("degradation", "reproduced")):
        (art / f"{name}.json").write_text(json.dumps({**base, "name": name, "title": f"T {name}", "verdict": verdict}))
    md = report.write_report(tmp_path).read_text()
    assert md.index("## T degradation") < md.index("## T transfer")  # the report's order, not the files'
    assert "**Verdict: reproduced.** R." in md and "**Verdict: inconclusive.** R." in md
    assert "| 1.23 | 4.56 |" in md and "wall time 2.0 min" in md and "](reproductions/x.png)" in md
