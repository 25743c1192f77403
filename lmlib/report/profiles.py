"""Report profiles: params/<name>.yaml read and checked into the runs a report compares.

A profile names a corpus (and protocol), a per-run time budget, overrides for every run,
and the runs. Each run either names a `preset` (plus `overrides`), or names the run it
modifies under `vs` and states only what it changes: it then starts from that run's preset
and overrides, so `{name: awd-256-tied, vs: awd-256, overrides: {tie_weights: true}}` reads
as the one change it is. Every run's config is built and validated on load, and a run that
does not differ from its `vs` is an error, so a typo fails before anything trains.

A run of the profile is an *arm*: it trains once per seed (`seeds: [1, 2]` for the whole
profile, or per arm), each seed in its own run directory `<arm>-s<seed>`, so the comparison
can show the seed-to-seed spread next to each effect. The seed is never "a change" (REPLICATE).
`parallel: 2` trains two run directories at once (lmlib.report.pipeline).

`load_profile(name, corpus="hpd")` makes the same comparison on another corpus without a
YAML file: the profile is then named `<name>-<corpus>` (its report and runs go to their
own folders) and its title names that corpus (`{corpus}` in the YAML title).

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
from lmlib.checks import check_int, not_int
from lmlib.config import REPLICATE, RunConfig, differences
from lmlib.errors import LMError
from lmlib.presets import config_for_run

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RUN_KEYS = {"name", "preset", "overrides", "question", "vs", "seeds"}


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
    seeds: tuple[int, ...] | None = None  # its own seeds; None: the profile's


@dataclass(frozen=True)
class Replicate:
    """One training run of an arm: the arm and the seed, in the run directory `name`."""

    arm: RunSpec
    seed: int | None  # None: the preset's own seed (a profile without `seeds`)

    @property
    def name(self) -> str:
        return self.arm.name if self.seed is None else f"{self.arm.name}-s{self.seed}"


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
    seeds: tuple[int, ...] | None = None  # every arm trains once per seed; None: once, with the preset's seed
    parallel: int = 1  # training notebooks executed at once
    corpus_title: str = ""  # how the text names the corpus ("Jane Austen's novels")
    compare_with: str | None = None  # the profile whose build notebook 03 sets beside this one (report.budgets)

    def data(self) -> dict:
        """The profile's DataConfig fields that are set."""
        values = {"corpus": self.corpus, "protocol": self.protocol, "min_freq": self.min_freq}
        return {k: v for k, v in values.items() if v is not None}

    def run_config(self, run: RunSpec, data: dict | None = None, seed: int | None = None) -> RunConfig:
        """The config `run` trains with: preset, the profile's overrides, the run's, seed, budget, device, data."""
        overrides = {**self.overrides, **run.overrides, **({"seed": seed} if seed is not None else {})}
        return config_for_run(
            preset=run.preset,
            overrides=overrides,
            max_minutes=self.max_minutes,
            device=self.device,
            data=data or self.data(),
        )

    def replicates(self) -> tuple[Replicate, ...]:
        """Every training run: each arm once per seed, the seeds of an arm side by side."""
        return tuple(Replicate(run, seed) for run in self.runs for seed in (run.seeds or self.seeds or (None,)))

    def arms(self) -> dict[str, list[str]]:
        """arm name -> its run directories (one per seed), in the profile's order."""
        arms: dict[str, list[str]] = {}
        for rep in self.replicates():
            arms.setdefault(rep.arm.name, []).append(rep.name)
        return arms

    def vs(self) -> dict[str, str]:
        """run name -> the run it modifies."""
        return {r.name: r.vs for r in self.runs if r.vs}


def load_profile(
    name_or_path: str | os.PathLike,
    params_dir: Path | None = None,
    *,
    corpus: str | None = None,
    protocol: str | None = None,
    min_freq: int | None = None,
) -> Profile:
    """Read and check params/<name>.yaml (or a YAML path); `corpus`, `protocol`, `min_freq` replace its data.

    With another corpus (or protocol, or min_freq) than the YAML's, the profile is named
    `<name>-<corpus>[-<protocol>][-mf<N>]`, so its report and runs never overwrite the YAML's own.
    """
    path = _profile_path(name_or_path, Path(params_dir) if params_dir is not None else paths.params_dir())
    raw = _read_yaml(path)
    runs = _resolve_runs(path, raw.get("runs"))
    overrides = raw.get("overrides") or {}
    if not _is_overrides(overrides):
        raise LMError(f"{path}: `overrides` must be a mapping of config fields to values, not {overrides!r}")
    data = {
        "corpus": str(raw.get("corpus", "austen")),
        "protocol": raw.get("protocol"),
        "min_freq": raw.get("min_freq"),
    }
    given = {"corpus": corpus, "protocol": protocol, "min_freq": min_freq}
    changed = {k: v for k, v in given.items() if v is not None and v != data[k]}
    data.update(changed)
    title = str(raw.get("title", "Word-level language models on {corpus}"))
    named = corpus_title(data["corpus"])
    profile = Profile(
        name=path.stem + folder_suffix(changed),
        title=title_for(title, named, bool(changed)),
        description=str(raw.get("description", "")).replace("{corpus}", named),
        **data,
        device=raw.get("device"),
        max_minutes=raw.get("max_minutes"),
        runs=runs,
        baseline=str(raw.get("baseline", "")),
        overrides=dict(overrides),
        seeds=read_seeds(path, "the profile", raw.get("seeds")),
        parallel=read_parallel(path, raw.get("parallel", 1)),
        corpus_title=named,
        sweep=read_sweep(path, raw.get("sweep")),
        compare_with=read_compare_with(path, raw.get("compare_with"), folder_suffix(changed)),
    )
    _check_runs(path, profile)
    return profile


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
    seeds = read_seeds(path, f"run {name!r}", entry.get("seeds"))
    return RunSpec(name, preset, overrides, str(entry.get("question", "")), vs, own, "preset" not in entry, seeds)


