"""Each benchmark runs end to end in its quick mode (seconds) and writes what it promises.

The figures themselves are measured by running the benchmarks, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def test_time_to_accuracy_quick_mode_writes_curve_table_and_results(tmp_path):
    out = tmp_path / "tta"
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.time_to_accuracy", "--quick", "--output", str(out)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    (run,) = results["runs"]
    walls = [p["wall_seconds"] for p in run["points"]]
    assert [p["epoch"] for p in run["points"]] == [1, 2] and 0 < walls[0] < walls[1]
    assert all(0 <= p["test_accuracy"] <= 1 for p in run["points"])
    assert results["summary"][0]["label"] == "resnet20 / budgeted / 2 epochs"
    assert "time to 94%" in (out / "table.md").read_text() and "time to 94%" in r.stdout
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(out) if p.startswith(".")], "worker files left behind"
