"""The training recipes: coverage of the registry, the papers' numbers, LR scaling and the
schedule values at given steps."""

from __future__ import annotations

import math

import pytest

import keras_archs
from trainers import recipes
from trainers.recipes import RECIPES, Schedule, get_recipe, make_schedule, recipe_for, resolve


def lr_at(plan, step: int) -> float:
    return float(make_schedule(plan)(step))


def test_every_registry_entry_has_a_recipe():
    missing = []
    for spec in keras_archs.list_models():
        try:
            recipe_for(spec.name)
        except KeyError:
            missing.append(f"{spec.name} ({spec.family})")
    assert not missing, f"no recipe for: {', '.join(missing)}; name it in the family's variant table (recipe=)"


def test_every_recipe_cites_its_paper_and_section():
    for r in RECIPES.values():
        assert r.paper and "Section" in r.section, r.name
        assert r.lr > 0 and r.batch_size >= 1, r.name


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("resnet50", "resnet"),
        ("resnet20", "resnet_cifar"),
        ("resnet110", "resnet110_cifar"),
        ("wrn28_10", "wide_resnet_cifar"),
        ("wide_resnet50_2", "wide_resnet"),
        ("densenet_bc_100_12", "densenet_cifar"),
        ("densenet121", "densenet"),
        ("inception_v3", "inception_v3"),
        ("inception_resnet_v2", "inception_v4"),
        ("efficientnet_b0", "efficientnet"),
        ("bit_r50x1", "bit"),
        ("shufflenet_v2_x1_0", "shufflenet_v2"),
        ("googlenet", "googlenet"),
        ("squeezenet1_0", "squeezenet"),
        ("lenet5", "lenet5"),
    ],
)
def test_variants_name_their_recipes(arch, expected):
    assert keras_archs.get_spec(arch).recipe == expected
    assert recipe_for(arch) is RECIPES[expected]


def test_named_variants_and_lookup():
    assert recipe_for("resnet20").name == "resnet_cifar"
    assert recipe_for("resnet110").warmup_kind == "constant"
    assert recipe_for("resnet50").name == "resnet"
    assert get_recipe("vgg").weight_decay == 5e-4
    assert get_recipe("resnet20") is RECIPES["resnet_cifar"]
    with pytest.raises(ValueError, match="Did you mean"):
        recipe_for("resnet5O")


def test_papers_numbers():
    r = RECIPES
    assert (r["alexnet"].lr, r["alexnet"].batch_size, r["alexnet"].momentum, r["alexnet"].weight_decay) == (0.01, 128, 0.9, 5e-4)
    assert r["vgg"].batch_size == 256 and r["vgg"].dropout == 0.5
    assert dict(r["googlenet"].aux_weights) == {"aux1": 0.3, "aux2": 0.3}
    v3 = r["inception_v3"]
    assert (v3.optimizer, v3.rmsprop_rho, v3.epsilon, v3.lr, v3.label_smoothing, v3.clip_norm) == ("rmsprop", 0.9, 1.0, 0.045, 0.1, 2.0)
    assert (v3.schedule.decay_rate, v3.schedule.decay_epochs) == (0.94, 2)
    wrn = r["wide_resnet_cifar"]
    assert wrn.nesterov and wrn.dropout == 0.3 and wrn.weight_decay == 5e-4
    assert r["densenet_cifar"].batch_size == 64 and r["densenet"].batch_size == 256
    assert r["bit"].weight_decay == 0 and r["bit"].mixup_alpha == 0.1
    eff = r["efficientnet"]
    assert (eff.lr, eff.batch_size, eff.ema_decay, eff.weight_decay) == (0.256, 4096, 0.9999, 1e-5)
    assert (eff.schedule.decay_rate, eff.schedule.decay_epochs) == (0.97, 2.4)
    assert r["shufflenet_v2"].lr == 0.5 and r["shufflenet_v2"].schedule.kind == "linear"


def test_linear_lr_scaling_and_explicit_override():
    resnet = RECIPES["resnet"]
    assert resolve(resnet, num_train=10_000, global_batch=512).base_lr == pytest.approx(0.2)
    assert resolve(resnet, num_train=10_000, global_batch=64).base_lr == pytest.approx(0.025)
    assert resolve(RECIPES["lenet5"], num_train=60_000, global_batch=128).base_lr == pytest.approx(0.064)
    # --lr is taken as given.
    assert resolve(resnet, num_train=10_000, global_batch=64, lr=0.3).base_lr == 0.3
    # BiT-HyperRule: 0.003 * batch / 512.
    assert resolve(RECIPES["bit"], num_train=50_000, global_batch=128).base_lr == pytest.approx(0.003 * 128 / 512)


