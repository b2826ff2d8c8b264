"""Fashion-MNIST test accuracy against wall time on this machine, per (network, recipe, budget).

    python -m benchmarks.time_to_accuracy                          # the default pairs, seeds 0 1 2
    python -m benchmarks.time_to_accuracy --pairs resnet20:budgeted:8 --seeds 0
    python -m benchmarks.time_to_accuracy --quick                  # synthetic data, seconds (CI)

Each run is one fresh process training with ``trainers.run``'s pieces exactly as the
command line does (validation split held out, the recipe's schedule over the whole budget).
After every epoch the current weights are evaluated on the test split *for this curve
only*: the clock stops during that evaluation, and nothing in training reads it. Wall time
counts from the process start (imports, data, tracing and the per-epoch validation
included). Written to ``--output`` (default ``runs/benchmarks/time_to_accuracy_<time>``):
``results.json`` (every epoch of every run), ``curve.png`` (mean over seeds, min-max band)
and ``table.md``; the table is printed too.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# arch:recipe:epochs — the demo's network and recipe at its budget and at twice that, and
# LeNet-5 with its paper's 20-pass schedule.
DEFAULT_PAIRS = ("resnet20:budgeted:4", "resnet20:budgeted:8", "lenet5:lenet5:20")
THRESHOLDS = (0.92, 0.93, 0.94)
QUICK_ARGS = ("--quick",)


def one_run(arch: str, recipe_name: str, epochs: int, seed: int, dataset: str, batch_size: int,
            steps_per_epoch: int | None) -> dict:  # fmt: skip
    """Train once in this process; the test accuracy and wall time after every epoch."""
    import keras

    import keras_archs
    from trainers import precision, recipes
    from trainers.data.pipeline import load_splits, make_eval_dataset, make_train_dataset
    from trainers.loop import Trainer
    from trainers.run import build_model

    spec = keras_archs.get_spec(arch)
    recipe = recipes.get_recipe(recipe_name)
    raw_train, raw_val, raw_test, info = load_splits(dataset, None, validation_split=0.1, seed=seed,
                                                         log=lambda m: None)  # fmt: skip
    native = info.image_shape[0]
    image_size = native if native and native >= spec.min_size else spec.default_size
    channels = info.image_shape[-1]
    keras.utils.set_random_seed(seed)
    policy_name = precision.choose("auto")
    keras.mixed_precision.set_global_policy(policy_name)
    plan = recipes.resolve(recipe, num_train=info.num_train, global_batch=batch_size, epochs=epochs,
                           steps_per_epoch=steps_per_epoch)  # fmt: skip
    kwargs = dict(policy=recipe.augment, image_size=image_size, channels=channels, batch_size=500)
    val_ds = make_eval_dataset(raw_val, **kwargs)
    test_ds = make_eval_dataset(raw_test, **kwargs)
    paused = [0.0]
    points = []

    def measure(trainer, record) -> None:
        start = time.time()
        wall = start - PROCESS_START - paused[0]
        test = trainer.evaluate(test_ds)
        paused[0] += time.time() - start
        points.append({"epoch": record.epoch, "wall_seconds": wall, "test_accuracy": test["accuracy"],
                       "val_accuracy": record.val_accuracy})  # fmt: skip

    build = lambda: build_model(arch, image_size=image_size, channels=channels, classes=info.num_classes,  # noqa: E731
                                    recipe=recipe, log=lambda m: None)  # fmt: skip
    trainer = Trainer(build, plan, model_dir=None, log=lambda m: None, progress=False, callbacks=[measure])
    train_fn = make_train_dataset(raw_train, info.num_train, info.num_classes, policy=recipe.augment,
                                      image_size=image_size, channels=channels, plan=plan, seed=seed)  # fmt: skip
    trainer.fit(train_fn, val_ds)
    return {"arch": arch, "recipe": recipe_name, "epochs": epochs, "seed": seed, "precision": policy_name,
            "image_size": image_size, "points": points}  # fmt: skip


def _label(run: dict) -> str:
    return f"{run['arch']} / {run['recipe']} / {run['epochs']} epochs"


def summarize(runs: list[dict]) -> list[dict]:
    """Per (arch, recipe, epochs): mean over seeds of the final test accuracy and wall time,
    and the mean wall time at which the mean curve first reaches each threshold."""
    import numpy as np

    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(_label(run), []).append(run)
    rows = []
    for label, group in groups.items():
        n = min(len(r["points"]) for r in group)
        acc = np.array([[p["test_accuracy"] for p in r["points"][:n]] for r in group])
        wall = np.array([[p["wall_seconds"] for p in r["points"][:n]] for r in group])
        mean_acc, mean_wall = acc.mean(0), wall.mean(0)
        reached = {}
        for t in THRESHOLDS:
            hit = np.flatnonzero(mean_acc >= t)
            reached[f"{t:.0%}"] = float(mean_wall[hit[0]]) if len(hit) else None
        rows.append({
            "label": label, "seeds": [r["seed"] for r in group], "final_test_accuracy": float(mean_acc[-1]),
            "final_min": float(acc[:, -1].min()), "final_max": float(acc[:, -1].max()),
            "best_test_accuracy": float(mean_acc.max()), "wall_seconds": float(mean_wall[-1]),
            "seconds_to": reached, "curve": {"wall": mean_wall.tolist(), "accuracy": mean_acc.tolist(),
                                             "low": acc.min(0).tolist(), "high": acc.max(0).tolist()},
        })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    head = "| network / recipe / budget | seeds | test accuracy (mean, min-max) | wall | " + " | ".join(
        f"time to {t:.0%}" for t in THRESHOLDS
    ) + " |"
    lines = [head, "|" + "---|" * (4 + len(THRESHOLDS))]
    for r in rows:
        times = [f"{v / 60:.1f} min" if v is not None else "not reached" for v in r["seconds_to"].values()]
        lines.append(
            f"| {r['label']} | {len(r['seeds'])} | {r['final_test_accuracy']:.2%} ({r['final_min']:.2%}-"
            f"{r['final_max']:.2%}) | {r['wall_seconds'] / 60:.1f} min | " + " | ".join(times) + " |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trainers.outputs import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in rows:
        c = r["curve"]
        minutes = [w / 60 for w in c["wall"]]
        ax.plot(minutes, c["accuracy"], marker="o", label=f"{r['label']} ({len(r['seeds'])} seeds)")
        ax.fill_between(minutes, c["low"], c["high"], alpha=0.2)
    for t in THRESHOLDS:
        ax.axhline(t, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("wall time on 2 CPU cores (minutes)")
    ax.set_ylabel("Fashion-MNIST test accuracy")
    ax.set_ylim(0.8, 0.96)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _worker(args) -> int:
    arch, recipe, epochs = args.worker.split(":")
    result = one_run(arch, recipe, int(epochs), args.seed, args.dataset, args.batch_size, args.steps_per_epoch)
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.time_to_accuracy", description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), help="arch:recipe:epochs")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--steps_per_epoch", type=int, default=None)
    p.add_argument("--output", default=None, help="output folder (default runs/benchmarks/time_to_accuracy_<time>)")
    p.add_argument("--quick", action="store_true", help="synthetic data, one seed, 2 epochs of 3 steps: a smoke run")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return _worker(args)
    if args.quick:
        args.pairs, args.seeds, args.dataset = ["resnet20:budgeted:2"], [0], "synthetic:256"
        args.batch_size, args.steps_per_epoch = 16, 3
    for pair in args.pairs:
        if len(pair.split(":")) != 3 or not pair.split(":")[2].isdigit():
            p.error(f"--pairs takes arch:recipe:epochs, got {pair!r}")
    out = args.output or os.path.join("runs", "benchmarks", f"time_to_accuracy_{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(out, exist_ok=True)
    runs = []
    for pair in args.pairs:
        for seed in args.seeds:
            result = os.path.join(out, f".{pair.replace(':', '_')}_{seed}.json")
            cmd = [sys.executable, "-m", "benchmarks.time_to_accuracy", "--worker", pair, "--seed", str(seed),
                   "--result", result, "--dataset", args.dataset, "--batch_size", str(args.batch_size)]  # fmt: skip
            if args.steps_per_epoch:
                cmd += ["--steps_per_epoch", str(args.steps_per_epoch)]
            print(f"{pair} seed {seed} ...", flush=True)
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                print(r.stderr[-3000:], file=sys.stderr)
                return 1
            with open(result, encoding="utf-8") as f:
                run = json.load(f)
            os.remove(result)
            last = run["points"][-1]
            print(f"  test accuracy {last['test_accuracy']:.4f} after {last['wall_seconds']:.0f}s", flush=True)
            runs.append(run)
    rows = summarize(runs)
    from trainers.outputs import atomic_write_text, write_json

    write_json(os.path.join(out, "results.json"), {"runs": runs, "summary": rows, "dataset": args.dataset,
                                                   "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)})  # fmt: skip
    text = table(rows)
    atomic_write_text(os.path.join(out, "table.md"), text + "\n")
    plot(rows, os.path.join(out, "curve.png"))
    print(text)
    print(f"written to {out}/ (results.json, table.md, curve.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
