"""The model: exact size of the original, AWD switches active in training and inert in eval."""

import math

import pytest
import torch
from lm_fixtures import fit_one_batch

from lmlib.config import ModelConfig
from lmlib.errors import LMError
from lmlib.model.lstm import LSTMLanguageModel, count_parameters
from lmlib.model.regularize import WeightDropLSTM

V = 50


def tiny(**overrides) -> ModelConfig:
    base = dict(emb_dim=16, hid_dim=24, num_layers=2, dropout_input=0.0, dropout_hidden=0.0, dropout_output=0.0,
                init="awd")  # fmt: skip
    return ModelConfig(**{**base, **overrides})


def run(model, ids, seed=0):
    torch.manual_seed(seed)
    out, raw, _ = model._run(ids, model.init_hidden(ids.size(0)))  # dropped and raw last-layer output
    return out, raw


IDS = torch.randint(0, V, (3, 7), generator=torch.Generator().manual_seed(0))


def test_original_architecture_has_exactly_43705166_parameters():
    model = LSTMLanguageModel(13_134, ModelConfig())  # defaults: emb 1024, hidden 1024, 2 layers
    assert count_parameters(model) == 43_705_166
    lstm = model.rnns[0]
    assert len(model.rnns) == 1 and lstm.num_layers == 2 and lstm.dropout == 0.65 and lstm.batch_first


def test_original_initialisation():
    model = LSTMLanguageModel(2000, ModelConfig(emb_dim=64, hid_dim=100))
    emb = model.embedding.weight
    assert emb.min() >= -0.1 and emb.max() <= 0.1 and emb.max() > 0.09  # U(-0.1, 1/sqrt(100) = 0.1)
    model = LSTMLanguageModel(2000, ModelConfig(emb_dim=64, hid_dim=400))
    emb = model.embedding.weight
    assert emb.min() < -0.09 and emb.max() <= 0.05 and emb.max() > 0.045  # asymmetric: U(-0.1, 0.05)
    assert model.decoder.weight.abs().max() <= 0.05 and torch.all(model.decoder.bias == 0)


def test_loss_at_initialisation_is_about_log_vocab():
    model = LSTMLanguageModel(1000, tiny(init="original", emb_dim=32, hid_dim=32)).eval()
    ids = torch.randint(0, 1000, (8, 20))
    loss = model(ids, model.init_hidden(8), ids).loss
    assert loss.item() == pytest.approx(math.log(1000), rel=0.02)


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = LSTMLanguageModel(V, tiny())
    assert fit_one_batch(model, IDS[:, :-1], IDS[:, 1:], lr=1e-2) < 0.5  # from ln(50) = 3.9


@pytest.mark.parametrize(
    "switch",
    [
        dict(dropout_input=0.5),
        dict(dropout_hidden=0.5),
        dict(dropout_output=0.5),
        dict(dropout_input=0.5, locked_dropout=True),
        dict(dropout_embedding=0.5),
        dict(weight_drop=0.5),
    ],
)
def test_each_regulariser_is_active_in_training_and_inert_in_eval(switch):
    model = LSTMLanguageModel(V, tiny(**switch))
    model.train()
    a, _ = run(model, IDS, seed=1)
    b, _ = run(model, IDS, seed=2)
    assert not torch.allclose(a, b), "different random masks must change the training output"
    model.eval()
    c, _ = run(model, IDS, seed=1)
    d, _ = run(model, IDS, seed=2)
    assert torch.equal(c, d)
    plain = LSTMLanguageModel(V, tiny(locked_dropout=switch.get("locked_dropout", False)))  # same layout
    plain.load_state_dict(model.state_dict())
    e, _ = run(plain.eval(), IDS)
    assert torch.allclose(c, e, atol=1e-6), "in eval mode the switch must change nothing"


def test_locked_dropout_uses_one_mask_across_time():
    model = LSTMLanguageModel(V, tiny(dropout_output=0.5, locked_dropout=True)).train()
    out, raw = run(model, IDS)
    zeros = out == 0
    assert zeros.any()
    assert torch.equal(zeros[:, :1].expand_as(zeros), zeros | (raw == 0))  # same units dropped at every step


def test_embedding_dropout_drops_whole_words():
    model = LSTMLanguageModel(V, tiny(dropout_embedding=0.5)).train()
    ids = torch.full((2, 5), 7)
    torch.manual_seed(3)
    from lmlib.model.regularize import embedding_dropout

    for seed in range(10):
        torch.manual_seed(seed)
        emb = embedding_dropout(model.embedding, ids, 0.5, True)
        dropped = (emb == 0).all(-1)
        assert dropped.all() or not dropped.any()  # the word is dropped everywhere or nowhere


