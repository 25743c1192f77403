"""Compare training runs: one table, the curves on shared axes, and an analysis in words.

Everything here is computed from what the runs wrote (config.json, metrics.csv,
results.json), so notebook 03 and the report's title page say the same thing. The
analysis follows the original study's report: which run wins and by how much, which
change mattered, where overfitting begins, and what that recommends (early stopping,
hyperparameter tuning, regularisation).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# Fields that regularise (Merity et al. 2017, §4), that size the model, and the rest.
REGULARISATION = (
    "dropout_input",
    "dropout_hidden",
    "dropout_output",
    "locked_dropout",
    "dropout_embedding",
    "weight_drop",
    "tie_weights",
    "alpha",
    "beta",
    "weight_decay",
)
SIZE = ("emb_dim", "hid_dim", "num_layers", "adaptive_softmax")
# Fields that describe where/how long a run went, not what it learned: never a "difference".
IGNORED = ("device", "precision", "checkpoint_minutes", "seed", "corpus", "protocol", "min_freq")
TABLE_COLUMNS = [
    "run",
    "size",
    "dropout",
    "tied",
    "optimizer",
    "batch×bptt",
    "parameters",
    "epochs",
    "best epoch",
    "train ppl",
    "valid ppl",
    "test ppl",
    "gap",
    "minutes",
    "tokens/s",
]
# Below this relative difference two perplexities are called a tie (seed noise on short runs).
TIE = 0.01


@dataclass(frozen=True)
class RunRecord:
    """What one finished run wrote: its config as a dict, per-epoch metrics, final results."""

    name: str
    config: dict
    metrics: pd.DataFrame
    results: dict


def load_records(runs_root: str | os.PathLike, names: list[str] | None = None) -> list[RunRecord]:
    """The finished runs under `runs_root` (all, or `names` in that order)."""
    from lmlib.errors import LMError
    from lmlib.training.runs import list_runs, read_config, read_metrics, read_results

    root = Path(runs_root)
    if names:
        dirs = [root / name for name in names]
        missing = [d.name for d in dirs if not (d / "results.json").is_file()]
        if missing:
            raise LMError(f"no finished run named {', '.join(missing)} under {root}: train it first (notebook 02)")
    else:
        dirs = list_runs(root)
    return [RunRecord(d.name, read_config(d)[0].to_dict(), read_metrics(d), read_results(d)) for d in dirs]


def best_row(record: RunRecord) -> pd.Series | None:
    """The metrics row of the best epoch (lowest valid perplexity), or None without metrics."""
    metrics = record.metrics
    if metrics.empty:
        return None
    best = record.results.get("best_epoch")
    rows = metrics[metrics["epoch"] == best] if best is not None else metrics.iloc[0:0]
    return rows.iloc[-1] if len(rows) else metrics.loc[metrics["valid_ppl"].idxmin()]


def dropout_text(config: dict) -> str:
    """Dropouts as 'input/hidden/output', plus the AWD extras that are on."""
    text = "/".join(f"{config.get(k, 0):g}" for k in ("dropout_input", "dropout_hidden", "dropout_output"))
    extras = [
        name
        for name, on in (
            ("locked", config.get("locked_dropout")),
            (f"emb {config.get('dropout_embedding', 0):g}", config.get("dropout_embedding")),
            (f"wd {config.get('weight_drop', 0):g}", config.get("weight_drop")),
        )
        if on
    ]
    return text + (" + " + ", ".join(extras) if extras else "")


def comparison_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run: key hyperparameters, size, best epoch, perplexities, gap, speed."""
    rows = []
    for r in records:
        c, res, best = r.config, r.results, best_row(r)
        train_ppl = float(best["train_ppl"]) if best is not None else math.nan
        rows.append(
            {
                "run": r.name,
                "size": f"{c['num_layers']}×{c['emb_dim']}/{c['hid_dim']}",
                "dropout": dropout_text(c),
                "tied": bool(c.get("tie_weights")),
                "optimizer": f"{c['optimizer']} {c['lr']:g}",
                "batch×bptt": f"{c['batch_size']}×{c['bptt']}",
                "parameters": int(res["parameters"]),
                "epochs": round(float(res["epochs_run"]), 2),  # fractional when the budget cut an epoch
                "best epoch": int(res["best_epoch"]),
                "train ppl": round(train_ppl, 1),
                "valid ppl": round(float(res["valid_ppl"]), 1),
                "test ppl": round(float(res["test_ppl"]), 1),
                "gap": round(float(res["valid_ppl"]) - train_ppl, 1),
                "minutes": round(float(res["seconds"]) / 60, 1),
                "tokens/s": int(round(float(res["tokens_per_s"] or 0))),
            }
        )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS).set_index("run")


