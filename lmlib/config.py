"""The run configuration: one frozen dataclass per concern, composed into RunConfig.

    RunConfig
      data     DataConfig      which corpus, split protocol, vocabulary cut, subset
      model    ModelConfig     what the model (LSTM or Transformer, `arch`) builds (the only part the model receives)
      train    TrainConfig     optimiser, schedule, batches, budgets, seed
      runtime  RuntimeConfig   device, precision, checkpoint interval: where and how, not what

The defaults are the original study's recipe. Field names are unique across the four, so
one flat spelling, `hid_dim=512`, means the same in CLI flags (`--hid-dim`, `--set`),
params/*.yaml, the notebooks' parameters and `RunConfig.replace`; config.json stores the
nested form. "Not set" is always None (no budget, no clipping, no early stopping, ...).
Old flat config.json files, where 0 meant "not set", still load (`RunConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from lmlib.checks import check_bool, check_choice, check_int, check_number, check_text, not_int
from lmlib.config_upgrade import upgrade_old_spellings
from lmlib.errors import LMError

OPTIMIZERS = ("adam", "adamw", "sgd", "ntasgd")
LR_SCHEDULES = ("plateau", "step", "none")
INITS = ("original", "awd", "uniform")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "mixed", "fp32", "fp16", "bf16")
PROTOCOLS = ("original", "train-vocab", "by-book", "given")
ARCHS = ("lstm", "transformer")
# What only the LSTM has: set on a Transformer they would be silently unused, so they are an error.
LSTM_ONLY = ("weight_drop", "alpha", "beta")
# Absurd sizes (a typo, a doctored config.json) stop here, not in the allocator; generous: presets have <= 44M.
MAX_PARAMETERS, MAX_LAYERS = 2**31, 100


@dataclass(frozen=True)
class DataConfig:
    """The corpus and how it becomes a vocabulary and three splits."""

    corpus: str = "austen"  # "austen" (embedded), "hpd" (your books), or a path
    protocol: str | None = None  # None: "original" for raw text, "given" for pre-split folders
    min_freq: int | None = None  # None: 3 (original), 1 (given)
    subset_tokens: int | None = None  # keep only the first N tokens of each split (smoke tests)

    def __post_init__(self):
        check_text("corpus", self.corpus)
        if self.protocol is not None:
            check_choice("protocol", self.protocol, PROTOCOLS)
        check_int("min_freq", self.min_freq, minimum=1, optional=True)
        check_int("subset_tokens", self.subset_tokens, minimum=1, optional=True)


@dataclass(frozen=True)
class ModelConfig:
    """What the network is (Merity et al. 2017). arch="transformer" (lmlib.model.transformer) reads the same
    fields where they mean the same: emb_dim = d_model, hid_dim = feed-forward width; `init` is ignored."""

    arch: str = "lstm"  # "lstm" (the original) or "transformer" (decoder-only, GPT-2 style)
    emb_dim: int = 1024
    hid_dim: int = 1024  # LSTM: hidden width; transformer: feed-forward width
    num_layers: int = 2
    init: str = "original"  # "original": the study's; "awd": U(-0.1, 0.1) embedding; "uniform": all U(-0.1, 0.1)
    dropout_input: float = 0.65  # on the embedding output
    dropout_hidden: float = 0.65  # between LSTM layers; transformer: on attention weights and each residual branch
    dropout_output: float = 0.65  # on the last LSTM layer's output
    locked_dropout: bool = False  # one mask per sequence, shared across time steps (§4.2)
    dropout_embedding: float = 0.0  # drop whole words from the embedding matrix (§4.3)
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden weights (§4.1)
    tie_weights: bool = False  # decoder shares the embedding matrix (§4.5)
    alpha: float = 0.0  # activation regularisation, AR (§4.6)
    beta: float = 0.0  # temporal activation regularisation, TAR (§4.6)
    adaptive_softmax: bool = False  # nn.AdaptiveLogSoftmaxWithLoss over frequency-sorted words
    cutoffs: tuple[int, ...] | None = None  # adaptive softmax cut-offs; None = automatic
    n_heads: int = 4  # transformer: attention heads (emb_dim must divide by it); unused by the LSTM
    context: int = 64  # transformer: previous tokens carried as attention context; unused by the LSTM

    def __post_init__(self):
        check_choice("arch", self.arch, ARCHS)
        check_int("n_heads", self.n_heads, minimum=1, maximum=1024)
        check_int("context", self.context, minimum=1, maximum=65536)
        if self.arch == "transformer":
            self._check_transformer()
        for name in ("emb_dim", "hid_dim"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("num_layers", self.num_layers, minimum=1, maximum=MAX_LAYERS)
        if (n := recurrent_parameters(self)) > MAX_PARAMETERS:
            sizes = f"emb_dim {self.emb_dim}, hid_dim {self.hid_dim}, num_layers {self.num_layers}: {n:,}"
            what = "Transformer" if self.arch == "transformer" else "LSTM"
            raise LMError(f"{sizes} {what} parameters, over the {MAX_PARAMETERS:,} allowed; choose smaller sizes")
        check_choice("init", self.init, INITS)
        for name in ("dropout_input", "dropout_hidden", "dropout_output", "dropout_embedding", "weight_drop"):
            check_number(name, getattr(self, name), low=0.0, high=1.0, high_open=True)
        for name in ("locked_dropout", "tie_weights", "adaptive_softmax"):
            check_bool(name, getattr(self, name))
        check_number("alpha", self.alpha, low=0.0)
        check_number("beta", self.beta, low=0.0)
        if self.tie_weights and self.adaptive_softmax:
            raise LMError("tie_weights and adaptive_softmax cannot be combined: choose one")
        cutoffs = self.cutoffs or ()
        if list(cutoffs) != sorted(set(cutoffs)) or any(not_int(c) or c <= 0 for c in cutoffs):
            raise LMError(f"cutoffs must be increasing positive integers, got {self.cutoffs}")

    def _check_transformer(self) -> None:
        if self.emb_dim % self.n_heads:
            raise LMError(f"emb_dim {self.emb_dim} must divide by n_heads {self.n_heads}: each head gets a slice")
        used = [name for name in LSTM_ONLY if getattr(self, name)]
        if used:
            raise LMError(
                f"{', '.join(used)} {'applies' if len(used) == 1 else 'apply'} to the LSTM only (DropConnect on its "
                f"recurrent weights, AR/TAR on its states): set {' and '.join(f'{n}=0' for n in used)} "
                "with arch=transformer"
            )


def recurrent_parameters(model: ModelConfig) -> int:
    """The LSTM layers' parameter count from the sizes alone: per layer (input i, hidden h) W_ih 4h x i, W_hh 4h x h
    and two 4h biases; the last layer's h is emb_dim when tied (lmlib.model.lstm.lstm_sizes). For a Transformer
    its blocks: per block attention 4d(d + 1), feed-forward 2df + f + d, two layer norms 4d."""
    if model.arch == "transformer":
        d, f = model.emb_dim, model.hid_dim
        return model.num_layers * (4 * d * (d + 1) + 2 * d * f + f + 5 * d)
    out_dim = model.emb_dim if model.tie_weights else model.hid_dim
    sizes = [model.emb_dim] + [model.hid_dim] * (model.num_layers - 1) + [out_dim]
    return sum(4 * h * (i + h) + 8 * h for i, h in zip(sizes, sizes[1:]))


@dataclass(frozen=True)
class TrainConfig:
    """How the model is trained: optimiser, learning-rate schedule, batches, budgets, seed."""

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    eval_batch_size: int | None = None  # None: batch_size (as the original evaluated)
    bptt: int = 50
    variable_bptt: bool = False  # AWD-LSTM random sequence lengths (§4.1)
    clip: float | None = 0.25  # max gradient norm; None: no clipping
    epochs: int = 50
    max_minutes: float | None = None  # wall-clock budget for the run; None: none
    lr_schedule: str = "plateau"  # "plateau": ReduceLROnPlateau (the original); "step": fixed decay; "none"
    lr_factor: float = 0.5  # what the schedule multiplies the learning rate by
    lr_patience: int = 0  # plateau: epochs without improvement before a cut (original 0)
    lr_decay_start: int | None = None  # step: first epoch of lr x lr_factor per epoch (Zaremba et al. 2014)
    patience: int | None = None  # early stopping after N epochs without improvement; None: off
    nonmono: int = 5  # NT-ASGD: switch to averaging when valid is worse than N epochs ago (§3)
    seed: int = 1234

    def __post_init__(self):
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for name in ("batch_size", "bptt", "epochs", "nonmono"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("eval_batch_size", "patience", "lr_decay_start"):
            check_int(name, getattr(self, name), minimum=1, optional=True)
        check_int("lr_patience", self.lr_patience, minimum=0)
        check_int("seed", self.seed, minimum=0, maximum=2**63 - 1)
        check_bool("variable_bptt", self.variable_bptt)
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("clip", self.clip, low=0.0, low_open=True, optional=True)
        check_number("max_minutes", self.max_minutes, low=0.0, low_open=True, optional=True)
        check_number("lr_factor", self.lr_factor, low=0.0, high=1.0, low_open=True, high_open=True)
        if (self.lr_schedule == "step") != (self.lr_decay_start is not None):
            raise LMError("lr_decay_start is the first epoch of the step schedule: set both, or neither")
        if self.optimizer == "ntasgd" and self.lr_schedule != "none":
            raise LMError("ntasgd switches to averaging instead of following a schedule: set lr_schedule none")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a run computes; changing these never changes what it learns, so a run may resume with others."""

    device: str = "auto"  # auto: the GPU when there is one (cuda, then mps), else the CPU
    precision: str = (
        "auto"  # auto: mixed on a GPU, fp32 on a CPU; mixed: bf16/fp16 where native (lmlib.training.device)
    )
    checkpoint_minutes: float | None = 5.0  # also checkpoint mid-epoch this often; None: at epoch ends only

    def __post_init__(self):
        check_choice("device", self.device, DEVICES)
        check_choice("precision", self.precision, PRECISIONS)
        check_number("checkpoint_minutes", self.checkpoint_minutes, low=0.0, low_open=True, optional=True)


