"""A sweep's search space: params/sweeps/<name>.yaml, in the field names of every other config.

    base: {preset: cpu, overrides: {epochs: 6, max_minutes: 5}}   # what every trial starts from
    space:                                                          # what a trial draws
      hid_dim: {int: [128, 512], step: 64}
      lr: {float: [1e-4, 1e-2], log: true}
      dropout_output: {float: [0.1, 0.6]}
      tie_weights: {categorical: [true, false]}
    objective: valid_ppl          # minimised; reported per epoch to the pruner (valid_ppl or valid_loss)
    pruner: median                # median, successive_halving or none; or {median: {n_warmup_steps: 1}}

Everything is checked on load: a field that is not a config field fails with the config's
own message, and the base config with each bound and each category is built, so a value the
config rejects fails here, before any worker trains.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lmlib.config import FIELD_CONCERN, RunConfig
from lmlib.errors import LMError
from lmlib.presets import get_preset

OBJECTIVES = ("valid_ppl", "valid_loss")  # always on validation: choosing on test would leak it
PRUNERS = ("median", "successive_halving", "none")
_KEYS = {"base", "space", "objective", "pruner"}
_KINDS = {"int": {"step", "log"}, "float": {"step", "log"}, "categorical": set()}


@dataclass(frozen=True)
class Param:
    """One searched field: int or float between low and high (step, log), or one of some choices."""

    name: str
    kind: str  # "int", "float" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """Draw this field's value for an optuna trial."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class SweepSpace:
    """A loaded, checked space file."""

    path: str
    preset: str
    overrides: dict = field(default_factory=dict)
    params: tuple[Param, ...] = ()
    objective: str = "valid_ppl"
    pruner: str = "median"
    pruner_options: dict = field(default_factory=dict)

    def base(self) -> RunConfig:
        """The config every trial starts from."""
        return get_preset(self.preset, **self.overrides)

    def config_for(self, trial) -> RunConfig:
        """The config of one trial: the base with each searched field drawn by `trial`."""
        return self.base().replace(**{p.name: p.suggest(trial) for p in self.params})

    def signature(self) -> str:
        """What must be equal for two workers to share a study (JSON, stored with the study)."""
        fields = {
            "preset": self.preset,
            "overrides": self.overrides,
            "objective": self.objective,
            "params": [vars(p) for p in self.params],
        }
        return json.dumps(fields, sort_keys=True, default=list)


