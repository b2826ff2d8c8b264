"""The papers' training augmentation as per-example ``tf.data`` functions, kept out of the model graph.

Every policy turns one ``uint8`` image ``[H, W, C]`` (any size, 1 or 3 channels) into a
``float32`` image ``[image_size, image_size, channels]`` normalised by the policy's
normalization (the policies, their normalizations and their evaluation preprocessing are in
:mod:`trainers.data.preprocess`):

============  ===========================================================  ===============
policy        training augmentation (paper, section)                       normalization
============  ===========================================================  ===============
alexnet       shorter side 256, centre 256x256, random 224 crop, flip,     caffe
              PCA colour lighting std 0.1 (Krizhevsky 2012, S2 and S4.1)
vgg           shorter side S ~ U[256, 512], random 224 crop, flip,         caffe
              RGB colour shift (Simonyan & Zisserman 2014, S3.1)
inception     random-sized crop 8-100% area, aspect 3/4-4/3, random        inception
              interpolation, flip, photometric distortions (Szegedy 2014,
              S6)
resnet        shorter side ~ U[256, 480], random 224 crop, flip, colour    caffe
              lighting of [21] (He 2015, S3.4)
cifar         pad 4, random 32 crop, flip (He 2015, S4.2)                  unit
randaugment   inception crop + flip + RandAugment N=2, M=9                 imagenet
              (Cubuk 2019 "RandAugment"; EfficientNet, Tan & Le 2019 S5.2)
autoaugment   inception crop + flip + AutoAugment ImageNet policy          imagenet
              (Cubuk 2018 "AutoAugment", appendix; EfficientNet S5.2)
mixup         inception crop + flip; the trainer then applies :func:`mixup`  imagenet
              on batches with ``Policy.mixup_alpha`` (Zhang 2018, S3.1)
simple        resize to image_size, flip (small datasets: Fashion-MNIST)   unit
============  ===========================================================  ===============

Sizes are the papers' numbers at a 224 crop and scale with ``image_size`` (shorter side
``256 * image_size / 224`` and so on).

Randomness is stateless: :meth:`TrainTransform.apply` is a pure function of
``(image, seed)``. Called as ``(image, label)`` the transform draws per-example seeds from a
``tf.random.Generator`` made from ``seed`` (deterministic for a sequential ``map``); use
:func:`map_train` for a pipeline that stays deterministic under parallel ``map``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from trainers.data.preprocess import get_policy, normalizations, to_channels

# ImageNet RGB principal components for [0, 1] pixels (the AlexNet paper, Section 4.1,
# describes the method without numbers; these are fb.resnet.torch's, datasets/imagenet.lua).
# Columns of PCA_EIGVEC are the eigenvectors.
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

# The papers' crop size: every absolute size below is scaled by image_size / REFERENCE_CROP.
REFERENCE_CROP = 224

RANDAUGMENT_NUM_OPS = 2
RANDAUGMENT_MAGNITUDE = 9.0
RANDAUGMENT_MAX_LEVEL = 10.0  # AutoAugment's level scale; M=10 is each op's maximum
AUTOAUGMENT_MAX_LEVEL = 9  # the policy's levels are bins 0..9 of each op's range
FILL_VALUE = 128.0  # geometric ops fill with grey, as EfficientNet's reference code

# A seed: an int, a shape-[2] seed tensor, or a generator to draw one from.
Seed = int | tf.Tensor | tf.random.Generator


# ----------------------------------------------------------------------------- small helpers

# The transforms hold no Python control flow on tensors: skipping AutoGraph's conversion
# makes tracing them inside Dataset.map many times faster.
_plain_python = tf.autograph.experimental.do_not_convert


def _seeds(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
    split = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=num)
    return [split[i] for i in range(num)]


def _scaled(size: int, image_size: int) -> int:
    return round(size * image_size / REFERENCE_CROP)


def _channels(image: tf.Tensor) -> int:
    channels = image.shape[-1]
    if channels not in (1, 3):
        raise ValueError(
            f"Images must have a known channel count of 1 or 3, got shape {image.shape}. "
            "Decode with an explicit channels= argument."
        )
    return int(channels)


def _random_crop(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    return tf.image.stateless_random_crop(image, [size, size, _channels(image)], seed=seed)


def _flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    return tf.image.stateless_random_flip_left_right(image, seed=seed)


# Speed notes, measured on one 224x224x3 float image in a tf.data map on one CPU core:
# tf.where's broadcasting kernel (SelectV2) takes ~0.5 ms where the same-shape Select takes
# ~0.08 ms; a ``[C]`` operand broadcast over ``[H, W, C]`` costs about twice a ``[W * C]`` one
# over ``[H, W * C]``; ScaleAndTranslate (the antialiased resize) costs per output pixel, so
# only the window that is kept is computed.


def _select(condition: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``tf.where(condition, x, y)`` for three tensors of one shape, with TF's faster
    same-shape kernel."""
    return tf.raw_ops.Select(condition=condition, x=x, y=y)


