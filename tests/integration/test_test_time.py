"""Honest tuning (valid only, test scored once), the run record, and `lmlib evaluate --cache --dynamic`."""

import json
import subprocess
import sys

import pytest
import torch

from lmlib.evaluation import tuning
from lmlib.evaluation.records import RECORD_NAME, evaluate_run_methods, load_splits, read_record
from lmlib.evaluation.score import run_pass
from lmlib.training.runs import RunPaths, read_results

SMALL = {"window": (20, 50), "theta": (0.3, 1.0), "lambda": (0.1, 0.2), "lr": (1e-3, 1e-2), "decay": (0.01,)}


@pytest.fixture(scope="module")
def loaded(smoke_run):
    model, splits, config = load_splits(smoke_run, "cpu", need_train=True)
    return model, splits, config.train.bptt


def test_settings_are_chosen_on_valid_and_test_is_scored_once_per_method(loaded, monkeypatch):
    model, splits, bptt = loaded
    seen = []
    real_pass = tuning.run_pass

    def spy(m, data, *args, **kwargs):
        seen.append(next(name for name, split in splits.items() if split is data))
        return real_pass(m, data, *args, **kwargs)

    monkeypatch.setattr(tuning, "run_pass", spy)
    monkeypatch.setitem(tuning.GRIDS, "test", SMALL)
    results = tuning.compare_methods(model, splits, bptt, grid="test")
    # static once; each method that adapts: scored once, after a static pass timed before it (its cost); one
    # that kept static ("no adaptation": nothing beat static on valid) needs no pass of its own
    adapted = [name for name in ("cache", "dynamic", "both") if results[name]["adapted"]]
    assert seen.count("test") == 1 + 2 * len(adapted)
    # every grid pass read valid: static, the cache grid's one model pass, 2 (lr, decay), both
    assert seen.count("valid") == 1 + 1 + 2 + 1
    assert results["cache"]["valid_ppl"] == min(r["valid_ppl"] for r in results["cache"]["grid"])
    assert results["dynamic"]["valid_ppl"] == min(r["valid_ppl"] for r in results["dynamic"]["grid"])
    assert set(results["cache"]["tuned_on_valid"]) == {"window", "theta", "lambda"}


def test_the_test_split_cannot_move_the_chosen_settings(loaded, monkeypatch):
    model, splits, bptt = loaded
    monkeypatch.setitem(tuning.GRIDS, "test", SMALL)
    scrambled = {**splits, "test": torch.flip(splits["test"], dims=[1]).contiguous()}
    first = tuning.compare_methods(model, splits, bptt, methods=("cache",), grid="test")
    second = tuning.compare_methods(model, scrambled, bptt, methods=("cache",), grid="test")
    assert first["cache"]["settings"] == second["cache"]["settings"]
    assert first["cache"]["test_ppl"] != second["cache"]["test_ppl"]


def test_fixed_settings_are_not_tuned(loaded):
    model, splits, bptt = loaded
    results = tuning.compare_methods(
        model, splits, bptt, methods=("cache",), cache={"window": 30, "theta": 0.5, "lambda": 0.1}, grid="small"
    )
    assert results["cache"]["settings"] == {"window": 30, "theta": 0.5, "lambda": 0.1}
    assert results["cache"]["tuned_on_valid"] == [] and len(results["cache"]["grid"]) == 1


def test_dynamic_lr_grid_follows_the_rows_evaluated_against_the_statistics_rows(loaded):
    """Fewer evaluation rows than statistics rows: noisier update gradients, so eta shrinks by sqrt(ratio)."""
    model, splits, bptt = loaded
    assert tuning.lr_row_scale(32, 32) == 1.0 and tuning.lr_row_scale(1, 25) == pytest.approx(0.2)
    one_row = {name: split[:1] for name, split in splits.items() if name != "train"}
    rows = splits["train"].size(0)
    results = tuning.compare_methods(model, {**splits, **one_row}, bptt, methods=("dynamic",), grid="small")
    scale = (1 / rows) ** 0.5
    assert results["dynamic"]["lr_row_scale"] == pytest.approx(scale)
    tried = sorted(r["lr"] for r in results["dynamic"]["grid"])
    assert tried == pytest.approx([0.0] + [lr * scale for lr in tuning.GRIDS["small"]["lr"]])  # 0: no adaptation
    fixed = tuning.compare_methods(model, {**splits, **one_row}, bptt, methods=("dynamic",),
                                   dynamic={"lr": 1e-3, "decay": 0.01}, grid="small")  # fmt: skip
    assert fixed["dynamic"]["settings"]["lr"] == 1e-3  # a setting given is used as given


def test_static_is_the_runs_own_test_perplexity(loaded, smoke_run):
    model, splits, bptt = loaded
    results = tuning.compare_methods(model, splits, bptt, methods=(), grid="small")
    assert results["static"]["test_ppl"] == pytest.approx(read_results(smoke_run)["test_ppl"], rel=1e-5)


def test_the_record_leaves_the_run_untouched_and_follows_its_weights(smoke_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    paths = RunPaths(run)
    before = {p.name: p.read_bytes() for p in paths.files() if p.exists()}
    result = evaluate_run_methods(run, ("static", "dynamic"), dynamic={"lr": 1e-3, "decay": 0.01}, grid="small")
    assert {p.name: p.read_bytes() for p in paths.files() if p.exists()} == before
    assert read_record(run)["methods"]["dynamic"]["test_ppl"] == result["methods"]["dynamic"]["test_ppl"]
    evaluate_run_methods(run, ("static", "cache"), cache={"window": 20, "theta": 0.3, "lambda": 0.1}, grid="small")
    assert set(read_record(run)["methods"]) == {"static", "dynamic", "cache"}  # merged, not replaced
    paths.model.write_bytes(paths.model.read_bytes() + b" ")  # other weights: the record no longer applies
    assert read_record(run) is None


def lmlib(*args):
    return subprocess.run([sys.executable, "-m", "lmlib", *args], capture_output=True, text=True, timeout=600)


def test_cli_evaluate_cache_and_dynamic_json(smoke_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    done = lmlib("evaluate", "--run", str(run), "--cache", "--dynamic", "--grid", "small", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result["methods"]) == {"static", "cache", "dynamic", "both"}
    assert result["methods"]["static"]["cost_ratio"] == 1.0
    assert (run / RECORD_NAME).is_file()
    bad = lmlib("evaluate", "--run", str(run), "--cache", "--cache-lambda", "2")
    assert bad.returncode == 2 and bad.stderr.startswith("error: cache lambda") and "Traceback" not in bad.stderr


def test_a_trained_run_is_helped_by_a_cache_on_repeated_text(smoke_run):
    """The real model (the smoke run) on a test row that repeats itself: the cache lowers the loss."""
    from lmlib.training.runs import load_model

    model, _, _ = load_model(smoke_run, "cpu")
    generator = torch.Generator().manual_seed(2)
    data = torch.randint(model.vocab_size, (2, 60), generator=generator).repeat(1, 4)
    scored = run_pass(model, data, 20, cache=(300, 1.0))
    assert scored.loss(0.3) < scored.loss(0.0) - 0.5