def _check_runs(path: Path, profile: Profile) -> None:
    """Build every run's config (a typo fails here) and check each differs from its `vs`."""
    configs = {}
    for run in profile.runs:
        try:
            configs[run.name] = profile.run_config(run)
        except LMError as err:
            raise LMError(f"{path}, run {run.name!r}: {err}") from None
        except (TypeError, ValueError, OverflowError) as err:  # a YAML value of the wrong shape, e.g. cutoffs: [[1]]
            raise LMError(
                f"{path}, run {run.name!r}: a value in its overrides is of the wrong kind ({err}): each field takes "
                "a number, text, true/false or (cutoffs) a list of whole numbers"
            ) from None
    for run in profile.runs:
        if run.vs and not differences(configs[run.vs], configs[run.name], ignore=REPLICATE):
            raise LMError(f"{path}, run {run.name!r} trains exactly what {run.vs!r} trains: state what it changes")
    if profile.baseline and profile.baseline not in configs:
        raise LMError(f"{path}: baseline {profile.baseline!r} is not one of the runs")
    folders = [rep.name for rep in profile.replicates()]
    clash = sorted({f for f in folders if folders.count(f) > 1})
    if clash:
        raise LMError(f"{path}: two runs would train in the same folder {clash}: rename the arm (seeds add -s<seed>)")


# --- one field of a profile read and checked; each reader names the YAML file in its error ---

# How a title names the corpus ({corpus} in params/*.yaml titles); a path is named by its folder or file.
CORPUS_TITLES = {"austen": "Jane Austen's novels", "hpd": "the Harry Potter books"}


_SWEEP_KEYS = {"space", "trials", "storage", "study"}


def read_sweep(path: Path, block) -> dict | None:
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
    return {
        "space": str(space.resolve()),
        "trials": trials,
        "storage": block.get("storage"),
        "study": str(block.get("study") or path.stem),
    }


def corpus_title(corpus: str) -> str:
    """How the report names a corpus: "Jane Austen's novels", "the Harry Potter books", or its folder/file name."""
    if corpus in CORPUS_TITLES:
        return CORPUS_TITLES[corpus]
    path = Path(corpus).expanduser()
    return f"the corpus “{path.name or corpus}”"


def title_for(title: str, named: str, changed: bool) -> str:
    if "{corpus}" in title:
        return title.replace("{corpus}", named)
    return f"{title}, on {named}" if changed else title


def folder_suffix(changed: dict) -> str:
    """'-hpd', '-my_books-by-book', '-mf5': what sets a profile on other data apart, as a folder name."""
    parts = []
    if "corpus" in changed:
        path = Path(str(changed["corpus"])).expanduser()
        name = path.name.split(".")[0] if path.name else str(changed["corpus"])
        parts.append(re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-") or "corpus")
    if "protocol" in changed:
        parts.append(str(changed["protocol"]))
    if "min_freq" in changed:
        parts.append(f"mf{changed['min_freq']}")
    return "".join(f"-{p}" for p in parts)


def read_compare_with(path: Path, value, suffix: str) -> str | None:
    """`compare_with: default`: the profile (on the same data: the same folder suffix) to set beside this one."""
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise LMError(f"{path}: compare_with names another profile (e.g. default), not {value!r}")
    return value + suffix


def read_seeds(path: Path, where: str, value) -> tuple[int, ...] | None:
    """`seeds: [1, 2]`: distinct whole numbers >= 0; None when not given."""
    if value is None:
        return None
    ok = isinstance(value, list) and value and all(not not_int(s) and s >= 0 for s in value)
    if not ok or len(set(value)) != len(value):
        raise LMError(
            f"{path}: seeds of {where} must be a list of distinct whole numbers >= 0, e.g. [1, 2], not {value!r}"
        )
    return tuple(value)


def read_parallel(path: Path, value) -> int:
    try:
        check_int("parallel", value, minimum=1)
    except LMError as err:
        raise LMError(f"{path}: {err} (how many runs train at once)") from None
    return value
