"""The run configuration: one frozen dataclass per concern, composed into RunConfig.

    RunConfig
      data     DataConfig      which corpus, split protocol, vocabulary cut, subset
      model    ModelConfig     what the model (LSTM or Transformer, `arch`) builds (the only part the model receives)
      train    TrainConfig     optimiser, schedule, batches, budgets, seed
      runtime  RuntimeConfig   device, precision, checkpoint interval, logger: where and how, not what

The defaults are the original study's recipe. Field names are unique across the four, so
one flat spelling, `hid_dim=512`, means the same in CLI flags (`--hid-dim`, `--set`),
params/*.yaml, the notebooks' parameters and `RunConfig.replace`; config.json stores the
nested form. "Not set" is always None (no budget, no clipping, no early stopping, ...).
Each field carries its one-line help (`setting(default, help, choices)`): `train --help`,
`--print-config` and docs/configuration.md are all built from it. Run directories written by
older versions, where 0 meant "not set", are upgraded where they are read
(lmlib.training.runs.read_config), not here.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from lmlib.checks import check_bool, check_choice, check_int, check_number, check_text, not_int
from lmlib.errors import LMError

OPTIMIZERS = ("adam", "adamw", "sgd", "ntasgd")
LR_SCHEDULES = ("plateau", "step", "none")
INITS = ("original", "awd", "uniform")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "mixed", "fp32", "fp16", "bf16")
PROTOCOLS = ("original", "train-vocab", "by-book", "given")
ARCHS = ("lstm", "transformer")
LOGGERS = ("tensorboard",)
# What only the LSTM has: set on a Transformer they would be silently unused, so they are an error.
LSTM_ONLY = ("weight_drop", "alpha", "beta")
# Absurd sizes (a typo, a doctored config.json) stop here, not in the allocator; generous: presets have <= 44M.
MAX_PARAMETERS, MAX_LAYERS = 2**31, 100


def setting(default, help: str, choices: tuple[str, ...] | None = None):
    """A config field with its one-line help (and its choices): what `train --help`, `--print-config` and
    docs/configuration.md show, written once here."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class DataConfig:
    """The corpus and how it becomes a vocabulary and three splits."""

    corpus: str = setting("austen", "the text: austen (embedded), hpd (your Harry Potter books), or a file or folder")
    protocol: str | None = setting(
        None,
        "how to split and build the vocabulary; none: original for raw text, given for pre-split folders",
        PROTOCOLS,
    )
    min_freq: int | None = setting(
        None, "keep words seen at least N times, the rest are <unk>; none: 3 (original), 1 (given)"
    )
    subset_tokens: int | None = setting(None, "keep only the first N tokens of each split (smoke tests); none: all")

    def __post_init__(self):
        check_text("corpus", self.corpus)
        check_choices(self)
        check_int("min_freq", self.min_freq, minimum=1, optional=True)
        check_int("subset_tokens", self.subset_tokens, minimum=1, optional=True)


