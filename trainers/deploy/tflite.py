"""TFLite conversion, inspection and execution for :mod:`trainers.deploy.exporter` and
:mod:`trainers.deploy.predictor`.

Conversion starts from a SavedModel signature (``tf.lite.TFLiteConverter.from_saved_model``):
Keras 3 models convert reliably that way, and the signature's input and output names
survive into the ``.tflite`` file, so :func:`run_signature` reads outputs by name through
LiteRT's signature runner (the interpreter's raw output order need not match Keras').

Only TFLite built-in ops are allowed: a graph that would need the Flex (select TF ops)
delegate fails with :class:`ConversionError`. Int8 models allow float built-ins as a
fallback for ops that have no int8 kernel; :func:`inspect_model` lists them.
"""

from __future__ import annotations

import dataclasses
import gzip
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from trainers.cli import quiet

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
# Ops that only move data across the float/int8 boundary or reshape it: not "left in float".
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE", "DENSIFY"}


class ConversionError(RuntimeError):
    """The TFLite converter could not produce a built-in-ops model."""


def _quantization_error(quantize: str) -> ValueError:
    return ValueError(f"Unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZATIONS)}.")


def check_quantization(quantize: str) -> str:
    key = (quantize or "none").strip().lower()
    aliases = {"float32": "none", "fp32": "none", "fp16": "float16", "dynamic_range": "dynamic", "full_int8": "int8"}
    key = aliases.get(key, key)
    if key not in QUANTIZATIONS:
        raise _quantization_error(quantize)
    return key


def convert_saved_model(
    saved_model_dir: str,
    *,
    signature: str = "serving_default",
    quantize: str = "none",
    representative: Callable[[], Iterable[dict[str, np.ndarray]]] | None = None,
    sparse: bool = False,
) -> bytes:
    """Convert one signature of a SavedModel to a TFLite flatbuffer (built-in ops only).

    Args:
        saved_model_dir: directory of the SavedModel.
        signature: the signature to convert (its input/output names are kept).
        quantize: ``"none"`` (float32), ``"float16"`` (fp16 weights, float compute),
            ``"dynamic"`` (int8 weights, activations quantized on the fly) or ``"int8"``
            (int8 weights and activations, calibrated on ``representative``; input and
            output stay float32 with QUANTIZE/DEQUANTIZE at the edges).
        representative: for int8, a callable returning an iterable of
            ``{input_name: float32 batch}`` dicts of real inputs.
        sparse: also apply ``Optimize.EXPERIMENTAL_SPARSITY``: pruned (mostly zero)
            weights are stored in TFLite's sparse format and densified at load time.

    Raises:
        ValueError: unknown quantization, or int8 without representative data.
        ConversionError: the converter failed, e.g. the graph needs non-built-in ops.
    """
    import tensorflow as tf

    quantize = check_quantization(quantize)
    if quantize == "int8" and representative is None:
        raise ValueError(
            "int8 quantization needs representative data to calibrate activation ranges: pass "
            "--representative_data fashion_mnist (or folder:/path/to/images)."
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[signature])
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    optimizations = []
    if quantize != "none":
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        # Int8 kernels first, float built-ins for ops without one (reported by inspect_model).
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]

        def dataset():
            for item in representative():
                yield {k: np.asarray(v, np.float32) for k, v in item.items()}

        converter.representative_dataset = dataset
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    converter.target_spec.supported_ops = ops
    try:
        return converter.convert()
    except Exception as e:  # ConverterError, or errors raised while calibrating
        text = str(e)
        if any(k in text for k in ("Flex", "select TF ops", "TF Select", "SELECT_TF_OPS", "not supported by")):
            needed = sorted(set(_unsupported_ops(text)))
            which = f" ({', '.join(needed)})" if needed else ""
            raise ConversionError(
                f"TFLite conversion failed: the graph needs TensorFlow ops that are not TFLite built-ins{which}. "
                "Only built-in ops are allowed (no Flex / select-TF-ops delegate); replace those layers with "
                f"built-in equivalents. Converter message: {_first_lines(text)}"
            ) from None
        raise ConversionError(f"TFLite conversion ({quantize}) failed: {_first_lines(text)}") from e


def _unsupported_ops(text: str) -> Iterator[str]:
    import re

    yield from re.findall(r"'(tf\.[A-Za-z0-9_]+)'", text)


def _first_lines(text: str, n: int = 6) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[:n])


