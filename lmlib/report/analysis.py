"""The written analysis of a comparison (Markdown), every number computed from the runs.

It follows the original study's report: which arm wins and by how much, what each change
did against the arm it modifies (`vs`), whether every run finished learning, where
overfitting begins, and what that recommends. Runs are grouped into arms (one
configuration, several seeds; lmlib.report.arms), and a difference between two arms is
called an effect only when it is larger than the seed-to-seed spread (range) of *both*;
otherwise it is "within noise". With one seed the noise is unmeasured and no difference is
called an effect. Each section is one function returning its lines.
"""

from __future__ import annotations

from lmlib.config import REPLICATE, differences
from lmlib.report.arms import SPREAD, Arm, Spread, group_arms, learning_status, status_text
from lmlib.report.compare import RunRecord, comparison_table, describe_change, kind_of_change, overfitting
from lmlib.report.html import escape_markdown


def analysis(records: list[RunRecord], baseline: str | None = None, vs: dict[str, str] | None = None, arms=None) -> str:
    """The whole analysis. Each arm's change is measured against `vs[arm]` when given, else the baseline (first arm)."""
    if not records:
        return "No finished runs to compare yet: train some with notebook 02."
    groups = group_arms(records, arms, vs)
    effects = measured_effects(groups, baseline, vs or {})
    lines = winner_section(groups)
    against = "the arm each one changes" if vs else f"the baseline {_bold(_base(groups, baseline).name)}"
    lines += effects_section(effects, against)
    lines += learning_section(groups)
    lines += overfitting_section(records)
    lines += ["", "### Recommendations", ""] + [f"- {s}" for s in recommendations(groups, effects)]
    return "\n".join(lines)


def verdict(before: Spread, after: Spread) -> dict:
    """Is after − before an effect? Only when |difference| exceeds the seed spread (range) of both arms."""
    diff = after.mean - before.mean
    if min(before.n, after.n) < 2:
        return {"effect": False, "diff": diff, "noise": None, "text": "one seed only: the noise is not measured"}
    noise = max(before.range, after.range)
    if abs(diff) > noise:
        better = "lower (better)" if diff < 0 else "higher (worse)"
        return {"effect": True, "diff": diff, "noise": noise,
                "text": f"{abs(diff) / before.mean:.1%} {better}, larger than the seed spread of both "
                        f"({_num(before.range)} and {_num(after.range)}): an effect"}  # fmt: skip
    return {"effect": False, "diff": diff, "noise": noise,
            "text": f"within noise (|Δ| {_num(abs(diff))} ≤ seed spread {_num(noise)})"}  # fmt: skip


def _num(value: float) -> str:
    """A perplexity difference: one decimal, or three when one would print a non-zero value as 0.0."""
    return f"{value:.3f}" if 0 < value < 0.05 else f"{value:.1f}"


def measured_effects(arms: list[Arm], baseline: str | None, vs: dict[str, str]) -> list[dict]:
    """For each arm with a parent (its `vs`, else the baseline): the change, test perplexity before/after, verdict."""
    base, by_name = _base(arms, baseline), {a.name: a for a in arms}
    effects = []
    for arm in arms:
        parent = by_name.get(vs.get(arm.name, ""), base)
        if arm is base or parent is arm:
            continue
        before, after = parent.result("test_ppl"), arm.result("test_ppl")
        effects.append({"name": arm.name, "parent": parent.name, "before": before, "after": after,
                        "diff": differences(parent.config, arm.config, ignore=REPLICATE),
                        "rel": after.mean / before.mean - 1, "verdict": verdict(before, after)})  # fmt: skip
    return effects


def winner_section(arms: list[Arm]) -> list[str]:
    ranked = sorted(arms, key=lambda a: a.result("valid_ppl").mean)
    win = ranked[0]
    seeds = f"{len(win.records)} seed{'s' if len(win.records) > 1 else ''}"
    lines = [
        "### Which arm wins",
        "",
        f"Perplexities are the mean over seeds, with the {SPREAD} in brackets.",
        "",
        f"- {_bold(win.name)} has the lowest validation perplexity ({win.result('valid_ppl').text()} over {seeds}; "
        f"test {win.result('test_ppl').text()}; selected on validation, reported on test).",
    ]
    if len(ranked) > 1:
        second = ranked[1]
        v = verdict(second.result("test_ppl"), win.result("test_ppl"))
        lines.append(
            f"- Against the runner-up {_bold(second.name)} (test {second.result('test_ppl').text()}): {v['text']}."
        )
    return lines


