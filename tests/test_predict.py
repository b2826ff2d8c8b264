"""trainers.predict: top-k classes with names from .tflite, .keras and SavedModel files, the
same answer from each, and clear errors for bad inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from trainers import data, export, predict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENET_KERAS = os.path.join(ROOT, "saved_models", "lenet5", "lenet5.keras")
LENET_TFLITE = os.path.join(ROOT, "saved_models", "lenet5", "lenet5_float32.tflite")


@pytest.fixture(scope="module")
def fashion_pngs(tmp_path_factory):
    """Eight Fashion-MNIST test images as PNG files, with their labels."""
    ds, _ = data.load_dataset("fashion_mnist", "test")
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
    assert set(names) <= set(data.FASHION_MNIST_CLASSES)


def test_formats_agree_and_are_mostly_right(fashion_pngs, tmp_path):
    paths, labels = fashion_pngs
    from_tflite = predict.predict(LENET_TFLITE, paths, top_k=10)
    from_keras = predict.predict(LENET_KERAS, paths, top_k=10)
    import keras

    saved = export.export("lenet5", model=keras.saving.load_model(LENET_KERAS, compile=False), fmt="savedmodel",
                          output=str(tmp_path), parity_images=0, preprocessing="simple")  # fmt: skip
    from_saved = predict.predict(saved["path"], paths, top_k=10)
    for a, b, c in zip(from_tflite, from_keras, from_saved):
        assert [i for i, _, _ in a] == [i for i, _, _ in b] == [i for i, _, _ in c]
        np.testing.assert_allclose([p for *_, p in a], [p for *_, p in b], atol=1e-4)
        probs = [p for *_, p in a]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-4)
    top1 = [r[0][0] for r in from_tflite]
    assert np.mean(np.array(top1) == np.array(labels)) >= 0.5  # a trained model (84 % test accuracy)
    assert from_tflite[0][0][1] == data.FASHION_MNIST_CLASSES[top1[0]]  # the card's class names


def test_rgb_and_odd_sizes_are_converted(tmp_path):
    path = str(tmp_path / "rgb.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3)).astype(np.uint8)).save(path)
    (top,) = predict.predict(LENET_TFLITE, [path], top_k=20)
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
    with pytest.raises(predict.PredictError, match="3 labels given but the model has 10 classes"):
        predict.predict(LENET_TFLITE, [png], labels=str(labels))
    with pytest.raises(predict.PredictError, match="top_k"):
        predict.predict(LENET_TFLITE, [png], top_k=0)
