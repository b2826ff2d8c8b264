"""The evaluation preprocessing: one implementation for the eval pipeline, the exported graphs
and prediction.

A policy (``trainers.data.augment`` has their training transforms) fixes how a network sees an
image at test time: resize the shorter side to ``image_size / crop_fraction`` (bilinear with
antialiasing), take the centre ``image_size`` square, convert grey <-> RGB, normalise. Its
:class:`Preprocessing` is that recipe as data (the model card records it). The same functions
serve every user:

- :func:`eval_transform` / :func:`ten_crop_transform`: per-example ``tf.data`` maps (training's
  validation and test splits);
- :func:`resize_crop` and :func:`normalize`: batched graph ops (the SavedModel signatures,
  export's parity and calibration images);
- :func:`resize_crop_numpy`: :func:`resize_crop` in numpy alone, for prediction with a
  ``.tflite`` file without TensorFlow (tested equal to the graph).

Normalizations, on the ``[0, 255]`` pixel scale: ``caffe`` subtracts the ImageNet per-channel
RGB mean (the papers subtract a per-pixel mean image, which needs the dataset; the per-channel
mean is the usual stand-in), ``inception`` maps to ``[-1, 1]``, ``imagenet`` subtracts the
ImageNet mean and divides by its standard deviation, ``unit`` maps to ``[0, 1]``; the ImageNet
figures are the library's (:mod:`keras_archs.imagenet`).

TensorFlow is imported inside the graph functions only, so that importing this module (and
:class:`Preprocessing`, :func:`resize_crop_numpy`) costs no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

EVAL_CROP_FRACTION = 0.875  # resize shorter side to 256 for a 224 centre crop
# tf.image.rgb_to_grayscale's ITU-R 601 luma weights (the numpy twin uses them).
LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)

# ``(image, label) -> (image, label)``, for ``tf.data.Dataset.map``.
Transform = Callable[[Any, Any], tuple[Any, Any]]


# ----------------------------------------------------------------------------- policies as data


@dataclasses.dataclass(frozen=True)
class Normalization:
    """``(x - mean) / std`` per channel, ``x`` on the ``[0, 255]`` scale, in RGB order.

    Single-channel images use the average of the three means and standard deviations
    (the grey value of a grey pixel is the same number in all three RGB channels).
    """

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def mean_std(self, channels: int) -> tuple[list[float], list[float]]:
        """Per-channel mean and std for a ``channels``-channel image."""
        if channels == 3:
            return list(self.mean), list(self.std)
        if channels == 1:
            return [float(np.mean(self.mean))], [float(np.mean(self.std))]
        raise ValueError(f"Only 1- or 3-channel images are supported, got {channels} channels.")

    def __call__(self, image: Any) -> Any:
        import tensorflow as tf

        mean, std = self.mean_std(int(image.shape[-1]))
        return (tf.cast(image, tf.float32) - tf.constant(mean)) / tf.constant(std)

    def value_range(self, channels: int = 3) -> tuple[float, float]:
        """Range of normalised values for pixels in ``[0, 255]`` (lighting may exceed it slightly)."""
        mean, std = self.mean_std(channels)
        return min((0 - m) / s for m, s in zip(mean, std)), max((255 - m) / s for m, s in zip(mean, std))


@functools.cache
def normalizations() -> dict[str, Normalization]:
    """The normalizations by name; three are keras.applications' modes in
    :mod:`keras_archs.imagenet`, held in RGB order (a network trained here needs no BGR input)."""
    from keras_archs import imagenet  # imports Keras: only when a normalization is looked up

    def from_mode(name: str, mode: str) -> Normalization:
        spec = imagenet.MODES[mode]
        mean, std = (np.broadcast_to(np.asarray(v, np.float64) * spec.divisor, 3) for v in (spec.mean, spec.std))
        if spec.bgr:
            mean, std = mean[::-1], std[::-1]
        return Normalization(name, tuple(map(float, mean)), tuple(map(float, std)))

    return {
        "caffe": from_mode("caffe", "caffe"),
        "inception": from_mode("inception", "tf"),
        "imagenet": from_mode("imagenet", "torch"),
        "unit": Normalization("unit", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),
    }


@dataclasses.dataclass(frozen=True)
class Policy:
    """What a policy is: its normalization, evaluation crop and whether batches get mixup."""

    name: str
    normalization: str
    eval_crop_fraction: float
    source: str
    mixup_alpha: float | None = None


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("alexnet", "caffe", EVAL_CROP_FRACTION, "Krizhevsky et al. 2012, Sections 2 and 4.1"),
        Policy("vgg", "caffe", EVAL_CROP_FRACTION, "Simonyan & Zisserman 2014, Section 3.1"),
        Policy("inception", "inception", EVAL_CROP_FRACTION, "Szegedy et al. 2014 (GoogLeNet), Section 6"),
        Policy("resnet", "caffe", EVAL_CROP_FRACTION, "He et al. 2015, Section 3.4"),
        Policy("cifar", "unit", 1.0, "He et al. 2015, Section 4.2"),
        Policy("randaugment", "imagenet", EVAL_CROP_FRACTION, "Cubuk et al. 2019 (RandAugment); Tan & Le 2019"),
        Policy("autoaugment", "imagenet", EVAL_CROP_FRACTION, "Cubuk et al. 2018 (AutoAugment); Tan & Le 2019"),
        # mixup paper Section 3.1: alpha in [0.1, 0.4] on ImageNet.
        Policy("mixup", "imagenet", EVAL_CROP_FRACTION, "Zhang et al. 2018 (mixup), Section 3.1", mixup_alpha=0.2),
        Policy("simple", "unit", 1.0, "resize and flip, for small datasets"),
    )
}


def get_policy(policy: str) -> Policy:
    """The :class:`Policy` named ``policy``."""
    key = policy.strip().lower().replace("-", "_")
    if key not in POLICIES:
        raise ValueError(f"Unknown augmentation policy {policy!r}; choose from {sorted(POLICIES)}.")
    return POLICIES[key]


def normalization(policy: str) -> Normalization:
    """The normalization the policy's train and eval transforms end with."""
    return normalizations()[get_policy(policy).normalization]


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """A policy's evaluation preprocessing at one input size and channel count, as data."""

    policy: str
    image_size: int
    channels: int
    crop_fraction: float
    normalization: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def resize_to(self) -> int:
        return round(self.image_size / self.crop_fraction)

    def describe(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "steps": [
                f"resize the shorter side to {self.resize_to} px (bilinear, antialias), keep aspect",
                f"centre crop {self.image_size}x{self.image_size}",
                "grey -> RGB by repetition (RGB kept)" if self.channels == 3 else "RGB -> grey by ITU-R 601 luma (grey kept)",
                f"normalize ({self.normalization}): (x - mean) / std on the [0, 255] pixel scale",
            ],
        }

    @classmethod
    def from_card(cls, described: dict[str, Any]) -> Preprocessing:
        """The inverse of :meth:`describe` (a model card's ``preprocessing``)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in described.items() if k in fields})


def preprocessing_for(policy: str, image_size: int, channels: int) -> Preprocessing:
    """The :class:`Preprocessing` of ``policy`` for ``image_size`` x ``image_size`` x ``channels`` inputs."""
    spec = get_policy(policy)
    norm = normalizations()[spec.normalization]
    mean, std = norm.mean_std(channels)
    return Preprocessing(spec.name, int(image_size), int(channels), float(spec.eval_crop_fraction), norm.name,
                         tuple(mean), tuple(std))  # fmt: skip


# ----------------------------------------------------------------------------- graph ops ([H, W, C] or [N, H, W, C])


def to_channels(image: Any, channels: int) -> Any:
    """``channels`` (1 or 3) from 1, 3 or 4 (alpha dropped): grey -> RGB by repetition, RGB ->
    grey by luma (ITU-R 601 weights). An unknown channel count is decided in the graph."""
    import tensorflow as tf

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    have = image.shape[-1]
    repeat3 = [1] * (image.shape.rank - 1) + [3]  # tf.tile multiples: grey -> RGB
    if have is None:
        c = tf.shape(image)[-1]
        if channels == 3:
            return tf.cond(c == 1, lambda: tf.tile(image[..., :1], repeat3), lambda: image[..., :3])
        return tf.cond(c >= 3, lambda: tf.image.rgb_to_grayscale(image[..., :3]), lambda: image[..., :1])
    if have not in (1, 3, 4):
        raise ValueError(f"Images must have 1, 3 or 4 channels, got shape {image.shape}.")
    if have == 4:
        image, have = image[..., :3], 3
    if have == channels:
        return image
    if channels == 3:
        return tf.tile(image, repeat3)
    return tf.image.rgb_to_grayscale(image)


def resize_shorter_side(image: Any, size: Any, method: str = "bilinear") -> Any:
    """Resize so the shorter side is ``size``, keeping the aspect ratio (float32 out)."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[-3:-1], tf.float32)
    size = tf.cast(size, tf.float32)
    new = tf.cast(tf.round(shape * size / tf.reduce_min(shape)), tf.int32)
    new = tf.maximum(new, tf.cast(size, tf.int32))
    out = tf.image.resize(tf.cast(image, tf.float32), new, method=method, antialias=True)
    return tf.clip_by_value(out, 0.0, 255.0) if method == "bicubic" else out


