"""How a reference implementation names and configures a family: the type of the name tables.

A family module declares, per reference (``"torchvision"`` or ``"keras"``), how our
layer names translate to the reference's module names: a short table of
``(our-name regex, reference template)`` rules, where ``{n}`` in the template is
regex group ``n`` and ``{n-1}`` / ``{n+1}`` shift a numeric group (torchvision
counts blocks from 0, our names from 1). A family whose reference is an
``nn.Sequential`` with running indices (VGG) walks the model instead. A
reference also states its BatchNormalization epsilon (state dicts do not store
it) and may check other options that change outputs without changing shapes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

NameMap = Callable[[Any], dict[str, str]]
Check = Callable[[Any], "str | None"]
# {layer name: [(variable name, array), ...]} of a Keras file, as keras_reader returns it.
KerasLayers = dict[str, list[tuple[str, np.ndarray]]]

_SHIFT = re.compile(r"\{(\d+)([+-]\d+)?\}")


def rules(*table: tuple[str, str]) -> NameMap:
    """A name map from ``(regex, template)`` rules; the first full match wins.

    Example:
        >>> names = rules((r"conv(\\d)_block(\\d+)_1_conv", "layer{1-1}.{2-1}.conv1"))
    """
    compiled = [(re.compile(pattern), template) for pattern, template in table]

    def expand(match: re.Match, template: str) -> str:
        def one(m: re.Match) -> str:
            value = match.group(int(m.group(1)))
            return str(int(value) + int(m.group(2))) if m.group(2) else value

        return _SHIFT.sub(one, template)

    def names(model) -> dict[str, str]:
        out = {}
        for layer in model.layers:
            if not layer.weights:
                continue
            for pattern, template in compiled:
                match = pattern.fullmatch(layer.name)
                if match:
                    out[layer.name] = expand(match, template)
                    break
        return out

    return names


def identity(model) -> dict[str, str]:
    """Every weighted layer keeps its name (keras.applications' files use ours)."""
    return {layer.name: layer.name for layer in model.layers if layer.weights}


@dataclasses.dataclass(frozen=True)
class Reference:
    """How one reference implementation names and configures a family.

    Attributes:
        names: our layer name -> reference module (torch) or layer (Keras) name.
        bn_epsilon: the reference's BatchNormalization epsilon, or ``None``; a mapping
            gives it per registry name (``"*"``: the others).
        head: reference names of the classifier, ignored when our model has no top.
        check: returns why the model's options differ from the reference, or ``None``.
        flatten: ``"chw"`` when the reference flattens channels first (torch).
        aux: reference names of auxiliary heads; their tensors are ignored when our
            model is built without them (official files carry them).
        rename_keys: torch key -> current key (old checkpoint spellings), or ``None``.
        by_order: Keras files whose layer names are auto-generated (``conv2d_7``):
            match our weighted layers to the file's in order, when the names differ.
        fix_keras: adjusts a Keras file's values before matching, or ``None``.
    """

    names: NameMap = identity
    bn_epsilon: float | Mapping[str, float] | None = None
    head: Sequence[str] = ()
    check: Check | None = None
    flatten: str = "hwc"
    aux: Sequence[str] = ()
    rename_keys: Callable[[str], str] | None = None
    by_order: bool = False
    fix_keras: Callable[[KerasLayers], KerasLayers] | None = None

    def epsilon(self, arch: str | None) -> float | None:
        """The BatchNormalization epsilon for the variant ``arch`` (``"*"``: the others)."""
        if isinstance(self.bn_epsilon, Mapping):
            return self.bn_epsilon.get(arch, self.bn_epsilon.get("*"))
        return self.bn_epsilon
