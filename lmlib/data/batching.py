"""Batching for truncated back-propagation through time (BPTT)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lmlib.config import DataConfig, TrainConfig
from lmlib.data.splits import Prepared
from lmlib.errors import LMError


def batchify(ids: np.ndarray | torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a 1-D id stream into `batch_size` contiguous rows: shape [batch, columns].

    The stream is trimmed to a multiple of `batch_size` and folded row by row, so each
    row is a contiguous stretch of text that the hidden state follows from window to
    window (batch_first, as the original model's LSTM):

        stream  a b c d e f g h i j k l m n o p q r s t u v w x y z
        batch_size = 4, columns = 6 (y z dropped)

            ┌ a b c d e f ┐   row 0
            │ g h i j k l │   row 1
            │ m n o p q r │   row 2
            └ s t u v w x ┘   row 3

    A BPTT window of length 3 at column 0 feeds `a b c` and predicts `b c d`.
    """
    if batch_size < 1:
        raise LMError(f"batch_size must be >= 1, got {batch_size}")
    ids = torch.as_tensor(ids, dtype=torch.long)
    columns = ids.numel() // batch_size
    if columns < 2:
        raise LMError(
            f"a split of {ids.numel()} tokens is too small for batch_size {batch_size}: "
            "use a smaller batch size or a larger corpus"
        )
    return ids[: columns * batch_size].view(batch_size, columns).contiguous()


def check_fits(data: torch.Tensor, bptt: int, split: str = "data") -> None:
    """A split must hold at least one full window of `bptt` tokens plus its target."""
    if bptt < 1:
        raise LMError(f"bptt (sequence length) must be >= 1, got {bptt}")
    if data.size(1) < bptt + 1:
        batch, columns = data.shape
        raise LMError(
            f"the {split} split ({batch * columns} tokens in {batch} rows of {columns}) is too small "
            f"for batch size {batch} x sequence length {bptt}: lower batch_size or bptt"
        )


def batch_splits(
    prepared: Prepared, data: DataConfig, train: TrainConfig, device: torch.device, splits=("train", "valid", "test")
) -> dict[str, torch.Tensor]:
    """The named splits as (batch, columns) tensors on `device`: the one rule training and evaluation share.

    Each split is cut to `subset_tokens` when set; train uses `batch_size`, valid and test
    `eval_batch_size` (None: batch_size, as the original evaluated); each must hold a window.
    """
    batched = {}
    for split in splits:
        ids = prepared.splits[split]
        if data.subset_tokens is not None:
            ids = ids[: data.subset_tokens]
        rows = train.batch_size if split == "train" else (train.eval_batch_size or train.batch_size)
        batched[split] = batchify(ids, rows).to(device)
        check_fits(batched[split], train.bptt, split)
    return batched


def get_batch(data: torch.Tensor, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs data[:, start:start+length] and targets shifted by one: both [batch, <=length]."""
    length = min(length, data.size(1) - 1 - start)
    return data[:, start : start + length], data[:, start + 1 : start + 1 + length]


def fixed_windows(columns: int, bptt: int, start: int = 0) -> Iterator[tuple[int, int]]:
    """(start, length) of consecutive windows from `start`; the last may be shorter, none is empty."""
    for first in range(start, columns - 1, bptt):
        yield first, min(bptt, columns - 1 - first)


def variable_windows(columns: int, bptt: int, rng: np.random.Generator, start: int = 0) -> Iterator[tuple[int, int]]:
    """AWD-LSTM variable-length BPTT (Merity et al. 2017, §4.1).

    Each window's length is drawn from N(bptt, 5) — and 5% of the time N(bptt/2, 5) —
    so that every token is, over epochs, seen at every position of a window (a fixed
    split would always put the same word first). Lengths are at least 5 and at most
    bptt + 20 (the paper's implementation caps them to bound memory). Training scales
    the learning rate by length / bptt so that short windows do not get outsized steps.
    """
    while start < columns - 1:
        base = bptt if rng.random() < 0.95 else bptt / 2
        length = int(max(5, min(bptt + 20, round(rng.normal(base, 5)))))
        length = min(length, columns - 1 - start)
        yield start, length
        start += length
