"""The Transformer baseline (issue 15): the LSTM's interface, causal, exact resume, every front end."""

import json

import pandas as pd
import pytest
import torch
from lm_fixtures import fit_one_batch
from test_cli_train import lmlib
from test_train import SMALL_TRANSFORMER, small

from lmlib.config import ModelConfig, RunConfig
from lmlib.errors import LMError
from lmlib.generate import Generator
from lmlib.model.build import build_model, count_parameters
from lmlib.model.lstm import LSTMLanguageModel
from lmlib.model.transformer import TransformerLanguageModel
from lmlib.presets import get_preset
from lmlib.training.loop import train
from lmlib.training.runs import load_model

V = 50
NO_DROPOUT = dict(dropout_input=0.0, dropout_hidden=0.0, dropout_output=0.0)


def tiny(**overrides) -> ModelConfig:
    fields = dict(arch="transformer", emb_dim=32, hid_dim=64, num_layers=2, n_heads=4, context=8, **NO_DROPOUT)
    return ModelConfig(**{**fields, **overrides})


def stream(rows=3, length=30, seed=0) -> torch.Tensor:
    return torch.randint(0, V, (rows, length), generator=torch.Generator().manual_seed(seed))


def test_the_factory_builds_the_arch_the_config_names():
    assert isinstance(build_model(V, tiny()), TransformerLanguageModel)
    assert isinstance(build_model(V, ModelConfig(emb_dim=8, hid_dim=8)), LSTMLanguageModel)
    assert RunConfig.from_dict({"model": {"emb_dim": 8}}).model.arch == "lstm"  # config.json before `arch`


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = build_model(V, tiny())
    ids = stream(length=9)  # windows no longer than the context: one chunk
    assert fit_one_batch(model, ids[:, :-1], ids[:, 1:], lr=3e-3) < 0.1  # from ln(50) = 3.9


@pytest.mark.parametrize("head", [dict(), dict(tie_weights=True), dict(adaptive_softmax=True, cutoffs=(10,))])
def test_a_future_token_cannot_change_a_past_prediction(head):
    model = build_model(V, tiny(**head)).eval()
    ids = stream(length=20)
    changed = ids.clone()
    changed[:, 12] = (ids[:, 12] + 1) % V  # the token at position 12, across the chunk boundary at 8
    a = model(ids, model.init_hidden(3)).log_probs
    b = model(changed, model.init_hidden(3)).log_probs
    assert torch.equal(a[:, :12], b[:, :12])  # bit-identical before it
    assert not torch.allclose(a[:, 12:], b[:, 12:])  # and it does reach the predictions after it


def test_carried_context_gives_the_losses_of_one_longer_forward():
    """Window 2 read after window 1 (carried as context) = the same tokens in one pass, when C covers both."""
    model = build_model(V, tiny(context=16)).eval()
    ids = stream(length=17)
    x, y = ids[:, :-1], ids[:, 1:]
    whole = model(x, model.init_hidden(3), y, reduction="none").nll  # (3, 16): one chunk
    first = model(x[:, :6], model.init_hidden(3), y[:, :6], reduction="none")
    second = model(x[:, 6:], first.hidden, y[:, 6:], reduction="none").nll
    torch.testing.assert_close(torch.cat([first.nll, second], dim=1), whole, rtol=0, atol=1e-5)
    # Without the carried context the second window's predictions are different ones.
    alone = model(x[:, 6:], model.init_hidden(3), y[:, 6:], reduction="none").nll
    assert not torch.allclose(alone, second, atol=1e-3)


def test_the_context_is_the_last_c_tokens_and_streams_one_token_at_a_time():
    model = build_model(V, tiny()).eval()
    ids = stream(length=12)
    hidden = model.init_hidden(3)
    steps = []
    for t in range(12):  # as Generator feeds tokens
        out = model(ids[:, t : t + 1], hidden)
        hidden = out.hidden
        steps.append(out.log_probs)
    context, filled = hidden[0]
    assert context.shape == filled.shape == (1, 3, 8) and filled.all()
    assert torch.equal(context[0], ids[:, -8:])
    # Token by token equals the same text read in windows of 4 wherever both saw the same tokens: every
    # position up to 8 sees all that came before it (position 9 sees 0-9 in a window, 1-9 step by step).
    hidden, windows = model.init_hidden(3), []
    for start in range(0, 12, 4):
        out = model(ids[:, start : start + 4], hidden)
        hidden = out.hidden
        windows.append(out.log_probs)
    torch.testing.assert_close(torch.cat(steps, 1)[:, :9], torch.cat(windows, 1)[:, :9], rtol=0, atol=1e-5)


def test_features_are_what_the_output_layer_reads():
    model = build_model(V, tiny()).eval()
    out = model(stream(length=5), model.init_hidden(3))
    assert out.features.shape == (3, 5, 32)
    torch.testing.assert_close(out.log_probs, torch.log_softmax(model.decoder(out.features), -1))


@pytest.mark.parametrize(
    "overrides,message",
    [(dict(weight_drop=0.2), "weight_drop applies to the LSTM only .*set weight_drop=0"),
     (dict(alpha=2.0, beta=1.0), "alpha, beta apply to the LSTM only"),
     (dict(emb_dim=30), "emb_dim 30 must divide by n_heads 4"),
     (dict(arch="gru"), "arch must be one of"), (dict(context=0), "context")],
)  # fmt: skip
def test_settings_that_do_not_apply_are_refused(overrides, message):
    with pytest.raises(LMError, match=message):
        tiny(**overrides)


