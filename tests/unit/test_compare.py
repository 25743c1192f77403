"""The run comparison: table, curves and the analysis, on synthetic runs."""

from __future__ import annotations

import json

import matplotlib
import pandas as pd
import pytest

from lmlib.config import RunConfig
from lmlib.errors import LMError
from lmlib.report.analysis import analysis
from lmlib.report.compare import (
    RunRecord,
    changes,
    comparison_table,
    load_records,
    overfitting,
    plot_curves,
)

matplotlib.use("Agg")


def record(name, valid, train, test, **config) -> RunRecord:
    """A finished run whose valid/train perplexity per epoch are the given lists."""
    epochs = range(1, len(valid) + 1)
    metrics = pd.DataFrame(
        {
            "epoch": list(epochs),
            "train_ppl": train,
            "valid_ppl": valid,
            "wall_seconds": [60.0 * e for e in epochs],
            "train_tokens_per_s": [1000.0] * len(valid),
        }
    )
    best = int(metrics.loc[metrics["valid_ppl"].idxmin(), "epoch"])
    results = {
        "parameters": 1_000_000,
        "best_epoch": best,
        "valid_ppl": min(valid),
        "test_ppl": test,
        "wall_seconds": 60.0 * len(valid),
        "train_tokens_per_s": 1000.0,
        "epochs_run": float(len(valid)),
        "stopped": "completed",
    }
    return RunRecord(name, RunConfig().replace(**config), metrics, results)


@pytest.fixture
def runs():
    return [
        record("base", [300, 250, 240, 260, 280], [400, 260, 200, 160, 130], 245.0),  # overfits after epoch 3
        record(
            "awd", [290, 220, 190, 180, 175], [420, 300, 250, 220, 200], 178.0, weight_drop=0.5, locked_dropout=True
        ),
        record("tied", [300, 250, 239, 259, 279], [400, 260, 200, 160, 130], 244.0, tie_weights=True),
    ]


def test_table_has_one_row_per_run_with_the_best_epoch_numbers(runs):
    table = comparison_table(runs)
    assert list(table.index) == ["base", "awd", "tied"]
    assert table.loc["base", "best epoch"] == 3
    assert table.loc["base", "train ppl"] == 200.0  # train perplexity *at* the best epoch
    assert table.loc["base", "gap"] == 40.0
    assert table.loc["awd", "dropout"] == "0.65/0.65/0.65 + locked, wd 0.5"
    assert table.loc["tied", "tied"]
    assert {"parameters", "valid ppl", "test ppl", "minutes", "tokens/s", "size"} <= set(table.columns)


def test_overfitting_is_found_after_the_best_epoch_only_when_valid_turns_up(runs):
    base = overfitting(runs[0])
    assert base["best_epoch"] == 3 and base["last_valid"] == 280 and base["train_fell"]
    assert overfitting(runs[1]) is None  # still improving at the end


def test_changes_ignore_device_and_seed(runs):
    other = RunRecord(
        "other", runs[0].config.replace(device="cpu", seed=7, weight_drop=0.3), runs[0].metrics, runs[0].results
    )
    assert changes(runs[0], other) == {"weight_drop": (0.0, 0.3)}


def test_analysis_names_the_winner_each_change_and_where_overfitting_begins(runs):
    text = analysis(runs)
    assert "**awd** has the lowest validation perplexity (175.0 over 1 seed; test 178.0" in text
    assert "Against the runner-up **tied** (test 244.0): one seed only: the noise is not measured." in text
    assert (
        "**awd** vs **base** (regularisation: locked_dropout False → True, weight_drop 0 → 0.5): "
        "test perplexity 245.0 → 178.0, one seed only: the noise is not measured." in text
    )
    assert "**tied** vs **base** (regularisation: tie_weights False → True): test perplexity 245.0 → 244.0" in text
    assert "**base**: best at epoch 3 (valid 240.0); by epoch 5 valid was 280.0 (16.7% above its best)" in text
    assert (
        "**awd**: STILL IMPROVING: −5.0 ppl/epoch (−2.9%), −5.0 ppl/min in its last epoch" in text
        and "**base**: past its best (best epoch 3 of 5)" in text
    )
    assert "**Early stopping.** 2 of 3 runs passed their best epoch; 4.0 minutes" in text


def test_analysis_of_a_single_run_and_of_none():
    assert "train some" in analysis([])
    assert comparison_table([]).empty
    text = analysis([record("only", [200, 150], [300, 200], 160.0)])
    assert "**only** has the lowest" in text and "runner-up" not in text
    assert "**one**: one validation: too short to tell" in analysis([record("one", [200], [300], 190.0)])


def test_curves_share_axes_and_draw_train_and_valid_per_run(runs):
    fig = plot_curves(runs)
    by_epoch, by_time = fig.axes
    assert by_epoch.get_shared_y_axes().joined(by_epoch, by_time)
    labels = [line.get_label() for line in by_epoch.get_lines()]
    assert {"base valid", "base train", "awd valid", "tied train"} <= set(labels)
    assert [t.get_text() for t in by_time.get_legend().get_texts()] == ["base", "awd", "tied"]


def test_load_records_reads_run_directories_and_names_missing_runs(tmp_path, runs):
    for r in runs[:2]:
        folder = tmp_path / r.name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"config": r.config.to_dict(), "run": {}}))
        r.metrics.to_csv(folder / "metrics.csv", index=False)
        (folder / "results.json").write_text(json.dumps(r.results))
    loaded = load_records(tmp_path)
    assert [r.name for r in loaded] == ["awd", "base"]
    assert loaded[1].config.model.weight_drop == 0.0 and loaded[1].results["best_epoch"] == 3
    assert [r.name for r in load_records(tmp_path, ["base", "awd"])] == ["base", "awd"]
    with pytest.raises(LMError, match="no finished run named tied"):
        load_records(tmp_path, ["base", "tied"])


def test_analysis_measures_each_change_against_the_run_it_modifies(runs):
    chain = analysis(runs, vs={"tied": "awd"})
    assert "against the arm each one changes" in chain
    # tied differs from awd in three fields: awd's two are undone, tie_weights is added
    assert (
        "**tied** vs **awd** (regularisation: locked_dropout True → False, weight_drop 0.5 → 0, "
        "tie_weights False → True): test perplexity 178.0 → 244.0, one seed only"
    ) in chain


def test_a_flat_validation_curve_is_a_run_past_its_best():
    text = analysis([record("flat", [300, 250, 251, 252], [400, 300, 250, 200], 255.0)])
    assert "**flat**: past its best (best epoch 2 of 4)" in text
    assert "**flat**: best at epoch 2 (valid 250.0); by epoch 4 valid was 252.0 (0.8% above its best)" in text