def plot_curves(records: list[RunRecord], title: str | None = None):
    """Train (dashed) and valid (solid) perplexity of every run, per epoch and per minute, shared axes."""
    import matplotlib.pyplot as plt

    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for i, r in enumerate(records):
        m, colour = r.metrics, f"C{i % 10}"
        if m.empty:
            continue
        minutes = m["elapsed_s"] / 60
        by_epoch.plot(m["epoch"], m["valid_ppl"], "-o", ms=3, color=colour, label=f"{r.name} valid")
        by_epoch.plot(m["epoch"], m["train_ppl"], "--", color=colour, alpha=0.6, label=f"{r.name} train")
        by_time.plot(minutes, m["valid_ppl"], "-o", ms=3, color=colour, label=r.name)
        best = best_row(r)
        by_epoch.plot([best["epoch"]], [best["valid_ppl"]], "*", ms=12, color=colour)
        by_time.plot([best["elapsed_s"] / 60], [best["valid_ppl"]], "*", ms=12, color=colour)
    by_epoch.set(xlabel="epoch", ylabel="perplexity (log scale)", yscale="log")
    by_time.set(xlabel="wall-clock minutes", title="valid perplexity against time")
    by_epoch.set_title("solid: valid, dashed: train, ★ best epoch")
    for ax in (by_epoch, by_time):
        ax.grid(True, which="both", alpha=0.3)
    by_time.legend(fontsize=8, loc="upper right")  # one entry per run; the line styles are in the title
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def differences(base: dict, other: dict) -> dict[str, tuple]:
    """Config fields where `other` differs from `base`: name -> (base value, other value)."""
    return {k: (base.get(k), v) for k, v in other.items() if k not in IGNORED and base.get(k) != v}


def describe_change(diff: dict[str, tuple]) -> str:
    """'weight_drop 0 → 0.5, tie_weights False → True'."""
    return ", ".join(f"{k} {_fmt(a)} → {_fmt(b)}" for k, (a, b) in diff.items()) or "nothing"


def overfitting(record: RunRecord) -> dict | None:
    """Where valid perplexity turns up while train keeps falling; None if it never does."""
    m = record.metrics
    if len(m) < 2:
        return None
    best = best_row(record)
    after = m[m["epoch"] > best["epoch"]]
    if after.empty:
        return None
    last = m.iloc[-1]
    return {
        "best_epoch": int(best["epoch"]),
        "best_valid": float(best["valid_ppl"]),
        "last_epoch": float(last["epoch"]),
        "last_valid": float(last["valid_ppl"]),
        "train_fell": float(last["train_ppl"]) < float(best["train_ppl"]),
        "minutes_after_best": float(last["elapsed_s"] - best["elapsed_s"]) / 60,
    }


def analysis(records: list[RunRecord], baseline: str | None = None, parents: dict[str, str] | None = None) -> str:
    """The written analysis (Markdown), every number computed from the runs.

    Each run's change is measured against `parents[run]` (the run it modifies) when given,
    else against the baseline (default: the first run).
    """
    if not records:
        return "No finished runs to compare yet: train some with notebook 02."
    table = comparison_table(records)
    base = next((r for r in records if r.name == baseline), records[0])
    by_name = {r.name: r for r in records}
    parents = parents or {}
    ranked = table.sort_values("valid ppl")
    lines = ["### Which run wins", ""]
    win = ranked.index[0]
    lines.append(
        f"- **{win}** has the lowest validation perplexity ({ranked['valid ppl'].iloc[0]:.1f}; "
        f"test {ranked['test ppl'].iloc[0]:.1f}, selected on validation, reported on test)."
    )
    if len(ranked) > 1:
        second = ranked.index[1]
        best_test = ranked["test ppl"].iloc[0]
        sentence = (
            f"- Its test perplexity is {_lower(best_test, ranked.loc[second, 'test ppl'])} lower than the "
            f"runner-up **{second}** ({ranked.loc[second, 'test ppl']:.1f})"
        )
        if len(ranked) > 2:
            sentence += (
                f" and {_lower(best_test, ranked['test ppl'].iloc[-1])} lower than the worst run "
                f"**{ranked.index[-1]}** ({ranked['test ppl'].iloc[-1]:.1f})"
            )
        lines.append(sentence + ".")
    against = "the run each one changes" if parents else f"the baseline **{base.name}**"
    lines += ["", f"### What each change did (against {against})", ""]
    effects = []
    for r in records:
        parent = by_name.get(parents.get(r.name, ""), base)
        if r is base or parent is r:
            continue
        diff = differences(parent.config, r.config)
        before, after = table.loc[parent.name, "test ppl"], table.loc[r.name, "test ppl"]
        effects.append((after / before - 1, r.name, diff))
        verdict = _effect(before, after)
        kinds = sorted({_kind(k) for k in diff})
        lines.append(
            f"- **{r.name}** vs **{parent.name}** ({' + '.join(kinds) or 'same config'}: "
            f"{describe_change(diff)}): test perplexity {before:.1f} → {after:.1f}, {verdict}."
        )
    regularising = [e for e in effects if e[2] and all(_kind(k) == "regularisation" for k in e[2])]
    if regularising:
        rel, name, diff = min(regularising)
        if rel < -TIE:
            lines.append(
                f"- The regularisation that mattered most: {describe_change(diff)} (**{name}**, "
                f"{-rel:.1%} lower test perplexity)."
            )
        else:
            lines.append(f"- No regularisation change moved test perplexity by more than {TIE:.0%} at this budget.")
    lines += ["", "### Where overfitting begins", ""]
    for r in records:
        lines.append(f"- {_overfit_sentence(r, table.loc[r.name])}")
    lines += ["", "### Recommendations", ""]
    lines += [f"- {s}" for s in _recommendations(records, table, effects)]
    return "\n".join(lines)


