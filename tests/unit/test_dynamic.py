"""Dynamic evaluation: lr 0 is static evaluation, the trained weights stay, no token is seen before it is scored."""

import math

import pytest
import torch

from lmlib.config import RunConfig
from lmlib.errors import LMError
from lmlib.evaluation.dynamic import DynamicSettings, adapting, gradient_rms
from lmlib.evaluation.score import run_pass
from lmlib.model.lstm import LSTMLanguageModel

VOCAB, SEGMENT = 50, 4


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = RunConfig().replace(emb_dim=16, hid_dim=16, adaptive_softmax=True, cutoffs=(20,))
    return LSTMLanguageModel(VOCAB, config.model).eval()


def data(seed: int = 3, rows: int = 3, columns: int = 41) -> torch.Tensor:
    return torch.randint(VOCAB, (rows, columns), generator=torch.Generator().manual_seed(seed))


def dynamic_pass(model, split, lr=0.05, decay=0.01):
    rms = gradient_rms(model, data(9, 4, 60), SEGMENT, 10_000)
    with adapting(model, rms, DynamicSettings(lr, decay, SEGMENT)) as updater:
        return run_pass(model, split, SEGMENT, updater=updater)


def test_lr_zero_is_static_evaluation_exactly(model):
    split = data()
    # PyTorch's CPU LSTM takes its oneDNN kernel only with gradients off; with one kernel for
    # both passes the scores are bit for bit the same, and across kernels equal to rounding.
    with torch.backends.mkldnn.flags(enabled=False):
        assert torch.equal(dynamic_pass(model, split, lr=0.0, decay=0.1).nll, run_pass(model, split, SEGMENT).nll)
    assert torch.allclose(dynamic_pass(model, split, lr=0.0, decay=0.1).nll, run_pass(model, split, SEGMENT).nll)


def test_a_real_learning_rate_changes_the_scores_after_the_first_segment(model):
    split, tokens = data(), 3 * SEGMENT
    with torch.backends.mkldnn.flags(enabled=False):  # one LSTM kernel for both (see above)
        adapted, static = dynamic_pass(model, split).nll, run_pass(model, split, SEGMENT).nll
    assert torch.equal(adapted[:tokens], static[:tokens])  # the first segment is scored before any update
    assert not torch.allclose(adapted[tokens:], static[tokens:])


def test_each_segment_is_scored_before_any_update_that_has_seen_it(model):
    """Changing the text from segment k on cannot change the scores of segments before k."""
    k = 5
    split = data()
    changed = split.clone()
    changed[:, k * SEGMENT + 1 :] = (changed[:, k * SEGMENT + 1 :] + 7) % VOCAB  # segment k's targets on
    first, second = dynamic_pass(model, split).nll, dynamic_pass(model, changed).nll
    scored_before = k * SEGMENT * split.size(0)  # tokens of segments 0..k-1, in scoring order
    assert torch.equal(first[:scored_before], second[:scored_before])
    assert not torch.equal(first[scored_before:], second[scored_before:])


def test_the_trained_weights_are_restored_even_when_the_pass_fails(model):
    before = {name: t.clone() for name, t in model.state_dict().items()}
    dynamic_pass(model, data())
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())
    rms = gradient_rms(model, data(9, 4, 60), SEGMENT, 10_000)
    with pytest.raises(RuntimeError), adapting(model, rms, DynamicSettings(0.1, 0.0, SEGMENT)) as updater:
        run_pass(model, data(), SEGMENT, updater=updater)
        raise RuntimeError("interrupted")
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())


def test_decay_pulls_the_weights_back_to_the_trained_ones(model):
    rms = gradient_rms(model, data(9, 4, 60), SEGMENT, 10_000)
    origin = [p.detach().clone() for p in model.parameters()]
    with adapting(model, rms, DynamicSettings(0.05, 1.0, SEGMENT)) as updater:
        out = model(data()[:, :SEGMENT], model.init_hidden(3), targets=data()[:, 1 : SEGMENT + 1])
        updater.step(out.nll)
        moved = [p.detach().clone() for p in model.parameters()]
        updater.step(torch.zeros(()) + 0 * sum(p.sum() for p in model.parameters()))  # zero gradient
        back = sum((p - o).abs().sum() for p, o in zip(model.parameters(), origin))
    assert sum((m - o).abs().sum() for m, o in zip(moved, origin)) > 0
    assert back < sum((m - o).abs().sum() for m, o in zip(moved, origin))


@pytest.mark.parametrize(
    "bad", [dict(lr=-1.0, decay=0.0), dict(lr=1e-3, decay=2.0), dict(lr=1e-3, decay=0.0, segment=0)]
)
def test_settings_are_validated(bad):
    with pytest.raises(LMError):
        DynamicSettings(**bad)


def test_weights_the_statistics_never_moved_take_their_tensors_mean_rms():
    from lmlib.evaluation.dynamic import seen_rms

    rms = torch.tensor([[0.0, 2.0], [4.0, 0.0]])  # e.g. embedding rows of words the statistics never saw
    assert seen_rms(rms).tolist() == [[3.0, 2.0], [4.0, 3.0]]  # never 0: no 1/eps step for a rare word
    assert seen_rms(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]


def test_tuning_never_chooses_a_setting_that_diverged():
    from lmlib.evaluation.tuning import _finite_ppl

    rows = [{"lr": 1e-3, "valid_ppl": math.inf}, {"lr": 1e-4, "valid_ppl": 300.0}, {"lr": 1e-2, "valid_ppl": math.nan}]
    assert min(rows, key=_finite_ppl)["lr"] == 1e-4
