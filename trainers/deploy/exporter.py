"""Export a keras_archs model for serving (SavedModel) or mobile (TFLite), with a JSON model card.

:func:`export` writes ``<output>/<name>.tflite`` (or the SavedModel directory
``<output>/<name>/``) and the card ``<output>/<name>.json``; ``output`` defaults to the
trainers.run folder that holds the weights (it has a ``plan.json``), else ``exports/<arch>/``
(git-ignored), so files tracked in the repository are never replaced by default. An existing
output file is refused unless ``overwrite``. Every file appears atomically (temp file or
directory, then rename): a failed conversion leaves nothing behind.

The card carries the class names (``class_names``), so ``trainers.predict`` prints them:
from ``labels``, else those recorded for the weights (:mod:`trainers.deploy.records`), else
the representative dataset's when their number matches.

What the exported graphs compute (the preprocessing is :mod:`trainers.data.preprocess`'s):

- **SavedModel**, signature ``serving_default``: float32 images ``[N, H, W, C]`` of any size,
  pixels on the ``[0, 255]`` scale, 1 or 3 (or 4: alpha dropped) channels; signature
  ``serve_uint8``: the same for uint8 images. Both apply the network's evaluation
  preprocessing in the graph (resize the shorter side to ``image_size / crop_fraction``,
  bilinear with antialiasing, centre crop, grey<->RGB, normalisation; deterministic, no
  augmentation) and return ``logits`` and ``probabilities``. Signature ``preprocessed``
  takes already resized ``[N, S, S, C]`` pixels.
- **TFLite**: the ``preprocessed`` signature with a batch of one: float32 ``[1, S, S, C]``
  pixels on ``[0, 255]``, already resized/cropped (``preprocess.resize_crop`` or the card's
  recipe); the normalisation is inside the graph. Output ``logits`` (or ``probabilities``
  if the Keras model ends in a softmax). Int8 models keep float32 input/output with
  QUANTIZE/DEQUANTIZE at the edges.

Auxiliary classifier heads are dropped: only the ``main`` output is exported.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shlex
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from trainers import outputs
from trainers.cli import FailedError, UsageError, first_line
from trainers.data import preprocess
from trainers.data.classes import resolve_labels
from trainers.data.preprocess import Preprocessing
from trainers.deploy import records, tflite
from trainers.models import keras_outputs, load_keras, main_output, model_input_spec, output_kind

if TYPE_CHECKING:
    import keras

FORMATS = ("savedmodel", "tflite")
# Parity tolerances, Keras (float32) vs the exported model, on logits. The quantized ones
# are relative to the largest |logit| of the batch (or 1, whichever is larger).
FLOAT_ATOL = 1e-4
FLOAT16_RTOL = 2e-2
DYNAMIC_RTOL = 1e-1
INT8_MIN_TOP1_AGREEMENT = 0.99  # trained models; random-init nets have meaningless top-1
# Layers without an int8 TFLite kernel in their lowering: they stay float in int8 graphs.
FLOAT_IN_INT8 = {
    "LocalResponseNormalization": "LRN (pad/slice/POW lowering; POW has no int8 kernel)",
    "GroupNormalization": "GroupNorm (mean/variance/RSQRT over groups)",
}


class ExportError(UsageError):
    """A bad export request (exit code 2 on the command line)."""


class ExportFailedError(FailedError):
    """The export itself failed, e.g. the graph needs ops TFLite lacks (exit code 1)."""


# ----------------------------------------------------------------------------- model


def load_model(
    arch: str | None,
    weights: str | None = None,
    *,
    image_size: int | None = None,
    classes: int | None = None,
    options: dict[str, Any] | None = None,
) -> keras.Model:
    """The Keras model to export: a ``.keras`` file (architecture and weights), or the
    registry's ``arch`` with a ``.weights.h5`` file, or random initialisation (warns).

    Registry builds use ``classifier_activation=None`` (logits) and no auxiliary heads.
    """

    import keras_archs

    if weights and not os.path.exists(weights):
        raise ExportError(f"--weights file not found: {weights}")
    if weights and weights.endswith(".keras"):
        return load_keras(weights, float32=True)
    if not arch:
        raise ExportError("--arch is needed unless --weights is a .keras file.")
    try:
        spec = keras_archs.get_spec(arch)
    except ValueError as e:
        raise ExportError(str(e)) from None
    size = image_size or spec.default_size
    kwargs = dict(
        input_shape=(size, size, spec.channels),
        classes=classes or spec.default_classes,
        classifier_activation=None,
        **(options or {}),
    )
    try:
        model = spec.build(**kwargs)
    except ValueError as e:
        raise ExportError(str(e)) from None
    if weights:
        try:
            model.load_weights(weights)
        except (OSError, ValueError, KeyError) as e:
            raise ExportFailedError(f"cannot load {weights} into {spec.name}: {first_line(e)}") from None
    else:
        warnings.warn(
            f"no --weights given: exporting a randomly initialised {spec.name} (for tests only; its "
            "predictions are meaningless).",
            stacklevel=2,
        )
    return model


def weight_sparsity(model: keras.Model) -> float:
    """Fraction of exactly-zero entries over all conv and dense kernels."""
    total = zeros = 0
    for w in model.weights:
        if w.path.endswith("kernel") or "/kernel" in w.path:
            v = np.asarray(w.numpy())
            total += v.size
            zeros += int(np.sum(v == 0))
    return zeros / total if total else 0.0


def float_layers_in_int8(model: keras.Model) -> list[str]:
    """Notes on the model's layers that stay float in an int8 graph (:data:`FLOAT_IN_INT8`)."""
    found = {type(layer).__name__ for layer in model._flatten_layers(include_self=False)}
    return [note for cls, note in FLOAT_IN_INT8.items() if cls in found]


