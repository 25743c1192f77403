"""Report profiles: params/<name>.yaml read and checked into the runs a report compares.

A profile names a corpus (and protocol), a per-run time budget, overrides for every run,
and the runs. Each run either names a `preset` (plus `overrides`), or names the run it
modifies under `vs` and states only what it changes: it then starts from that run's preset
and overrides, so `{name: awd-256-tied, vs: awd-256, overrides: {tie_weights: true}}` reads
as the one change it is. Every run's config is built and validated on load, and a run that
does not differ from its `vs` is an error, so a typo fails before anything trains.

An optional `sweep:` block adds notebook 05 to the report: a small hyperparameter study,
`{space: smoke, trials: 3}` (a file in params/sweeps/ or a path; `storage` and `study` optional).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lmlib import paths
from lmlib.config import REPLICATE, RunConfig, differences
from lmlib.errors import LMError
from lmlib.presets import config_for_run

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RUN_KEYS = {"name", "preset", "overrides", "question", "vs"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a profile, resolved: its preset, all its overrides, the question and the run it modifies."""

    name: str
    preset: str
    overrides: dict = field(default_factory=dict)  # inherited from `vs` (when it has no preset of its own) + its own
    question: str = ""
    vs: str = ""  # the run this one modifies (the analysis measures the change against it)
    change: dict = field(default_factory=dict)  # what this run's YAML entry itself sets
    inherits: bool = False  # True: no preset of its own, it starts from its `vs`


@dataclass(frozen=True)
class Profile:
    """A named set of runs on one corpus (params/<name>.yaml)."""

    name: str
    title: str
    description: str
    corpus: str
    protocol: str | None
    min_freq: int | None
    device: str | None  # None: each preset's own (auto)
    max_minutes: float | None  # per-run training budget; None: each preset's own
    runs: tuple[RunSpec, ...]
    baseline: str = ""
    overrides: dict = field(default_factory=dict)  # applied to every run (a run's own win)
    sweep: dict | None = None  # {space (a file path), trials, storage, study}: notebook 05's study; None: none

    def data(self) -> dict:
        """The profile's DataConfig fields that are set."""
        values = {"corpus": self.corpus, "protocol": self.protocol, "min_freq": self.min_freq}
        return {k: v for k, v in values.items() if v is not None}

    def run_config(self, run: RunSpec, data: dict | None = None) -> RunConfig:
        """The config `run` trains with: preset, the profile's overrides, the run's, budget, device, data."""
        return config_for_run(preset=run.preset, overrides={**self.overrides, **run.overrides},
                              max_minutes=self.max_minutes, device=self.device, data=data or self.data())  # fmt: skip

    def vs(self) -> dict[str, str]:
        """run name -> the run it modifies."""
        return {r.name: r.vs for r in self.runs if r.vs}


def load_profile(name_or_path: str | os.PathLike, params_dir: Path | None = None) -> Profile:
    """Read and check params/<name>.yaml (or a YAML path)."""
    path = _profile_path(name_or_path, Path(params_dir) if params_dir is not None else paths.params_dir())
    raw = _read_yaml(path)
    runs = _resolve_runs(path, raw.get("runs"))
    overrides = raw.get("overrides") or {}
    if not _is_overrides(overrides):
        raise LMError(f"{path}: `overrides` must be a mapping of config fields to values, not {overrides!r}")
    profile = Profile(
        name=path.stem, title=str(raw.get("title", f"Word-level LSTM language models: {path.stem}")),
        description=str(raw.get("description", "")), corpus=str(raw.get("corpus", "austen")),
        protocol=raw.get("protocol"), min_freq=raw.get("min_freq"), device=raw.get("device"),
        max_minutes=raw.get("max_minutes"), runs=runs, baseline=str(raw.get("baseline", "")),
        overrides=dict(overrides), sweep=_read_sweep(path, raw.get("sweep")),
    )  # fmt: skip
    _check_runs(path, profile)
    return profile


_SWEEP_KEYS = {"space", "trials", "storage", "study"}


