"""One registry that names every variant of every family.

Each family module makes its public builders with :func:`public_builder`, which
registers them; the
registry records what a user needs to choose a model without building it
(family, paper, input sizes) and the reference parameter count the tests hold
the builder to.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import itertools
import textwrap
from collections.abc import Callable
from typing import Any

import keras

from keras_archs import imagenet


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
    """

    name: str
    builder: Callable[..., keras.Model]
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

    def build(self, **kwargs: Any) -> keras.Model:
        """Build this variant (same arguments as its public builder)."""
        return self.builder(**kwargs)


_REGISTRY: dict[str, ModelSpec] = {}


def add(spec: ModelSpec) -> None:
    """Add a spec; a name may be registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"Model name {spec.name!r} is already registered.")
    if spec.min_size > spec.default_size:
        raise ValueError(
            f"{spec.name}: min_size {spec.min_size} exceeds default_size {spec.default_size}."
        )
    _REGISTRY[spec.name] = spec


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` for ``name``; unknown names suggest the closest."""
    key = name.strip().lower().replace("-", "_")
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, _REGISTRY.keys(), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown model {name!r}.{hint} `keras_archs.list_models()` (or "
        f"`python -m keras_archs`) lists all {len(_REGISTRY)} names."
    )


def get_model(name: str, **kwargs: Any) -> keras.Model:
    """Build the registered variant ``name``.

    Example:
        >>> model = keras_archs.get_model("resnet20", weights=None)
    """
    return get_spec(name).builder(**kwargs)


def list_models(family: str | None = None) -> list[ModelSpec]:
    """All registered variants, sorted by family then name.

    ``family`` keeps the families whose name starts with it, ignoring case, so
    ``"ResNet"`` lists the ImageNet and the CIFAR ResNets ("ResNet-CIFAR") and
    ``"resnet-cifar"`` only the latter.

    Example:
        >>> import keras_archs
        >>> sorted({s.family for s in keras_archs.list_models("resnet")})
        ['ResNet', 'ResNet-CIFAR']
    """
    prefix = None if family is None else family.strip().lower()
    specs = [s for s in _REGISTRY.values() if prefix is None or s.family.lower().startswith(prefix)]
    if family is not None and not specs:
        families = sorted({s.family for s in _REGISTRY.values()})
        raise ValueError(f"Unknown family {family!r}; known families: {', '.join(families)}.")
    return sorted(specs, key=lambda s: (s.family, s.name))


TABLE_WIDTH = 120
PAPER_WIDTH = 22


