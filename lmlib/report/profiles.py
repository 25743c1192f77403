"""Report profiles: params/<name>.yaml read and checked into the runs a report compares.

A profile names a corpus (and protocol), a per-run time budget, overrides for every run
and the runs themselves, each a preset plus overrides, the question it answers and the
run it modifies (`vs`). Every run's config is validated on load, so a typo in a preset
or field fails before anything trains.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lmlib import paths
from lmlib.errors import LMError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class RunSpec:
    """One run of a profile: a preset, overrides, and the question it answers."""

    name: str
    preset: str
    overrides: dict = field(default_factory=dict)
    question: str = ""
    vs: str = ""  # the run this one modifies (the analysis measures the change against it)


@dataclass(frozen=True)
class Profile:
    """A named set of runs on one corpus (params/<name>.yaml)."""

    name: str
    title: str
    description: str
    corpus: str
    protocol: str | None
    min_freq: int | None
    device: str
    max_minutes: float | None  # per-run training budget (None: each preset's own)
    runs: tuple[RunSpec, ...]
    baseline: str = ""
    overrides: dict = field(default_factory=dict)  # applied to every run (a run's own win)

    def run_overrides(self, run: RunSpec) -> dict:
        """The overrides a run trains with: the profile's, then the run's own."""
        return {**self.overrides, **run.overrides}


def load_profile(name_or_path: str | os.PathLike, params_dir: Path | None = None) -> Profile:
    """Read and check params/<name>.yaml (or a YAML path)."""
    from lmlib.report.notebook import run_config

    params_dir = Path(params_dir) if params_dir is not None else paths.params_dir()
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(params_dir) / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in Path(params_dir).glob("*.yaml"))) or "none"
        raise LMError(
            f"no profile {str(name_or_path)!r} ({path} is missing): choose one of {known}, or pass a YAML file"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise LMError(f"{path} is not valid YAML: {err}") from None
    try:
        runs = tuple(
            RunSpec(r["name"], r["preset"], dict(r.get("overrides") or {}), r.get("question", ""), r.get("vs", ""))
            for r in raw.get("runs") or []
        )
    except (KeyError, TypeError) as err:
        raise LMError(
            f"{path}: every run needs a name and a preset (and optional overrides, question, vs): {err}"
        ) from None
    names = [r.name for r in runs]
    if not runs:
        raise LMError(f"{path} lists no runs: add at least one under `runs:` (name, preset, overrides)")
    bad = [n for n in names if not _NAME.match(str(n))] + sorted({n for n in names if names.count(n) > 1})
    if bad:
        raise LMError(f"{path}: run names must be unique folder names (letters, digits, - _ .), not {bad}")
    unknown = [r.vs for r in runs if r.vs and r.vs not in names]
    if unknown:
        raise LMError(f"{path}: `vs` names runs that the profile does not list: {unknown}")
    profile = Profile(
        name=path.stem,
        title=raw.get("title", f"Word-level LSTM language models: {path.stem}"),
        description=raw.get("description", ""),
        corpus=str(raw.get("corpus", "austen")),
        protocol=raw.get("protocol"),
        min_freq=raw.get("min_freq"),
        device=raw.get("device", "auto"),
        max_minutes=raw.get("max_minutes"),
        runs=runs,
        baseline=raw.get("baseline", ""),
        overrides=dict(raw.get("overrides") or {}),
    )
    for run in runs:  # a typo in a preset or field fails here, before anything runs
        try:
            run_config(run.preset, profile.run_overrides(run), profile.max_minutes, profile.device)
        except LMError as err:
            raise LMError(f"{path}, run {run.name!r}: {err}") from None
    return profile
