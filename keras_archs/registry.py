"""One registry that names every variant of every family.

The registry reads the variant table of every family module in
:mod:`keras_archs.models` (the first time it is asked) and makes, for each row, a
:class:`~keras_archs.spec.ModelSpec` and a public builder with the keras.applications
signature (``keras_archs.ResNet50``). A spec records what a user needs to choose a
model without building it (family, paper, input sizes, pretrained files) and the
reference parameter count the tests hold the builder to.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import itertools
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from keras_archs import imagenet, models
from keras_archs.spec import Family, ModelSpec, Variant
from keras_archs.weight_import import loader
from keras_archs.weight_import.loader import WeightsError

# The keras.applications arguments every builder takes, with their defaults (``classes``:
# the variant's default_classes) and annotations; ``skip_head`` follows, keyword-only.
APPLICATION_ARGS: tuple[tuple[str, Any, str], ...] = (
    ("include_top", True, "bool"),
    ("weights", None, "str | None"),
    ("input_tensor", None, "keras.KerasTensor | None"),
    ("input_shape", None, "tuple[int | None, ...] | None"),
    ("pooling", None, "str | None"),
    ("classes", None, "int"),
    ("classifier_activation", "softmax", "str | Callable[..., Any] | None"),
    ("name", None, "str | None"),
)
# What the registry passes to a family's core besides the application arguments.
CONTRACT_ARGS = ("default_size", "min_size", "channels")


def _family_options(core: Callable) -> dict[str, inspect.Parameter]:
    """The family options of ``core``: its keyword-only arguments that are not the builder's own."""
    reserved = {name for name, _, _ in APPLICATION_ARGS} | {"skip_head", *CONTRACT_ARGS}
    return {
        p.name: p
        for p in inspect.signature(core).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in reserved
    }


def check_imagenet_classes(
    weights: Any, include_top: bool, classes: int, default_classes: int, skip_head: bool = False
) -> None:
    """keras.applications' check, before any download: ImageNet weights with a top need
    the reference number of classes, unless ``skip_head`` leaves the classifier out.

    Example:
        >>> check_imagenet_classes("imagenet", True, 10, 1000)
        Traceback (most recent call last):
        ValueError: If using `weights='imagenet'` with `include_top=True`, `classes` should be 1000. ...
    """
    if loader.is_imagenet(weights) and include_top and classes != default_classes and not skip_head:
        raise ValueError(
            "If using `weights='imagenet'` with `include_top=True`, "
            f"`classes` should be {default_classes}.  Received classes={classes}"
        )


