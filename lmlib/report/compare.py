"""Compare training runs: their records, one table, the curves on shared axes.

Everything here is computed from what the runs wrote (config.json, metrics.csv,
results.json), so notebook 03 and the report's title page show the same numbers; the
written analysis built on them is lmlib.report.analysis.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lmlib.config import REPLICATE, RunConfig, differences
from lmlib.errors import LMError
from lmlib.training.runs import list_runs, read_config, read_metrics, read_results

# Fields that regularise (Merity et al. 2017, §4), that size the model, and the rest.
REGULARISATION = ("dropout_input", "dropout_hidden", "dropout_output", "locked_dropout", "dropout_embedding",
                  "weight_drop", "tie_weights", "alpha", "beta", "weight_decay")  # fmt: skip
SIZE = ("arch", "emb_dim", "hid_dim", "num_layers", "adaptive_softmax", "n_heads", "context")
TABLE_COLUMNS = ["run", "size", "dropout", "tied", "optimizer", "batch×bptt", "parameters", "epochs", "best epoch",
                 "train ppl", "valid ppl", "test ppl", "gap", "minutes", "tokens/s"]  # fmt: skip


@dataclass(frozen=True)
class RunRecord:
    """What one finished run wrote: its config, per-epoch metrics, final results."""

    name: str
    config: RunConfig
    metrics: pd.DataFrame
    results: dict


def load_records(runs_root: str | os.PathLike, names: list[str] | None = None) -> list[RunRecord]:
    """The finished runs under `runs_root` (all, or `names` in that order)."""
    root = Path(runs_root)
    if names:
        dirs = [root / name for name in names]
        missing = [d.name for d in dirs if not (d / "results.json").is_file()]
        if missing:
            raise LMError(f"no finished run named {', '.join(missing)} under {root}: train it first (notebook 02)")
    else:  # a model imported with `import-original` was not trained here: nothing to compare by default
        dirs = [d for d in list_runs(root) if not (read_results(d) or {}).get("imported")]
    return [RunRecord(d.name, read_config(d)[0], read_metrics(d), read_results(d)) for d in dirs]


def best_row(record: RunRecord) -> pd.Series | None:
    """The metrics row of the best epoch (lowest valid perplexity), or None without metrics."""
    metrics = record.metrics
    if metrics.empty:
        return None
    best = record.results.get("best_epoch")
    rows = metrics[metrics["epoch"] == best] if best is not None else metrics.iloc[0:0]
    return rows.iloc[-1] if len(rows) else metrics.loc[metrics["valid_ppl"].idxmin()]


def size_text(config: RunConfig) -> str:
    """'2×256/256' (LSTM: layers × embedding/hidden); a Transformer's also says so, with heads and context."""
    model = config.model
    size = f"{model.num_layers}×{model.emb_dim}/{model.hid_dim}"
    if model.arch == "transformer":
        return f"Transformer {size}, {model.n_heads} heads, context {model.context}"
    return size


def dropout_text(config: RunConfig) -> str:
    """Dropouts as 'input/hidden/output', plus the AWD extras that are on."""
    model = config.model
    text = f"{model.dropout_input:g}/{model.dropout_hidden:g}/{model.dropout_output:g}"
    extras = [
        name
        for name, on in (
            ("locked", model.locked_dropout),
            (f"emb {model.dropout_embedding:g}", model.dropout_embedding),
            (f"wd {model.weight_drop:g}", model.weight_drop),
        )
        if on
    ]
    return text + (" + " + ", ".join(extras) if extras else "")


