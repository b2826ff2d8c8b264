"""Export (trainers.export, trainers.deploy, trainers.prune): Keras vs TFLite parity for
the compact models at every quantization, int8 agreement of trained models on 1,000 real
Fashion-MNIST test images, SavedModel reload (tf.saved_model.load and TFSMLayer), the
shipped artifacts, and the errors a user can trigger.

Random-init models have meaningless top-1, so for them int8 is held to a correlation with
the float logits; the >= 99 % top-1 rule is checked on trained LeNet-5 and pruned
SqueezeNet 1.1 (the Keras sources of the shipped artifacts in saved_models/).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainers import export, prune
from trainers.data import preprocess
from trainers.deploy import exporter, pruning, records, tflite
from trainers.models import keras_outputs, model_input_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "saved_models")
LENET_KERAS = os.path.join(SHIPPED, "lenet5", "lenet5.keras")
LENET_TFLITE = os.path.join(SHIPPED, "lenet5", "lenet5_float32.tflite")
SQUEEZE_KERAS = os.path.join(SHIPPED, "squeezenet1_1", "squeezenet1_1_pruned.keras")
SQUEEZE_TFLITE = os.path.join(SHIPPED, "squeezenet1_1", "squeezenet1_1_pruned_int8.tflite")
SQUEEZE_FLOAT = os.path.join(SHIPPED, "squeezenet1_1", "squeezenet1_1_float.keras")

# (registry name, input size, build options): the compact models, at small sizes.
COMPACT = [
    # The paper's +-2.4/fan-in initialisation shrinks the signal about tenfold per layer, so
    # random LeNet-5 logits hardly depend on the image and int8 rounds them to constants.
    ("lenet5", 32, {"initializer": "glorot_uniform"}),
    ("squeezenet1_0", 32, {}),
    ("squeezenet1_1", 32, {"bypass": "none"}),
    ("squeezenet1_1", 32, {"bypass": "simple"}),
    ("squeezenet1_1", 32, {"bypass": "complex"}),
    ("googlenet_bn", 32, {}),
    ("mnasnet0_5", 32, {}),
    ("shufflenet_v2_x0_5", 32, {}),
    ("efficientnet_b0", 32, {}),
]
# Random-init int8: top-1 is noise, so require the quantized logits to follow the float ones.
INT8_RANDOM_MIN_CORRELATION = 0.9
N_IMAGES = 16


def _id(case):
    name, _size, options = case
    return name + "".join(f"-{v}" for v in options.values())


def _random_model(name, size, options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return exporter.load_model(name, None, image_size=size, classes=10, options=options)


def convert_four_ways(case, tmp_path):
    """A compact model's Keras logits and its four TFLite conversions (file, logits) on the
    same real images (one SavedModel, converted four ways)."""
    name, size, options = case
    keras.utils.set_random_seed(7)
    model = _random_model(name, size, options)
    _, channels = model_input_spec(model)
    prep = preprocess.preprocessing_for(records.default_policy(name), size, channels)
    pixels, _, _ = exporter.parity_data(prep, 64)
    saved = str(tmp_path / "sm")
    exporter.make_archive(model, prep, tflite_batch=1).write_out(saved, verbose=False)
    reference = keras_outputs(model, pixels[:N_IMAGES], prep)
    results = {}
    for quantize in tflite.QUANTIZATIONS:
        rep = (lambda: ({"image": p[None]} for p in pixels[N_IMAGES:])) if quantize == "int8" else None
        data = tflite.convert_saved_model(saved, signature="preprocessed", quantize=quantize, representative=rep)
        got = tflite.run_signature(tflite.make_interpreter(data), pixels[:N_IMAGES])
        results[quantize] = (data, got)
    return reference, results


@pytest.mark.parametrize("case", COMPACT, ids=_id)
def test_tflite_conversions_track_keras(case, tmp_path):
    """float32 within FLOAT_ATOL, float16 and dynamic range within their relative tolerances,
    int8 built-in and following the float logits; file sizes shrink as the weights do."""
    reference, results = convert_four_ways(case, tmp_path)
    data, got = results["none"]
    assert got.shape == reference.shape == (N_IMAGES, 10)
    assert np.abs(got - reference).max() <= exporter.FLOAT_ATOL
    info = tflite.inspect_model(data)
    assert info.builtin_only and info.ops
    assert list(info.outputs) == ["logits"] and list(info.inputs) == ["image"]

    scale = max(1.0, np.abs(reference).max())
    fp16 = np.abs(results["float16"][1] - reference).max() / scale
    dynamic = np.abs(results["dynamic"][1] - reference).max() / scale
    assert fp16 <= exporter.FLOAT16_RTOL
    assert dynamic <= exporter.DYNAMIC_RTOL
    sizes = {q: len(results[q][0]) for q in results}
    # fp16 halves the weights, dynamic and int8 quarter them (graph overhead aside).
    assert sizes["float16"] < 0.6 * sizes["none"]
    assert sizes["dynamic"] < 0.4 * sizes["none"] and sizes["int8"] < 0.4 * sizes["none"]

    data, got = results["int8"]
    info = tflite.inspect_model(data)
    assert info.builtin_only
    assert info.ops.get("QUANTIZE", 0) >= 1 and info.ops.get("DEQUANTIZE", 0) >= 1
    assert "CONV_2D" in info.ops or "FULLY_CONNECTED" in info.ops
    corr = np.corrcoef(reference.ravel(), got.ravel())[0, 1]
    assert corr >= INT8_RANDOM_MIN_CORRELATION, f"int8 logits correlate {corr:.3f} with float"


def _agreement_1000(keras_path, expected_policy):
    name = os.path.basename(keras_path).split(".")[0]
    card = exporter.export(weights=keras_path, fmt="tflite", quantize="int8",
                         representative_data="fashion_mnist", parity_images=1000,
                         output=os.path.join(os.environ["PYTEST_TMP"], name), name="int8")  # fmt: skip
    assert card["preprocessing"]["policy"] == expected_policy
    return card


@pytest.fixture
def pytest_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_TMP", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("keras_path", [LENET_KERAS, SQUEEZE_KERAS], ids=["lenet5", "squeezenet1_1_pruned"])
def test_int8_top1_agreement_trained(pytest_tmp, keras_path):
    card = _agreement_1000(keras_path, "simple")
    parity = card["parity"]
    assert parity["images"] == 1000 and parity["source"].startswith("fashion_mnist test")
    assert parity["top1_agreement"] >= exporter.INT8_MIN_TOP1_AGREEMENT
    assert parity["exported_accuracy"] > 0.7  # trained, not chance (10 %)


def test_shipped_squeezenet_headline():
    """SqueezeNet 1.1 pruned + int8 within 0.5 MB (gzip'd, as Deep Compression counts) and
    within 1 point of the shipped float model's accuracy, both measured on the full test
    split; the card names the float file it was compared with."""
    with open(SQUEEZE_TFLITE.replace(".tflite", ".json")) as f:
        card = json.load(f)
    data = open(SQUEEZE_TFLITE, "rb").read()
    assert card["size_bytes"] == len(data) and card["gzip_bytes"] == tflite.gzip_size(data)
    assert card["gzip_bytes"] <= 500_000
    assert card["weight_sparsity"] >= 0.5
    assert card["parity"]["images"] == card["baseline"]["images"] == 10_000
    assert card["parity"]["top1_agreement"] >= exporter.INT8_MIN_TOP1_AGREEMENT
    assert card["baseline"]["sha256"] == _sha256(SQUEEZE_FLOAT)
    drop = 100 * (card["baseline"]["accuracy"] - card["parity"]["exported_accuracy"])
    assert card["accuracy_drop_points"] == pytest.approx(drop, abs=0.01)
    assert drop <= 1.0
    assert tflite.inspect_model(data).builtin_only
    # The file on disk is the one the card describes: same predictions as its Keras source.
    model = keras.saving.load_model(SQUEEZE_KERAS, compile=False)
    prep = preprocess.preprocessing_for(card["preprocessing"]["policy"], *model_input_spec(model))
    pixels, _, _ = exporter.parity_data(prep, 200)
    got = tflite.run_signature(tflite.make_interpreter(SQUEEZE_TFLITE), pixels)
    ref = keras_outputs(model, pixels, prep)
    assert np.mean(got.argmax(-1) == ref.argmax(-1)) >= 0.99


def test_shipped_lenet_float_artifact():
    with open(LENET_TFLITE.replace(".tflite", ".json")) as f:
        card = json.load(f)
    assert card["quantization"] == "none" and card["parity"]["images"] == 10_000
    model = keras.saving.load_model(LENET_KERAS, compile=False)
    prep = preprocess.preprocessing_for(card["preprocessing"]["policy"], *model_input_spec(model))
    pixels, _, _ = exporter.parity_data(prep, 100)
    got = tflite.run_signature(tflite.make_interpreter(LENET_TFLITE), pixels)
    assert np.abs(got - keras_outputs(model, pixels, prep)).max() <= exporter.FLOAT_ATOL
    for path in (LENET_TFLITE, LENET_KERAS, SQUEEZE_TFLITE, SQUEEZE_KERAS, SQUEEZE_FLOAT):
        assert os.path.getsize(path) < 5_000_000


# ----------------------------------------------------------------------------- SavedModel


@pytest.mark.parametrize("name, size", [("lenet5", 32), ("squeezenet1_1", 32)])
def test_savedmodel_reload_identical_and_deterministic(tmp_path, name, size):
    model = _random_model(name, size, {})
    card = exporter.export(name, model=model, fmt="savedmodel", output=str(tmp_path), parity_images=8)
    assert card["parity"]["max_abs_diff"] <= exporter.FLOAT_ATOL
    prep = preprocess.preprocessing_for(card["preprocessing"]["policy"], size, model_input_spec(model)[1])
    raw = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype(np.uint8)  # Fashion-MNIST-like
    expected = keras_outputs(model, preprocess.resize_crop(raw, prep).numpy(), prep)

    loaded = tf.saved_model.load(card["path"])
    out_f = loaded.signatures["serving_default"](images=tf.constant(raw, tf.float32))
    out_u = loaded.signatures["serve_uint8"](images=tf.constant(raw))
    np.testing.assert_allclose(out_f["logits"].numpy(), expected, atol=1e-4)
    np.testing.assert_array_equal(out_f["logits"].numpy(), out_u["logits"].numpy())
    np.testing.assert_allclose(out_f["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)
    again = loaded.signatures["serving_default"](images=tf.constant(raw, tf.float32))
    np.testing.assert_array_equal(again["logits"].numpy(), out_f["logits"].numpy())  # no augmentation, no dropout

    layer = keras.layers.TFSMLayer(card["path"], call_endpoint="serving_default")
    via_layer = layer(tf.constant(raw, tf.float32))
    np.testing.assert_array_equal(via_layer["logits"].numpy(), out_f["logits"].numpy())
    # RGB input of another size is converted by the graph (resize, luma or repetition).
    rgb = np.random.default_rng(1).integers(0, 256, (2, 40, 50, 3)).astype(np.uint8)
    out = loaded.signatures["serve_uint8"](images=tf.constant(rgb))["logits"].numpy()
    np.testing.assert_allclose(out, keras_outputs(model, preprocess.resize_crop(rgb, prep).numpy(), prep), atol=1e-4)


@pytest.mark.parametrize("policy, channels, in_channels", [("simple", 1, 1), ("simple", 3, 1), ("alexnet", 3, 3), ("inception", 1, 3)])
def test_resize_crop_is_the_training_eval_transform(policy, channels, in_channels):
    prep = preprocess.preprocessing_for(policy, 32, channels)
    image = np.random.default_rng(0).integers(0, 256, (28, 36, in_channels)).astype(np.uint8)
    expected, _ = preprocess.eval_transform(policy, 32, channels)(tf.constant(image), tf.constant(0))
    got = preprocess.normalize(preprocess.resize_crop(image, prep), prep)[0]
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4)


def test_aux_heads_dropped(tmp_path):
    model = keras_archs_model("googlenet_bn", aux_logits=True, input_shape=(96, 96, 3), classes=10)
    assert isinstance(model.output, dict) and set(model.output) == {"main", "aux1", "aux2"}
    card = exporter.export("googlenet_bn", model=model, output=str(tmp_path), parity_images=4)
    info = tflite.inspect_model(open(card["path"], "rb").read())
    assert list(info.outputs) == ["logits"] and info.outputs["logits"]["shape"] == [1, 10]
    assert card["parity"]["max_abs_diff"] <= exporter.FLOAT_ATOL  # against the main output


def keras_archs_model(name, **kwargs):
    import keras_archs

    return keras_archs.get_model(name, classifier_activation=None, **kwargs)


# ----------------------------------------------------------------------------- model card


def test_card_contents(tmp_path):
    card = exporter.export("lenet5", model=_random_model("lenet5", 32, {}), quantize="dynamic",
                         output=str(tmp_path), parity_images=8, labels="fashion_mnist")  # fmt: skip
    on_disk = json.loads(open(card["card_path"]).read())
    for key in ("arch", "preprocessing", "size_bytes", "gzip_bytes", "ops", "quantization", "parity", "command", "input"):
        assert key in on_disk, key
    assert on_disk["size_bytes"] == os.path.getsize(card["path"])
    assert on_disk["gzip_bytes"] == tflite.gzip_size(open(card["path"], "rb").read())
    assert on_disk["input"]["shape"] == [1, 32, 32, 1] and on_disk["input"]["dtype"] == "float32"
    assert on_disk["class_names"][9] == "Ankle boot"
    assert on_disk["command"].startswith("python -m trainers.export --arch lenet5")
    assert set(os.listdir(tmp_path)) == {"lenet5_dynamic.tflite", "lenet5_dynamic.json"}


def test_int8_card_reports_float_ops_of_lrn(tmp_path):
    """AlexNet's LRN (a POW in its lowering) has no int8 kernel: the card says it stays float."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3)(inputs)
    from keras_archs.layers import LocalResponseNormalization

    x = LocalResponseNormalization(name="lrn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x), name="lrn_net")
    card = exporter.export("lrn_net", model=model, quantize="int8", representative_data="fashion_mnist",
                         representative_count=16, preprocessing="simple", output=str(tmp_path), parity_images=8)  # fmt: skip
    assert card["float_ops"], card["ops"]
    assert "LRN" in card["float_ops_note"]


# ----------------------------------------------------------------------------- errors


class DetLayer(keras.layers.Layer):
    """A layer whose op (MatrixDeterminant) is not a TFLite built-in."""

    def call(self, x):
        return tf.linalg.det(tf.reshape(x[..., :4], (-1, 2, 2)))[:, None] * tf.ones((1, 10))


def test_non_builtin_op_fails_clearly_and_leaves_nothing(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1)(inputs))
    model = keras.Model(inputs, DetLayer()(x), name="det_net")
    with pytest.raises(exporter.ExportFailedError, match="not TFLite built-ins"):
        exporter.export("det_net", model=model, preprocessing="simple", output=str(tmp_path), parity_images=2)
    assert os.listdir(tmp_path) == []  # no partial .tflite, no card, no temp files


def test_bad_requests(tmp_path, capsys):
    model = _random_model("lenet5", 32, {})
    with pytest.raises(exporter.ExportError, match="Unknown quantization 'int4'"):
        exporter.export("lenet5", model=model, quantize="int4", output=str(tmp_path))
    with pytest.raises(exporter.ExportError, match="int8 quantization needs --representative_data"):
        exporter.export("lenet5", model=model, quantize="int8", output=str(tmp_path))
    with pytest.raises(exporter.ExportError, match="Unknown format"):
        exporter.export("lenet5", model=model, fmt="onnx", output=str(tmp_path))
    with pytest.raises(ValueError, match="representative data"):
        tflite.convert_saved_model(str(tmp_path), quantize="int8")
    not_images = tmp_path / "junk" / "cls"
    not_images.mkdir(parents=True)
    (not_images / "notes.txt").write_text("not an image")
    with pytest.raises(exporter.ExportError, match="no readable images"):
        exporter.export("lenet5", model=model, quantize="int8", representative_data=f"folder:{tmp_path / 'junk'}",
                      output=str(tmp_path / "out"))  # fmt: skip
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []
    # The CLI reports the same errors in one line and exits 2.
    assert export.main(["--arch", "lenet5", "--quantize", "int8", "--output", str(tmp_path / "cli")]) == 2
    assert "error: int8 quantization needs --representative_data" in capsys.readouterr().err
    assert export.main(["--arch", "no_such_net"]) == 2
    assert "Unknown model 'no_such_net'" in capsys.readouterr().err
    assert export.main(["--weights", str(tmp_path / "missing.keras")]) == 2
    assert "not found" in capsys.readouterr().err


def test_baseline_accuracy_drop(tmp_path, capsys):
    """--baseline: the float model's accuracy on the same labelled images, and the drop."""
    out = str(tmp_path / "out")
    args = ["--weights", LENET_KERAS, "--output", out, "--parity_images", "300", "--baseline", LENET_KERAS]
    assert export.main([*args, "--quantize", "float16"]) == 0
    with open(os.path.join(out, "lenet5_float16.json")) as f:
        card = json.load(f)
    assert card["baseline"]["accuracy"] == card["parity"]["reference_accuracy"]  # the same model
    drop = 100 * (card["parity"]["reference_accuracy"] - card["parity"]["exported_accuracy"])
    assert card["accuracy_drop_points"] == pytest.approx(drop, abs=0.01)
    assert "drop" in capsys.readouterr().out
    assert export.main(["--weights", LENET_KERAS, "--output", out, "--parity_images", "0", "--baseline", LENET_KERAS]) == 2
    assert "--baseline needs parity images" in capsys.readouterr().err
    assert export.main(["--weights", LENET_KERAS, "--output", out, "--baseline", LENET_TFLITE]) == 2
    assert "is not a .keras file" in capsys.readouterr().err
    assert export.main(["--weights", SQUEEZE_KERAS, "--output", out, "--baseline", LENET_KERAS]) == 2
    assert "takes inputs (32, 1)" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["lenet5_float16.json", "lenet5_float16.tflite"]  # nothing from the failures


def test_cli_random_init_warns_and_writes(tmp_path, capsys):
    with pytest.warns(UserWarning, match="randomly initialised"):
        code = export.main(["--arch", "lenet5", "--output", str(tmp_path), "--parity_images", "4"])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["lenet5_float32.json", "lenet5_float32.tflite"]


# ----------------------------------------------------------------------------- pruning


def test_polynomial_schedule():
    s = [pruning.polynomial_sparsity(t, initial=0.0, final=0.8, begin_step=10, end_step=110) for t in (0, 10, 60, 110, 500)]
    assert s[0] == s[1] == 0.0 and s[3] == s[4] == 0.8
    assert s[2] == pytest.approx(0.8 * (1 - 0.5**3))  # Zhu & Gupta's cubic ramp


def test_magnitude_mask_zeroes_exactly_the_smallest():
    w = np.random.default_rng(0).normal(size=(3, 3, 8, 16))
    mask = pruning.magnitude_mask(w, 0.75)
    assert mask.sum() == w.size - round(0.75 * w.size)
    assert np.abs(w[mask == 1]).min() >= np.abs(w[mask == 0]).max()


def test_global_magnitude_masks_use_one_threshold():
    rng = np.random.default_rng(0)
    big_weights, small_weights = rng.normal(size=(64, 32)), 0.1 * rng.normal(size=(3, 3, 16, 32))
    masks = pruning.global_magnitude_masks([big_weights, small_weights], 0.5)
    kept = np.concatenate([np.abs(w[m == 1]) for w, m in zip((big_weights, small_weights), masks)])
    dropped = np.concatenate([np.abs(w[m == 0]) for w, m in zip((big_weights, small_weights), masks)])
    assert sum(int((m == 0).sum()) for m in masks) == round(0.5 * (big_weights.size + small_weights.size))
    assert kept.min() >= dropped.max()
    assert (masks[1] == 0).mean() > 0.6 > 0.1 > (masks[0] == 0).mean()  # the small-magnitude layer goes first


def test_pruning_callback_reaches_and_keeps_sparsity():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    rng = np.random.default_rng(0)
    ds = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(256, 8, 8, 1)).astype("float32"), rng.integers(0, 10, 256).astype("int32"))
    ).batch(16).repeat()
    callback = pruning.prune(model, ds, final_sparsity=0.7, epochs=2, steps_per_epoch=10, frequency=2)
    report = pruning.sparsity_report(model)
    assert callback.step == 20
    assert report["total"] == pytest.approx(0.7, abs=0.01)  # held through the fine-tuning steps after end_step
    assert exporter.weight_sparsity(model) > 0.6


