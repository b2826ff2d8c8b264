"""Export a keras_archs model for serving (SavedModel) or mobile (TFLite), with a model card.

    python -m trainers.export --arch lenet5 --weights runs/lenet5/best.keras --format tflite
    python -m trainers.export --arch squeezenet1_1 --weights pruned.keras --format tflite \\
        --quantize int8 --representative_data fashion_mnist --sparse
    python -m trainers.export --arch googlenet_bn --image_size 64 --classes 10 --format savedmodel

Writes ``<output>/<name>.tflite`` (or the SavedModel directory ``<output>/<name>/``) and the
JSON model card ``<output>/<name>.json``; ``<output>`` defaults to the trainers.run folder
that holds ``--weights`` (it has a ``plan.json``), else ``exports/<arch>/`` (git-ignored), so
files tracked in the repository are never replaced by default. An existing output file is
an error (exit code 2, nothing written) unless ``--overwrite`` is given. Every file appears
atomically (temp file or directory, then rename): a failed conversion leaves nothing behind.
Without ``--weights`` the randomly initialised model is exported (with a warning), which is
useful for tests only.

The card carries the class names (``class_names``), so ``trainers.predict`` prints them:
from ``--labels``, else those recorded for ``--weights`` (its own card, or the run's
``plan.json``), else the ``--representative_data`` dataset's when their number matches.

What the exported graphs compute:

- **SavedModel**, signature ``serving_default``: float32 images ``[N, H, W, C]`` of any size,
  pixels on the ``[0, 255]`` scale, 1 or 3 (or 4: alpha dropped) channels; signature
  ``serve_uint8``: the same for uint8 images. Both apply the network's evaluation
  preprocessing in the graph (resize the shorter side to ``image_size / crop_fraction``,
  bilinear with antialiasing, centre crop, grey<->RGB, normalisation; deterministic, no
  augmentation) and return ``logits`` and ``probabilities``. Signature ``preprocessed``
  takes already resized ``[N, S, S, C]`` pixels.
- **TFLite**: the ``preprocessed`` signature with a batch of one: float32 ``[1, S, S, C]``
  pixels on ``[0, 255]``, already resized/cropped (:func:`resize_crop` or the card's
  recipe); the normalisation is inside the graph. Output ``logits`` (or ``probabilities``
  if the Keras model ends in a softmax). Int8 models keep float32 input/output with
  QUANTIZE/DEQUANTIZE at the edges.

Auxiliary classifier heads are dropped: only the ``main`` output is exported.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import warnings
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

FORMATS = ("savedmodel", "tflite")
DEFAULT_OUTPUT_ROOT = "exports"  # git-ignored; saved_models/ holds tracked artifacts
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


class ExportError(ValueError):
    """Bad export request (reported without a traceback by the CLI)."""


# ----------------------------------------------------------------------------- preprocessing


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """The evaluation preprocessing of :func:`trainers.augment.eval_transform`, as data."""

    policy: str
    image_size: int
    channels: int
    crop_fraction: float
    normalization: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def resize_to(self) -> int:
        return round(self.image_size / self.crop_fraction)

    def describe(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "steps": [
                f"resize the shorter side to {self.resize_to} px (bilinear, antialias), keep aspect",
                f"centre crop {self.image_size}x{self.image_size}",
                "grey -> RGB by repetition (RGB kept)" if self.channels == 3 else "RGB -> grey by ITU-R 601 luma (grey kept)",
                f"normalize ({self.normalization}): (x - mean) / std on the [0, 255] pixel scale",
            ],
        }


def preprocessing_for(policy: str, image_size: int, channels: int) -> Preprocessing:
    from trainers import augment

    spec = augment.get_policy(policy)
    norm = augment.NORMALIZATIONS[spec.normalization]
    mean, std = norm.mean_std(channels)
    return Preprocessing(spec.name, int(image_size), int(channels), float(spec.eval_crop_fraction), norm.name,
                         tuple(mean), tuple(std))  # fmt: skip


def resize_crop(images, prep: Preprocessing):
    """Batched, graph-friendly :func:`trainers.augment.eval_transform` without its
    normalisation: ``[N, H, W, C]`` (or one ``[H, W, C]`` image) of any dtype and 1, 3 or 4
    channels -> float32 ``[N, S, S, prep.channels]`` pixels on the ``[0, 255]`` scale."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    if x.shape.rank == 3:
        x = x[None]
    size = prep.resize_to
    shape = tf.cast(tf.shape(x)[1:3], tf.float32)
    new = tf.cast(tf.round(shape * float(size) / tf.reduce_min(shape)), tf.int32)
    new = tf.maximum(new, size)
    x = tf.image.resize(x, new, method="bilinear", antialias=True)
    s = prep.image_size
    top, left = (new[0] - s) // 2, (new[1] - s) // 2
    x = x[:, top : top + s, left : left + s, :]
    have = x.shape[-1]
    if have is not None:  # static channel count
        if have == prep.channels:
            pass
        elif prep.channels == 3 and have == 1:
            x = tf.tile(x, [1, 1, 1, 3])
        elif prep.channels == 1 and have in (3, 4):
            x = tf.image.rgb_to_grayscale(x[..., :3])
        elif prep.channels == 3 and have == 4:
            x = x[..., :3]
        else:
            raise ExportError(f"cannot convert {have}-channel images to {prep.channels} channels.")
    else:
        c = tf.shape(x)[-1]
        if prep.channels == 3:
            x = tf.cond(c == 1, lambda: tf.tile(x[..., :1], [1, 1, 1, 3]), lambda: x[..., :3])
        else:
            x = tf.cond(c >= 3, lambda: tf.image.rgb_to_grayscale(x[..., :3]), lambda: x[..., :1])
    x = tf.ensure_shape(x, [None, s, s, prep.channels])
    return x


