"""Both budgets side by side: the default build's conclusions against the converged build's, from known numbers."""

from __future__ import annotations

import json

import matplotlib
import pytest

from lmlib.errors import LMError
from lmlib.report.budgets import (
    Outcome,
    budgets_table,
    budgets_text,
    compare_budgets,
    from_summary,
    plot_budgets,
    read_summary,
)

matplotlib.use("Agg")


def summary(profile: str, arms: dict[str, tuple], epochs: dict[str, list], stopped: str) -> dict:
    """A summary.json: arm -> (vs, test low, test high); each arm's two seeds ran the given epochs."""
    rows, runs = [], []
    for arm, (vs, low, high) in arms.items():
        rows.append({"arm": arm, "vs": vs, "seeds": 2, "valid_mean": (low + high) / 2 - 30, "valid_min": low - 30,
                     "valid_max": high - 30, "test_mean": (low + high) / 2, "test_min": low, "test_max": high,
                     "finished": stopped == "early_stopping"})  # fmt: skip
        for seed, n in enumerate(epochs[arm], 1):
            curve = [[e, 60.0 * e, 100.0 + 200 / e, 120.0 + 200 / e] for e in range(1, n + 1)]
            runs.append({"run": f"{arm}-s{seed}", "arm": arm, "seed": seed, "epochs_run": float(n),
                         "wall_seconds": 60.0 * n, "stopped": stopped, "curve": curve})  # fmt: skip
    return {"profile": profile, "arms": rows, "runs": runs}


SHORT = summary(
    "default",
    {
        "cpu": ("", 120.0, 121.0),
        "plain-dropout": ("cpu", 152.0, 154.0),
        "transformer": ("cpu", 141.0, 143.0),
        "tied": ("cpu", 119.0, 122.0),
    },  # fmt: skip
    {"cpu": [5, 5], "plain-dropout": [5, 5], "transformer": [2, 2], "tied": [5, 5]},
    "completed",
)
LONG = summary(
    "converged",
    {
        "cpu": ("", 115.0, 116.0),
        "plain-dropout": ("cpu", 110.0, 111.0),
        "transformer": ("cpu", 130.0, 132.0),
        "tied": ("cpu", 110.0, 111.0),
        "no-dropout": ("cpu", 125.0, 127.0),
    },  # fmt: skip
    {"cpu": [14, 16], "plain-dropout": [30, 33], "transformer": [9, 11], "tied": [15, 15], "no-dropout": [4, 5]},
    "early_stopping",
)


@pytest.fixture
def comparison():
    return compare_budgets(from_summary(SHORT), from_summary(LONG))


def test_each_conclusion_is_judged_at_both_budgets_and_says_whether_it_holds(comparison):
    outcomes = {k.arm: k.outcome for k in comparison.conclusions}
    assert outcomes == {
        "plain-dropout": Outcome.FLIPS,  # worse by far at 5 epochs, better by more than both ranges at convergence
        "transformer": Outcome.HOLDS,  # worse at both budgets, beyond the seed ranges
        "tied": Outcome.APPEARS,  # within noise at 5 epochs, an effect at convergence
        "no-dropout": Outcome.NOT_MEASURED,  # not in the default build
    }
    flips = next(k for k in comparison.conclusions if k.arm == "plain-dropout")
    assert flips.short.rel == pytest.approx(153 / 120.5 - 1) and flips.long.rel == pytest.approx(110.5 / 115.5 - 1)


def test_a_conclusion_that_vanishes_at_convergence():
    long = json.loads(json.dumps(LONG))
    row = next(r for r in long["arms"] if r["arm"] == "transformer")
    row.update(test_mean=115.8, test_min=114.0, test_max=117.6)  # within the seed range of cpu now
    comparison = compare_budgets(from_summary(SHORT), from_summary(long))
    assert next(k for k in comparison.conclusions if k.arm == "transformer").outcome is Outcome.VANISHES


def test_each_arm_says_what_longer_training_changed_and_how_its_runs_ended(comparison):
    across = {a.arm: a for a in comparison.arms}
    assert across["cpu"].verdict.effect and across["cpu"].verdict.diff == pytest.approx(-5.0)
    assert across["cpu"].long.early_stopped and not across["cpu"].short.early_stopped
    assert across["no-dropout"].short is None and across["no-dropout"].verdict is None
    text = budgets_text(comparison)
    assert (
        "- **cpu**: test 120.5 (120.0–121.0) after 5 epochs → 115.5 (115.0–116.0) after 14–16 epochs (4.1% lower"
        in text
    )
    assert "every converged run ended by early stopping" in text
    assert "- **plain-dropout** vs **cpu** **flips**: +27.0% at default" in text
    assert "−4.3% at converged" in text
    assert "- **transformer** vs **cpu** **holds**" in text
    assert "**no-dropout**: only in converged: test 126.0 (125.0–127.0) after 4–5 epochs" in text
    table = budgets_table(comparison)
    assert table.loc["plain-dropout", "epochs, converged"] == "30–33" and table.loc["cpu", "epochs, default"] == "5"
    assert table.loc["no-dropout", "test ppl, default"] == "—"


def test_an_arm_computed_in_another_precision_in_the_other_build_is_named(comparison):
    """`precision: mixed` is bf16 on one CPU, fp32 on another: a change across budgets may be the precision's."""
    assert "differ in precision" not in budgets_text(comparison)  # neither summary records a precision
    short, long = json.loads(json.dumps(SHORT)), json.loads(json.dumps(LONG))
    for build, mixed in ((short, "fp32"), (long, "bf16")):
        for run in build["runs"]:
            run["resolved_precision"] = mixed if run["arm"] in ("cpu", "transformer") else "fp32"
    across = compare_budgets(from_summary(short), from_summary(long))
    assert [a.arm for a in across.arms if a.precision_changed] == ["cpu", "transformer"]
    text = budgets_text(across)
    assert (
        "**The builds differ in precision** for **cpu** (fp32 at default, bf16 at converged), **transformer**" in text
    )
    assert "**plain-dropout** (" not in text


def test_the_curves_of_both_builds_share_axes(comparison):
    fig = plot_budgets(comparison)
    by_epoch, by_time = fig.axes
    assert len(by_epoch.lines) == 2 * 4 + 2 * 5  # two seeds per arm per build (no-dropout in one build)
    assert by_epoch.get_shared_y_axes().joined(by_epoch, by_time)
    assert max(max(line.get_xdata()) for line in by_epoch.lines) == 33


def test_a_missing_or_broken_summary_is_one_clear_error(tmp_path):
    with pytest.raises(LMError, match="no report summary at .*: build that report first"):
        read_summary(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(LMError, match="is not a report's summary.json"):
        read_summary(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps(SHORT))
    assert list(read_summary(tmp_path).arms) == ["cpu", "plain-dropout", "transformer", "tied"]
