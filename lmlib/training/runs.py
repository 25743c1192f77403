"""Run directories: what a run writes, and reading it back (also as older versions wrote it).

    runs/<name>/
      config.json        {"config": the RunConfig (nested by concern), "run": what the run resolved
                          at its start (resolved_device, resolved_precision, corpus, protocol,
                          min_freq, vocab_size, split_tokens, parameters, torch, lmlib)}
      vocab.json         the vocabulary (ids of the model's rows)
      casing.json        each word's usual casing, for showing text (data/casing.py; absent in older runs)
      model.safetensors  best-validation weights
      last.safetensors   resume checkpoint: weights, optimiser, scheduler, RNG, loop position
      metrics.csv        one row per epoch (METRIC_COLUMNS), appended as it happens
      results.json       the final numbers (RESULT_KEYS), written when training ends
      tensorboard/       TensorBoard's event files, with logger tensorboard (lmlib.training.tracking)

Runs written before the names were unified still load: flat config.json with a "data"
block and 0 where "not set" is now none (lmlib.config_upgrade), metrics.csv with
`seconds`/`tokens_per_s`/`elapsed_s`, results.json with `seconds`/`tokens_per_s`/`device`/
`precision` are read under today's names. Old spellings are read here, at the edge, and
nowhere else.
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
from lmlib.config import RESUMABLE, RunConfig, differences, flat_fields
from lmlib.config_upgrade import upgrade_old_spellings
from lmlib.data.casing import save_casing
from lmlib.data.splits import Prepared
from lmlib.data.vocab import Vocab
from lmlib.errors import LMError
from lmlib.model.build import LanguageModel, build_model
from lmlib.training.checkpoint import load_model_tensors, load_tensors
from lmlib.training.device import resolve_device
from lmlib.training.exported import check_vocab_size, read_header
from lmlib.training.weights import check_weights_file

METRIC_COLUMNS = [
    "epoch",  # fractional when the time budget cut the epoch short
    "train_loss", "train_ppl",  # over the epoch's training windows, with dropout on
    "valid_loss", "valid_ppl",
    "lr",
    "train_seconds",  # time in this epoch's training steps (validation excluded)
    "train_tokens_per_s",  # training tokens / train_seconds
    "wall_seconds",  # wall time of the whole run when this epoch's validation ended
]  # fmt: skip
RESULT_KEYS = [
    "parameters", "best_epoch", "epochs_run", "train_ppl", "valid_loss", "valid_ppl", "test_loss", "test_ppl",
    "wall_seconds", "train_tokens_per_s", "stopped", "resolved_device", "resolved_precision",
]  # fmt: skip
# What older versions called today's columns and keys.
_OLD_METRIC_NAMES = {"seconds": "train_seconds", "tokens_per_s": "train_tokens_per_s", "elapsed_s": "wall_seconds"}
_OLD_RESULT_NAMES = {
    "seconds": "wall_seconds", "tokens_per_s": "train_tokens_per_s",
    "device": "resolved_device", "precision": "resolved_precision",
}  # fmt: skip


@dataclass(frozen=True)
class RunPaths:
    """The files of one run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def vocab(self) -> Path:
        return self.root / "vocab.json"

    @property
    def casing(self) -> Path:
        return self.root / "casing.json"

    @property
    def model(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def last(self) -> Path:
        return self.root / "last.safetensors"

    @property
    def card(self) -> Path:
        """The model card (lmlib.pretrained.card), written when the run finishes."""
        return self.root / "README.md"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    def files(self) -> tuple[Path, ...]:
        """Every file a run writes (what starting over deletes)."""
        return (self.config, self.vocab, self.casing, self.model, self.last, self.metrics, self.results, self.card)


def write_config(paths: RunPaths, config: RunConfig, run: dict) -> None:
    """config.json: the configuration and what the run resolved at its start."""
    write_json(paths.config, {"config": config.to_dict(), "run": run})


def read_config(run_dir: str | os.PathLike) -> tuple[RunConfig, dict]:
    """(RunConfig, what the run resolved at its start) from a run's config.json, of any version."""
    path = RunPaths(Path(run_dir)).config
    if not path.is_file():
        raise LMError(f"{run_dir} is not a run directory (no config.json): train one with python -m lmlib train")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        config = RunConfig.from_dict(upgrade_old_spellings(flat_fields(raw["config"])))
    except (ValueError, KeyError, TypeError) as err:  # ValueError: bad JSON or bad UTF-8
        raise LMError(f"{path} is not a valid config.json ({err})") from None
    except OSError as err:
        raise LMError(f"{path} cannot be read ({err.strerror})") from None
    except LMError as err:
        raise LMError(f"{path} holds an invalid config: {err}") from None
    run = raw.get("run")
    if run is None:  # written before 0.2: a "data" block with "device"/"precision"
        old = dict(raw.get("data", {}))
        run = {_OLD_RESULT_NAMES.get(k, k): v for k, v in old.items()}
    return config, run


def write_run_files(paths: RunPaths, config: RunConfig, prepared: Prepared, run: dict) -> None:
    """What a new run writes first: config.json, vocab.json and casing.json (when the corpus has casing)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    write_config(paths, config, run)
    prepared.vocab.save(paths.vocab)
    if prepared.casing is not None:
        save_casing(paths.casing, prepared.casing)


def check_run_dir(paths: RunPaths, config: RunConfig) -> bool:
    """Whether training resumes the run in `paths` (True) or starts it (False); an LMError where it may do neither."""
    resuming = paths.last.is_file()
    if resuming or paths.config.is_file():
        check_resumable(paths, config)
    if not resuming:
        check_startable(paths)
    return resuming


def check_resumable(paths: RunPaths, config: RunConfig) -> None:
    """A run directory may only be continued with the config it was started with (budgets and runtime aside)."""
    saved, _ = read_config(paths.root)
    changed = differences(saved, config, ignore=RESUMABLE)
    if changed:
        raise LMError(
            f"{paths.root} already holds a run with a different config ({', '.join(changed)}): "
            "choose another --run-dir, or pass --restart to start over there"
        )


def check_startable(paths: RunPaths) -> None:
    """Without a checkpoint a run cannot resume: refuse where starting afresh would duplicate or overwrite records.

    Only config.json and vocab.json (a run stopped before its first checkpoint) lose nothing:
    training is seeded, so starting over gives exactly the run that was interrupted. A run
    writes its first checkpoint before it trains, so no write that fails later leads here.
    """
    recorded = [p.name for p in (paths.metrics, paths.model, paths.results) if p.exists()]
    if not recorded:
        return
    try:
        epochs = len(read_metric_rows(paths))
    except LMError:
        epochs = 0
    what = f"metrics for {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else " and ".join(recorded)
    raise LMError(
        f"{paths.root} has {what} but no checkpoint ({paths.last.name}): it cannot resume; "
        "delete the folder or pass --restart to start over"
    )


def finished_results(paths: RunPaths, config: RunConfig) -> dict | None:
    """results.json when the run has already finished with exactly `config` (nothing to train), else None."""
    finished = read_results(paths.root)
    return finished if finished is not None and read_config(paths.root)[0] == config else None


def read_best_weights(paths: RunPaths) -> tuple[dict[str, torch.Tensor], dict]:
    """model.safetensors: the best validation epoch's weights and their header."""
    if not paths.model.is_file():
        raise LMError(f"{paths.root} has no best weights: training stopped before the first validation")
    return load_tensors(paths.model)


def append_metrics(paths: RunPaths, row: dict) -> None:
    """Append one epoch's row (rewrites the small file atomically)."""
    rows = read_metric_rows(paths)
    rows.append({k: row.get(k) for k in METRIC_COLUMNS})
    write_metric_rows(paths, rows)


def read_metric_rows(paths: RunPaths) -> list[dict]:
    """metrics.csv as a list of dicts under today's column names; a damaged file is a clear error."""
    if not paths.metrics.is_file():
        return []
    try:
        with open(paths.metrics, newline="", encoding="utf-8") as handle:
            rows = [{_OLD_METRIC_NAMES.get(k, k): v for k, v in row.items()} for row in csv.DictReader(handle)]
        for row in rows:
            float(row["epoch"])
    except (ValueError, KeyError, TypeError, csv.Error, OSError) as err:
        raise _damaged(paths.metrics, err) from None
    return rows


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
    """metrics.csv as a DataFrame under today's column names (empty, with the columns, when there is none yet)."""
    path = RunPaths(Path(run_dir)).metrics
    if not path.is_file():
        return pd.DataFrame(columns=METRIC_COLUMNS)
    try:
        metrics = pd.read_csv(path).rename(columns=_OLD_METRIC_NAMES)
        pd.to_numeric(metrics["epoch"])
    except (ValueError, KeyError, TypeError, OSError) as err:  # pandas' parser errors are ValueErrors
        raise _damaged(path, err) from None
    return metrics


def write_results(paths: RunPaths, results: dict) -> dict:
    """results.json: `results` with what metrics.csv adds (epochs run, the last training perplexity, the mean
    training tokens/s), in RESULT_KEYS order; returned as written."""
    metrics = read_metrics(paths.root)
    last = metrics.iloc[-1] if len(metrics) else None
    results = {
        **results,
        "epochs_run": float(last["epoch"]) if last is not None else 0.0,
        "train_ppl": float(last["train_ppl"]) if last is not None else None,
        "train_tokens_per_s": float(metrics["train_tokens_per_s"].mean()) if len(metrics) else None,
    }
    results = {key: results[key] for key in RESULT_KEYS}
    write_json(paths.results, results)
    return results


def read_results(run_dir: str | os.PathLike) -> dict | None:
    """results.json under today's key names, or None while the run has not finished."""
    path = RunPaths(Path(run_dir)).results
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        return {_OLD_RESULT_NAMES.get(k, k): v for k, v in results.items()}
    except (ValueError, AttributeError, OSError) as err:  # bad JSON or UTF-8; not a mapping
        raise _damaged(path, err) from None


def _damaged(path: Path, err: Exception) -> LMError:
    detail = err.strerror if isinstance(err, OSError) else f"{type(err).__name__}: {err}"
    return LMError(
        f"{path} is damaged ({detail}): restore it, or start the run over with --restart (train) "
        "or in another --run-dir"
    )


def list_runs(root: str | os.PathLike = "runs") -> list[Path]:
    """Run directories under `root` that finished (hold results.json), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "results.json").is_file())


def load_model(
    run_dir: str | os.PathLike, device: str | torch.device = "auto"
) -> tuple[LanguageModel, Vocab, RunConfig]:
    """The best-validation model of a run (or of a folder written by `lmlib export`), in eval mode,
    in float32, with its vocabulary and config.

    `device` follows training's rule: `auto` is the GPU when there is one, else the CPU.
    """
    paths = RunPaths(Path(run_dir))
    config, _ = read_config(run_dir)
    header = read_header(paths.config)  # {} for a run; an exported folder's format, checked
    vocab = Vocab.load(paths.vocab)
    check_vocab_size(header, len(vocab), run_dir)
    # config.json's sizes are checked against the weights' shapes (read from the file's header)
    # before anything is allocated: a doctored hid_dim must not build a huge model first.
    check_weights_file(paths.model, len(vocab), config.model, dtype=header.get("dtype", "float32"))
    model = build_model(len(vocab), config.model)
    tensors, _ = load_tensors(paths.model)
    # An exported folder may store fp16/bf16 (as it declares): computed in fp32 from here on.
    tensors = {name: tensor.float() for name, tensor in tensors.items()}
    load_model_tensors(model, tensors, str(paths.model))
    return model.to(resolve_device(str(device))).eval(), vocab, config