def table_row(record: RunRecord) -> dict:
    """One run's row of the comparison table: key hyperparameters, size, best epoch, perplexities, speed."""
    model, train, results, best = record.config.model, record.config.train, record.results, best_row(record)
    train_ppl = float(best["train_ppl"]) if best is not None else math.nan
    return {
        "run": record.name,
        "size": size_text(record.config),
        "dropout": dropout_text(record.config),
        "tied": model.tie_weights,
        "optimizer": f"{train.optimizer} {train.lr:g}",
        "batch×bptt": f"{train.batch_size}×{train.bptt}",
        "parameters": int(results["parameters"]),
        "epochs": round(_number(results["epochs_run"]), 2),  # fractional when the budget cut an epoch
        "best epoch": None if results["best_epoch"] is None else int(results["best_epoch"]),
        "train ppl": round(train_ppl, 1),
        "valid ppl": round(_number(results["valid_ppl"]), 1),
        "test ppl": round(_number(results["test_ppl"]), 1),
        "gap": round(_number(results["valid_ppl"]) - train_ppl, 1),
        "minutes": round(_number(results["wall_seconds"]) / 60, 1),
        "tokens/s": int(round(float(results["train_tokens_per_s"] or 0))),
    }


def _number(value) -> float:
    """A result as a float; NaN where a run has none (an imported model was not trained or measured here)."""
    return math.nan if value is None else float(value)


def comparison_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run (display labels as columns: this is for people, summary.json keeps results.json's keys)."""
    return pd.DataFrame([table_row(r) for r in records], columns=TABLE_COLUMNS).set_index("run")


def plot_curves(records: list[RunRecord], title: str | None = None):
    """Train (dashed) and valid (solid) perplexity of every run, per epoch and per minute, shared axes."""
    import matplotlib.pyplot as plt

    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for i, r in enumerate(records):
        m, colour = r.metrics, f"C{i % 10}"
        if m.empty:
            continue
        by_epoch.plot(m["epoch"], m["valid_ppl"], "-o", ms=3, color=colour, label=f"{r.name} valid")
        by_epoch.plot(m["epoch"], m["train_ppl"], "--", color=colour, alpha=0.6, label=f"{r.name} train")
        by_time.plot(m["wall_seconds"] / 60, m["valid_ppl"], "-o", ms=3, color=colour, label=r.name)
        best = best_row(r)
        by_epoch.plot([best["epoch"]], [best["valid_ppl"]], "*", ms=12, color=colour)
        by_time.plot([best["wall_seconds"] / 60], [best["valid_ppl"]], "*", ms=12, color=colour)
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


def changes(base: RunRecord, other: RunRecord) -> dict[str, tuple]:
    """What `other` changes against `base`: field -> (base value, other value), runtime and seed aside."""
    return differences(base.config, other.config, ignore=REPLICATE)


def describe_change(diff: dict[str, tuple]) -> str:
    """'weight_drop 0 → 0.5, tie_weights False → True'."""
    return ", ".join(f"{k} {_fmt(a)} → {_fmt(b)}" for k, (a, b) in diff.items()) or "nothing"


# The fields a reader looks at first when two recipes differ: what the model is, how it is
# regularised, how it is trained. describe_main shows the first few of a change in this order.
MAIN_FIELDS = ("arch", "emb_dim", "hid_dim", "num_layers", "tie_weights", "adaptive_softmax", "dropout_input",
               "dropout_hidden", "dropout_output", "locked_dropout", "dropout_embedding", "weight_drop", "optimizer",
               "lr", "epochs", "lr_schedule", "batch_size", "bptt")  # fmt: skip


def describe_main(diff: dict[str, tuple], keep: int = 4) -> tuple[str, str]:
    """(the `keep` main differences, e.g. 'arch lstm → transformer, ... and 13 more'; every difference)."""
    order = sorted(diff, key=lambda k: MAIN_FIELDS.index(k) if k in MAIN_FIELDS else len(MAIN_FIELDS))
    main = describe_change({k: diff[k] for k in order[:keep]})
    more = len(order) - keep
    return (main + (f" and {more} more" if more > 0 else ""), describe_change(diff))


def kind_of_change(field: str) -> str:
    return "regularisation" if field in REGULARISATION else "size" if field in SIZE else "training"


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
        "minutes_after_best": float(last["wall_seconds"] - best["wall_seconds"]) / 60,
    }


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