CONCERNS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "runtime": RuntimeConfig}
FIELD_CONCERN = {f.name: concern for concern, cls in CONCERNS.items() for f in fields(cls)}  # flat name -> concern
RUNTIME = frozenset(f.name for f in fields(RuntimeConfig))  # where and how a run computes
# What may differ between an interrupted run and its resumption: where it runs, and how long.
RESUMABLE = RUNTIME | {"epochs", "max_minutes", "patience"}
# Runs that differ only in these are repeats of one experiment, never "a change".
REPLICATE = RUNTIME | {"seed"}


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run, one dataclass per concern. Build with `RunConfig.from_dict` or `.replace`."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def flat(self) -> dict[str, Any]:
        """Every field under its one name: {"corpus": ..., "hid_dim": ..., ...}."""
        return {name: _jsonable(getattr(getattr(self, concern), name)) for name, concern in FIELD_CONCERN.items()}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The nested form config.json stores: {"data": {...}, "model": {...}, "train": {...}, "runtime": {...}}."""
        return {
            c: {f.name: _jsonable(getattr(getattr(self, c), f.name)) for f in fields(cls)}
            for c, cls in CONCERNS.items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from the nested form, or from flat fields (overrides, YAML, old config.json files)."""
        if not isinstance(data, dict):
            raise LMError(f"a config must be a mapping of field names to values, got {type(data).__name__}")
        if set(data) <= set(CONCERNS) and all(isinstance(v, dict) for v in data.values()):
            flat = {k: v for part in data.values() for k, v in part.items()}
        else:
            flat = dict(data)
        return cls().replace(**flat)

    def replace(self, **overrides) -> RunConfig:
        """A copy with some fields changed, by their flat names (validated; unknown names are an error)."""
        unknown = sorted(set(overrides) - set(FIELD_CONCERN))
        if unknown:
            raise LMError(
                f"unknown config field(s) {', '.join(unknown)}: known fields are {', '.join(sorted(FIELD_CONCERN))}"
            )
        values = upgrade_old_spellings(overrides)
        if isinstance(values.get("cutoffs"), list):
            values["cutoffs"] = tuple(values["cutoffs"])  # JSON and YAML give lists
        parts = {}
        for concern in CONCERNS:
            mine = {k: v for k, v in values.items() if FIELD_CONCERN[k] == concern}
            parts[concern] = dataclasses.replace(getattr(self, concern), **mine)
        return RunConfig(**parts)


