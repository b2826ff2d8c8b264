"""trainers.predict: top-k classes with names from .tflite, .keras and SavedModel files, the
same answer from each, and clear errors for bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from trainers import export, predict
from trainers.data import datasets, preprocess
from trainers.data.classes import FASHION_MNIST_CLASSES
from trainers.deploy import exporter, predictor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENET_KERAS = os.path.join(ROOT, "saved_models", "lenet5", "lenet5.keras")
LENET_TFLITE = os.path.join(ROOT, "saved_models", "lenet5", "lenet5_float32.tflite")


@pytest.fixture(scope="module")
def fashion_pngs(tmp_path_factory):
    """Eight Fashion-MNIST test images as PNG files, with their labels."""
    ds, _ = datasets.load_dataset("fashion_mnist", "test")
    folder = tmp_path_factory.mktemp("images")
    paths, labels = [], []
    for i, (image, label) in enumerate(ds.take(8)):
        path = str(folder / f"img{i}.png")
        Image.fromarray(image.numpy()[..., 0]).save(path)
        paths.append(path)
        labels.append(int(label))
    return paths, labels


def test_tflite_top_k_with_names(fashion_pngs, capsys):
    paths, _ = fashion_pngs
    assert predict.main(["--model", LENET_TFLITE, *paths[:2], "--top_k", "3", "--labels", "fashion_mnist"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == paths[0] and out[4] == paths[1]
    assert out[1].startswith("  1. ") and out[3].startswith("  3. ")
    names = [line.split(". ", 1)[1].rsplit(" (", 1)[0] for line in out[1:4]]
    assert set(names) <= set(FASHION_MNIST_CLASSES)


def test_formats_agree_and_are_mostly_right(fashion_pngs, tmp_path):
    paths, labels = fashion_pngs
    from_tflite = predictor.predict(LENET_TFLITE, paths, top_k=10)
    from_keras = predictor.predict(LENET_KERAS, paths, top_k=10)
    import keras

    saved = exporter.export("lenet5", model=keras.saving.load_model(LENET_KERAS, compile=False), fmt="savedmodel",
                          output=str(tmp_path), parity_images=0, preprocessing="simple")  # fmt: skip
    from_saved = predictor.predict(saved["path"], paths, top_k=10)
    for a, b, c in zip(from_tflite, from_keras, from_saved):
        assert [i for i, _, _ in a] == [i for i, _, _ in b] == [i for i, _, _ in c]
        np.testing.assert_allclose([p for *_, p in a], [p for *_, p in b], atol=1e-4)
        probs = [p for *_, p in a]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-4)
    top1 = [r[0][0] for r in from_tflite]
    assert np.mean(np.array(top1) == np.array(labels)) >= 0.5  # a trained model (84 % test accuracy)
    assert from_tflite[0][0][1] == FASHION_MNIST_CLASSES[top1[0]]  # the card's class names


def test_rgb_and_odd_sizes_are_converted(tmp_path):
    path = str(tmp_path / "rgb.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3)).astype(np.uint8)).save(path)
    (top,) = predictor.predict(LENET_TFLITE, [path], top_k=20)
    assert len(top) == 10  # top_k larger than the class count is cut to it


def test_bad_inputs(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("this is not an image")
    assert predict.main(["--model", LENET_TFLITE, str(text)]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert predict.main(["--model", LENET_TFLITE, str(tmp_path / "missing.png")]) == 2
    assert "image not found" in capsys.readouterr().err
    png = str(tmp_path / "ok.png")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(png)
    assert predict.main(["--model", str(tmp_path / "nope.tflite"), png]) == 2
    assert "model not found" in capsys.readouterr().err
    labels = tmp_path / "three.txt"
    labels.write_text("a\nb\nc\n")
    with pytest.raises(predictor.PredictError, match="3 labels given but the model has 10 classes"):
        predictor.predict(LENET_TFLITE, [png], labels=str(labels))
    with pytest.raises(predictor.PredictError, match="top_k"):
        predictor.predict(LENET_TFLITE, [png], top_k=0)


# ----------------------------------------------------------------------------- labels travel, LiteRT alone


def constant_model(size: int = 8, winner: int = 9, classes: int = 10):
    """A tiny model whose logits ignore the image: class ``winner`` always wins."""
    import keras

    inputs = keras.Input((size, size, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    bias = np.zeros(classes, np.float32)
    bias[winner] = 5.0
    outputs = keras.layers.Dense(classes, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(bias))(x)
    return keras.Model(inputs, outputs, name="tiny")


def test_class_names_travel_from_the_run_to_predict(tmp_path, capsys):
    """trainers.run's plan.json -> export's card -> predict prints "Ankle boot", not "9",
    without --labels; --labels still overrides the card."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    best = str(run_dir / "best.keras")
    constant_model().save(best)
    names = list(FASHION_MNIST_CLASSES)
    (run_dir / "plan.json").write_text(json.dumps({"augment": "simple", "image_size": 8, "class_names": names}))
    assert export.main(["--weights", best, "--parity_images", "0"]) == 0  # default output: the run folder
    tflite = run_dir / "tiny_float32.tflite"
    with open(run_dir / "tiny_float32.json") as f:
        assert json.load(f)["class_names"] == names
    png = str(tmp_path / "x.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30), np.uint8)).save(png)
    capsys.readouterr()
    for model in (str(tflite), best):  # the card; the plan.json beside a .keras file
        assert predict.main(["--model", model, png, "--top_k", "1"]) == 0
        assert capsys.readouterr().out.splitlines()[1].startswith("  1. Ankle boot (9)  ")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(10)))
    assert predict.main(["--model", str(tflite), png, "--top_k", "1", "--labels", str(labels)]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("  1. class 9 (9)  ")


def test_tflite_prediction_does_not_import_tensorflow(fashion_pngs):
    """A .tflite file with its card runs on LiteRT, Pillow and numpy alone, with the card's
    class names or with --labels fashion_mnist (the class tables hold no TensorFlow either)."""
    paths, _ = fashion_pngs
    script = (
        "import json, sys\n"
        "from trainers import predict\n"
        f"code = predict.main(['--model', {LENET_TFLITE!r}, {paths[0]!r}, '--top_k', '1'])\n"
        f"code += predict.main(['--model', {LENET_TFLITE!r}, {paths[0]!r}, '--top_k', '1',"
        " '--labels', 'fashion_mnist'])\n"
        "print(json.dumps({'code': code, 'tensorflow': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert json.loads(out[-1]) == {"code": 0, "tensorflow": False, "keras": False}
    assert out[1].split(". ", 1)[1].rsplit(" (", 1)[0] in FASHION_MNIST_CLASSES  # the card's names
    assert out[3] == out[1]  # the same name from the table
    assert done.stderr == ""  # nor LiteRT's XNNPACK line


@pytest.mark.parametrize(
    ("policy", "size", "channels", "shape"),
    [("simple", 32, 1, (28, 28, 1)), ("simple", 32, 1, (50, 70, 3)), ("resnet", 24, 3, (81, 40, 1)),
     ("inception", 16, 3, (33, 97, 4)), ("cifar", 32, 1, (300, 200, 4)), ("simple", 28, 3, (7, 9, 3))],
)  # fmt: skip
def test_numpy_resize_crop_is_the_graph_one(policy, size, channels, shape):
    """What predict feeds a .tflite file (numpy) equals what the SavedModel computes in its
    graph (tf.image.resize with antialias), up- and downscaling, any channels."""
    prep = preprocess.preprocessing_for(policy, size, channels)
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape).astype(np.uint8)
    expected = preprocess.resize_crop(image, prep).numpy()
    got = preprocess.resize_crop_numpy(image, prep)
    assert got.shape == expected.shape == (1, size, size, channels) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-3)


@pytest.mark.parametrize(
    ("mode", "channels"), [("L", 1), ("LA", 1), ("RGB", 3), ("RGBA", 4), ("P", 3), ("CMYK", 3)]
)
def test_load_image_modes(tmp_path, mode, channels):
    """Pillow's modes map to 1, 3 or 4 uint8 channels (what resize_crop accepts)."""
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 5, 3)).astype(np.uint8))
    image = rgb.convert(mode)
    path = str(tmp_path / ("x.tiff" if mode == "CMYK" else "x.png"))
    image.save(path)
    pixels = predictor.load_image(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (6, 5, channels)
    if mode in ("L", "RGB", "RGBA"):
        np.testing.assert_array_equal(pixels, np.asarray(image).reshape(6, 5, channels))


def test_load_image_16_bit_grey_is_scaled_to_8_bits(tmp_path):
    levels = np.random.default_rng(0).integers(0, 256, (4, 7))
    path = str(tmp_path / "x16.png")
    Image.fromarray((levels * 257).astype(np.uint16)).save(path)
    np.testing.assert_array_equal(predictor.load_image(path)[..., 0], levels)