# ----------------------------------------------------------------------------- SavedModel


def make_archive(
    model: keras.Model, prep: Preprocessing, *, tflite_batch: int | None = None
) -> keras.export.ExportArchive:
    """A ``keras.export.ExportArchive`` with the serving signatures described in the module
    docstring (``tflite_batch``: fix the ``preprocessed`` signature's batch, 1 for TFLite)."""
    import keras
    import tensorflow as tf

    kind = output_kind(model)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def head(x):
        return main_output(model(preprocess.normalize(x, prep), training=False))

    def full(images):
        out = head(preprocess.resize_crop(images, prep))
        if kind == "logits":
            return {"logits": out, "probabilities": tf.nn.softmax(out, axis=-1)}
        return {"probabilities": out}

    any_image = [None, None, None, None]
    archive.add_endpoint(
        "serving_default", full, input_signature=[tf.TensorSpec(any_image, tf.float32, name="images")]
    )
    archive.add_endpoint("serve_uint8", full, input_signature=[tf.TensorSpec(any_image, tf.uint8, name="images")])
    s, c = prep.image_size, prep.channels
    archive.add_endpoint(
        "preprocessed",
        lambda image: {kind: head(image)},
        input_signature=[tf.TensorSpec([tflite_batch, s, s, c], tf.float32, name="image")],
    )
    return archive


# ----------------------------------------------------------------------------- data


