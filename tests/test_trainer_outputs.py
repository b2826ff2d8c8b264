"""What the trainers' command-line tools leave and print: file permissions of atomic writes,
``--augment mixup`` really mixing labels, and TensorFlow's start-up lines kept away from the
user unless ``--verbose``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainers import cli, outputs, recipes
from trainers.data import pipeline, preprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENET_KERAS = os.path.join(ROOT, "saved_models", "lenet5", "lenet5.keras")
# What TensorFlow 2.21 prints from C++ while it is imported (see keras_archs/_quiet.py).
START_UP = ("absl::InitializeLog", "oneDNN", "cpu_feature_guard")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(0o022)``), restored afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


# ----------------------------------------------------------------------------- permissions


def test_atomic_writes_get_the_usual_permissions(tmp_path, umask):
    """mkstemp makes 0600 files; outputs get 0666 minus the umask like open() would, and
    a replaced file keeps its mode."""
    outputs.write_json(str(tmp_path / "a.json"), {"a": 1})
    assert _mode(tmp_path / "a.json") == 0o644
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    outputs.save_keras(model, str(tmp_path / "m.keras"))
    assert _mode(tmp_path / "m.keras") == 0o644
    os.chmod(tmp_path / "a.json", 0o640)
    outputs.write_json(str(tmp_path / "a.json"), {"a": 2})
    assert _mode(tmp_path / "a.json") == 0o640
    umask(0o077)
    outputs.atomic_write_text(str(tmp_path / "private.txt"), "x")
    assert _mode(tmp_path / "private.txt") == 0o600
    umask(0o002)
    outputs.atomic_write_text(str(tmp_path / "group.txt"), "x")
    assert _mode(tmp_path / "group.txt") == 0o664
    assert outputs.umask() == 0o002
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp files left


def test_savedmodel_directory_gets_the_usual_permissions(tmp_path, umask):
    class Archive:  # what keras.export.ExportArchive.write_out does, minus TensorFlow
        def write_out(self, path, verbose=False):
            with open(os.path.join(path, "saved_model.pb"), "w") as f:
                f.write("x")

    outputs.atomic_write_dir(str(tmp_path / "sm"), Archive().write_out)
    assert _mode(tmp_path / "sm") == 0o755  # mkdtemp made it 0700


def test_refuse_overwrite(tmp_path):
    target = tmp_path / "out.tflite"
    outputs.refuse_overwrite([str(target)])  # absent: fine
    target.write_text("x")
    outputs.refuse_overwrite([str(target)], overwrite=True)
    with pytest.raises(FileExistsError, match=r"out\.tflite already exists; pass --overwrite"):
        outputs.refuse_overwrite([str(tmp_path / "other"), str(target)])


# ----------------------------------------------------------------------------- mixup


def test_augment_mixup_gives_soft_labels():
    """--augment mixup: the policy's alpha reaches the plan and the batches (the recipe's
    mixup_min_examples rule still applies)."""
    recipe = recipes.apply_overrides(recipes.get_recipe("lenet5"), augment="mixup")
    plan = recipes.resolve(recipe, num_train=64, global_batch=8, epochs=1)
    assert plan.mixup_alpha == preprocess.POLICIES["mixup"].mixup_alpha == 0.2
    rng = np.random.default_rng(0)
    raw = tf.data.Dataset.from_tensor_slices(
        (rng.integers(0, 256, (64, 28, 28, 1)).astype(np.uint8), np.arange(64, dtype=np.int32) % 10)
    )
    batches = pipeline.make_train_dataset(
        raw, 64, 10, policy=recipe.augment, image_size=28, channels=1, plan=plan, seed=0
    )
    labels = np.concatenate([y.numpy() for _, y in batches(0)])
    assert labels.shape == (64, 10)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    soft_rows = ((labels > 1e-3) & (labels < 1 - 1e-3)).any(axis=1)
    assert soft_rows.mean() > 0.5, labels[:8]
    # The recipe's minimum dataset size for mixup (BiT-HyperRule: 20k examples) still holds.
    finetune = recipes.apply_overrides(recipes.get_recipe("finetune"), augment="mixup")
    assert recipes.resolve(finetune, num_train=1_000, global_batch=8).mixup_alpha == 0.0
    assert recipes.resolve(finetune, num_train=20_000, global_batch=8).mixup_alpha == 0.2
    # Policies without mixup leave the recipe's own alpha alone.
    assert recipes.resolve(recipes.get_recipe("finetune"), num_train=20_000, global_batch=8).mixup_alpha == 0.1


# ----------------------------------------------------------------------------- start-up lines


def _start_up_lines(text: str) -> list[str]:
    return sorted({pattern for pattern in START_UP if pattern in text})


def _python(*args, extra_env=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the CLIs' own default
    env.update(CUDA_VISIBLE_DEVICES="", **(extra_env or {}))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_training_cli_hides_tensorflow_start_up_lines(tmp_path, umask):
    """No "oneDNN" or "absl::InitializeLog" line reaches the user of trainers.run; with
    --verbose the same lines as a bare ``import tensorflow`` appear. The run's files are 0644."""
    control = _python("-c", "import tensorflow", extra_env={"TF_CPP_MIN_LOG_LEVEL": "2"})  # as the CLIs set it
    command = ["-m", "trainers.run", "--dataset", "synthetic:16", "--validation_split", "0", "--epochs", "1",
               "--batch_size", "8"]  # fmt: skip
    quiet_run = _python(*command, "--model_dir", str(tmp_path / "quiet"))
    assert quiet_run.returncode == 0, quiet_run.stderr[-3000:]
    assert _start_up_lines(quiet_run.stdout + quiet_run.stderr) == []
    assert quiet_run.stderr == ""  # nothing else either (e.g. matplotlib on a schedule ending at 0)
    for name in ("best.keras", "plan.json", "metrics.json", "curves.png", "history.csv"):
        assert _mode(tmp_path / "quiet" / name) == 0o644, name
    verbose_run = _python(*command, "--model_dir", str(tmp_path / "verbose"), "--verbose")
    assert verbose_run.returncode == 0, verbose_run.stderr[-3000:]
    assert _start_up_lines(verbose_run.stderr) == _start_up_lines(control.stderr)


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("trainers.export", ["--arch", "lenet5", "--quantize", "int4"], "Unknown quantization 'int4'"),
        ("trainers.prune", ["--weights", "missing.keras"], "is not a .keras file"),
        ("trainers.predict", ["--model", LENET_KERAS, "missing.png"], "image not found"),
    ],
    ids=["export", "prune", "predict"],
)
def test_other_clis_print_only_their_error(module, args, message, tmp_path):
    """Each tool imports TensorFlow before it fails here: stderr is the one error line."""
    done = _python("-m", module, *args)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()] and message in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith("error: ")


def test_filter_keeps_other_lines():
    """Only the start-up lines are dropped: anything else written to fd 2 still shows."""
    script = (
        "import os\n"
        "from trainers import cli\n"
        "with cli.quiet().filtered_stderr():\n"
        "    os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on.\\nreal problem\\n')\n"
    )
    done = _python("-c", script)
    assert done.returncode == 0 and done.stderr == "real problem\n"
    noise = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    assert cli.quiet().is_noise(noise)
