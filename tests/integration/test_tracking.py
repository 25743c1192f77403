"""What a run shows: progress bars for every pass, and TensorBoard scalars that change nothing it learns."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from conftest import ROOT

from lmlib.errors import LMError
from lmlib.presets import get_preset
from lmlib.training.loop import train
from lmlib.training.runs import read_metrics

SMALL = dict(subset_tokens=6000, epochs=2, batch_size=8, bptt=10, emb_dim=16, hid_dim=16, checkpoint_minutes=None)
TIMING = ["train_seconds", "train_tokens_per_s", "wall_seconds"]


def small(**overrides):
    return get_preset("smoke", **{**SMALL, **overrides})


def scalars(run, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_tensorboard_logs_every_step_changes_nothing_learnt_and_a_run_resumes_with_it_on_or_off(tmp_path):
    pytest.importorskip("tensorboard")
    plain, logged = tmp_path / "plain", tmp_path / "logged"
    train(small(epochs=3), plain, progress=False)
    train(small(logger="tensorboard"), logged, progress=False)
    losses = scalars(logged, "train/loss")
    steps = len(losses) // 2  # update steps per epoch (fixed windows)
    assert [step for step, _ in losses] == list(range(2 * steps))
    valid = [value for _, value in scalars(logged, "valid/loss")]
    assert valid == pytest.approx(list(read_metrics(logged)["valid_loss"]), rel=1e-6)
    assert {step for step, _ in scalars(logged, "train/lr")} <= set(range(2 * steps))
    assert all(value > 0 for _, value in scalars(logged, "train/tokens_per_s"))
    train(small(epochs=3), logged, progress=False)  # resumed with it off: config.json said it was on
    assert len(scalars(logged, "train/loss")) == 2 * steps
    expected = read_metrics(plain).drop(columns=TIMING)
    assert read_metrics(logged).drop(columns=TIMING).equals(expected)  # TensorBoard changed nothing learnt
    train(small(epochs=4, logger="tensorboard"), logged, progress=False)  # and on again: the curve continues
    assert [step for step, _ in scalars(logged, "train/loss")][2 * steps :] == list(range(3 * steps, 4 * steps))


def test_without_the_tensorboard_package_the_logger_is_a_one_line_error_before_anything_is_written(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as when tensorboard is not installed
    with pytest.raises(
        LMError, match=r"logger tensorboard needs the tensorboard package: pip install 'lmlib\[tensorboard\]'"
    ):
        train(small(logger="tensorboard"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def lmlib(*args):
    return subprocess.run(
        [sys.executable, "-m", "lmlib", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_a_budget_stop_ends_its_epoch_bar_at_its_total(tmp_path):
    run = tmp_path / "budget"
    budget = ["--set", "max_minutes=0.01", "--set", "subset_tokens=90000", "--set", "epochs=50"]
    proc = lmlib("train", "--preset", "smoke", "--run-dir", run, "--samples", "0", *budget)
    assert proc.returncode == 0, proc.stderr
    assert "(time_budget)" in proc.stdout
    assert "epoch 1/50 (time budget): 100%" in proc.stderr  # the bar's total is where it stopped: a normal end


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_every_pass_shows_progress_on_a_terminal_and_none_into_a_pipe(tmp_path, tiny_run, monkeypatch):
    from lmlib.evaluation.records import evaluate_run_methods
    from lmlib.training.evaluate import evaluate_run

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train(small(epochs=1), tmp_path / "run")
    evaluate_run(tiny_run, device="cpu")
    evaluate_run_methods(tiny_run, ("cache", "dynamic", "both"), grid="small", device="cpu", record=False)
    shown = terminal.getvalue()
    passes = ["epoch 1/1", "valid:", "test:", "static: valid", "cache: valid", "cache: test", "dynamic lr"]
    passes += ["dynamic: gradient statistics", "dynamic: test", "both: valid", "both: test"]
    for name in passes:
        assert name in shown, name
    pipe = io.StringIO()  # a log file or a captured pipe: the passing bars stay out of it
    monkeypatch.setattr(sys, "stderr", pipe)
    evaluate_run(tiny_run, device="cpu")
    assert pipe.getvalue() == ""
