"""Golden outputs of the original implementations (tests/golden/<method>/, written by
benchmarks/parity/<method>.py from a checkout of the original), loaded the safe way."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import torch

GOLDEN_ROOT = Path(__file__).resolve().parents[1] / "golden"


@cache
def meta(method: str) -> dict[str, Any]:
    """meta.json of a method's golden files: the original's repository, commit, patches, cases."""
    data = json.loads((GOLDEN_ROOT / method / "meta.json").read_text())
    assert data.get("repository") and len(str(data.get("commit", ""))) == 40, data
    return data


def load(method: str, case: str) -> dict[str, Any]:
    """One golden case: a dict of tensors and plain values, loaded with weights_only=True."""
    assert case in meta(method)["cases"], f"{method}/{case} is not listed in meta.json"
    return torch.load(GOLDEN_ROOT / method / f"{case}.pt", weights_only=True)


def assert_close(name: str, actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float = 0.0) -> None:
    """torch.testing.assert_close with the quantity's name in the message."""
    torch.testing.assert_close(
        actual.detach().to(expected.dtype), expected, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}"
    )