def test_resnet_cifar_step_schedule_at_paper_length():
    # 64k iterations of 128 on 50k images = 163.84 epochs -> 164; /10 at 32k and 48k (50%, 75%).
    plan = resolve(RECIPES["resnet_cifar"], num_train=50_000, global_batch=128)
    assert (plan.epochs, plan.steps_per_epoch) == (164, 390)
    half, three_q = round(0.5 * plan.total_steps), round(0.75 * plan.total_steps)
    assert abs(half - 32_000) < 100 and abs(three_q - 48_000) < 100
    assert lr_at(plan, 0) == pytest.approx(0.1)
    assert lr_at(plan, half - 1) == pytest.approx(0.1)
    assert lr_at(plan, half) == pytest.approx(0.01)
    assert lr_at(plan, three_q) == pytest.approx(0.001)


def test_step_schedule_compresses_with_epochs():
    plan = resolve(RECIPES["wide_resnet_cifar"], num_train=1_280, global_batch=128, epochs=20)
    # 0.2 at epochs 60/120/160 of 200 -> 6/12/16 of 20 (10 steps per epoch).
    assert lr_at(plan, 59) == pytest.approx(0.1)
    assert lr_at(plan, 60) == pytest.approx(0.02)
    assert lr_at(plan, 120) == pytest.approx(0.004)
    assert lr_at(plan, 160) == pytest.approx(0.0008)


def test_resnet110_warmup():
    plan = resolve(RECIPES["resnet110_cifar"], num_train=50_000, global_batch=128)
    assert plan.warmup_steps == round(400 * 128 / 50_000 * 390)  # ~400 iterations
    assert lr_at(plan, 0) == pytest.approx(0.01)
    assert lr_at(plan, plan.warmup_steps - 1) == pytest.approx(0.01)
    assert lr_at(plan, plan.warmup_steps) == pytest.approx(0.1)


def test_exponential_schedules():
    plan = resolve(RECIPES["inception_v3"], num_train=3_200, global_batch=32)  # 100 steps/epoch
    assert lr_at(plan, 199) == pytest.approx(0.045)
    assert lr_at(plan, 200) == pytest.approx(0.045 * 0.94)
    assert lr_at(plan, 1000) == pytest.approx(0.045 * 0.94**5)
    goog = resolve(RECIPES["googlenet"], num_train=3_200, global_batch=32)
    assert lr_at(goog, 800) == pytest.approx(0.01 * 0.96)
    eff = resolve(RECIPES["efficientnet"], num_train=40_960, global_batch=4096)  # 10 steps/epoch
    assert eff.warmup_steps == 50
    assert lr_at(eff, 0) == pytest.approx(0.256 / 50)
    assert lr_at(eff, 49) == pytest.approx(0.256)
    assert lr_at(eff, 50) == pytest.approx(0.256 * 0.97**2)  # floor(50 / 24) = 2 decays


def test_linear_decay_to_zero():
    plan = resolve(RECIPES["squeezenet"], num_train=5_120, global_batch=512, epochs=10)  # 100 steps
    assert lr_at(plan, 0) == pytest.approx(0.04)
    assert lr_at(plan, 50) == pytest.approx(0.02)
    assert lr_at(plan, 100) == pytest.approx(0.0, abs=1e-9)


def test_lenet_piecewise_schedule():
    plan = resolve(RECIPES["lenet5"], num_train=1_000, global_batch=1, epochs=20)  # 1000 steps/epoch
    values = [lr_at(plan, e * 1000) for e in range(20)]
    expected = [0.0005] * 2 + [0.0002] * 3 + [0.0001] * 3 + [0.00005] * 4 + [0.00001] * 8
    assert values == pytest.approx(expected)


def test_bit_hyperrule():
    big = resolve(RECIPES["bit"], num_train=50_000, global_batch=512)
    assert (big.warmup_steps, big.mixup_alpha) == (500, 0.1)
    assert big.total_steps >= 10_000 and math.ceil(10_000 / big.steps_per_epoch) == big.epochs
    assert lr_at(big, 250) == pytest.approx(0.003 * 251 / 500)
    assert lr_at(big, round(0.3 * big.total_steps)) == pytest.approx(0.0003)
    small = resolve(RECIPES["bit"], num_train=10_000, global_batch=512)
    assert (small.warmup_steps, small.mixup_alpha) == (100, 0.0)


def test_overrides():
    r = recipes.apply_overrides(RECIPES["resnet"], schedule="cosine", weight_decay=0.0, optimizer="adam")
    assert (r.schedule.kind, r.weight_decay, r.optimizer) == ("cosine", 0.0, "adam")
    r = recipes.apply_overrides(RECIPES["efficientnet"], schedule="step", warmup_epochs=0)
    assert r.schedule.boundaries == pytest.approx((1 / 3, 2 / 3))
    with pytest.raises(ValueError, match="Unknown schedule"):
        recipes.apply_overrides(RECIPES["resnet"], schedule="warp")
    with pytest.raises(ValueError):
        Schedule("step", (0.5,), (1.0,))
    plan = resolve(r, num_train=300, global_batch=100, epochs=3)
    assert lr_at(plan, 0) > lr_at(plan, 3) > lr_at(plan, 6)
