"""The papers' training recipes as data, and the learning-rate schedules they define.

A :class:`Recipe` is what a paper says about optimisation (optimizer, learning rate at
its batch size, schedule, weight decay, label smoothing, auxiliary-loss weights, ...),
each citing its section. :func:`recipe_for` maps every registry name to one (by family);
:func:`resolve` turns a recipe, the dataset size, the global batch and the command-line
overrides into a concrete :class:`Plan` in steps, and :class:`RecipeSchedule` is the
learning rate at each step.

Conventions:

* ``lr`` is the paper's rate at the paper's ``batch_size``; it scales linearly with the
  global batch (Goyal et al. 2017), ``lr * global_batch / batch_size``.
* Step schedules give their boundaries as fractions of the paper's training length
  (iterations are converted to epochs with the paper's dataset size), so a shorter
  ``--epochs`` compresses the schedule; exponential decays keep their period in epochs
  of the dataset actually used.
* ``weight_decay`` is the papers' L2 coefficient: the gradient gets ``+ wd * w`` (coupled,
  as SGD with momentum in every paper here), on convolution and dense kernels only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import keras
import tensorflow as tf

import keras_archs
from trainers.data.preprocess import get_policy

OPTIMIZERS = ("sgd", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "exponential", "linear", "cosine", "plateau")
IMAGENET_TRAIN = 1_281_167
CIFAR_TRAIN = 50_000


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule, relative to the (scaled) base rate.

    Attributes:
        kind: one of :data:`SCHEDULES`.
        boundaries: ``step``: fractions of the total training at which the rate changes.
        multipliers: ``step``: the rate / base rate in each interval (one more than boundaries).
        decay_rate, decay_epochs: ``exponential``: multiply by ``decay_rate`` every
            ``decay_epochs`` epochs (staircase).
        end_multiplier: ``linear`` / ``cosine``: final rate / base rate.
        factor, patience, max_reductions: ``plateau``: multiply by ``factor`` when the
            monitored loss has not improved for ``patience`` epochs, at most ``max_reductions`` times.
    """

    kind: str = "constant"
    boundaries: tuple[float, ...] = ()
    multipliers: tuple[float, ...] = (1.0,)
    decay_rate: float = 1.0
    decay_epochs: float = 1.0
    end_multiplier: float = 0.0
    factor: float = 0.1
    patience: int = 5
    max_reductions: int = 3

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.kind!r}; choose from {SCHEDULES}.")
        if len(self.multipliers) != len(self.boundaries) + 1:
            raise ValueError("A step schedule needs one more multiplier than boundaries.")
        if list(self.boundaries) != sorted(self.boundaries) or any(not 0 < b < 1 for b in self.boundaries):
            raise ValueError(f"Step boundaries must be increasing fractions in (0, 1), got {self.boundaries}.")


def steps_at(*fractions_of: float, total: float) -> tuple[float, ...]:
    """Boundaries given in epochs or iterations, as fractions of the total."""
    return tuple(f / total for f in fractions_of)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One paper's training recipe. ``section`` says where each number comes from."""

    name: str
    paper: str
    section: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: float
    schedule: Schedule
    momentum: float = 0.9
    nesterov: bool = False
    rmsprop_rho: float = 0.9
    epsilon: float = 1e-7
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    clip_norm: float | None = None
    warmup_epochs: float = 0.0
    warmup_kind: str = "linear"  # "linear" from 0, or "constant" at warmup_multiplier * lr
    warmup_multiplier: float = 0.0
    aux_weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    dropout: float | None = None  # None: the model's own default
    ema_decay: float | None = None
    mixup_alpha: float = 0.0
    mixup_min_examples: int = 0
    # BiT-HyperRule: (max dataset size, warm-up steps, total steps), first match wins.
    steps_by_dataset_size: tuple[tuple[float, int, int], ...] = ()
    augment: str = "simple"
    # Builder options the recipe needs (applied where the family has the option).
    model_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"{self.name}: unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}.")
        object.__setattr__(self, "aux_weights", MappingProxyType(dict(self.aux_weights)))
        object.__setattr__(self, "model_options", MappingProxyType(dict(self.model_options)))

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(
            self, **{"aux_weights": dict(self.aux_weights), "model_options": dict(self.model_options), **changes}
        )


