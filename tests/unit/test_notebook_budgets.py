"""Notebook 03's section 6 (nbk.budgets_beside): this build's arms beside another build's summary.json."""

from __future__ import annotations

import json

from test_budgets import summary
from test_compare import record

from lmlib.report import notebook as nbk
from lmlib.report.arms import group_arms

# Five epochs per run, two seeds per arm (record: one epoch per validation perplexity).
ARMS = group_arms(
    [
        record(f"{arm}-s{seed}", [300.0, 250.0, 200.0, 180.0, ppl], [400.0, 300.0, 250.0, 220.0, 200.0], ppl + 30,
               seed=seed, **config)
        for arm, ppl, config in (("cpu", 170.0, {}), ("tied", 160.0, {"tie_weights": True}))
        for seed in (1, 2)
    ],
    vs={"tied": "cpu"},
)  # fmt: skip


def write(tmp_path, profile: str, epochs: int) -> str:
    data = summary(profile, {"cpu": ("", 150.0, 151.0), "tied": ("cpu", 140.0, 141.0)},
                   {"cpu": [epochs, epochs], "tied": [epochs, epochs]}, "early_stopping")  # fmt: skip
    path = tmp_path / f"{profile}.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_no_other_build_is_none():
    assert nbk.budgets_beside("", ARMS, "runs/report-default") is None


def test_a_longer_other_build_is_the_converged_side(tmp_path):
    budgets = nbk.budgets_beside(write(tmp_path, "converged", 20), ARMS, "runs/report-default")
    assert (budgets.short_name, budgets.long_name) == ("default", "converged")  # named as the report names it
    assert {k.arm: k.outcome.value for k in budgets.conclusions} == {"tied": "holds"}


def test_a_shorter_other_build_is_the_short_budget_side(tmp_path):
    budgets = nbk.budgets_beside(write(tmp_path, "default", 2), ARMS, "runs/report-converged/")
    assert (budgets.short_name, budgets.long_name) == ("default", "converged")
    across = {a.arm: a for a in budgets.arms}
    assert across["cpu"].long.test.mean == 200.0 and across["cpu"].short.test.mean == 150.5


def test_runs_outside_a_report_are_this_build(tmp_path):
    budgets = nbk.budgets_beside(write(tmp_path, "converged", 20), ARMS, "runs")
    assert budgets.short_name == "this build"
