"""The same imported weights give the same logits under the torch backend of Keras.

One subprocess runs with ``KERAS_BACKEND=torch`` (a backend is chosen once per
process); it loads the same torchvision state dicts into one model of each family
on disk and writes its outputs, which must equal TensorFlow's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

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
    for name, path, size, kwargs in cases:
        model = keras_archs.get_model(name, weights=path, input_shape=(size, size, 3), **kwargs)
        y = keras.ops.convert_to_numpy(model(data[str(size)], training=False))
        np.save(f"{out_dir}/{name}.npy", y)
    """
)


def test_torch_backend_gives_tensorflow_logits(tmp_path):
    inputs = {str(size): images(size) for size in {c[2] for c in CASES}}
    np.savez(tmp_path / "x.npz", **inputs)
    cases, expected = [], {}
    for name, tv_name, size, kwargs in CASES:
        path = tmp_path / f"{name}.pth"
        save_reference(tv_name, path)
        model = keras_archs.get_model(name, weights=str(path), input_shape=(size, size, 3), **kwargs)
        expected[name] = keras_logits(model, inputs[str(size)])
        cases.append((name, str(path), size, kwargs))
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
    for name, *_ in CASES:
        theirs = np.load(tmp_path / f"{name}.npy")
        diff = relative_diff(theirs, expected[name])
        assert diff <= RTOL, f"{name}: torch vs tensorflow backend {diff:.2e}"
        print(f"{name}: torch backend vs tensorflow max relative diff {diff:.2e}")
