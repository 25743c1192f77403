"""Test-time methods on a saved run, recorded in `<run>/test_time.json`.

    evaluate_run_methods("runs/cpu", methods=("cache", "dynamic"))   # tunes on valid, scores test once

The record sits beside the run's own files and never replaces them: config.json, the
weights and results.json are only read (dynamic evaluation adapts a copy in memory). It
names the SHA-256 of the weights it scored, so a record left from weights that were since
retrained is ignored, not shown; old runs simply have no record. It is written atomically,
outside the training lock: evaluating does not own the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lmlib.atomic import write_json
from lmlib.evaluation.tuning import METHODS, compare_methods

RECORD_NAME = "test_time.json"


def weights_digest(run_dir: str | os.PathLike) -> str:
    """SHA-256 of the run's best weights (model.safetensors)."""
    from lmlib.training.runs import RunPaths

    digest = hashlib.sha256()
    with open(RunPaths(Path(run_dir)).model, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(run_dir: str | os.PathLike) -> dict | None:
    """The run's test-time record, or None when there is none or it scored other weights."""
    path = Path(run_dir) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a damaged record is as good as none: evaluating again rewrites it
    if not isinstance(record, dict) or record.get("weights_sha256") != weights_digest(run_dir):
        return None
    return record


def load_splits(run_dir, device: str, need_train: bool):
    """(model, {split: (B, columns)}, config) of a saved run, batched as training evaluated it."""
    from lmlib.data.batching import batch_splits
    from lmlib.training.evaluate import run_data
    from lmlib.training.runs import load_model, read_config

    config, info = read_config(run_dir)
    model, vocab, _ = load_model(run_dir, device)
    prepared = run_data(run_dir, config, info, vocab)
    names = ("train", "valid", "test") if need_train else ("valid", "test")
    device = next(model.parameters()).device
    return model, batch_splits(prepared, config.data, config.train, device, names), config


def evaluate_run_methods(
    run_dir: str | os.PathLike,
    methods=METHODS,
    cache: dict | None = None,
    dynamic: dict | None = None,
    grid: str = "full",
    device: str = "auto",
    record: bool = True,
    log: Callable[[str], None] = lambda _: None,
    progress: bool = True,
) -> dict:
    """Static and each method on a saved run (settings not given tuned on valid); merged into test_time.json.

    `progress` shows a bar for each pass over a split (tqdm.auto), as training does."""
    model, splits, config = load_splits(run_dir, device, need_train=bool({"dynamic", "both"} & set(methods)))
    results = compare_methods(model, splits, config.train.bptt, methods, cache, dynamic, grid, log, progress)
    for method in results.values():
        method["grid_name"] = grid  # per method: a later call with another grid merges into the same record
    entry = {
        "weights_sha256": weights_digest(run_dir),
        "rows": splits["test"].size(0),
        "threads": torch.get_num_threads(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if record:
        previous = read_record(run_dir) or {}
        merged = {**previous, **entry, "methods": {**previous.get("methods", {}), **results}}
        write_json(Path(run_dir) / RECORD_NAME, merged)
    return {**entry, "methods": results}