def _iters_to_epochs(iterations: float, batch: int, dataset: int) -> float:
    return iterations * batch / dataset


# ----------------------------------------------------------------------------- the recipes

LENET = Recipe(
    name="lenet5",
    paper="LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition",
    section="Section III.C (results): 20 passes, global rate 0.0005 x2, 0.0002 x3, 0.0001 x3, "
    "0.00005 x4, 0.00001 thereafter, per-example updates (stochastic diagonal Levenberg-Marquardt, Appendix C)",
    optimizer="sgd",
    momentum=0.0,
    lr=0.0005,
    batch_size=1,
    epochs=20,
    schedule=Schedule("step", steps_at(2, 5, 8, 12, total=20), (1.0, 0.4, 0.2, 0.1, 0.02)),
    augment="simple",
    model_options={"initializer": "glorot_uniform"},
    notes="SDLM's per-parameter step sizes are replaced by plain SGD: the paper's global rates at "
    "batch 1, scaled linearly to the global batch (0.064 at 128); cross-entropy replaces the RBF/MAP loss. "
    "The paper's +-2.4/F_i initialisation (the model's default) relies on SDLM's step sizes: with plain SGD "
    "it stays at chance (10.8% after 2 epochs on 20k images, against 78.8% with Glorot), so the recipe "
    "builds LeNet-5 with Glorot's uniform initialisation.",
)

ALEXNET = Recipe(
    name="alexnet",
    paper="Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep CNNs",
    section="Section 5: SGD batch 128, momentum 0.9, weight decay 0.0005, lr 0.01 divided by 10 when the "
    "validation error stopped improving (three times), about 90 cycles",
    optimizer="sgd",
    lr=0.01,
    batch_size=128,
    epochs=90,
    weight_decay=5e-4,
    schedule=Schedule("plateau", steps_at(30, 60, 80, total=90), (1.0, 0.1, 0.01, 0.001), factor=0.1, max_reductions=3),
    augment="alexnet",
)

VGG = Recipe(
    name="vgg",
    paper="Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    section="Section 3.1: batch 256, momentum 0.9, weight decay 5e-4, dropout 0.5 on the first two FC "
    "layers, lr 1e-2 divided by 10 when validation accuracy stopped improving (three times), 370K "
    "iterations (74 epochs)",
    optimizer="sgd",
    lr=1e-2,
    batch_size=256,
    epochs=74,
    weight_decay=5e-4,
    dropout=0.5,
    schedule=Schedule("plateau", steps_at(25, 50, 65, total=74), (1.0, 0.1, 0.01, 0.001), max_reductions=3),
    augment="vgg",
)

NIN = Recipe(
    name="nin",
    paper="Lin, Chen & Yan 2013, Network In Network",
    section="Section 4.1: follows Krizhevsky et al. (batch 128, momentum 0.9, weight decay), lr "
    "divided by 10 when training accuracy stops improving; initial lr and wd set by hand (not given)",
    optimizer="sgd",
    lr=0.01,
    batch_size=128,
    epochs=90,
    weight_decay=5e-4,
    schedule=Schedule("plateau", steps_at(30, 60, total=90), (1.0, 0.1, 0.01), max_reductions=2),
    augment="alexnet",
    notes="lr 0.01 and wd 5e-4 are AlexNet's: the NiN paper only says they were set manually.",
)

