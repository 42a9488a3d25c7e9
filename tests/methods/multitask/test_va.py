"""Spec §8.4: the VA bins (training targets on one grid, read-out on another)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fermix.methods.multitask.va import decode_va, expectation, split_va, target_bins


@pytest.mark.parametrize(("value", "index"), [(-1.0, 0), (-0.95, 0), (0.0, 10), (0.94, 19), (1.0, 19)])
def test_digitize_points_of_the_spec(value: float, index: int) -> None:
    assert int(target_bins(torch.tensor([value], dtype=torch.float64))[0]) == index


def test_target_bins_equal_numpy_digitize_minus_one_clipped() -> None:
    values = np.random.default_rng(0).uniform(-1, 1, 5000)
    expected = np.clip(np.digitize(values, np.linspace(-1, 1, 21)) - 1, 0, 19)
    assert np.array_equal(target_bins(torch.from_numpy(values)).numpy(), expected)


def test_one_hot_logit_decodes_to_its_grid_point_and_uniform_to_zero() -> None:
    logits = torch.full((20, 20), -1e4, dtype=torch.float64)
    logits[torch.arange(20), torch.arange(20)] = 0.0
    assert torch.allclose(expectation(logits), torch.tensor([-1 + 2 * i / 19 for i in range(20)], dtype=torch.float64))
    assert abs(float(expectation(torch.zeros(1, 20, dtype=torch.float64))[0])) < 1e-12


def test_decode_of_the_target_bin_is_within_a_tenth() -> None:
    values = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    one_hot = torch.full((len(values), 20), -1e4, dtype=torch.float64)
    one_hot[torch.arange(len(values)), target_bins(values)] = 0.0
    assert float((expectation(one_hot) - values).abs().max()) <= 0.1 + 1e-9


def test_va_slices_and_output_shape() -> None:
    logits = torch.zeros(3, 40)
    logits[:, 19] = 50.0  # valence: last bin -> +1
    logits[:, 20] = 50.0  # arousal: first bin -> -1
    v, a = split_va(logits)
    assert v.shape == a.shape == (3, 20)
    out = decode_va(logits)
    assert out.shape == (3, 2)
    assert torch.allclose(out, torch.tensor([[1.0, -1.0]] * 3), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_labels_exactly_on_a_bin_edge_land_in_the_original_bin(dtype: type) -> None:
    # The original digitizes the (float32) label against numpy's float64 edges linspace(-1, 1, 21).
    # Every edge itself, as the label dtype holds it: float32 edges used to put 0.7f (just below
    # the float64 0.7) one bin higher, and torch's float64 linspace differs from numpy's in one ulp.
    edges = np.linspace(-1, 1, 21)
    labels = edges.astype(dtype)
    expected = np.clip(np.digitize(labels, edges) - 1, 0, 19)
    assert np.array_equal(target_bins(torch.from_numpy(labels)).numpy(), expected)


def test_float32_labels_bin_as_numpy_digitize_of_the_original() -> None:
    labels = np.random.default_rng(1).uniform(-1, 1, 5000).astype(np.float32)
    labels[::50] = np.round(labels[::50], 1)  # many labels on (or next to) an edge, as annotations are
    expected = np.clip(np.digitize(labels, np.linspace(-1, 1, 21)) - 1, 0, 19)
    assert np.array_equal(target_bins(torch.from_numpy(labels)).numpy(), expected)
