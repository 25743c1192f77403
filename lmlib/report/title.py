"""The report's first screen and summary.json, from the runs' own files.

The title page states what was run, on which machine and versions, how long it took,
the headline table, the curves of every run and the written analysis; summary.json holds
the same numbers for scripts, under the keys results.json uses.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import platform
import subprocess
from pathlib import Path

from lmlib import __version__, paths
from lmlib.report.analysis import analysis
from lmlib.report.compare import RunRecord, comparison_table, load_records, plot_curves
from lmlib.report.html import TitlePage
from lmlib.report.profiles import Profile

# results.json keys each run contributes to summary.json (the display table is for the HTML only)
SUMMARY_KEYS = ("parameters", "best_epoch", "epochs_run", "train_ppl", "valid_ppl", "test_ppl", "wall_seconds",
                "train_tokens_per_s", "stopped", "resolved_device", "resolved_precision")  # fmt: skip


def finished_records(prof: Profile, runs_root: Path) -> list[RunRecord]:
    """The profile's runs that finished, in the profile's order."""
    names = [r.name for r in prof.runs if (runs_root / r.name / "results.json").is_file()]
    return load_records(runs_root, names) if names else []


def title_page(prof: Profile, records: list[RunRecord], timings: list, wall_seconds: float, reused) -> TitlePage:
    """The first screen: facts, headline, table, curves, analysis and the profile's questions."""
    table = comparison_table(records)
    training = sum(float(r.results.get("wall_seconds", 0)) for r in records)
    reuse_note = f" (reusing finished runs: {', '.join(reused)})" if reused else ""
    facts = {
        "profile": f"{prof.name}: {prof.description}".strip(": "),
        "corpus": prof.corpus,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "pipeline wall time": f"{wall_seconds / 60:.1f} minutes{reuse_note}",
        "training time": f"{training / 60:.1f} minutes over {len(records)} runs",
        "lmlib": f"{__version__} {git_commit()}".strip(),
    }
    table_html = (
        table.reset_index().to_html(classes="comparison", index=False) if records else "<p>No finished runs.</p>"
    )
    return TitlePage(
        title=prof.title, facts=facts, headline=headline(table), table_html=table_html,
        figure_png=curves_png(records) if records else None,
        analysis_md=analysis(records, prof.baseline or None, prof.vs()) if records else "",
        notes_md=questions(prof) + "\n\n" + timings_table(timings),
    )  # fmt: skip


def summary(prof: Profile, records: list[RunRecord], timings: list, wall_seconds: float, reused) -> dict:
    """summary.json: the build's timings and every run's results under results.json's own keys."""
    runs = [{"run": r.name, "vs": next((s.vs for s in prof.runs if s.name == r.name), "")}
            | {k: r.results.get(k) for k in SUMMARY_KEYS} for r in records]  # fmt: skip
    return {
        "profile": prof.name,
        "wall_seconds": round(wall_seconds, 1),
        "training_seconds": round(sum(float(r.results.get("wall_seconds", 0)) for r in records), 1),
        "reused_runs": list(reused),
        "steps": {step.output: round(seconds, 1) for step, seconds in timings},
        "runs": runs,
    }


def write_summary(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def curves_png(records: list[RunRecord]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_curves(records)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def headline(table) -> str:
    """The one-sentence result for the title page."""
    if table.empty:
        return "No run finished."
    best = table["valid ppl"].idxmin()
    row = table.loc[best]
    return (
        f"Best run: **{best}** — test perplexity **{row['test ppl']:.1f}** (valid {row['valid ppl']:.1f}, "
        f"best epoch {row['best epoch']}), {row['parameters']:,} parameters, {row['minutes']:.1f} minutes of training."
    )


def machine() -> str:
    """CPU/GPU, cores, what precisions `auto` and `mixed` train in, and the torch version, in one line."""
    import torch

    from lmlib.training.device import cpu_model, resolve_device, resolve_precision

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    device = resolve_device("auto")
    precision = f"precision auto = {resolve_precision('auto', device)}, mixed = {resolve_precision('mixed', device)}"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {gpu}, {precision}; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def git_commit() -> str:
    """'(commit abc1234)' in a git checkout, else ''."""
    root = paths.checkout_root()
    if root is None:
        return ""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"(commit {out.stdout.strip()})" if out.returncode == 0 and out.stdout.strip() else ""


def questions(prof: Profile) -> str:
    """Each run's change and the question it answers, plus the budget every run shares."""
    lines = ["### The runs", ""]
    for run in prof.runs:
        base = f"**{run.vs}** +" if run.inherits else f"preset `{run.preset}`,"
        change = ", ".join(f"`{k}={v}`" for k, v in run.change.items()) or "no overrides"
        lines.append(f"- **{run.name}**: {base} {change}. {run.question}".rstrip())
    budget = f"{prof.max_minutes:g} minutes" if prof.max_minutes else "each preset's own"
    common = ", ".join(f"`{k}={v}`" for k, v in prof.overrides.items())
    lines.append(
        f"\nTraining budget per run: {budget}; device: `{prof.device or 'auto'}`"
        + (f"; every run also sets {common}." if common else ".")
    )
    return "\n".join(lines)


def timings_table(timings: list) -> str:
    rows = "\n".join(f"| {step.output} | {seconds:.0f} |" for step, seconds in timings)
    return f"### Pipeline steps\n\n| executed notebook | seconds |\n|---|---|\n{rows}"