GOOGLENET = Recipe(
    name="googlenet",
    paper="Szegedy et al. 2014, Going Deeper with Convolutions",
    section="Section 6: asynchronous SGD momentum 0.9, lr decreased by 4% every 8 epochs; Section 5: "
    "auxiliary losses weighted 0.3",
    optimizer="sgd",
    lr=0.01,
    batch_size=32,
    epochs=250,
    weight_decay=2e-4,
    schedule=Schedule("exponential", decay_rate=0.96, decay_epochs=8),
    aux_weights={"aux1": 0.3, "aux2": 0.3},
    augment="inception",
    notes="Initial lr, batch and weight decay are not in the paper; 0.01 / 32 / 2e-4 are the BVLC "
    "GoogLeNet Caffe solver's. The epoch count is not given either (250 keeps lr above 0.003).",
)

INCEPTION_V3 = Recipe(
    name="inception_v3",
    paper="Szegedy et al. 2015, Rethinking the Inception Architecture for Computer Vision",
    section="Section 8: RMSProp decay 0.9 eps 1.0, lr 0.045 decayed by 0.94 every two epochs, gradient "
    "clipping 2.0, batch 32 per replica, 100 epochs; Section 7: label smoothing 0.1; Section 4: aux head",
    optimizer="rmsprop",
    lr=0.045,
    batch_size=32,
    epochs=100,
    rmsprop_rho=0.9,
    momentum=0.0,
    epsilon=1.0,
    label_smoothing=0.1,
    clip_norm=2.0,
    weight_decay=4e-5,
    schedule=Schedule("exponential", decay_rate=0.94, decay_epochs=2),
    aux_weights={"aux": 0.4},
    augment="inception",
    notes="The paper gives no aux-loss weight nor weight decay: 0.4 and 4e-5 are TF-slim's "
    "(the reference implementation). Training was asynchronous over 50 replicas of batch 32.",
)

INCEPTION_V4 = INCEPTION_V3.replace(
    name="inception_v4",
    paper="Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual Connections",
    section="Section 4: RMSProp decay 0.9 eps 1.0, lr 0.045 decayed by 0.94 every two epochs, 20 replicas",
    label_smoothing=0.1,
    clip_norm=None,
    notes="Label smoothing 0.1, aux weight 0.4 and wd 4e-5 are TF-slim's; the paper inherits them "
    "from Inception-v3 without restating them.",
)

RESNET = Recipe(
    name="resnet",
    paper="He et al. 2015, Deep Residual Learning for Image Recognition",
    section="Section 3.4: SGD batch 256, momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 when the "
    "error plateaus, up to 60e4 iterations (120 epochs), no dropout",
    optimizer="sgd",
    lr=0.1,
    batch_size=256,
    epochs=_iters_to_epochs(60e4, 256, IMAGENET_TRAIN),
    weight_decay=1e-4,
    schedule=Schedule("plateau", steps_at(30, 60, 90, total=120), (1.0, 0.1, 0.01, 0.001), max_reductions=3),
    augment="resnet",
    notes="--schedule step uses fixed epochs 30/60/90 of 120 (fb.resnet.torch, torchvision).",
)

RESNET_CIFAR = Recipe(
    name="resnet_cifar",
    paper="He et al. 2015, Deep Residual Learning for Image Recognition",
    section="Section 4.2: batch 128, momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at 32k and "
    "48k iterations, stop at 64k",
    optimizer="sgd",
    lr=0.1,
    batch_size=128,
    epochs=_iters_to_epochs(64_000, 128, CIFAR_TRAIN),
    weight_decay=1e-4,
    schedule=Schedule("step", steps_at(32_000, 48_000, total=64_000), (1.0, 0.1, 0.01)),
    augment="cifar",
)

# Section 4.2: "For the 110-layer network ... we use 0.01 to warm up the training until the
# training error is below 80% (about 400 iterations), and then go back to 0.1."
RESNET110_CIFAR = RESNET_CIFAR.replace(
    name="resnet110_cifar",
    section=RESNET_CIFAR.section + "; 0.01 warm-up until training error < 80% (~400 iterations) for 110 layers",
    warmup_epochs=_iters_to_epochs(400, 128, CIFAR_TRAIN),
    warmup_kind="constant",
    warmup_multiplier=0.1,
    notes="The warm-up is a fixed 400 iterations (at batch 128 on 50k images) rather than an error threshold.",
)

