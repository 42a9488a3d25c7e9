"""The parity tests run single-threaded, as benchmarks/parity/ wrote the golden files.

A reduction's summation order follows the thread count, so with two threads a float64 per-tensor
sum moves in its last bit, and Adam turns a roundoff-level gradient (a weight the loss does not
reach) into a full ±lr step whose sign follows that bit (MulT's unaligned MOSEI case moved by
1.9e-5 after three steps). One thread reproduces the conditions the originals were run in.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
