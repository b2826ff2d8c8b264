"""Classify image files with an exported or trained model and print the top-k classes.

    python -m trainers.predict --model saved_models/lenet5/lenet5_float32.tflite shoe.png --labels fashion_mnist
    python -m trainers.predict --model runs/sq/best.keras a.jpg b.png --top_k 3

``--model`` is a ``.tflite`` file or SavedModel directory from :mod:`trainers.export`, or a
``.keras`` file (e.g. a ``trainers.run`` ``best.keras``). The preprocessing comes from the
model card written next to the model (``<stem>.json``), else from the run's ``plan.json``
or ``--preprocessing``; labels from ``--labels`` (``fashion_mnist`` or a text file with one
name per line), else the card's ``class_names`` (trainers.export records them), else the
run's ``plan.json`` beside a ``.keras`` file, else class indices.

A ``.tflite`` file with its card runs on LiteRT (``ai_edge_litert``) alone: images are read
with Pillow and resized in numpy, and TensorFlow is not imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np


class PredictError(ValueError):
    """Bad model or input (reported without a traceback by the CLI)."""


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
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PredictError(f"not a readable image: {path} (JPEG, PNG, BMP or GIF expected; decoder said: {first})") from None
    return pixels[..., None] if pixels.ndim == 2 else pixels


def card_path_for(model_path: str) -> str:
    return os.path.splitext(model_path.rstrip("/"))[0] + ".json"


def read_card(model_path: str) -> dict | None:
    path = card_path_for(model_path)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return None


def resolve_labels(labels: str | None, default: list[str] | None, num_classes: int) -> list[str]:
    """Class names: ``labels`` (``fashion_mnist`` or a text file, one name a line), else
    ``default`` (e.g. a model card's ``class_names``), else the class indices as text."""
    if labels:
        if labels.strip().lower().replace("-", "_") == "fashion_mnist":
            from trainers.data import FASHION_MNIST_CLASSES

            names = list(FASHION_MNIST_CLASSES)
        elif os.path.isfile(labels):
            with open(labels, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        else:
            raise PredictError(f"--labels must be 'fashion_mnist' or a text file with one class name per line: {labels}")
    elif default:
        names = list(default)
    else:
        return [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise PredictError(f"{len(names)} labels given but the model has {num_classes} classes.")
    return names


class Predictor:
    """``predict(images) -> probabilities [n, classes]`` for any of the supported model files."""

    def __init__(self, model_path: str, preprocessing: str | None = None) -> None:
        from trainers import export

        if not os.path.exists(model_path):
            raise PredictError(f"model not found: {model_path}")
        self.path = model_path
        self.card = read_card(model_path)
        self.class_names: list[str] | None = (self.card or {}).get("class_names")
        if model_path.endswith(".tflite"):
            self._init_tflite(preprocessing)
        elif os.path.isdir(model_path):
            import tensorflow as tf

            loaded = tf.saved_model.load(model_path)
            if "serving_default" not in loaded.signatures:
                raise PredictError(f"{model_path} has no serving_default signature (export it with trainers.export).")
            self._serving = loaded.signatures["serving_default"]
            self.kind = "savedmodel"
            self.num_classes = int(self._serving.structured_outputs["probabilities"].shape[-1])
        elif model_path.endswith(".keras"):
            import keras

            import keras_archs  # noqa: F401  (registers the custom layers)

            self.model = keras.saving.load_model(model_path, compile=False)
            size, channels = export.model_input_spec(self.model)
            policy = (
                preprocessing
                or (self.card or {}).get("preprocessing", {}).get("policy")
                or export.recorded_policy(model_path)[0]
                or export.default_policy(self.model.name)
            )
            self.prep = export.preprocessing_for(policy, size, channels)
            self.kind = "keras"
            self.num_classes = int(export._main_output(self.model.output).shape[-1])
            self.output = export.output_kind(self.model)
            self.class_names = self.class_names or export.recorded_class_names(model_path)[0]
        else:
            raise PredictError(f"--model must be a .tflite file, a .keras file or a SavedModel directory: {model_path}")

    def _init_tflite(self, preprocessing: str | None) -> None:
        from trainers import export, tflite_utils

        self.interpreter = tflite_utils.make_interpreter(self.path)
        signatures = self.interpreter.get_signature_list()
        if not signatures:
            raise PredictError(f"{self.path} has no signature; re-export it with trainers.export.")
        runner = self.interpreter.get_signature_runner(next(iter(signatures)))
        (detail,) = runner.get_input_details().values()
        (out_name, out_detail), *_ = runner.get_output_details().items()
        _, size, _, channels = (int(v) for v in detail["shape"])
        prep = (self.card or {}).get("preprocessing")
        if prep and not preprocessing:
            fields = {f.name for f in dataclasses.fields(export.Preprocessing)}
            kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in prep.items() if k in fields}
            self.prep = export.Preprocessing(**kwargs)
        else:
            self.prep = export.preprocessing_for(preprocessing or "simple", size, channels)
        self.kind = "tflite"
        self.output = out_name
        self.num_classes = int(out_detail["shape"][-1])

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        """Class probabilities ``[len(images), classes]`` (TensorFlow is used only for
        SavedModel and ``.keras`` files)."""
        from trainers import export, tflite_utils

        probs = []
        for image in images:
            if self.kind == "savedmodel":
                import tensorflow as tf

                out = self._serving(images=tf.constant(image[None], tf.float32))["probabilities"].numpy()
            else:
                pixels = export.resize_crop_numpy(image, self.prep)
                if self.kind == "tflite":
                    out = tflite_utils.run_signature(self.interpreter, pixels, output=self.output)
                else:
                    out = export.keras_outputs(self.model, pixels, self.prep)
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
    names = resolve_labels(labels, predictor.class_names, predictor.num_classes)
    probs = predictor.predict(images)
    results = []
    for row in probs:
        order = np.argsort(-row)[: min(top_k, len(row))]
        results.append([(int(i), names[i], float(row[i])) for i in order])
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainers.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    p.add_argument("--model", required=True, help=".tflite, .keras or SavedModel directory")
    p.add_argument("--top_k", type=int, default=5)
    p.add_argument("--labels", help="fashion_mnist, or a text file with one class name per line")
    p.add_argument("--preprocessing", help="augmentation policy whose eval transform to use (default: the card's)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's native start-up log lines")
    args = p.parse_args(argv)
    from trainers import quiet

    quiet.set_verbose(args.verbose)
    if not args.model.endswith(".tflite"):  # a .tflite file runs on LiteRT alone
        quiet.import_tensorflow(verbose=args.verbose)
    try:
        results = predict(args.model, args.images, top_k=args.top_k, labels=args.labels, preprocessing=args.preprocessing)
    except PredictError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path, top in zip(args.images, results):
        print(path)
        for rank, (index, name, prob) in enumerate(top, 1):
            print(f"  {rank}. {name} ({index})  {prob:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
