"""Two builds of the same arms side by side: the default report's budget against training to convergence.

The default report trains every arm for a short, fixed budget; the converged profile trains
the same arms until early stopping. This compares them arm by arm and conclusion by
conclusion, judged against the seed ranges exactly as the analysis does (lmlib.report.analysis.
Verdict: a difference is an effect only beyond the seed range of both sides):

- per arm: test perplexity at each budget (mean and range over seeds), the epochs each needed,
  whether every run finished learning, and whether the longer training changed the arm's
  result beyond its seed ranges;
- per conclusion (an arm against the arm it modifies, `vs`): the verdict at each budget, and
  whether it **holds** (an effect in the same direction at both), **flips** (effects in
  opposite directions), **vanishes** (an effect at the short budget, within noise at
  convergence), **appears** (the reverse), or stays within noise.

The other build comes from its summary.json (lmlib.report.title.summary writes each run's
curve there), so a converged report can be set beside the committed default one on any machine.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from lmlib.errors import LMError
from lmlib.report import numbers, prose
from lmlib.report.analysis import Verdict
from lmlib.report.arms import Arm, Spread, learning_status, spread
from lmlib.report.title import curve


@dataclass(frozen=True)
class ArmResult:
    """One arm of one build: its numbers over seeds, how its runs ended, their curves."""

    arm: str
    vs: str
    test: Spread
    valid: Spread
    epochs: Spread  # epochs each seed ran
    seconds: Spread  # training wall seconds of each seed
    finished: bool  # every seed finished learning (early stop, past its best, levelled off)
    stopped: tuple[str, ...]  # how each seed's run ended: early_stopping, completed, time_budget
    curves: tuple[tuple[tuple[float, ...], ...], ...] = ()  # per seed: (epoch, wall_seconds, train_ppl, valid_ppl)
    precision: str = ""  # what its runs computed in (fp32, bf16, ...; "bf16/fp32" if they differ; "" not recorded)

    @property
    def early_stopped(self) -> bool:
        return all(s == "early_stopping" for s in self.stopped)

    @property
    def epochs_text(self) -> str:
        """'5', or '14–16' when the seeds ran different numbers of epochs."""
        low, high = self.epochs.low, self.epochs.high
        return numbers.epochs(low) if low == high else f"{numbers.epochs(low)}–{numbers.epochs(high)}"


@dataclass(frozen=True)
class BuildResults:
    """The arms of one report build, by name, in the build's order."""

    name: str
    arms: dict[str, ArmResult] = field(default_factory=dict)


def from_summary(summary: dict, name: str | None = None) -> BuildResults:
    """A build as its summary.json records it."""
    runs: dict[str, list[dict]] = {}
    for run in summary.get("runs", []):
        runs.setdefault(run["arm"], []).append(run)
    arms = {}
    for row in summary.get("arms", []):
        mine = runs.get(row["arm"], [])
        n = int(row.get("seeds", len(mine)))
        arms[row["arm"]] = ArmResult(
            arm=row["arm"],
            vs=row.get("vs") or "",
            test=Spread(row["test_mean"], row["test_min"], row["test_max"], n),
            valid=Spread(row["valid_mean"], row["valid_min"], row["valid_max"], n),
            epochs=spread(r.get("epochs_run") for r in mine),
            seconds=spread(r.get("wall_seconds") for r in mine),
            finished=bool(row.get("finished")),
            stopped=tuple(str(r.get("stopped")) for r in mine),
            curves=tuple(tuple(tuple(point) for point in r.get("curve") or ()) for r in mine),
            precision=_precision(r.get("resolved_precision") for r in mine),
        )
    return BuildResults(name or str(summary.get("profile", "")), arms)


