"""`lmlib export`: a finished run as a folder anyone can load (training/exported.py describes it).

    export_run("runs/austen", "lmlib/pretrained/austen", dtype="fp16")

The weights are the run's best ones, in fp32 or rounded to fp16/bf16 (half the size; the
perplexity change is measured by benchmarks/serving.py). The folder is written whole or not
at all (atomic_dir), and replaces only an earlier export: any other folder in the way is
refused, and so is one inside the run or holding it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from lmlib import __version__
from lmlib.atomic import atomic_dir, write_json, write_text
from lmlib.errors import LMError
from lmlib.generate import Generator
from lmlib.pretrained.card import model_card
from lmlib.training.checkpoint import load_model_tensors, model_tensors, save_tensors
from lmlib.training.exported import FORMAT, FORMAT_VERSION, STORAGE_DTYPES, read_header
from lmlib.training.runs import RunPaths, load_model, read_config, read_results

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def export_run(run_dir: str | os.PathLike, to: str | os.PathLike, dtype: str = "fp32") -> dict:
    """Write the run's model to the folder `to`; returns what was written (path, dtype, size, parameters)."""
    run_dir, to = Path(run_dir), Path(to)
    if dtype not in STORAGE_DTYPES:
        raise LMError(f"--dtype must be one of {', '.join(STORAGE_DTYPES)}, got {dtype!r}")
    results = read_results(run_dir)
    if results is None:
        raise LMError(f"{run_dir} has not finished (no results.json): export a run once training has ended")
    _check_target(run_dir, to)
    model, vocab, config = load_model(run_dir, "cpu")
    _, run = read_config(run_dir)
    stored = STORAGE_DTYPES[dtype]
    tensors = {name: _narrowed(name, t, stored) for name, t in model_tensors(model).items()}
    # The card's samples come from the weights as the folder stores them.
    load_model_tensors(model, {name: t.float() for name, t in tensors.items()}, str(run_dir))
    generator = Generator(model, vocab, casing=_casing(run_dir))
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lmlib_version": __version__,
        "dtype": stored,
        "vocab_size": len(vocab),
        "parameters": results.get("parameters"),
        "config": config.to_dict(),
        "run": run,
    }
    with atomic_dir(to) as tmp:
        paths = RunPaths(tmp)
        write_json(paths.config, header)
        vocab.save(paths.vocab)
        if RunPaths(run_dir).casing.is_file():
            shutil.copyfile(RunPaths(run_dir).casing, paths.casing)
        write_json(paths.results, results)
        save_tensors(paths.model, tensors, {"format": FORMAT, "format_version": FORMAT_VERSION})
        # The card reads the run's own records (results, test_time.json), not the folder's copies.
        write_text(paths.card, model_card(run_dir, generator, source=_source_name(to), dtype=stored))
    size = (to / "model.safetensors").stat().st_size
    return {"to": str(to), "dtype": dtype, "bytes": size, "parameters": results.get("parameters")}


def _narrowed(name: str, tensor: torch.Tensor, stored: str) -> torch.Tensor:
    """`tensor` in the stored dtype; a weight beyond fp16's range (65504) is an error, not an infinity."""
    if stored == "float16" and tensor.abs().max().item() > torch.finfo(torch.float16).max:
        raise LMError(f"{name} holds values beyond fp16's range (65504): export with --dtype bf16 or fp32")
    return tensor.detach().to(_TORCH_DTYPES[stored]).contiguous()


def _casing(run_dir: Path):
    from lmlib.data.casing import load_casing

    return load_casing(RunPaths(run_dir).casing)


def _source_name(to: Path) -> str:
    """How the card tells users to load the folder: a shipped model by its name, else the folder's path."""
    from lmlib.pretrained.locate import shipped_dir

    return to.name if to.resolve().parent == shipped_dir().resolve() else str(to)


def _check_target(run_dir: Path, to: Path) -> None:
    """Refuse to replace anything but an earlier export: never the run itself, nor a folder of other things."""
    run, target = run_dir.resolve(), to.resolve()
    if target == run or run.is_relative_to(target) or target.is_relative_to(run):
        raise LMError(f"--to {to} would overlap the run {run_dir}: export to a folder outside it")
    if target.is_file():
        raise LMError(f"--to {to} is a file: name a folder to export to")
    if target.is_dir() and any(target.iterdir()):
        config = target / "config.json"
        if not (config.is_file() and _is_export(config)):
            raise LMError(f"--to {to} already holds other files: choose a new folder (an earlier export is replaced)")


def _is_export(config: Path) -> bool:
    try:
        return bool(read_header(config))
    except LMError:
        return False
