"""Honest tuning can answer "no adaptation" (issue 20).

`python -m lmlib evaluate --run-dir R --dynamic` on a smoke run chose lr 1e-3 / decay 3e-3 with
validation perplexity 709.4 against static's 635.6, and test came out 32.8% worse than doing
nothing. Doing nothing (the cache's lambda 0, dynamic evaluation's zero step) is now always a
candidate: no method is reported with a validation perplexity above static's, and when no
setting beats static the CLI, test_time.json and the report's text say that static was kept.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from lmlib.evaluation import tuning
from lmlib.evaluation.records import RECORD_NAME
from lmlib.report.testtime import method_table, method_text

# Settings that can only hurt a model trained for one epoch: a cache that outweighs the model,
# and steps large enough to wreck the weights.
HARMFUL = {"window": (50,), "theta": (0.3,), "lambda": (0.9, 0.95), "lr": (3.0, 10.0), "decay": (0.0,)}


@pytest.fixture
def run(smoke_run, tmp_path):
    return shutil.copytree(smoke_run, tmp_path / "run")  # evaluate writes test_time.json into the run


def test_evaluate_never_reports_a_tuned_method_worse_than_static_on_validation(run):
    """The issue's probe, on the real CLI with its default (full) grid."""
    done = subprocess.run([sys.executable, "-m", "lmlib", "evaluate", "--run-dir", str(run), "--cache", "--dynamic",
                           "--json"], capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr
    methods = json.loads(done.stdout)["methods"]
    static = methods["static"]
    chosen = {name: methods[name]["valid_ppl"] for name in ("cache", "dynamic", "both")}
    assert all(valid <= static["valid_ppl"] for valid in chosen.values()), (chosen, static["valid_ppl"])
    for name in ("cache", "dynamic", "both"):
        entry = methods[name]
        if not entry["adapted"]:
            assert entry["test_ppl"] == static["test_ppl"] and entry["best_adapted_valid_ppl"] >= static["valid_ppl"]
    assert any(r["lr"] == 0.0 for r in methods["dynamic"]["grid"])  # the zero step was a candidate
    assert any(r["lambda"] == 0.0 for r in methods["cache"]["grid"])


def test_only_harmful_settings_keep_static_and_every_output_says_so(run, monkeypatch, capsys):
    from lmlib.cli import main

    monkeypatch.setitem(tuning.GRIDS, "small", HARMFUL)
    assert main(["evaluate", "--run-dir", str(run), "--cache", "--dynamic", "--grid", "small"]) == 0
    out = capsys.readouterr().out
    for name in ("cache", "dynamic", "both"):
        assert f"{name}: no setting beat static on validation" in out  # the log line, with both numbers
    rows = [line for line in out.splitlines() if line.startswith(("cache ", "dynamic ", "both "))]
    assert len(rows) == 3 and all("+0.0%" in r and "none (no setting beat static on valid" in r for r in rows)

    record = json.loads((run / RECORD_NAME).read_text())["methods"]
    static = record["static"]
    for name in ("cache", "dynamic", "both"):
        entry = record[name]
        assert entry["adapted"] is False and entry["test_ppl"] == static["test_ppl"]
        assert entry["valid_ppl"] == static["valid_ppl"] < entry["best_adapted_valid_ppl"]
    assert record["dynamic"]["settings"]["lr"] == 0.0 and record["cache"]["settings"]["lambda"] == 0.0

    table = method_table({"run": record})
    assert table.loc[("run", "+dynamic"), "settings (tuned on valid)"].startswith("none: no setting beat static")
    text = method_text({"run": record})
    assert text.count("no setting beat static evaluation on validation") == 3 and "no adaptation" in text


def test_a_setting_that_helps_on_validation_is_still_chosen(run):
    """The zero step is a candidate, not a default: a cache on text that repeats itself wins on valid."""

    from lmlib.evaluation.records import load_splits

    model, splits, config = load_splits(run, "cpu", need_train=False)
    repeated = {name: splits[name][:, :60].repeat(1, 4).contiguous() for name in ("valid", "test")}
    grid = {"window": (300,), "theta": (1.0,), "lambda": (0.3,), "lr": (1e-3,), "decay": (0.01,)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(tuning.GRIDS, "repeat", grid)
        results = tuning.compare_methods(model, {**splits, **repeated}, config.train.bptt, ("cache",), grid="repeat")
    assert results["cache"]["adapted"] and results["cache"]["settings"]["lambda"] == 0.3
    assert results["cache"]["valid_ppl"] < results["static"]["valid_ppl"]