WRN_CIFAR = Recipe(
    name="wide_resnet_cifar",
    paper="Zagoruyko & Komodakis 2016, Wide Residual Networks",
    section="Section 4: SGD Nesterov momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 multiplied by 0.2 "
    "at epochs 60, 120 and 160 of 200, dropout 0.3",
    optimizer="sgd",
    nesterov=True,
    lr=0.1,
    batch_size=128,
    epochs=200,
    weight_decay=5e-4,
    dropout=0.3,
    schedule=Schedule("step", steps_at(60, 120, 160, total=200), (1.0, 0.2, 0.04, 0.008)),
    augment="cifar",
)

WRN_IMAGENET = RESNET.replace(
    name="wide_resnet",
    paper="Zagoruyko & Komodakis 2016, Wide Residual Networks",
    section="Section 4 (ImageNet): the ResNet ImageNet settings (He et al. 2015, Section 3.4), as in "
    "fb.resnet.torch which the paper builds on",
    schedule=Schedule("step", steps_at(30, 60, 90, total=120), (1.0, 0.1, 0.01, 0.001)),
)

RESNEXT = Recipe(
    name="resnext",
    paper="Xie et al. 2016, Aggregated Residual Transformations for Deep Neural Networks",
    section="Section 5.1: SGD batch 256, weight decay 1e-4, momentum 0.9, lr 0.1 divided by 10 three "
    "times using the schedule of fb.resnet.torch [11] (epochs 30, 60, 90)",
    optimizer="sgd",
    lr=0.1,
    batch_size=256,
    epochs=100,
    weight_decay=1e-4,
    schedule=Schedule("step", steps_at(30, 60, 90, total=100), (1.0, 0.1, 0.01, 0.001)),
    augment="resnet",
    notes="Total length 100 epochs is not stated in Section 5.1 (the released models trained ~100).",
)

DENSENET = Recipe(
    name="densenet",
    paper="Huang et al. 2017, Densely Connected Convolutional Networks",
    section="Section 4.2: SGD Nesterov momentum 0.9 (no dampening), weight decay 1e-4; ImageNet: batch "
    "256, 90 epochs, lr 0.1 divided by 10 at epochs 30 and 60",
    optimizer="sgd",
    nesterov=True,
    lr=0.1,
    batch_size=256,
    epochs=90,
    weight_decay=1e-4,
    schedule=Schedule("step", steps_at(30, 60, total=90), (1.0, 0.1, 0.01)),
    augment="resnet",
)

DENSENET_CIFAR = DENSENET.replace(
    name="densenet_cifar",
    section="Section 4.2: SGD Nesterov momentum 0.9, weight decay 1e-4; CIFAR: batch 64, 300 epochs, lr "
    "0.1 divided by 10 at 50% and 75% of the epochs",
    batch_size=64,
    epochs=300,
    schedule=Schedule("step", (0.5, 0.75), (1.0, 0.1, 0.01)),
    augment="cifar",
)

SQUEEZENET = Recipe(
    name="squeezenet",
    paper="Iandola et al. 2016, SqueezeNet: AlexNet-level accuracy with 50x fewer parameters",
    section="Section 3.3 defers to the authors' Caffe solver (github.com/DeepScale/SqueezeNet): SGD "
    "momentum 0.9, base_lr 0.04 decayed linearly to 0 ('poly', power 1) over 170k iterations of batch "
    "512 (32 x iter_size 16), weight decay 2e-4",
    optimizer="sgd",
    lr=0.04,
    batch_size=512,
    epochs=_iters_to_epochs(170_000, 512, IMAGENET_TRAIN),
    weight_decay=2e-4,
    schedule=Schedule("linear", end_multiplier=0.0),
    augment="alexnet",
)

