"""The report's first screen and summary.json, from the runs' own files.

The title page states what was run, on which corpus, machine and versions, with which
seeds and the exact command that built it, how long it took, the headline table (one row
per arm: mean and range over seeds), the curves with their seed bands and the written
analysis; summary.json holds the same numbers for scripts, under the keys results.json uses.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lmlib import __version__, paths
from lmlib.data.splits import resolve_data
from lmlib.report import numbers, prose
from lmlib.report.analysis import analysis
from lmlib.report.arms import SPREAD, arm_summary, arm_table_html, group_arms, learning_status, plot_arms
from lmlib.report.compare import RunRecord, load_records
from lmlib.report.html import TitlePage
from lmlib.report.profiles import Profile

# results.json keys each run contributes to summary.json (the display table is for the HTML only)
SUMMARY_KEYS = ("parameters", "best_epoch", "epochs_run", "train_ppl", "valid_ppl", "test_ppl", "wall_seconds",
                "train_tokens_per_s", "stopped", "resolved_device", "resolved_precision")  # fmt: skip


def finished_records(prof: Profile, runs_root: Path) -> list[RunRecord]:
    """The profile's runs (every arm, every seed) that finished, in the profile's order."""
    names = [r.name for r in prof.replicates() if (runs_root / r.name / "results.json").is_file()]
    return load_records(runs_root, names) if names else []


@dataclass(frozen=True)
class Build:
    """One report build: the profile, its finished runs, the executed steps and how the build ran."""

    profile: Profile
    records: list[RunRecord]
    timings: list = field(default_factory=list)  # (pipeline Step, seconds) per executed notebook
    wall_seconds: float = 0.0
    reused: tuple[str, ...] = ()  # finished runs the build did not retrain
    command: str = ""  # the `python -m lmlib report ...` line that built it
    threads: int | None = None  # torch threads per training process (None: torch's own choice)
    parallel: int = 1  # training runs at once

    @property
    def arms(self):
        return group_arms(self.records, self.profile.arms(), self.profile.vs())

    @property
    def training_seconds(self) -> float:
        return sum(float(r.results.get("wall_seconds") or 0) for r in self.records)


def title_page(build: Build) -> TitlePage:
    """The first screen: facts, headline, table, curves, analysis and the profile's questions."""
    prof, records, arms = build.profile, build.records, build.arms
    reuse_note = f" (reusing finished runs: {', '.join(build.reused)})" if build.reused else ""
    facts = {
        "profile": f"{prof.name}: {prof.description}".strip(": "),
        "corpus": corpus_text(prof),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": build.command,
        "machine": machine(),
        "versions": versions(),
        "pinned versions": lock_text(),
        "seeds": seeds_text(build),
        "precision": precision_text(records, prof.arms()),
        "reproducibility": reproducibility(records),
        "pipeline wall time": f"{numbers.minutes(build.wall_seconds)} minutes{reuse_note}",
        "training time": f"{numbers.minutes(build.training_seconds)} minutes over {len(records)} runs",
    }
    return TitlePage(
        title=prof.title,
        facts={k: v for k, v in facts.items() if v},
        headline=headline(arms),
        table_html=arm_table_html(arms) if records else "<p>No finished runs.</p>",
        figure_png=curves_png(arms) if records else None,
        analysis_md=analysis(records, prof.baseline or None, prof.vs(), prof.arms()) if records else "",
        notes_md=questions(prof) + "\n\n" + timings_table(build.timings),
    )


def summary(build: Build) -> dict:
    """summary.json: the build, each arm's mean and range over seeds, and every run's results and curve."""
    prof, records = build.profile, build.records
    arm_of = {name: arm for arm, names in prof.arms().items() for name in names}
    runs = [
        {
            "run": r.name,
            "arm": arm_of.get(r.name, r.name),
            "seed": r.config.train.seed,
            "finished_learning": learning_status(r).finished,
        }
        | {k: r.results.get(k) for k in SUMMARY_KEYS}
        | {"curve": curve(r)}
        for r in records
    ]
    arms = arm_summary(build.arms) if records else None
    return {
        "profile": prof.name,
        "corpus": prof.corpus,
        "command": build.command or None,
        "machine": machine(),
        "versions": versions(),
        "pinned_versions": lock_text(),
        "seeds": {arm: [rep.seed for rep in prof.replicates() if rep.arm.name == arm] for arm in prof.arms()},
        "spread": SPREAD,
        "wall_seconds": round(build.wall_seconds, 1),
        "training_seconds": round(build.training_seconds, 1),
        "reused_runs": list(build.reused),
        "steps": {step.output: round(seconds, 1) for step, seconds in build.timings},
        "arms": [] if arms is None else [{"arm": name, **row} for name, row in arms.round(4).to_dict("index").items()],
        "runs": runs,
    }


CURVE_COLUMNS = ("epoch", "wall_seconds", "train_ppl", "valid_ppl")


def curve(record: RunRecord) -> list[list[float]]:
    """The run's learning curve, one [epoch, wall_seconds, train_ppl, valid_ppl] per validation, so that another
    build's report can draw it beside its own from summary.json alone (lmlib.report.budgets)."""
    metrics = record.metrics
    if metrics.empty:
        return []
    return [[round(float(row[c]), 4) for c in CURVE_COLUMNS] for _, row in metrics.iterrows()]


