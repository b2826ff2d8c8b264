"""Building blocks shared by the families.

Padding follows the reference implementations (Caffe, cuda-convnet, torchvision):
a k x k convolution or pooling is padded symmetrically by an explicit amount,
never by TensorFlow's asymmetric ``"same"`` rule for strided layers, so weights
from those implementations give the same outputs here. Layer names are built
from the ``name`` prefix the caller passes (``conv2_block1_1`` ->
``conv2_block1_1_conv``, ``conv2_block1_1_bn``, ``conv2_block1_1_relu``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import keras

from keras_archs.layers import CeilMaxPooling2D

Tensor = keras.KerasTensor

# torchvision's BatchNorm2d defaults: eps 1e-5, running-average momentum 0.1
# (Keras counts momentum the other way round: 1 - 0.1).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def pad_for(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    *,
    name: str,
    strides: int = 1,
    padding: int | tuple[int, int] | str = "auto",
) -> tuple[Tensor, str]:
    """The padding of a k x k convolution or pooling named ``name``: ``(x, keras_padding)``.

    ``"auto"`` pads ``k // 2`` on each side (torchvision's usual choice), an int or
    (pad_h, pad_w) pads that much, ``"valid"`` nothing, and ``"same"`` is TensorFlow's
    rule (one row/column less at the top/left of a strided layer on an even-sized
    map), which only the TensorFlow references use. Symmetric stride-1 ``k // 2``
    padding is Keras ``"same"`` (identical for odd kernels); any other symmetric
    padding is an explicit ``ZeroPadding2D`` named ``{name}_pad`` before a ``"valid"`` layer.

    Example:
        >>> x, padding = pad_for(keras.Input((32, 32, 3)), 3, strides=2, name="conv1")
        >>> padding, x.shape[1]
        ('valid', 34)
    """
    if padding == "same":
        return x, "same"
    kh, kw = _pair(kernel_size)
    pad = {"auto": (kh // 2, kw // 2), "valid": (0, 0)}.get(padding) if isinstance(padding, str) else _pair(padding)
    if pad == (0, 0):
        return x, "valid"
    if strides == 1 and pad == (kh // 2, kw // 2) and kh % 2 and kw % 2:
        return x, "same"
    return keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x), "valid"


def conv(
    x: Tensor,
    filters: int,
    kernel_size: int | tuple[int, int],
    *,
    name: str,
    strides: int = 1,
    padding: int | tuple[int, int] | str = "auto",
    groups: int = 1,
    use_bias: bool = False,
    activation: str | Callable | None = None,
    kernel_initializer: str | keras.initializers.Initializer = "he_normal",
    bias_initializer: str | keras.initializers.Initializer = "zeros",
) -> Tensor:
    """A Conv2D layer named ``name`` with reference-style symmetric padding (:func:`pad_for`)."""
    x, keras_padding = pad_for(x, kernel_size, strides=strides, padding=padding, name=name)
    return keras.layers.Conv2D(
        filters,
        _pair(kernel_size),
        strides=strides,
        padding=keras_padding,
        groups=groups,
        use_bias=use_bias,
        activation=activation,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        name=name,
    )(x)


def batch_norm(
    x: Tensor, *, name: str, epsilon: float = BN_EPSILON, momentum: float = BN_MOMENTUM, scale: bool = True
) -> Tensor:
    """BatchNormalization over channels with torchvision's defaults; ``scale=False`` drops gamma."""
    return keras.layers.BatchNormalization(axis=-1, epsilon=epsilon, momentum=momentum, scale=scale, name=name)(x)


def conv_bn_act(
    x: Tensor,
    filters: int,
    kernel_size: int | tuple[int, int],
    *,
    name: str,
    strides: int = 1,
    padding: int | tuple[int, int] | str = "auto",
    groups: int = 1,
    activation: str | None = "relu",
    use_bias: bool = False,
    bn_epsilon: float = BN_EPSILON,
    bn_momentum: float = BN_MOMENTUM,
    bn_scale: bool = True,
) -> Tensor:
    """conv -> BN -> activation, named ``{name}_conv``, ``{name}_bn``, ``{name}_{activation}``.

    Example:
        >>> y = conv_bn_act(keras.Input((32, 32, 3)), 16, 3, strides=2, name="conv1")
    """
    x = conv(
        x,
        filters,
        kernel_size,
        name=f"{name}_conv",
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=use_bias,
    )
    x = batch_norm(x, name=f"{name}_bn", epsilon=bn_epsilon, momentum=bn_momentum, scale=bn_scale)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def pool(
    x: Tensor,
    pool_size: int,
    strides: int,
    *,
    name: str,
    kind: str = "max",
    padding: int = 0,
    ceil_mode: bool = False,
) -> Tensor:
    """Max or average pooling with symmetric zero padding, or Caffe's ``ceil_mode``.

    Zero padding equals the references' -inf padding for max pooling after a ReLU
    (inputs are non-negative). ``ceil_mode`` (Caffe, torchvision's GoogLeNet and
    SqueezeNet) keeps a last partial window, also for unknown input sizes
    (max pooling only: :class:`~keras_archs.layers.CeilMaxPooling2D`).
    """
    if ceil_mode:
        if kind != "max":
            raise ValueError(f"{name}: ceil_mode is implemented for max pooling only.")
        return CeilMaxPooling2D(pool_size, strides, padding, name=name)(x)
    layer = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}[kind]
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return layer(pool_size, strides=strides, padding="valid", name=name)(x)


def flatten_dense_top(
    x: Tensor,
    classes: int,
    classifier_activation,
    *,
    hidden_units: tuple[int, ...] = (4096, 4096),
    dropout: float = 0.5,
    activation: str = "relu",
    kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
    hidden_bias_initializer: str | keras.initializers.Initializer = "zeros",
    pool_to: tuple[int, int] | None = None,
) -> Tensor:
    """AlexNet/VGG's classifier: flatten, ``fc{i}`` (dense-ReLU-dropout) per hidden size, then ``predictions``.

    ``pool_to`` first average-pools the maps adaptively to that grid (layer ``avgpool``,
    torchvision's ``AdaptiveAvgPool2d``), so the dense layers keep their shapes at any
    input size; it belongs to the head, so ``include_top=False`` keeps the full maps.
    """
    if pool_to is not None:
        x = keras.layers.AdaptiveAveragePooling2D(pool_to, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=kernel_initializer,
            bias_initializer=hidden_bias_initializer,
            name=f"fc{i}",
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return keras.layers.Dense(
        classes, activation=classifier_activation, kernel_initializer=kernel_initializer, name="predictions"
    )(x)


def make_flatten_top(**kwargs) -> Callable:
    """:func:`flatten_dense_top` with fixed options, in the ``top`` signature of the builder."""
    return partial(flatten_dense_top, **kwargs)


def depthwise_conv(
    x: Tensor,
    kernel_size: int,
    *,
    name: str,
    strides: int = 1,
    padding: int | str = "auto",
    use_bias: bool = False,
    depthwise_initializer: str | keras.initializers.Initializer = "he_normal",
) -> Tensor:
    """A DepthwiseConv2D (one k x k filter per channel; torch ``groups=channels``) named ``name``,
    padded as :func:`conv` (:func:`pad_for`). A Keras DepthwiseConv2D (not a grouped Conv2D)
    so TFLite gets DEPTHWISE_CONV_2D."""
    x, keras_padding = pad_for(x, kernel_size, strides=strides, padding=padding, name=name)
    return keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding=keras_padding,
        use_bias=use_bias,
        depthwise_initializer=depthwise_initializer,
        name=name,
    )(x)
