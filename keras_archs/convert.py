"""Convert a torchvision or keras.applications weights file into a keras_archs file.

    python -m keras_archs.convert --arch resnet50 --from resnet50-0676ba61.pth \\
        --to resnet50.weights.h5 --option downsample=3x3

The source format is detected from the file's content (PyTorch state dict,
Keras HDF5 with layer names, Keras 3 ``.weights.h5``, ``.keras``). The model is
built with the variant's defaults plus any ``--option name=value``; the output
(``.weights.h5`` or ``.keras``) is written to a temporary file, verified by
loading it into a freshly built model and comparing every weight, and only then
renamed to ``--to``. A file of PyTorch origin is read without torch.

Exit codes, as every command line of the project: 0 done; 2 a bad command line (an
unknown flag or architecture, a malformed or unknown option, a ``--from`` file that
does not exist, a ``--to`` that cannot be written), with one line
``error: <the problem>; <the fix>``; 1 the conversion failed (a corrupt file, weights
of another architecture or other options). ``--help`` imports neither Keras nor
TensorFlow; TensorFlow's start-up lines are hidden unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
from typing import Any

import numpy as np

from keras_archs import _quiet
from keras_archs._cli import EXIT_FAILURE, EXIT_USAGE, ArgumentParser, UsageError, first_line, report

SUFFIXES = (".weights.h5", ".keras")


def parse_option(text: str) -> tuple[str, object]:
    """``name=value``; the value is a Python literal if it parses as one, else a string.

    Example:
        >>> parse_option("bn_epsilon=1.001e-5"), parse_option("downsample=3x3")
        (('bn_epsilon', 1.001e-05), ('downsample', '3x3'))
    """
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--option expects name=value (e.g. downsample=3x3), got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name.strip(), value


def build_parser() -> argparse.ArgumentParser:
    """The command line's options."""
    parser = ArgumentParser(
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
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up log lines")
    return parser


def _check_paths(source: str, target: str) -> None:
    """The usage errors a command line can have before anything is imported or built."""
    if not os.path.isfile(source):
        raise UsageError(f"--from {source}: no such file; pass the path of the weights file to convert")
    if not target.endswith(SUFFIXES):
        raise UsageError(f"--to {target}: unknown output format; name the output *.weights.h5 or *.keras")
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise UsageError(f"--to {target}: the directory {directory} does not exist; create it first")


def convert(
    arch: str,
    source: str,
    target: str,
    *,
    options: dict[str, Any] | None = None,
    include_top: bool = True,
    classes: int | None = None,
) -> str:
    """Load ``source`` into ``arch`` (with ``options``), save it to ``target``, verify, and return ``target``.

    Example:
        >>> convert("resnet50", "resnet50-0676ba61.pth", "resnet50.weights.h5", options={"downsample": "3x3"})
        'resnet50.weights.h5'
    """
    from keras_archs import registry  # imports Keras: not needed for --help

    if not target.endswith(SUFFIXES):
        raise ValueError(f"--to must end in .weights.h5 or .keras, got {target!r}")
    spec = registry.get_spec(arch)
    kwargs = dict(options or {}, include_top=include_top)
    if classes is not None:
        kwargs["classes"] = classes
    model = spec.build(weights=source, **kwargs)
    directory = os.path.dirname(os.path.abspath(target))
    suffix = next(s for s in SUFFIXES if target.endswith(s))
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


def run(args: argparse.Namespace) -> int:
    """Do the conversion the parsed command line asks for; raises :class:`UsageError`."""
    _check_paths(args.source, args.target)
    if args.classes is not None and args.classes < 1:
        raise UsageError(f"--classes {args.classes}: not a positive number of classes; leave it out for the default")
    _quiet.set_verbose(args.verbose)
    with _quiet.quietly():
        from keras_archs import registry
        from keras_archs.weights import WeightsError
    try:
        spec = registry.get_spec(args.arch)
    except ValueError as err:
        raise UsageError(f"--arch {args.arch}: {first_line(err)}") from None
    options = dict(args.option)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise UsageError(
            f"--option {', '.join(unknown)}: not an option of {spec.name}; its options are {', '.join(spec.options)}"
        )
    try:
        out = convert(
            spec.name, args.source, args.target, options=options, include_top=not args.no_top, classes=args.classes
        )
    except (WeightsError, RuntimeError) as err:
        return report(err, EXIT_FAILURE)
    except (ValueError, TypeError) as err:  # an option value the builder refuses
        raise UsageError(f"--option: {first_line(err)}; see the options of {spec.name} in its docstring") from None
    print(f"wrote {out} ({spec.name}, verified by reloading)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line: exit code 0, 1 (the conversion failed) or 2 (a bad command line)."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as err:
        return report(err, EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())
