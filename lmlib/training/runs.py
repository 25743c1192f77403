"""Run directories: what a run writes, and loading it back.

runs/<name>/
  config.json        every hyperparameter, plus the corpus/protocol actually used
  vocab.json         the vocabulary (ids of the model's rows)
  model.safetensors  best-validation weights
  last.safetensors   resume checkpoint: weights, optimiser, scheduler, RNG, loop position
  metrics.csv        one row per epoch, appended as it happens
  results.json       the final numbers (written when training ends)
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from lmlib.atomic import write_json, write_text
from lmlib.config import RunConfig
from lmlib.data.vocab import Vocab
from lmlib.errors import LMError
from lmlib.model.lstm import LSTMLanguageModel
from lmlib.training.checkpoint import load_model_tensors, load_tensors
from lmlib.training.device import resolve_device

METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "train_ppl",
    "valid_loss",
    "valid_ppl",
    "lr",
    "seconds",
    "tokens_per_s",
    "elapsed_s",
]


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def vocab(self) -> Path:
        return self.root / "vocab.json"

    @property
    def model(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def last(self) -> Path:
        return self.root / "last.safetensors"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def results(self) -> Path:
        return self.root / "results.json"


@dataclass
class Run:
    """A trained run loaded from disk."""

    path: Path
    config: RunConfig
    vocab: Vocab
    model: LSTMLanguageModel
    metrics: pd.DataFrame
    results: dict | None


def write_config(paths: RunPaths, config: RunConfig, data: dict) -> None:
    write_json(paths.config, {"config": config.to_dict(), "data": data})


def read_config(run_dir: str | os.PathLike) -> tuple[RunConfig, dict]:
    """(RunConfig, data description) from a run's config.json."""
    path = RunPaths(Path(run_dir)).config
    if not path.is_file():
        raise LMError(f"{run_dir} is not a run directory (no config.json): train one with python -m lmlib train")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RunConfig.from_dict(raw["config"]), raw.get("data", {})
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise LMError(f"{path} is not a valid config.json ({err})") from None


def append_metrics(paths: RunPaths, row: dict) -> None:
    """Append one epoch's row (rewrites the small file atomically)."""
    rows = read_metric_rows(paths)
    rows.append({k: row.get(k) for k in METRIC_COLUMNS})
    write_metric_rows(paths, rows)


def read_metric_rows(paths: RunPaths) -> list[dict]:
    if not paths.metrics.is_file():
        return []
    with open(paths.metrics, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_metric_rows(paths: RunPaths, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(paths.metrics, buffer.getvalue())


def truncate_metrics(paths: RunPaths, before_epoch: int) -> None:
    """On resume, drop rows of epochs the checkpoint has not finished (they are re-run)."""
    rows = [r for r in read_metric_rows(paths) if float(r["epoch"]) < before_epoch]
    if paths.metrics.is_file():
        write_metric_rows(paths, rows)


def read_metrics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """metrics.csv as a DataFrame (empty, with the columns, when there is none yet)."""
    path = RunPaths(Path(run_dir)).metrics
    if not path.is_file():
        return pd.DataFrame(columns=METRIC_COLUMNS)
    return pd.read_csv(path)


def read_results(run_dir: str | os.PathLike) -> dict | None:
    path = RunPaths(Path(run_dir)).results
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def list_runs(root: str | os.PathLike = "runs") -> list[Path]:
    """Run directories under `root` that finished (hold results.json), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "results.json").is_file())


def load_model(
    run_dir: str | os.PathLike, device: str | torch.device = "auto"
) -> tuple[LSTMLanguageModel, Vocab, RunConfig]:
    """The best-validation model of a run, in eval mode, with its vocabulary and config.

    `device` follows training's rule: `auto` is the GPU when there is one, else the CPU.
    """
    paths = RunPaths(Path(run_dir))
    config, _ = read_config(run_dir)
    vocab = Vocab.load(paths.vocab)
    model = LSTMLanguageModel(len(vocab), config)
    tensors, _ = load_tensors(paths.model)
    load_model_tensors(model, tensors, str(paths.model))
    return model.to(resolve_device(str(device))).eval(), vocab, config


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Everything a run wrote, loaded without pickle."""
    model, vocab, config = load_model(run_dir, device)
    return Run(Path(run_dir), config, vocab, model, read_metrics(run_dir), read_results(run_dir))
