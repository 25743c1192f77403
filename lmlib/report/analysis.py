"""The written analysis of a comparison (Markdown), every number computed from the runs.

It follows the original study's report: which run wins and by how much, what each change
did against the run it modifies (`vs`), where overfitting begins, and what that recommends
(early stopping, hyperparameter tuning, regularisation). Each section is one function
returning its lines, so a change of wording touches one short function.
"""

from __future__ import annotations

import pandas as pd

from lmlib.report.compare import RunRecord, changes, comparison_table, describe_change, kind_of_change, overfitting

# Below this relative difference two perplexities are called a tie (seed noise on short runs).
TIE = 0.01
STOP_REASONS = {
    "time_budget": "the time budget ran out",
    "completed": "it had run all its epochs",
    "early_stopping": "early stopping ended it",
}


def analysis(records: list[RunRecord], baseline: str | None = None, vs: dict[str, str] | None = None) -> str:
    """The whole analysis. Each run's change is measured against `vs[run]` when given, else the baseline (first run)."""
    if not records:
        return "No finished runs to compare yet: train some with notebook 02."
    table = comparison_table(records)
    effects = measured_effects(records, table, baseline, vs or {})
    lines = winner_section(table)
    lines += effects_section(effects, against=_against(records, baseline, vs))
    lines += overfitting_section(records, table)
    lines += ["", "### Recommendations", ""] + [f"- {s}" for s in recommendations(records, table, effects)]
    return "\n".join(lines)


def measured_effects(records, table: pd.DataFrame, baseline: str | None, vs: dict[str, str]) -> list[dict]:
    """For each run with a parent (its `vs`, else the baseline): the change and its effect on test perplexity."""
    base = _baseline(records, baseline)
    by_name = {r.name: r for r in records}
    effects = []
    for record in records:
        parent = by_name.get(vs.get(record.name, ""), base)
        if record is base or parent is record:
            continue
        before, after = table.loc[parent.name, "test ppl"], table.loc[record.name, "test ppl"]
        effects.append(
            {
                "name": record.name,
                "parent": parent.name,
                "diff": changes(parent, record),
                "before": before,
                "after": after,
                "rel": after / before - 1,
            }
        )
    return effects


def winner_section(table: pd.DataFrame) -> list[str]:
    ranked = table.sort_values("valid ppl")
    win, best_test = ranked.index[0], ranked["test ppl"].iloc[0]
    lines = [
        "### Which run wins",
        "",
        f"- **{win}** has the lowest validation perplexity "
        f"({ranked['valid ppl'].iloc[0]:.1f}; test {best_test:.1f}, selected on validation, reported on test).",
    ]
    if len(ranked) > 1:
        second = ranked.index[1]
        sentence = (
            f"- Its test perplexity is {_lower(best_test, ranked.loc[second, 'test ppl'])} lower than the "
            f"runner-up **{second}** ({ranked.loc[second, 'test ppl']:.1f})"
        )
        if len(ranked) > 2:
            worst = ranked.index[-1]
            sentence += (
                f" and {_lower(best_test, ranked['test ppl'].iloc[-1])} lower than the worst run "
                f"**{worst}** ({ranked['test ppl'].iloc[-1]:.1f})"
            )
        lines.append(sentence + ".")
    return lines


def effects_section(effects: list[dict], against: str) -> list[str]:
    lines = ["", f"### What each change did (against {against})", ""]
    for e in effects:
        kinds = " + ".join(sorted({kind_of_change(k) for k in e["diff"]})) or "same config"
        lines.append(
            f"- **{e['name']}** vs **{e['parent']}** ({kinds}: {describe_change(e['diff'])}): "
            f"test perplexity {e['before']:.1f} → {e['after']:.1f}, {_effect(e['before'], e['after'])}."
        )
    regularising = [e for e in effects if e["diff"] and all(kind_of_change(k) == "regularisation" for k in e["diff"])]
    if regularising:
        top = min(regularising, key=lambda e: e["rel"])
        if top["rel"] < -TIE:
            lines.append(
                f"- The regularisation that mattered most: {describe_change(top['diff'])} "
                f"(**{top['name']}**, {-top['rel']:.1%} lower test perplexity)."
            )
        else:
            lines.append(f"- No regularisation change moved test perplexity by more than {TIE:.0%} at this budget.")
    return lines


def overfitting_section(records: list[RunRecord], table: pd.DataFrame) -> list[str]:
    return ["", "### Where overfitting begins", ""] + [f"- {overfit_sentence(r, table.loc[r.name])}" for r in records]