BIT = Recipe(
    name="bit",
    paper="Kolesnikov et al. 2019, Big Transfer (BiT): General Visual Representation Learning",
    section="Section 3.3 (BiT-HyperRule): SGD momentum 0.9, lr 0.003 x batch/512, divided by 10 at 30%, "
    "60% and 90% of the steps, 500 / 10k / 20k steps for datasets < 20k / < 500k / larger examples, "
    "linear warm-up (500 steps), mixup alpha 0.1 for datasets of 20k examples or more, no weight decay",
    optimizer="sgd",
    lr=0.003,
    batch_size=512,
    epochs=0,  # from steps_by_dataset_size
    schedule=Schedule("step", (0.3, 0.6, 0.9), (1.0, 0.1, 0.01, 0.001)),
    steps_by_dataset_size=((20_000, 100, 500), (500_000, 500, 10_000), (math.inf, 500, 20_000)),
    mixup_alpha=0.1,
    mixup_min_examples=20_000,
    augment="inception",
    notes="The HyperRule is for fine-tuning; upstream (from scratch) BiT used lr 0.03 x batch/256, wd "
    "1e-4, 90 epochs divided by 10 at 30/60/80 with 5 warm-up epochs. The code in big_transfer uses "
    "100 warm-up steps (decays at 200/300/400 of 500) for small datasets.",
)

EFFICIENTNET = Recipe(
    name="efficientnet",
    paper="Tan & Le 2019, EfficientNet: Rethinking Model Scaling for CNNs",
    section="Section 5.2: RMSProp decay 0.9 momentum 0.9, weight decay 1e-5, lr 0.256 decayed by 0.97 "
    "every 2.4 epochs, AutoAugment, EMA 0.9999, dropout 0.2 (B0) to 0.5 (B7)",
    optimizer="rmsprop",
    lr=0.256,
    batch_size=4096,
    epochs=350,
    rmsprop_rho=0.9,
    momentum=0.9,
    epsilon=1e-3,
    weight_decay=1e-5,
    label_smoothing=0.1,
    schedule=Schedule("exponential", decay_rate=0.97, decay_epochs=2.4),
    warmup_epochs=5,
    ema_decay=0.9999,
    augment="autoaugment",
    notes="Batch 4096, 5 warm-up epochs, eps 1e-3, label smoothing 0.1 and 350 epochs are the reference "
    "TPU code's (the paper does not state them). Dropout: the model's per-variant default.",
)

MNASNET = EFFICIENTNET.replace(
    name="mnasnet",
    paper="Tan et al. 2018, MnasNet: Platform-Aware Neural Architecture Search for Mobile",
    section="Section 4: RMSProp decay 0.9 momentum 0.9, weight decay 1e-5, lr 0 -> 0.256 over the first 5 "
    "epochs at batch 4K, then decayed by 0.97 every 2.4 epochs, EMA 0.9999",
    label_smoothing=0.0,
    augment="inception",
    notes="350 epochs and eps 1e-3 are the reference TPU code's.",
)

SHUFFLENET_V2 = Recipe(
    name="shufflenet_v2",
    paper="Ma et al. 2018, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
    section="Section 5 follows ShuffleNet v1 (Zhang et al. 2017, Section 4): SGD momentum 0.9, weight decay "
    "4e-5, lr 0.5 decayed linearly to 0, batch 1024, 3e5 iterations",
    optimizer="sgd",
    lr=0.5,
    batch_size=1024,
    epochs=_iters_to_epochs(3e5, 1024, IMAGENET_TRAIN),
    weight_decay=4e-5,
    schedule=Schedule("linear", end_multiplier=0.0),
    augment="resnet",
    notes="ShuffleNet v1 uses 'less aggressive scale augmentation'; the resnet policy is the closest here.",
)