def dataset_images(
    spec: str, prep: Preprocessing, *, split: str, limit: int, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(pixels float32 [n, S, S, C] after resize_crop, labels int32 [n], class_names)``: the
    first ``limit`` images of a split (a fixed, label-balanced-by-chance order). ``spec`` as in
    :func:`trainers.data.datasets.load_dataset` (``fashion_mnist``, ``folder:/path``, a TFDS name)."""
    from trainers.data import datasets

    try:
        ds, info = datasets.load_dataset(spec, split, data_dir=data_dir)
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(f"cannot read images from {spec!r}: {e}") from None
    ds = ds.take(limit).map(lambda image, label: (preprocess.resize_crop(image, prep)[0], label))
    images, labels = [], []
    for x, y in ds.batch(256):
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        raise ExportError(f"{spec!r} ({split}) holds no readable images.")
    return np.concatenate(images), np.concatenate(labels).astype(np.int32), info.class_names


def export_class_names(labels: str | None, weights: str | None, num_classes: int) -> list[str] | None:
    """The class names the card records: ``--labels`` (``fashion_mnist`` or a text file),
    else those recorded for ``weights`` (:func:`trainers.deploy.records.recorded_class_names`), else ``None``."""
    recorded, source = (None, None) if labels else records.recorded_class_names(weights)
    if recorded is not None and len(recorded) != num_classes:
        raise ExportError(
            f"{source} lists {len(recorded)} class names but the model has {num_classes} outputs; "
            "pass --labels (fashion_mnist or a text file, one name a line)."
        )
    return resolve_labels(labels, recorded, num_classes) if labels or recorded else None


def parity_data(prep: Preprocessing, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``(pixels, labels or None, source)``: Fashion-MNIST test images when the dataset is on
    this machine, else uniform random pixels."""
    from trainers.data import datasets

    try:
        images, labels, _ = dataset_images("fashion_mnist", prep, split="test", limit=n)
        return images, labels, f"fashion_mnist test[:{len(images)}]"
    except (ExportError, datasets.DatasetUnavailableError):
        rng = np.random.default_rng(seed)
        pixels = rng.uniform(0, 255, (n, prep.image_size, prep.image_size, prep.channels)).astype(np.float32)
        return pixels, None, f"{n} uniform random images (Fashion-MNIST not found)"


def compare(reference: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Parity figures of two output arrays ``[n, classes]``."""
    diff = np.abs(reference - other)
    scale = float(max(1.0, np.abs(reference).max()))
    result = {
        "images": len(reference),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_reference": float(np.abs(reference).max()),
        "max_rel_diff": float(diff.max() / scale),
        "top1_agreement": float(np.mean(reference.argmax(-1) == other.argmax(-1))),
    }
    if labels is not None:
        result["reference_accuracy"] = float(np.mean(reference.argmax(-1) == labels))
        result["exported_accuracy"] = float(np.mean(other.argmax(-1) == labels))
    return result


def tolerance_check(quantize: str, figures: dict[str, Any], trained: bool) -> dict[str, Any]:
    """The stated tolerance for ``quantize`` and whether ``figures`` meet it."""
    if quantize == "none":
        return {"rule": f"max_abs_diff <= {FLOAT_ATOL:g}", "passed": figures["max_abs_diff"] <= FLOAT_ATOL}
    if quantize == "float16":
        return {"rule": f"max_rel_diff <= {FLOAT16_RTOL:g}", "passed": figures["max_rel_diff"] <= FLOAT16_RTOL}
    if quantize == "dynamic":
        return {"rule": f"max_rel_diff <= {DYNAMIC_RTOL:g}", "passed": figures["max_rel_diff"] <= DYNAMIC_RTOL}
    if trained:
        ok = figures["top1_agreement"] >= INT8_MIN_TOP1_AGREEMENT
        return {"rule": f"top1_agreement >= {INT8_MIN_TOP1_AGREEMENT:g} (trained weights)", "passed": ok}
    return {"rule": "none: random-init weights, top-1 agreement is not meaningful", "passed": None}


# ----------------------------------------------------------------------------- export


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    out = {"tensorflow": tf.__version__, "keras": keras.__version__}
    try:
        from importlib.metadata import version

        out["ai-edge-litert"] = version("ai-edge-litert")
    except Exception:  # not installed: only the SavedModel path works
        pass
    return out


def export(
    arch: str | None = None,
    weights: str | None = None,
    *,
    fmt: str = "tflite",
    quantize: str = "none",
    representative_data: str | None = None,
    representative_count: int = 200,
    output: str | None = None,
    name: str | None = None,
    image_size: int | None = None,
    classes: int | None = None,
    preprocessing: str | None = None,
    parity_images: int = 100,
    sparse: bool = False,
    data_dir: str | None = None,
    labels: str | None = None,
    baseline: str | None = None,
    model: keras.Model | None = None,
    command: str | None = None,
    extra_card: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export one model; returns its model card (also written as ``<name>.json``).

    ``output`` defaults to :func:`trainers.deploy.records.default_output`; an existing output file or card is an
    :class:`ExportError` unless ``overwrite``.
    ``model`` may be given directly (a Keras model) instead of ``arch``/``weights``.
    ``baseline``: a ``.keras`` file of the float model (e.g. before pruning) whose accuracy on
    the same labelled parity images the card compares with the exported file's
    (``accuracy_drop_points``). See the module docstring and ``python -m trainers.export
    --help`` for the other arguments.
    """
    fmt = (fmt or "").strip().lower().replace("_", "")
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    try:
        quantize = tflite.check_quantization(quantize)
    except ValueError as e:
        raise ExportError(str(e)) from None
    if fmt == "savedmodel" and quantize != "none":
        raise ExportError("--quantize applies to --format tflite only (SavedModels are float32).")
    if quantize == "int8" and not representative_data:
        raise ExportError(
            "int8 quantization needs --representative_data (fashion_mnist or folder:/path/to/images) to "
            "calibrate activation ranges."
        )
    if sparse and fmt != "tflite":
        raise ExportError("--sparse applies to --format tflite only.")
    if baseline and not parity_images:
        raise ExportError("--baseline needs parity images to measure accuracy on: pass --parity_images N (N > 0).")
    if baseline and not (os.path.isfile(baseline) and baseline.endswith(".keras")):
        raise ExportError(f"--baseline {baseline!r} is not a .keras file; pass the float model's .keras file.")

    trained = model is not None or bool(weights)
    if model is None:
        model = load_model(arch, weights, image_size=image_size, classes=classes)
    arch = arch or model.name
    size, channels = model_input_spec(model)
    try:
        prep = preprocess.preprocessing_for(records.policy_for(weights, arch, preprocessing), size, channels)
    except ValueError as e:
        raise ExportError(str(e)) from None

    num_classes = int(main_output(model.output).shape[-1])
    class_names = export_class_names(labels, weights, num_classes)

    output = output or records.default_output(arch, weights)
    quant_tag = {"none": "float32"}.get(quantize, quantize)
    stem = records.default_stem(arch, weights)
    name = name or (f"{stem}_savedmodel" if fmt == "savedmodel" else f"{stem}_{quant_tag}")
    target = os.path.join(output, name if fmt == "savedmodel" else f"{name}.tflite")
    card_path = os.path.join(output, f"{name}.json")
    try:
        outputs.refuse_overwrite([target, card_path], overwrite=overwrite)
    except FileExistsError as e:
        raise ExportError(str(e)) from None

    rep = None
    if quantize == "int8":
        # Calibration: real training images, preprocessed like the model's input (a folder:
        # dataset without train/ test/ subfolders is all training split).
        rep_images, _, rep_names = dataset_images(
            representative_data, prep, split="train", limit=representative_count, data_dir=data_dir
        )
        if class_names is None and len(rep_names) == num_classes:
            class_names = list(rep_names)

        def rep():
            for image in rep_images:
                yield {"image": image[None]}

    pixels, labels, source = parity_data(prep, parity_images) if parity_images else (None, None, "")
    baseline_accuracy = None
    if baseline:
        if labels is None:
            raise ExportError(f"--baseline needs labelled parity images; {source}.")
        reference = load_model(None, baseline)
        if model_input_spec(reference) != (size, channels):
            raise ExportError(
                f"--baseline {baseline} takes inputs {model_input_spec(reference)}, the exported model {(size, channels)}."
            )
        baseline_accuracy = float(np.mean(keras_outputs(reference, pixels, prep).argmax(-1) == labels))
    card: dict[str, Any] = {
        "arch": arch,
        "format": fmt,
        "file": os.path.basename(target),
        "quantization": quantize,
        "weights": {
            "path": weights,
            "sha256": _sha256(weights) if weights and os.path.isfile(weights) else None,
            "trained": trained,
        },
        "keras_params": int(model.count_params()),
        "weight_sparsity": round(weight_sparsity(model), 4),
        "preprocessing": prep.describe(),
        "output": output_kind(model),
        "classes": num_classes,
        "auxiliary_heads": "dropped (only the main output is exported)",
        "versions": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command or _command(arch, weights, fmt, quantize, representative_data, output, name, sparse),
    }

    if fmt == "savedmodel":
        card.update(_export_savedmodel(model, prep, target, pixels, labels))
    else:
        card.update(_export_tflite(model, prep, target, quantize, rep, sparse, pixels, labels, trained))
        card["representative_data"] = (
            {"source": representative_data, "images": representative_count, "split": "train"} if rep else None
        )
    if card.get("parity"):
        card["parity"]["source"] = source
    if baseline_accuracy is not None:
        card["baseline"] = {"path": baseline, "sha256": _sha256(baseline), "accuracy": baseline_accuracy, "images": len(labels)}
        card["accuracy_drop_points"] = round(100 * (baseline_accuracy - card["parity"]["exported_accuracy"]), 2)
    if class_names:
        card["class_names"] = class_names
    card.update(extra_card or {})
    outputs.write_json(card_path, card)
    card["path"] = target
    card["card_path"] = card_path
    return card


def _export_savedmodel(
    model: keras.Model, prep: Preprocessing, target: str, pixels: np.ndarray | None, labels: np.ndarray | None
) -> dict[str, Any]:
    import tensorflow as tf

    outputs.atomic_write_dir(target, lambda tmp: make_archive(model, prep).write_out(tmp, verbose=False))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(target) for f in fs)
    out: dict[str, Any] = {
        "signatures": {
            "serving_default": "float32 images [N, H, W, 1|3|4] on [0, 255], any size -> logits, probabilities",
            "serve_uint8": "uint8 images [N, H, W, 1|3|4], any size -> logits, probabilities",
            "preprocessed": f"float32 [N, {prep.image_size}, {prep.image_size}, {prep.channels}] resized pixels",
        },
        "size_bytes": size,
    }
    if pixels is not None:
        loaded = tf.saved_model.load(target)
        fn = loaded.signatures["preprocessed"]
        key = output_kind(model)
        got = np.concatenate([fn(image=tf.constant(pixels[i : i + 64]))[key].numpy() for i in range(0, len(pixels), 64)])
        figures = compare(keras_outputs(model, pixels, prep), got, labels)
        figures["tolerance"] = tolerance_check("none", figures, trained=False)
        out["parity"] = figures
    return out


def _export_tflite(
    model: keras.Model, prep: Preprocessing, target: str, quantize: str,
    rep: Callable[[], Iterator[dict[str, np.ndarray]]] | None, sparse: bool, pixels: np.ndarray | None,
    labels: np.ndarray | None, trained: bool,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="keras_archs_export_") as tmp:
        saved = os.path.join(tmp, "saved_model")
        make_archive(model, prep, tflite_batch=1).write_out(saved, verbose=False)
        try:
            data = tflite.convert_saved_model(
                saved, signature="preprocessed", quantize=quantize, representative=rep, sparse=sparse
            )
        except tflite.ConversionError as e:
            raise ExportFailedError(str(e)) from None
    info = tflite.inspect_model(data)
    if not info.builtin_only:
        raise ExportFailedError(f"the converted model uses non-built-in ops {info.custom_ops}; not written.")
    outputs.atomic_write_bytes(target, data)
    out: dict[str, Any] = {
        "size_bytes": info.size_bytes,
        "gzip_bytes": info.gzip_bytes,
        "size_mb": round(info.size_bytes / 1e6, 4),
        "gzip_mb": round(info.gzip_bytes / 1e6, 4),
        "ops": info.ops,
        "builtin_only": info.builtin_only,
        "sparse_tensors": info.sparse_tensors,
        "input": {
            **next(iter(info.inputs.values())),
            "name": next(iter(info.inputs)),
            "meaning": "pixels on [0, 255] after resize/centre crop/channels (normalisation is in the graph)",
        },
        "outputs": info.outputs,
        "signature": "preprocessed (the only signature; read outputs by name through the signature runner)",
    }
    if quantize == "int8":
        notes = float_layers_in_int8(model)
        out["float_ops"] = info.float_ops
        out["float_ops_note"] = (
            "ops computed in float inside the int8 graph (no int8 kernel): "
            + (", ".join(f"{k} x{v}" for k, v in info.float_ops.items()) or "none")
            + ("; from " + "; ".join(notes) if notes else "")
        )
    if pixels is not None:
        interpreter = tflite.make_interpreter(data)
        got = tflite.run_signature(interpreter, pixels)
        figures = compare(keras_outputs(model, pixels, prep), got, labels)
        figures["tolerance"] = tolerance_check(quantize, figures, trained=trained and labels is not None)
        out["parity"] = figures
    return out


def _command(
    arch: str, weights: str | None, fmt: str, quantize: str, representative_data: str | None, output: str, name: str,
    sparse: bool,
) -> str:
    parts = ["python", "-m", "trainers.export", "--arch", arch, "--format", fmt, "--quantize", quantize]
    if weights:
        parts += ["--weights", weights]
    if representative_data:
        parts += ["--representative_data", representative_data]
    if sparse:
        parts += ["--sparse"]
    parts += ["--output", output, "--name", name]
    return shlex.join(parts)


