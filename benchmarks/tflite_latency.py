"""Single-thread CPU latency and size: Keras vs TFLite float32 vs TFLite int8, side by side.

    python -m benchmarks.tflite_latency                       # the default models, 1 thread
    python -m benchmarks.tflite_latency --models lenet5:32 squeezenet1_1:64 --runs 200

Each model is ``name:size`` (registry name and input size, random init, 10 classes) or
``path.keras`` (e.g. a shipped ``saved_models/*/*.keras``). Per model: the Keras model
called through a ``tf.function`` (batch 1), and its TFLite float32 and int8 conversions
(trainers.deploy.exporter, int8 calibrated on Fashion-MNIST when present, else random pixels) run
by LiteRT with ``num_threads=1``. TensorFlow is limited to one intra-op and one inter-op
thread before it starts. Reported: median milliseconds per image, sizes (.keras file,
.tflite bytes) and the ratios Keras / TFLite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

DEFAULT_MODELS = ("lenet5:32", "squeezenet1_1:64", "mnasnet0_5:64", "shufflenet_v2_x0_5:64")
# `python -m benchmarks.run_all --quick`: fewer timed runs.
QUICK_ARGS = ("--runs", "20", "--warmup", "3")


def _time(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _tflite_latency(data: bytes, x, runs: int, warmup: int) -> float:
    from trainers.deploy import tflite

    interpreter = tflite.make_interpreter(data, num_threads=1)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()

    def invoke():
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return _time(invoke, runs, warmup)


def _model(spec: str):
    from trainers.deploy import exporter
    from trainers.models import load_keras

    if spec.endswith(".keras"):
        return load_keras(spec), spec
    name, _, size = spec.partition(":")
    kwargs = {"image_size": int(size)} if size else {}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return exporter.load_model(name, None, classes=10, **kwargs), None


def bench_one(spec: str, *, runs: int, warmup: int, calibration: int = 50) -> dict:
    import numpy as np
    import tensorflow as tf

    from trainers.data import preprocess
    from trainers.deploy import exporter, records, tflite
    from trainers.models import main_output, model_input_spec

    model, path = _model(spec)
    size, channels = model_input_spec(model)
    prep = preprocess.preprocessing_for(records.default_policy(model.name), size, channels)
    pixels, _, _ = exporter.parity_data(prep, calibration)
    x = pixels[:1].astype(np.float32)

    keras_fn = tf.function(lambda t: main_output(model(preprocess.normalize(t, prep), training=False)))
    keras_ms = _time(lambda: keras_fn(tf.constant(x)).numpy(), runs, warmup)
    with tempfile.TemporaryDirectory() as tmp:
        if path is None:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
        keras_bytes = os.path.getsize(path)
        saved = os.path.join(tmp, "sm")
        exporter.make_archive(model, prep, tflite_batch=1).write_out(saved, verbose=False)
        fp32 = tflite.convert_saved_model(saved, signature="preprocessed")

        def rep():
            for image in pixels:
                yield {"image": image[None]}

        int8 = tflite.convert_saved_model(saved, signature="preprocessed", quantize="int8", representative=rep)
    return {
        "model": f"{model.name}@{size}",
        "keras_ms": keras_ms,
        "fp32_ms": _tflite_latency(fp32, x, runs, warmup),
        "int8_ms": _tflite_latency(int8, x, runs, warmup),
        "keras_bytes": keras_bytes,
        "fp32_bytes": len(fp32),
        "int8_bytes": len(int8),
        "params": model.count_params(),
    }


def format_table(rows: list[dict]) -> str:
    header = ("model", "params", "keras ms", "tflite fp32 ms", "tflite int8 ms", "keras/fp32", "keras/int8",
              ".keras KB", "fp32 KB", "int8 KB", ".keras/int8")  # fmt: skip
    lines = []
    for r in rows:
        lines.append((
            r["model"], f"{r['params']:,}", f"{r['keras_ms']:.3f}", f"{r['fp32_ms']:.3f}", f"{r['int8_ms']:.3f}",
            f"{r['keras_ms'] / r['fp32_ms']:.1f}x", f"{r['keras_ms'] / r['int8_ms']:.1f}x",
            f"{r['keras_bytes'] / 1024:.0f}", f"{r['fp32_bytes'] / 1024:.0f}", f"{r['int8_bytes'] / 1024:.0f}",
            f"{r['keras_bytes'] / r['int8_bytes']:.1f}x",
        ))  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = ["  ".join(str(c).rjust(w) for c, w in zip(row, widths)) for row in (header, *lines)]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tflite_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="name:size or path.keras")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rows = []
    for spec in args.models:
        row = bench_one(spec, runs=args.runs, warmup=args.warmup)
        rows.append(row)
        print(f"  measured {row['model']}", file=sys.stderr, flush=True)
    print(f"1-thread CPU latency, batch 1, median of {args.runs} runs (tensorflow {tf.__version__}, LiteRT):")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
