"""``python -m keras_archs [family]``: print the model table (``family``: a case-insensitive prefix, e.g. ``resnet``)."""

import sys

import keras_archs
from keras_archs.registry import format_table


def main(argv: list[str]) -> int:
    family = argv[1] if len(argv) > 1 else None
    try:
        specs = keras_archs.list_models(family)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    print(format_table(specs))
    print(f"\n{len(specs)} models. Build one with keras_archs.get_model(name).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
