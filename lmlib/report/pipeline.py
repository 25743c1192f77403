"""The report pipeline: run the numbered notebooks with papermill, then render one HTML report.

    params/<profile>.yaml ─► 01_data_prep ─► 02_train_lstm × each arm × each seed ─► 03_compare_runs
                             ─► 04_generation_panel (when present) ─► 05_sweep (when present and the
                             profile has a sweep block) ─► reports/<profile>/report.html

Profiles: `smoke` (the whole pipeline in a few minutes on 2 CPU cores; the tests use it),
`default` (the main job on the embedded corpus) and `gpu` (full-size runs on a Colab T4).

The training notebooks run `parallel` at a time (the profile's setting), each in its own
process with cores // parallel torch threads: on 2 cores, two 1-thread runs train these
small models faster than one 2-thread run after the other (benchmarks/README.md), and the
thread count is fixed, so a rebuild repeats the same arithmetic. `corpus` (and protocol,
min_freq) builds the same profile on other data, into reports/<profile>-<corpus>/ with its
runs in runs/report-<profile>-<corpus>/ (lmlib.report.profiles.load_profile).

Everything is built in reports/<profile>.tmp/ and renamed over reports/<profile>/ only
when every notebook succeeded, so a failure never replaces a good report; the message
names the notebook and cell, and the failed build stays in the .tmp folder to inspect.
Both folders are replaced or removed only when they hold nothing but a report build
(REPORT_LAYOUT); a folder of anything else is a one-line error and stays as it is.
Finished runs with the same config are reused (train() returns them at once), interrupted
ones resume; a run whose config in the profile changed is trained again from scratch.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lmlib import paths
from lmlib.atomic import replace_dir
from lmlib.config import RESUMABLE, differences
from lmlib.data.corpus import corpus_reference, legacy_corpus_name
from lmlib.data.splits import resolve_data
from lmlib.errors import LMError
from lmlib.report.browser import CHROMIUM
from lmlib.report.html import Section, build_report
from lmlib.report.parallel import run_steps, training_threads
from lmlib.report.profiles import Profile, load_profile
from lmlib.report.title import Build, finished_records, summary, title_page, write_summary
from lmlib.training.runs import RunPaths, read_config, write_config

DATA_NOTEBOOK, TRAIN_NOTEBOOK, COMPARE_NOTEBOOK, PANEL_NOTEBOOK = (
    "01_data_prep.ipynb",
    "02_train_lstm.ipynb",
    "03_compare_runs.ipynb",
    "04_generation_panel.ipynb",
)
SWEEP_NOTEBOOK = "05_sweep.ipynb"
# What a report build holds (build_report, render, browser_check, the .gitignore of a report on
# the user's corpus): a folder of these only, notebooks/ of .ipynb files, assets/ of files, is ours.
REPORT_LAYOUT = frozenset({"report.html", "summary.json", "screenshot.png", ".gitignore", "notebooks", "assets"})


@dataclass(frozen=True)
class Step:
    """One papermill execution: which notebook, the output name, injected parameters."""

    notebook: str
    output: str
    parameters: dict
    label: str
    title: str | None = None
    parallel: bool = False  # may run at the same time as its neighbours that may too (training runs)


TRAINING_GROUP = "Training runs"  # one heading for every run's notebook 02, each folded under it

# Notebook 03's test-time section tunes on a grid per profile: the smoke report only checks
# that it runs (one cache and one dynamic setting); a real report tunes the cache on the full
# grid and runs dynamic evaluation once (evaluation.tuning.GRIDS["report"]).
TEST_TIME_GRIDS = {"smoke": "small"}


def plan(
    profile: Profile,
    runs_root: Path,
    prepared_dir: Path,
    notebooks_dir: Path | None = None,
    reports_dir: Path = Path("reports"),
) -> list[Step]:
    """The notebook executions of a profile, in order (04 only when that notebook exists)."""
    # The corpus as the runs record it (an absolute path): a kernel reads it from any folder.
    data = {"corpus": corpus_reference(profile.corpus), "protocol": profile.protocol, "min_freq": profile.min_freq}
    steps = [
        Step(
            DATA_NOTEBOOK,
            DATA_NOTEBOOK,
            {**data, "prepared_dir": shown(prepared_dir)},
            "data preparation",
            "1 · Data preparation",
        )
    ]
    for i, rep in enumerate(profile.replicates(), 1):
        seed = {"seed": rep.seed} if rep.seed is not None else {}
        parameters = {
            "run_name": rep.name,
            "preset": rep.arm.preset,
            "overrides": {**profile.overrides, **rep.arm.overrides, **seed},
            "max_minutes": profile.max_minutes,
            "device": profile.device,
            "prepared_dir": shown(prepared_dir),
            "runs_root": shown(runs_root),
        }
        title = f"2.{i} · Training run “{rep.name}”"
        steps.append(
            Step(
                TRAIN_NOTEBOOK,
                f"02_train_lstm-{rep.name}.ipynb",
                parameters,
                f"training run {rep.name!r}",
                title,
                parallel=True,
            )
        )
    compare = {
        "runs_root": shown(runs_root),
        "arms": profile.arms(),
        "baseline": profile.baseline,
        "vs": profile.vs(),
        "prepared_dir": shown(prepared_dir),
        "test_time_grid": TEST_TIME_GRIDS.get(profile.name, "report"),
        "compare_summary": compare_summary(profile, reports_dir),
    }
    steps.append(Step(COMPARE_NOTEBOOK, COMPARE_NOTEBOOK, compare, "comparison", "3 · Comparison of the runs"))
    if (Path(notebooks_dir or paths.notebooks_dir()) / PANEL_NOTEBOOK).is_file():
        steps.append(
            Step(
                PANEL_NOTEBOOK,
                PANEL_NOTEBOOK,
                {"runs_root": shown(runs_root)},
                "generation panel",
                "4 · Generation panel",
            )
        )
    if profile.sweep and (Path(notebooks_dir or paths.notebooks_dir()) / SWEEP_NOTEBOOK).is_file():
        steps.append(
            Step(
                SWEEP_NOTEBOOK,
                SWEEP_NOTEBOOK,
                sweep_parameters(profile, runs_root),
                "sweep",
                "5 · Hyperparameter sweep",
            )
        )
    return steps


def compare_summary(profile: Profile, reports_dir: Path) -> str:
    """The summary.json of the build the profile sets itself beside (`compare_with`), when it exists; else ''."""
    if not profile.compare_with:
        return ""
    path = Path(reports_dir) / profile.compare_with / "summary.json"
    return shown(path.resolve()) if path.is_file() else ""


def shown(path: Path) -> str:
    """A path as the notebooks get it: relative to the folder they work in (the checkout's root, or where the
    report was started) when it lies inside it, so the report shows `runs/report-default`, never the
    machine's own folders; absolute otherwise (a folder the user chose elsewhere)."""
    base = (paths.checkout_root() or Path.cwd()).resolve()
    path = Path(path).resolve()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def sweep_parameters(profile: Profile, runs_root: Path) -> dict:
    """Notebook 05's parameters: the profile's study, stored beside its runs unless it names a storage."""
    sweep = profile.sweep
    storage = sweep["storage"] or f"sqlite:///{shown(runs_root / 'sweeps.db')}"
    return {
        "study": sweep["study"],
        "space_file": shown(Path(sweep["space"])),
        "trials": sweep["trials"],
        "storage": storage,
        "runs_root": shown(runs_root / "sweeps"),
    }


