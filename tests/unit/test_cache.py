"""The continuous cache pointer: lambda 0 is static evaluation exactly; a cache holding the answer helps."""

import math

import pytest
import torch

from lmlib.config import RunConfig
from lmlib.errors import LMError
from lmlib.evaluation.cache import CachePointer, CacheSettings, mixture_nll
from lmlib.evaluation.score import run_pass
from lmlib.model.lstm import LMOutput, LSTMLanguageModel
from lmlib.training.evaluate import evaluate_loss

VOCAB = 60


def tiny_model(adaptive: bool = False, seed: int = 0) -> LSTMLanguageModel:
    torch.manual_seed(seed)
    config = RunConfig().replace(emb_dim=16, hid_dim=16, adaptive_softmax=adaptive, cutoffs=(20,) if adaptive else None)
    return LSTMLanguageModel(VOCAB, config.model).eval()


def repeated(rows: int = 2, period: int = 40, repeats: int = 4) -> torch.Tensor:
    """Each row: one random sequence of `period` words, said `repeats` times."""
    generator = torch.Generator().manual_seed(1)
    return torch.stack([torch.randint(VOCAB, (period,), generator=generator).repeat(repeats) for _ in range(rows)])


@pytest.mark.parametrize("adaptive", [False, True])
def test_lambda_zero_is_static_evaluation_exactly(adaptive):
    model, data = tiny_model(adaptive), repeated()
    static = run_pass(model, data, 7)
    cached = run_pass(model, data, 7, cache=(50, 0.5))
    assert cached.loss(0.0) == static.loss()
    assert torch.equal(mixture_nll(cached.nll, cached.p_cache, cached.has, 0.0), static.nll.double())
    # and static is the library's evaluation (same windows; summed per token here, per window there)
    assert static.loss() == pytest.approx(evaluate_loss(model, data, 7), rel=1e-6)


class CurrentWordModel(torch.nn.Module):
    """The entry point with orthogonal features per current word and a uniform next-word model.

    h_t . h_i is 1 exactly where the current words match, so the cache points at what
    followed this word before: on a repeated sequence, the answer.
    """

    def init_hidden(self, batch, device=None):
        return None

    def forward(self, ids, hidden, targets=None, reduction="mean"):
        features = torch.nn.functional.one_hot(ids, VOCAB).float()  # (B, T, V) as D
        nll = torch.full(targets.shape, math.log(VOCAB))
        return LMOutput(hidden, nll=nll, features=features)


def test_a_cache_that_holds_the_answer_lowers_the_loss():
    model, data = CurrentWordModel(), repeated()
    scored = run_pass(model, data, 10, cache=(200, 5.0))
    assert scored.loss(0.0) == pytest.approx(math.log(VOCAB))
    assert scored.loss(0.5) < scored.loss(0.0) - 1.0  # nats: the previous repeats are in the window
    # a window too short to hold the previous repeat gives (almost) nothing to point at
    short = run_pass(model, data, 10, cache=(3, 5.0))
    assert short.loss(0.5) > scored.loss(0.5) + 0.5


def test_p_cache_is_the_attention_on_positions_followed_by_the_target():
    """A hand-computed case: one row, keys seen before, the same query twice."""
    pointer = CachePointer(window=10, theta=1.0)
    feats = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])  # (1, 3, 2)
    targets = torch.tensor([[7, 8, 7]])
    p, has = pointer.step(feats, targets)
    assert has.tolist() == [[False, True, True]]
    assert p[0, 0] == 0.0
    # position 1 sees key 0 only (followed by 7), target 8: 0
    assert p[0, 1] == 0.0
    # position 2 (query [1, 0]) sees keys 0 (score 1, word 7) and 1 (score 0, word 8); target 7
    expected = torch.exp(torch.tensor(1.0)) / (torch.exp(torch.tensor(1.0)) + 1.0)
    assert p[0, 2] == pytest.approx(expected.item())
    # the history carries into the next window and keeps only the last `window` positions
    p2, has2 = pointer.step(torch.tensor([[[0.0, 1.0]]]), torch.tensor([[8]]))
    assert has2.all() and p2[0, 0] > 0.5 and pointer.keys.size(1) == 4


def test_window_limits_the_history_per_row():
    pointer = CachePointer(window=2, theta=1.0)
    pointer.step(torch.ones(3, 5, 4), torch.zeros(3, 5, dtype=torch.long))
    assert pointer.keys.shape == (3, 2, 4) and pointer.words.shape == (3, 2)


@pytest.mark.parametrize("bad", [dict(window=0, theta=1.0, lam=0.1), dict(window=5, theta=1.0, lam=1.5)])
def test_settings_are_validated(bad):
    with pytest.raises(LMError):
        CacheSettings(**bad)


def test_replaying_a_cache_on_a_kept_pass_is_the_same_as_running_it():
    from lmlib.evaluation.score import replay_cache

    model, data = tiny_model(), repeated()
    kept = run_pass(model, data, 7, keep=True)
    direct = run_pass(model, data, 7, cache=(30, 2.0))
    replayed = replay_cache(kept, 30, 2.0)
    assert torch.equal(replayed.p_cache, direct.p_cache) and replayed.loss(0.3) == direct.loss(0.3)
