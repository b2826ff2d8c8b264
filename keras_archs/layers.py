"""Custom layers the papers need and Keras does not ship.

Every layer here is registered under the ``keras_archs`` package, written with
``keras.ops`` only (so it runs on every Keras 3 backend), and round-trips
through ``get_config`` so a saved ``.keras`` file loads in safe mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

PACKAGE = "keras_archs"


def check_channel_split(owner: str, channels: int | None, parts: int, noun: str = "groups") -> None:
    """Raise unless ``channels`` is known and divides into ``parts`` equal ``noun``."""
    if channels is None or channels % parts:
        raise ValueError(f"{owner}: {channels} channels do not split into {parts} {noun}.")


@keras.saving.register_keras_serializable(package=PACKAGE)
class FanInUniform(keras.initializers.Initializer):
    """Uniform in ``[-limit / F, limit / F]``, ``F`` the fan-in of the unit a weight feeds.

    LeCun et al. 1998, Appendix C: "uniform distribution between -2.4/F_i and 2.4/F_i
    where F_i is the number of inputs (fan-in) of the unit". ``F`` is the product of
    all but the last dimension of the weight's shape (kernel height x width x input
    channels; a dense layer's inputs), or ``fan_in`` when given (a weight shared by a
    unit's inputs, such as a subsampling coefficient).

    Example:
        >>> w = FanInUniform()((5, 5, 6, 16))  # fan-in 150: |w| <= 0.016
    """

    def __init__(self, limit: float = 2.4, fan_in: int | None = None, seed: int | None = None) -> None:
        self.limit = limit
        self.fan_in = fan_in
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def __call__(self, shape, dtype=None):
        if self.fan_in is None and len(shape) < 2:
            raise ValueError(f"FanInUniform needs a fan-in: pass fan_in= for the shape {tuple(shape)}.")
        fan_in = self.fan_in or int(np.prod(shape[:-1]))
        bound = self.limit / fan_in
        return keras.random.uniform(shape, -bound, bound, dtype=dtype, seed=self._generator)

    def get_config(self) -> dict[str, Any]:
        return {"limit": self.limit, "fan_in": self.fan_in, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LocalResponseNormalization(keras.layers.Layer):
    """Cross-channel LRN of Krizhevsky et al. 2012, Section 3.3.

    ``b_c = a_c / (k + alpha * sum_{c' in window(c)} a_{c'}^2) ** beta`` where the
    window holds ``depth`` adjacent channels centred on ``c``. This is the paper's
    form: ``alpha`` multiplies the sum directly. Caffe and PyTorch divide alpha by
    ``depth``; to reproduce them pass ``alpha=their_alpha / depth``. The defaults
    are the paper's (n=5, k=2, alpha=1e-4, beta=0.75).

    Args:
        depth: window size n (odd).
        k: additive bias.
        alpha: scale of the squared sum.
        beta: exponent.
        groups: the channels split into this many contiguous groups (AlexNet's
            towers, one per GPU, Section 3.2) and no window crosses from one group
            into another, as if each group were normalised alone.
    """

    def __init__(
        self,
        depth: int = 5,
        k: float = 2.0,
        alpha: float = 1e-4,
        beta: float = 0.75,
        groups: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if depth < 1 or depth % 2 == 0:
            raise ValueError(f"LRN depth must be a positive odd number, got {depth}.")
        if groups < 1:
            raise ValueError(f"LRN groups must be >= 1, got {groups}.")
        self.depth = depth
        self.k = k
        self.alpha = alpha
        self.beta = beta
        self.groups = groups

    def build(self, input_shape):
        check_channel_split("LRN", input_shape[-1], self.groups)

    def _window_sum(self, squared):
        """Sum over each channel's window of ``depth`` channels (zero beyond the edges)."""
        channels = squared.shape[-1]
        half = self.depth // 2
        padded = ops.pad(squared, [[0, 0]] * (len(squared.shape) - 1) + [[half, half]])
        # Sum of `depth` shifted channel slices: exact, and needs no conv kernel.
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.depth):
            window_sum = window_sum + padded[..., offset : offset + channels]
        return window_sum

    def call(self, inputs):
        squared = ops.square(inputs)
        if self.groups == 1:
            window_sum = self._window_sum(squared)
        else:
            size = inputs.shape[-1] // self.groups
            sums = [self._window_sum(squared[..., g * size : (g + 1) * size]) for g in range(self.groups)]
            window_sum = ops.concatenate(sums, axis=-1)
        return inputs / ops.power(self.k + self.alpha * window_sum, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "depth": self.depth,
            "k": self.k,
            "alpha": self.alpha,
            "beta": self.beta,
            "groups": self.groups,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledTanh(keras.layers.Layer):
    """LeNet-5's squashing function ``A * tanh(S * x)``, A=1.7159, S=2/3 (LeCun et al. 1998, Appendix A)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.amplitude = amplitude
        self.slope = slope

    def call(self, inputs):
        return self.amplitude * ops.tanh(self.slope * inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "amplitude": self.amplitude, "slope": self.slope}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TrainableSubsampling(keras.layers.Layer):
    """LeNet-5's S2/S4: sum over a 2x2 window, times a trainable coefficient, plus a trainable bias, per map."""

    def __init__(
        self, pool_size: int = 2, coefficient_initializer: str | keras.initializers.Initializer = "ones", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.coefficient_initializer = keras.initializers.get(coefficient_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.coefficient = self.add_weight(
            shape=(channels,), initializer=self.coefficient_initializer, name="coefficient"
        )
        self.bias = self.add_weight(shape=(channels,), initializer="zeros", name="bias")

    def call(self, inputs):
        window = self.pool_size
        summed = ops.average_pool(inputs, window, strides=window, padding="valid") * (window * window)
        return summed * self.coefficient + self.bias

    def compute_output_shape(self, input_shape):
        def shrink(d):
            return None if d is None else d // self.pool_size

        return (input_shape[0], shrink(input_shape[1]), shrink(input_shape[2]), input_shape[3])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "coefficient_initializer": keras.initializers.serialize(self.coefficient_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConnectionTableConv2D(keras.layers.Layer):
    """A 'valid' convolution whose output map ``j`` sees only input maps ``table[j]``.

    LeNet-5's C3 (LeCun et al. 1998, Table I): each of the 16 maps connects to a
    subset of S2's 6 maps, which both breaks symmetry and cuts parameters
    (1,516 instead of 2,416). Each output map has its own kernel over exactly its
    connected inputs, so the parameter count is that of the table.
    """

    def __init__(
        self,
        table: Sequence[Sequence[int]],
        kernel_size: int = 5,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = [list(map(int, row)) for row in table]
        if not self.table or any(not row for row in self.table):
            raise ValueError("ConnectionTableConv2D needs a non-empty table with no empty rows.")
        self.kernel_size = kernel_size
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        bad = sorted({c for row in self.table for c in row if not 0 <= c < channels})
        if bad:
            raise ValueError(f"Connection table names input maps {bad}, but the input has {channels}.")
        k = self.kernel_size
        self.kernels = [
            self.add_weight(
                shape=(k, k, len(row), 1), initializer=self.kernel_initializer, name=f"kernel_{j}"
            )
            for j, row in enumerate(self.table)
        ]
        self.bias = self.add_weight(shape=(len(self.table),), initializer="zeros", name="bias")
        # One dense (k, k, C, J) kernel is gathered from the per-map kernels at call
        # time (unconnected taps read an appended zero), so C3 runs as one convolution
        # over exactly the table's parameters instead of J gathers and J convolutions.
        total = sum(k * k * len(row) for row in self.table)
        index = np.full((k, k, channels, len(self.table)), total, dtype="int32")
        offset, grid = 0, np.arange(k * k).reshape(k, k)
        for j, row in enumerate(self.table):
            for i, c in enumerate(row):
                index[:, :, c, j] = offset + grid * len(row) + i
            offset += k * k * len(row)
        self._dense_index = index

    def call(self, inputs):
        flat = ops.concatenate(
            [ops.reshape(kernel, (-1,)) for kernel in self.kernels] + [ops.zeros((1,), self.kernels[0].dtype)]
        )
        dense_kernel = ops.take(flat, self._dense_index)
        return ops.conv(inputs, ops.cast(dense_kernel, inputs.dtype), padding="valid") + ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        def shrink(d):
            return None if d is None else d - self.kernel_size + 1

        return (input_shape[0], shrink(input_shape[1]), shrink(input_shape[2]), len(self.table))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "table": self.table,
            "kernel_size": self.kernel_size,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ZeroPadShortcut(keras.layers.Layer):
    """ResNet shortcut option A (He et al. 2015, Section 3.3): identity, subsampled by
    ``strides`` and zero-padded in the channel axis up to ``filters``; no parameters."""

    def __init__(self, filters: int, strides: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :] if s > 1 else inputs
        extra = self.filters - inputs.shape[-1]
        if extra < 0:
            raise ValueError(
                f"Option-A shortcut cannot shrink channels ({inputs.shape[-1]} -> {self.filters})."
            )
        if extra:
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])
        return x

    def compute_output_shape(self, input_shape):
        def shrink(d):
            return None if d is None else -(-d // self.strides)

        return (input_shape[0], shrink(input_shape[1]), shrink(input_shape[2]), self.filters)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelShuffle(keras.layers.Layer):
    """Channel shuffle of ShuffleNet (Zhang et al. 2017, Section 3.1; Ma et al. 2018, Figure 3).

    Channels-last: reshape ``C`` to ``(groups, C // groups)``, swap the two axes and
    flatten, so output channel ``i * groups + j`` is input channel
    ``j * (C // groups) + i`` (for ``groups=2`` the two halves are interleaved).
    Only reshape and transpose, which TFLite has as built-in ops.
    """

    def __init__(self, groups: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if groups < 1:
            raise ValueError(f"ChannelShuffle groups must be >= 1, got {groups}.")
        self.groups = groups

    def build(self, input_shape):
        check_channel_split("ChannelShuffle", input_shape[-1], self.groups)

    def call(self, inputs):
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        grouped = ops.reshape(inputs, (-1, shape[1], shape[2], self.groups, channels // self.groups))
        grouped = ops.transpose(grouped, (0, 1, 2, 4, 3))
        return ops.reshape(grouped, (-1, shape[1], shape[2], channels))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "groups": self.groups}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelSplit(keras.layers.Layer):
    """Split the channel axis into ``num_splits`` equal parts, returned as a list
    (torch ``x.chunk(num_splits, dim=1)``; ShuffleNet V2's channel split, Ma et al.
    2018, Section 4). TFLite: SPLIT."""

    def __init__(self, num_splits: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_splits < 1:
            raise ValueError(f"ChannelSplit num_splits must be >= 1, got {num_splits}.")
        self.num_splits = num_splits

    def build(self, input_shape):
        check_channel_split("ChannelSplit", input_shape[-1], self.num_splits, "parts")

    def call(self, inputs):
        return ops.split(inputs, self.num_splits, axis=-1)

    def compute_output_shape(self, input_shape):
        part = (*input_shape[:-1], input_shape[-1] // self.num_splits)
        return [part] * self.num_splits

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_splits": self.num_splits}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WeightStandardizedConv2D(keras.layers.Conv2D):
    """A Conv2D whose kernel is standardised per output channel on every call
    (Qiao et al. 2019, "Weight Standardization"; used throughout BiT, Kolesnikov
    et al. 2020, Section 2.1).

    ``w_hat = (w - mean(w)) / sqrt(var(w) + epsilon)``, with the mean and the biased
    variance taken over the kernel's height, width and input-channel axes, one pair
    per filter. The stored kernel stays unstandardised, so weights from the
    reference implementations load unchanged. The default ``epsilon=1e-10`` is the
    official BiT code's (big_transfer ``bit_pytorch`` ``StdConv2d``); timm's BiT
    models use ``1e-8``.
    """

    def __init__(self, *args: Any, epsilon: float = 1e-10, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epsilon = epsilon

    def standardized_kernel(self, kernel=None):
        """The kernel the convolution actually uses."""
        kernel = self.kernel if kernel is None else kernel
        mean = ops.mean(kernel, axis=(0, 1, 2), keepdims=True)
        variance = ops.var(kernel, axis=(0, 1, 2), keepdims=True)
        return (kernel - mean) / ops.sqrt(variance + self.epsilon)

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self.standardized_kernel(kernel))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CeilMaxPooling2D(keras.layers.Layer):
    """Max pooling with symmetric ``padding`` and Caffe/PyTorch ``ceil_mode`` rounding.

    The output has ``ceil((size + 2 * padding - pool_size) / strides) + 1`` cells per
    axis: a last, partial window is kept. Padding cells never win the max, as in Caffe
    and PyTorch: they repeat the nearest edge row/column, which lies in every window
    that reaches the padding (given ``padding < pool_size`` and ``strides <= pool_size -
    padding``, checked), so the max is that of the real cells. Unlike -inf padding this
    keeps every value finite, which int8 quantization needs (a -inf pad calibrates to an
    infinite scale). Works for unknown input sizes too (the bottom/right padding is
    computed at run time). Where the spatial size is known and TensorFlow's ``"same"``
    pooling has exactly these windows, that is used instead: no padding reaches the graph.
    """

    def __init__(self, pool_size: int = 3, strides: int = 2, padding: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= padding < pool_size or strides > pool_size - padding:
            # Beyond these, PyTorch drops a last window that starts in the right padding.
            raise ValueError(
                f"need 0 <= padding < pool_size and strides <= pool_size - padding, got "
                f"pool_size={pool_size}, strides={strides}, padding={padding}."
            )
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding

    def _extra(self, size):
        span = size + 2 * self.padding - self.pool_size
        return (self.strides - span % self.strides) % self.strides

    @staticmethod
    def _replicate_edges(x, axis: int, before, after):
        """``x`` with its first/last slice along ``axis`` repeated ``before``/``after`` times
        (counts may be tensors when the size is only known at run time)."""

        def repeated(edge, times):
            return ops.tile(edge, [times if i == axis else 1 for i in range(4)])

        index = [slice(None)] * 4
        parts = [x]
        if not (isinstance(before, int) and before == 0):
            index[axis] = slice(0, 1)
            parts.insert(0, repeated(x[tuple(index)], before))
        if not (isinstance(after, int) and after == 0):
            index[axis] = slice(-1, None)
            parts.append(repeated(x[tuple(index)], after))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=axis)

    def _same_is_exact(self, size) -> bool:
        """Whether TensorFlow's ``"same"`` max pooling, which pads ``total // 2`` cells before
        and the rest after and never lets them win, has exactly this layer's windows on an
        axis of ``size`` cells known when the graph is built (e.g. 3x3 stride-2 pooling
        without padding on an even size: one cell after)."""
        if not isinstance(size, int):
            return False
        k, s, p = self.pool_size, self.strides, self.padding
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        ceil_out = -(-(size + 2 * p - k) // s) + 1
        return out == ceil_out and total // 2 == p and total - total // 2 == p + self._extra(size)

    def call(self, inputs):
        shape = ops.shape(inputs)
        p = self.padding
        if all(map(self._same_is_exact, shape[1:3])):
            # One built-in pooling op (TFLite MAX_POOL_2D with SAME padding) instead of edge
            # slices and concatenations; the same maxima.
            return ops.max_pool(inputs, self.pool_size, strides=self.strides, padding="same")
        x = self._replicate_edges(inputs, 1, p, p + self._extra(shape[1]))
        x = self._replicate_edges(x, 2, p, p + self._extra(shape[2]))
        return ops.max_pool(x, self.pool_size, strides=self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        def out(d):
            if d is None:
                return None
            return -(-(d + 2 * self.padding - self.pool_size) // self.strides) + 1

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), input_shape[3])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}
