"""Classify image files with an exported or trained model and print the top-k classes.

    python -m trainers.predict --model saved_models/lenet5/lenet5_float32.tflite shoe.png --labels fashion_mnist
    python -m trainers.predict --model runs/sq/best.keras a.jpg b.png --top_k 3

``--model`` is a ``.tflite`` file or SavedModel directory from ``trainers.export``, or a
``.keras`` file (e.g. a ``trainers.run`` ``best.keras``). The preprocessing comes from the
model card written next to the model (``<stem>.json``), else from the run's ``plan.json``
or ``--preprocessing``; labels from ``--labels`` (``fashion_mnist`` or a text file with one
name per line), else the card's ``class_names`` (trainers.export records them), else the
run's ``plan.json`` beside a ``.keras`` file, else class indices
(:mod:`trainers.deploy.predictor`).

A ``.tflite`` file with its card runs on LiteRT (``ai_edge_litert``) alone: images are read
with Pillow and resized in numpy, and TensorFlow is not imported. Exit codes:
:mod:`trainers.cli`.
"""

from __future__ import annotations

import os
import sys

from trainers import cli

os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (:mod:`trainers.cli`)."""
    p = cli.ArgumentParser(prog="python -m trainers.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    p.add_argument("--model", required=True, help=".tflite, .keras or SavedModel directory")
    p.add_argument("--top_k", type=int, default=5)
    p.add_argument("--labels", help="fashion_mnist, or a text file with one class name per line")
    p.add_argument("--preprocessing", help="augmentation policy whose eval transform to use (default: the card's)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's native start-up log lines")
    args = p.parse_args(argv)
    quiet = cli.quiet()
    quiet.set_verbose(args.verbose)
    if not args.model.endswith(".tflite"):  # a .tflite file runs on LiteRT alone
        quiet.import_tensorflow(verbose=args.verbose)
    from trainers.deploy.predictor import predict

    def run() -> int:
        results = predict(
            args.model, args.images, top_k=args.top_k, labels=args.labels, preprocessing=args.preprocessing
        )
        for path, top in zip(args.images, results):
            print(path)
            for rank, (index, name, prob) in enumerate(top, 1):
                print(f"  {rank}. {name} ({index})  {prob:.4f}")
        return 0

    return cli.run_command(run)


if __name__ == "__main__":
    sys.exit(main())
