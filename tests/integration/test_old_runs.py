"""Runs written by lmlib 0.1 (tests/fixtures/run-v0.1) still load, evaluate, generate and continue."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT

from lmlib.cli import main
from lmlib.generate import Generator
from lmlib.training.evaluate import evaluate_run
from lmlib.training.loop import train
from lmlib.training.runs import read_config, read_metrics, read_results

OLD = ROOT / "tests" / "fixtures" / "run-v0.1" / "run"


@pytest.fixture
def old_run(tmp_path, monkeypatch):
    """A copy of the 0.1 run, with the corpus at the relative path its config.json names."""
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "tests" / "fixtures" / "run-v0.1"
    corpus.mkdir(parents=True)
    shutil.copy(OLD.parent / "corpus.txt", corpus / "corpus.txt")
    return shutil.copytree(OLD, tmp_path / "run")


def test_an_old_run_reads_under_todays_names(old_run):
    config, run = read_config(old_run)
    assert config.model.hid_dim == 8 and config.data.subset_tokens is None and config.train.clip == 0.25
    assert run["resolved_device"] == "cpu" and run["protocol"] == "original"
    assert list(read_metrics(old_run).columns[-3:]) == ["train_seconds", "train_tokens_per_s", "wall_seconds"]
    results = read_results(old_run)
    assert {"wall_seconds", "train_tokens_per_s", "resolved_device", "resolved_precision"} <= set(results)


def test_an_old_run_evaluates_to_the_numbers_it_recorded(old_run):
    recorded = json.loads((old_run / "results.json").read_text())
    measured = evaluate_run(old_run, device="cpu")
    assert measured["valid_ppl"] == pytest.approx(recorded["valid_ppl"], rel=1e-6)
    assert measured["test_ppl"] == pytest.approx(recorded["test_ppl"], rel=1e-6)


def test_an_old_run_generates_from_the_library_and_the_cli(old_run, capsys):
    text = Generator.from_pretrained(old_run).generate("it is a truth", 8, seed=3).text  # as the CLI loads it
    assert text.startswith("it is a truth ")  # the prompt as typed, then the continuation
    assert main(["generate", "--run", str(old_run), "--prompt", "it is a truth", "--seed", "3",
                 "--max-new-tokens", "8"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == text


def test_an_old_run_continues_with_more_epochs(old_run):
    config, _ = read_config(old_run)
    results = train(config.replace(epochs=3), old_run, progress=False)
    assert list(read_metrics(old_run)["epoch"]) == [1, 2, 3] and results["epochs_run"] == 3.0