@pytest.mark.parametrize("alpha,beta", [(2.0, 0.0), (0.0, 1.0)])
def test_ar_and_tar_add_to_the_training_loss_only(alpha, beta):
    base = LSTMLanguageModel(V, tiny())
    model = LSTMLanguageModel(V, tiny(alpha=alpha, beta=beta))
    model.load_state_dict(base.state_dict())
    x, y = IDS[:, :-1], IDS[:, 1:]
    for m in (base, model):
        m.train()
    plain = base(x, base.init_hidden(3), y).loss
    regularised = model(x, model.init_hidden(3), y).loss
    assert regularised.item() > plain.item()
    base.eval(), model.eval()
    plain = base(x, base.init_hidden(3), y).loss
    regularised = model(x, model.init_hidden(3), y).loss
    assert regularised.item() == pytest.approx(plain.item())


def test_weight_drop_keeps_parameters_state_dict_and_to():
    lstm = WeightDropLSTM(8, 8, 2, batch_first=True, weight_drop=0.5)
    reference = torch.nn.LSTM(8, 8, 2, batch_first=True)
    assert list(lstm.state_dict()) == list(reference.state_dict())
    lstm.to(torch.float64).to(torch.float32)
    x = torch.randn(2, 3, 8)
    lstm.train()
    out, _ = lstm(x)
    out.sum().backward()
    assert lstm.weight_hh_l0.grad is not None and lstm.weight_hh_l0.grad.abs().sum() > 0
    assert isinstance(lstm.weight_hh_l0, torch.nn.Parameter)


def test_tied_weights_share_one_matrix_and_allow_a_smaller_last_layer():
    model = LSTMLanguageModel(V, tiny(tie_weights=True, emb_dim=16, hid_dim=24))
    assert model.decoder.weight is model.embedding.weight
    assert model.rnns[-1].hidden_size == 16
    untied = LSTMLanguageModel(V, tiny(emb_dim=16, hid_dim=24))
    assert count_parameters(model) < count_parameters(untied)


def test_adaptive_softmax_gives_exact_normalised_probabilities():
    model = LSTMLanguageModel(3000, tiny(adaptive_softmax=True)).eval()
    ids = torch.randint(0, 3000, (2, 9))
    log_probs = model(ids, model.init_hidden(2)).log_probs
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 9), atol=1e-4)
    loss = model(ids, model.init_hidden(2), ids).loss
    exact = -log_probs.gather(-1, ids.unsqueeze(-1)).mean()
    assert loss.item() == pytest.approx(exact.item(), rel=1e-5)


def test_uniform_init_of_zaremba_covers_every_parameter():
    model = LSTMLanguageModel(V, tiny(init="uniform"))
    for name, parameter in model.named_parameters():
        assert parameter.abs().max() <= 0.1 and parameter.abs().max() > 0.05, name


@pytest.mark.parametrize("p", [0.1, 0.5, 0.65])
def test_keep_mask_is_an_inverted_bernoulli_mask(p):
    from lmlib.model.regularize import keep_mask

    torch.manual_seed(0)
    mask = keep_mask((1000, 1000), p, torch.empty(0, dtype=torch.float32))
    assert mask.dtype == torch.float32 and mask.shape == (1000, 1000)
    assert mask.unique().tolist() == pytest.approx([0.0, 1 / (1 - p)])
    # 10^6 draws: the kept fraction is within 5 standard deviations of 1 - p
    assert abs((mask > 0).double().mean().item() - (1 - p)) < 5 * (p * (1 - p) / 1e6) ** 0.5
    assert mask.double().mean().item() == pytest.approx(1.0, abs=0.01)  # expectation kept: inverted dropout


def test_weight_drop_drops_hidden_to_hidden_weights_only(monkeypatch):
    lstm = WeightDropLSTM(8, 8, 1, batch_first=True, weight_drop=0.5).train()
    seen = {}
    original = torch.func.functional_call

    def spy(module, tensors, args):
        seen.update(tensors)
        return original(module, tensors, args)

    monkeypatch.setattr(torch.func, "functional_call", spy)
    lstm(torch.randn(2, 3, 8))
    assert set(seen) == {"weight_hh_l0"}
    dropped, weight = seen["weight_hh_l0"], lstm.weight_hh_l0.detach()
    kept = dropped != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(dropped[kept], 2 * weight[kept])  # kept entries scaled by 1/(1-p)


@pytest.mark.parametrize("head", [{}, {"adaptive_softmax": True}])
def test_reduction_none_gives_each_targets_loss_which_sum_and_mean_combine(head):
    """One loss per target (B, T), in the targets' order: the gap study sums them per window."""
    model = LSTMLanguageModel(3000, tiny(**head)).eval()
    ids = torch.randint(0, 3000, (2, 9), generator=torch.Generator().manual_seed(1))
    targets = ids.roll(-1, dims=1)
    hidden = model.init_hidden(2)
    each = model(ids, hidden, targets, reduction="none").nll
    assert each.shape == (2, 9)
    exact = -model(ids, hidden).log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(each, exact, atol=1e-4)
    assert each.sum().item() == pytest.approx(model(ids, hidden, targets, reduction="sum").nll.item(), rel=1e-6)
    assert each.mean().item() == pytest.approx(model(ids, hidden, targets).nll.item(), rel=1e-6)
    with pytest.raises(LMError, match="reduction must be one of mean, sum, none"):
        model(ids, hidden, targets, reduction="avg")
