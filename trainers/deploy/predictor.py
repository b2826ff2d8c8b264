"""Classify image files with an exported or trained model: the top-k classes with their names.

A model is a ``.tflite`` file or SavedModel directory from ``trainers.export``, or a ``.keras``
file (e.g. a ``trainers.run`` ``best.keras``). Its preprocessing comes from its card
(``<stem>.json``), else from the run's ``plan.json`` or the policy given; class names from the
``labels`` given (see :func:`trainers.data.classes.resolve_labels`), else the card's
``class_names``, else the run's ``plan.json`` beside a ``.keras`` file, else class indices.

A ``.tflite`` file with its card runs on LiteRT (``ai_edge_litert``) alone: images are read
with Pillow and resized in numpy (:func:`trainers.data.preprocess.resize_crop_numpy`), and
TensorFlow is not imported (nor is it by importing this module).
"""

from __future__ import annotations

import os

import numpy as np

from trainers.cli import FailedError, UsageError, first_line
from trainers.data import preprocess
from trainers.data.classes import resolve_labels
from trainers.deploy import records, tflite
from trainers.models import keras_outputs, load_keras, main_output, model_input_spec, output_kind


class PredictError(UsageError):
    """A bad model path or input image (exit code 2 on the command line)."""


def load_image(path: str) -> np.ndarray:
    """A uint8 ``[H, W, C]`` image (1, 3 or 4 channels) from a JPEG/PNG/BMP/GIF file (the
    first frame of an animation), read with Pillow: grey (+ alpha) gives 1 channel, 16-bit
    grey is scaled to 8 bits, palettes and other colour spaces become RGB (RGBA with
    transparency)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise PredictError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit grey
                return np.clip(np.round(np.asarray(image, np.float64) / 257.0), 0, 255).astype(np.uint8)[..., None]
            if mode in ("1", "L", "LA"):
                image = image.convert("L")
            elif mode not in ("RGB", "RGBA"):
                image = image.convert("RGBA" if mode in ("PA", "RGBa") or "transparency" in image.info else "RGB")
            pixels = np.asarray(image, np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise PredictError(
            f"not a readable image: {path} (JPEG, PNG, BMP or GIF expected; decoder said: {first_line(e)})"
        ) from None
    return pixels[..., None] if pixels.ndim == 2 else pixels


class Predictor:
    """``predict(images) -> probabilities [n, classes]`` for any of the supported model files.

    A file that is there but cannot be read as a model is a :class:`trainers.cli.FailedError`.
    """

    def __init__(self, model_path: str, preprocessing: str | None = None) -> None:
        if not os.path.exists(model_path):
            raise PredictError(f"model not found: {model_path}")
        self.path = model_path
        self.card = records.read_card(model_path)
        self.class_names: list[str] | None = self.card.get("class_names")
        if model_path.endswith(".tflite"):
            self._init_tflite(preprocessing)
        elif os.path.isdir(model_path):
            self._init_savedmodel()
        elif model_path.endswith(".keras"):
            self._init_keras(preprocessing)
        else:
            raise PredictError(f"--model must be a .tflite file, a .keras file or a SavedModel directory: {model_path}")

    def _init_tflite(self, preprocessing: str | None) -> None:
        try:
            self.interpreter = tflite.make_interpreter(self.path)
        except (RuntimeError, ValueError) as e:
            raise FailedError(f"cannot read {self.path} as a TFLite model: {first_line(e)}") from None
        signatures = self.interpreter.get_signature_list()
        if not signatures:
            raise FailedError(f"{self.path} has no signature; re-export it with trainers.export.")
        runner = self.interpreter.get_signature_runner(next(iter(signatures)))
        (detail,) = runner.get_input_details().values()
        (out_name, out_detail), *_ = runner.get_output_details().items()
        _, size, _, channels = (int(v) for v in detail["shape"])
        described = self.card.get("preprocessing")
        if described and not preprocessing:
            self.prep = preprocess.Preprocessing.from_card(described)
        else:
            self.prep = preprocess.preprocessing_for(preprocessing or "simple", size, channels)
        self.kind = "tflite"
        self.output = out_name
        self.num_classes = int(out_detail["shape"][-1])

    def _init_savedmodel(self) -> None:
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(self.path)
        except (OSError, ValueError) as e:
            raise FailedError(f"cannot read {self.path} as a SavedModel: {first_line(e)}") from None
        if "serving_default" not in loaded.signatures:
            raise FailedError(f"{self.path} has no serving_default signature (export it with trainers.export).")
        self._serving = loaded.signatures["serving_default"]
        self.kind = "savedmodel"
        self.num_classes = int(self._serving.structured_outputs["probabilities"].shape[-1])

    def _init_keras(self, preprocessing: str | None) -> None:
        self.model = load_keras(self.path)
        size, channels = model_input_spec(self.model)
        policy = records.policy_for(self.path, self.model.name, preprocessing)
        self.prep = preprocess.preprocessing_for(policy, size, channels)
        self.kind = "keras"
        self.num_classes = int(main_output(self.model.output).shape[-1])
        self.output = output_kind(self.model)
        self.class_names = self.class_names or records.recorded_class_names(self.path)[0]

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        """Class probabilities ``[len(images), classes]`` (TensorFlow is used only for
        SavedModel and ``.keras`` files)."""
        probs = []
        for image in images:
            if self.kind == "savedmodel":
                import tensorflow as tf

                out = self._serving(images=tf.constant(image[None], tf.float32))["probabilities"].numpy()
            else:
                pixels = preprocess.resize_crop_numpy(image, self.prep)
                if self.kind == "tflite":
                    out = tflite.run_signature(self.interpreter, pixels, output=self.output)
                else:
                    out = keras_outputs(self.model, pixels, self.prep)
                if self.output == "logits":
                    out = np.exp(out - out.max(axis=-1, keepdims=True))
                    out = out / out.sum(axis=-1, keepdims=True)
            probs.append(out[0])
        return np.stack(probs)


def predict(model: str, image_paths: list[str], *, top_k: int = 5, labels: str | None = None,
            preprocessing: str | None = None) -> list[list[tuple[int, str, float]]]:  # fmt: skip
    """For each image, the ``top_k`` ``(class index, name, probability)``, most likely first."""
    if not image_paths:
        raise PredictError("give at least one image file.")
    if top_k < 1:
        raise PredictError(f"--top_k must be >= 1, got {top_k}.")
    images = [load_image(p) for p in image_paths]  # fail on a bad file before loading the model
    predictor = Predictor(model, preprocessing)
    try:
        names = resolve_labels(labels, predictor.class_names, predictor.num_classes)
    except UsageError as e:
        raise PredictError(str(e)) from None
    probs = predictor.predict(images)
    results: list[list[tuple[int, str, float]]] = []
    for row in probs:
        order = np.argsort(-row)[: min(top_k, len(row))]
        results.append([(int(i), names[i], float(row[i])) for i in order])
    return results

