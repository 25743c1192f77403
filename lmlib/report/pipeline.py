"""The report pipeline: run the numbered notebooks with papermill, then render one HTML report.

    params/<profile>.yaml ─► 01_data_prep ─► 02_train_lstm × each run ─► 03_compare_runs
                             ─► 04_generation_panel (when present) ─► reports/<profile>/report.html

Profiles: `smoke` (the whole pipeline in a few minutes on 2 CPU cores; the tests use it),
`default` (the main job on the embedded corpus) and `gpu` (full-size runs on a Colab T4).

Everything is built in reports/<profile>.tmp/ and renamed over reports/<profile>/ only
when every notebook succeeded, so a failure never replaces a good report; the message
names the notebook and cell, and the failed build stays in the .tmp folder to inspect.
Finished runs with the same config are reused (train() returns them at once), interrupted
ones resume; a run whose config in the profile changed is trained again from scratch.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lmlib import paths
from lmlib.errors import LMError
from lmlib.report.browser import CHROMIUM
from lmlib.report.profiles import Profile, load_profile

DATA_NOTEBOOK, TRAIN_NOTEBOOK, COMPARE_NOTEBOOK, PANEL_NOTEBOOK = (
    "01_data_prep.ipynb",
    "02_train_lstm.ipynb",
    "03_compare_runs.ipynb",
    "04_generation_panel.ipynb",
)


@dataclass(frozen=True)
class Step:
    """One papermill execution: which notebook, the output name, injected parameters."""

    notebook: str
    output: str
    parameters: dict
    label: str
    title: str | None = None


def plan(profile: Profile, runs_root: Path, prepared_dir: Path, notebooks_dir: Path | None = None) -> list[Step]:
    """The notebook executions of a profile, in order (04 only when that notebook exists)."""
    steps = [
        Step(
            DATA_NOTEBOOK,
            DATA_NOTEBOOK,
            {
                "corpus": profile.corpus,
                "protocol": profile.protocol,
                "min_freq": profile.min_freq,
                "prepared_dir": str(prepared_dir),
            },
            "data preparation",
            "1 · Data preparation",
        )
    ]
    for i, run in enumerate(profile.runs, 1):
        steps.append(
            Step(
                TRAIN_NOTEBOOK,
                f"02_train_lstm-{run.name}.ipynb",
                {
                    "run_name": run.name,
                    "preset": run.preset,
                    "overrides": profile.run_overrides(run),
                    "max_minutes": profile.max_minutes,
                    "device": profile.device,
                    "prepared_dir": str(prepared_dir),
                    "runs_root": str(runs_root),
                },
                f"training run {run.name!r}",
                f"2.{i} · Training run “{run.name}”",
            )
        )
    steps.append(
        Step(
            COMPARE_NOTEBOOK,
            COMPARE_NOTEBOOK,
            {
                "runs_root": str(runs_root),
                "run_names": [r.name for r in profile.runs],
                "baseline": profile.baseline,
                "compare_to": {r.name: r.vs for r in profile.runs if r.vs},
            },
            "comparison",
            "3 · Comparison of the runs",
        )
    )
    if (Path(notebooks_dir or paths.notebooks_dir()) / PANEL_NOTEBOOK).is_file():
        steps.append(
            Step(
                PANEL_NOTEBOOK,
                PANEL_NOTEBOOK,
                {"runs_root": str(runs_root)},
                "generation panel",
                "4 · Generation panel",
            )
        )
    return steps


def run_pipeline(
    profile: str = "default",
    reports_dir: str | os.PathLike = "reports",
    runs_root: str | os.PathLike | None = None,
    *,
    prepared_dir: str | os.PathLike | None = None,
    notebooks_dir: str | os.PathLike | None = None,
    params_dir: str | os.PathLike | None = None,
    fresh: bool = False,
    log=print,
) -> Path:
    """Execute the profile's notebooks and render reports/<profile>/report.html; return its path.

    runs_root defaults to runs/report-<profile>, prepared_dir to <runs_root>/_prepared. `fresh`
    retrains the profile's runs instead of reusing finished ones.
    """
    started = time.perf_counter()
    prof = load_profile(profile, params_dir)
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else paths.notebooks_dir()
    reports_dir = Path(reports_dir).resolve()
    runs_root = Path(runs_root or paths.runs_dir() / f"report-{prof.name}").resolve()
    prepared_dir = Path(prepared_dir).resolve() if prepared_dir else runs_root / "_prepared"
    target, build = reports_dir / prof.name, reports_dir / f"{prof.name}.tmp"
    shutil.rmtree(build, ignore_errors=True)
    (build / "notebooks").mkdir(parents=True)
    runs_root.mkdir(parents=True, exist_ok=True)
    _retire_stale_runs(prof, runs_root, fresh, log)
    reused = [r.name for r in prof.runs if (runs_root / r.name / "results.json").is_file()]
    if reused:
        log(f"reusing finished runs (same config): {', '.join(reused)}; pass fresh=True (--fresh) to retrain")
    steps = plan(prof, runs_root, prepared_dir, notebooks_dir)
    timings = []
    for i, step in enumerate(steps, 1):
        log(f"[{i}/{len(steps)}] {step.notebook} ({step.label}) ...")
        seconds = execute(step, notebooks_dir, build / "notebooks", target)
        timings.append((step, seconds))
        log(f"      done in {seconds:.0f} s")
    report = render(prof, runs_root, build, timings, time.perf_counter() - started, reused)
    browser_check(report, build / "screenshot.png", log)
    _swap(build, target)
    log(f"report: {target / report.name} ({_size(target)}; {time.perf_counter() - started:.0f} s in all)")
    return target / report.name


def execute(step: Step, notebooks_dir: Path, out_dir: Path, target: Path) -> float:
    """Run one notebook with papermill; a failure raises LMError naming the notebook and cell."""
    import papermill as pm

    source, output = notebooks_dir / step.notebook, out_dir / step.output
    if not source.is_file():
        raise LMError(f"notebook {source} is missing: the pipeline needs {step.notebook}")
    started = time.perf_counter()
    try:
        pm.execute_notebook(
            str(source),
            str(output),
            parameters=step.parameters,
            cwd=str(notebooks_dir),
            progress_bar=False,
            log_output=False,
        )
    except pm.PapermillExecutionError as err:
        where = failed_cell(output)
        raise LMError(
            f"notebook {step.notebook} ({step.label}) failed in {where}: {err.ename}: {err.evalue}\n"
            f"The executed notebook with the full traceback is {output}; "
            f"the previous report {target} was left unchanged."
        ) from None
    except Exception as err:  # a dead kernel, a timeout, an unreadable notebook
        raise LMError(
            f"notebook {step.notebook} ({step.label}) could not be executed: "
            f"{type(err).__name__}: {err}. The previous report {target} was left unchanged."
        ) from None
    return time.perf_counter() - started


def failed_cell(executed: Path) -> str:
    """'cell 7 (In [5], section “2. Train”): results = train(...)' for the first cell that raised."""
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:
        return "an unknown cell"
    position, section = 0, ""
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "papermill-error-cell-tag" in tags or "injected-parameters" in tags:
            continue  # cells papermill added: not in the notebook the user opens
        position += 1
        if cell.cell_type == "markdown":
            headings = re.findall(r"^#+\s+(.*)$", cell.source, re.M)
            section = headings[-1].strip() if headings else section
        elif any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = next((line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")), "")
            return f"cell {position} (In [{cell.get('execution_count')}], section “{section}”): {first.strip()[:80]}"
    return "an unknown cell"


def render(
    prof: Profile, runs_root: Path, build: Path, timings: list, wall_seconds: float, reused: list[str] = ()
) -> Path:
    """The title page from the runs' numbers, then every executed notebook as a section."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmlib import __version__
    from lmlib.report.compare import analysis, comparison_table, load_records, plot_curves
    from lmlib.report.html import Section, TitlePage, build_report

    names = [r.name for r in prof.runs if (runs_root / r.name / "results.json").is_file()]
    records = load_records(runs_root, names) if names else []
    table = comparison_table(records)
    figure = None
    if records:
        fig = plot_curves(records)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        figure = buffer.getvalue()
    training = sum(float(r.results.get("seconds", 0)) for r in records)
    page = TitlePage(
        title=prof.title,
        facts={
            "profile": f"{prof.name}: {prof.description}".strip(": "),
            "corpus": prof.corpus,
            "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "pipeline wall time": f"{wall_seconds / 60:.1f} minutes"
            + (f" (reusing finished runs: {', '.join(reused)})" if reused else ""),
            "training time": f"{training / 60:.1f} minutes over {len(records)} runs",
            "lmlib": f"{__version__} {git_commit()}".strip(),
        },
        headline=headline(table),
        table_html=table.reset_index().to_html(classes="comparison", index=False)
        if records
        else "<p>No finished runs.</p>",
        figure_png=figure,
        analysis_md=analysis(records, prof.baseline or None, {r.name: r.vs for r in prof.runs if r.vs})
        if records
        else "",
        notes_md=_questions(prof) + "\n\n" + _timings(timings),
    )
    sections = [Section(build / "notebooks" / step.output, step.title) for step, _ in timings]
    report = build_report(build, page, sections)
    summary = {
        "profile": prof.name,
        "wall_seconds": round(wall_seconds, 1),
        "training_seconds": round(training, 1),
        "reused_runs": list(reused),
        "steps": {step.output: round(sec, 1) for step, sec in timings},
        "runs": json.loads(table.reset_index().to_json(orient="records")) if records else [],
    }
    (build / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return report


def browser_check(report: Path, screenshot: Path, log, chromium: Path = CHROMIUM) -> dict | None:
    """Open the report offline in headless Chromium, when there is one: screenshot + what rendered."""
    try:
        import playwright  # noqa: F401  (the test extra)
    except ImportError:
        return None
    if not Path(chromium).exists():
        return None
    from lmlib.report.browser import check_in_browser

    try:
        seen = check_in_browser(report, screenshot, chromium=chromium, height=1600)
    except Exception as err:  # a browser problem must not cost the report
        log(f"browser check skipped: {type(err).__name__}: {err}")
        return None
    log(
        f"offline browser check: {seen['widgets']} widget views, {seen['images']} images, {seen['tables']} tables, "
        f"{len(seen['remote_requests'])} remote requests, {len(seen['errors'])} page errors; "
        f"screenshot {screenshot.name}"
    )
    return seen


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
    root = paths.checkout_root()
    if root is None:
        return ""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return f"(commit {out.stdout.strip()})" if out.returncode == 0 and out.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _questions(prof: Profile) -> str:
    lines = ["### The runs", ""]
    for run in prof.runs:
        change = ", ".join(f"`{k}={v}`" for k, v in run.overrides.items()) or "no overrides"
        lines.append(f"- **{run.name}**: preset `{run.preset}`, {change}. {run.question}".rstrip())
    budget = f"{prof.max_minutes:g} minutes" if prof.max_minutes else "each preset's own"
    common = ", ".join(f"`{k}={v}`" for k, v in prof.overrides.items())
    lines.append(
        f"\nTraining budget per run: {budget}; device: `{prof.device}`"
        + (f"; every run also sets {common}." if common else ".")
    )
    return "\n".join(lines)


def _timings(timings: list) -> str:
    rows = "\n".join(f"| {step.output} | {seconds:.0f} |" for step, seconds in timings)
    return f"### Pipeline steps\n\n| executed notebook | seconds |\n|---|---|\n{rows}"


def _retire_stale_runs(prof: Profile, runs_root: Path, fresh: bool, log) -> None:
    """Delete this profile's run folders that `fresh` asks to redo or whose config changed."""
    from lmlib.report.notebook import run_config
    from lmlib.training.loop import RESUMABLE_CHANGES
    from lmlib.training.runs import read_config

    data_fields = {"corpus", "protocol", "min_freq"}  # set from the prepared data, checked by train()
    for run in prof.runs:
        folder = runs_root / run.name
        if not (folder / "config.json").is_file():
            continue
        if not fresh:
            saved = read_config(folder)[0].to_dict()
            wanted = run_config(run.preset, prof.run_overrides(run), prof.max_minutes, prof.device).to_dict()
            changed = [k for k in wanted if saved[k] != wanted[k] and k not in RESUMABLE_CHANGES | data_fields]
            if not changed:
                continue
            log(f"run {run.name!r}: config changed ({', '.join(changed)}), training it again")
        shutil.rmtree(folder)


def _swap(build: Path, target: Path) -> None:
    """Rename the finished build over the old report (the old one is removed only afterwards)."""
    old = target.with_name(f"{target.name}.old.tmp")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(build, target)
    shutil.rmtree(old, ignore_errors=True)


def _size(folder: Path) -> str:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return f"{total / 2**20:.1f} MiB"
