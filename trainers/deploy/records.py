"""What is recorded beside a weights file, and where the deployment tools write by default.

A model file may have two records next to it: its own card ``<stem>.json`` (written by
``trainers.export``, ``trainers.prune`` and shipped with the files in ``saved_models/``) and,
for a ``trainers.run`` ``best.keras``/``last.keras``, the run's ``plan.json``. The card is
the more specific and wins. Export, prediction and pruning read the preprocessing policy
and the class names from them (:func:`policy_for`, :func:`recorded_class_names`).

No TensorFlow here (prediction with a ``.tflite`` file reads its card without it).
"""

from __future__ import annotations

import json
import os
from typing import Any

DEFAULT_OUTPUT_ROOT = "exports"  # git-ignored; saved_models/ holds tracked artifacts


def card_path(model_path: str) -> str:
    """The card of a model file or SavedModel directory: ``<stem>.json`` beside it."""
    return os.path.splitext(os.path.abspath(model_path.rstrip("/")))[0] + ".json"


def run_plan_path(weights: str) -> str:
    """The ``plan.json`` that trainers.run writes beside its ``best.keras``/``last.keras``."""
    return os.path.join(os.path.dirname(os.path.abspath(weights)), "plan.json")


def _read(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}


def read_card(model_path: str) -> dict[str, Any]:
    """The model's own card (``{}`` when it has none)."""
    return _read(card_path(model_path))


def _records(weights: str | None) -> list[tuple[str, dict[str, Any]]]:
    """``[(path, data)]`` recorded for a weights file, most specific first: its card, then
    the run's ``plan.json``; ``{}`` for a record that is absent."""
    if not weights:
        return [("", {}), ("", {})]
    return [(path, _read(path)) for path in (card_path(weights), run_plan_path(weights))]


def recorded_policy(weights: str | None) -> tuple[str | None, int | None]:
    """``(augment policy, image_size)`` recorded for a weights file: its card's
    ``preprocessing``, else the run's ``plan.json``."""
    (_, card), (_, plan) = _records(weights)
    prep = card.get("preprocessing") or {}
    if prep.get("policy"):
        return prep["policy"], prep.get("image_size")
    return plan.get("augment"), plan.get("image_size")


def recorded_class_names(weights: str | None) -> tuple[list[str] | None, str | None]:
    """``(class names, where from)`` recorded for a weights file: its card's ``class_names``,
    else the run's ``plan.json``; ``(None, None)`` when neither has them."""
    for path, data in _records(weights):
        if data.get("class_names"):
            return [str(n) for n in data["class_names"]], path
    return None, None


def default_policy(arch: str) -> str:
    """The arch's recipe's augmentation policy (its eval transform), else ``simple``."""
    from trainers import recipes

    try:
        return recipes.recipe_for(arch).augment
    except (KeyError, ValueError):
        return "simple"


def policy_for(weights: str | None, arch: str, explicit: str | None = None) -> str:
    """The augmentation policy whose evaluation preprocessing a model expects: ``explicit``
    (``--preprocessing``), else the one recorded for ``weights``, else ``arch``'s recipe's."""
    return explicit or recorded_policy(weights)[0] or default_policy(arch)


def default_stem(arch: str, weights: str | None) -> str:
    """The stem of default output names: a weights file named after what it is
    (``squeezenet1_1_pruned.keras``) names them; a run's ``best.keras`` or none: ``arch``."""
    stem = os.path.splitext(os.path.basename(weights))[0] if weights else "best"
    return arch if stem == "best" else stem


def default_output(arch: str, weights: str | None) -> str:
    """Where files go without ``--output``: the trainers.run folder holding ``weights`` (it
    has a ``plan.json``), else ``exports/<arch>/``; never the tracked ``saved_models/``."""
    if weights and os.path.isfile(run_plan_path(weights)):
        return os.path.dirname(weights) or "."
    return os.path.join(DEFAULT_OUTPUT_ROOT, arch)
