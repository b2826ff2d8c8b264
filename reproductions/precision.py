"""Mixed bfloat16 training reaches float32's accuracy (Kalamkar et al. 2019; Micikevicius et al. 2018).

    python -m reproductions.precision            # full: the demo's ResNet-20 recipe, 2 precisions x 3 seeds
    python -m reproductions.precision --quick    # smoke test into a temporary directory

Trains the demo's network and recipe (ResNet-20, `budgeted`, Fashion-MNIST at 28x28) with
``--precision float32`` and ``--precision mixed_bfloat16`` (bfloat16 compute, float32 variables and
optimizer state, no loss scaling), 3 seeds each, and compares the mean test accuracy and the training
speed. Writes ``precision.json`` and ``precision.png`` and rebuilds the report.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reproductions.common import RunResult, fmt, mean_std, parse_seeded_options, run_trainer, write_result

NAME = "precision"
ARCH = "resnet20"
RECIPE = "budgeted"
PRECISIONS = ("float32", "mixed_bfloat16")
SEEDS = (0, 1, 2)
# Two of the demo's four epochs on all of Fashion-MNIST: six runs in about a quarter of an hour.
FULL = {"per_class": None, "epochs": 2, "image_size": 28, "seeds": SEEDS}
QUICK = {"per_class": 20, "epochs": 1, "image_size": 16, "seeds": (0,)}
QUICK_EXTRA = ("--eval_batch_size", "1000")
# Decided before the runs: the precisions match when the difference of the mean test accuracies is
# within Z standard errors of that difference (from the seeds' spread) or under MARGIN points (a
# difference too small to matter even when the seeds happen to agree closely).
Z = 2.0
MARGIN = 0.2


def run_name(precision: str, seed: int) -> str:
    """The run folder of one precision and seed."""
    return f"{ARCH}_{precision}_seed{seed}"


def trainer_flags(precision: str, seed: int, cfg: dict[str, Any]) -> list[str]:
    """The trainer flags of one precision and seed."""
    flags = ["--arch", ARCH, "--recipe", RECIPE, "--precision", precision, "--epochs", str(cfg["epochs"]),
             "--image_size", str(cfg["image_size"]), "--seed", str(seed)]  # fmt: skip
    if cfg["per_class"]:
        flags += ["--train_examples_per_class", str(cfg["per_class"])]
    return flags


def accuracy_pct(run: RunResult) -> float:
    """Test accuracy in percent (NaN when the run diverged)."""
    return 100.0 - run.test_error


def training_speed(run: RunResult) -> float:
    """Median training images/s over the epochs after the first (the first traces and compiles)."""
    speeds = run.column("images_per_second")
    later = speeds[1:] or speeds
    return statistics.median(later) if later else math.nan


def verdict(accuracies: dict[str, list[float]]) -> tuple[str, str, dict[str, float]]:
    """The verdict from the seeds' test accuracies (percent): the difference of the means against the noise."""
    (m32, s32), (m16, s16) = mean_std(accuracies["float32"]), mean_std(accuracies["mixed_bfloat16"])
    diff = m16 - m32
    se = math.sqrt(s32**2 / len(accuracies["float32"]) + s16**2 / len(accuracies["mixed_bfloat16"]))
    stats = {"mean_float32": m32, "std_float32": s32, "mean_bfloat16": m16, "std_bfloat16": s16,
             "difference": diff, "se": se}  # fmt: skip
    facts = (f"Mean test accuracy over {len(accuracies['float32'])} seeds: {fmt(m32)} % (std {fmt(s32)}) in float32, "
             f"{fmt(m16)} % (std {fmt(s16)}) in mixed bfloat16; difference {diff:+.2f} points, standard error of "
             f"the difference {fmt(se)}.")  # fmt: skip
    if any(math.isnan(a) for v in accuracies.values() for a in v):
        return "inconclusive", facts + " A run diverged.", stats
    if abs(diff) <= max(Z * se, MARGIN):
        return "reproduced", facts + f" Within {Z:g} standard errors or {MARGIN:g} points: the same accuracy.", stats
    return "not reproduced", facts + f" The difference exceeds {Z:g} standard errors and {MARGIN:g} points.", stats


