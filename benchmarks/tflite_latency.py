"""CPU inference latency, batch 1: TFLite float32 and int8 (LiteRT) against onnxruntime
running torchvision's counterpart of the same network, on one thread and on every core.

    python -m benchmarks.tflite_latency                                  # the compact models at 224, 1000 classes
    python -m benchmarks.tflite_latency --models resnet18 --threads 1 --runs 300 --json out.json
    python -m benchmarks.tflite_latency --models lenet5:32:10 squeezenet1_1:64:10 --keras --threads 1

Each model is ``name[:size[:classes]]`` (registry name; default size 224, 1000 classes) or
``path.keras``. Where torchvision has a model of that name, it is built with random weights
(seeded; random BatchNorm statistics, as the equivalence tests do), its state dict is loaded
into ours (``weights=<file>``, so both runtimes compute the same network: the relative
difference of their logits is reported), and it is exported with ``torch.onnx.export`` and
run by onnxruntime. Ours is converted from a SavedModel of the bare network (input
``[1, S, S, 3]``, already normalised, as torchvision's models take it) by the exporter's
converter (``trainers.deploy.tflite``, built-in ops only) to float32 and to int8 (calibrated
on ``--calibration`` real Fashion-MNIST test images, upscaled and ImageNet-normalised), and
run by LiteRT (XNNPACK). ``--keras`` adds the Keras model called through a ``tf.function``
(TensorFlow is then limited to one thread, so only in the 1-thread rows).

Timing: for each thread count (``--threads``: numbers, ``all`` = every core), every round
runs each side once on the same image, the order rotating from round to round; after
``--warmup`` rounds, ``--runs`` rounds are timed. onnxruntime runs with its threads sleeping
between runs rather than spin-waiting (its default; ``--ort_spinning``): spinning threads took
the cores from TFLite running next to them. Reported: milliseconds per image (median,
min, max), the ratios to onnxruntime of the medians and of the minima (on a shared machine
the minimum is the figure least disturbed by other work), the TFLite op counts, and sizes.
A table is printed; ``--json PATH`` also writes every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# torchvision-counterpart compact models at ImageNet's size and classes.
DEFAULT_MODELS = ("squeezenet1_0", "squeezenet1_1", "mnasnet1_0", "shufflenet_v2_x1_0", "resnet18", "efficientnet_b0")
# `python -m benchmarks.run_all --quick`: one small model, a few rounds, one thread (SqueezeNet 1.0 at 64:
# its ceil-mode pool4 sees an even size, the case lowered to one SAME max pooling).
QUICK_ARGS = ("--models", "squeezenet1_0:64:10", "--runs", "5", "--warmup", "1", "--threads", "1",
              "--calibration", "2")  # fmt: skip
# Options that make our model compute what torchvision's does (see tests/test_weights_more.py).
TORCHVISION_OPTIONS: dict[str, dict[str, Any]] = {
    **{
        f"efficientnet_b{i}": {
            "padding": "torch",
            "include_preprocessing": False,
            "bn_epsilon": 1e-5 if i < 5 else 1e-3,  # torchvision's B0-B4 1e-5, B5-B7 1e-3
        }
        for i in range(8)
    },
    **{name: {"downsample": "3x3"} for name in ("resnet50", "resnet101", "resnet152")},
}
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
SIDES = ("tflite_fp32", "tflite_int8", "onnxruntime", "keras")


def _torch_first(argv: list[str]) -> int | None:
    """torch must be imported before TensorFlow (the other order segfaults: TF 2.21 and
    torch's triton load clashing native libraries). If TensorFlow is already loaded in this
    process, run the benchmark in a fresh one and return its exit code."""
    if "tensorflow" in sys.modules and "torch" not in sys.modules:
        return subprocess.call([sys.executable, "-m", "benchmarks.tflite_latency", *argv])
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"this benchmark needs requirements-dev.txt (torch, onnxruntime): {e}") from None
    return None


# ----------------------------------------------------------------------------- models


def parse_spec(spec: str) -> tuple[str, int, int]:
    """``name[:size[:classes]]`` -> (name, size, classes); defaults 224 and 1000."""
    name, size, classes = [*spec.split(":"), "", ""][:3]
    return name, int(size or 224), int(classes or 1000)


def torchvision_reference(name: str, classes: int, seed: int = 0):
    """torchvision's ``name`` with random weights and BatchNorm statistics, in eval mode (or None)."""
    import torch
    import torchvision

    builder = getattr(torchvision.models, name, None)
    if builder is None or name not in torchvision.models.list_models(module=torchvision.models):
        return None
    torch.manual_seed(seed)
    module = builder(weights=None, num_classes=classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        if name.startswith("squeezenet"):  # a ReLU follows conv10: positive biases keep the logits apart
            module.classifier[1].bias.uniform_(0.1, 0.5)
    return module.eval()


def export_onnx(module, size: int, path: str) -> None:
    """``torch.onnx.export`` of ``module`` for a ``[1, 3, size, size]`` input, its chatter hidden."""
    import torch

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (torch.zeros(1, 3, size, size),), dynamo=True)
        program.save(path)


def build_ours(spec: str, tmp: str) -> dict[str, Any]:
    """Our model for ``spec`` and, where torchvision has one, its counterpart with the same weights."""
    import keras_archs

    if spec.endswith(".keras"):
        from trainers.models import load_keras

        model = load_keras(spec)
        size, channels = int(model.input_shape[1]), int(model.input_shape[-1])
        return {"label": os.path.basename(spec), "model": model, "torch": None, "size": size, "channels": channels}
    name, size, classes = parse_spec(spec)
    reference = torchvision_reference(name, classes)
    kwargs: dict[str, Any] = {"input_shape": (size, size, 3), "classes": classes, "classifier_activation": None}
    if reference is not None:
        import torch

        weights = os.path.join(tmp, f"{name}.pth")
        torch.save(reference.state_dict(), weights)
        kwargs.update(weights=weights, **TORCHVISION_OPTIONS.get(name, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = keras_archs.get_model(name, **kwargs)
    return {"label": f"{name}@{size}", "model": model, "torch": reference, "size": size, "channels": 3}


def calibration_images(size: int, count: int, channels: int = 3) -> Any:
    """``count`` real Fashion-MNIST test images, bilinearly upscaled to ``size``, grey repeated
    to RGB if ``channels`` is 3, ImageNet-normalised: ``[count, size, size, channels]`` float32."""
    import numpy as np
    import tensorflow as tf

    from trainers.data import datasets

    raw, _ = datasets.load_dataset("fashion_mnist", "test")
    images = np.stack([image for image, _ in raw.take(count).as_numpy_iterator()]).astype(np.float32)
    images = tf.image.resize(np.repeat(images, channels, axis=-1), [size, size]).numpy()
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    if channels == 1:
        mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
    return ((images - mean) / std).astype(np.float32)


def convert(model, size: int, tmp: str, pixels) -> tuple[bytes, bytes]:
    """TFLite float32 and int8 flatbuffers of the bare model (input ``[1, size, size, C]``)."""
    import keras
    import tensorflow as tf

    from trainers.deploy import tflite
    from trainers.models import main_output

    saved = os.path.join(tmp, "savedmodel")
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([1, size, size, pixels.shape[-1]], tf.float32, name="image")
    archive.add_endpoint(
        "serve", lambda image: {"logits": main_output(model(image, training=False))}, input_signature=[spec]
    )
    archive.write_out(saved, verbose=False)
    fp32 = tflite.convert_saved_model(saved, signature="serve")

    def representative():
        for image in pixels:
            yield {"image": image[None]}

    int8 = tflite.convert_saved_model(saved, signature="serve", quantize="int8", representative=representative)
    return fp32, int8


# ----------------------------------------------------------------------------- runners


def tflite_runner(data: bytes, x, threads: int) -> Callable[[], Any]:
    from trainers.deploy import tflite

    interpreter = tflite.make_interpreter(data, num_threads=threads)
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    if inp["dtype"] != x.dtype:  # an int8 input (not produced by our converter: its edges stay float)
        raise ValueError(f"unexpected TFLite input type {inp['dtype']}")

    def run():
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return run


def onnx_runner(path: str, x_nchw, threads: int, spinning: bool = False) -> Callable[[], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # onnxruntime's worker threads spin-wait after each run by default, which is faster for it alone. In
    # this benchmark they kept the cores busy while TFLite ran (2 threads: ResNet-18 17-24 ms against
    # 8.5 ms with spinning off; with 50 ms pauses before blocks of 10 calls, SqueezeNet 1.1 still
    # 3.3 against 1.9 ms). So they sleep here.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda: session.run(None, {name: x_nchw})[0]


def alternate(runners: dict[str, Callable[[], Any]], *, runs: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call of each runner; every round calls each once, the order rotating."""
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            runners[name]()
            if r >= warmup:
                times[name].append(1e3 * (time.perf_counter() - start))
    return times


def relative_diff(ours, ref) -> float:
    import numpy as np

    return float(np.max(np.abs(ours - ref)) / max(1e-12, float(np.max(np.abs(ref)))))


def bench_one(spec: str, args: argparse.Namespace, thread_counts: list[int]) -> dict[str, Any]:
    import numpy as np

    from trainers.deploy import tflite

    with tempfile.TemporaryDirectory(prefix="latency_") as tmp:
        built = build_ours(spec, tmp)
        model, size = built["model"], built["size"]
        pixels = calibration_images(size, max(args.calibration, 1), built["channels"])
        x = pixels[:1]
        fp32, int8 = convert(model, size, tmp, pixels[: args.calibration])
        onnx_path = None
        if built["torch"] is not None:
            onnx_path = os.path.join(tmp, "model.onnx")
            export_onnx(built["torch"], size, onnx_path)
        keras_fn = None
        if args.keras:
            import tensorflow as tf

            from trainers.models import main_output

            keras_fn = tf.function(lambda t: main_output(model(t, training=False)))
        result: dict[str, Any] = {
            "model": built["label"],
            "params": int(model.count_params()),
            "fp32_bytes": len(fp32),
            "int8_bytes": len(int8),
            "onnx_bytes": os.path.getsize(onnx_path) if onnx_path else None,
            "tflite_fp32_ops": tflite.inspect_model(fp32).ops,
            "tflite_int8_ops": tflite.inspect_model(int8).ops,
            "threads": {},
        }
        if onnx_path:
            import onnx

            graph = onnx.load(onnx_path).graph
            result["onnx_ops"] = dict(sorted(_count(node.op_type for node in graph.node).items()))
        for n in thread_counts:
            runners: dict[str, Callable[[], Any]] = {
                "tflite_fp32": tflite_runner(fp32, x, n),
                "tflite_int8": tflite_runner(int8, x, n),
            }
            if onnx_path:
                runners["onnxruntime"] = onnx_runner(onnx_path, np.ascontiguousarray(x.transpose(0, 3, 1, 2)), n,
                                                     spinning=args.ort_spinning)
            if keras_fn is not None and n == 1:
                runners["keras"] = lambda: keras_fn(x).numpy()
            outputs = {name: np.asarray(run(), np.float32) for name, run in runners.items()}
            times = alternate(runners, runs=args.runs, warmup=args.warmup)
            row: dict[str, Any] = {
                name: {"ms": t, "median": statistics.median(t), "min": min(t), "max": max(t)}
                for name, t in times.items()
            }
            if "onnxruntime" in outputs:
                row["parity_fp32"] = relative_diff(outputs["tflite_fp32"], outputs["onnxruntime"])
                row["parity_int8"] = relative_diff(outputs["tflite_int8"], outputs["onnxruntime"])
                for side in ("tflite_fp32", "tflite_int8"):
                    row[f"{side}_vs_onnxruntime"] = row[side]["median"] / row["onnxruntime"]["median"]
                    row[f"{side}_vs_onnxruntime_min"] = row[side]["min"] / row["onnxruntime"]["min"]
            result["threads"][str(n)] = row
        return result


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


# ----------------------------------------------------------------------------- report


def _ms(cell: dict | None) -> str:
    return "-" if cell is None else f"{cell['median']:.2f} ({cell['min']:.2f}-{cell['max']:.2f})"


def format_table(results: list[dict]) -> str:
    header = ("model", "threads", "tflite fp32 ms", "tflite int8 ms", "onnxruntime ms", "fp32/ort med", "fp32/ort min",
              "int8/ort med", "keras ms", "parity fp32")  # fmt: skip
    lines = []
    for r in results:
        for n, row in r["threads"].items():
            has_ort = "onnxruntime" in row
            lines.append((
                r["model"], n, _ms(row["tflite_fp32"]), _ms(row["tflite_int8"]), _ms(row.get("onnxruntime")),
                f"{row['tflite_fp32_vs_onnxruntime']:.2f}x" if has_ort else "-",
                f"{row['tflite_fp32_vs_onnxruntime_min']:.2f}x" if has_ort else "-",
                f"{row['tflite_int8_vs_onnxruntime']:.2f}x" if has_ort else "-",
                _ms(row.get("keras")), f"{row['parity_fp32']:.1e}" if has_ort else "-",
            ))  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = ["  ".join(str(c).rjust(w) for c, w in zip(row, widths)) for row in (header, *lines)]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append("TFLite float32 ops (main graph):")
    for r in results:
        ops = ", ".join(f"{k} {v}" for k, v in r["tflite_fp32_ops"].items())
        out.append(f"  {r['model']}: {ops}  ({r['fp32_bytes'] / 1024:.0f} KB; int8 {r['int8_bytes'] / 1024:.0f} KB)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.tflite_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="name[:size[:classes]] or path.keras")
    p.add_argument("--threads", nargs="+", default=["1", "all"], help="thread counts; all = every core")
    p.add_argument("--runs", type=int, default=200, help="timed rounds per model and thread count")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--calibration", type=int, default=32, help="int8 calibration images")
    p.add_argument("--keras", action="store_true", help="also time the Keras model (1 thread)")
    p.add_argument("--ort_spinning", action="store_true",
                   help="onnxruntime's threads spin-wait between runs (its default; off here: see onnx_runner)")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    code = _torch_first(argv)
    if code is not None:
        return code

    import onnxruntime
    import tensorflow as tf
    import torch

    if args.keras:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    thread_counts = [(os.cpu_count() or 1) if t == "all" else int(t) for t in args.threads]
    started = time.time()
    results = []
    for spec in args.models:
        results.append(bench_one(spec, args, thread_counts))
        print(f"  measured {results[-1]['model']}", file=sys.stderr, flush=True)
    print(f"CPU latency, batch 1, median (min-max) of {args.runs} alternating rounds; {os.cpu_count()} CPUs; "
          f"tensorflow {tf.__version__}, LiteRT (XNNPACK), onnxruntime {onnxruntime.__version__}, "
          f"torch {torch.__version__}:")  # fmt: skip
    print(format_table(results))
    if args.json:
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "seconds": time.time() - started,
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "cpus": os.cpu_count(),
            "versions": {
                "tensorflow": tf.__version__,
                "onnxruntime": onnxruntime.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "models": results,
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
