"""Input pipelines (trainers/data/augment.py, trainers/data/preprocess.py): shapes, ranges,
determinism, and the ops against their references (PIL for the AutoAugment ops, torchvision
for the policy table)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps
from torchvision.transforms import autoaugment as tv_aa

from trainers.data import augment as aug
from trainers.data import preprocess

SIZE = 32  # small crops keep the tests fast; every policy scales its sizes with it


def _rgb(h=40, w=52, seed=0):
    return tf.constant(np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8))


def _grey(h=28, w=28, seed=0):
    return tf.constant(np.random.RandomState(seed).randint(0, 256, (h, w, 1)).astype(np.uint8))


@pytest.mark.parametrize("policy", sorted(preprocess.POLICIES))
@pytest.mark.parametrize("channels", [1, 3])
def test_train_and_eval_shapes_dtypes_ranges(policy, channels):
    norm = preprocess.normalization(policy)
    lo, hi = norm.value_range(channels)
    # PCA lighting is not clipped: allow its offset (|alpha| < 0.5, 5 sigma).
    margin = 0.5 * aug.PCA_EIGVAL[0] * 255 / min(norm.mean_std(channels)[1])
    transform = aug.TrainTransform(policy, SIZE, channels, seed=1)
    for image in (_rgb(), _grey()):
        out, label = transform(image, tf.constant(3, tf.int32))
        assert out.shape == (SIZE, SIZE, channels) and out.dtype == tf.float32
        assert int(label) == 3
        assert lo - margin <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= hi + margin
        ev, _ = preprocess.eval_transform(policy, SIZE, channels)(image, 0)
        assert ev.shape == (SIZE, SIZE, channels) and ev.dtype == tf.float32
        assert lo - 1e-4 <= float(tf.reduce_min(ev)) and float(tf.reduce_max(ev)) <= hi + 1e-4
        tc, _ = preprocess.ten_crop_transform(policy, SIZE, channels)(image, 0)
        assert tc.shape == (10, SIZE, SIZE, channels)


@pytest.mark.parametrize("policy", sorted(preprocess.POLICIES))
def test_seed_determinism(policy):
    image = _rgb()

    def draws(seed):
        transform = aug.TrainTransform(policy, SIZE, 3, seed=seed)
        return [transform(image, 0)[0].numpy() for _ in range(4)]

    first, again, other = draws(7), draws(7), draws(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert not all(np.array_equal(first[0], x) for x in first[1:])  # draws differ within a stream


def test_map_train_is_deterministic_under_parallel_map():
    ds = tf.data.Dataset.from_tensor_slices(np.stack([_rgb(seed=i).numpy() for i in range(6)]))
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(6)))

    def run(seed):
        mapped = aug.map_train(ds, "autoaugment", SIZE, 3, seed=seed, num_parallel_calls=4)
        return [x.numpy() for x, _ in mapped], [x.numpy() for x, _ in mapped]  # two epochs

    (epoch1, epoch2), (again1, _) = run(5), run(5)
    assert all(np.array_equal(a, b) for a, b in zip(epoch1, again1))
    assert not all(np.array_equal(a, b) for a, b in zip(epoch1, epoch2))


def test_pca_lighting_covariance():
    n = 4000
    seeds = tf.random.experimental.stateless_split(tf.constant([3, 4], tf.int64), n)
    zero = tf.zeros([1, 1, 3])
    offsets = tf.data.Dataset.from_tensor_slices(seeds).map(lambda s: aug.pca_lighting(zero, s, 0.1)[0, 0])
    rgb = next(iter(offsets.batch(n))).numpy().astype(np.float64)
    vec, val = np.array(aug.PCA_EIGVEC), np.array(aug.PCA_EIGVAL)
    expected = 255.0**2 * vec @ np.diag((0.1 * val) ** 2) @ vec.T
    empirical = np.cov(rgb, rowvar=False)
    assert np.abs(rgb.mean(0)).max() < 0.1 * np.sqrt(expected.max())
    np.testing.assert_allclose(empirical, expected, atol=0.06 * expected.max())
    # The dominant direction is the first eigenvector (the intensity axis).
    top = np.linalg.eigh(empirical)[1][:, -1]
    assert abs(top @ vec[:, 0]) > 0.99


def test_ten_crop_matches_numpy_slicing():
    image = np.random.RandomState(1).rand(10, 13, 2).astype(np.float32)
    s = 6
    got = preprocess.ten_crop(tf.constant(image), s).numpy()
    top, left = (10 - s) // 2, (13 - s) // 2
    five = [image[:s, :s], image[:s, -s:], image[-s:, :s], image[-s:, -s:], image[top : top + s, left : left + s]]
    expected = np.stack(five + [c[:, ::-1] for c in five])
    np.testing.assert_array_equal(got, expected)


def test_eval_centre_crop_and_normalization():
    image = np.random.RandomState(2).randint(0, 256, (256, 256, 3)).astype(np.uint8)
    out, _ = preprocess.eval_transform("alexnet", 224, 3)(tf.constant(image), 0)
    expected = image[16:240, 16:240].astype(np.float32) - np.array(preprocess.normalizations()["caffe"].mean, np.float32)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-3)
    grey = np.random.RandomState(3).randint(0, 256, (28, 28, 1)).astype(np.uint8)
    out, _ = preprocess.eval_transform("simple", 28, 3)(tf.constant(grey), 0)
    np.testing.assert_allclose(out.numpy(), np.repeat(grey, 3, -1) / 255.0, atol=1e-6)


def _windows(padded, size):
    h, w = padded.shape[:2]
    for top in range(h - size + 1):
        for left in range(w - size + 1):
            win = padded[top : top + size, left : left + size]
            yield win
            yield win[:, ::-1]


def test_cifar_is_a_shifted_window_of_the_padded_image():
    image = np.random.RandomState(5).randint(0, 256, (32, 32, 3)).astype(np.uint8)
    padded = np.pad(image, [(4, 4), (4, 4), (0, 0)]).astype(np.float32)
    out = aug.TrainTransform("cifar", 32, 3, seed=0)(tf.constant(image), 0)[0].numpy() * 255.0
    assert any(np.allclose(out, win, atol=1e-3) for win in _windows(padded, 32))


def test_alexnet_is_a_window_plus_a_constant_colour_offset():
    side = round(256 * SIZE / 224)  # the 256 of the paper at this crop size
    image = np.random.RandomState(6).randint(0, 256, (side, side, 3)).astype(np.uint8)
    out = aug.TrainTransform("alexnet", SIZE, 3, seed=0)(tf.constant(image), 0)[0].numpy()
    out = out + np.array(preprocess.normalizations()["caffe"].mean, np.float32)
    matches = [win for win in _windows(image.astype(np.float32), SIZE) if np.ptp(out - win, axis=(0, 1)).max() < 1e-3]
    assert len(matches) == 1
    offset = (out - matches[0])[0, 0]
    assert 0 < np.abs(offset).max() < 40  # a lighting offset was added, of a plausible size


def test_vgg_and_resnet_scale_ranges():
    # A horizontal ramp: after resizing the shorter side (h) to S, the ramp's slope in the
    # crop is 255 h / ((w - 1) S) per pixel, which gives back the sampled S.
    h, w = 40, 52
    ramp = np.tile(np.linspace(0, 255, w, dtype=np.float32), (h, 1))
    image = tf.constant(np.repeat(ramp[..., None], 3, -1).round().astype(np.uint8))
    for policy, (lo, hi) in (("vgg", (256, 512)), ("resnet", (256, 480))):
        ds = aug.map_train(tf.data.Dataset.from_tensors((image, 0)).repeat(60), policy, SIZE, 3, seed=1)
        scales = []
        for out, _ in ds:
            row = out.numpy()[SIZE // 2, 2:-2, 0]
            slope = abs(np.polyfit(np.arange(row.size), row, 1)[0])
            scales.append(255.0 * h / ((w - 1) * slope))  # ramp value 255 x / (w - 1), x = x' h / S
        scales = np.array(scales) * 224 / SIZE  # back to the paper's scale
        assert lo * 0.95 <= scales.min() and scales.max() <= hi * 1.05, (policy, scales.min(), scales.max())
        assert scales.max() - scales.min() > 0.6 * (hi - lo)  # the whole range is used
    with pytest.raises(ValueError, match="takes options"):
        aug.TrainTransform("vgg", 224, 3, seed=0, magnitude=3)
    with pytest.raises(ValueError, match="Unknown augmentation policy"):
        aug.TrainTransform("cutmix", 224, 3, seed=0)


def test_autoaugment_table_matches_torchvision():
    reference = tv_aa.AutoAugment(tv_aa.AutoAugmentPolicy.IMAGENET).policies
    assert [tuple(tuple(op) for op in sp) for sp in reference] == [tuple(sp) for sp in aug.AUTOAUGMENT_IMAGENET]
    space = tv_aa.AutoAugment()._augmentation_space(10, (224, 224))
    for sub_policy in aug.AUTOAUGMENT_IMAGENET:
        for op, _, level in sub_policy:
            ours = aug.op_magnitude(op, level, aug.AUTOAUGMENT_MAX_LEVEL)
            if level is None:
                assert ours is None
                continue
            theirs = float(space[op][0][level])
            assert ours == pytest.approx(theirs, abs=1e-4), (op, level)


def test_randaugment_ops_and_magnitudes_match_torchvision():
    space = tv_aa.RandAugment()._augmentation_space(31, (331, 331))
    assert set(aug.RANDAUGMENT_OPS) == set(space)
    # torchvision's bins run to 30; level 30 of 30 is each op's maximum, as our M=10 of 10.
    for op, (values, _) in space.items():
        if values.ndim == 0:
            continue
        ours = aug.op_magnitude(op, 10.0, aug.RANDAUGMENT_MAX_LEVEL)
        theirs = float(values[-1])
        if op.startswith("Translate"):
            theirs /= 331.0
        if op in ("Brightness", "Color", "Contrast", "Sharpness"):
            theirs = min(theirs, 0.99)
        assert ours == pytest.approx(theirs, abs=1e-4), op


PIL_CASES = [
    ("posterize", lambda x: aug.posterize(x, 3), lambda im: ImageOps.posterize(im, 3)),
    ("solarize", lambda x: aug.solarize(x, 100.0), lambda im: ImageOps.solarize(im, 100)),
    ("invert", aug.invert, ImageOps.invert),
    ("autocontrast", aug.autocontrast, ImageOps.autocontrast),
    ("equalize", aug.equalize, ImageOps.equalize),
    ("color", lambda x: aug.adjust_color(x, 0.3), lambda im: ImageEnhance.Color(im).enhance(0.3)),
    ("contrast", lambda x: aug.adjust_contrast(x, 1.7), lambda im: ImageEnhance.Contrast(im).enhance(1.7)),
    ("brightness", lambda x: aug.adjust_brightness(x, 1.4), lambda im: ImageEnhance.Brightness(im).enhance(1.4)),
    ("sharpness", lambda x: aug.adjust_sharpness(x, 1.8), lambda im: ImageEnhance.Sharpness(im).enhance(1.8)),
]


@pytest.mark.parametrize("name,ours,pil", PIL_CASES, ids=[c[0] for c in PIL_CASES])
def test_ops_match_pil(name, ours, pil):
    rng = np.random.RandomState(7)
    image = np.clip(rng.normal(120, 35, (17, 19, 3)), 20, 220).astype(np.uint8)
    got = ours(tf.constant(image, tf.float32)).numpy()
    want = np.asarray(pil(Image.fromarray(image)), np.float32)
    # PIL rounds or truncates to uint8 at each step; we stay in float.
    assert np.abs(got - want).max() <= 1.0 + 1e-4, name


def test_geometric_ops():
    image = np.random.RandomState(8).randint(0, 256, (9, 9, 3)).astype(np.float32)
    np.testing.assert_array_equal(aug.rotate(tf.constant(image), 90.0).numpy(), np.rot90(image, 1))
    np.testing.assert_array_equal(aug.rotate(tf.constant(image), 0.0).numpy(), image)
    shifted = aug.affine(tf.constant(image), [1.0, 0.0, 2.0, 0.0, 1.0, 0.0]).numpy()  # samples x + 2
    np.testing.assert_array_equal(shifted[:, :-2], image[:, 2:])
    assert (shifted[:, -2:] == aug.FILL_VALUE).all()


def test_mixup():
    x = tf.constant(np.random.RandomState(9).rand(6, 4, 4, 3).astype(np.float32))
    onehot = tf.eye(6)  # example k has class k, so the mixed labels say exactly how images mix
    images, labels = aug.mixup(x, onehot, 0.4, seed=11)
    np.testing.assert_allclose(labels.numpy().sum(1), 1.0, atol=1e-6)
    assert ((labels.numpy() > 1e-6).sum(1) <= 2).all()
    mixed = np.einsum("ik,khwc->ihwc", labels.numpy(), x.numpy())
    np.testing.assert_allclose(images.numpy(), mixed, atol=1e-5)
    again = aug.mixup(x, onehot, 0.4, seed=11)
    np.testing.assert_array_equal(again[0].numpy(), images.numpy())
    other = aug.mixup(x, onehot, 0.4, seed=12)
    assert not np.array_equal(other[1].numpy(), labels.numpy())
    same = aug.mixup(x, onehot, 0.0, seed=11)
    np.testing.assert_array_equal(same[0].numpy(), x.numpy())
    batches = tf.data.Dataset.from_tensors((x, onehot)).repeat(2).map(aug.make_mixup(0.4, seed=1))
    first, second = [lab.numpy() for _, lab in batches]
    assert not np.array_equal(first, second)
    assert preprocess.get_policy("mixup").mixup_alpha == 0.2