def test_the_preset_has_the_cpu_lstms_parameters():
    vocab = 7784  # the embedded corpus's vocabulary under the original protocol
    lstm = count_parameters(build_model(vocab, get_preset("cpu").model))
    transformer = count_parameters(build_model(vocab, get_preset("transformer").model))
    assert lstm == 3_944_192 and abs(transformer / lstm - 1) < 0.02


# Exact resume after Ctrl-C: tests/test_train.py runs its check for arch=transformer (SMALL_TRANSFORMER) too.


def test_cli_trains_evaluates_and_generates_a_transformer(tmp_path):
    run = tmp_path / "run"
    proc = lmlib("train", "--preset", "smoke", "--set", "arch=transformer", "--set", "epochs=1",
                 "--set", "subset_tokens=5000", "--run-dir", str(run), "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    trained = json.loads(proc.stdout)
    assert json.loads((run / "config.json").read_text())["config"]["model"]["arch"] == "transformer"
    evaluated = json.loads(lmlib("evaluate", "--run", str(run), "--json").stdout)
    assert evaluated["test_ppl"] == pytest.approx(trained["test_ppl"], rel=1e-6)
    generated = lmlib(
        "generate", "--run", str(run), "--prompt", "She", "--seed", "1", "--max-new-tokens", "5", "--json"
    )
    assert generated.returncode == 0, generated.stderr
    assert 1 <= len(json.loads(generated.stdout)["tokens"]) <= 5
    refused = lmlib("train", "--preset", "cpu", "--set", "arch=transformer", "--run-dir", str(tmp_path / "x"))
    assert refused.returncode == 2 and "weight_drop, alpha, beta apply to the LSTM only" in refused.stderr


def test_the_panel_and_the_web_app_take_a_transformer_run(tmp_path):
    from lmlib.apps.panel import panel_for_runs
    from lmlib.apps.web import create_app

    run = tmp_path / "tf"
    train(small(epochs=1, **SMALL_TRANSFORMER), run, progress=False)
    panel = panel_for_runs([run], background=False)
    panel.prompt.value, panel.length.value, panel.random_seed.value = "she said", 12, False
    panel.generate_button.click()
    assert panel.status.value.startswith("done") and 1 <= len(panel.tokens) <= 12
    client = create_app(Generator.from_run(run), name="tf").test_client()
    body = {"prompt": "she said", "max_new_tokens": 12, "seed": 7}
    first = client.post("/generate", json=body).get_json()
    assert first["tokens"] and first["tokens"] == client.post("/generate", json=body).get_json()["tokens"]


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_a_run_of_each_arch_loads_and_generates(tmp_path, arch):
    run = tmp_path / arch
    train(small(epochs=1, arch=arch, n_heads=2), run, progress=False)
    model, vocab, config = load_model(run)
    assert config.model.arch == arch and isinstance(model, LSTMLanguageModel if arch == "lstm" else
                                                    TransformerLanguageModel)  # fmt: skip
    generator = Generator.from_run(run)
    first = generator.generate("she was", max_new_tokens=30, seed=3)
    assert first == generator.generate("she was", max_new_tokens=30, seed=3)  # seeded: repeatable
    assert first.tokens and len(first.surprisals) == len(first.tokens)


def test_two_ddp_ranks_train_the_transformer_one_process_trains(tmp_path, monkeypatch):
    """tests/test_distributed.py's check with arch=transformer: its carried context is sharded and gathered
    by rows like the LSTM's (h, c), so two ranks learn the weights and metrics of one process."""
    import test_distributed as ddp

    fields = {**ddp.FIELDS, "arch": "transformer", "n_heads": 2, "context": 10}
    monkeypatch.setattr(ddp, "FIELDS", fields)  # what its torchrun command line sets
    train(get_preset("smoke", **fields), tmp_path / "one", progress=False)
    ddp.run_torchrun(2, tmp_path / "two")
    one, two = ddp.weights(tmp_path / "one"), ddp.weights(tmp_path / "two")
    assert one.keys() == two.keys() and "model/position.weight" in one
    # The losses agree to 1e-5; the weights only to Adam's step: a rank's smaller batch rounds its matmuls
    # differently (~1e-7), and Adam turns such noise on near-zero gradients (the keys' bias, which softmax
    # ignores; rare words) into steps of up to lr (3e-3) each. The LSTM's weights agree to 1e-4.
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=2e-2, msg=name)
    pd.testing.assert_frame_equal(ddp.metrics(tmp_path / "two"), ddp.metrics(tmp_path / "one"), rtol=1e-5)


def test_the_adaptive_head_trains_under_bf16_autocast():
    """A Transformer ends in a layer norm, whose fp32 output made the adaptive softmax mix dtypes under autocast."""
    model = build_model(V, tiny(adaptive_softmax=True, cutoffs=(10,))).train()
    ids = stream(length=9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids[:, :-1], model.init_hidden(3), ids[:, 1:])
    out.loss.backward()
    assert torch.isfinite(out.nll) and model.adaptive.head.weight.grad is not None