@dataclass(frozen=True)
class ModelConfig:
    """What the network is (Merity et al. 2017). arch="transformer" (lmlib.model.transformer) reads the same
    fields where they mean the same: emb_dim = d_model, hid_dim = feed-forward width; `init` is ignored."""

    arch: str = setting("lstm", "lstm (the original) or transformer (decoder-only, GPT-2 style)", ARCHS)
    emb_dim: int = setting(1024, "embedding width (a Transformer's d_model)")
    hid_dim: int = setting(1024, "LSTM hidden width; a Transformer's feed-forward width")
    num_layers: int = setting(2, "LSTM layers, or Transformer blocks")
    init: str = setting(
        "original", "original: the study's; awd: U(-0.1, 0.1) embedding; uniform: all U(-0.1, 0.1)", INITS
    )
    dropout_input: float = setting(0.65, "dropout on the embedding output")
    dropout_hidden: float = setting(
        0.65, "dropout between LSTM layers; a Transformer's on attention weights and each residual branch"
    )
    dropout_output: float = setting(0.65, "dropout on the last layer's output")
    locked_dropout: bool = setting(False, "one dropout mask per sequence, shared across time steps (AWD-LSTM §4.2)")
    dropout_embedding: float = setting(0.0, "drop whole words from the embedding matrix (AWD-LSTM §4.3)")
    weight_drop: float = setting(0.0, "DropConnect on the LSTM's hidden-to-hidden weights (AWD-LSTM §4.1)")
    tie_weights: bool = setting(False, "the decoder shares the embedding matrix (Press & Wolf 2017; AWD-LSTM §4.5)")
    alpha: float = setting(0.0, "activation regularisation, AR (AWD-LSTM §4.6); LSTM only")
    beta: float = setting(0.0, "temporal activation regularisation, TAR (AWD-LSTM §4.6); LSTM only")
    adaptive_softmax: bool = setting(False, "an adaptive softmax over frequency-sorted words (Grave et al. 2017)")
    cutoffs: tuple[int, ...] | None = setting(None, "adaptive softmax cut-offs, e.g. 2000,10000; none: automatic")
    n_heads: int = setting(4, "Transformer: attention heads (emb_dim must divide by it); unused by the LSTM")
    context: int = setting(64, "Transformer: previous tokens carried as attention context; unused by the LSTM")

    def __post_init__(self):
        check_choices(self)
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
            raise LMError(f"cutoffs must be increasing positive integers (or none: automatic), got {self.cutoffs}")

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

    optimizer: str = setting("adam", "the optimiser; ntasgd: SGD that switches to averaging (AWD-LSTM §3)", OPTIMIZERS)
    lr: float = setting(1e-3, "learning rate")
    weight_decay: float = setting(0.0, "L2 penalty on the weights (decoupled for adamw)")
    batch_size: int = setting(128, "rows trained side by side (under torchrun the global batch, split by rows)")
    eval_batch_size: int | None = setting(None, "rows for validation and test; none: batch_size (as the original)")
    bptt: int = setting(50, "tokens per training window (truncated backpropagation through time)")
    variable_bptt: bool = setting(False, "random window lengths around bptt (AWD-LSTM §4.1)")
    clip: float | None = setting(0.25, "maximum gradient norm; none: no clipping")
    epochs: int = setting(50, "passes over the training split, at most")
    max_minutes: float | None = setting(None, "wall-clock budget for the run (it stops mid-epoch); none: no budget")
    lr_schedule: str = setting(
        "plateau",
        "plateau: lr x lr_factor when validation stops improving (the original); step: lr x lr_factor "
        "every epoch from lr_decay_start (Zaremba et al. 2014); none: a constant lr",
        LR_SCHEDULES,
    )
    lr_factor: float = setting(0.5, "what the schedule multiplies the learning rate by, in (0, 1)")
    lr_patience: int = setting(0, "plateau: epochs without improvement before a cut (the original: 0)")
    lr_decay_start: int | None = setting(None, "step: the first epoch of the decay; none with the other schedules")
    patience: int | None = setting(None, "stop after N epochs without a better validation loss; none: never early")
    nonmono: int = setting(5, "ntasgd: switch to averaging when validation is worse than N epochs ago (AWD-LSTM §3)")
    seed: int = setting(1234, "seeds weights, dropout and window lengths: on a CPU a run repeats exactly")

    def __post_init__(self):
        check_choices(self)
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

    device: str = setting("auto", "auto: the GPU when there is one (cuda, then mps), else the CPU", DEVICES)
    precision: str = setting(
        "auto",
        "auto: mixed on a GPU, fp32 on a CPU; mixed: bf16 or fp16 where native (lmlib.training.device)",
        PRECISIONS,
    )
    checkpoint_minutes: float | None = setting(5.0, "also checkpoint mid-epoch this often; none: at epoch ends only")
    logger: str | None = setting(
        None,
        "also log per-step loss, learning rate and throughput to <run-dir>/tensorboard (needs the "
        "tensorboard extra); none: progress bars only",
        LOGGERS,
    )

    def __post_init__(self):
        check_choices(self)
        check_number("checkpoint_minutes", self.checkpoint_minutes, low=0.0, low_open=True, optional=True)


def check_choices(part) -> None:
    """Each field that lists its choices holds one of them (or None where that is its default: not set)."""
    for f in fields(part):
        value, choices = getattr(part, f.name), f.metadata.get("choices")
        if choices and not (value is None and f.default is None):
            check_choice(f.name, value, choices)


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
        """Build from the nested form config.json stores, or from flat field names (overrides, YAML files).

        Today's spellings only: what older versions wrote is upgraded where run files are read
        (lmlib.training.runs.read_config), never here."""
        return cls().replace(**flat_fields(data))

    def replace(self, **overrides) -> RunConfig:
        """A copy with some fields changed, by their flat names (validated; unknown names are an error)."""
        check_known(overrides)
        values = dict(overrides)
        if isinstance(values.get("cutoffs"), list):
            values["cutoffs"] = tuple(values["cutoffs"])  # JSON and YAML give lists
        parts = {}
        for concern in CONCERNS:
            mine = {k: v for k, v in values.items() if FIELD_CONCERN[k] == concern}
            parts[concern] = dataclasses.replace(getattr(self, concern), **mine)
        return RunConfig(**parts)