def _resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``[out_size, in_size]`` weights of ``tf.image.resize(method="bilinear",
    antialias=True)`` along one axis: TensorFlow's scale-and-translate with a triangle
    kernel widened by the downscale factor, half-pixel centres, rows normalised."""
    inv_scale = in_size / out_size
    kernel_scale = max(inv_scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * inv_scale
    distance = (np.arange(in_size)[None, :] + 0.5 - centres[:, None]) / kernel_scale
    weights = np.maximum(0.0, 1.0 - np.abs(distance))
    return weights / weights.sum(axis=1, keepdims=True)


def resize_crop_numpy(image: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """:func:`resize_crop` for one ``[H, W, C]`` image in numpy alone (no TensorFlow: what
    ``trainers.predict`` feeds a ``.tflite`` file): float32 ``[1, S, S, prep.channels]``
    pixels on ``[0, 255]``, equal to :func:`resize_crop` within float32 rounding."""
    x = np.asarray(image, np.float32)
    if x.ndim == 2:
        x = x[..., None]
    size, s = prep.resize_to, prep.image_size
    shape = np.array(x.shape[:2], np.float32)
    new = np.maximum(np.round(shape * np.float32(size) / shape.min()).astype(np.int64), size)
    top, left = (new[0] - s) // 2, (new[1] - s) // 2
    rows = _resize_matrix(x.shape[0], int(new[0]))[top : top + s]
    cols = _resize_matrix(x.shape[1], int(new[1]))[left : left + s]
    x = np.einsum("ih,hwc,jw->ijc", rows, x.astype(np.float64), cols)
    have = x.shape[-1]
    if prep.channels == 3:
        x = np.repeat(x, 3, axis=-1) if have == 1 else x[..., :3]
    elif have >= 3:
        x = x[..., :3] @ np.array([0.2989, 0.5870, 0.1140])[:, None]  # tf.image.rgb_to_grayscale
    else:
        x = x[..., :1]
    return x[None].astype(np.float32)


def normalize(x, prep: Preprocessing):
    import tensorflow as tf

    return (x - tf.constant(prep.mean, tf.float32)) / tf.constant(prep.std, tf.float32)


def run_plan_path(weights: str) -> str:
    """The ``plan.json`` that trainers.run writes beside its ``best.keras``/``last.keras``."""
    return os.path.join(os.path.dirname(os.path.abspath(weights)), "plan.json")


def _records(weights: str | None) -> list[tuple[str, dict[str, Any]]]:
    """``[(path, data)]`` recorded for a weights file, most specific first: its own card
    (``<stem>.json``, as trainers.prune and the shipped ``.keras`` files have), then the
    trainers.run ``plan.json`` beside it; ``{}`` for a file that is absent."""
    if not weights:
        return [("", {}), ("", {})]
    found = []
    for path in (os.path.splitext(os.path.abspath(weights))[0] + ".json", run_plan_path(weights)):
        data = {}
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        found.append((path, data if isinstance(data, dict) else {}))
    return found


def recorded_policy(weights: str | None) -> tuple[str | None, int | None]:
    """``(augment policy, image_size)`` recorded for a weights file: its own card's
    ``preprocessing``, else the run's ``plan.json``."""
    (_, card), (_, plan) = _records(weights)
    prep = card.get("preprocessing") or {}
    if prep.get("policy"):
        return prep["policy"], prep.get("image_size")
    return plan.get("augment"), plan.get("image_size")