def _overfit_sentence(r: RunRecord, row: pd.Series) -> str:
    o = overfitting(r)
    stop = r.results.get("stopped", "")
    if o is None and len(r.metrics) < 2:
        return (
            f"**{r.name}**: a single validation (epoch {row['epochs']:g}): too short to see where overfitting begins."
        )
    if o is None:
        why = {
            "time_budget": "the time budget ran out",
            "completed": "it had run all its epochs",
            "early_stopping": "early stopping ended it",
        }.get(stop, "training ended")
        return (
            f"**{r.name}**: no overfitting seen — validation perplexity still fell at its last epoch "
            f"({row['epochs']:g}) when {why}, so more training would likely still help."
        )
    rising = "while training perplexity kept falling" if o["train_fell"] else "and training perplexity stalled too"
    if o["last_valid"] / o["best_valid"] - 1 <= TIE:
        return (
            f"**{r.name}**: validation perplexity stopped improving after epoch {o['best_epoch']} "
            f"({o['best_valid']:.1f}) and stayed within {TIE:.0%} of it until epoch {o['last_epoch']:.3g} "
            f"{rising}: the edge of overfitting."
        )
    return (
        f"**{r.name}**: best at epoch {o['best_epoch']} (valid {o['best_valid']:.1f}); by epoch "
        f"{o['last_epoch']:.3g} valid was {o['last_valid']:.1f} "
        f"({_rise(o['last_valid'], o['best_valid'])} above its best) "
        f"{rising}. Generalisation gap at the best epoch (valid − train): {row['gap']:+.1f}."
    )


def _recommendations(records, table, effects) -> list[str]:
    out = []
    over = [(r.name, overfitting(r)) for r in records]
    over = [(n, o) for n, o in over if o is not None]
    if over:
        wasted = sum(o["minutes_after_best"] for _, o in over)
        lost = max(over, key=lambda t: t[1]["last_valid"] / t[1]["best_valid"])
        out.append(
            f"**Early stopping.** {len(over)} of {len(records)} runs passed their best epoch; "
            f"{wasted:.1f} minutes were spent after it. Keeping the best-validation weights matters: taking "
            f"the last epoch of **{lost[0]}** instead would make its validation perplexity "
            f"{_rise(lost[1]['last_valid'], lost[1]['best_valid'])} worse. Set `patience` to stop early."
        )
    else:
        out.append(
            "**Early stopping.** No run passed its best epoch: the budget, not overfitting, ended "
            "training. Give the best run more time before tuning anything else."
        )
    if len(table) > 1:
        spread = table["test ppl"].max() / table["test ppl"].min() - 1
        if spread > TIE:
            out.append(
                f"**Hyperparameter tuning.** The worst run's test perplexity is {spread:.1%} above the best's "
                "with the same data and budget, so the configuration matters at a fixed budget: tune it on "
                "validation, report test once."
            )
        else:
            out.append(
                f"**Hyperparameter tuning.** All runs are within {TIE:.0%} of each other: these changes do "
                "not matter at this budget; tune other settings (size, learning rate) or train longer."
            )
    helped = sorted((rel, name, diff) for rel, name, diff in effects if rel < -TIE)
    if helped:
        rel, name, diff = helped[0]
        winner = table["valid ppl"].idxmin()
        out.append(
            f"**Regularisation and architecture.** The largest single gain came from {describe_change(diff)} "
            f"(**{name}**, {-rel:.1%} lower test perplexity); the best configuration overall is **{winner}**."
        )
    gaps = table["gap"].dropna()
    if len(gaps):
        out.append(
            f"Training perplexity is averaged over each epoch with dropout on (and, in epoch 1, over the "
            f"untrained start), so the gap (valid − train) understates overfitting; here it ranges from "
            f"{gaps.min():+.1f} to {gaps.max():+.1f}."
        )
    return out


def _kind(field: str) -> str:
    return "regularisation" if field in REGULARISATION else "size" if field in SIZE else "training"


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


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