# Not a paper's ImageNet recipe: the settings for a fixed, small budget of epochs, used by the
# demo (ResNet-20 on Fashion-MNIST in a few CPU minutes).
BUDGETED = WRN_CIFAR.replace(
    name="budgeted",
    paper="Li, Yumer & Ramanan 2020, Budgeted Training: Rethinking Deep Neural Network Training Under "
    "Resource Constraints",
    section="Section 4: for a fixed budget, a learning rate decayed linearly to zero at the end of the budget; "
    "Goyal et al. 2017, Section 2.2: gradual (linear) warm-up; SGD Nesterov momentum 0.9, lr 0.1 at batch 128, "
    "weight decay 5e-4 and the pad-and-crop augmentation are the CIFAR settings of Zagoruyko & Komodakis 2016 "
    "(Section 4) and He et al. 2015 (Section 4.2)",
    epochs=4,
    dropout=None,
    warmup_epochs=0.5,
    schedule=Schedule("linear", end_multiplier=0.0),
    notes="The budget (4 epochs by default) is --epochs; the schedule stretches to fit it.",
)

# BiT-HyperRule applied to any pretrained network: a published rule that sets the fine-tuning
# schedule from the dataset size alone, with no per-dataset search.
FINETUNE = BIT.replace(
    name="finetune",
    section="Section 3.3 (BiT-HyperRule), used as the generic fine-tuning rule: SGD momentum 0.9, lr 0.003 x "
    "batch/512 divided by 10 at 30%, 60% and 90% of the steps, 500 / 10k / 20k steps for datasets < 20k / "
    "< 500k / larger, linear warm-up, mixup alpha 0.1 from 20k examples, no weight decay",
    augment="simple",
    notes="For bit_* models the BiT recipe itself applies (with its resolutions); other families keep their "
    "input size and take the simple flip augmentation.",
)

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        LENET, ALEXNET, VGG, NIN, GOOGLENET, INCEPTION_V3, INCEPTION_V4, RESNET, RESNET_CIFAR,
        RESNET110_CIFAR, WRN_CIFAR, WRN_IMAGENET, RESNEXT, DENSENET, DENSENET_CIFAR, SQUEEZENET, BIT,
        EFFICIENTNET, MNASNET, SHUFFLENET_V2, BUDGETED, FINETUNE,
    )
}  # fmt: skip

def recipe_for(arch: str) -> Recipe:
    """The paper's recipe for registry name ``arch`` (unknown names raise with suggestions).

    Each variant names its recipe in its family's table (``keras_archs.get_spec(arch).recipe``).
    """
    spec = keras_archs.get_spec(arch)
    if spec.recipe is None:
        raise KeyError(
            f"No training recipe for {spec.name!r} (family {spec.family!r}); pass --recipe with one of "
            f"{sorted(RECIPES)}."
        )
    return RECIPES[spec.recipe]


def finetune_recipe_name(arch: str) -> str:
    """The fine-tuning recipe of registry name ``arch``: BiT's own HyperRule for BiT models,
    the same rule as the generic ``finetune`` recipe for the others."""
    return "bit" if recipe_for(arch).name == "bit" else "finetune"


def get_recipe(name: str) -> Recipe:
    """A recipe by its own name (``resnet_cifar``) or by a registry name (``resnet20``)."""
    key = name.strip().lower().replace("-", "_")
    if key in RECIPES:
        return RECIPES[key]
    try:
        return recipe_for(key)
    except ValueError:
        raise ValueError(f"Unknown recipe {name!r}; choose a registry name or one of {sorted(RECIPES)}.") from None


# ----------------------------------------------------------------------------- resolution


@dataclasses.dataclass(frozen=True)
class Plan:
    """A recipe made concrete for one run: everything in steps, the rate already scaled."""

    recipe: Recipe
    base_lr: float
    global_batch: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    warmup_steps: int
    schedule: Schedule
    mixup_alpha: float

    def summary(self) -> dict[str, Any]:
        r = self.recipe
        return {
            "recipe": r.name,
            "paper": r.paper,
            "section": r.section,
            "optimizer": r.optimizer,
            "momentum": r.momentum,
            "nesterov": r.nesterov,
            "base_lr": self.base_lr,
            "recipe_lr": r.lr,
            "recipe_batch": r.batch_size,
            "global_batch": self.global_batch,
            "weight_decay": r.weight_decay,
            "label_smoothing": r.label_smoothing,
            "clip_norm": r.clip_norm,
            "schedule": dataclasses.asdict(self.schedule),
            "warmup_steps": self.warmup_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "total_steps": self.total_steps,
            "aux_weights": dict(r.aux_weights),
            "dropout": r.dropout,
            "ema_decay": r.ema_decay,
            "mixup_alpha": self.mixup_alpha,
            "augment": r.augment,
            "model_options": dict(r.model_options),
        }


