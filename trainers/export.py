"""Export a keras_archs model for serving (SavedModel) or mobile (TFLite), with a model card.

    python -m trainers.export --arch lenet5 --weights runs/lenet5/best.keras --format tflite
    python -m trainers.export --arch squeezenet1_1 --weights pruned.keras --format tflite \\
        --quantize int8 --representative_data fashion_mnist --sparse
    python -m trainers.export --arch googlenet_bn --image_size 64 --classes 10 --format savedmodel

Writes ``<output>/<name>.tflite`` (or the SavedModel directory ``<output>/<name>/``) and the
JSON model card ``<output>/<name>.json``; ``<output>`` defaults to the trainers.run folder
that holds ``--weights`` (it has a ``plan.json``), else ``exports/<arch>/`` (git-ignored), so
files tracked in the repository are never replaced by default. An existing output file is
an error (exit code 2, nothing written) unless ``--overwrite`` is given. Without
``--weights`` the randomly initialised model is exported (with a warning), which is useful
for tests only. What the exported graphs compute: :mod:`trainers.deploy.exporter`.
Exit codes: :mod:`trainers.cli`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from trainers import cli

os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(
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
    """The command line; returns the exit code (:mod:`trainers.cli`)."""
    args = parse_args(argv)
    return cli.run_command(lambda: _export(args, sys.argv[1:] if argv is None else argv))


def _export(args: argparse.Namespace, argv: list[str]) -> int:
    cli.quiet().import_tensorflow(verbose=args.verbose)
    from trainers.deploy.exporter import export

    command = shlex.join(["python", "-m", "trainers.export", *argv])
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
