"""One flat, frozen configuration for a run: data, model and training fields.

The same field names appear here, in the CLI flags (`--emb-dim`), in params/*.yaml, in the
notebooks' parameters cells and in each run's config.json.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from lmlib.errors import LMError

OPTIMIZERS = ("adam", "adamw", "sgd", "ntasgd")
INITS = ("original", "awd", "uniform")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "mixed", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class RunConfig:
    """Every hyperparameter of a run. Defaults are the original study's recipe."""

    # --- data
    corpus: str = "austen"
    protocol: str | None = None  # None: "original" for raw text, "given" for pre-split folders
    min_freq: int | None = None  # None: 3 (original), 1 (given)
    subset_tokens: int = 0  # keep only the first N tokens of each split (0 = all); for smoke tests

    # --- model (Merity et al. 2017 = "Regularizing and Optimizing LSTM Language Models")
    emb_dim: int = 1024
    hid_dim: int = 1024
    num_layers: int = 2
    init: str = "original"  # "original": the study's; "awd": U(-0.1, 0.1) embedding; "uniform": all U(-0.1, 0.1)
    dropout_input: float = 0.65  # on the embedding output
    dropout_hidden: float = 0.65  # between LSTM layers
    dropout_output: float = 0.65  # on the last LSTM layer's output
    locked_dropout: bool = False  # one mask per sequence, shared across time steps (§4.2)
    dropout_embedding: float = 0.0  # drop whole words from the embedding matrix (§4.3)
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden weights (§4.1)
    tie_weights: bool = False  # decoder shares the embedding matrix (§4.5)
    alpha: float = 0.0  # activation regularisation, AR (§4.6)
    beta: float = 0.0  # temporal activation regularisation, TAR (§4.6)
    adaptive_softmax: bool = False  # nn.AdaptiveLogSoftmaxWithLoss over frequency-sorted words
    cutoffs: tuple[int, ...] = ()  # adaptive softmax cut-offs; () = automatic

    # --- training
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    eval_batch_size: int = 0  # 0: same as batch_size (as the original evaluated)
    bptt: int = 50
    variable_bptt: bool = False  # AWD-LSTM random sequence lengths (§4.1)
    clip: float = 0.25  # max gradient norm; 0 = off
    epochs: int = 50
    max_minutes: float = 0.0  # wall-clock budget for training; 0 = none
    lr_factor: float = 0.5  # ReduceLROnPlateau factor (original 0.5); 1.0 = no schedule
    lr_patience: int = 0  # ReduceLROnPlateau patience (original 0)
    lr_decay_start: int = 0  # >0: multiply lr by lr_factor every epoch from this one (Zaremba et al. 2014)
    patience: int = 0  # early stopping after N epochs without improvement; 0 = off
    nonmono: int = 5  # NT-ASGD: switch to averaging when valid is worse than N epochs ago (§3)
    seed: int = 1234
    device: str = "auto"
    precision: str = (
        "auto"  # auto: mixed on CUDA, fp32 on CPU; mixed: bf16/fp16 autocast where native (lmlib.training.device)
    )
    checkpoint_minutes: float = 5.0  # also checkpoint mid-epoch this often

    def __post_init__(self):
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("init", self.init, INITS)
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        for name in ("emb_dim", "hid_dim", "num_layers", "batch_size", "bptt", "epochs"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("eval_batch_size", "subset_tokens", "lr_patience", "patience", "lr_decay_start", "seed"):
            _check_int(name, getattr(self, name), minimum=0)
        _check_int("nonmono", self.nonmono, minimum=1)
        for name in ("dropout_input", "dropout_hidden", "dropout_output", "dropout_embedding", "weight_drop"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise LMError(f"{name} must be in [0, 1), got {value!r}")
        for name in ("lr", "weight_decay", "clip", "max_minutes", "alpha", "beta", "checkpoint_minutes"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise LMError(f"{name} must be a number >= 0, got {value!r}")
        if self.lr <= 0:
            raise LMError(f"lr must be > 0, got {self.lr}")
        if not 0.0 < self.lr_factor <= 1.0:
            raise LMError(f"lr_factor must be in (0, 1], got {self.lr_factor}")
        if self.tie_weights and self.adaptive_softmax:
            raise LMError("tie_weights and adaptive_softmax cannot be combined: choose one")
        if list(self.cutoffs) != sorted(set(self.cutoffs)) or any(c <= 0 for c in self.cutoffs):
            raise LMError(f"cutoffs must be increasing positive integers, got {self.cutoffs}")

    @property
    def uses_per_layer_lstms(self) -> bool:
        """Locked dropout between layers, or a last layer sized for tying, need one LSTM per layer."""
        return self.locked_dropout or (self.tie_weights and self.emb_dim != self.hid_dim)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a dict (config.json, YAML); unknown fields are a clear error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LMError(f"unknown config field(s) {', '.join(unknown)}: known fields are {', '.join(sorted(known))}")
        data = dict(data)
        if "cutoffs" in data:
            data["cutoffs"] = tuple(data["cutoffs"] or ())
        return cls(**data)

    def replace(self, **overrides) -> RunConfig:
        """A copy with some fields changed (validated, unknown names rejected)."""
        return RunConfig.from_dict({**self.to_dict(), **overrides})


def field_types() -> dict[str, Any]:
    """Field name -> declared type string, for parsing CLI and YAML overrides."""
    return {f.name: f.type for f in dataclasses.fields(RunConfig)}


def parse_value(name: str, text: str) -> Any:
    """Parse `text` as the type of field `name` (for --set name=value and CLI flags)."""
    kinds = field_types()
    if name not in kinds:
        raise LMError(f"unknown config field {name!r}: known fields are {', '.join(sorted(kinds))}")
    kind = str(kinds[name])
    if text.lower() in ("none", "null") and "None" in kind:
        return None
    try:
        if kind.startswith("bool"):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
        if kind.startswith("tuple"):
            return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise LMError(f"{name} expects {kind}, got {text!r}") from None
    return text


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise LMError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LMError(f"{name} must be a whole number >= {minimum}, got {value!r}")