def load_space(path: str | os.PathLike, pruner: str | None = None) -> SweepSpace:
    """Read and check a space file; `pruner` (a CLI flag) replaces the file's choice."""
    path = Path(path)
    if not path.is_file():
        known = sorted(p.name for p in Path("params/sweeps").glob("*.yaml")) if Path("params/sweeps").is_dir() else []
        raise LMError(f"no space file {path}: pass a YAML file such as {', '.join(known) or 'params/sweeps/cpu.yaml'}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:  # a binary file is not UTF-8
        raise LMError(f"{path} is not a YAML text file ({type(err).__name__}): pass a space file") from None
    except OSError as err:
        raise LMError(f"cannot read {path}: {err.strerror or err}") from None
    if not isinstance(raw, dict):
        raise LMError(f"{path} must be a mapping with base, space, objective and pruner")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise LMError(f"{path}: unknown key(s) {', '.join(unknown)}; a space file has {', '.join(sorted(_KEYS))}")
    preset, overrides = _read_base(path, raw.get("base") or {})
    params = _read_params(path, raw.get("space"))
    objective = raw.get("objective", "valid_ppl")
    if objective not in OBJECTIVES:
        raise LMError(f"{path}: objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    name, options = _read_pruner(path, pruner if pruner is not None else raw.get("pruner", "median"))
    space = SweepSpace(str(path), preset, overrides, params, objective, name, options)
    _check_values(path, space)
    return space


def _read_base(path: Path, base) -> tuple[str, dict]:
    if not isinstance(base, dict) or set(base) - {"preset", "overrides"}:
        raise LMError(f"{path}: base is a mapping with a preset and overrides, e.g. {{preset: cpu, overrides: {{}}}}")
    overrides = base.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise LMError(f"{path}: base.overrides must be a mapping of config fields to values")
    _check_names(f"{path}, base.overrides", overrides)
    preset = str(base.get("preset", "cpu"))
    try:
        get_preset(preset, **overrides)
    except LMError as err:
        raise LMError(f"{path}, base: {err}") from None
    except (TypeError, ValueError) as err:  # a value of the wrong shape (a list of lists for cutoffs, ...)
        raise LMError(f"{path}, base: a value of the wrong kind ({err}); see the config fields' types") from None
    return preset, dict(overrides)


def _read_params(path: Path, space) -> tuple[Param, ...]:
    if not isinstance(space, dict) or not space:
        raise LMError(f"{path}: `space` must map config fields to ranges, e.g. {{lr: {{float: [1e-4, 1e-2]}}}}")
    _check_names(f"{path}, space", space)
    return tuple(_read_param(path, name, spec) for name, spec in space.items())


def _check_names(where: str, mapping: dict) -> None:
    """Keys are config field names: text (YAML reads `1:` as the integer 1)."""
    odd = [key for key in mapping if not isinstance(key, str)]
    if odd:
        raise LMError(f"{where}: {odd[0]!r} is not a config field name; keys are field names such as lr or hid_dim")


def _read_param(path: Path, name: str, spec) -> Param:
    where = f"{path}, space.{name}"
    if name not in FIELD_CONCERN:
        try:
            RunConfig().replace(**{name: None})  # the config's own message for an unknown field
        except LMError as err:
            raise LMError(f"{where}: {err}") from None
    kinds = [k for k in _KINDS if isinstance(spec, dict) and k in spec]
    if len(kinds) != 1:
        raise LMError(f"{where}: give exactly one of int: [low, high], float: [low, high] or categorical: [...]")
    kind = kinds[0]
    extra = sorted(set(spec) - {kind} - _KINDS[kind])
    if extra:
        raise LMError(f"{where}: {kind} takes {sorted(_KINDS[kind]) or 'no options'}, not {', '.join(extra)}")
    if kind == "categorical":
        choices = spec[kind]
        if not isinstance(choices, list) or not choices:
            raise LMError(f"{where}: categorical needs a non-empty list of values")
        nested = [c for c in choices if not isinstance(c, str | int | float | bool) and c is not None]
        if nested:  # optuna draws among plain values; a list or mapping is no config value either
            raise LMError(f"{where}: categorical takes plain values (numbers, text, true/false), not {nested[0]!r}")
        return Param(name, kind, choices=tuple(choices))
    low, high = _bounds(where, kind, spec[kind])
    step, log = spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise LMError(f"{where}: log is true or false, not {log!r}")
    if step is not None:
        step = _number(where, kind, step)
        if step <= 0 or (log and kind == "float"):
            raise LMError(f"{where}: step must be positive, and a float range takes step or log, not both")
    if log and low <= 0:
        raise LMError(f"{where}: a log range needs a positive lower bound, got {low}")
    return Param(name, kind, low, high, step, log)


def _bounds(where: str, kind: str, bounds) -> tuple:
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise LMError(f"{where}: {kind} takes [low, high], got {bounds!r}")
    low, high = (_number(where, kind, b) for b in bounds)
    if not low < high:
        raise LMError(f"{where}: the lower bound {low} must be below the upper bound {high}")
    return low, high


def _number(where: str, kind: str, value) -> float | int:
    """A bound or step as int or float; YAML reads 1e-4 (no dot) as text, so text is parsed too."""
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer of hundreds of digits
        number = None
    if number is None or number != number or number in (float("inf"), float("-inf")):
        raise LMError(f"{where}: {value!r} is not a finite number")
    if kind == "int":
        if number != int(number):
            raise LMError(f"{where}: an int range takes whole numbers, got {value!r}")
        return int(number)
    return number


def _read_pruner(path: Path, value) -> tuple[str, dict]:
    name, options = value, {}
    if isinstance(value, dict) and len(value) == 1:
        name, options = next(iter(value.items()))
        options = options or {}
    if name not in PRUNERS or not isinstance(options, dict):
        raise LMError(f"{path}: pruner is one of {', '.join(PRUNERS)} (or {{median: {{options}}}}), not {value!r}")
    make_pruner(name, options, where=str(path))  # options the pruner rejects fail here
    return name, dict(options)


def make_pruner(name: str, options: dict | None = None, where: str = "pruner"):
    """The optuna pruner: median (Golovin et al. 2017), successive halving (Jamieson & Talwalkar 2016), none."""
    import optuna

    kinds = {
        "median": optuna.pruners.MedianPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "none": optuna.pruners.NopPruner,
    }
    try:
        return kinds[name](**(options or {}))
    except (TypeError, ValueError) as err:
        raise LMError(f"{where}: pruner {name} does not take {options}: {err}") from None


def _check_values(path: Path, space: SweepSpace) -> None:
    """Build the base with each bound and each category: a value the config rejects fails now."""
    base = space.base()
    for param in space.params:
        values = param.choices if param.kind == "categorical" else (param.low, param.high)
        for value in values:
            try:
                base.replace(**{param.name: value})
            except LMError as err:
                raise LMError(f"{path}, space.{param.name} = {value!r}: {err}") from None
            except (TypeError, ValueError, OverflowError) as err:
                raise LMError(f"{path}, space.{param.name} = {value!r} is not a value of that field ({err})") from None
