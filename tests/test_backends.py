"""The same imported weights give the same logits under the torch backend of Keras.

One subprocess runs with ``KERAS_BACKEND=torch`` (a backend is chosen once per
process); it loads the same weights into one small model of each family and writes
its outputs, which must equal TensorFlow's: torchvision state dicts for AlexNet-OWT,
VGG and ResNet, and for every other family a model with random weights and random
normalisation statistics saved by TensorFlow as a Keras 3 ``.weights.h5``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

import keras_archs
from tests.test_weights_torchvision import RTOL, images, keras_logits, relative_diff, save_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# registry name, torchvision builder, input size, builder kwargs (small or headless for speed)
CASES = [
    ("alexnet_owt", "alexnet", 127, {"classifier_activation": None}),
    ("vgg11_bn", "vgg11_bn", 64, {"include_top": False, "pooling": "avg"}),
    ("resnet18", "resnet18", 64, {"classifier_activation": None}),
]
TOP = {"classifier_activation": None}
NO_TOP = {"include_top": False, "pooling": "avg"}
# One small variant of every other family: registry name, input size, builder kwargs.
KERAS_CASES = [
    ("lenet5", 32, TOP),
    ("alexnet", 67, NO_TOP),  # the paper's: grouped convolutions and LRN
    # 31, not 32: Keras' torch backend averages AveragePooling2D(3, 2, "same") over one-sided
    # padding (even grid) differently from TensorFlow (relative diff 8e-3 at 32x32).
    ("nin_cifar", 31, TOP),
    ("googlenet", 64, TOP),  # the paper's, with LRN
    ("inception_v3", 75, NO_TOP),
    ("inception_resnet_v2", 75, {**NO_TOP, "blocks": (1, 1, 2)}),  # scaled residuals, linear last block
    ("densenet_bc_100_12", 32, TOP),
    ("squeezenet1_1", 64, TOP),
    ("bit_r50x1", 64, NO_TOP),  # weight-standardised convolutions, group norm
    ("efficientnet_b0", 64, TOP),
    ("mnasnet0_5", 64, TOP),
    ("shufflenet_v2_x0_5", 64, TOP),  # channel shuffle
    ("resnet20", 32, TOP),  # option A shortcuts
    ("wrn16_8", 32, TOP),
    ("resnext50_32x4d", 64, NO_TOP),
    ("inception_v4", 75, NO_TOP),
    ("densenet121", 32, TOP),  # ImageNet DenseNet: pre-activation transitions, 7x7 stem
    ("wide_resnet50_2", 32, NO_TOP),  # ImageNet Wide ResNet: widened bottlenecks
]
_RANDOM = {
    "gamma": lambda rng, n: 0.5 + rng.uniform(size=n),
    "moving_variance": lambda rng, n: 0.5 + rng.uniform(size=n),
    "beta": lambda rng, n: 0.2 * rng.normal(size=n),
    "moving_mean": lambda rng, n: 0.2 * rng.normal(size=n),
    "bias": lambda rng, n: 0.1 * rng.normal(size=n),
}


def randomize_statistics(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random biases, normalisation scales/offsets and BatchNormalization statistics
    (kernels keep their random initialisation)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if variable.name in _RANDOM and len(variable.shape) == 1:
            variable.assign(_RANDOM[variable.name](rng, variable.shape[0]).astype("float32"))
    return model


def _inputs(size: int, channels: int) -> np.ndarray:
    return np.random.default_rng(size + channels).normal(size=(2, size, size, channels)).astype("float32")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch  # before keras: the torch backend
    import keras
    import numpy as np
    import keras_archs

    assert keras.backend.backend() == "torch", keras.backend.backend()
    cases, x_path, out_dir = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    data = np.load(x_path)
    for name, path, size, channels, kwargs in cases:
        if "blocks" in kwargs:
            kwargs["blocks"] = tuple(kwargs["blocks"])
        model = keras_archs.get_model(name, weights=path, input_shape=(size, size, channels), **kwargs)
        y = keras.ops.convert_to_numpy(model(data[f"{size}x{channels}"], training=False))
        np.save(f"{out_dir}/{name}.npy", y)
    """
)


def test_torch_backend_gives_tensorflow_logits(tmp_path):
    inputs = {f"{size}x3": images(size) for size in {c[2] for c in CASES}}
    cases, expected = [], {}
    for name, tv_name, size, kwargs in CASES:
        path = tmp_path / f"{name}.pth"
        save_reference(tv_name, path)
        model = keras_archs.get_model(name, weights=str(path), input_shape=(size, size, 3), **kwargs)
        expected[name] = keras_logits(model, inputs[f"{size}x3"])
        cases.append((name, str(path), size, 3, kwargs))
    for seed, (name, size, kwargs) in enumerate(KERAS_CASES):
        channels = keras_archs.get_spec(name).channels
        x = inputs.setdefault(f"{size}x{channels}", _inputs(size, channels))
        model = randomize_statistics(keras_archs.get_model(name, input_shape=(size, size, channels), **kwargs), seed)
        path = tmp_path / f"{name}.weights.h5"
        model.save_weights(path)
        expected[name] = keras_logits(model, x)
        cases.append((name, str(path), size, channels, kwargs))
        del model
        keras.backend.clear_session()
    np.savez(tmp_path / "x.npz", **inputs)
    env = {**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(cases), str(tmp_path / "x.npz"), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    diffs = {}
    for name, *_ in cases:
        theirs = np.load(tmp_path / f"{name}.npy")
        assert theirs.shape == expected[name].shape, name
        diffs[name] = relative_diff(theirs, expected[name])
        print(f"{name}: torch backend vs tensorflow max relative diff {diffs[name]:.2e}")
    failed = {name: f"{diff:.2e}" for name, diff in diffs.items() if not diff <= RTOL}
    assert not failed, f"torch vs tensorflow backend: {failed}"