# ----------------------------------------------------------------------------- where files go


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_default_output_never_replaces_tracked_files(tmp_path, monkeypatch, capsys):
    """The README's command without --output writes exports/<arch>/ (not saved_models/); an
    existing output is refused (exit 2, one line, nothing written) unless --overwrite."""
    shipped = {p: _sha256(p) for p in (LENET_TFLITE, os.path.splitext(LENET_TFLITE)[0] + ".json")}
    monkeypatch.chdir(tmp_path)
    args = ["--arch", "lenet5", "--weights", LENET_KERAS, "--format", "tflite", "--parity_images", "0"]
    assert export.main(args) == 0
    written = tmp_path / "exports" / "lenet5" / "lenet5_float32.tflite"
    assert sorted(os.listdir(written.parent)) == ["lenet5_float32.json", "lenet5_float32.tflite"]
    assert {p: _sha256(p) for p in shipped} == shipped
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in written.parent.iterdir()}
    capsys.readouterr()
    assert export.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{written.relative_to(tmp_path)} already exists; pass --overwrite" in err
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in written.parent.iterdir()} == before
    assert export.main([*args, "--overwrite"]) == 0
    assert written.stat().st_mtime_ns > before[written][0]


def test_refusal_comes_before_any_work(tmp_path):
    """A SavedModel directory or a card already there: refused before conversion."""
    model = _random_model("lenet5", 32, {})
    (tmp_path / "lenet5_savedmodel").mkdir()
    with pytest.raises(exporter.ExportError, match="lenet5_savedmodel already exists; pass --overwrite"):
        exporter.export("lenet5", model=model, fmt="savedmodel", output=str(tmp_path), parity_images=0)
    (tmp_path / "lenet5_float16.json").write_text("{}")
    with pytest.raises(exporter.ExportError, match=r"lenet5_float16\.json already exists"):
        exporter.export("lenet5", model=model, quantize="float16", output=str(tmp_path), parity_images=0)
    assert sorted(os.listdir(tmp_path)) == ["lenet5_float16.json", "lenet5_savedmodel"]
    assert os.listdir(tmp_path / "lenet5_savedmodel") == []


