"""Convert a torchvision or keras.applications weights file into a keras_archs file.

    python -m keras_archs.convert --arch resnet50 --from resnet50-0676ba61.pth \\
        --to resnet50.weights.h5 --option downsample=3x3

The source format is detected from the file's content (PyTorch state dict,
Keras HDF5 with layer names, Keras 3 ``.weights.h5``, ``.keras``). The model is
built with the variant's defaults plus any ``--option name=value``; the output
(``.weights.h5`` or ``.keras``) is written to a temporary file, verified by
loading it into a freshly built model and comparing every weight, and only then
renamed to ``--to``. A file of PyTorch origin is read without torch.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile

import numpy as np


def parse_option(text: str) -> tuple[str, object]:
    """``name=value``; the value is a Python literal if it parses as one, else a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--option expects name=value, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_archs.convert",
        description=__doc__.split("\n\n")[0],
        epilog="Example: python -m keras_archs.convert --arch resnet50 --from model.pth "
        "--to resnet50.weights.h5 --option downsample=3x3",
    )
    parser.add_argument("--arch", required=True, help="registry name, e.g. resnet50 (python -m keras_archs lists them)")
    parser.add_argument("--from", dest="source", required=True, help="source file: .pth/.pt, .h5, .weights.h5, .keras")
    parser.add_argument("--to", dest="target", required=True, help="output file: .weights.h5 or .keras")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        type=parse_option,
        metavar="NAME=VALUE",
        help="family option of the builder, e.g. downsample=3x3 or bn_epsilon=1.001e-5 (repeatable)",
    )
    parser.add_argument("--no-top", action="store_true", help="build and save the model without its classifier")
    parser.add_argument("--classes", type=int, default=None, help="classes of the classifier (default: the variant's)")
    return parser


def convert(arch: str, source: str, target: str, *, options=None, include_top: bool = True, classes=None) -> str:
    """Load ``source`` into ``arch`` (with ``options``), save it to ``target``, verify, and return ``target``."""
    import keras_archs  # here, so that --help works without TensorFlow start-up

    if not (target.endswith(".weights.h5") or target.endswith(".keras")):
        raise ValueError(f"--to must end in .weights.h5 or .keras, got {target!r}")
    spec = keras_archs.get_spec(arch)
    kwargs = dict(options or {}, include_top=include_top)
    if classes is not None:
        kwargs["classes"] = classes
    model = spec.build(weights=source, **kwargs)
    directory = os.path.dirname(os.path.abspath(target))
    suffix = ".weights.h5" if target.endswith(".weights.h5") else ".keras"
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        if suffix == ".keras":
            model.save(tmp)
        else:
            model.save_weights(tmp)
        check = spec.build(weights=tmp, **kwargs)
        for mine, theirs in zip(model.weights, check.weights):
            if not np.array_equal(np.asarray(mine), np.asarray(theirs)):
                raise RuntimeError(f"verification failed: {mine.path} differs after reloading {tmp}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from keras_archs.weights import WeightsError

    try:
        out = convert(
            args.arch,
            args.source,
            args.target,
            options=dict(args.option),
            include_top=not args.no_top,
            classes=args.classes,
        )
    except (WeightsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({args.arch}, verified by reloading)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
