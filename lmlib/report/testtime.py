"""The report's test-time section: static, +cache, +dynamic (+both) for the best arms, and what each costs.

Every number comes from lmlib.evaluation (settings chosen on valid only, test scored once);
a run whose test_time.json already holds the same methods for the same weights and grid is
read back instead of evaluated again, so re-rendering a report costs nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lmlib.evaluation.records import evaluate_run_methods, read_record
from lmlib.evaluation.tuning import METHODS
from lmlib.report.arms import Arm
from lmlib.report.html import escape_markdown

LABELS = {"static": "static", "cache": "+cache", "dynamic": "+dynamic", "both": "+both"}


def best_runs(groups: list[Arm], arms: int = 1) -> list[str]:
    """The best seed (lowest valid ppl) of each of the `arms` arms with the lowest mean valid ppl."""
    ranked = sorted(groups, key=lambda a: a.result("valid_ppl").mean)[:arms]
    return [arm.best_record().name for arm in ranked]


def method_results(runs_root: str, names: list[str], grid: str = "report") -> dict[str, dict]:
    """{run: its test-time record's methods}, evaluated where the run has no matching record."""
    results = {}
    for name in names:
        run_dir = Path(runs_root) / name
        record = read_record(run_dir)
        methods = (record or {}).get("methods", {})
        # a record without "adapted" was tuned before "no adaptation" was a candidate: evaluate again
        stale = any(methods[m].get("grid_name") != grid or "adapted" not in methods[m] for m in methods)
        if set(METHODS) - set(methods) or stale:
            record = evaluate_run_methods(run_dir, METHODS, grid=grid, device="auto")
        results[name] = record["methods"]
    return results


def method_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per run and method: valid/test ppl, change against static, cost ratio, settings."""
    rows = []
    for run, methods in results.items():
        static = methods["static"]["test_ppl"]
        for name, entry in methods.items():
            rows.append(
                {
                    "run": run,
                    "method": LABELS[name],
                    "valid ppl": round(entry["valid_ppl"], 2),
                    "test ppl": round(entry["test_ppl"], 2),
                    "Δ test": f"{entry['test_ppl'] / static - 1:+.1%}",
                    "cost × static": round(entry["cost_ratio"], 2),
                    "settings (tuned on valid)": _settings_text(entry),
                }
            )
    return pd.DataFrame(rows).set_index(["run", "method"]) if rows else pd.DataFrame()


def method_summary(results: dict[str, dict]) -> dict:
    """{run: {method: valid/test ppl, cost ratio, settings}}: what notebook 03 records (rounded as shown)."""
    return {
        run: {
            name: {
                "valid_ppl": round(e["valid_ppl"], 3),
                "test_ppl": round(e["test_ppl"], 3),
                "cost_ratio": round(e["cost_ratio"], 3),
                "settings": e["settings"],
            }
            for name, e in methods.items()
        }
        for run, methods in results.items()
    }


def _settings_text(entry: dict) -> str:
    if entry.get("adapted", True) or not entry.get("grid"):
        return _settings(entry["settings"])
    return f"none: no setting beat static on valid (best {entry['best_adapted_valid_ppl']:.2f})"


def _settings(settings: dict) -> str:
    if "cache" in settings:  # both
        return f"{_settings(settings['cache'])}; {_settings(settings['dynamic'])}"
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in settings.items())


def method_text(results: dict[str, dict]) -> str:
    """What each method buys and what it costs, from the numbers in `results`."""
    if not results:
        return "No finished run to evaluate."
    parts = []
    for run, m in results.items():
        static = m["static"]["test_ppl"]
        lines = [f"**{escape_markdown(run)}** (static test perplexity {static:.1f}):"]
        for name in ("cache", "dynamic", "both"):
            if name in m:
                lines.append(_method_sentence(name, m[name], static, m["static"]["valid_ppl"]))
        parts.append("\n".join(f"- {line}" if i else line for i, line in enumerate(lines)))
    parts.append(
        "Both methods change only how the trained weights are used at evaluation time: no retraining. "
        "The cache (Grave et al. 2016) rewards words that already occurred in the recent text, which "
        "names and phrases in novels do; dynamic evaluation (Krause et al. 2018) lets the weights follow "
        "the text as it is read, scoring each segment before learning from it. Their settings were "
        "chosen on the validation split only and the test split was scored once, so the test column "
        "is an honest estimate; the cost is the test pass's time as a multiple of static evaluation's."
    )
    return "\n\n".join(parts)


def _method_sentence(name: str, entry: dict, static: float, static_valid: float) -> str:
    change = entry["test_ppl"] / static - 1
    verb = "lowers" if change < 0 else "raises"
    what = {"cache": "the cache", "dynamic": "dynamic evaluation", "both": "both together"}[name]
    if not entry.get("adapted", True) and entry.get("grid"):
        return (
            f"{what}: no setting beat static evaluation on validation (the best gave "
            f"{entry['best_adapted_valid_ppl']:.1f} against {static_valid:.1f}), so none is used and test "
            f'perplexity stays {static:.1f}: honest tuning may answer "no adaptation".'
        )
    extra = ""
    if name == "dynamic" and entry.get("setup_seconds") is not None:
        extra = f", plus {entry['setup_seconds']:.0f} s once for the training split's gradient statistics"
    return (
        f"{what} {verb} test perplexity to {entry['test_ppl']:.1f} ({change:+.1%}) at "
        f"{entry['cost_ratio']:.1f}× the time of static evaluation{extra}."
    )