# ----------------------------------------------------------------------------- inspection


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a ``.tflite`` flatbuffer holds."""

    size_bytes: int
    gzip_bytes: int
    ops: dict[str, int]  # op name -> count, main subgraph
    float_ops: dict[str, int]  # compute ops with float32 inputs or outputs (int8 graphs: not quantized)
    custom_ops: list[str]
    sparse_tensors: int  # weights stored in TFLite's sparse format
    signatures: dict[str, dict[str, list[str]]]
    inputs: dict[str, dict]
    outputs: dict[str, dict]

    @property
    def builtin_only(self) -> bool:
        return not self.custom_ops


def gzip_size(data: bytes) -> int:
    """Bytes after ``gzip -9`` (how tfmot and Deep Compression count the storage of pruned models)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def _tensor_type_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def inspect_model(data: bytes) -> ModelInfo:
    """Op list, float ops, custom ops, size and signatures of a TFLite flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    builtins, types = _builtin_names(), _tensor_type_names()
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = oc.CustomCode()
        codes.append(custom.decode() if custom is not None and code == schema.BuiltinOperator.CUSTOM else builtins.get(code, str(code)))
    custom_ops = sorted(
        {
            model.OperatorCodes(i).CustomCode().decode()
            for i in range(model.OperatorCodesLength())
            if model.OperatorCodes(i).CustomCode() is not None
        }
    )
    ops: Counter[str] = Counter()
    float_ops: Counter[str] = Counter()
    sparse = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            if graph.Tensors(t).Sparsity() is not None:
                sparse += 1
        if s:  # ops of the main graph only (control-flow bodies are not expected here)
            continue
        for j in range(graph.OperatorsLength()):
            op = graph.Operators(j)
            name = codes[op.OpcodeIndex()]
            ops[name] += 1
            tensors = [op.Inputs(k) for k in range(op.InputsLength())] + [op.Outputs(k) for k in range(op.OutputsLength())]
            dtypes = {types.get(graph.Tensors(t).Type()) for t in tensors if t >= 0}
            if name not in _BOUNDARY_OPS and dtypes & {"FLOAT32", "FLOAT16"}:
                float_ops[name] += 1
    signatures, inputs, outputs = _signature_details(data)
    return ModelInfo(
        size_bytes=len(data),
        gzip_bytes=gzip_size(data),
        ops=dict(sorted(ops.items())),
        float_ops=dict(sorted(float_ops.items())),
        custom_ops=custom_ops,
        sparse_tensors=sparse,
        signatures=signatures,
        inputs=inputs,
        outputs=outputs,
    )


def _details(d: dict) -> dict:
    q = d.get("quantization_parameters", {})
    out = {"shape": [int(v) for v in d["shape_signature"]], "dtype": np.dtype(d["dtype"]).name}
    if len(q.get("scales", [])):
        out["scale"] = float(q["scales"][0])
        out["zero_point"] = int(q["zero_points"][0])
    return out


def _signature_details(data: bytes):
    interpreter = make_interpreter(data)
    signatures = interpreter.get_signature_list()
    inputs, outputs = {}, {}
    if signatures:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        inputs = {k: _details(v) for k, v in runner.get_input_details().items()}
        outputs = {k: _details(v) for k, v in runner.get_output_details().items()}
    return signatures, inputs, outputs


# ----------------------------------------------------------------------------- execution


def make_interpreter(model: bytes | str, num_threads: int | None = None) -> Interpreter:
    """A LiteRT interpreter for a flatbuffer (bytes) or a ``.tflite`` path.

    LiteRT applies its XNNPACK delegate by default. For a few int8 graphs (e.g.
    SqueezeNet 1.0 at 32x32, whose last ceil-mode pool sees a 4x4 map) the delegate
    fails to prepare; the interpreter then falls back to the built-in kernels (warning).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    source = {"model_content": bytes(model)} if isinstance(model, bytes | bytearray) else {"model_path": str(model)}
    try:
        with quiet().quietly():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" line
            interpreter = Interpreter(**source, num_threads=num_threads)
            interpreter.allocate_tensors()
    except RuntimeError as e:
        if "XNNPACK" not in str(e):
            raise
        warnings.warn(f"XNNPACK could not prepare this model ({str(e).splitlines()[0]}); using the "
                      "built-in reference kernels instead.", stacklevel=2)  # fmt: skip
        interpreter = Interpreter(
            **source, num_threads=num_threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )  # fmt: skip
    return interpreter


def run_signature(interpreter: Interpreter, images: np.ndarray, *, signature: str | None = None, output: str | None = None) -> np.ndarray:
    """Run a one-input signature on ``images`` (any batch size; the graph's batch of 1 is
    looped), returning the named ``output`` (default: the only one) as float32."""
    signatures = interpreter.get_signature_list()
    if not signatures:
        raise ValueError("This .tflite file has no signature; re-export it with trainers.export.")
    key = signature or next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    (input_name,) = signatures[key]["inputs"]
    names = signatures[key]["outputs"]
    out_name = output or (names[0] if len(names) == 1 else "logits")
    detail = runner.get_input_details()[input_name]
    batch = int(detail["shape_signature"][0])
    dtype = np.dtype(detail["dtype"])
    images = np.asarray(images)
    step = len(images) if batch == -1 else batch
    results = []
    for start in range(0, len(images), max(step, 1)):
        chunk = images[start : start + step]
        if dtype != np.float32:  # quantized input: float pixels -> stored integers
            q = detail["quantization_parameters"]
            scale, zero = float(q["scales"][0]), int(q["zero_points"][0])
            info = np.iinfo(dtype)
            chunk = np.clip(np.round(chunk / scale + zero), info.min, info.max)
        result = runner(**{input_name: np.ascontiguousarray(chunk, dtype=dtype)})[out_name]
        if result.dtype != np.float32:
            q = runner.get_output_details()[out_name]["quantization_parameters"]
            result = (result.astype(np.float32) - q["zero_points"][0]) * q["scales"][0]
        results.append(np.asarray(result, np.float32).copy())
    return np.concatenate(results, axis=0)