def _channelwise(
    image: tf.Tensor, scale: Sequence[float] | tf.Tensor, offset: Sequence[float] | tf.Tensor
) -> tf.Tensor:
    """``image * scale + offset`` per channel (``[C]`` vectors) on a float ``[H, W, C]`` image."""
    shape = tf.shape(image)
    width, channels = shape[1], image.shape[-1]
    rows = tf.reshape(image, [shape[0], width * channels])
    scale = tf.tile(tf.cast(scale, tf.float32), [width])
    offset = tf.tile(tf.cast(offset, tf.float32), [width])
    return tf.reshape(rows * scale + offset, shape)


def _shorter_side_size(image: tf.Tensor, size: tf.Tensor | int) -> tf.Tensor:
    """``(height, width)`` with the shorter side ``size``, rounded as
    :func:`trainers.data.preprocess.resize_shorter_side` rounds it."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    new = tf.cast(tf.round(shape * tf.cast(size, tf.float32) / tf.reduce_min(shape)), tf.int32)
    return tf.maximum(new, tf.cast(size, tf.int32))


def _resized_window(image: tf.Tensor, new_size: tf.Tensor, window: int, offset: tf.Tensor) -> tf.Tensor:
    """``tf.image.resize(image, new_size, antialias=True)`` (bilinear) cropped to the
    ``window x window`` square at ``offset = (top, left)``, computing only that square
    (ScaleAndTranslate, the kernel of the antialiased resize, with a translation)."""
    scale = tf.cast(new_size, tf.float32) / tf.cast(tf.shape(image)[:2], tf.float32)
    out = tf.raw_ops.ScaleAndTranslate(
        images=image[None],
        size=tf.constant([window, window], tf.int32),
        scale=scale,
        translation=-tf.cast(offset, tf.float32),
        kernel_type="triangle",
        antialias=True,
    )
    return tf.ensure_shape(out[0], [window, window, image.shape[-1]])


def _crop_offset(limit: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The ``(top, left)`` that ``tf.image.stateless_random_crop`` draws for ``seed`` when the
    image exceeds the crop by ``limit - 1`` rows and columns."""
    draw = tf.random.stateless_uniform([3], seed, maxval=tf.int32.max, dtype=tf.int32)
    return draw[:2] % limit


def pca_lighting(image: tf.Tensor, seed: tf.Tensor, std: float = 0.1) -> tf.Tensor:
    """AlexNet Section 4.1: add ``sum_i p_i * alpha_i * lambda_i`` to every RGB pixel.

    ``alpha_i ~ N(0, std)`` once per image; ``p_i, lambda_i`` are the eigenvectors and
    eigenvalues of ImageNet's RGB covariance (for [0, 1] pixels, hence the factor 255).
    Not clipped, as in the paper and fb.resnet.torch.
    """
    alpha = tf.random.stateless_normal([3], seed=seed, stddev=std)
    offset = 255.0 * tf.linalg.matvec(tf.constant(PCA_EIGVEC), alpha * tf.constant(PCA_EIGVAL))
    return tf.nn.bias_add(image, offset)


