"""Checkpoints as data: safetensors tensors plus a JSON header; no pickle, no code execution.

A checkpoint is ONE file (written atomically), so model, optimiser, RNG and loop state
can never be out of step with each other.
"""

from __future__ import annotations

import json
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
    tensors = dict(tensors)
    if "decoder.weight" not in expected and "decoder.weight" in model.state_dict():
        tensors["decoder.weight"] = tensors["embedding.weight"]  # tied weights
    model.load_state_dict(tensors)


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