def center_crop(image: Any, size: int) -> Any:
    """The central ``size x size`` window of an image at least that large."""
    import tensorflow as tf

    shape = tf.shape(image)
    top = (shape[-3] - size) // 2
    left = (shape[-2] - size) // 2
    return image[..., top : top + size, left : left + size, :]


def resize_crop(images: Any, prep: Preprocessing) -> Any:
    """The preprocessing without its normalisation: ``[N, H, W, C]`` (or one ``[H, W, C]``
    image) of any dtype and size with 1, 3 or 4 channels -> float32 ``[N, S, S, prep.channels]``
    pixels on the ``[0, 255]`` scale."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    if x.shape.rank == 3:
        x = x[None]
    x = to_channels(center_crop(resize_shorter_side(x, prep.resize_to), prep.image_size), prep.channels)
    return tf.ensure_shape(x, [None, prep.image_size, prep.image_size, prep.channels])


def normalize(x: Any, prep: Preprocessing) -> Any:
    """The normalisation step, on pixels already resized by :func:`resize_crop`."""
    import tensorflow as tf

    return (tf.cast(x, tf.float32) - tf.constant(prep.mean, tf.float32)) / tf.constant(prep.std, tf.float32)


def ten_crop(image: Any, crop_size: int) -> Any:
    """AlexNet Section 4.1's test-time crops: the four corners and the centre, then the
    horizontal reflections of those five patches, as ``[10, crop_size, crop_size, C]``.

    (torchvision's TenCrop takes the corners of the flipped image instead: the same ten
    patches, the last five in a different order.)
    """
    import tensorflow as tf

    shape = tf.shape(image)
    h, w, s = shape[0], shape[1], crop_size
    tf.debugging.assert_greater_equal(tf.minimum(h, w), s, message="ten_crop: image smaller than crop")
    crops = [
        image[:s, :s],
        image[:s, w - s :],
        image[h - s :, :s],
        image[h - s :, w - s :],
        center_crop(image, s),
    ]
    crops = tf.stack(crops)
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def _example_map(fn: Callable[[Any], Any]) -> Transform:
    """``(image, label) -> (fn(image), label)`` for ``Dataset.map``; the function holds no
    Python control flow on tensors, and skipping AutoGraph makes tracing it much faster."""
    import tensorflow as tf

    @tf.autograph.experimental.do_not_convert
    def transform(image: Any, label: Any) -> tuple[Any, Any]:
        return fn(image), label

    return transform


def eval_transform(policy: str, image_size: int, channels: int) -> Transform:
    """Per-example evaluation for ``Dataset.map``: :func:`resize_crop` then :func:`normalize`
    (shorter side to ``image_size / crop_fraction``: 0.875 for the ImageNet policies, 1 for
    cifar and simple)."""
    prep = preprocessing_for(policy, image_size, channels)
    return _example_map(lambda image: normalize(resize_crop(image, prep), prep)[0])


def ten_crop_transform(policy: str, image_size: int, channels: int) -> Transform:
    """Like :func:`eval_transform` but returns the ten crops ``[10, S, S, C]`` per image
    (average the model's ten predictions)."""
    import tensorflow as tf

    prep = preprocessing_for(policy, image_size, channels)

    def crops(image: Any) -> Any:
        x = ten_crop(resize_shorter_side(image, prep.resize_to), image_size)
        x = normalize(to_channels(x, channels), prep)
        return tf.ensure_shape(x, [10, image_size, image_size, channels])

    return _example_map(crops)


# ----------------------------------------------------------------------------- numpy twin (no TensorFlow)


def _resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``[out_size, in_size]`` weights of ``tf.image.resize(method="bilinear",
    antialias=True)`` along one axis: TensorFlow's scale-and-translate with a triangle
    kernel widened by the downscale factor, half-pixel centres, rows normalised."""
    inv_scale = in_size / out_size
    kernel_scale = max(inv_scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * inv_scale
    distance = (np.arange(in_size)[None, :] + 0.5 - centres[:, None]) / kernel_scale
    weights = np.maximum(0.0, 1.0 - np.abs(distance))
    return weights / weights.sum(axis=1, keepdims=True)


def resize_crop_numpy(image: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """:func:`resize_crop` for one ``[H, W, C]`` image in numpy alone (what ``trainers.predict``
    feeds a ``.tflite`` file): float32 ``[1, S, S, prep.channels]`` pixels on ``[0, 255]``,
    equal to :func:`resize_crop` within float32 rounding."""
    x = np.asarray(image, np.float32)
    if x.ndim == 2:
        x = x[..., None]
    size, s = prep.resize_to, prep.image_size
    shape = np.array(x.shape[:2], np.float32)
    new = np.maximum(np.round(shape * np.float32(size) / shape.min()).astype(np.int64), size)
    top, left = (new[0] - s) // 2, (new[1] - s) // 2
    rows = _resize_matrix(x.shape[0], int(new[0]))[top : top + s]
    cols = _resize_matrix(x.shape[1], int(new[1]))[left : left + s]
    x = np.einsum("ih,hwc,jw->ijc", rows, x.astype(np.float64), cols)
    have = x.shape[-1]
    if prep.channels == 3:
        x = np.repeat(x, 3, axis=-1) if have == 1 else x[..., :3]
    elif have >= 3:
        x = x[..., :3] @ np.array(LUMA_WEIGHTS)[:, None]
    else:
        x = x[..., :1]
    return x[None].astype(np.float32)