def format_table(specs: list[ModelSpec] | None = None, width: int = TABLE_WIDTH) -> str:
    """A plain-text table of the registry, as printed by ``python -m keras_archs``.

    Lines fit in ``width`` columns: the paper column (at most ``PAPER_WIDTH``) and the
    last column (the count's source, the rest of the width) wrap onto continuation lines.
    """
    specs = list_models() if specs is None else specs
    header = ("name", "family", "paper", "input", "min", "params", "source")
    rows = [
        (
            s.name,
            s.family,
            s.paper.split(",")[0],
            f"{s.default_size}x{s.default_size}x{s.channels}",
            str(s.min_size),
            f"{s.params:,}",
            s.param_source,
        )
        for s in specs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    widths[2] = min(widths[2], PAPER_WIDTH)
    widths[-1] = min(widths[-1], width - sum(w + 2 for w in widths[:-1]))
    lines = []
    for row in [header, *rows]:
        cells = [textwrap.wrap(cell, w, break_on_hyphens=False) or [""] for cell, w in zip(row, widths)]
        for parts in itertools.zip_longest(*cells, fillvalue=""):
            lines.append("  ".join(part.ljust(w) for part, w in zip(parts, widths)).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


_BUILDER_DOC = """Instantiates {public_name}: {paper}.

Registry name ``{registry_name}`` (``keras_archs.get_model("{registry_name}")``).
{summary}

Args:
    include_top: whether to include the paper's classifier on top of the trunk.
    weights: ``None`` (random initialisation), ``"imagenet"`` (official weights,
        where the variant has them), or the path of a weights file.
    input_tensor: optional Keras tensor to use as the model's input.
    input_shape: optional ``(height, width, channels)``, channels last. Default
        ``({default_size}, {default_size}, {channels})`` with a top, open spatial size
        without; height and width must be at least {min_size}.
    pooling: with ``include_top=False``: ``None`` (4D feature map), ``"avg"`` or
        ``"max"`` (global pooling to a 2D tensor).
    classes: number of classes of the classifier (default {default_classes}).
    classifier_activation: activation of the ``predictions`` layer; ``None``
        returns logits.
    name: the model's name (default ``"{registry_name}"``).
    **options: family options{options}.

{inputs}

Returns:
    A functional ``keras.Model``.

Example:
    >>> import keras_archs
    >>> model = keras_archs.{public_name}(weights=None, classes=10)
"""


def check_imagenet_classes(
    weights: Any, include_top: bool, classes: int, default_classes: int, skip_head: bool = False
) -> None:
    """keras.applications' check, before any download: ImageNet weights with a top need
    the reference number of classes, unless ``skip_head`` leaves the classifier out.

    Example:
        >>> check_imagenet_classes("imagenet", True, 10, 1000)
        Traceback (most recent call last):
        ValueError: If using `weights='imagenet'` with `include_top=True`, `classes` should be 1000.  Received classes=10
    """
    is_imagenet = isinstance(weights, str) and weights.split(":", 1)[0] == "imagenet"
    if is_imagenet and include_top and classes != default_classes and not skip_head:
        raise ValueError(
            "If using `weights='imagenet'` with `include_top=True`, "
            f"`classes` should be {default_classes}.  Received classes={classes}"
        )


def public_builder(
    core: Callable[..., keras.Model],
    public_name: str,
    registry_name: str,
    *,
    family: str,
    paper: str,
    default_size: int,
    min_size: int,
    params: int,
    param_source: str,
    total_params: int | None = None,
    default_classes: int = 1000,
    channels: int = 3,
    summary: str = "",
    options_doc: str = "",
    **bound: Any,
) -> Callable[..., keras.Model]:
    """Make and register a thin public builder ``public_name`` around a family's ``core``.

    The returned function has the keras.applications signature; ``bound``
    (e.g. ``depth=50``) fixes the variant, and callers may pass further family
    options as keyword arguments. ``core`` receives the application arguments
    plus ``arch``, ``default_size``, ``min_size`` and ``channels``, and usually
    forwards them to :func:`keras_archs.builder.build_classifier`.
    """

    def builder(
        include_top: bool = True,
        weights: str | None = None,
        input_tensor: keras.KerasTensor | None = None,
        input_shape: tuple[int | None, ...] | None = None,
        pooling: str | None = None,
        classes: int = default_classes,
        classifier_activation: str | Callable | None = "softmax",
        name: str | None = None,
        **options: Any,
    ) -> keras.Model:
        check_imagenet_classes(weights, include_top, classes, default_classes, options.get("skip_head", False))
        return core(
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name or registry_name,
            arch=registry_name,
            default_size=default_size,
            min_size=min_size,
            channels=channels,
            **{**bound, **options},
        )

    application_args = set(inspect.signature(builder).parameters) | {"arch", "default_size", "min_size", "channels"}
    options = tuple(
        p.name
        for p in inspect.signature(core).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in application_args
    )
    builder.__name__ = builder.__qualname__ = public_name
    builder.__module__ = core.__module__
    builder.__doc__ = _BUILDER_DOC.format(
        public_name=public_name,
        registry_name=registry_name,
        paper=paper,
        summary=summary,
        default_size=default_size,
        min_size=min_size,
        channels=channels,
        default_classes=default_classes,
        options=f": {options_doc}" if options_doc else " (none)",
        inputs=textwrap.fill(imagenet.input_doc(family, registry_name), 84),
    )
    add(
        ModelSpec(
            name=registry_name,
            builder=builder,
            family=family,
            paper=paper,
            default_size=default_size,
            min_size=min_size,
            params=params,
            param_source=param_source,
            total_params=total_params,
            default_classes=default_classes,
            channels=channels,
            options=options,
            preprocessing=imagenet.default_mode(family),
        )
    )
    return builder