def scaled_lr(recipe: Recipe, global_batch: int) -> float:
    """Linear scaling: the paper's rate times ``global_batch / recipe.batch_size``."""
    return recipe.lr * global_batch / recipe.batch_size


def apply_overrides(recipe: Recipe, **overrides: Any) -> Recipe:
    """Command-line overrides (``None`` keeps the recipe's value). ``schedule`` is a kind name."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    kind = changes.pop("schedule", None)
    if kind is not None and kind != recipe.schedule.kind:
        if kind not in SCHEDULES:
            raise ValueError(f"Unknown schedule {kind!r}; choose from {SCHEDULES}.")
        old = recipe.schedule
        if kind == "step" and not old.boundaries:
            old = dataclasses.replace(old, boundaries=(1 / 3, 2 / 3), multipliers=(1.0, 0.1, 0.01))
        changes["schedule"] = dataclasses.replace(old, kind=kind)
    if "optimizer" in changes and changes["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {changes['optimizer']!r}; choose from {OPTIMIZERS}.")
    return recipe.replace(**changes)


def resolve(
    recipe: Recipe,
    *,
    num_train: int,
    global_batch: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    lr: float | None = None,
) -> Plan:
    """Make ``recipe`` concrete for a dataset of ``num_train`` examples.

    ``lr`` (an explicit override) is used as given, not rescaled. Warm-up given in
    epochs of the paper's dataset keeps its number of examples seen (so iteration
    counts convert to this dataset's epochs through the paper's dataset size).
    """
    batch = int(global_batch or recipe.batch_size)
    if batch < 1:
        raise ValueError(f"batch size must be positive, got {batch}.")
    full_steps = max(1, num_train // batch)
    spe = min(full_steps, steps_per_epoch) if steps_per_epoch else full_steps
    warmup_steps = round(recipe.warmup_epochs * full_steps)
    if recipe.steps_by_dataset_size:
        # BiT-HyperRule: the schedule length depends on the dataset size, not on epochs.
        rule = next(r for r in recipe.steps_by_dataset_size if num_train < r[0])
        warmup_steps, hyper_total = rule[1], rule[2]
        default_epochs = max(1, math.ceil(hyper_total / spe))
    else:
        default_epochs = max(1, round(recipe.epochs))
    n_epochs = int(epochs or default_epochs)
    if n_epochs < 1:
        raise ValueError(f"epochs must be positive, got {n_epochs}.")
    total = n_epochs * spe
    warmup_steps = min(warmup_steps, total)
    # The augmentation policy's alpha (``--augment mixup``) wins over the recipe's.
    alpha = get_policy(recipe.augment).mixup_alpha or recipe.mixup_alpha
    mixup = alpha if num_train >= recipe.mixup_min_examples else 0.0
    return Plan(
        recipe=recipe,
        base_lr=float(lr) if lr is not None else scaled_lr(recipe, batch),
        global_batch=batch,
        steps_per_epoch=spe,
        epochs=n_epochs,
        total_steps=total,
        warmup_steps=warmup_steps,
        schedule=recipe.schedule,
        mixup_alpha=mixup,
    )


# ----------------------------------------------------------------------------- the schedule


@keras.saving.register_keras_serializable(package="keras_archs_trainers")
class RecipeSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate at a step: warm-up, then the schedule, times a plateau scale.

    ``scale`` is a variable the training loop lowers on plateaus (``kind="plateau"``);
    it multiplies the whole schedule.
    """

    def __init__(
        self,
        base_lr: float,
        total_steps: int,
        steps_per_epoch: int,
        schedule: Schedule | dict,
        warmup_steps: int = 0,
        warmup_kind: str = "linear",
        warmup_multiplier: float = 0.0,
        scale: tf.Variable | None = None,
    ) -> None:
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.steps_per_epoch = int(steps_per_epoch)
        if isinstance(schedule, dict):
            schedule = Schedule(**{k: tuple(v) if isinstance(v, list) else v for k, v in schedule.items()})
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)
        if warmup_kind not in ("linear", "constant"):
            raise ValueError(f"warmup_kind must be 'linear' or 'constant', got {warmup_kind!r}.")
        self.warmup_kind = warmup_kind
        self.warmup_multiplier = float(warmup_multiplier)
        self.scale = scale

    def multiplier(self, step: tf.Tensor) -> tf.Tensor:
        """The schedule's rate / base rate at ``step`` (no warm-up, no plateau scale)."""
        s = self.schedule
        step = tf.cast(step, tf.float32)
        total = float(max(1, self.total_steps))
        if s.kind in ("constant", "plateau"):
            return tf.constant(1.0)
        if s.kind == "step":
            bounds = [round(b * self.total_steps) for b in s.boundaries]
            value = tf.constant(float(s.multipliers[0]))
            for bound, mult in zip(bounds, s.multipliers[1:]):
                value = tf.where(step >= bound, tf.constant(float(mult)), value)
            return value
        if s.kind == "exponential":
            period = max(1.0, s.decay_epochs * self.steps_per_epoch)
            return tf.pow(tf.constant(s.decay_rate, tf.float32), tf.floor(step / period))
        start = float(self.warmup_steps)
        progress = tf.clip_by_value((step - start) / max(1.0, total - start), 0.0, 1.0)
        if s.kind == "linear":
            return 1.0 - (1.0 - s.end_multiplier) * progress
        if s.kind == "cosine":
            return s.end_multiplier + (1.0 - s.end_multiplier) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        raise ValueError(f"Unknown schedule kind {s.kind!r}.")

    def __call__(self, step: tf.Tensor | int) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        lr = self.base_lr * self.multiplier(step)
        if self.warmup_steps > 0:
            if self.warmup_kind == "linear":
                warm = self.base_lr * (step + 1.0) / float(self.warmup_steps)
            else:
                warm = tf.constant(self.base_lr * self.warmup_multiplier)
            lr = tf.where(step < self.warmup_steps, warm, lr)
        if self.scale is not None:
            lr = lr * tf.cast(tf.convert_to_tensor(self.scale), tf.float32)
        return lr

    def get_config(self) -> dict[str, Any]:
        return {
            "base_lr": self.base_lr,
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "schedule": dataclasses.asdict(self.schedule),
            "warmup_steps": self.warmup_steps,
            "warmup_kind": self.warmup_kind,
            "warmup_multiplier": self.warmup_multiplier,
        }


def make_schedule(plan: Plan, scale: tf.Variable | None = None) -> RecipeSchedule:
    """The :class:`RecipeSchedule` of a resolved plan."""
    r = plan.recipe
    return RecipeSchedule(
        plan.base_lr,
        plan.total_steps,
        plan.steps_per_epoch,
        plan.schedule,
        warmup_steps=plan.warmup_steps,
        warmup_kind=r.warmup_kind,
        warmup_multiplier=r.warmup_multiplier,
        scale=scale,
    )


def make_optimizer(plan: Plan, schedule: RecipeSchedule) -> keras.optimizers.Optimizer:
    """The recipe's Keras optimizer (weight decay is added to the loss by the loop, not here)."""
    r = plan.recipe
    # Gradient clipping (clip_norm) is done by the loop, on the all-replica gradient.
    common: dict[str, Any] = {"learning_rate": schedule}
    if r.ema_decay:
        common.update(use_ema=True, ema_momentum=r.ema_decay)
    if r.optimizer == "sgd":
        return keras.optimizers.SGD(momentum=r.momentum, nesterov=r.nesterov, **common)
    if r.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(rho=r.rmsprop_rho, momentum=r.momentum, epsilon=r.epsilon, **common)
    return keras.optimizers.Adam(**common)