def plot(runs: dict[tuple[str, int], RunResult], path: Path, title: str) -> None:
    """Left: validation accuracy per epoch, one line per run; right: test accuracy per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    colours = {"float32": "tab:blue", "mixed_bfloat16": "tab:orange"}
    for (precision, seed), run in runs.items():
        val = [100.0 * a for a in run.column("val_accuracy")]
        label = precision if seed == min(s for p, s in runs if p == precision) else None
        ax.plot(range(1, len(val) + 1), val, "-o", ms=3, color=colours[precision], label=label)
    for i, precision in enumerate(PRECISIONS):
        tests = [accuracy_pct(r) for (p, _), r in runs.items() if p == precision]
        bx.scatter([i] * len(tests), tests, color=colours[precision], zorder=3)
        if tests:
            m, s = mean_std(tests)
            bx.errorbar([i + 0.12], [m], yerr=[s], fmt="_", color="black", capsize=6, markersize=14)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    bx.set_xticks(range(len(PRECISIONS)), list(PRECISIONS))
    bx.set_xlim(-0.5, len(PRECISIONS) - 0.5)
    bx.set_ylabel("test accuracy (%), one dot per seed")
    bx.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run both precisions over the seeds (reusing finished runs), write the JSON and plot, rebuild the report."""
    opts, cfg, extra = parse_seeded_options(NAME, __doc__.splitlines()[0], argv, FULL, QUICK, QUICK_EXTRA)
    runs: dict[tuple[str, int], RunResult] = {}
    for seed in cfg["seeds"]:  # seed-major, alternating: both precisions see the same machine load
        for precision in PRECISIONS:
            runs[precision, seed] = run_trainer(run_name(precision, seed), trainer_flags(precision, seed, cfg) + extra,
                                                opts)  # fmt: skip
    accuracies = {p: [accuracy_pct(runs[p, s]) for s in cfg["seeds"]] for p in PRECISIONS}
    speeds = {p: [training_speed(runs[p, s]) for s in cfg["seeds"]] for p in PRECISIONS}
    label, reason, stats = verdict(accuracies)
    speedup = statistics.median(speeds["mixed_bfloat16"]) / statistics.median(speeds["float32"])
    stats["speedup_median"] = speedup
    opts.artifacts.mkdir(parents=True, exist_ok=True)
    plot_name = f"{NAME}.png"
    seeds = ", ".join(map(str, cfg["seeds"]))
    subset = f"{cfg['per_class']} images/class" if cfg["per_class"] else "all training images"
    title = (f"{ARCH} on Fashion-MNIST {cfg['image_size']}x{cfg['image_size']}, {subset}, {RECIPE} recipe over "
             f"{cfg['epochs']} epochs, seeds {seeds}")  # fmt: skip
    plot(runs, opts.artifacts / plot_name, title)
    any_run = next(iter(runs.values())).summary()
    splits = any_run["splits"] or {}
    rows = [[p, str(s), fmt(accuracy_pct(runs[p, s])), fmt(100.0 - runs[p, s].summary()["val_error"][-1]
             if runs[p, s].history else None), f"{training_speed(runs[p, s]):.0f}", f"{runs[p, s].wall_seconds:.0f}"]
            for p in PRECISIONS for s in cfg["seeds"]]  # fmt: skip
    rows += [[p, "mean (std)", f"{fmt(mean_std(accuracies[p])[0])} ({fmt(mean_std(accuracies[p])[1])})", "",
              f"{statistics.median(speeds[p]):.0f} (median)", ""] for p in PRECISIONS]  # fmt: skip
    result = {
        "title": "Mixed bfloat16 precision: float32's accuracy, faster",
        "claim": "Training with bfloat16 computation and float32 master weights, without loss scaling, reaches the "
        "accuracy of float32 training with the same hyper-parameters (Kalamkar et al.: 'state-of-the-art results "
        "... without any hyper-parameter changes'); on hardware with bfloat16 arithmetic it is faster.",
        "source": "Kalamkar et al. 2019, A Study of BFLOAT16 for Deep Learning Training, Sections 1 and 4 "
        "(ResNet-50 on ImageNet among others, float32 master weights, no loss scaling); Micikevicius et al. 2018, "
        "Mixed Precision Training, Section 3 (float32 master copy of the weights).",
        "setup": f"{ARCH} (He et al. 2015, Section 4.2, option A; 0.27M parameters) with the demo's `{RECIPE}` "
        f"recipe (SGD Nesterov, lr 0.1 at batch 128, warm-up then linear decay, weight decay 5e-4, pad-and-crop "
        f"and flips) over {cfg['epochs']} epochs ({any_run['total_steps']} steps) on Fashion-MNIST at "
        f"{cfg['image_size']}x{cfg['image_size']}, {subset} ({splits.get('train', '?')} training, "
        f"{splits.get('validation', '?')} validation images; the seed picks the split, the initialisation, the "
        f"shuffling and the augmentation), tested once on all {splits.get('test', '?')} test images. "
        "`--precision float32` against `--precision mixed_bfloat16` (Keras' policy: bfloat16 compute, float32 "
        "variables, float32 loss and softmax), same seeds, run alternately.",
        "seeds": list(cfg["seeds"]),
        "table": {
            "header": [
                "precision", "seed", "test accuracy (%)", "final validation accuracy (%)",
                "training img/s (epochs 2+)", "wall (s)",
            ],
            "rows": rows,
        },
        "stats": {k: round(v, 4) for k, v in stats.items()},
        "plot": plot_name,
        "plot_caption": "Left: validation accuracy after each epoch, one line per run. Right: test accuracy of each "
        "seed, mean and standard deviation.",
        "verdict": label,
        "reason": reason + f" Training speed, median over seeds: mixed bfloat16 {speedup:.2f}x float32.",
        "notes": [
            f"Rule fixed before the runs: reproduced if the mean test accuracies differ by at most {Z:g} standard "
            f"errors of the difference (from the seeds' spread) or at most {MARGIN:g} points; not reproduced "
            "otherwise.",
            "Speed is the trainer's own images/s over each epoch after the first (the first includes tracing), on a "
            "machine shared with other jobs; `benchmarks/training_throughput.py` measures the speed side by side.",
        ],
    }
    write_result(opts, result, list(runs.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
