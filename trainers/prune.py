"""Magnitude-prune a trained model while fine-tuning it, then save it with its card.

    python -m trainers.prune --weights runs/sq/best.keras    # -> runs/sq/squeezenet1_1_pruned.keras

Without ``--output`` the pruned file goes beside ``--weights`` when that is a trainers.run
folder (it has a ``plan.json``), else to ``exports/<arch>/``; an existing output file is an
error (exit code 2, checked before any training) unless ``--overwrite`` is given. The card
``<output stem>.json`` records the preprocessing and the class names for trainers.export.
The method: :mod:`trainers.deploy.pruning`. Exit codes: :mod:`trainers.cli`.

The command-line defaults are the recipe of the shipped SqueezeNet 1.1 (60 % global
sparsity, ramped over the first half of 4 epochs of Adam at 3e-4): 0.06 points below the
float model after int8 (BUILD_NOTES.md, export).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from trainers import cli

os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(prog="python -m trainers.prune", description="Magnitude-prune and fine-tune a model.")
    p.add_argument("--weights", required=True, help=".keras file to prune (a trainers.run best.keras)")
    p.add_argument("--output", help="the pruned .keras file (default: <stem>_pruned.keras in the run folder holding "
                   "--weights, else in exports/<arch>/)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (refused otherwise)")
    p.add_argument("--final_sparsity", type=float, default=0.6)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps_per_epoch", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--prune_fraction", type=float, default=0.5, help="share of the steps over which sparsity ramps up")
    p.add_argument("--scope", choices=("layer", "global"), default="global",
                   help="layer: every kernel reaches the sparsity; global: one magnitude threshold")  # fmt: skip
    p.add_argument("--preprocessing", help="augmentation policy (default: the run's plan.json, else the recipe's)")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--data_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's native start-up log lines")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (:mod:`trainers.cli`)."""
    args = parse_args(argv)
    cli.quiet().import_tensorflow(verbose=args.verbose)
    return cli.run_command(lambda: _prune(args, sys.argv[1:] if argv is None else argv))


def _prune(args: argparse.Namespace, argv: list[str]) -> int:
    import keras

    from trainers import outputs
    from trainers.data import datasets, preprocess
    from trainers.deploy import pruning, records
    from trainers.models import load_keras, model_input_spec

    if not (os.path.isfile(args.weights) and args.weights.endswith(".keras")):
        raise cli.UsageError(f"--weights {args.weights} is not a .keras file; pass a trainers.run best.keras.")
    keras.utils.set_random_seed(args.seed)
    model = load_keras(args.weights)
    stem = records.default_stem(model.name, args.weights)
    output = args.output or os.path.join(records.default_output(model.name, args.weights), f"{stem}_pruned.keras")
    try:  # before any training: minutes of work must not end in a refusal
        outputs.refuse_overwrite([output, os.path.splitext(output)[0] + ".json"], overwrite=args.overwrite)
    except FileExistsError as e:
        raise cli.UsageError(str(e)) from None
    size, channels = model_input_spec(model)
    policy = records.policy_for(args.weights, model.name, args.preprocessing)
    prep = preprocess.preprocessing_for(policy, size, channels)
    try:
        train, test, info = pruning.fine_tuning_data(
            prep, batch_size=args.batch_size, seed=args.seed, dataset=args.dataset, data_dir=args.data_dir
        )
    except (datasets.DatasetUnavailableError, ValueError) as e:
        raise cli.UsageError(f"cannot load dataset {args.dataset!r}: {cli.first_line(e)}") from None
    steps = args.steps_per_epoch or info.num_train // args.batch_size
    start = time.time()
    before = pruning.evaluate(model, test)
    print(f"{model.name}: test accuracy before pruning {before:.4f}", flush=True)
    pruning.prune(
        model, train, final_sparsity=args.final_sparsity, epochs=args.epochs, steps_per_epoch=steps, lr=args.lr,
        prune_fraction=args.prune_fraction, scope=args.scope,
    )  # fmt: skip
    after = pruning.evaluate(model, test)
    report = pruning.sparsity_report(model)
    print(f"test accuracy after pruning to {report['total']:.3f} sparsity: {after:.4f} (was {before:.4f})", flush=True)
    outputs.save_keras(pruning.uncompiled_copy(model), output)
    outputs.write_json(
        os.path.splitext(output)[0] + ".json",
        {
            "arch": model.name, "source_weights": args.weights, "preprocessing": prep.describe(),
            "class_names": records.recorded_class_names(args.weights)[0] or list(info.class_names),
            "final_sparsity": args.final_sparsity, "scope": args.scope, "prune_fraction": args.prune_fraction,
            "epochs": args.epochs, "steps_per_epoch": steps,
            "lr": args.lr, "test_accuracy_before": before, "test_accuracy_after": after,
            "sparsity": report, "wall_seconds": time.time() - start,
            "command": " ".join(["python -m trainers.prune", *argv]),
        },
    )  # fmt: skip
    print(f"wrote {output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