def read_summary(path: str | os.PathLike, name: str | None = None) -> BuildResults:
    """from_summary of the summary.json at `path` (a report folder or the file itself)."""
    path = Path(path)
    path = path / "summary.json" if path.is_dir() else path
    try:
        return from_summary(json.loads(path.read_text(encoding="utf-8")), name)
    except FileNotFoundError:
        raise LMError(f"no report summary at {path}: build that report first (python -m lmlib report)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise LMError(f"{path} is not a report's summary.json ({type(err).__name__}: {err})") from None


def from_arms(name: str, arms: list[Arm]) -> BuildResults:
    """A build from its arms' run records (the build in progress, whose summary.json is not written yet)."""
    results = {}
    for arm in arms:
        results[arm.name] = ArmResult(
            arm=arm.name,
            vs=arm.vs,
            test=arm.result("test_ppl"),
            valid=arm.result("valid_ppl"),
            epochs=arm.result("epochs_run"),
            seconds=arm.result("wall_seconds"),
            finished=all(learning_status(r).finished for r in arm.records),
            stopped=tuple(str(r.results.get("stopped")) for r in arm.records),
            curves=tuple(tuple(tuple(point) for point in curve(r)) for r in arm.records),
            precision=_precision(r.results.get("resolved_precision") for r in arm.records),
        )
    return BuildResults(name, results)


def _precision(values) -> str:
    """The precisions an arm's runs computed in, as the title page names them ("" where none is recorded)."""
    return "/".join(sorted({str(v) for v in values if v}))


class Outcome(StrEnum):
    """What training to convergence did to a conclusion drawn at the short budget."""

    HOLDS = "holds"  # an effect in the same direction at both budgets
    FLIPS = "flips"  # effects in opposite directions
    VANISHES = "vanishes"  # an effect at the short budget, within noise at convergence
    APPEARS = "appears"  # within noise at the short budget, an effect at convergence
    NOISE = "within noise at both"
    NOT_MEASURED = "not measured"  # an arm with one seed, or missing from a build


@dataclass(frozen=True)
class ArmAcross:
    """One arm at both budgets."""

    arm: str
    short: ArmResult | None
    long: ArmResult | None

    @property
    def verdict(self) -> Verdict | None:
        """Did training to convergence change the arm's test perplexity beyond its seed ranges?"""
        return Verdict(self.short.test, self.long.test) if self.short and self.long else None

    @property
    def precision_changed(self) -> bool:
        """The two builds computed this arm in different precisions (`mixed` is bf16 only where the CPU has
        native bf16): its change mixes the budget's effect with the precision's."""
        if not (self.short and self.long and self.short.precision and self.long.precision):
            return False
        return self.short.precision != self.long.precision


@dataclass(frozen=True)
class Conclusion:
    """An arm against the arm it modifies, at each budget."""

    arm: str
    vs: str
    short: Verdict | None
    long: Verdict | None

    @property
    def outcome(self) -> Outcome:
        if self.short is None or self.long is None or not (self.short.measured and self.long.measured):
            return Outcome.NOT_MEASURED
        before, after = self.short.direction, self.long.direction
        if before and after:
            return Outcome.HOLDS if before == after else Outcome.FLIPS
        if before:
            return Outcome.VANISHES
        return Outcome.APPEARS if after else Outcome.NOISE


@dataclass(frozen=True)
class BudgetComparison:
    short_name: str
    long_name: str
    arms: list[ArmAcross]
    conclusions: list[Conclusion]


def compare_budgets(short: BuildResults, long: BuildResults) -> BudgetComparison:
    """Every arm of either build at both budgets, and each `vs` conclusion of the longer build at both."""
    names = list(long.arms) + [a for a in short.arms if a not in long.arms]
    arms = [ArmAcross(a, short.arms.get(a), long.arms.get(a)) for a in names]
    conclusions = []
    for arm in names:
        vs = (long.arms.get(arm) or short.arms[arm]).vs
        if not vs:
            continue
        conclusions.append(Conclusion(arm, vs, _verdict(short, vs, arm), _verdict(long, vs, arm)))
    return BudgetComparison(short.name, long.name, arms, conclusions)


def _verdict(build: BuildResults, before: str, after: str) -> Verdict | None:
    if before not in build.arms or after not in build.arms:
        return None
    return Verdict(build.arms[before].test, build.arms[after].test)


def budgets_text(comparison: BudgetComparison) -> str:
    """The side-by-side in words (templates/budgets.md.j2)."""
    return prose.render("budgets.md.j2", c=comparison, Outcome=Outcome)


def budgets_table(comparison: BudgetComparison):
    """One row per arm: test perplexity, epochs and minutes at each budget, and whether the longer run changed it."""
    import pandas as pd

    rows = []
    for a in comparison.arms:
        row = {"arm": a.arm}
        for label, result in ((comparison.short_name, a.short), (comparison.long_name, a.long)):
            row[f"test ppl, {label}"] = result.test.text() if result else "—"
            row[f"epochs, {label}"] = result.epochs_text if result else "—"
            row[f"minutes, {label}"] = numbers.minutes(result.seconds.mean) if result else "—"
            row[f"finished learning, {label}"] = ("yes" if result.finished else "no") if result else "—"
        row["change"] = a.verdict.text() if a.verdict else "in one build only"
        rows.append(row)
    return pd.DataFrame(rows).set_index("arm")


def plot_budgets(comparison: BudgetComparison):
    """Validation perplexity of every run of both builds on shared axes, per epoch and per minute: one colour per
    arm, solid the longer build, dashed the shorter, one line per seed (seeds stop at different epochs)."""
    import matplotlib.pyplot as plt

    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for i, a in enumerate(comparison.arms):
        colour = f"C{i % 10}"
        for result, style, build in ((a.long, "-", comparison.long_name), (a.short, "--", comparison.short_name)):
            for k, points in enumerate(result.curves if result else ()):
                if not points:
                    continue
                epoch, seconds, _, valid = zip(*points)
                label = f"{a.arm}, {build}" if k == 0 else None
                by_epoch.plot(epoch, valid, style, color=colour, alpha=0.8, lw=1.2, label=label)
                by_time.plot([s / 60 for s in seconds], valid, style, color=colour, alpha=0.8, lw=1.2, label=label)
    by_epoch.set(xlabel="epoch", ylabel="valid perplexity (log scale)", yscale="log")
    by_epoch.set_title(f"solid: {comparison.long_name}, dashed: {comparison.short_name}; one line per seed", fontsize=9)
    by_time.set(xlabel="wall-clock minutes", title="against time")
    for ax in (by_epoch, by_time):
        ax.grid(True, which="both", alpha=0.3)
    by_time.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