def write_summary(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def curves_png(arms) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_arms(arms)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def headline(arms) -> str:
    """The one-sentence result for the title page (templates/headline.md.j2)."""
    best = min(arms, key=lambda a: a.result("valid_ppl").mean) if arms else None
    return prose.render("headline.md.j2", best=best)


def corpus_text(prof: Profile) -> str:
    """ "Jane Austen's novels (austen; protocol original, min_freq 3)": the data every run read."""
    data = resolve_data(prof.data())
    return (
        f"{prof.corpus_title or prof.corpus} ({prof.corpus}; protocol {data['protocol']}, min_freq {data['min_freq']})"
    )


def versions() -> str:
    """'Python 3.11.7, torch 2.13.0+cpu, numpy 2.3.1, lmlib 0.2.0 (commit abc1234)'."""
    import numpy
    import torch

    lmlib = f"{__version__} {git_commit()}".strip()
    return f"Python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}, lmlib {lmlib}"


LOCK_FILE = "constraints.txt"


def lock_text(root: Path | None = None) -> str:
    """Whether the installed packages are those constraints.txt pins (what `make` installs); '' outside a checkout."""
    from importlib import metadata

    root = root if root is not None else paths.checkout_root()
    lock = root / LOCK_FILE if root is not None else None
    if lock is None or not lock.is_file():
        return ""
    differ = []
    for line in lock.read_text(encoding="utf-8").splitlines():
        name, _, pinned = line.partition("==")
        if line.startswith("#") or not pinned:
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != pinned.strip():
            differ.append(f"{name} {installed} (pinned {pinned.strip()})")
    if not differ:
        return f"{LOCK_FILE}: every pinned package is installed at its pin"
    shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
    return f"{LOCK_FILE}: {len(differ)} installed package(s) differ from the pins: {shown}"


def seeds_text(build: Build) -> str:
    """'1, 2 for every arm; 2 runs at once, 1 torch thread each'."""
    prof = build.profile
    per_arm = {arm: [r.seed for r in prof.replicates() if r.arm.name == arm] for arm in prof.arms()}
    distinct = {tuple(s) for s in per_arm.values()}
    if distinct == {(None,)}:
        seeds = "each preset's own (one run per arm)"
    elif len(distinct) == 1:
        seeds = ", ".join(str(s) for s in distinct.pop()) + " for every arm"
    else:
        seeds = "; ".join(f"{arm}: {', '.join(str(x) for x in s)}" for arm, s in per_arm.items())
    threads, parallel = build.threads, build.parallel
    return seeds + (f"; {parallel} runs at once, {threads} torch thread(s) each" if threads else "; one run at a time")


def reproducibility(records: list[RunRecord]) -> str:
    """What a rebuild with the same command repeats, from how the runs ended."""
    clocked = [r.name for r in records if r.results.get("stopped") == "time_budget"]
    precisions = sorted({str(r.results.get("resolved_precision")) for r in records})
    if clocked:
        return (
            f"⚠ {len(clocked)} run(s) hit the time cap ({', '.join(clocked)}): where the clock stops depends "
            "on the machine and its load, so a rebuild gives other numbers for them"
        )
    return (
        f"every run ended on its epoch limit or early stopping, not the clock, so `--fresh` on this machine "
        f"repeats the training (precision {', '.join(precisions)}; docs/performance.md: what bf16 changes)"
    )


def precision_text(records: list[RunRecord], arms: dict[str, list[str]]) -> str:
    """'fp32 for every arm (asked: mixed)' or 'cpu bf16, transformer fp32 (...)': what each arm really ran in."""
    by_name = {r.name: r for r in records}
    ran, asked = {}, set()
    for arm, names in arms.items():
        mine = [by_name[n] for n in names if n in by_name]
        if mine:
            ran[arm] = "/".join(sorted({str(r.results.get("resolved_precision")) for r in mine}))
            asked |= {r.config.runtime.precision for r in mine}
    if not ran:
        return ""
    note = (
        " (asked: mixed, i.e. bf16 only where the CPU has native bf16 and oneDNN's bf16 LSTM kernel, else fp32)"
        if "mixed" in asked
        else f" (asked: {', '.join(sorted(asked))})"
    )
    if len(set(ran.values())) == 1:
        return f"{next(iter(ran.values()))} for every arm{note}"
    return ", ".join(f"{arm} {p}" for arm, p in ran.items()) + note


def machine() -> str:
    """CPU/GPU, cores and what precisions `auto` and `mixed` train in, in one line (versions: `versions`)."""
    import torch

    from lmlib.training.device import cpu_model, resolve_device, resolve_precision

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    device = resolve_device("auto")
    precision = f"precision auto = {resolve_precision('auto', device)}, mixed = {resolve_precision('mixed', device)}"
    return f"{cpu_model()}, {os.cpu_count()} cores, {gpu}, {precision}"


def git_commit() -> str:
    """'(commit abc1234)' in a git checkout, else ''."""
    root = paths.checkout_root()
    if root is None:
        return ""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"(commit {out.stdout.strip()})" if out.returncode == 0 and out.stdout.strip() else ""


def questions(prof: Profile) -> str:
    """Each run's change and the question it answers, plus the budget every run shares (templates/runs.md.j2)."""
    return prose.render("runs.md.j2", profile=prof)


def timings_table(timings: list) -> str:
    """The executed notebooks and their seconds (templates/timings.md.j2)."""
    parallel = any(getattr(step, "parallel", False) for step, _ in timings)
    return prose.render("timings.md.j2", timings=timings, parallel=parallel)
