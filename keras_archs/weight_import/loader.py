"""Loading weights into a keras_archs model, given its :class:`~keras_archs.spec.ModelSpec`.

``weights`` may be ``None`` (random initialisation), ``"imagenet"`` (official
files, where a variant has them; ``"imagenet:torchvision"`` or
``"imagenet:keras"`` picks the source) or a path to a file. The format is
detected from the file's content, never from its suffix alone, and nothing in a
file is executed:

* a PyTorch state dict (``torch.save(model.state_dict(), "x.pth")``, zip or
  legacy format), read without torch by a restricted unpickler, mapped to our
  layers with the family's torchvision name table and converted to Keras layout;
* a Keras HDF5 file with layer names (keras.applications' official files,
  Keras 2 ``save_weights("x.h5")``, legacy ``model.save("x.h5")``);
* a ``.keras`` archive (loaded in safe mode, only its weights are taken);
* a Keras 3 ``.weights.h5`` saved from the same keras_archs model (its weights
  are matched by position, as ``model.load_weights`` does).

Every tensor is checked (names, shapes, the reference's options) before any is
assigned; on failure a :class:`WeightsError` names the layer and both shapes and
the model keeps its previous values. The spec says how (its ``references``: the
family's name tables) and from where (its official ``weights`` files);
:mod:`keras_archs.weights` does the same by registry name.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
import zipfile

import keras
import numpy as np

from keras_archs.builder import deep_graphs
from keras_archs.spec import ModelSpec
from keras_archs.weight_import import keras_reader, official, torch_reader
from keras_archs.weight_import.official import OfficialFile
from keras_archs.weight_import.reference import Reference

# Keras variable name -> torch parameter/buffer name.
_TORCH_SUFFIX = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
_MAX_LISTED = 5


class WeightsError(ValueError):
    """A weights file that cannot be loaded into the model, with the reason."""


def load_weights(
    model: keras.Model, weights: str | os.PathLike, spec: ModelSpec, *, skip_head: bool = False
) -> list[str]:
    """Load ``weights`` into ``model`` in place, or raise :class:`WeightsError`.

    Args:
        model: a keras_archs model.
        weights: ``"imagenet"`` (optionally ``"imagenet:torchvision"`` /
            ``"imagenet:keras"``) or the path of a ``.pth``/``.pt``, ``.h5``,
            ``.weights.h5`` or ``.keras`` file.
        spec: the variant's spec, which gives the name tables and the official files.
        skip_head: load every layer but the classifier layers (:func:`classifier_layers`),
            which keep their fresh initialisation: fine-tuning to another set of classes.
            Without it, a file whose classifier has another number of classes is an error
            that says how to ask for this.

    Returns:
        The names of the model's layers that were not loaded (the classifier layers with
        ``skip_head``, else none).

    Nothing half-loaded is left: on any failure the model's previous values are
    restored before the error is raised.

    Example:
        >>> model = keras_archs.ResNet18(classes=10)
        >>> load_weights(model, "resnet18-f37072fd.pth", keras_archs.get_spec("resnet18"), skip_head=True)
        ['predictions']
    """
    if is_imagenet(weights):
        path = _official_file(model, weights, spec)
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise WeightsError(
                f"weights={path!r} is neither None, 'imagenet', nor an existing file. "
                f"Pass the path of a local weights file."
            )
    snapshot = [np.array(v) for v in model.weights]
    plan = ()
    skipped = classifier_layers(model) if skip_head else []
    try:
        plan = plan_assignments(model, path, spec, skip=tuple(skipped))
        if plan is None:  # a Keras 3 .weights.h5: keras matches it structurally
            if skipped:
                raise WeightsError(
                    f"{path!r} is a Keras 3 .weights.h5, whose weights are matched by position: the classifier "
                    f"cannot be left out. Load it into a model with the file's classes and save that model as "
                    f".keras, or pass the .keras archive of the run (best.keras) instead."
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.load_weights(path)
        else:
            for variable, value in plan:
                variable.assign(value)
            _finalize_state(model)
    except Exception as err:
        for variable, value in zip(model.weights, snapshot):
            variable.assign(value)
        _finalize_state(model)
        if isinstance(err, WeightsError):
            raise
        hint = ""
        if plan is None:
            hint = (
                " A Keras 3 .weights.h5 is matched by position, so it must come from the same keras_archs "
                "model built with the same options; for keras.applications weights pass its official .h5 "
                "(named layers) or a .keras archive of it."
            )
        raise WeightsError(f"Could not load {path!r} into {spec.name!r}: {err}{hint}") from err
    return skipped


def classifier_layers(model: keras.Model) -> list[str]:
    """The layers that map features to class scores: for each output of the model, the
    last layer with weights on its path (``predictions``, a NiN/SqueezeNet classifier
    convolution, an auxiliary head's last dense layer). A model without a top has none."""
    if not _has_top(model):
        return []
    names = []
    for tensor in keras.tree.flatten(model.outputs):
        layer = tensor._keras_history.operation
        while not layer.weights:
            inbound = layer.input
            if isinstance(inbound, list | tuple) or not hasattr(inbound, "_keras_history"):
                break
            layer = inbound._keras_history.operation
        if layer.weights and layer.name not in names:
            names.append(layer.name)
    return names


def _head_mismatch_error(path: str, model: keras.Model, mismatched_heads: list[str]) -> WeightsError:
    classes = model.outputs[0].shape[-1]
    return WeightsError(
        f"{path!r} was trained for another number of classes: its classifier does not fit "
        f"{model.name!r} ({'; '.join(mismatched_heads[:_MAX_LISTED])}). To fine-tune, load everything but the "
        f"classifier on purpose: build with skip_head=True (e.g. get_model(..., weights=FILE, classes={classes}, "
        f"skip_head=True)), or build with include_top=False for features only."
    )


def _finalize_state(model: keras.Model) -> None:
    """Refresh layers that cache their variables (keras' ``Normalization`` keeps a copy
    of mean/variance that ``variable.assign`` does not update)."""
    for layer in model.layers:
        if hasattr(layer, "finalize_state") and layer.built:
            layer.finalize_state()


def detect_format(path: str) -> str:
    """``"torch"``, ``"keras_h5"`` (named layers), ``"keras3_h5"`` or ``"keras_archive"``."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        if any(n.endswith("/data.pkl") for n in names):
            return "torch"
        if "config.json" in names and "model.weights.h5" in names:
            return "keras_archive"
        raise WeightsError(f"{path!r} is a zip file but neither a torch.save file nor a .keras archive.")
    if keras_reader.is_hdf5(path):
        layout = keras_reader.h5_layout(path)
        if layout == "unknown":
            raise WeightsError(f"{path!r} is an HDF5 file but not a Keras weights file.")
        return {"legacy": "keras_h5", "keras3": "keras3_h5"}[layout]
    if torch_reader.is_torch_file(path):
        return "torch"
    if path.endswith(".keras"):
        raise WeightsError(f"{path!r} is not a valid .keras archive (corrupt or truncated).")
    raise WeightsError(
        f"Unrecognised weights file {path!r}: expected a PyTorch state dict (.pth/.pt), a Keras HDF5 "
        f"weights file (.h5/.weights.h5) or a .keras archive."
    )


def plan_assignments(
    model: keras.Model, path: str, spec: ModelSpec, *, skip: tuple[str, ...] = ()
) -> list[tuple[keras.Variable, np.ndarray]] | None:
    """Every (variable, value) pair ``path`` gives ``model``, fully checked; ``None`` for a
    Keras 3 ``.weights.h5`` (loaded structurally by Keras). The layers named in ``skip``
    get nothing, and the file's tensors for them are not reported as extra. Raises
    :class:`WeightsError`."""
    fmt = detect_format(path)
    if fmt == "torch":
        try:
            tensors = torch_reader.read_state_dict(path)
        except (ValueError, KeyError, EOFError) as err:
            raise WeightsError(f"Could not read {path!r} as a PyTorch state dict: {err}") from err
        return _plan_torch(model, tensors, spec=spec, path=path, skip=skip)
    if fmt == "keras_h5":
        return _plan_keras(model, keras_reader.read_legacy_h5(path), spec=spec, path=path, source=path, skip=skip)
    if fmt == "keras_archive":
        with deep_graphs():
            source = keras.saving.load_model(path, compile=False, safe_mode=True)
        epsilons = {
            layer.name: layer.epsilon
            for layer in source.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        }
        return _plan_keras(
            model,
            keras_reader.read_keras_model(source),
            spec=spec,
            path=path,
            source=source.name,
            epsilons=epsilons,
            skip=skip,
        )
    return None


def _weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.weights]


def _has_top(model: keras.Model) -> bool:
    return any(layer.name == "predictions" for layer in model.layers)


def _is_head(name: str, head) -> bool:
    return any(name == h or name.startswith(h + ".") for h in head)


def incompatibility(model: keras.Model, ref: Reference, source: str, arch: str | None = None) -> str | None:
    """Why ``model``'s options give other outputs than the reference's (every reason), or ``None``."""
    reasons = [ref.check(model)] if ref.check else []
    epsilon = ref.epsilon(arch)
    if epsilon is not None:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization) and not np.isclose(
                layer.epsilon, epsilon, rtol=1e-6, atol=0
            ):
                reasons.append(
                    f"{source} uses BatchNormalization epsilon {epsilon:g}, layer {layer.name!r} "
                    f"has {layer.epsilon:g} (build the model with bn_epsilon={epsilon:g} if the family "
                    f"has that option)"
                )
                break
    return "; ".join(r for r in reasons if r) or None


def _torch_to_keras(model_layer, var_name: str, tensor: np.ndarray, flatten_chw: tuple | None) -> np.ndarray:
    """One torch tensor in the layout of the Keras variable ``var_name`` of ``model_layer``."""
    if var_name != "kernel":
        return tensor
    if isinstance(model_layer, keras.layers.DepthwiseConv2D):
        # torch (C*m, 1, kh, kw), output channel c*m + j  ->  Keras (kh, kw, C, m)
        m = model_layer.depth_multiplier
        return tensor.reshape(-1, m, *tensor.shape[2:]).transpose(2, 3, 0, 1)
    if isinstance(model_layer, keras.layers.Conv2D):
        return tensor.transpose(2, 3, 1, 0)  # OIHW -> HWIO (grouped: I is per group in both)
    if isinstance(model_layer, keras.layers.Dense):
        if flatten_chw is not None:
            # torch flattens (C, H, W), Keras (H, W, C): reorder the input rows.
            c, h, w = flatten_chw
            return tensor.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
        return tensor.T
    return tensor


def _flatten_input(layer) -> tuple[int, int, int] | None:
    """(C, H, W) when ``layer`` reads a Flatten of a 4D map, else ``None``."""
    try:
        upstream = layer.input._keras_history.operation
    except (AttributeError, ValueError):
        return None
    if isinstance(upstream, keras.layers.Flatten) and len(upstream.input.shape) == 4:
        h, w, c = upstream.input.shape[1:]
        if h * w > 1:
            return (c, h, w)
    return None


def _plan_torch(model, tensors: dict[str, np.ndarray], *, spec: ModelSpec, path, skip=()):
    arch = spec.name
    ref = spec.references.get("torchvision")
    if ref is None:
        raise WeightsError(
            f"{path!r} is a PyTorch state dict, but there is no torchvision name table for the "
            f"{spec.family!r} family; `python -m keras_archs --pretrained` lists the variants with "
            f"reference weights files."
        )
    reason = incompatibility(model, ref, "torchvision", arch)
    if reason:
        raise WeightsError(f"{path!r} (torchvision layout) does not fit this {arch!r} model: {reason}.")
    if ref.rename_keys:
        tensors = {ref.rename_keys(k): v for k, v in tensors.items()}
    names = ref.names(model)
    plan, used, missing, mismatched = [], set(), [], []
    heads = classifier_layers(model)
    mismatched_heads = []
    for layer in _weighted_layers(model):
        prefix = names.get(layer.name)
        if prefix is None:
            missing.append(f"{layer.name} (no torchvision name)")
            continue
        if layer.name in skip:
            used.update(k for k in tensors if _is_head(k, (prefix,)))
            continue
        flatten_chw = _flatten_input(layer) if ref.flatten == "chw" else None
        for variable in layer.weights:
            key = f"{prefix}.{_TORCH_SUFFIX.get(variable.name, variable.name)}"
            if key not in tensors:
                missing.append(f"{layer.name}/{variable.name} ({key!r})")
                continue
            used.add(key)
            source = tensors[key]
            try:
                value = _torch_to_keras(layer, variable.name, source, flatten_chw)
            except ValueError:
                value = source
            if tuple(value.shape) != tuple(variable.shape):
                (mismatched_heads if layer.name in heads else mismatched).append(
                    f"layer {layer.name!r} ({variable.name}): the model's shape is {tuple(variable.shape)}, "
                    f"{key!r} in the file has torch shape {tuple(source.shape)} (Keras layout "
                    f"{tuple(value.shape)})"
                )
                continue
            plan.append((variable, value.astype(variable.dtype)))
    has_top = _has_top(model)
    # auxiliary heads the model was built without (official files carry them)
    absent_aux = [a for a in ref.aux if not any(_is_head(k, (a,)) for k in used)]
    extra = [
        k
        for k in tensors
        if k not in used
        and not k.endswith("num_batches_tracked")
        and (has_top or not _is_head(k, ref.head))
        and not _is_head(k, absent_aux)
    ]
    if mismatched_heads and not (mismatched or missing or extra):
        raise _head_mismatch_error(path, model, mismatched_heads)
    _raise_problems(path, model, missing=missing, extra=extra, mismatched=mismatched + mismatched_heads)
    return plan


def _file_names(model, layers: keras_reader.LayerWeights, ref: Reference, *, path, arch) -> dict[str, str]:
    """Our weighted layer name -> the file's layer name.

    By name (the reference's table), accepting a Keras 2 ``a/b`` spelling of our ``a_b``
    and a unique auto-numbered ``name_N`` (a second keras.applications model built in
    one process names its ``Normalization`` ``normalization_1``). A reference with
    auto-generated names (``by_order``) whose names do not fit is matched by order.
    """
    table = ref.names(model)
    aliases = {n.replace("/", "_"): n for n in layers}
    ours = [layer.name for layer in _weighted_layers(model)]
    out = {}
    for name in ours:
        wanted = table.get(name, name)
        if wanted in layers:
            out[name] = wanted
        elif wanted in aliases:
            out[name] = aliases[wanted]
        else:
            numbered = [n for n in layers if re.fullmatch(re.escape(wanted) + r"_\d+", n)]
            if len(numbered) == 1:
                out[name] = numbered[0]
    if len(out) == len(ours) or not ref.by_order:
        return out
    reason = incompatibility(model, dataclasses.replace(ref, bn_epsilon=None), "keras.applications", arch)
    if reason:
        raise WeightsError(f"{path!r} (keras.applications layout) does not fit this {arch!r} model: {reason}.")
    theirs = [n for n in layers if _has_top(model) or not _is_head(n, ref.head)]
    if len(theirs) != len(ours):
        raise WeightsError(
            f"{path!r} has {len(theirs)} layers with weights, {model.name!r} has {len(ours)}; is it a file "
            f"for a different architecture or other options (e.g. aux_logits)?"
        )
    return dict(zip(ours, theirs))


def _plan_keras(model, layers: keras_reader.LayerWeights, *, spec: ModelSpec, path, source, epsilons=None, skip=()):
    arch = spec.name
    ref = spec.references.get("keras") or Reference()
    if ref.fix_keras:
        layers = ref.fix_keras(layers)
    names = _file_names(model, layers, ref, path=path, arch=arch)
    plan, used, missing, mismatched = [], set(), [], []
    heads = classifier_layers(model)
    mismatched_heads = []
    for layer in _weighted_layers(model):
        name = names.get(layer.name, layer.name)
        if layer.name in skip:
            used.add(name)
            continue
        if name not in layers:
            missing.append(layer.name)
            continue
        used.add(name)
        stored = layers[name]
        if epsilons and name in epsilons and not np.isclose(epsilons[name], layer.epsilon, rtol=1e-6, atol=0):
            mismatched.append(
                f"layer {layer.name!r}: BatchNormalization epsilon {layer.epsilon:g} in the model, "
                f"{epsilons[name]:g} in the file"
            )
            continue
        by_name = dict(stored)
        if len(stored) != len(layer.weights):
            mismatched.append(
                f"layer {layer.name!r} has {len(layer.weights)} weights in the model but {len(stored)} in the file"
            )
            continue
        use_names = len(by_name) == len(stored) and all(v.name in by_name for v in layer.weights)
        for i, variable in enumerate(layer.weights):
            value = by_name[variable.name] if use_names else stored[i][1]
            if tuple(value.shape) != tuple(variable.shape):
                (mismatched_heads if layer.name in heads else mismatched).append(
                    f"layer {layer.name!r} ({variable.name}): the model's shape is {tuple(variable.shape)}, "
                    f"the file's is {tuple(value.shape)}"
                )
                continue
            plan.append((variable, value.astype(variable.dtype)))
    has_top = _has_top(model)
    extra = sorted(n for n in layers if n not in used and (has_top or not _is_head(n, ref.head)))
    if missing:
        raise WeightsError(
            f"{path!r} has no weights for layer(s) {missing[:_MAX_LISTED]} of {model.name!r}; "
            f"is it a file for a different architecture ({source!r})?"
        )
    if extra:
        raise WeightsError(
            f"{path!r} has weights for layer(s) {extra[:_MAX_LISTED]} that {model.name!r} does not have; "
            f"is it a file for a different architecture ({source!r})?"
        )
    if mismatched_heads and not mismatched:
        raise _head_mismatch_error(path, model, mismatched_heads)
    _raise_problems(path, model, missing=[], extra=[], mismatched=mismatched + mismatched_heads)
    return plan


def _raise_problems(path, model, *, missing, extra, mismatched) -> None:
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): " + "; ".join(mismatched[:_MAX_LISTED]))
    if missing:
        problems.append(f"{len(missing)} weight(s) missing from the file: " + ", ".join(missing[:_MAX_LISTED]))
    if extra:
        problems.append(
            f"{len(extra)} tensor(s) in the file that {model.name!r} does not have: "
            + ", ".join(extra[:_MAX_LISTED])
        )
    if problems:
        raise WeightsError(
            f"{path!r} does not fit {model.name!r} (is it a file for a different architecture or other "
            f"options?): " + " | ".join(problems)
        )


def is_imagenet(weights) -> bool:
    """Whether ``weights`` asks for official files: ``"imagenet"`` or ``"imagenet:<kind>"``."""
    return isinstance(weights, str) and weights.split(":", 1)[0] == "imagenet"


def official_files(spec: ModelSpec, weights: str) -> tuple[OfficialFile, ...]:
    """The official files ``weights`` (``"imagenet"`` or ``"imagenet:<kind>"``) may load into
    ``spec``'s variant, preferred first; raises :class:`WeightsError` if there are none."""
    wanted = weights.partition(":")[2] or None
    files = tuple(f for f in spec.weights if wanted in (None, f.kind))
    if not files:
        where = f" from {wanted}" if wanted else ""
        raise WeightsError(
            f"No official ImageNet weights{where} are registered for {spec.name!r}. "
            f"`keras_archs.list_models(pretrained=True)` lists the variants with official files. Pass "
            f"weights='/path/to/file' with a local file instead (.pth/.pt state dict, .h5, .weights.h5 or .keras)."
        )
    return files


def _official_file(model: keras.Model, weights: str, spec: ModelSpec) -> str:
    """Path of the official file for ``spec`` that matches the model's options (downloaded if need be)."""
    arch = spec.name
    reasons = []
    for file in official_files(spec, weights):
        ref = spec.references.get(file.kind)
        reason = incompatibility(model, ref, file.kind, arch) if ref else f"no {file.kind} name table"
        if reason is None:
            url, file_hash = file.for_top(_has_top(model))

            def fail(message: str):
                raise WeightsError(f"weights={weights!r} for {arch!r}: {message}")

            return official.fetch(url, file_hash, fail=fail)
        reasons.append(reason)
    raise WeightsError(
        f"weights={weights!r}: no official file for {arch!r} fits this model's options: " + "; ".join(reasons)
    )