def effects_section(effects: list[dict], against: str) -> list[str]:
    lines = ["", f"### What each change did (against {against})", ""]
    for e in effects:
        kinds = " + ".join(sorted({kind_of_change(k) for k in e["diff"]})) or "same config"
        change = describe_change(e["diff"]) if len(e["diff"]) <= 8 else f"{len(e['diff'])} fields (a whole recipe)"
        lines.append(
            f"- {_bold(e['name'])} vs {_bold(e['parent'])} ({kinds}: {change}): test perplexity "
            f"{e['before'].text()} → {e['after'].text()}, {e['verdict']['text']}."
        )
    real = [e for e in effects if e["verdict"]["effect"]]
    noise = [e["name"] for e in effects if not e["verdict"]["effect"]]
    if real:
        lines.append("- Effects larger than the seed noise: " + ", ".join(_bold(e["name"]) for e in real) + ".")
    if noise:
        lines.append("- Within noise (or not measured) at this budget: " + ", ".join(map(_bold, noise)) + ".")
    return lines


def learning_section(arms: list[Arm]) -> list[str]:
    lines = ["", "### Did every run finish learning?", ""]
    for arm in arms:
        for r in arm.records:
            lines.append(f"- {_bold(r.name)}: {status_text(r)}.")
    improving = [r.name for a in arms for r in a.records if learning_status(r)["state"] == "still improving"]
    if improving:
        lines.append(
            f"- {len(improving)} run(s) were still improving when they ended ({', '.join(improving)}): their "
            "perplexities are not what the configuration can reach, only what it reached in this budget."
        )
    else:
        lines.append("- Every run reached its best validation perplexity before it ended: the ranking compares "
                     "what each configuration can reach, not how fast it starts.")  # fmt: skip
    return lines


def overfitting_section(records: list[RunRecord]) -> list[str]:
    table = comparison_table(records)
    over = [r for r in records if overfitting(r) is not None]
    if not over:
        return []
    return ["", "### Where overfitting begins", ""] + [f"- {overfit_sentence(r, table.loc[r.name])}" for r in over]


def overfit_sentence(record: RunRecord, row) -> str:
    """Where this run started to overfit, in one sentence (for a run past its best epoch)."""
    found = overfitting(record)
    rising = "while training perplexity kept falling" if found["train_fell"] else "and training perplexity stalled too"
    return (
        f"{_bold(record.name)}: best at epoch {found['best_epoch']} (valid {found['best_valid']:.1f}); by epoch "
        f"{found['last_epoch']:.3g} valid was {found['last_valid']:.1f} "
        f"({found['last_valid'] / found['best_valid'] - 1:.1%} above its best) {rising}. "
        f"Gap at the best epoch (valid − train): {row['gap']:+.1f}."
    )


def recommendations(arms: list[Arm], effects: list[dict]) -> list[str]:
    records = [r for a in arms for r in a.records]
    out = [_early_stopping_advice(records)]
    real = sorted((e for e in effects if e["verdict"]["effect"]), key=lambda e: e["rel"])
    if real and real[0]["rel"] < 0:
        top = real[0]
        out.append(
            f"**What mattered.** The largest gain beyond the seed noise came from {_bold(top['name'])} against "
            f"{_bold(top['parent'])} ({-top['rel']:.1%} lower test perplexity)."
        )
    if len(arms) > 1 and not real:
        out.append(
            "**Hyperparameter tuning.** No change moved test perplexity by more than the seed-to-seed spread: "
            "more seeds or longer runs are needed before choosing between these arms."
        )
    if min(len(a.records) for a in arms) < 2:
        out.append("**Seeds.** Some arms have a single seed: give every arm two or more to measure the noise.")
    return out


def _early_stopping_advice(records: list[RunRecord]) -> str:
    over = [(r.name, o) for r in records if (o := overfitting(r)) is not None]
    if not over:
        return (
            "**Early stopping.** No run passed its best epoch: the budget, not overfitting, ended "
            "training. Give the best arm more epochs before tuning anything else."
        )
    wasted = sum(o["minutes_after_best"] for _, o in over)
    name, worst = max(over, key=lambda t: t[1]["last_valid"] / t[1]["best_valid"])
    return (
        f"**Early stopping.** {len(over)} of {len(records)} runs passed their best epoch; "
        f"{wasted:.1f} minutes were spent after it. Keeping the best-validation weights matters: taking "
        f"the last epoch of {_bold(name)} instead would make its validation perplexity "
        f"{worst['last_valid'] / worst['best_valid'] - 1:.1%} worse. `patience` stops such runs early."
    )


def _bold(name: str) -> str:
    """A run's or arm's name in bold, escaped: names are folder names, which may hold any character."""
    return f"**{escape_markdown(name)}**"


def _base(arms: list[Arm], baseline: str | None) -> Arm:
    return next((a for a in arms if a.name == baseline), arms[0])
