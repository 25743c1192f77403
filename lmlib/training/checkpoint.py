"""Checkpoints as data: safetensors tensors plus a JSON header; no pickle, no code execution.

A checkpoint is ONE file (written atomically), so model, optimiser, RNG and loop state
can never be out of step with each other.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lmlib.atomic import atomic_path, write_error
from lmlib.errors import LMError
from lmlib.training.weights import check_layout, tensor_layout


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> None:
    """Write `tensors` and a JSON-serialisable `header` to one safetensors file, atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={"header": json.dumps(header)})
        except SafetensorError as err:  # its I/O errors (a full disk) arrive as text: "... (os error 28)"
            code = re.search(r"os error (\d+)", str(err))
            if code is None:
                raise
            raise write_error(path, OSError(int(code.group(1)), os.strerror(int(code.group(1))))) from None


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by `save_tensors`; a missing or damaged file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise LMError(f"checkpoint {path} is missing: train the run first (python -m lmlib train)")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        header = json.loads(metadata.get("header", "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise LMError(f"checkpoint {path} is damaged or truncated ({err}): train again or restore it") from None
    if not isinstance(header, dict):
        raise LMError(
            f"checkpoint {path} has an unreadable header (not a mapping): it was not written by lmlib; "
            "restore it or train again"
        )
    if "loop" in header:  # a training checkpoint (last.safetensors): what session.restore will resume from
        check_loop_header(header["loop"], str(path))
    return tensors, header


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with tied (shared) matrices stored once."""
    seen, tensors = set(), {}
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key in seen:
            continue  # e.g. decoder.weight tied to embedding.weight (restored by the model)
        seen.add(key)
        tensors[name] = tensor
    return tensors


def load_model_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, naming the file when their names, tying, dtypes or shapes do not fit the model."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if model.config.tie_weights and not model.config.adaptive_softmax:
        expected.pop("decoder.weight")  # stored once, as embedding.weight
    check_layout(tensor_layout(tensors), expected, model.config, source)
    check_finite(tensors, source)
    tensors = dict(tensors)
    if "decoder.weight" not in expected and "decoder.weight" in model.state_dict():
        tensors["decoder.weight"] = tensors["embedding.weight"]  # tied weights
    model.load_state_dict(tensors)


def check_finite(tensors: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinities: every prediction would be NaN (generate, the web app's 500s).

    Training never saves them (a diverging run stops first), so such a file was damaged or edited."""
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise LMError(
            f"weights in {source} hold NaN or infinite values ({bad[0]}{' and others' if len(bad) > 1 else ''}): "
            "the file is damaged or was not written by lmlib's training; restore it or train the run again"
        )


def check_loop_header(loop, source: str) -> None:
    """Refuse a checkpoint whose loop position (header "loop") is not what lmlib writes, before it is used.

    session.LoopState(**loop) takes any values; a doctored `"epoch": "x"` would fail steps later
    with a TypeError. Types and ranges of the fields lmlib writes are checked here (an unknown
    field is left to LoopState, which refuses it)."""
    if not isinstance(loop, dict):
        raise _bad_loop(source, f"its loop position is {type(loop).__name__}, not a mapping")
    for name, value in loop.items():
        kind = _LOOP_FIELDS.get(name)
        if kind is None:
            continue
        if kind == "history":
            ok = isinstance(value, list) and all(_is_number(v) for v in value)
        elif kind == "text":
            ok = isinstance(value, str)
        elif kind == "count":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            ok = _is_number(value) and (kind == "loss" or (math.isfinite(value) and value >= 0))
        if not ok:
            raise _bad_loop(source, f"{name} is {value!r}")
    if loop.get("epoch", 1) < 1:
        raise _bad_loop(source, f"epoch is {loop['epoch']!r}")


# session.LoopState's fields as save_checkpoint writes them: a count (int >= 0), an amount (finite, >= 0),
# a loss (any number: inf before the first validation), the validation history, the stop reason
_LOOP_FIELDS = {"epoch": "count", "column": "count", "tokens": "count", "best_epoch": "count", "bad_epochs": "count",
                "loss_sum": "amount", "train_seconds": "amount", "elapsed": "amount", "best_loss": "loss",
                "valid_history": "history", "stopped": "text"}  # fmt: skip


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bad_loop(source: str, what: str) -> LMError:
    return LMError(
        f"checkpoint {source} holds a loop position lmlib did not write ({what}): restore the file, "
        "or pass --restart to start the run over"
    )


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into tensors and a JSON part."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars, "class": type(optimizer).__name__}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], header: dict) -> None:
    """Inverse of `optimizer_tensors`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer/"):
            _, index, key = name.split("/", 2)
            state.setdefault(int(index), {})[key] = value
    for index, entries in header["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in header["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_tensors(numpy_rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Random-number state: torch (CPU and CUDA) as tensors, numpy's bit generator as JSON."""
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    return tensors, {"numpy": numpy_rng.bit_generator.state}  # Python's JSON keeps 128-bit ints exact


def restore_rng(numpy_rng: np.random.Generator, tensors: dict[str, torch.Tensor], header: dict) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/cuda"])
    numpy_rng.bit_generator.state = header["numpy"]