def run_pipeline(
    profile: str = "default",
    reports_dir: str | os.PathLike = "reports",
    runs_root: str | os.PathLike | None = None,
    *,
    prepared_dir: str | os.PathLike | None = None,
    notebooks_dir: str | os.PathLike | None = None,
    params_dir: str | os.PathLike | None = None,
    fresh: bool = False,
    corpus: str | None = None,
    protocol: str | None = None,
    min_freq: int | None = None,
    command: str | None = None,
    log=print,
) -> Path:
    """Execute the profile's notebooks and render reports/<profile>/report.html; return its path.

    runs_root defaults to runs/report-<profile>, prepared_dir to <runs_root>/_prepared. `fresh`
    retrains the profile's runs instead of reusing finished ones. `corpus`, `protocol`, `min_freq`
    replace the profile's data (the profile is then named <profile>-<corpus>). `command` is what
    the title page says built the report (default: the equivalent `python -m lmlib report` line).
    """
    started = time.perf_counter()
    prof = load_profile(profile, params_dir, corpus=corpus, protocol=protocol, min_freq=min_freq)
    command = command or report_command(profile, reports_dir, fresh, corpus, protocol, min_freq)
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else paths.notebooks_dir()
    reports_dir = Path(reports_dir).resolve()
    runs_root = Path(runs_root or paths.runs_dir() / f"report-{prof.name}").resolve()
    prepared_dir = Path(prepared_dir).resolve() if prepared_dir else runs_root / "_prepared"
    target, build = reports_dir / prof.name, reports_dir / f"{prof.name}.tmp"
    check_report_folder(target)  # before the work, not only after it
    check_report_folder(build)
    shutil.rmtree(build, ignore_errors=True)
    (build / "notebooks").mkdir(parents=True)
    runs_root.mkdir(parents=True, exist_ok=True)
    retire_stale_runs(prof, runs_root, fresh, log)
    reused = [r.name for r in prof.replicates() if (runs_root / r.name / "results.json").is_file()]
    if reused:
        log(f"reusing finished runs (same config): {', '.join(reused)}; pass fresh=True (--fresh) to retrain")
    steps = plan(prof, runs_root, prepared_dir, notebooks_dir, reports_dir)
    call = partial(execute, notebooks_dir=notebooks_dir, out_dir=build / "notebooks", target=target)
    timings = list(zip(steps, run_steps(steps, call, prof.parallel, log)))
    built = Build(
        prof,
        finished_records(prof, runs_root),
        timings,
        time.perf_counter() - started,
        tuple(reused),
        command,
        training_threads(prof.parallel),
        prof.parallel,
    )
    report = render(built, build)
    if prof.corpus != "austen":  # a report on the user's own corpus quotes it: keep it out of git
        (build / ".gitignore").write_text(f"# a report on {prof.corpus_title}: it quotes the corpus\n*\n")
    browser_check(report, build / "screenshot.png", log)
    check_report_folder(target)  # still ours after the minutes the notebooks took
    replace_dir(build, target)  # the old report goes only once the new one is complete
    log(f"report: {target / report.name} ({_size(target)}; {time.perf_counter() - started:.0f} s in all)")
    return target / report.name