def _read_sweep(path: Path, block) -> dict | None:
    """The profile's sweep: the space file resolved (params/sweeps/<name>.yaml or a path), trials >= 1."""
    if block is None:
        return None
    if not isinstance(block, dict) or set(block) - _SWEEP_KEYS or "space" not in block:
        raise LMError(f"{path}: sweep is a mapping with a space and trials (storage, study optional), not {block!r}")
    trials = block.get("trials", 3)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise LMError(f"{path}: sweep.trials is the study's number of trials, a whole number >= 1, not {trials!r}")
    space = Path(str(block["space"]))
    if space.suffix not in (".yaml", ".yml"):
        space = path.parent / "sweeps" / f"{space}.yaml"
    if not space.is_file():
        raise LMError(f"{path}: sweep.space {block['space']!r} is not a file ({space}): name one in params/sweeps/")
    return {"space": str(space.resolve()), "trials": trials, "storage": block.get("storage"),
            "study": str(block.get("study") or path.stem)}  # fmt: skip


def _profile_path(name_or_path, params_dir: Path) -> Path:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = params_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in params_dir.glob("*.yaml"))) or "none"
        raise LMError(
            f"no profile {str(name_or_path)!r} ({path} is missing): choose one of {known}, or pass a YAML file"
        )
    return path


def _read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise LMError(f"{path} is not valid YAML in UTF-8: {err}") from None
    if not isinstance(raw, dict):
        raise LMError(f"{path} must be a mapping (title, corpus, runs, ...), not a {type(raw).__name__}")
    return raw


def _resolve_runs(path: Path, entries) -> tuple[RunSpec, ...]:
    """Each YAML run entry as a RunSpec, with the preset and overrides it inherits through `vs`."""
    if not isinstance(entries, list) or not entries:
        raise LMError(f"{path} lists no runs: add at least one under `runs:` (name, preset or vs, overrides)")
    by_name = {}
    for entry in entries:
        _check_entry(path, entry)
        if entry["name"] in by_name:
            raise LMError(f"{path}: run names must be unique folder names, {entry['name']!r} appears twice")
        by_name[entry["name"]] = entry
    return tuple(_resolve(path, by_name, name, ()) for name in by_name)


def _check_entry(path: Path, entry) -> None:
    if not isinstance(entry, dict) or "name" not in entry:
        raise LMError(f"{path}: every run is a mapping with a name (and a preset or vs, overrides, question)")
    name = entry["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise LMError(f"{path}: run names must be unique folder names (letters, digits, - _ .), not {name!r}")
    unknown = sorted(set(entry) - _RUN_KEYS)
    if unknown:
        raise LMError(f"{path}, run {name!r}: unknown key(s) {unknown}; a run has {sorted(_RUN_KEYS)}")
    if not _is_overrides(entry.get("overrides") or {}):
        raise LMError(f"{path}, run {name!r}: overrides must be a mapping of config fields to values")
    if "preset" not in entry and "vs" not in entry:
        raise LMError(f"{path}, run {name!r}: name a preset, or the run it modifies under vs")


def _is_overrides(value) -> bool:
    """A mapping of field names (YAML also allows numbers and lists as keys)."""
    return isinstance(value, dict) and all(isinstance(key, str) for key in value)


def _resolve(path: Path, by_name: dict, name: str, chain: tuple) -> RunSpec:
    entry = by_name[name]
    own, vs = dict(entry.get("overrides") or {}), str(entry.get("vs") or "")
    if vs and vs not in by_name:
        raise LMError(f"{path}, run {name!r}: `vs` names {vs!r}, which the profile does not list")
    if name in chain:
        raise LMError(f"{path}: runs modify each other in a circle: {' -> '.join((*chain, name))}")
    if "preset" in entry:
        preset, overrides = str(entry["preset"]), own
    else:  # no preset of its own: start from the run it modifies
        parent = _resolve(path, by_name, vs, (*chain, name))
        preset, overrides = parent.preset, {**parent.overrides, **own}
    return RunSpec(name, preset, overrides, str(entry.get("question", "")), vs, own, inherits="preset" not in entry)


def _check_runs(path: Path, profile: Profile) -> None:
    """Build every run's config (a typo fails here) and check each differs from its `vs`."""
    configs = {}
    for run in profile.runs:
        try:
            configs[run.name] = profile.run_config(run)
        except LMError as err:
            raise LMError(f"{path}, run {run.name!r}: {err}") from None
    for run in profile.runs:
        if run.vs and not differences(configs[run.vs], configs[run.name], ignore=REPLICATE):
            raise LMError(f"{path}, run {run.name!r} trains exactly what {run.vs!r} trains: state what it changes")
    if profile.baseline and profile.baseline not in configs:
        raise LMError(f"{path}: baseline {profile.baseline!r} is not one of the runs")
