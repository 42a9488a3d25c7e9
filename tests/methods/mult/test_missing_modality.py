"""The missing-modality protocol of `mult` / `causalmer` (fermix test ... eval.remove=...)."""

import pytest
import torch

from fermix.errors import FermixError
from fermix.methods.mult.missing_modality import remove_modalities, settings
from fermix.metrics.multimodal import REMOVAL_SETTINGS


def test_removing_modalities_zeroes_exactly_those_inputs():
    batch = {"text": torch.ones(2, 3, 4), "audio": torch.ones(2, 5, 6), "vision": torch.ones(2, 3, 2)}
    batch["expr"] = torch.ones(2)
    out = remove_modalities(dict(batch), "tv")
    assert out["text"].abs().sum() == 0 and out["vision"].abs().sum() == 0
    assert torch.equal(out["audio"], batch["audio"]) and torch.equal(out["expr"], batch["expr"])
    with pytest.raises(FermixError, match="t, a and v"):
        remove_modalities(dict(batch), "x")
    with pytest.raises(FermixError, match="`audio`"):
        remove_modalities({"text": torch.ones(1)}, "a")


def test_remove_all_means_the_six_non_empty_proper_subsets_and_a_string_is_one_setting():
    assert settings("all") == list(REMOVAL_SETTINGS) and len(REMOVAL_SETTINGS) == 6
    assert settings("tv") == ["tv"] and settings(["t", "av"]) == ["t", "av"]
