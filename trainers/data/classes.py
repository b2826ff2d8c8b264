"""Class names: the tables of the datasets read offline, and what a command's ``--labels`` means.

No TensorFlow here: ``trainers.predict`` names the classes of a ``.tflite`` model without it.
"""

from __future__ import annotations

import os

from trainers.cli import UsageError

# Zalando's README (github.com/zalandoresearch/fashion-mnist), labels 0..9.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
# ``--labels`` values that name a table instead of a file.
TABLES = {"fashion_mnist": FASHION_MNIST_CLASSES}


def resolve_labels(labels: str | None, default: list[str] | None, num_classes: int) -> list[str]:
    """Class names: ``labels`` (a table's name such as ``fashion_mnist``, or a text file with
    one name a line), else ``default`` (e.g. a model card's ``class_names``), else the class
    indices as text. A count that differs from ``num_classes`` is a :class:`UsageError`."""
    if labels:
        key = labels.strip().lower().replace("-", "_")
        if key in TABLES:
            names = list(TABLES[key])
        elif os.path.isfile(labels):
            with open(labels, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        else:
            raise UsageError(
                f"--labels must be {' or '.join(repr(t) for t in TABLES)} or a text file with one class name per "
                f"line: {labels}"
            )
    elif default:
        names = list(default)
    else:
        return [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise UsageError(f"{len(names)} labels given but the model has {num_classes} classes.")
    return names