def overfit_sentence(record: RunRecord, row: pd.Series) -> str:
    """Where (or whether) this run started to overfit, in one sentence."""
    name, found = record.name, overfitting(record)
    if found is None and len(record.metrics) < 2:
        return f"**{name}**: a single validation (epoch {row['epochs']:g}): too short to see where overfitting begins."
    if found is None:
        why = STOP_REASONS.get(record.results.get("stopped", ""), "training ended")
        return (
            f"**{name}**: no overfitting seen — validation perplexity still fell at its last epoch "
            f"({row['epochs']:g}) when {why}, so more training would likely still help."
        )
    rising = "while training perplexity kept falling" if found["train_fell"] else "and training perplexity stalled too"
    if found["last_valid"] / found["best_valid"] - 1 <= TIE:
        return (
            f"**{name}**: validation perplexity stopped improving after epoch {found['best_epoch']} "
            f"({found['best_valid']:.1f}) and stayed within {TIE:.0%} of it until epoch "
            f"{found['last_epoch']:.3g} {rising}: the edge of overfitting."
        )
    return (
        f"**{name}**: best at epoch {found['best_epoch']} (valid {found['best_valid']:.1f}); by epoch "
        f"{found['last_epoch']:.3g} valid was {found['last_valid']:.1f} "
        f"({_rise(found['last_valid'], found['best_valid'])} above its best) {rising}. "
        f"Generalisation gap at the best epoch (valid − train): {row['gap']:+.1f}."
    )


def recommendations(records: list[RunRecord], table: pd.DataFrame, effects: list[dict]) -> list[str]:
    out = [_early_stopping_advice(records)]
    if len(table) > 1:
        out.append(_tuning_advice(table))
    helped = sorted((e for e in effects if e["rel"] < -TIE), key=lambda e: e["rel"])
    if helped:
        top, winner = helped[0], table["valid ppl"].idxmin()
        out.append(
            f"**Regularisation and architecture.** The largest single gain came from "
            f"{describe_change(top['diff'])} (**{top['name']}**, {-top['rel']:.1%} lower test perplexity); "
            f"the best configuration overall is **{winner}**."
        )
    gaps = table["gap"].dropna()
    if len(gaps):
        out.append(
            "Training perplexity is averaged over each epoch with dropout on (and, in epoch 1, over the "
            "untrained start), so the gap (valid − train) understates overfitting; here it ranges from "
            f"{gaps.min():+.1f} to {gaps.max():+.1f}."
        )
    return out


def _early_stopping_advice(records: list[RunRecord]) -> str:
    over = [(r.name, o) for r in records if (o := overfitting(r)) is not None]
    if not over:
        return (
            "**Early stopping.** No run passed its best epoch: the budget, not overfitting, ended "
            "training. Give the best run more time before tuning anything else."
        )
    wasted = sum(o["minutes_after_best"] for _, o in over)
    name, worst = max(over, key=lambda t: t[1]["last_valid"] / t[1]["best_valid"])
    return (
        f"**Early stopping.** {len(over)} of {len(records)} runs passed their best epoch; "
        f"{wasted:.1f} minutes were spent after it. Keeping the best-validation weights matters: taking "
        f"the last epoch of **{name}** instead would make its validation perplexity "
        f"{_rise(worst['last_valid'], worst['best_valid'])} worse. Set `patience` to stop early."
    )


def _tuning_advice(table: pd.DataFrame) -> str:
    spread = table["test ppl"].max() / table["test ppl"].min() - 1
    if spread > TIE:
        return (
            f"**Hyperparameter tuning.** The worst run's test perplexity is {spread:.1%} above the best's "
            "with the same data and budget, so the configuration matters at a fixed budget: tune it on "
            "validation, report test once."
        )
    return (
        f"**Hyperparameter tuning.** All runs are within {TIE:.0%} of each other: these changes do "
        "not matter at this budget; tune other settings (size, learning rate) or train longer."
    )


def _baseline(records: list[RunRecord], baseline: str | None) -> RunRecord:
    return next((r for r in records if r.name == baseline), records[0])


def _against(records, baseline, vs) -> str:
    return "the run each one changes" if vs else f"the baseline **{_baseline(records, baseline).name}**"


def _effect(before: float, after: float) -> str:
    rel = after / before - 1
    if abs(rel) <= TIE:
        return f"no measurable effect ({rel:+.1%})".replace("-0.0%", "+0.0%")
    return f"{-rel:.1%} lower (better)" if rel < 0 else f"{rel:.1%} higher (worse)"


def _lower(better: float, worse: float) -> str:
    """Relative reduction, the one convention for "X% lower" in this module."""
    return f"{1 - better / worse:.1%}"


def _rise(value: float, best: float) -> str:
    return f"{value / best - 1:.1%}"
