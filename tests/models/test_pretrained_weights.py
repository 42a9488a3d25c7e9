"""`backbone.pretrained` names torchvision's ImageNet weights explicitly (no download happens here).

torchvision's `DEFAULT` is its newest recipe (IMAGENET1K_V2 for ResNet-50 since 0.13); the IERN,
AU-align and multitask originals used V1. A config therefore names the weights, `torchvision` /
`DEFAULT` are refused in one sentence, and each paper recipe asks for what its original used.
"""

from __future__ import annotations

from typing import Any

import pytest
import torchvision
from torchvision.models import ResNet18_Weights, ResNet50_Weights

from fermix.engine.build import plain
from fermix.errors import FermixError
from fermix.models.backbones import build_backbone
from tests.engine.runner import compose_job

PAPER_RECIPES = ("iern_mixbasic", "au_align_rafdb", "au_align_affectnet", "multitask_affwild2")


@pytest.fixture
def requested(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The `weights=` each torchvision ResNet builder receives; the net is built without weights."""
    seen: list[Any] = []
    for arch in ("resnet18", "resnet34", "resnet50"):
        build = getattr(torchvision.models, arch)

        def fake(*, weights: Any = None, build: Any = build, **kwargs: Any) -> Any:
            seen.append(weights)
            return build(weights=None, **kwargs)

        monkeypatch.setattr(torchvision.models, arch, fake)
    return seen


@pytest.mark.parametrize(
    ("arch", "value", "expected"),
    [
        ("resnet50", "IMAGENET1K_V1", ResNet50_Weights.IMAGENET1K_V1),
        ("resnet50", "IMAGENET1K_V2", ResNet50_Weights.IMAGENET1K_V2),
        ("resnet50", "imagenet1k_v1", ResNet50_Weights.IMAGENET1K_V1),
        ("resnet18", "IMAGENET1K_V1", ResNet18_Weights.IMAGENET1K_V1),
        ("resnet50", None, None),
    ],
)
def test_a_named_weights_value_reaches_torchvision_as_that_enum_member(requested, arch, value, expected):
    build_backbone({"name": arch, "pretrained": value})
    assert requested == [expected]


@pytest.mark.parametrize("value", ["torchvision", "DEFAULT", "default"])
def test_torchvision_and_default_are_refused_naming_the_explicit_choices(requested, value):
    with pytest.raises(FermixError) as err:
        build_backbone({"name": "resnet50", "pretrained": value})
    message = str(err.value)
    assert "\n" not in message and ". " not in message  # one sentence (the CLI prints it as `fermix: error: ...`)
    assert f"backbone.pretrained={value} is ambiguous" in message and "IMAGENET1K_V1 or IMAGENET1K_V2" in message
    assert requested == []  # refused before torchvision is asked for anything


def test_weights_the_architecture_does_not_have_are_refused_with_its_list(requested):
    with pytest.raises(FermixError, match=r"no IMAGENET1K_V2 weights for resnet18; its weights are IMAGENET1K_V1"):
        build_backbone({"name": "resnet18", "pretrained": "IMAGENET1K_V2"})
    with pytest.raises(FermixError, match="no IMAGENET1K_V3 weights for resnet50"):
        build_backbone({"name": "resnet50", "pretrained": "IMAGENET1K_V3"})


@pytest.mark.parametrize("name", ["resnet50_ibn", "resnet50_ferplus"])
def test_backbones_without_torchvision_weights_refuse_a_weights_name(name):
    with pytest.raises(FermixError, match="torchvision"):
        build_backbone({"name": name, "pretrained": "IMAGENET1K_V1"})


def test_an_offline_cache_miss_names_the_weights_file(monkeypatch):
    def offline(*, weights: Any = None, **kwargs: Any) -> Any:
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "resnet50", offline)
    with pytest.raises(FermixError, match=r"resnet50 IMAGENET1K_V1 weights .*resnet50-0676ba61\.pth"):
        build_backbone({"name": "resnet50", "pretrained": "IMAGENET1K_V1"})


@pytest.mark.parametrize("experiment", PAPER_RECIPES)
def test_paper_recipes_ask_for_the_imagenet_weights_their_originals_used(requested, tmp_path, experiment):
    backbone = plain(compose_job("train", [f"experiment={experiment}"], tmp_path))["backbone"]
    assert backbone["name"] == "resnet50"
    build_backbone(backbone)
    # IERN (torchvision 0.5 pretrained=True), AU-align (pretrainedmodels' resnet50) and multitask's
    # ImageNet fallback (pretrained=True) all predate V2.
    assert requested == [ResNet50_Weights.IMAGENET1K_V1]
