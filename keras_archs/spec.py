"""What a family module declares (:class:`Family`, :class:`Variant`) and what the
registry records for each variant (:class:`ModelSpec`): data only.

A family module ends with its variant table, in the spirit of keras.applications'
``DEFAULT_BLOCKS_ARGS``: one :class:`Family` per architecture (its core builder,
paper, input contract, training recipe, weight-name tables, preprocessing) holding
one :class:`Variant` row per registered model (names, the core arguments that make
it, its reference parameter count and its official weights files).
:mod:`keras_archs.registry` turns every row into a :class:`ModelSpec` and a public
builder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from keras_archs.weight_import.official import OfficialFile
from keras_archs.weight_import.reference import Reference


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of a family's variant table.

    Attributes:
        public_name: the builder's name, e.g. ``"ResNet50"`` (``keras_archs.ResNet50``).
        name: the registry name, e.g. ``"resnet50"`` (torchvision's spelling where it has the net).
        params: reference count of trainable parameters (see :class:`ModelSpec`).
        param_source: where ``params`` comes from.
        options: the core builder's arguments that make this variant (``{"depth": 50}``).
        summary: one sentence for the builder's docstring.
        total_params: optional reference for ``model.count_params()``.
        weights: the variant's official ImageNet files, the one ``weights="imagenet"``
            prefers first.
        macs: multiply-accumulates of one image at the default size, or ``None``.
        paper, default_size, min_size, default_classes, recipe: the family's value
            unless given here.
    """

    public_name: str
    name: str
    params: int
    param_source: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    summary: str = ""
    total_params: int | None = None
    weights: tuple[OfficialFile, ...] = ()
    macs: int | None = None
    paper: str | None = None
    default_size: int | None = None
    min_size: int | None = None
    default_classes: int | None = None
    recipe: str | None = None


@dataclasses.dataclass(frozen=True)
class Family:
    """A family's declaration: its core builder and everything its variants share.

    Attributes:
        name: the family name, e.g. ``"ResNet"`` (the registry's family filter).
        core: the core builder; its keyword-only arguments are the family options.
        paper: short citation of the paper.
        variants: the variant table.
        default_size, min_size, default_classes, channels: the input/output contract.
        recipe: the training recipe's name (a key of ``trainers.recipes.RECIPES``).
        options_doc: the family options, as the builders' docstrings list them.
        references: how files of each layout (``"torchvision"``, ``"keras"``) name and
            configure the family's layers, for weight import.
        preprocessing: reference weights source (``"torchvision"``, ``"keras"``,
            ``"timm"``) -> the :func:`keras_archs.preprocess_input` mode its ImageNet
            weights expect; the first is the default. Empty: no reference weights.
    """

    name: str
    core: Callable[..., Any]
    paper: str
    variants: tuple[Variant, ...]
    default_size: int = 224
    min_size: int = 32
    default_classes: int = 1000
    channels: int = 3
    recipe: str | None = None
    options_doc: str = ""
    references: Mapping[str, Reference] = dataclasses.field(default_factory=dict)
    preprocessing: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one variant.

    Attributes:
        name: registry name (torchvision's spelling where torchvision has the net).
        builder: the public builder, e.g. ``keras_archs.ResNet50``.
        family: family name, e.g. ``"ResNet"``.
        paper: short citation of the paper the variant follows.
        default_size: default input height/width (square).
        min_size: smallest input height/width the builder accepts.
        params: reference count of trainable parameters at the default input
            size with ``classes=default_classes`` (torchvision counts this way:
            ``sum(p.numel() for p in model.parameters())``).
        param_source: where ``params`` comes from (``"torchvision"``,
            ``"paper"``, ...).
        total_params: optional reference for ``model.count_params()``, i.e.
            including non-trainable BN statistics, as keras.applications counts.
        default_classes: number of classes of the reference configuration.
        channels: default number of input channels.
        options: the family options the builder accepts as keyword arguments
            (``dropout``, ``aux_logits``, ...), read from the family's core function.
        preprocessing: the :func:`keras_archs.preprocess_input` mode its family's
            default reference ImageNet weights expect (``"torch"``, ``"caffe"``,
            ``"tf"``, ``"identity"``), or ``None`` if the family has none.
        recipe: the name of its training recipe (a key of ``trainers.recipes.RECIPES``).
        macs: multiply-accumulates of one image at the default size, or ``None``.
        weights: its official ImageNet files, in the order ``weights="imagenet"``
            tries them; each says its ``source``, its ``preprocessing`` mode and the
            build ``options`` it needs.
        references: layout (``"torchvision"``, ``"keras"``) -> how such files name
            and configure this family's layers (weight import).
        preprocessing_modes: reference weights source -> preprocessing mode (the
            first is ``preprocessing``).
    """

    name: str
    builder: Callable[..., Any]
    family: str
    paper: str
    default_size: int
    min_size: int
    params: int
    param_source: str
    total_params: int | None = None
    default_classes: int = 1000
    channels: int = 3
    options: tuple[str, ...] = ()
    preprocessing: str | None = None
    recipe: str | None = None
    macs: int | None = None
    weights: tuple[OfficialFile, ...] = ()
    references: Mapping[str, Reference] = dataclasses.field(default_factory=dict)
    preprocessing_modes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def pretrained(self) -> bool:
        """Whether the variant has an official ImageNet file (``weights="imagenet"``)."""
        return bool(self.weights)

    def build(self, **kwargs: Any) -> Any:
        """Build this variant (same arguments as its public builder)."""
        return self.builder(**kwargs)
