"""The written analysis of a comparison (Markdown), every number computed from the runs.

It follows the original study's report: which arm wins and by how much, what each change
did against the arm it modifies (`vs`), whether every run finished learning, where
overfitting begins, and what that recommends. Runs are grouped into arms (one
configuration, several seeds; lmlib.report.arms), and a difference between two arms is
called an effect only when it is larger than the seed-to-seed spread (range) of *both*;
otherwise it is "within noise". With one seed the noise is unmeasured and no difference is
called an effect. The numbers and verdicts are computed here, as typed records; the
sentences are templates/analysis.md.j2.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmlib.config import REPLICATE, differences
from lmlib.report import numbers, prose
from lmlib.report.arms import SPREAD, Arm, Spread, group_arms, learning_status
from lmlib.report.compare import RunRecord, comparison_table, describe_change, kind_of_change, overfitting


@dataclass(frozen=True)
class Verdict:
    """Is `after` − `before` an effect? Only when |difference| exceeds the seed spread (range) of both."""

    before: Spread
    after: Spread

    @property
    def diff(self) -> float:
        return self.after.mean - self.before.mean

    @property
    def rel(self) -> float:
        return self.after.mean / self.before.mean - 1

    @property
    def measured(self) -> bool:
        """Both sides have two or more seeds, so their noise is known."""
        return min(self.before.n, self.after.n) >= 2

    @property
    def noise(self) -> float | None:
        return max(self.before.range, self.after.range) if self.measured else None

    @property
    def effect(self) -> bool:
        return self.measured and abs(self.diff) > self.noise

    @property
    def direction(self) -> int:
        """-1 an effect that lowers perplexity (better), +1 one that raises it, 0 within noise or unmeasured."""
        return (1 if self.diff > 0 else -1) if self.effect else 0

    def text(self) -> str:
        if not self.measured:
            return "one seed only: the noise is not measured"
        if self.effect:
            better = "lower (better)" if self.diff < 0 else "higher (worse)"
            return (
                f"{numbers.percent(abs(self.rel))} {better}, larger than the seed spread of both "
                f"({numbers.ppl(self.before.range)} and {numbers.ppl(self.after.range)}): an effect"
            )
        return f"within noise (|Δ| {numbers.ppl(abs(self.diff))} ≤ seed spread {numbers.ppl(self.noise)})"


def verdict(before: Spread, after: Spread) -> Verdict:
    """The verdict on after − before (lmlib.report.arms.spread gives the two Spreads)."""
    return Verdict(before, after)


@dataclass(frozen=True)
class Effect:
    """One arm against the arm it modifies: what changed, and the verdict on test perplexity."""

    arm: Arm
    parent: Arm
    diff: dict  # field -> (parent's value, arm's value)

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.parent.result("test_ppl"), self.arm.result("test_ppl"))

    @property
    def kinds(self) -> str:
        return " + ".join(sorted({kind_of_change(k) for k in self.diff})) or "same config"

    @property
    def change(self) -> str:
        return describe_change(self.diff) if len(self.diff) <= 8 else f"{len(self.diff)} fields (a whole recipe)"


def analysis(records: list[RunRecord], baseline: str | None = None, vs: dict[str, str] | None = None, arms=None) -> str:
    """The whole analysis. Each arm's change is measured against `vs[arm]` when given, else the baseline (first arm)."""
    if not records:
        return "No finished runs to compare yet: train some with notebook 02."
    groups = group_arms(records, arms, vs)
    effects = measured_effects(groups, baseline, vs or {})
    ranked = sorted(groups, key=lambda a: a.result("valid_ppl").mean)
    statuses = {r.name: learning_status(r) for r in records}
    gaps = comparison_table(records)["gap"]
    over = [Overfit(r.name, found, float(gaps[r.name])) for r in records if (found := overfitting(r)) is not None]
    real = sorted((e for e in effects if e.verdict.effect), key=lambda e: e.verdict.rel)
    return prose.render(
        "analysis.md.j2",
        spread=SPREAD,
        ranked=ranked,
        runner_up=_runner_up(ranked),
        effects=effects,
        baseline=None if vs else _base(groups, baseline).name,
        statuses=statuses,
        improving=[n for n, s in statuses.items() if s.improving],
        overfit=over,
        runs=len(records),
        wasted_minutes=sum(o.found["minutes_after_best"] for o in over),
        worst=max(over, key=lambda o: o.worsening, default=None),
        top_gain=real[0] if real and real[0].verdict.rel < 0 else None,
        no_effects=len(groups) > 1 and not real,
        single_seed=min(len(a.records) for a in groups) < 2,
    )


@dataclass(frozen=True)
class Overfit:
    """A run that passed its best epoch: lmlib.report.compare.overfitting's numbers and its valid − train gap."""

    name: str
    found: dict  # best_epoch, best_valid, last_epoch, last_valid, train_fell, minutes_after_best
    gap: float  # valid − train perplexity at the best epoch

    @property
    def worsening(self) -> float:
        """How much worse its last validation was than its best, relatively."""
        return self.found["last_valid"] / self.found["best_valid"] - 1


def _runner_up(ranked: list[Arm]) -> Verdict | None:
    return verdict(ranked[1].result("test_ppl"), ranked[0].result("test_ppl")) if len(ranked) > 1 else None


def measured_effects(arms: list[Arm], baseline: str | None, vs: dict[str, str]) -> list[Effect]:
    """For each arm with a parent (its `vs`, else the baseline): the change and the verdict on test perplexity."""
    base, by_name = _base(arms, baseline), {a.name: a for a in arms}
    effects = []
    for arm in arms:
        parent = by_name.get(vs.get(arm.name, ""), base)
        if arm is base or parent is arm:
            continue
        effects.append(Effect(arm, parent, differences(parent.config, arm.config, ignore=REPLICATE)))
    return effects


def _base(arms: list[Arm], baseline: str | None) -> Arm:
    return next((a for a in arms if a.name == baseline), arms[0])
