"""The committed reports as a reader gets them: no path of the machine that built them."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

REPORTS = sorted((ROOT / "reports").glob("*/report.html"))
MACHINE_PATH = re.compile(r"PosixPath\(|(?<![\w.])/(?:work|home|root|tmp|Users)/")


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: p.parent.name)
def test_a_committed_report_shows_no_machine_path(report):
    found = MACHINE_PATH.search(report.read_text(encoding="utf-8"))
    assert found is None, f"{report.relative_to(ROOT)} shows a machine path: {found.group(0)!r}"


def test_the_default_and_converged_reports_are_committed():
    assert {ROOT / "reports" / name / "report.html" for name in ("default", "converged")} <= set(REPORTS)


def test_every_converged_run_ended_by_early_stopping():
    """reports/converged trains each arm until it stops learning (params/converged.yaml): no run may end on its
    epoch cap or a clock. Read from the build's own summary.json."""
    summary = ROOT / "reports" / "converged" / "summary.json"
    assert summary.is_file(), "reports/converged is committed: python -m lmlib report --profile converged"
    runs = json.loads(summary.read_text(encoding="utf-8"))["runs"]
    assert runs and {r["stopped"] for r in runs} == {"early_stopping"}, {r["run"]: r["stopped"] for r in runs}