def recorded_class_names(weights: str | None) -> tuple[list[str] | None, str | None]:
    """``(class names, where from)`` recorded for a weights file: its own card's
    ``class_names``, else the run's ``plan.json``; ``(None, None)`` when neither has them."""
    for path, data in _records(weights):
        if data.get("class_names"):
            return [str(n) for n in data["class_names"]], path
    return None, None


def default_stem(arch: str, weights: str | None) -> str:
    """The stem of default output names: a weights file named after what it is
    (``squeezenet1_1_pruned.keras``) names them; a run's ``best.keras`` or none: ``arch``."""
    stem = os.path.splitext(os.path.basename(weights))[0] if weights else "best"
    return arch if stem == "best" else stem


def default_output(arch: str, weights: str | None) -> str:
    """Where files go without ``--output``: the trainers.run folder holding ``weights`` (it
    has a ``plan.json``), else ``exports/<arch>/``; never the tracked ``saved_models/``."""
    if weights and os.path.isfile(run_plan_path(weights)):
        return os.path.dirname(weights) or "."
    return os.path.join(DEFAULT_OUTPUT_ROOT, arch)


def default_policy(arch: str) -> str:
    """The arch's recipe's augmentation policy (its eval transform), else ``simple``."""
    from trainers import recipes

    try:
        return recipes.recipe_for(arch).augment
    except (KeyError, ValueError):
        return "simple"


# ----------------------------------------------------------------------------- model


def _main_output(outputs):
    return outputs["main"] if isinstance(outputs, dict) else outputs


