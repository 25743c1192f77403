"""Training: run files, budgets, early stopping, NT-ASGD, determinism and exact resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import ROOT

from lmlib.errors import LMError
from lmlib.presets import get_preset
from lmlib.training.loop import train
from lmlib.training.optim import UpdateRule
from lmlib.training.runs import METRIC_COLUMNS, load_model, read_metrics, read_results

SMALL = dict(subset_tokens=6000, epochs=3, batch_size=8, bptt=10, emb_dim=16, hid_dim=16)


def small(**overrides):
    return get_preset("smoke", **{**SMALL, **overrides})


def test_run_directory_holds_every_file(smoke_run):
    for name in ("config.json", "vocab.json", "model.safetensors", "last.safetensors", "metrics.csv", "results.json"):
        assert (smoke_run / name).is_file(), name
    metrics = read_metrics(smoke_run)
    assert list(metrics.columns) == METRIC_COLUMNS and list(metrics["epoch"]) == [1, 2]
    assert (metrics["train_tokens_per_s"] > 0).all()
    config = json.loads((smoke_run / "config.json").read_text())
    assert config["config"]["model"]["hid_dim"] == 32 and config["run"]["protocol"] == "original"
    assert config["config"]["runtime"]["device"] == "auto" and config["run"]["resolved_device"] == "cpu"
    results = json.loads((smoke_run / "results.json").read_text())
    for key in ("parameters", "best_epoch", "valid_ppl", "test_ppl", "wall_seconds"):
        assert key in results
    assert results["valid_ppl"] == pytest.approx(metrics["valid_ppl"].min(), rel=1e-3)
    assert not list(smoke_run.glob("*.tmp"))  # atomic writes leave nothing behind


def test_training_lowers_the_loss_and_is_deterministic(tmp_path):
    a = train(small(), tmp_path / "a", progress=False)
    b = train(small(), tmp_path / "b", progress=False)
    assert a["test_ppl"] == b["test_ppl"]
    metrics = read_metrics(tmp_path / "a")
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]
    pd.testing.assert_frame_equal(
        metrics.drop(columns=["train_seconds", "train_tokens_per_s", "wall_seconds"]),
        read_metrics(tmp_path / "b").drop(columns=["train_seconds", "train_tokens_per_s", "wall_seconds"]),
    )


ORIGINAL_STEP = UpdateRule.step


def interrupt_after(monkeypatch, steps: int):
    """Send ourselves Ctrl-C after `steps` optimiser steps (as a user pressing it)."""
    original = UpdateRule.step
    count = {"n": 0}

    def step(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == steps:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UpdateRule, "step", step)


AWD_EVERYTHING = dict(
    variable_bptt=True,
    optimizer="ntasgd",
    lr_schedule="none",
    lr=5.0,
    locked_dropout=True,
    weight_drop=0.3,
    dropout_embedding=0.1,
    alpha=2.0,
    beta=1.0,
)


SMALL_TRANSFORMER = dict(arch="transformer", n_heads=2, context=10, hid_dim=32)


@pytest.mark.parametrize(
    "overrides", [dict(), AWD_EVERYTHING, SMALL_TRANSFORMER], ids=["original", "awd-ntasgd", "transformer"]
)
def test_ctrl_c_then_resume_ends_exactly_like_an_uninterrupted_run(tmp_path, monkeypatch, overrides):
    config = small(**overrides)
    if config.train.optimizer == "ntasgd":
        force_ntasgd_switch_after_first_epoch(monkeypatch)  # so the averaged state is resumed too
    whole = train(config, tmp_path / "whole", progress=False)
    interrupt_after(monkeypatch, 95)  # mid-way through epoch 2 (about 75 steps per epoch)
    with pytest.raises(LMError, match="run the same command to resume"):
        train(config, tmp_path / "cut", progress=False)
    assert len(read_metrics(tmp_path / "cut")) == 1
    monkeypatch.setattr(UpdateRule, "step", ORIGINAL_STEP)
    resumed = train(config, tmp_path / "cut", progress=False)
    for key in ("valid_ppl", "test_ppl", "best_epoch"):
        assert resumed[key] == whole[key], key
    drop = ["train_seconds", "train_tokens_per_s", "wall_seconds"]
    pd.testing.assert_frame_equal(
        read_metrics(tmp_path / "whole").drop(columns=drop), read_metrics(tmp_path / "cut").drop(columns=drop)
    )
    if overrides is SMALL_TRANSFORMER:  # the Transformer's own check (tests/test_transformer.py had it): it learns
        metrics = read_metrics(tmp_path / "whole")
        assert metrics["valid_loss"].iloc[-1] < metrics["valid_loss"].iloc[0]


def test_killed_process_resumes_from_its_last_checkpoint(tmp_path):
    run_dir = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "lmlib",
        "train",
        "--preset",
        "smoke",
        "--run-dir",
        str(run_dir),
        "--json",
        "--samples",
        "0",
        "--subset-tokens",
        "6000",
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--bptt",
        "10",
        "--emb-dim",
        "16",
        "--hid-dim",
        "16",
        "--checkpoint-minutes",
        "0.001",
    ]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not (run_dir / "metrics.csv").is_file():
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no chance to save anything
    proc.wait()
    finished = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    resumed = json.loads(finished.stdout)
    whole = train(small(epochs=4, checkpoint_minutes=0.001), tmp_path / "whole", progress=False)
    assert resumed["test_ppl"] == whole["test_ppl"]
    assert list(read_metrics(run_dir)["epoch"]) == [1, 2, 3, 4]


def test_time_budget_stops_mid_epoch_and_records_a_partial_epoch(tmp_path):
    # one epoch of 90k tokens takes several seconds; the budget is 1.2 s
    results = train(small(subset_tokens=90_000, epochs=50, max_minutes=0.02), tmp_path / "budget", progress=False)
    assert results["stopped"] == "time_budget"
    epochs = read_metrics(tmp_path / "budget")["epoch"]
    assert len(epochs) == 1 and 0 < epochs.iloc[0] < 1  # a fractional, partial first epoch


def test_early_stopping_with_patience(tmp_path):
    # a learning rate far too high: validation never improves after the first epoch
    results = train(small(epochs=20, lr=0.5, patience=2, lr_schedule="none"), tmp_path / "early", progress=False)
    assert results["stopped"] == "early_stopping"
    assert len(read_metrics(tmp_path / "early")) == results["best_epoch"] + 2


def test_ntasgd_switches_when_validation_stops_improving_and_evaluates_the_average():
    import torch

    from lmlib.model.lstm import LSTMLanguageModel

    config = small(optimizer="ntasgd", lr_schedule="none", lr=1.0, nonmono=2)
    model = LSTMLanguageModel(30, config.model)
    opt = UpdateRule(config.train, model, torch.device("cpu"), "fp32")
    opt.end_epoch(5.0, [5.0, 4.0, 4.5])  # not worse than the best before the last 2 epochs
    assert not opt.averaging
    opt.end_epoch(5.1, [5.0, 4.0, 4.5, 5.1])  # worse than min(5.0, 4.0): switch
    assert opt.averaging and isinstance(opt.optimizer, torch.optim.ASGD)
    x = torch.randint(0, 30, (8, 10))
    before = [p.detach().clone() for p in opt.params]
    for _ in range(3):
        opt.step(x[:, :-1], x[:, 1:], model.init_hidden(8))
    current = [p.detach().clone() for p in opt.params]
    with opt.averaged_weights():
        inside = [p.detach().clone() for p in opt.params]
    assert not all(torch.equal(a, b) for a, b in zip(inside, current))  # the average, not the last step
    assert all(torch.equal(a, b) for a, b in zip(current, [p.detach() for p in opt.params]))  # restored
    assert not all(torch.equal(a, b) for a, b in zip(before, current))


def force_ntasgd_switch_after_first_epoch(monkeypatch):
    def end_epoch(self, valid_loss, history):
        if not self.averaging:
            self._switch_to_averaging()

    monkeypatch.setattr(UpdateRule, "end_epoch", end_epoch)


def test_plateau_schedule_halves_the_learning_rate(tmp_path):
    train(small(lr=0.3, epochs=4), tmp_path / "plateau", progress=False)
    lrs = read_metrics(tmp_path / "plateau")["lr"].tolist()
    assert any(b == pytest.approx(a / 2) for a, b in zip(lrs, lrs[1:]))


def test_adamw_sgd_and_zaremba_decay(tmp_path):
    train(small(optimizer="adamw", weight_decay=0.01, epochs=1), tmp_path / "adamw", progress=False)
    train(
        small(optimizer="sgd", lr=1.0, lr_schedule="step", lr_decay_start=2, lr_factor=0.5, epochs=3),
        tmp_path / "sgd",
        progress=False,
    )
    assert read_metrics(tmp_path / "sgd")["lr"].tolist() == [1.0, 0.5, 0.25]


def test_a_different_config_in_an_existing_run_dir_is_refused(tmp_path, smoke_run):
    with pytest.raises(LMError, match="different config \\(hid_dim\\)"):
        train(get_preset("smoke", hid_dim=64), smoke_run, progress=False)


def test_damaged_and_mismatched_checkpoints_are_clear_errors(tmp_path, smoke_run):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(smoke_run, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(LMError, match="damaged or truncated"):
        load_model(broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(LMError, match="is missing"):
        load_model(broken)
    other = tmp_path / "other"
    shutil.copytree(smoke_run, other)
    vocab = json.loads((other / "vocab.json").read_text())
    vocab["itos"] = vocab["itos"][:-5]
    vocab["counts"] = vocab["counts"][:-5]
    (other / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(LMError, match="another vocabulary or model shape"):
        load_model(other)


def test_loaded_run_needs_no_pickle(smoke_run):
    model, _, _ = load_model(smoke_run)
    assert not model.training and read_results(smoke_run)["best_epoch"] >= 1
    header = (smoke_run / "model.safetensors").read_bytes()[:8]
    assert header[:2] != b"\x80\x04"  # not a pickle stream


def test_more_epochs_continue_a_finished_run(tmp_path):
    first = train(small(epochs=2), tmp_path / "grow", progress=False)
    assert train(small(epochs=2), tmp_path / "grow", progress=False) == first  # nothing to do
    train(small(epochs=3), tmp_path / "grow", progress=False)
    whole = train(small(epochs=3), tmp_path / "whole", progress=False)
    assert list(read_metrics(tmp_path / "grow")["epoch"]) == [1, 2, 3]
    assert read_results(tmp_path / "grow")["test_ppl"] == whole["test_ppl"]


def test_training_evaluation_and_generation_share_the_model_entry_point(tmp_path):
    """nanoGPT's rule: one forward for every use, so the tested composition is the trained one."""
    import torch

    from lmlib.generate import Generator
    from lmlib.model.lstm import LSTMLanguageModel
    from lmlib.training.evaluate import evaluate_loss

    calls = []
    config = small(epochs=1)
    model = LSTMLanguageModel(40, config.model)
    model.register_forward_hook(lambda module, args, output: calls.append(module.training))
    rule = UpdateRule(config.train, model, torch.device("cpu"), "fp32")
    ids = torch.randint(0, 40, (4, 12))
    rule.step(ids[:, :-1], ids[:, 1:], model.init_hidden(4))
    evaluate_loss(model, ids, bptt=5)
    assert calls[0] is True and calls[1:] and not any(calls[1:])  # one training call, then eval calls
    calls.clear()
    run = tmp_path / "tiny"
    train(config, run, progress=False)
    generator = Generator.from_run(run)
    generator.model.register_forward_hook(lambda module, args, output: calls.append("generate"))
    generator.generate("she", 3, seed=0)
    assert calls and set(calls) == {"generate"}