def imagenet_options(spec: ModelSpec, weights: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The build options for ``weights="imagenet"`` (or ``"imagenet:<kind>"``): ``options`` plus
    the options of the first official file they do not contradict.

    Raises :class:`WeightsError` when the variant has no such file, or when the options
    passed contradict every file (the message names each clash).

    Example:
        >>> imagenet_options(get_spec("resnet50"), "imagenet", {})
        {'downsample': '3x3', 'conv_bias': False, 'bn_epsilon': 1e-05}
    """
    clashes = []
    for file in loader.official_files(spec, weights):
        clash = {k: v for k, v in file.options.items() if k in options and options[k] != v}
        if not clash:
            return {**options, **file.options}
        clashes.append(
            f"{_possessive(file.source)} {file.fname} needs "
            + ", ".join(f"{k}={v!r} (passed {options[k]!r})" for k, v in clash.items())
        )
    raise WeightsError(
        f"weights={weights!r} for {spec.name!r}: the options passed contradict every official file: "
        f"{'; '.join(clashes)}. Leave those options out (weights='imagenet' sets them), or pass "
        f"weights='/path/to/file' with a file that fits them."
    )


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def _build(
    spec: ModelSpec, core: Callable, bound: Mapping[str, Any], application: dict, skip_head: bool, options: dict
) -> Any:
    """What every public builder does: check, apply the options an ImageNet file needs,
    build through the family's core, and load the weights."""
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise TypeError(
            f"{spec.builder.__name__}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"its family options are: {', '.join(spec.options) or 'none'}."
        )
    weights = application.pop("weights")
    check_imagenet_classes(weights, application["include_top"], application["classes"], spec.default_classes, skip_head)
    application["name"] = application["name"] or spec.name
    if skip_head and weights is None:
        raise ValueError(
            f"{application['name']}: skip_head=True loads weights without the classifier; pass weights= as well."
        )
    if loader.is_imagenet(weights):
        options = imagenet_options(spec, weights, options)
    contract = {arg: getattr(spec, arg) for arg in CONTRACT_ARGS}
    model = core(**application, **contract, **{**bound, **options})
    if weights is not None:
        loader.load_weights(model, weights, spec, skip_head=skip_head)
    return model


_BUILDER_DOC = """Instantiates {public_name} ({citation}).

{paper}.
Registry name ``{registry_name}`` (``keras_archs.get_model("{registry_name}")``).
{summary}

Args:
    include_top: whether to include the paper's classifier on top of the trunk.
    weights: ``None`` (random initialisation), ``"imagenet"`` (official weights,
        where the variant has them, see below), or the path of a weights file
        (torchvision ``.pth``, keras.applications ``.h5``, ``.keras``, ``.weights.h5``).
    input_tensor: optional Keras tensor to use as the model's input.
    input_shape: optional ``(height, width, channels)``, channels last. Default
        ``({default_size}, {default_size}, {channels})`` with a top, open spatial size without;
        height and width must be at least {min_size}.
    pooling: with ``include_top=False``: ``None`` (4D feature map), ``"avg"`` or
        ``"max"`` (global pooling to a 2D tensor).
    classes: number of classes of the classifier (default {default_classes}).
    classifier_activation: activation of the ``predictions`` layer; ``None``
        returns logits.
    name: the model's name (default ``"{registry_name}"``).
    skip_head: load every layer of ``weights`` but the classifier, which keeps its
        fresh initialisation (fine-tuning to another number of classes).
{options}

{inputs}

{pretrained}

Returns:
    A functional ``keras.Model``.

Example:
    >>> import keras_archs
    >>> model = keras_archs.{public_name}(weights=None, classes={example_classes})
"""
DOC_WIDTH = 88


def _pretrained_doc(spec: ModelSpec, defaults: Mapping[str, Any]) -> str:
    """The docstring paragraph on ``weights="imagenet"``: each file, its preprocessing, the
    options it needs that differ from the builder's ``defaults``."""
    if not spec.weights:
        return "Pretrained weights: none registered (``weights`` takes a local file)."
    parts = []
    for i, file in enumerate(spec.weights):
        spelled = f'``"imagenet"`` (or ``"imagenet:{file.kind}"``)' if i == 0 else f'``"imagenet:{file.kind}"``'
        needs = ", ".join(f"``{k}={v!r}``" for k, v in file.options.items() if defaults.get(k) != v)
        parts.append(
            f"{spelled} loads {_possessive(file.source)} ``{file.fname}`` (inputs: ``{file.preprocessing}`` preprocessing)"
            + (f" into a build with {needs}" if needs else "")
        )
    return (
        "Pretrained weights: " + "; ".join(parts) + ". The build options a file needs are applied for you; "
        "options passed explicitly take precedence: the first file they do not contradict is loaded, "
        "and an error names the clash when they contradict every file."
    )


def _signature(core_options: Mapping[str, inspect.Parameter], spec: ModelSpec, bound: Mapping) -> inspect.Signature:
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    keyword = inspect.Parameter.KEYWORD_ONLY
    defaults = {"classes": spec.default_classes}
    params = [
        inspect.Parameter(name, positional, default=defaults.get(name, default), annotation=annotation)
        for name, default, annotation in APPLICATION_ARGS
    ]
    params.append(inspect.Parameter("skip_head", keyword, default=False, annotation="bool"))
    for name, p in core_options.items():
        params.append(p.replace(default=bound.get(name, p.default)))
    return inspect.Signature(params, return_annotation="keras.Model")


def _make_spec(family: Family, variant: Variant) -> ModelSpec:
    core_options = _family_options(family.core)
    required = {n for n, p in core_options.items() if p.default is inspect.Parameter.empty} - set(variant.options)
    if required:
        raise TypeError(f"{variant.name}: the variant table must set {sorted(required)} of {family.core.__name__}.")
    modes = dict(family.preprocessing)
    spec: ModelSpec | None = None

    def builder(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=variant.default_classes or family.default_classes,
        classifier_activation="softmax",
        name=None,
        *,
        skip_head=False,
        **options,
    ):
        application = dict(
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
        )
        return _build(spec, family.core, variant.options, application, skip_head, options)

    spec = ModelSpec(
        name=variant.name,
        builder=builder,
        family=family.name,
        paper=variant.paper or family.paper,
        default_size=variant.default_size or family.default_size,
        min_size=variant.min_size or family.min_size,
        params=variant.params,
        param_source=variant.param_source,
        total_params=variant.total_params,
        default_classes=variant.default_classes or family.default_classes,
        channels=family.channels,
        options=tuple(core_options),
        preprocessing=next(iter(modes.values()), None),
        recipe=variant.recipe or family.recipe,
        macs=variant.macs,
        weights=tuple(dataclasses.replace(f, preprocessing=modes.get(f.kind)) for f in variant.weights),
        references=family.references,
        preprocessing_modes=modes,
    )
    builder.__name__ = builder.__qualname__ = variant.public_name
    builder.__module__ = "keras_archs"
    builder.__signature__ = signature = _signature(core_options, spec, variant.options)
    defaults = {name: p.default for name, p in signature.parameters.items()}
    options = f"family options: {family.options_doc}" if family.options_doc else "family options: none"
    builder.__doc__ = _BUILDER_DOC.format(
        public_name=variant.public_name,
        citation=spec.paper.split(",")[0],
        paper=spec.paper,
        registry_name=spec.name,
        summary=textwrap.fill(variant.summary, DOC_WIDTH),
        default_size=spec.default_size,
        min_size=spec.min_size,
        channels=spec.channels,
        default_classes=spec.default_classes,
        options=textwrap.fill(f"**options: {options}.", DOC_WIDTH, initial_indent="    ", subsequent_indent=" " * 8),
        inputs=textwrap.fill(imagenet.input_doc(spec.name, modes), DOC_WIDTH),
        pretrained=textwrap.fill(_pretrained_doc(spec, defaults), DOC_WIDTH),
        example_classes=10 if spec.default_classes != 10 else 5,
    )
    return spec


@functools.cache
def _registry() -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    for family in models.families():
        for variant in family.variants:
            spec = _make_spec(family, variant)
            if spec.name in specs:
                raise ValueError(f"Model name {spec.name!r} is already registered.")
            if spec.min_size > spec.default_size:
                raise ValueError(f"{spec.name}: min_size {spec.min_size} exceeds default_size {spec.default_size}.")
            specs[spec.name] = spec
    return specs


def builders() -> dict[str, Callable[..., Any]]:
    """Every public builder by its name (``{"ResNet50": keras_archs.ResNet50, ...}``).

    Example:
        >>> import keras_archs
        >>> builders()["ResNet50"] is keras_archs.ResNet50
        True
    """
    return {spec.builder.__name__: spec.builder for spec in _registry().values()}


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` for ``name``; unknown names suggest the closest.

    Example:
        >>> get_spec("VGG16-BN").name
        'vgg16_bn'
    """
    registry = _registry()
    key = name.strip().lower().replace("-", "_")
    if key in registry:
        return registry[key]
    close = difflib.get_close_matches(key, registry.keys(), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown model {name!r}.{hint} `keras_archs.list_models()` (or "
        f"`python -m keras_archs`) lists all {len(registry)} names."
    )


def get_model(name: str, **kwargs: Any) -> Any:
    """Build the registered variant ``name`` (the arguments of its public builder).

    Example:
        >>> import keras_archs
        >>> model = keras_archs.get_model("resnet20", weights=None)
    """
    return get_spec(name).builder(**kwargs)


def list_models(family: str | None = None, *, pretrained: bool = False) -> list[ModelSpec]:
    """All registered variants, sorted by family then name.

    ``family`` keeps the families whose name starts with it, ignoring case, so
    ``"ResNet"`` lists the ImageNet and the CIFAR ResNets ("ResNet-CIFAR") and
    ``"resnet-cifar"`` only the latter. ``pretrained=True`` keeps the variants with an
    official ImageNet file (``weights="imagenet"``).

    Example:
        >>> import keras_archs
        >>> sorted({s.family for s in keras_archs.list_models("resnet")})
        ['ResNet', 'ResNet-CIFAR']
        >>> [s.name for s in keras_archs.list_models("squeezenet", pretrained=True)]
        ['squeezenet1_0', 'squeezenet1_1']
    """
    registry = _registry()
    prefix = None if family is None else family.strip().lower()
    specs = [s for s in registry.values() if prefix is None or s.family.lower().startswith(prefix)]
    if family is not None and not specs:
        families = sorted({s.family for s in registry.values()})
        raise ValueError(f"Unknown family {family!r}; known families: {', '.join(families)}.")
    if pretrained:
        specs = [s for s in specs if s.pretrained]
    return sorted(specs, key=lambda s: (s.family, s.name))


def mode_for(arch: str, source: str | None = None) -> str:
    """The preprocessing mode for the registry variant ``arch`` and weights ``source``.

    Args:
        arch: registry name, e.g. ``"resnet50"``.
        source: ``"torchvision"``, ``"keras"`` or ``"timm"``; ``None`` is the family's
            default (the weights ``weights="imagenet"`` prefers).

    Example:
        >>> mode_for("resnet50"), mode_for("resnet50", "keras")
        ('torch', 'caffe')
    """
    spec = get_spec(arch)
    if not spec.preprocessing_modes:
        raise ValueError(
            f"{arch} ({spec.family}) has no reference ImageNet weights, so no preprocessing is implied: "
            f"pass mode= one of {sorted(imagenet.MODES)}."
        )
    return imagenet.source_mode(spec.family, spec.preprocessing_modes, source)


def preprocess_input(
    x: Any,
    arch: str | None = None,
    *,
    mode: str | None = None,
    source: str | None = None,
    data_format: str | None = None,
) -> Any:
    """Preprocess RGB images in ``[0, 255]`` as the reference weights of ``arch`` expect.

    Args:
        x: NumPy array or backend tensor, 3D or 4D, RGB values in ``[0, 255]``.
        arch: registry name; its family and ``source`` choose the mode
            (``ModelSpec.preprocessing_modes``).
        mode: ``"caffe"``, ``"tf"``, ``"torch"`` or ``"identity"``; overrides ``arch``.
        source: whose ImageNet weights the model holds: ``"torchvision"``,
            ``"keras"`` or ``"timm"``; default: the family's default (the weights
            ``weights="imagenet"`` prefers).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Returns:
        The preprocessed array or tensor (float).

    Example:
        >>> import keras_archs, numpy as np
        >>> x = keras_archs.preprocess_input(np.zeros((1, 4, 4, 3)), arch="vgg16", source="keras")
        >>> [round(float(v), 3) for v in x[0, 0, 0]]
        [-103.939, -116.779, -123.68]
    """
    if mode is None:
        if arch is None:
            raise ValueError("preprocess_input needs arch= (a registry name) or mode=.")
        mode = mode_for(arch, source)
    return imagenet.apply_mode(x, mode, data_format)


TABLE_WIDTH = 120
PAPER_WIDTH = 22
# Short names of the kinds of official files in the table's "pretrained" column.
_KIND_ABBREVIATIONS = {"torchvision": "tv", "keras": "keras"}


def format_macs(macs: int) -> str:
    """A multiply-accumulate count in 3 significant digits and a unit.

    Example:
        >>> format_macs(4_089_184_256), format_macs(40_551_040), format_macs(416_520)
        ('4.09G', '40.6M', '417K')
    """
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if macs >= scale:
            return f"{macs / scale:.3g}{unit}"
    return str(macs)


def format_table(specs: list[ModelSpec] | None = None, width: int = TABLE_WIDTH) -> str:
    """A plain-text table of the registry, as printed by ``python -m keras_archs``.

    Lines fit in ``width`` columns: the paper column (at most ``PAPER_WIDTH``) and the
    last column (the count's source, the rest of the width) wrap onto continuation lines.
    ``MACs`` (multiply-accumulates of one image at the default size, 3 significant digits
    with a K/M/G suffix) appears when a listed variant has the figure; ``pretrained`` lists the kinds of official files (tv: torchvision,
    keras: keras.applications), the one ``weights="imagenet"`` prefers first.

    Example:
        >>> print(format_table(list_models("lenet")).splitlines()[0])
        name    family  paper              input    min  params  MACs  pretrained  source
    """
    specs = list_models() if specs is None else specs
    with_macs = any(s.macs is not None for s in specs)
    header = ("name", "family", "paper", "input", "min", "params", *(("MACs",) if with_macs else ()), "pretrained")
    header = (*header, "source")
    rows = [
        (
            s.name,
            s.family,
            s.paper.split(",")[0],
            f"{s.default_size}x{s.default_size}x{s.channels}",
            str(s.min_size),
            f"{s.params:,}",
            *((format_macs(s.macs) if s.macs is not None else "",) if with_macs else ()),
            ",".join(_KIND_ABBREVIATIONS.get(f.kind, f.kind) for f in s.weights),
            s.param_source,
        )
        for s in specs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    # The paper and source columns wrap; the paper column gives up width (down to its longest
    # word) so that the source column keeps its longest word whole.
    longest_word = [max(len(word) for r in [header, *rows] for word in r[i].split()) for i in range(len(header))]
    fixed = sum(w + 2 for i, w in enumerate(widths[:-1]) if i != 2) + 2
    widths[2] = max(longest_word[2], min(widths[2], PAPER_WIDTH, width - fixed - longest_word[-1]))
    widths[-1] = max(1, min(widths[-1], width - fixed - widths[2]))  # long words break when too narrow
    lines = []
    for row in [header, *rows]:
        cells = [textwrap.wrap(cell, w, break_on_hyphens=False) or [""] for cell, w in zip(row, widths)]
        for parts in itertools.zip_longest(*cells, fillvalue=""):
            lines.append("  ".join(part.ljust(w) for part, w in zip(parts, widths)).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
