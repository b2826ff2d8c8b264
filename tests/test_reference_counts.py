"""The registry's reference counts are not ours to choose: where the reference is
torchvision, build torchvision's model and count it the same way."""

from __future__ import annotations

import pytest
import torch  # test dependency (requirements-dev.txt)
import torchvision

import keras_archs


def _torchvision_specs():
    out = []
    for spec in keras_archs.list_models():
        source = spec.param_source.split()
        if source[0] == "torchvision" and len(source) == 2:
            out.append(pytest.param(spec.name, source[1], id=spec.name))
    return out


@pytest.mark.parametrize("name,tv_name", _torchvision_specs())
def test_registry_count_equals_torchvision(name, tv_name):
    with torch.device("meta"):  # shapes only: no memory, no init time
        tv = torchvision.models.get_model(tv_name, weights=None)
    assert sum(p.numel() for p in tv.parameters()) == keras_archs.get_spec(name).params


def test_plain_counts_equal_torchvision_without_projections():
    for depth in (18, 34):
        with torch.device("meta"):
            tv = torchvision.models.get_model(f"resnet{depth}", weights=None)
        projections = sum(p.numel() for n, p in tv.named_parameters() if "downsample" in n)
        total = sum(p.numel() for p in tv.parameters())
        assert keras_archs.get_spec(f"plain{depth}").params == total - projections


def _timm_specs():
    return [
        pytest.param(s.name, s.param_source.split()[1], id=s.name)
        for s in keras_archs.list_models()
        if s.param_source.split()[0] == "timm" and len(s.param_source.split()) == 2
    ]


@pytest.mark.parametrize("name,timm_name", _timm_specs())
def test_registry_count_equals_timm(name, timm_name):
    import timm

    with torch.device("meta"):
        reference = timm.create_model(timm_name, pretrained=False, num_classes=keras_archs.get_spec(name).default_classes)
    assert sum(p.numel() for p in reference.parameters()) == keras_archs.get_spec(name).params

