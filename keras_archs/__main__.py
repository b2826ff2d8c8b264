"""``python -m keras_archs [family] [--pretrained]``: print the model table.

``family`` is a case-insensitive prefix (``resnet`` lists ResNet and ResNet-CIFAR);
``--pretrained`` keeps the variants with official ImageNet weights. Exit code 2 and one
line for an unknown family or flag. TensorFlow's start-up lines are hidden unless
``--verbose``.
"""

from __future__ import annotations

import sys

from keras_archs import _quiet
from keras_archs._cli import EXIT_USAGE, ArgumentParser, report


def main(argv: list[str] | None = None) -> int:
    """Print the table; 0, or 2 for a bad command line."""
    parser = ArgumentParser(prog="python -m keras_archs", description="Print the table of every registered model.")
    parser.add_argument("family", nargs="?", help="case-insensitive prefix of the family names, e.g. resnet")
    parser.add_argument("--pretrained", action="store_true", help="only the variants with official ImageNet weights")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up log lines")
    args = parser.parse_args(argv)
    _quiet.set_verbose(args.verbose)
    with _quiet.quietly():
        from keras_archs import registry  # imports Keras: not needed for --help
    try:
        specs = registry.list_models(args.family, pretrained=args.pretrained)
    except ValueError as err:
        return report(err, EXIT_USAGE)
    print(registry.format_table(specs))
    print(f"\n{len(specs)} models. Build one with keras_archs.get_model(name).")
    print("pretrained: official ImageNet files (tv: torchvision, keras: keras.applications); weights='imagenet'")
    print("loads the first one the build options allow.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
