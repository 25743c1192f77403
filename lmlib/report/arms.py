"""Arms: the runs of one configuration under several seeds, their mean and spread, and whether they finished.

An arm is what a profile's run entry trains once per seed (runs/<profile>/<arm>-s<seed>).
Its perplexity is the mean over its seeds and its *spread* is the range, max − min over
the seeds: with two or three seeds a range is what the data can show (a standard deviation
of two numbers is the range / √2 and suggests a precision it does not have). The analysis
calls a difference between two arms an effect only when it exceeds the spread of both.

A run *finished learning* when its best validation perplexity came before its last
validation (early stopping, or a plateau it did not leave), or when its last epoch improved
validation by less than PLATEAU (levelled off); otherwise it is still improving at the
budget's end and its status gives the slope of its last epoch, so the reader knows how much
the ranking might still move.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from lmlib.config import REPLICATE, differences
from lmlib.errors import LMError
from lmlib.report import numbers
from lmlib.report.compare import RunRecord, best_row, describe_change, describe_main, dropout_text, size_text

SEED_SUFFIX = re.compile(r"-s\d+$")  # runs/<arm>-s<seed>, as lmlib.report.profiles names them
SLOPE_EPOCHS = 2  # a still-improving run's slope: over its last this-many validations (its last epoch)
PLATEAU = 0.001  # a last epoch that lowers validation perplexity by less than 0.1% has levelled off
SPREAD = "range over seeds (max − min)"
ARM_COLUMNS = ["arm", "vs", "change", "seeds", "parameters", "epochs", "best epochs", "status", "train ppl",
               "valid ppl", "test ppl", "Δ test vs vs", "minutes", "tokens/s"]  # fmt: skip


@dataclass(frozen=True)
class Spread:
    """Mean and range of one number over an arm's seeds."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def range(self) -> float:
        return self.high - self.low

    def text(self) -> str:
        """'125.4 (124.6–126.2)', or '125.4' for one seed (lmlib.report.numbers: one decimal everywhere)."""
        return numbers.ppl_range(self.mean, self.low, self.high, self.n)


