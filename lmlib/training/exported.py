"""The folder `lmlib export` writes, and what reading one checks before any weight is loaded.

    <folder>/                       (the Hugging Face layout: a Hub repository can hold it as it is)
      config.json        {"format": "lmlib-model", "format_version": 1, "lmlib_version": "0.2.0",
                          "dtype": "float16", "vocab_size": 7784, "parameters": 6455656,
                          "config": the RunConfig, "run": what the run resolved at its start}
      model.safetensors  the best-validation weights, stored in `dtype` (a tied matrix once)
      vocab.json         the vocabulary (ids of the model's rows)
      casing.json        each word's usual casing, for showing text (absent if the run had none)
      results.json       the run's final numbers, as training wrote them
      README.md          the model card (lmlib.pretrained.card)

config.json keeps a run directory's "config" and "run" blocks, so whatever reads a run reads
an exported folder too (training.runs.load_model, evaluate, the panel's run list); the extra
keys say what the folder is. A run directory's config.json has no "format": its weights are
float32 as training writes them (training/weights.py). Only safetensors and JSON are read:
nothing is unpickled, so a folder from anywhere cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lmlib import __version__
from lmlib.errors import LMError

FORMAT = "lmlib-model"
FORMAT_VERSION = 1
STORAGE_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # --dtype -> safetensors' dtype name


def read_header(config_path: str | os.PathLike) -> dict:
    """config.json's format keys checked: {} for a run directory, else {"dtype", "vocab_size", ...}.

    An unknown format or format version, or an unknown dtype, is a one-line LMError.
    """
    path = Path(config_path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LMError(f"{path} cannot be read as JSON ({err}): restore the folder or export the model again") from None
    if not isinstance(raw, dict) or "format" not in raw:
        return {}
    fix = "export the model again with this lmlib, or upgrade lmlib (pip install -U lmlib)"
    if raw["format"] != FORMAT:
        raise LMError(f"{path} says format {raw['format']!r}, not {FORMAT!r}: it was not written by lmlib export")
    if raw.get("format_version") != FORMAT_VERSION:
        raise LMError(
            f"{path} is lmlib model format version {raw.get('format_version')!r} (written by lmlib "
            f"{raw.get('lmlib_version', '?')}); lmlib {__version__} reads version {FORMAT_VERSION}: {fix}"
        )
    if raw.get("dtype") not in STORAGE_DTYPES.values():
        raise LMError(f"{path} declares dtype {raw.get('dtype')!r}; lmlib reads {', '.join(STORAGE_DTYPES.values())}")
    size = raw.get("vocab_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise LMError(f"{path} declares vocab_size {size!r}, not a whole number of words: {fix}")
    return raw


def check_vocab_size(header: dict, vocab_size: int, folder: str | os.PathLike) -> None:
    """The vocabulary an exported folder declares must be the vocab.json beside it."""
    if header and header["vocab_size"] != vocab_size:
        raise LMError(
            f"{folder}/config.json declares {header['vocab_size']:,} words but its vocab.json holds {vocab_size:,}: "
            "the files come from different models; export the model again"
        )