def differences(base: RunConfig, other: RunConfig, ignore=frozenset()) -> dict[str, tuple[Any, Any]]:
    """Fields where `other` differs from `base`: flat name -> (base value, other value)."""
    a, b = base.flat(), other.flat()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in ignore}


def parse_value(name: str, text: str) -> Any:
    """Parse `text` as the type of field `name` (for --set name=value, CLI flags and sweep spaces)."""
    if name not in FIELD_CONCERN:
        raise LMError(f"unknown config field {name!r}: known fields are {', '.join(sorted(FIELD_CONCERN))}")
    kind = _field_type(name)
    optional = type(None) in typing.get_args(kind)
    base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
    if optional and text.strip().lower() in ("none", "null", ""):
        return None
    try:
        if base is bool:
            return _parse_bool(text)
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if typing.get_origin(base) is tuple:
            return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise LMError(f"{name} expects {_describe(kind)}, got {text!r}") from None
    return text


def _field_type(name: str):
    cls = CONCERNS[FIELD_CONCERN[name]]
    return typing.get_type_hints(cls)[name]


def _describe(kind) -> str:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and args:
        return f"{_describe(args[0])} or none"
    if typing.get_origin(kind) is tuple:
        return "comma-separated whole numbers"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(kind, str(kind))


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value