def test_prune_refuses_to_overwrite_before_training(tmp_path, capsys):
    out = tmp_path / "pruned.keras"
    out.write_bytes(b"precious")
    start = time.time()
    assert prune.main(["--weights", LENET_KERAS, "--output", str(out)]) == 2
    assert "pruned.keras already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"precious" and not (tmp_path / "pruned.json").exists()
    assert time.time() - start < 60  # no fine-tuning epoch ran
    assert prune.main(["--weights", str(tmp_path / "missing.keras")]) == 2
    assert "is not a .keras file" in capsys.readouterr().err


def test_mixed_precision_run_exports_in_float32(tmp_path):
    """trainers.run saves bfloat16-policy models on AVX512_BF16 CPUs; TFLite has no bfloat16
    built-ins, so export rebuilds the model in float32 (same weights) before converting."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", dtype="mixed_bfloat16")(inputs)
    x = keras.layers.GlobalAveragePooling2D(dtype="mixed_bfloat16")(x)
    outputs = keras.layers.Dense(3, dtype="mixed_bfloat16")(x)
    model = keras.Model(inputs, outputs, name="bf16_net")
    path = str(tmp_path / "bf16_net.keras")
    model.save(path)
    loaded = exporter.load_model(None, path)
    assert {layer.dtype_policy.name for layer in loaded.layers[1:]} == {"float32"}
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    card = exporter.export(weights=path, preprocessing="simple", output=str(tmp_path / "out"), parity_images=8)
    assert card["parity"]["max_abs_diff"] <= exporter.FLOAT_ATOL and card["builtin_only"]