def spread(values) -> Spread:
    """Mean, min and max of finite values (NaN when there are none)."""
    arr = np.asarray([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    if not len(arr):
        return Spread(math.nan, math.nan, math.nan, 0)
    return Spread(float(arr.mean()), float(arr.min()), float(arr.max()), len(arr))


@dataclass(frozen=True)
class Arm:
    """One configuration trained under one or more seeds."""

    name: str
    records: tuple[RunRecord, ...]
    vs: str = ""  # the arm it modifies

    @property
    def config(self):
        return self.records[0].config

    @property
    def seeds(self) -> list[int]:
        return [r.config.train.seed for r in self.records]

    def result(self, key: str) -> Spread:
        """A results.json number over the seeds (valid_ppl, test_ppl, wall_seconds, ...)."""
        return spread(r.results.get(key) for r in self.records)

    def best_record(self) -> RunRecord:
        """The seed with the lowest validation perplexity."""
        return min(self.records, key=lambda r: float(r.results["valid_ppl"]))


def arm_name(run_name: str) -> str:
    """'cpu-s2' -> 'cpu': the arm a run directory belongs to."""
    return SEED_SUFFIX.sub("", run_name)


def group_arms(records: list[RunRecord], arms: dict[str, list[str]] | None = None, vs=None) -> list[Arm]:
    """The records as arms: as `arms` lists them (arm -> run names), else by name without `-s<seed>`.

    The runs of one arm must differ only in seed and runtime (REPLICATE); otherwise they are
    not repeats of one experiment and grouping them would hide a change.
    """
    vs = vs or {}
    by_name = {r.name: r for r in records}
    if arms:
        groups = {arm: [by_name[n] for n in names if n in by_name] for arm, names in arms.items()}
    else:
        groups = {}
        for r in records:
            groups.setdefault(arm_name(r.name), []).append(r)
    result = []
    for name, members in groups.items():
        if not members:
            continue
        for other in members[1:]:
            changed = differences(members[0].config, other.config, ignore=REPLICATE)
            if changed:
                raise LMError(
                    f"runs {members[0].name!r} and {other.name!r} are grouped as arm {name!r} but differ in "
                    f"{describe_change(changed)}: an arm's runs may differ only in seed; name them apart"
                )
        result.append(Arm(name, tuple(members), vs.get(name, "")))
    return result


class LearningState(StrEnum):
    """How a run ended, as far as learning goes."""

    EARLY_STOP = "early stop"  # stopped by `patience` on validation
    PAST_BEST = "past its best"  # its best validation came before its last
    LEVELLED = "levelled off"  # its last epoch improved validation by less than PLATEAU
    IMPROVING = "still improving"  # the budget ended it mid-descent
    TOO_SHORT = "one validation"  # nothing to compare


FINISHED = (LearningState.EARLY_STOP, LearningState.PAST_BEST, LearningState.LEVELLED)


@dataclass(frozen=True)
class LearningStatus:
    """Did a run reach its best validation before it ended? Else the slope of its last epoch."""

    state: LearningState
    best_epoch: float | None = None
    last_epoch: float | None = None
    slope_per_epoch: float = math.nan  # valid perplexity per epoch over the last SLOPE_EPOCHS validations
    slope_rel: float = math.nan  # the same, relative to the last valid perplexity
    slope_per_minute: float = math.nan

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def improving(self) -> bool:
        return self.state is LearningState.IMPROVING

    def text(self) -> str:
        """'early stop (best epoch 7 of 10)', 'STILL IMPROVING: −1.2 ppl/epoch (−1.3%), −0.4 ppl/min in ...'."""
        if self.state is LearningState.TOO_SHORT:
            return "one validation: too short to tell"
        if self.state is LearningState.LEVELLED:
            slope = numbers.signed(self.slope_per_epoch, 3)
            return f"levelled off ({slope} ppl in its last epoch, less than {PLATEAU:.1%})"
        if self.finished:
            return f"{self.state} (best epoch {self.best_epoch:g} of {self.last_epoch:g})"
        return (
            f"STILL IMPROVING: {numbers.signed(self.slope_per_epoch)} ppl/epoch "
            f"({numbers.percent(self.slope_rel, sign=True)}), {numbers.signed(self.slope_per_minute)} ppl/min "
            "in its last epoch"
        )


def learning_status(record: RunRecord) -> LearningStatus:
    """How `record` ended: early stop, past its best, levelled off, still improving (with its slope), or too short."""
    m = record.metrics
    last = m.iloc[-1] if len(m) else None
    best = best_row(record)
    epochs = {
        "best_epoch": None if best is None else float(best["epoch"]),
        "last_epoch": None if last is None else float(last["epoch"]),
    }
    if last is None or len(m) < 2:
        return LearningStatus(LearningState.TOO_SHORT, **epochs)
    if record.results.get("stopped") == "early_stopping":
        return LearningStatus(LearningState.EARLY_STOP, **epochs)
    if float(best["epoch"]) < float(last["epoch"]):
        return LearningStatus(LearningState.PAST_BEST, **epochs)
    tail = m.iloc[-SLOPE_EPOCHS:]
    per_epoch = _slope(tail["epoch"], tail["valid_ppl"])
    per_minute = _slope(tail["wall_seconds"] / 60, tail["valid_ppl"]) if "wall_seconds" in tail else math.nan
    slopes = {
        "slope_per_epoch": per_epoch,
        "slope_rel": per_epoch / float(last["valid_ppl"]),
        "slope_per_minute": per_minute,
    }
    state = LearningState.LEVELLED if -slopes["slope_rel"] < PLATEAU else LearningState.IMPROVING
    return LearningStatus(state, **epochs, **slopes)


def status_text(record: RunRecord) -> str:
    """learning_status(record).text()."""
    return learning_status(record).text()


def arm_status(arm: Arm) -> str:
    """The arm's learning status: finished when every seed finished, else the mean slope of those still improving."""
    statuses = [learning_status(r) for r in arm.records]
    if all(s.finished for s in statuses):
        return "finished: " + ", ".join(s.text() for s in statuses)
    improving = [s for s in statuses if s.improving]
    if not improving:
        return "too short to tell"
    per_epoch = float(np.mean([s.slope_per_epoch for s in improving]))
    rel = float(np.mean([s.slope_rel for s in improving]))
    return (
        f"STILL IMPROVING ({len(improving)} of {len(statuses)} seeds): {numbers.signed(per_epoch)} ppl/epoch "
        f"({numbers.percent(rel, sign=True)})"
    )


def arm_summary(arms: list[Arm]) -> pd.DataFrame:
    """Numbers per arm for scripts and tests: mean, min, max of valid and test perplexity, seeds, status."""
    rows = []
    for arm in arms:
        valid, test = arm.result("valid_ppl"), arm.result("test_ppl")
        rows.append(
            {
                "arm": arm.name,
                "vs": arm.vs,
                "seeds": len(arm.records),
                "valid_mean": valid.mean,
                "valid_min": valid.low,
                "valid_max": valid.high,
                "test_mean": test.mean,
                "test_min": test.low,
                "test_max": test.high,
                "finished": all(learning_status(r).finished for r in arm.records),
            }
        )
    return pd.DataFrame(rows).set_index("arm") if rows else pd.DataFrame()


def arm_table(arms: list[Arm]) -> pd.DataFrame:
    """One row per arm for people: what it changes against its `vs`, mean (min–max over seeds), status."""
    by_name = {a.name: a for a in arms}
    rows = []
    for arm in arms:
        parent = by_name.get(arm.vs)
        test = arm.result("test_ppl")
        delta = numbers.signed(test.mean - parent.result("test_ppl").mean) if parent else ""
        change = describe_change(differences(parent.config, arm.config, ignore=REPLICATE)) if parent else ""
        best_epochs = ", ".join(f"{learning_status(r).best_epoch:g}" for r in arm.records)
        rows.append(
            {
                "arm": arm.name,
                "vs": arm.vs,
                "change": change or _recipe(arm),
                "seeds": ", ".join(str(s) for s in arm.seeds),
                "parameters": int(arm.records[0].results["parameters"]),
                "epochs": round(arm.result("epochs_run").mean, 1),
                "best epochs": best_epochs,
                "status": arm_status(arm),
                "train ppl": round(spread(_train_at_best(r) for r in arm.records).mean, 1),
                "valid ppl": arm.result("valid_ppl").text(),
                "test ppl": test.text(),
                "Δ test vs vs": delta,
                "minutes": round(arm.result("wall_seconds").mean / 60, 1),
                "tokens/s": int(round(arm.result("train_tokens_per_s").mean or 0)),
            }
        )
    return pd.DataFrame(rows, columns=ARM_COLUMNS).set_index("arm")


def arm_table_html(arms: list[Arm]) -> str:
    """The arms as an HTML table for people (the title page, notebook 03): numbers through lmlib.report.numbers,
    the change as its four main differences with the full list folded behind a <details>."""
    from lmlib.report import prose

    by_name = {a.name: a for a in arms}
    rows = []
    for arm in arms:
        parent = by_name.get(arm.vs)
        diff = differences(parent.config, arm.config, ignore=REPLICATE) if parent else {}
        main, full = describe_main(diff) if diff else (_recipe(arm), "")
        test = arm.result("test_ppl")
        rows.append(
            {
                "arm": arm,
                "main": main,
                "full": full if full != main else "",
                "delta": numbers.signed(test.mean - parent.result("test_ppl").mean) if parent else "",
                "status": arm_status(arm),
                "epochs": numbers.epochs(round(arm.result("epochs_run").mean, 2)),
                "best_epochs": ", ".join(numbers.epochs(learning_status(r).best_epoch) for r in arm.records),
                "train": numbers.ppl(spread(_train_at_best(r) for r in arm.records).mean),
            }
        )
    return prose.render("arms_table.html.j2", rows=rows)


def _recipe(arm: Arm) -> str:
    model, train = arm.config.model, arm.config.train
    head = "adaptive softmax" if model.adaptive_softmax else "tied" if model.tie_weights else "full softmax"
    return (
        f"{size_text(arm.config)}, dropout {dropout_text(arm.config)}, {head}, "
        f"{train.optimizer} {train.lr:g}, batch {train.batch_size}×{train.bptt}"
    )


def _train_at_best(record: RunRecord) -> float:
    row = best_row(record)
    return float(row["train_ppl"]) if row is not None else math.nan


def _slope(x, y) -> float:
    """Least-squares slope of y against x (NaN with fewer than two distinct x)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return math.nan
    return float(np.polyfit(x, y, 1)[0])


def arm_curves(arm: Arm) -> pd.DataFrame:
    """Per validation (row k of every seed's metrics): mean epoch and minutes, mean/min/max valid, mean train."""
    frames = [r.metrics.reset_index(drop=True) for r in arm.records if len(r.metrics)]
    if not frames:
        return pd.DataFrame(columns=["epoch", "minutes", "valid", "valid_min", "valid_max", "train", "seeds"])
    stacked = pd.concat(frames, keys=range(len(frames)), names=["seed", "k"]).reset_index()
    stacked["minutes"] = stacked["wall_seconds"] / 60
    grouped = stacked.groupby("k")
    return pd.DataFrame(
        {
            "epoch": grouped["epoch"].mean(),
            "minutes": grouped["minutes"].mean(),
            "valid": grouped["valid_ppl"].mean(),
            "valid_min": grouped["valid_ppl"].min(),
            "valid_max": grouped["valid_ppl"].max(),
            "train": grouped["train_ppl"].mean(),
            "seeds": grouped["valid_ppl"].count(),
        }
    )


def plot_arms(arms: list[Arm], title: str | None = None):
    """Valid (solid, mean over seeds; band: min–max) and train (dashed) perplexity per epoch and per minute."""
    import matplotlib.pyplot as plt

    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for i, arm in enumerate(arms):
        c, colour = arm_curves(arm), f"C{i % 10}"
        if c.empty:
            continue
        label = f"{arm.name} ({len(arm.records)} seed{'s' if len(arm.records) > 1 else ''})"
        by_epoch.plot(c["epoch"], c["valid"], "-o", ms=3, color=colour, label=f"{arm.name} valid")
        by_epoch.fill_between(c["epoch"], c["valid_min"], c["valid_max"], color=colour, alpha=0.25, lw=0)
        by_epoch.plot(c["epoch"], c["train"], "--", color=colour, alpha=0.6, label=f"{arm.name} train")
        by_time.plot(c["minutes"], c["valid"], "-o", ms=3, color=colour, label=label)
        by_time.fill_between(c["minutes"], c["valid_min"], c["valid_max"], color=colour, alpha=0.25, lw=0)
        best = c["valid"].idxmin()
        by_epoch.plot([c.loc[best, "epoch"]], [c.loc[best, "valid"]], "*", ms=12, color=colour)
        by_time.plot([c.loc[best, "minutes"]], [c.loc[best, "valid"]], "*", ms=12, color=colour)
    by_epoch.set(xlabel="epoch", ylabel="perplexity (log scale)", yscale="log")
    by_epoch.set_title("solid: valid (band: min–max over seeds), dashed: train", fontsize=9)
    by_time.set(xlabel="wall-clock minutes", title="valid perplexity against time; ★ best mean")
    for ax in (by_epoch, by_time):
        ax.grid(True, which="both", alpha=0.3)
    by_time.legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