def random_sized_crop(
    image: tf.Tensor,
    image_size: int,
    seed: tf.Tensor,
    *,
    area_range: tuple[float, float] = (0.08, 1.0),
    aspect_range: tuple[float, float] = (3 / 4, 4 / 3),
    methods: Sequence[str] = ("bilinear",),
) -> tf.Tensor:
    """GoogLeNet Section 6: a crop of 8-100% of the area, aspect 3/4-4/3, resized to square.

    With several ``methods`` one is picked uniformly per image (the paper's random
    interpolation). After 10 failed attempts the whole image is used (tf's sampler). The
    resizing is not antialiased, as in the reference implementations of the policies that
    use this crop (TF-slim's ``inception_preprocessing``, ``tf.image.resize_images``; the
    EfficientNet reference's ``preprocessing.py``, ``tf.image.resize_bicubic``), and it is
    4-5 times cheaper than antialiased resizing. Float32 out, clipped to [0, 255].
    """
    s_box, s_method = _seeds(seed, 2)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=s_box,
        min_object_covered=0.0,
        aspect_ratio_range=aspect_range,
        area_range=area_range,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, size)
    crop.set_shape([None, None, _channels(image)])

    def resize(method: str) -> tf.Tensor:
        out = tf.cast(tf.image.resize(crop, [image_size, image_size], method=method), tf.float32)
        return tf.clip_by_value(out, 0.0, 255.0)

    if len(methods) == 1:
        return resize(methods[0])
    index = tf.random.stateless_uniform([], s_method, 0, len(methods), dtype=tf.int32)
    return tf.switch_case(index, [functools.partial(resize, m) for m in methods])


def photometric_distortion(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """GoogLeNet Section 6 cites Howard's photometric distortions; the ranges and the four
    orderings are those of TF-slim's ``inception_preprocessing.distort_color``:
    brightness +-32/255, saturation and contrast x[0.5, 1.5], hue +-0.2, order random."""
    s_order, s_b, s_s, s_h, s_c = _seeds(seed, 5)
    x = image / 255.0
    ops = {
        "b": lambda t: tf.image.stateless_random_brightness(t, 32.0 / 255.0, s_b),
        "s": lambda t: tf.image.stateless_random_saturation(t, 0.5, 1.5, s_s),
        "h": lambda t: tf.image.stateless_random_hue(t, 0.2, s_h),
        "c": lambda t: tf.image.stateless_random_contrast(t, 0.5, 1.5, s_c),
    }

    def run(order: str) -> tf.Tensor:
        t = x
        for key in order:
            t = ops[key](t)
        return tf.clip_by_value(t, 0.0, 1.0)

    index = tf.random.stateless_uniform([], s_order, 0, 4, dtype=tf.int32)
    out = tf.switch_case(index, [functools.partial(run, o) for o in ("bshc", "sbch", "chbs", "hscb")])
    return out * 255.0


# ----------------------------------------------------------------------------- AutoAugment / RandAugment ops
# Pure tf ops on float [H, W, 3] images in [0, 255], with PIL's semantics (the papers'
# implementations use PIL); tests compare them with PIL.


def _luma(image: tf.Tensor) -> tf.Tensor:
    return tf.round(image[..., 0:1] * 0.299 + image[..., 1:2] * 0.587 + image[..., 2:3] * 0.114)


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor: float | tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def adjust_color(image: tf.Tensor, factor: float | tf.Tensor) -> tf.Tensor:
    """PIL ImageEnhance.Color: blend with the grey version."""
    return _blend(tf.broadcast_to(_luma(image), tf.shape(image)), image, factor)


def adjust_contrast(image: tf.Tensor, factor: float | tf.Tensor) -> tf.Tensor:
    """PIL ImageEnhance.Contrast: blend with the mean grey level."""
    mean = tf.round(tf.reduce_mean(_luma(image)))
    return _blend(tf.fill(tf.shape(image), mean), image, factor)


def adjust_brightness(image: tf.Tensor, factor: float | tf.Tensor) -> tf.Tensor:
    """PIL ImageEnhance.Brightness: blend with black."""
    return _blend(tf.zeros_like(image), image, factor)


def adjust_sharpness(image: tf.Tensor, factor: float | tf.Tensor) -> tf.Tensor:
    """PIL ImageEnhance.Sharpness: blend with PIL's SMOOTH filter (border pixels kept)."""
    # The 3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 as a box sum plus 4x the centre.
    inner = image[1:-1, 1:-1]
    rows = image[:, :-2] + image[:, 1:-1] + image[:, 2:]
    smooth = tf.round((rows[:-2] + rows[1:-1] + rows[2:] + 4.0 * inner) / 13.0)
    middle = tf.concat([image[1:-1, :1], _blend(smooth, inner, factor), image[1:-1, -1:]], axis=1)
    return tf.clip_by_value(tf.concat([image[:1], middle, image[-1:]], axis=0), 0.0, 255.0)


def posterize(image: tf.Tensor, bits: int | tf.Tensor) -> tf.Tensor:
    """Keep the ``bits`` most significant bits of each 8-bit value."""
    pixels = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.int32)
    mask = tf.bitwise.bitwise_and(tf.bitwise.left_shift(255, 8 - tf.cast(bits, tf.int32)), 255)
    return tf.cast(tf.bitwise.bitwise_and(pixels, mask), tf.float32)