def flat_fields(data: dict[str, Any]) -> dict[str, Any]:
    """{field: value} from the nested form ({"model": {"hid_dim": ...}, ...}) or the flat one."""
    if not isinstance(data, dict):
        raise LMError(f"a config must be a mapping of field names to values, got {type(data).__name__}")
    if set(data) <= set(CONCERNS) and all(isinstance(v, dict) for v in data.values()):
        return {k: v for part in data.values() for k, v in part.items()}
    return dict(data)


def check_known(names) -> None:
    """Unknown field names are an error that suggests the nearest known one (`hidden_dim`: did you mean hid_dim?)."""
    unknown = [name for name in names if name not in FIELD_CONCERN]
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(str(name), list(FIELD_CONCERN), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known fields are {', '.join(sorted(FIELD_CONCERN))}"
    raise LMError(f"unknown config field {name!r}: {hint}")


def differences(base: RunConfig, other: RunConfig, ignore=frozenset()) -> dict[str, tuple[Any, Any]]:
    """Fields where `other` differs from `base`: flat name -> (base value, other value)."""
    a, b = base.flat(), other.flat()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in ignore}


def parse_value(name: str, text: str) -> Any:
    """Parse `text` as the type of field `name` (for --set name=value, CLI flags and sweep spaces)."""
    check_known([name])
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


# -- Describing the fields (train --help, --print-config, docs/configuration.md), from their metadata ---------------


@dataclass(frozen=True)
class FieldDoc:
    """One config field as the help and the docs show it."""

    name: str
    concern: str  # data, model, train or runtime
    default: Any
    help: str
    metavar: str  # what the flag takes: N, X, true|false, {a,b}, ... with |none where "not set" is allowed


def field_docs() -> list[FieldDoc]:
    """Every field in declaration order, concern by concern, with its help text and default."""
    docs = []
    for concern, cls in CONCERNS.items():
        for f in fields(cls):
            docs.append(FieldDoc(f.name, concern, f.default, f.metadata["help"], _metavar(f)))
    return docs


def value_text(value) -> str:
    """A value as it is typed on the command line (none, true, 0.001, 2000,10000)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def fields_markdown() -> str:
    """The table of fields in docs/configuration.md (a test checks that the page holds exactly this)."""
    lines = ["| field | concern | takes | default | what it does |", "|---|---|---|---|---|"]
    for doc in field_docs():
        takes, text = doc.metavar.replace("|", " or "), doc.help.replace("<", "&lt;").replace("|", "\\|")
        lines.append(f"| `{doc.name}` | {doc.concern} | {takes} | `{value_text(doc.default)}` | {text} |")
    return "\n".join(lines) + "\n"


def config_yaml(config: RunConfig) -> str:
    """The config as YAML of flat field names, concern by concern, each field with its help as a comment: what
    `train --print-config` prints and `train --config FILE` reads back."""
    import yaml

    values = config.flat()
    lines = ["# A run configuration (python -m lmlib train --config FILE reads it back; none means not set)."]
    concern = None
    for doc in field_docs():
        if doc.concern != concern:
            concern = doc.concern
            lines.append(f"# -- {concern}")
        value = yaml.safe_dump(values[doc.name], default_flow_style=True).removesuffix("...\n").strip()
        lines.append(f"{doc.name + ': ' + value:<28} # {doc.help}")
    return "\n".join(lines) + "\n"


def _metavar(f: dataclasses.Field) -> str:
    kind = _field_type(f.name)
    optional = type(None) in typing.get_args(kind)
    base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
    if f.metadata.get("choices"):
        text = "{" + ",".join(f.metadata["choices"]) + "}"
    elif typing.get_origin(base) is tuple:
        text = "N,N,..."
    else:
        text = {int: "N", float: "X", bool: "true|false", str: "TEXT"}[base]
    return text + "|none" if optional else text
