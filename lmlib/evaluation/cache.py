"""The continuous cache pointer (Grave et al. 2016, "Improving Neural Language Models with a Continuous Cache").

Each evaluation row keeps the last W feature vectors h_i (what the output layer reads) and
the word that followed each. The next word's probability is

    p(w) = (1 - lambda) p_model(w) + lambda p_cache(w),
    p_cache(w) = sum over window positions i with x_{i+1} = w of softmax_i(theta h_t . h_i)   (eq. 2-3)

Only the target's probability is needed to score a split, so p_cache(target) is the sum of
the attention weights over the positions whose next word is the target: a (B, T, W)
comparison, never a one-hot history (B, W, V) as awd-lstm-lm's pointer.py built, and never
a V-sized tensor beyond what the model's own per-target loss needs (an adaptive softmax
scores only the target's cluster). The history is carried across BPTT windows like the
hidden state, one per row. A position whose row has no history yet (the first token of a
split) keeps the model's probability: an empty cache has no distribution to mix in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmlib.checks import check_int, check_number


@dataclass(frozen=True)
class CacheSettings:
    """Window W (positions kept per row), theta (attention sharpness), lam (the mixture weight lambda)."""

    window: int
    theta: float
    lam: float

    def __post_init__(self):
        check_int("cache window", self.window, 1)
        check_number("cache theta", self.theta, low=0.0)
        check_number("cache lambda", self.lam, low=0.0, high=1.0)

    def to_dict(self) -> dict:
        return {"window": self.window, "theta": self.theta, "lambda": self.lam}


class CachePointer:
    """The per-row history of one pass over a split: call `step` once per window, in order."""

    def __init__(self, window: int, theta: float):
        self.window, self.theta = window, theta
        self.keys: torch.Tensor | None = None  # (B, n, D), n <= window: the last n features of each row
        self.words: torch.Tensor | None = None  # (B, n): the word that followed each

    @torch.no_grad()
    def step(self, features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(p_cache(target) (B, T), whether the row had any history (B, T)) for one window; then remember it.

        `features` (B, T, D) are the queries at each position and, once the position is past,
        keys; `targets` (B, T) the word that followed each position.
        """
        features = features.detach().float()
        batch, length, _ = features.shape
        old = 0 if self.keys is None else self.keys.size(1)
        keys = features if self.keys is None else torch.cat([self.keys, features], dim=1)  # (B, n+T, D)
        words = targets if self.words is None else torch.cat([self.words, targets], dim=1)  # (B, n+T)
        # Position t (key index old + t) sees keys k with old + t - window <= k < old + t.
        query = torch.arange(length, device=features.device).unsqueeze(1) + old  # (T, 1)
        key = torch.arange(old + length, device=features.device).unsqueeze(0)  # (1, n+T)
        visible = (key < query) & (key >= query - self.window)  # (T, n+T)
        scores = self.theta * torch.bmm(features, keys.transpose(1, 2))  # (B, T, n+T)
        scores = scores.masked_fill(~visible, float("-inf"))
        has = visible.any(dim=1).expand(batch, length)  # (B, T)
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows with no key: all -inf -> NaN -> 0
        hits = words.unsqueeze(1) == targets.unsqueeze(2)  # (B, T, n+T): the key's next word is the target
        p_cache = (weights * hits).sum(dim=-1)
        self.keys, self.words = keys[:, -self.window :], words[:, -self.window :]
        return p_cache, has


def mixture_nll(nll: torch.Tensor, p_cache: torch.Tensor, has: torch.Tensor, lam: float) -> torch.Tensor:
    """-log((1 - lam) p_model + lam p_cache) per token (B, T), from the model's nll and p_cache(target).

    In log space (logaddexp), so a tiny p_model does not underflow; with lam 0 it is exactly
    `nll` (log 1 = 0 and logaddexp(a, -inf) = a), which the tests check.
    """
    nll = nll.double()
    lam_t = torch.where(has, torch.as_tensor(lam, dtype=torch.float64), torch.zeros((), dtype=torch.float64))
    model_part = torch.log1p(-lam_t) - nll
    cache_part = torch.log(lam_t) + torch.log(p_cache.double())  # -inf where lam or p_cache is 0
    return -torch.logaddexp(model_part, cache_part)
