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


def test_input_pipeline_quick_mode_times_both_sides_alternately(tmp_path):
    from benchmarks import input_pipeline

    out = tmp_path / "pipeline.json"
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.input_pipeline", *input_pipeline.QUICK_ARGS, "--json", str(out)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["source"]["images"] == 32
    assert [row["policy"] for row in report["policies"]] == ["simple", "randaugment"]
    for row in report["policies"]:
        for side in ("ours", "torchvision"):
            assert 0 < row[side]["min"] <= row[side]["median"] <= row[side]["max"]
            assert row[side]["cpu_ms_median"] > 0
        assert abs(row["ratio"] - row["ours"]["median"] / row["torchvision"]["median"]) < 1e-9
    assert "ours/tv" in r.stdout and "randaugment" in r.stdout


def test_tflite_latency_quick_mode_runs_the_same_network_in_both_runtimes(tmp_path):
    from benchmarks import tflite_latency

    out = tmp_path / "latency.json"
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.tflite_latency", *tflite_latency.QUICK_ARGS, "--json", str(out)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    (model,) = json.loads(out.read_text())["models"]
    row = model["threads"]["1"]
    assert row["parity_fp32"] < 1e-4  # torchvision's weights in ours: the same logits
    for side in ("tflite_fp32", "tflite_int8", "onnxruntime"):
        assert len(row[side]["ms"]) == 5 and 0 < row[side]["min"] <= row[side]["median"]
    # The ceil-mode pool on an even size is one SAME max pooling: no slices or extra concatenations.
    assert model["tflite_fp32_ops"] == {"CONCATENATION": 8, "CONV_2D": 26, "MAX_POOL_2D": 3, "MEAN": 1}
    assert "fp32/ort med" in r.stdout


def test_training_throughput_quick_mode_times_every_side_and_precision(tmp_path):
    from benchmarks import training_throughput

    out = tmp_path / "throughput.json"
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.training_throughput", *training_throughput.QUICK_ARGS, "--json", str(out)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {(row["side"], row["precision"]): row for row in report["summary"]}
    sides = report["settings"]["sides"]
    assert {(s, "float32") for s in sides} | {("ours", "mixed_bfloat16"), ("keras", "mixed_bfloat16")} == set(rows)
    for row in rows.values():
        assert row["model"] == "resnet20" and row["rounds"] == 1
        assert 0 < row["min"] <= row["median"] <= row["max"] and row["cpu_ms_per_image"] > 0
    (comparison,) = report["comparisons"]
    ours, keras_ = rows[("ours", "float32")], rows[("keras", "float32")]
    assert abs(comparison["ours_over_keras"] - ours["median"] / keras_["median"]) < 1e-9
    assert "ours/keras" in r.stdout and "mixed_bfloat16" in r.stdout
