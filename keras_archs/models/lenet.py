"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied
to document recognition", Section II.B).

C1 (6@28x28) - S2 - C3 (16@10x10, Table I connections) - S4 - C5 (120) - F6 (84)
- output. Subsampling layers sum 2x2 windows with a trainable coefficient and bias
per map; every layer up to F6 is squashed by ``1.7159 * tanh(2/3 * a)``. Weights start
uniform in +-2.4 / fan-in (Appendix C), biases at zero.
"""

from __future__ import annotations

import keras

from keras_archs.builder import build_classifier
from keras_archs.layers import ConnectionTableConv2D, FanInUniform, ScaledTanh, TrainableSubsampling
from keras_archs.spec import Family, Variant

# Table I: for each of C3's 16 maps, the S2 maps it reads. Six maps take three
# contiguous inputs, six take four contiguous, three take four discontinuous, one
# takes all six.
C3_CONNECTION_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip

_CONNECTION_TABLES = ("paper", "full")


def _squash(x, name: str):
    return ScaledTanh(name=f"{name}_tanh")(x)


def lenet(*, connection_table: str = "paper", initializer: str = "paper", **common) -> keras.Model:
    """Core LeNet-5 builder.

    Args:
        connection_table: ``"paper"`` (Table I) or ``"full"``.
        initializer: ``"paper"`` (Appendix C: weights uniform in +-2.4 / fan-in, the
            subsampling coefficients with fan-in 4), or a Keras initializer name for
            the kernels (the coefficients then start at 1).
    """
    if connection_table not in _CONNECTION_TABLES:
        raise ValueError(
            f"connection_table must be one of {_CONNECTION_TABLES}, got {connection_table!r}."
        )
    paper_init = initializer == "paper"

    def kernel_init():
        return FanInUniform() if paper_init else keras.initializers.get(initializer)

    def subsample(x, name):
        # A subsampling unit's inputs are its 2x2 window: fan-in 4 for the shared coefficient.
        coefficient_init = FanInUniform(fan_in=4) if paper_init else "ones"
        return TrainableSubsampling(2, coefficient_initializer=coefficient_init, name=name)(x)

    def features(x):
        x = keras.layers.Conv2D(6, 5, kernel_initializer=kernel_init(), name="c1")(x)
        x = _squash(x, "c1")
        x = _squash(subsample(x, "s2"), "s2")
        if connection_table == "paper":
            x = ConnectionTableConv2D(C3_CONNECTION_TABLE, 5, kernel_initializer=kernel_init(), name="c3")(x)
        else:
            x = keras.layers.Conv2D(16, 5, kernel_initializer=kernel_init(), name="c3")(x)
        x = _squash(x, "c3")
        x = _squash(subsample(x, "s4"), "s4")
        x = keras.layers.Conv2D(120, 5, kernel_initializer=kernel_init(), name="c5")(x)
        return _squash(x, "c5")

    def top(x, classes, classifier_activation):
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(84, kernel_initializer=kernel_init(), name="f6")(x)
        x = _squash(x, "f6")
        return keras.layers.Dense(
            classes, activation=classifier_activation, kernel_initializer=kernel_init(), name="predictions"
        )(x)

    return build_classifier(features=features, top=top, **common)


FAMILIES = (
    Family(
        name="LeNet",
        core=lenet,
        paper="LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition",
        default_size=32,
        min_size=32,
        channels=1,
        default_classes=10,
        recipe="lenet5",
        options_doc='``connection_table="paper" | "full"``, ``initializer="paper"`` (or a Keras initializer name)',
        variants=(
            # C1 156 + S2 12 + C3 1,516 + S4 32 + C5 48,120 + F6 10,164 + output 850 (dense
            # softmax replacing the paper's 840 fixed RBF centres; see BUILD_NOTES.md).
            Variant(
                "LeNet5", "lenet5", 60_850, "paper (Section II.B, per-layer counts)",
                summary=(
                    "C3 uses the paper's partial connection table (1,516 parameters); the output is a softmax layer."
                ), macs=326_520,
            ),
        ),
    ),
)
