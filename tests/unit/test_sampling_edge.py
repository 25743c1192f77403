"""lmlib.generate.sample at the edges: temperatures so small that dividing by them overflows."""

from __future__ import annotations

import math

import pytest
import torch

from lmlib.generate import sample


def log_probs() -> torch.Tensor:
    # index 0 is <unk> (never drawn); index 3 is the likeliest word, index 2 a near tie
    return torch.log_softmax(torch.tensor([5.0, 0.0, 2.999999, 3.0, -40.0, -math.inf]), dim=-1)


@pytest.mark.parametrize("temperature", [1e-30, 1e-38, 1e-39, 1e-45, 1e-46, 1e-300, 5e-324])
@pytest.mark.parametrize(("top_k", "top_p"), [(0, 1.0), (2, 1.0), (0, 0.5), (3, 0.9)])
def test_a_tiny_temperature_draws_the_likeliest_word(temperature, top_k, top_p):
    generator = torch.Generator().manual_seed(0)
    draws = {sample(log_probs(), temperature, top_k, top_p, generator) for _ in range(20)}
    assert draws == {3}


def test_a_normal_temperature_still_samples():
    generator = torch.Generator().manual_seed(0)
    draws = [sample(log_probs(), 1.0, 0, 1.0, generator) for _ in range(400)]
    assert set(draws) == {2, 3} or set(draws) == {1, 2, 3}
    assert 0 not in draws and 5 not in draws