def output_kind(model) -> str:
    """``"probabilities"`` if the model ends in a softmax, else ``"logits"``."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return "probabilities" if getattr(activation, "__name__", "") == "softmax" else "logits"


_REDUCED = {"bfloat16", "float16", "mixed_bfloat16", "mixed_float16"}


def _float32_config(config: Any) -> tuple[Any, bool]:
    """``(config, changed)``: a Keras config with every mixed-precision dtype policy
    (``mixed_bfloat16``, ``mixed_float16``) and reduced-precision tensor dtype made float32."""
    if isinstance(config, list):
        items = [_float32_config(v) for v in config]
        return [v for v, _ in items], any(c for _, c in items)
    if not isinstance(config, dict):
        return config, False
    if config.get("class_name") == "DTypePolicy" and (config.get("config") or {}).get("name") in _REDUCED:
        return {**config, "config": {**config["config"], "name": "float32"}}, True
    out, changed = {}, False
    for key, value in config.items():
        reduced = key == "dtype" and isinstance(value, str) and value in _REDUCED
        value, hit = ("float32", True) if reduced else _float32_config(value)
        out[key] = value
        changed = changed or hit
    return out, changed


def load_keras_float32(path: str):
    """A ``.keras`` file as a float32 model. A model trained with ``--precision
    mixed_bfloat16`` (trainers.run's default on CPUs with AVX512_BF16) or ``mixed_float16``
    is saved with that policy; TFLite has no built-in bfloat16 kernels, so the model is
    rebuilt from its config with float32 policies and the (float32) weights loaded."""
    import zipfile

    import keras

    import keras_archs  # noqa: F401  (registers the custom layers)

    with zipfile.ZipFile(path) as archive:
        config, changed = _float32_config(json.loads(archive.read("config.json")))
    if not changed:
        return keras.saving.load_model(path, compile=False)
    model = keras.saving.deserialize_keras_object(config)
    model.load_weights(path)
    return model


def load_model(
    arch: str | None,
    weights: str | None = None,
    *,
    image_size: int | None = None,
    classes: int | None = None,
    options: dict[str, Any] | None = None,
):
    """The Keras model to export: a ``.keras`` file (architecture and weights), or the
    registry's ``arch`` with a ``.weights.h5`` file, or random initialisation (warns).

    Registry builds use ``classifier_activation=None`` (logits) and no auxiliary heads.
    """

    import keras_archs

    if weights and not os.path.exists(weights):
        raise ExportError(f"--weights file not found: {weights}")
    if weights and weights.endswith(".keras"):
        return load_keras_float32(weights)
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
        model.load_weights(weights)
    else:
        warnings.warn(
            f"no --weights given: exporting a randomly initialised {spec.name} (for tests only; its "
            "predictions are meaningless).",
            stacklevel=2,
        )
    return model


def model_input_spec(model) -> tuple[int, int]:
    """``(image_size, channels)`` of a square, fixed-size model input."""
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or shape[0] is None or shape[0] != shape[1]:
        raise ExportError(f"the model input must be a fixed square image (H, W, C); got {shape}. Pass --image_size.")
    return int(shape[0]), int(shape[2])


def weight_sparsity(model) -> float:
    """Fraction of exactly-zero entries over all conv and dense kernels."""
    total = zeros = 0
    for w in model.weights:
        if w.path.endswith("kernel") or "/kernel" in w.path:
            v = np.asarray(w.numpy())
            total += v.size
            zeros += int(np.sum(v == 0))
    return zeros / total if total else 0.0


def float_layers_in_int8(model) -> list[str]:
    found = {type(layer).__name__ for layer in model._flatten_layers(include_self=False)}
    return [note for cls, note in FLOAT_IN_INT8.items() if cls in found]


# ----------------------------------------------------------------------------- SavedModel


def make_archive(model, prep: Preprocessing, *, tflite_batch: int | None = None):
    """A ``keras.export.ExportArchive`` with the serving signatures described in the module
    docstring (``tflite_batch``: fix the ``preprocessed`` signature's batch, 1 for TFLite)."""
    import keras
    import tensorflow as tf

    kind = output_kind(model)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def head(x):
        out = _main_output(model(normalize(x, prep), training=False))
        return out

    def full(images):
        out = head(resize_crop(images, prep))
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


def _write_archive(archive, path: str) -> None:
    """Write a SavedModel to a temp directory beside ``path`` and rename it into place."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        archive.write_out(tmp, verbose=False)
        from trainers.outputs import public_mode

        public_mode(tmp, directory=True)  # mkdtemp made it 0700
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- data


def dataset_images(spec: str, prep: Preprocessing, *, split: str, limit: int, data_dir: str | None = None):
    """``(pixels float32 [n, S, S, C] after resize_crop, labels int32 [n], class_names)``: the
    first ``limit`` images of a split (a fixed, label-balanced-by-chance order). ``spec`` as in
    :func:`trainers.data.load_dataset` (``fashion_mnist``, ``folder:/path``, a TFDS name)."""
    from trainers import data

    try:
        ds, info = data.load_dataset(spec, split, data_dir=data_dir)
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(f"cannot read images from {spec!r}: {e}") from None
    ds = ds.take(limit).map(lambda image, label: (resize_crop(image, prep)[0], label))
    images, labels = [], []
    for x, y in ds.batch(256):
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        raise ExportError(f"{spec!r} ({split}) holds no readable images.")
    return np.concatenate(images), np.concatenate(labels).astype(np.int32), info.class_names


def export_class_names(labels: str | None, weights: str | None, num_classes: int) -> list[str] | None:
    """The class names the card records: ``--labels`` (``fashion_mnist`` or a text file),
    else those recorded for ``weights`` (:func:`recorded_class_names`), else ``None``."""
    from trainers.predict import PredictError, resolve_labels

    recorded, source = (None, None) if labels else recorded_class_names(weights)
    if recorded is not None and len(recorded) != num_classes:
        raise ExportError(
            f"{source} lists {len(recorded)} class names but the model has {num_classes} outputs; "
            "pass --labels (fashion_mnist or a text file, one name a line)."
        )
    try:
        return resolve_labels(labels, recorded, num_classes) if labels or recorded else None
    except PredictError as e:
        raise ExportError(str(e)) from None


def parity_data(prep: Preprocessing, n: int, seed: int = 0):
    """``(pixels, labels or None, source)``: Fashion-MNIST test images when the dataset is on
    this machine, else uniform random pixels."""
    from trainers import data

    try:
        images, labels, _ = dataset_images("fashion_mnist", prep, split="test", limit=n)
        return images, labels, f"fashion_mnist test[:{len(images)}]"
    except (ExportError, data.DatasetUnavailableError):
        rng = np.random.default_rng(seed)
        pixels = rng.uniform(0, 255, (n, prep.image_size, prep.image_size, prep.channels)).astype(np.float32)
        return pixels, None, f"{n} uniform random images (Fashion-MNIST not found)"


def keras_outputs(model, pixels: np.ndarray, prep: Preprocessing, batch_size: int = 64) -> np.ndarray:
    out = []
    for start in range(0, len(pixels), batch_size):
        x = normalize(pixels[start : start + batch_size], prep)
        out.append(np.asarray(_main_output(model(x, training=False))))
    return np.concatenate(out).astype(np.float32)


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


def _atomic_write_bytes(path: str, data: bytes) -> None:
    from trainers.outputs import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


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
    model=None,
    command: str | None = None,
    extra_card: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export one model; returns its model card (also written as ``<name>.json``).

    ``output`` defaults to :func:`default_output`; an existing output file or card is an
    :class:`ExportError` unless ``overwrite``.
    ``model`` may be given directly (a Keras model) instead of ``arch``/``weights``.
    ``baseline``: a ``.keras`` file of the float model (e.g. before pruning) whose accuracy on
    the same labelled parity images the card compares with the exported file's
    (``accuracy_drop_points``). See the module docstring and ``python -m trainers.export
    --help`` for the other arguments.
    """
    from trainers import tflite_utils

    fmt = (fmt or "").strip().lower().replace("_", "")
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    try:
        quantize = tflite_utils.check_quantization(quantize)
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
    run_policy, _ = recorded_policy(weights)
    policy = preprocessing or run_policy or default_policy(arch)
    try:
        prep = preprocessing_for(policy, size, channels)
    except ValueError as e:
        raise ExportError(str(e)) from None

    num_classes = int(_main_output(model.output).shape[-1])
    class_names = export_class_names(labels, weights, num_classes)

    output = output or default_output(arch, weights)
    quant_tag = {"none": "float32"}.get(quantize, quantize)
    stem = default_stem(arch, weights)
    name = name or (f"{stem}_savedmodel" if fmt == "savedmodel" else f"{stem}_{quant_tag}")
    target = os.path.join(output, name if fmt == "savedmodel" else f"{name}.tflite")
    card_path = os.path.join(output, f"{name}.json")
    from trainers.outputs import refuse_overwrite

    try:
        refuse_overwrite([target, card_path], overwrite=overwrite)
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
    from trainers.outputs import write_json

    write_json(card_path, card)
    card["path"] = target
    card["card_path"] = card_path
    return card


def _export_savedmodel(model, prep, target, pixels, labels) -> dict[str, Any]:
    import tensorflow as tf

    _write_archive(make_archive(model, prep), target)
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


def _export_tflite(model, prep, target, quantize, rep, sparse, pixels, labels, trained) -> dict[str, Any]:
    from trainers import tflite_utils

    with tempfile.TemporaryDirectory(prefix="keras_archs_export_") as tmp:
        saved = os.path.join(tmp, "saved_model")
        make_archive(model, prep, tflite_batch=1).write_out(saved, verbose=False)
        try:
            data = tflite_utils.convert_saved_model(
                saved, signature="preprocessed", quantize=quantize, representative=rep, sparse=sparse
            )
        except tflite_utils.ConversionError as e:
            raise ExportError(str(e)) from None
    info = tflite_utils.inspect_model(data)
    if not info.builtin_only:
        raise ExportError(f"the converted model uses non-built-in ops {info.custom_ops}; not written.")
    _atomic_write_bytes(target, data)
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
        interpreter = tflite_utils.make_interpreter(data)
        got = tflite_utils.run_signature(interpreter, pixels)
        figures = compare(keras_outputs(model, pixels, prep), got, labels)
        figures["tolerance"] = tolerance_check(quantize, figures, trained=trained and labels is not None)
        out["parity"] = figures
    return out


def _command(arch, weights, fmt, quantize, representative_data, output, name, sparse) -> str:
    parts = ["python", "-m", "trainers.export", "--arch", arch, "--format", fmt, "--quantize", quantize]
    if weights:
        parts += ["--weights", weights]
    if representative_data:
        parts += ["--representative_data", representative_data]
    if sparse:
        parts += ["--sparse"]
    parts += ["--output", output, "--name", name]
    return shlex.join(parts)


# ----------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m trainers.export",
        description="Export a keras_archs model to a SavedModel or a TFLite file, with a JSON model card.",
    )
    p.add_argument("--arch", help="registry name (optional when --weights is a .keras file)")
    p.add_argument("--weights", help=".keras file (e.g. a trainers.run best.keras) or .weights.h5; omit for random init")
    p.add_argument("--format", default="tflite", help="savedmodel | tflite (default tflite)")
    p.add_argument("--quantize", default="none", help="none | float16 | dynamic | int8 (tflite only)")
    p.add_argument("--representative_data", help="int8 calibration images: fashion_mnist | folder:/path | a TFDS name")
    p.add_argument("--representative_count", type=int, default=200, help="calibration images (default 200)")
    p.add_argument("--output", help="output directory (default: the run folder holding --weights, else exports/<arch>/)")
    p.add_argument("--name", help="file stem (default <arch or weights stem>_<quantization> or ..._savedmodel)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (refused otherwise)")
    p.add_argument("--image_size", type=int, help="input size for registry builds (default: the model's)")
    p.add_argument("--classes", type=int, help="classes for registry builds (default: the model's)")
    p.add_argument("--preprocessing", help="augmentation policy whose eval transform the model expects "
                   "(default: the run's plan.json, else the arch's recipe)")  # fmt: skip
    p.add_argument("--parity_images", type=int, default=100, help="images for the parity report (0: none)")
    p.add_argument("--sparse", action="store_true", help="store pruned weights in TFLite's sparse format")
    p.add_argument("--data_dir", help="where datasets are read from")
    p.add_argument("--labels", help="class names for the card: fashion_mnist or a text file, one name a line "
                   "(default: the run's plan.json beside --weights)")  # fmt: skip
    p.add_argument("--baseline", help="float .keras model (e.g. before pruning) to measure the accuracy drop against")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's native start-up log lines")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from trainers import quiet

    quiet.import_tensorflow(verbose=args.verbose)
    command = shlex.join(["python", "-m", "trainers.export", *(sys.argv[1:] if argv is None else argv)])
    try:
        card = export(
            args.arch,
            args.weights,
            fmt=args.format,
            quantize=args.quantize,
            representative_data=args.representative_data,
            representative_count=args.representative_count,
            output=args.output,
            name=args.name,
            image_size=args.image_size,
            classes=args.classes,
            preprocessing=args.preprocessing,
            parity_images=args.parity_images,
            sparse=args.sparse,
            data_dir=args.data_dir,
            labels=args.labels,
            baseline=args.baseline,
            command=command,
            overwrite=args.overwrite,
        )
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    parity = card.get("parity") or {}
    size = f"{card['size_bytes']:,} bytes" + (f" ({card['gzip_bytes']:,} gzip'd)" if "gzip_bytes" in card else "")
    print(f"wrote {card['path']}: {size}; card {card['card_path']}")
    if parity:
        line = (
            f"parity vs Keras on {parity['images']} images ({parity['source']}): max |diff| "
            f"{parity['max_abs_diff']:.3g}, top-1 agreement {parity['top1_agreement']:.4f}"
        )
        if "reference_accuracy" in parity:
            line += f", accuracy keras {parity['reference_accuracy']:.4f} / exported {parity['exported_accuracy']:.4f}"
        print(f"{line}; tolerance {parity['tolerance']['rule']}: {parity['tolerance']['passed']}")
    if "baseline" in card:
        print(f"accuracy: baseline {card['baseline']['accuracy']:.4f}, exported "
              f"{parity['exported_accuracy']:.4f} (drop {card['accuracy_drop_points']:.2f} points)")  # fmt: skip
    if card.get("float_ops_note"):
        print(card["float_ops_note"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
