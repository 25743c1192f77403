"""The train / evaluate / generate commands, as scripts and users call them."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT


def lmlib(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "lmlib", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_dry_run_reports_the_original_models_size_without_training():
    proc = lmlib("train", "--preset", "original", "--corpus", "austen", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    # emb 1024 + 2 x LSTM(1024) + linear, over the Austen vocabulary of 7,784 words
    v = report["vocab_size"]
    assert report["parameters"] == v * 1024 + 2 * (4 * 1024 * 2048 + 8 * 1024) + 1024 * v + v


def test_train_evaluate_generate_json(tmp_path):
    run = tmp_path / "run"
    proc = lmlib("train", "--preset", "smoke", "--run-dir", str(run), "--json", "--set", "epochs=1", "--hid-dim", "24")
    assert proc.returncode == 0, proc.stderr
    trained = json.loads(proc.stdout)
    for key in ("parameters", "best_epoch", "valid_ppl", "test_ppl", "wall_seconds"):
        assert key in trained
    assert json.loads((run / "config.json").read_text())["config"]["model"]["hid_dim"] == 24
    card = (run / "README.md").read_text()  # the finished run's model card, as `export` writes it
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "lmlib" and "python -m lmlib train" in card
    evaluated = json.loads(lmlib("evaluate", "--run-dir", str(run), "--json").stdout)
    assert evaluated["test_ppl"] == pytest.approx(trained["test_ppl"], rel=1e-6)
    assert evaluated["parameters"] == trained["parameters"]
    args = ("--prompt", "She", "--seed", "1", "--max-new-tokens", "7", "--json")
    generated = json.loads(lmlib("generate", "--run-dir", str(run), *args).stdout)
    assert set(generated) == {"text", "continuation", "tokens"} and 1 <= len(generated["tokens"]) <= 7
    assert generated["text"] == "She" + generated["continuation"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--preset", "nope"], "invalid choice"),
        (["train", "--preset", "smoke", "--set", "dropout_input=1.2"], "dropout_input must be a finite number"),
        (["train", "--preset", "smoke", "--set", "colour=blue"], "unknown config field 'colour'"),
        (["train", "--preset", "smoke", "--batch-size", "100000", "--dry-run"], None),
        (["generate", "--run", "/nonexistent/run", "--prompt", "x"], "not a run directory"),
        (["evaluate", "--run", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_user_errors_are_one_clear_line(args, message):
    proc = lmlib(*args)
    if message is None:  # the dry run builds the model only: a large batch is fine there
        assert proc.returncode == 0
        return
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_generate_rejects_out_of_range_values(smoke_run):
    for flag, value, message in [
        ("--temperature", "-1", "temperature"),
        ("--top-p", "0", "top_p"),
        ("--max-new-tokens", "0", "max_new_tokens"),
        ("--max-new-tokens", "100000", "max_new_tokens"),
    ]:
        proc = lmlib("generate", "--run", str(smoke_run), flag, value)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1


def test_help_reads_well():
    proc = lmlib("--help")
    for command in ("prepare", "train", "evaluate", "generate", "serve", "report"):
        assert command in proc.stdout
    assert "--hid-dim" in lmlib("train", "--help").stdout