def check_report_folder(folder: Path) -> None:
    """Refuse to replace or remove `folder` unless it is missing, empty, or a report build (REPORT_LAYOUT)."""
    if not (folder.exists() or folder.is_symlink()):
        return
    if folder.is_symlink() or not folder.is_dir():
        foreign = ["it is a file" if not folder.is_symlink() else "it is a symbolic link"]
    else:
        foreign = [p.name for p in folder.iterdir() if not _report_entry(p)]
    if foreign:
        listed = ", ".join(sorted(foreign)[:3]) + (", ..." if len(foreign) > 3 else "")
        raise LMError(
            f"{folder} is not a report lmlib built ({listed}): building the report there would delete it; "
            "move it away, or pass --reports-dir for another folder"
        )


def _report_entry(path: Path) -> bool:
    if path.name not in REPORT_LAYOUT or path.is_symlink():
        return False
    if path.name == "notebooks":
        return path.is_dir() and all(p.suffix == ".ipynb" and p.is_file() for p in path.iterdir())
    if path.name == "assets":
        return path.is_dir() and all(p.is_file() and not p.is_symlink() for p in path.iterdir())
    return path.is_file()


def report_command(profile, reports_dir, fresh, corpus, protocol, min_freq) -> str:
    """The `python -m lmlib report` line that builds this report."""
    args = ["python", "-m", "lmlib", "report", "--profile", str(profile)]
    for flag, value in (("--corpus", corpus), ("--protocol", protocol), ("--min-freq", min_freq)):
        args += [flag, str(value)] if value is not None else []
    args += ["--reports-dir", str(reports_dir)] if str(reports_dir) != "reports" else []
    return shlex.join(args + (["--fresh"] if fresh else []))


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
            cwd=str(kernel_dir(notebooks_dir)),
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


def kernel_dir(notebooks_dir: Path) -> Path:
    """Where the notebooks run: in a checkout, its notebooks/ (their setup() moves to the root); in an
    installed package, the folder the report was started from, not site-packages, so that relative
    paths (data/hpd, a corpus file, runs/) are the user's, as in the CLI."""
    return Path(notebooks_dir) if paths.checkout_root() is not None else Path.cwd()


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


def render(built: Build, folder: Path) -> Path:
    """The title page from the runs' numbers, then every executed notebook as a section; and summary.json."""
    page = title_page(built)
    sections = [
        Section(folder / "notebooks" / step.output, step.title, TRAINING_GROUP if step.parallel else None)
        for step, _ in built.timings
    ]
    report = build_report(folder, page, sections)
    write_summary(folder / "summary.json", summary(built))
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
        f"page height {seen['height']:,} px at 1200 px wide; screenshot {screenshot.name}"
    )
    return seen


def retire_stale_runs(prof: Profile, runs_root: Path, fresh: bool, log) -> None:
    """Delete this profile's run folders that `fresh` asks to redo or whose config changed in the profile."""
    data = resolve_data(prof.data())  # what notebook 01 will prepare, so `None` compares as what it resolves to
    for rep in prof.replicates():
        folder = runs_root / rep.name
        if not (folder / "config.json").is_file():
            continue
        if not fresh:
            recorded, info = read_config(folder)
            wanted = prof.run_config(rep.arm, data, rep.seed)
            changed = differences(recorded, wanted, ignore=RESUMABLE)
            if changed.keys() == {"corpus"} and recorded.data.corpus == legacy_corpus_name(wanted.data.corpus):
                # lmlib 0.2.0 recorded a corpus given by path by its base name alone: the same run,
                # whose config now records the path, so that evaluate and notebook 03 find its corpus
                write_config(RunPaths(folder), wanted, {**info, "corpus": wanted.data.corpus})
                log(f"run {rep.name!r}: recorded its corpus by name only; it now records {wanted.data.corpus}")
                continue
            if not changed:
                continue
            log(f"run {rep.name!r}: config changed ({', '.join(changed)}), training it again")
        shutil.rmtree(folder)


def _size(folder: Path) -> str:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return f"{total / 2**20:.1f} MiB"