def solarize(image: tf.Tensor, threshold: float) -> tf.Tensor:
    """Invert the values at or above ``threshold`` (PIL ImageOps.solarize)."""
    return _select(image >= threshold, 255.0 - image, image)


def invert(image: tf.Tensor) -> tf.Tensor:
    return 255.0 - image


def autocontrast(image: tf.Tensor) -> tf.Tensor:
    """Stretch each channel to [0, 255] (PIL ImageOps.autocontrast, float arithmetic)."""
    pixels = tf.reshape(image, [-1, _channels(image)])
    lo = tf.reduce_min(pixels, axis=0)
    hi = tf.reduce_max(pixels, axis=0)
    scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1e-6), 1.0)
    offset = tf.where(hi > lo, lo, 0.0)
    return tf.clip_by_value(_channelwise(image, scale, -offset * scale), 0.0, 255.0)


def equalize(image: tf.Tensor) -> tf.Tensor:
    """Per-channel histogram equalisation with PIL ImageOps.equalize's lookup table (all
    channels in one histogram and one lookup, their values offset by 256 per channel)."""
    channels = _channels(image)
    values = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.int32) + tf.range(channels) * 256
    hist = tf.math.bincount(tf.reshape(values, [-1]), minlength=256 * channels, maxlength=256 * channels)
    hist = tf.reshape(hist, [channels, 256])
    last_bin = 255 - tf.argmax(tf.cast(tf.reverse(hist, [1]) > 0, tf.int32), axis=1, output_type=tf.int32)
    last = tf.gather(hist, last_bin, batch_dims=1)
    step = (tf.reduce_sum(hist, axis=1) - last) // 255
    before = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.minimum((step[:, None] // 2 + before) // tf.maximum(step, 1)[:, None], 255)
    equalized = tf.cast(tf.gather(tf.reshape(lut, [-1]), values), tf.float32)
    return _select(tf.broadcast_to(step > 0, tf.shape(image)), equalized, image)


def _round_half_away(x: tf.Tensor) -> tf.Tensor:
    """C's ``round``: halves away from zero (``tf.round`` rounds them to even)."""
    return tf.sign(x) * tf.floor(tf.abs(x) + 0.5)


def affine(image: tf.Tensor, transform: Sequence) -> tf.Tensor:
    """Nearest-neighbour affine warp; ``transform`` maps output (x, y) to input
    ``(a0 x + a1 y + a2, b0 x + b1 y + b2)`` (PIL's AFFINE convention); grey fill.

    The same pixels as ``ImageProjectiveTransformV3`` (NEAREST, CONSTANT fill), computed as
    one gather of whole pixels: the source coordinates once per pixel instead of once per
    channel value, several times faster.
    """
    shape = tf.shape(image)
    height, width, channels = shape[0], shape[1], image.shape[-1]
    a0, a1, a2, b0, b1, b2 = (tf.cast(t, tf.float32) for t in transform)
    y = tf.cast(tf.range(height), tf.float32)[:, None]
    x = tf.cast(tf.range(width), tf.float32)[None, :]
    src_x = _round_half_away(a0 * x + a1 * y + a2)
    src_y = _round_half_away(b0 * x + b1 * y + b2)
    inside = (src_x >= 0) & (src_x < tf.cast(width, tf.float32)) & (src_y >= 0) & (src_y < tf.cast(height, tf.float32))
    index = tf.where(inside, tf.cast(src_y, tf.int32) * width + tf.cast(src_x, tf.int32), height * width)
    pixels = tf.concat([tf.reshape(image, [-1, channels]), tf.fill([1, channels], tf.cast(FILL_VALUE, image.dtype))], 0)
    return tf.ensure_shape(tf.reshape(tf.gather(pixels, index), shape), image.shape)


def rotate(image: tf.Tensor, degrees: float | tf.Tensor) -> tf.Tensor:
    """Rotate counter-clockwise by ``degrees`` about the image centre."""
    theta = tf.cast(degrees, tf.float32) * math.pi / 180.0
    shape = tf.cast(tf.shape(image), tf.float32)
    cx, cy = (shape[1] - 1) / 2, (shape[0] - 1) / 2
    cos, sin = tf.cos(theta), tf.sin(theta)
    return affine(image, [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy])


def _signed(value: float, seed: tf.Tensor) -> tf.Tensor:
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.where(flip, -value, value)


# op name -> (function of (image, magnitude, seed), maximum magnitude or None). Magnitude
# at level L of max_level: max * L / max_level (torchvision's and the AutoAugment paper's
# linear bins). Translation's maximum, 150 px of 331 (AutoAugment, Section 3), is a
# fraction of the width.
def _op_table() -> dict[str, tuple[Callable, float | None]]:
    def shear_x(x, m, s):
        return affine(x, [1.0, _signed(m, s), 0.0, 0.0, 1.0, 0.0])

    def shear_y(x, m, s):
        return affine(x, [1.0, 0.0, 0.0, _signed(m, s), 1.0, 0.0])

    def translate_x(x, m, s):
        return affine(x, [1.0, 0.0, _signed(m, s) * tf.cast(tf.shape(x)[1], tf.float32), 0.0, 1.0, 0.0])

    def translate_y(x, m, s):
        return affine(x, [1.0, 0.0, 0.0, 0.0, 1.0, _signed(m, s) * tf.cast(tf.shape(x)[0], tf.float32)])

    return {
        "Identity": (lambda x, m, s: x, None),
        "ShearX": (shear_x, 0.3),
        "ShearY": (shear_y, 0.3),
        "TranslateX": (translate_x, 150.0 / 331.0),
        "TranslateY": (translate_y, 150.0 / 331.0),
        "Rotate": (lambda x, m, s: rotate(x, _signed(m, s)), 30.0),
        "Brightness": (lambda x, m, s: adjust_brightness(x, 1.0 + _signed(m, s)), 0.9),
        "Color": (lambda x, m, s: adjust_color(x, 1.0 + _signed(m, s)), 0.9),
        "Contrast": (lambda x, m, s: adjust_contrast(x, 1.0 + _signed(m, s)), 0.9),
        "Sharpness": (lambda x, m, s: adjust_sharpness(x, 1.0 + _signed(m, s)), 0.9),
        "Posterize": (lambda x, m, s: posterize(x, m), 4.0),
        "Solarize": (lambda x, m, s: solarize(x, m), 255.0),
        "AutoContrast": (lambda x, m, s: autocontrast(x), None),
        "Equalize": (lambda x, m, s: equalize(x), None),
        "Invert": (lambda x, m, s: invert(x), None),
    }


OPS = _op_table()


def op_magnitude(op: str, level: float | None, max_level: float) -> float | int | None:
    """The op's argument at ``level`` (of ``max_level``): shear, translation fraction,
    degrees, enhancement delta, kept bits (Posterize) or threshold (Solarize)."""
    top = OPS[op][1]
    if top is None or level is None:
        return None
    ratio = level / max_level
    if op == "Posterize":
        return int(min(8, max(1, 8 - round(top * ratio))))
    if op == "Solarize":
        return float(min(255.0, max(0.0, top * (1.0 - ratio))))
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return float(min(0.99, top * ratio))  # keep factors 1 +- m positive
    return float(top * ratio)


def apply_op(image: tf.Tensor, op: str, magnitude: float | tf.Tensor | None, seed: tf.Tensor) -> tf.Tensor:
    """Apply ``op`` (signed ops draw their sign from ``seed``)."""
    return OPS[op][0](image, magnitude, seed)


# AutoAugment paper, appendix: the ImageNet policy, 25 sub-policies of two
# (operation, probability, level in 0..9) each. tests/test_augment.py checks it against
# torchvision's AutoAugmentPolicy.IMAGENET.
AUTOAUGMENT_IMAGENET: tuple[tuple[tuple[str, float, int | None], ...], ...] = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
)

# RandAugment paper, Section 3: the 14 transformations N are drawn from (uniformly, each
# applied with magnitude M).
RANDAUGMENT_OPS = (
    "Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color", "Posterize",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
)  # fmt: skip


def _switch_op(image: tf.Tensor, names: Sequence[str], index: tf.Tensor, magnitude, seed: tf.Tensor) -> tf.Tensor:
    return tf.switch_case(index, [functools.partial(apply_op, image, name, magnitude, seed) for name in names])


def autoaugment(
    image: tf.Tensor, seed: tf.Tensor, policy: Sequence[Sequence[tuple[str, float, int | None]]] = AUTOAUGMENT_IMAGENET
) -> tf.Tensor:
    """One uniformly chosen sub-policy; each of its ops applied with its probability.

    The table is looked up as tensors and each step is one switch over the distinct ops
    (plus a final Identity for "not applied"): a much smaller graph than a switch over
    sub-policies, which matters for tracing and instantiating the tf.data function.
    """
    names = [*sorted({op for sub_policy in policy for op, _, _ in sub_policy}), "Identity"]
    op_index = tf.constant([[names.index(op) for op, _, _ in sp] for sp in policy], tf.int32)
    probs = tf.constant([[p for _, p, _ in sp] for sp in policy], tf.float32)
    magnitudes = tf.constant(
        [[op_magnitude(op, level, AUTOAUGMENT_MAX_LEVEL) or 0.0 for op, _, level in sp] for sp in policy], tf.float32
    )
    s_choice, *s_steps = _seeds(seed, 1 + op_index.shape[1])
    row = tf.random.stateless_uniform([], s_choice, 0, len(policy), dtype=tf.int32)
    x = image
    for i, s in enumerate(s_steps):
        s_go, s_op = _seeds(s, 2)
        go = tf.random.stateless_uniform([], s_go) < probs[row, i]
        index = tf.where(go, op_index[row, i], len(names) - 1)
        x = _switch_op(x, names, index, magnitudes[row, i], s_op)
    return x


def randaugment(
    image: tf.Tensor, seed: tf.Tensor, num_ops: int = RANDAUGMENT_NUM_OPS, magnitude: float = RANDAUGMENT_MAGNITUDE
) -> tf.Tensor:
    """``num_ops`` ops drawn uniformly with replacement, each at ``magnitude`` (0..10 scale)."""
    x = image
    for s in _seeds(seed, max(num_ops, 1))[:num_ops]:
        s_choice, s_op = _seeds(s, 2)
        index = tf.random.stateless_uniform([], s_choice, 0, len(RANDAUGMENT_OPS), dtype=tf.int32)
        branches = [
            functools.partial(apply_op, x, op, op_magnitude(op, magnitude, RANDAUGMENT_MAX_LEVEL), s_op)
            for op in RANDAUGMENT_OPS
        ]
        x = tf.switch_case(index, branches)
    return x


# ----------------------------------------------------------------------------- the policies


def _train_alexnet(x, seed, size, pca_std=0.1):
    s_crop, s_flip, s_light = _seeds(seed, 3)
    # Section 2: shorter side to 256, central 256x256 patch; Section 4.1: random 224 patches
    # (one resized window: the 224 patch of the central 256 patch).
    side = _scaled(256, size)
    new = _shorter_side_size(x, side)
    offset = (new - side) // 2 + _crop_offset(side - size + 1, s_crop)
    x = _flip(_resized_window(x, new, size, offset), s_flip)
    return pca_lighting(x, s_light, pca_std)


def _train_vgg(x, seed, size, pca_std=0.1, scale_range=(256, 512)):
    s_scale, s_crop, s_flip, s_light = _seeds(seed, 4)
    lo, hi = _scaled(scale_range[0], size), _scaled(scale_range[1], size)
    target = tf.random.stateless_uniform([], s_scale, lo, hi + 1, dtype=tf.int32)
    new = _shorter_side_size(x, target)
    x = _flip(_resized_window(x, new, size, _crop_offset(new - size + 1, s_crop)), s_flip)
    return pca_lighting(x, s_light, pca_std)


def _train_resnet(x, seed, size, pca_std=0.1):
    return _train_vgg(x, seed, size, pca_std=pca_std, scale_range=(256, 480))


def _train_inception(x, seed, size):
    s_crop, s_flip, s_photo = _seeds(seed, 3)
    x = random_sized_crop(x, size, s_crop, methods=("bilinear", "area", "nearest", "bicubic"))
    return photometric_distortion(_flip(x, s_flip), s_photo)


def _train_efficientnet_crop(x, seed, size):
    s_crop, s_flip = _seeds(seed, 2)
    # EfficientNet's reference resizes the distorted crop bicubically.
    return _flip(random_sized_crop(x, size, s_crop, methods=("bicubic",)), s_flip)


def _train_randaugment(x, seed, size, num_ops=RANDAUGMENT_NUM_OPS, magnitude=RANDAUGMENT_MAGNITUDE):
    s_crop, s_aug = _seeds(seed, 2)
    return randaugment(_train_efficientnet_crop(x, s_crop, size), s_aug, num_ops, magnitude)


def _train_autoaugment(x, seed, size):
    s_crop, s_aug = _seeds(seed, 2)
    return autoaugment(_train_efficientnet_crop(x, s_crop, size), s_aug)


def _centre_window(x, size):
    """The central ``size`` square of :func:`~trainers.data.preprocess.resize_shorter_side` to
    ``size``, computing only that square."""
    new = _shorter_side_size(x, size)
    return _resized_window(x, new, size, (new - size) // 2)


def _train_cifar(x, seed, size, padding=4):
    s_crop, s_flip = _seeds(seed, 2)
    x = _centre_window(x, size)
    pad = round(padding * size / 32)
    x = tf.pad(x, [[pad, pad], [pad, pad], [0, 0]])
    return _flip(_random_crop(x, size, s_crop), s_flip)


def _train_simple(x, seed, size):
    return _flip(_centre_window(x, size), seed)


# policy -> (function, needs RGB (colour ops), allowed options)
_TRAIN: dict[str, tuple[Callable, bool, tuple[str, ...]]] = {
    "alexnet": (_train_alexnet, True, ("pca_std",)),
    "vgg": (_train_vgg, True, ("pca_std", "scale_range")),
    "resnet": (_train_resnet, True, ("pca_std",)),
    "inception": (_train_inception, True, ()),
    "randaugment": (_train_randaugment, True, ("num_ops", "magnitude")),
    "autoaugment": (_train_autoaugment, True, ()),
    "mixup": (_train_efficientnet_crop, False, ()),
    "cifar": (_train_cifar, False, ("padding",)),
    "simple": (_train_simple, False, ()),
}


def _seed_tensor(seed: Seed) -> tf.Tensor:
    if isinstance(seed, tf.random.Generator):
        return seed.make_seeds(1)[:, 0]
    if isinstance(seed, (int, np.integer)):
        return tf.constant([int(seed), 0], tf.int64)
    return tf.cast(tf.reshape(seed, [2]), tf.int64)


class TrainTransform:
    """The training transform of ``policy`` (see the module docstring for the table):
    ``(image, label) -> (image, label)`` for ``Dataset.map``.

    :meth:`apply` is stateless (``image, seed -> image``); calling the object draws the
    per-example seed from a ``tf.random.Generator`` seeded with ``seed`` (``None``: from
    the OS), unless a ``seed`` pair is passed. Options: ``pca_std`` (alexnet, vgg, resnet),
    ``scale_range`` (vgg), ``num_ops`` and ``magnitude`` (randaugment), ``padding`` (cifar).
    """

    def __init__(self, policy: str, image_size: int, channels: int, seed: int | None, **options: Any) -> None:
        self.policy = get_policy(policy)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}.")
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}.")
        fn, self._needs_rgb, allowed = _TRAIN[self.policy.name]
        unknown = set(options) - set(allowed)
        if unknown:
            raise ValueError(f"Policy {self.policy.name!r} takes options {allowed}, got {sorted(unknown)}.")
        self._fn = functools.partial(fn, size=image_size, **options)
        self.image_size = image_size
        self.channels = channels
        self.normalization = normalizations()[self.policy.normalization]
        self.generator = (
            tf.random.Generator.from_seed(seed)
            if seed is not None
            else tf.random.Generator.from_non_deterministic_state()
        )

    @_plain_python
    def apply(self, image: tf.Tensor, seed: Seed) -> tf.Tensor:
        """The augmented, normalised float32 image for this per-example ``seed`` (shape [2]).

        The image keeps its dtype (uint8) until the policy's first resize, which returns float32.
        """
        x = to_channels(image, 3) if self._needs_rgb else image
        x = tf.cast(self._fn(x, _seed_tensor(seed)), tf.float32)
        x = to_channels(x, self.channels)
        x = tf.ensure_shape(x, [self.image_size, self.image_size, self.channels])
        mean, std = self.normalization.mean_std(self.channels)  # (x - mean) / std as one multiply-add
        return _channelwise(x, [1 / d for d in std], [-m / d for m, d in zip(mean, std)])

    @_plain_python
    def __call__(self, image: tf.Tensor, label: tf.Tensor, seed: Seed | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        return self.apply(image, self.generator if seed is None else seed), label


def map_train(
    dataset: tf.data.Dataset,
    policy: str,
    image_size: int,
    channels: int,
    seed: int | None,
    num_parallel_calls: int | None = tf.data.AUTOTUNE,
    **options: Any,
) -> tf.data.Dataset:
    """``dataset.map`` of the training transform, deterministic even with parallel calls.

    Per-example seeds come from ``tf.data.Dataset.random(seed)`` zipped with the data, so
    example *i* of an epoch always gets the same augmentation for a given ``seed``; a new
    iteration over the dataset (next epoch) draws new seeds.
    """
    transform = TrainTransform(policy, image_size, channels, seed, **options)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    @_plain_python
    def fn(example, pair):
        image, label = example
        return transform(image, label, seed=pair)

    return tf.data.Dataset.zip((dataset, seeds)).map(fn, num_parallel_calls=num_parallel_calls, deterministic=True)


# ----------------------------------------------------------------------------- mixup (batch level)


def mixup(
    batch_images: tf.Tensor, batch_labels_onehot: tf.Tensor, alpha: float, seed: Seed
) -> tuple[tf.Tensor, tf.Tensor]:
    """mixup (Zhang et al. 2018): one ``lambda ~ Beta(alpha, alpha)`` per batch, each example
    mixed with a randomly permuted partner of the same batch (images and one-hot labels).

    ``seed`` is an int, a shape-[2] seed tensor or a ``tf.random.Generator``; pass a
    different one per step (or use :func:`make_mixup`). ``alpha <= 0`` returns the batch.
    """
    images = tf.cast(batch_images, tf.float32)
    labels = tf.cast(batch_labels_onehot, tf.float32)
    if alpha <= 0:
        return images, labels
    s_a, s_b, s_perm = _seeds(_seed_tensor(seed), 3)
    a = tf.random.stateless_gamma([], s_a, alpha=alpha)
    b = tf.random.stateless_gamma([], s_b, alpha=alpha)
    lam = a / (a + b)
    perm = tf.argsort(tf.random.stateless_uniform([tf.shape(images)[0]], s_perm))
    mixed_images = lam * images + (1.0 - lam) * tf.gather(images, perm)
    mixed_labels = lam * labels + (1.0 - lam) * tf.gather(labels, perm)
    return mixed_images, mixed_labels


def make_mixup(alpha: float, seed: int | None) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """A ``(images, onehot) -> (images, onehot)`` function for ``Dataset.map`` after ``batch``."""
    generator = (
        tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()
    )

    @_plain_python
    def fn(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return mixup(images, labels, alpha, generator)

    return fn
