"""The degradation problem: deeper plain nets train worse, deeper ResNets better (He et al. 2016, Fig. 6 left).

    python -m reproductions.degradation            # full: ~25 min on 2 shared cores
    python -m reproductions.degradation --quick    # smoke test into a temporary directory

Trains plain20, plain56, resnet20 and resnet56 (CIFAR-style, option-A shortcuts) with the
trainer's ``resnet_cifar`` recipe (He et al. 2016, Section 4.2) compressed to the epochs used here,
on a seeded subset of Fashion-MNIST at 32x32, and compares their training error at the end of
training. Writes ``degradation.json`` and ``degradation.png`` (training error thin and dashed,
validation error bold; plain nets left, ResNets right) and rebuilds the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from reproductions.common import Options, RunResult, fmt, parse_options, run_trainer, write_result

NAME = "degradation"
ARCHS = ("plain20", "plain56", "resnet20", "resnet56")
SEED = 0
FULL = {"per_class": 500, "epochs": 12, "image_size": 32}
QUICK = {"per_class": 30, "epochs": 1, "image_size": 16}
# Quick mode evaluates the 10,000 test images in big batches (it only tests the pipeline).
QUICK_EXTRA = ("--eval_batch_size", "1000")
# A difference of final training errors smaller than this (in points) is not called either way:
# one seed, and the binomial standard error of the difference of two running errors over ~4,500
# images near 10 % error is about 0.6 points.
MARGIN = 1.0


def trainer_flags(arch: str, cfg: dict[str, int]) -> list[str]:
    """The trainer flags of one network."""
    return [
        "--arch", arch, "--recipe", "resnet_cifar", "--image_size", str(cfg["image_size"]),
        "--epochs", str(cfg["epochs"]), "--train_examples_per_class", str(cfg["per_class"]), "--seed", str(SEED),
    ]  # fmt: skip


def final_train_error(run: RunResult) -> float:
    """Training error (%) of the last epoch, 90 % (chance) for a diverged run."""
    if run.status == "diverged":
        return 90.0
    errors = run.summary()["train_error"]
    return errors[-1] if errors else math.nan


def compare(shallow: float, deep: float, want_deep_higher: bool) -> str:
    """``yes``/``no``/``within noise`` for "the deeper net's training error is higher (or lower)"."""
    if math.isnan(shallow) or math.isnan(deep) or abs(deep - shallow) < MARGIN:
        return "within noise"
    return "yes" if (deep > shallow) == want_deep_higher else "no"


def verdict(runs: dict[str, RunResult]) -> tuple[str, str]:
    """The verdict and its reason from the final training errors."""
    e = {a: final_train_error(r) for a, r in runs.items()}
    plain = compare(e["plain20"], e["plain56"], want_deep_higher=True)
    res = compare(e["resnet20"], e["resnet56"], want_deep_higher=False)
    facts = (f"Final training error: plain20 {fmt(e['plain20'])} %, plain56 {fmt(e['plain56'])} %; "
             f"resnet20 {fmt(e['resnet20'])} %, resnet56 {fmt(e['resnet56'])} %.")  # fmt: skip
    parts = {
        "plain": {"yes": "the deeper plain net has the higher training error",
                  "no": "the deeper plain net does NOT have the higher training error",
                  "within noise": f"the plain nets differ by less than {MARGIN:g} point"}[plain],
        "res": {"yes": "the deeper ResNet has the lower training error",
                "no": "the deeper ResNet does NOT have the lower training error",
                "within noise": f"the ResNets differ by less than {MARGIN:g} point"}[res],
    }  # fmt: skip
    reason = f"{facts} In this run {parts['plain']}, and {parts['res']}."
    if plain == "yes" and res == "yes":
        return "reproduced", reason
    if "no" in (plain, res):
        return "not reproduced", reason
    return "inconclusive", reason


def plot(runs: dict[str, RunResult], path: Path, title: str) -> None:
    """Fig. 6 (left) as the paper draws it: plain nets | ResNets; training error dashed, validation bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colours = {"20": "tab:orange", "56": "tab:red"}
    for ax, family, label in zip(axes, ("plain", "resnet"), ("plain", "ResNet")):
        for depth in ("20", "56"):
            s = runs[f"{family}{depth}"].summary()
            epochs = range(1, len(s["train_error"]) + 1)
            style = {"marker": "o", "color": colours[depth]}
            ax.plot(epochs, s["train_error"], "--", ms=3, lw=1.0, label=f"{label}-{depth} train", **style)
            ax.plot(epochs, s["val_error"], "-", ms=4, lw=2.5, label=f"{label}-{depth} validation", **style)
        ax.set_title(f"{label}-20 vs {label}-56")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    top = max(max(r.summary()["train_error"] + r.summary()["val_error"] + [0.0]) for r in runs.values())
    axes[0].set_ylim(0, min(100.0, top * 1.05 + 1))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the four networks (or reuse finished runs), write the JSON and plot, rebuild the report."""
    opts: Options = parse_options(NAME, __doc__.splitlines()[0], argv)
    cfg = QUICK if opts.quick else FULL
    extra = list(QUICK_EXTRA) if opts.quick else []
    runs = {arch: run_trainer(arch, trainer_flags(arch, cfg) + extra, opts) for arch in ARCHS}
    opts.artifacts.mkdir(parents=True, exist_ok=True)
    plot_name = f"{NAME}.png"
    size = f"{cfg['image_size']}x{cfg['image_size']}"
    title = (f"Fashion-MNIST {size}, {cfg['per_class']} images/class (seed {SEED}), resnet_cifar recipe over "
             f"{cfg['epochs']} epochs: dashed = training error, bold = validation error")  # fmt: skip
    plot(runs, opts.artifacts / plot_name, title)
    label, reason = verdict(runs)
    size_note = " (the paper's CIFAR size)" if cfg["image_size"] == 32 else ""
    any_run = next(iter(runs.values()))
    splits = (any_run.plan or {}).get("splits", {})
    rows = []
    for arch, run in runs.items():
        s = run.summary()
        rows.append([arch, run.status, fmt(final_train_error(run)), fmt(s["val_error"][-1] if s["val_error"] else None),
                     fmt(run.test_error), str(s["total_steps"]), f"{run.wall_seconds:.0f}"])  # fmt: skip
    result = {
        "title": "Degradation: plain vs residual nets at 20 and 56 layers",
        "claim": "With the same recipe, the 56-layer plain net has a HIGHER training error than the 20-layer one "
        "throughout training (the degradation problem: an optimisation difficulty, not overfitting), while the "
        "56-layer ResNet has a LOWER training error than ResNet-20.",
        "source": "He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition, Section 4.2 and Fig. 6 "
        "(left: plain-20/32/44/56; middle: ResNet-20/32/44/56/110) on CIFAR-10.",
        "setup": f"CIFAR-style networks with option-A (zero-padding, parameter-free) shortcuts; the plain nets are the "
        f"same stacks without shortcuts. Fashion-MNIST resized to {cfg['image_size']}x{cfg['image_size']}"
        f"{size_note}, a seeded subset of {cfg['per_class']} images per class (seed {SEED}: "
        f"{splits.get('train', '?')} for training, {splits.get('validation', '?')} held out for validation, "
        f"{splits.get('test', '?')} test images). The trainer's `resnet_cifar` recipe (SGD momentum 0.9, lr 0.1 at "
        f"batch 128, weight decay 1e-4, lr divided by 10 at 50 % and 75 % of training, as 32k/48k of 64k "
        f"iterations; pad-and-crop and flips) compressed to {cfg['epochs']} epochs "
        f"({any_run.summary()['total_steps']} steps instead of 64,000), bfloat16 mixed precision. Training error "
        "is the trainer's running error over each epoch in training mode (augmented mini-batches, batch "
        "statistics, weights changing during the epoch), which is how the paper's thin curves are measured; "
        "validation error is measured after each epoch in inference mode.",
        "seeds": [SEED],
        "table": {
            "header": ["network", "status", "final training error (%)", "final validation error (%)",
                       "test error (%)", "steps", "wall (s)"],
            "rows": rows,
        },
        "plot": plot_name,
        "plot_caption": "Thin dashed: training error; bold: validation error (the paper's Fig. 6 draws test error "
        "bold). Left: plain nets; right: ResNets.",
        "verdict": label,
        "reason": reason
        + f" Differences under {MARGIN:g} point are called within noise (one seed per network). The test error "
        "column is measured once, on the epoch chosen on validation.",
        "notes": [
            f"Scale: {any_run.summary()['total_steps']} SGD steps per network against the paper's 64,000, and "
            f"{cfg['per_class']} images per class; the training error here is far from converged, so the "
            "comparison is of how fast each network optimises under one shared recipe, the property the "
            "degradation argument is about.",
        ],
    }
    write_result(opts, result, list(runs.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
