"""Perplexity, computed as the original study did: exp(mean cross-entropy per token).

The split (with its one appended `<eos>`) is cut into `batch_size` contiguous rows
(`batchify`, which drops the last len % batch_size tokens), read in windows of `bptt`
with the hidden state carried across windows, and the cross-entropy of every predicted
token is averaged. The original divided the sum of per-window mean losses x bptt by the
number of columns rather than by the number of predicted tokens (columns - 1), which made
its perplexity lower by a factor exp(loss / columns) — 0.3% on the Harry Potter test set;
`reduction="original"` reproduces that quirk, the default is the exact mean.

Training validates and tests in fp32 whatever precision it trained in, so a reported
perplexity does not depend on it and `lmlib evaluate` gives the same number.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lmlib.data.batching import batch_splits, fixed_windows, get_batch
from lmlib.data.splits import Prepared
from lmlib.errors import LMError
from lmlib.model.build import LanguageModel
from lmlib.training.device import autocast


@torch.inference_mode()
def evaluate_loss(
    model: LanguageModel,
    data: torch.Tensor,
    bptt: int,
    precision: str = "fp32",
    reduction: str = "mean",
    progress: str | None = None,
) -> float:
    """Mean cross-entropy per token (nats) over batchified `data` (B, columns); `progress` names a bar (None: none)."""
    was_training = model.training
    model.eval()
    device = data.device
    hidden = model.init_hidden(data.size(0), device)
    total = torch.zeros((), dtype=torch.float64, device=device)  # summed on device: no sync per window
    count = 0
    with progress_bar(data, progress) as bar:
        for start, length in fixed_windows(data.size(1), bptt):
            x, y = get_batch(data, start, length)
            with autocast(device, precision):
                out = model(x, hidden, targets=y, reduction="sum")
            hidden = out.hidden
            total += out.nll.double()
            count += y.numel()
            bar.update(y.numel())
    model.train(was_training)
    if reduction == "original":
        return total.item() / (data.size(0) * data.size(1))
    return total.item() / count


def progress_bar(data: torch.Tensor, name: str | None):
    """A passing tqdm.auto bar (it goes when done) over the tokens of a pass over batchified `data` (B, columns),
    named `name`; None: no bar. Shown in notebooks and on terminals, not into a pipe or a log file (tqdm's
    disable=None), where a bar that erases itself is only noise, and the one line of an error stays one line."""
    total = data.size(0) * max(data.size(1) - 1, 0)
    return tqdm(
        total=total, desc=name, unit="tok", unit_scale=True, leave=False, disable=True if name is None else None
    )


def perplexity(loss: float) -> float:
    """exp(loss), or inf when it overflows."""
    return math.exp(loss) if loss < 700 else math.inf


def evaluate_run(
    run_dir: str | os.PathLike, splits=("valid", "test"), device: str = "auto", progress: bool = True
) -> dict:
    """Perplexity of a saved run's best weights on the named splits of its own corpus (a progress bar per split)."""
    from lmlib.training.runs import load_model, read_config

    config, info = read_config(run_dir)
    model, vocab, _ = load_model(run_dir, device)
    prepared = run_data(run_dir, config, info, vocab)
    device = next(model.parameters()).device
    batched = batch_splits(prepared, config.data, config.train, device, splits)
    result = {}
    for split in splits:
        loss = evaluate_loss(model, batched[split], config.train.bptt, progress=split if progress else None)
        result[f"{split}_loss"] = loss
        result[f"{split}_ppl"] = perplexity(loss)
    return result


def run_data(run_dir: str | os.PathLike, config, info: dict, vocab) -> Prepared:
    """The data a saved run was trained on, prepared again from its corpus and checked against its vocabulary.

    Report runs on a corpus given by path recorded, in lmlib 0.2.0 and earlier, only the file's or
    folder's base name ("mine" for mine.txt), which loads nothing. Such a run is still read
    where the report's prepared data beside it (<runs_root>/_prepared, what notebook 01 wrote)
    holds that corpus with the run's vocabulary; elsewhere the message says how to repair it.
    """
    from lmlib.data.corpus import load_corpus
    from lmlib.data.prepared import load_prepared
    from lmlib.data.splits import prepare

    corpus = config.data.corpus
    try:
        prepared = prepare(load_corpus(corpus), info.get("protocol"), info.get("min_freq"))
    except LMError as err:
        if not str(err).startswith("unknown corpus name"):
            raise
        beside = Path(run_dir).resolve().parent / "_prepared"
        legacy = load_prepared(beside) if (beside / "meta.json").is_file() else None
        if legacy is None or legacy.corpus != corpus or legacy.vocab.itos != vocab.itos:
            raise LMError(
                f"{Path(run_dir) / 'config.json'} records its corpus as {corpus!r}, a file's or folder's name without "
                "its path (lmlib 0.2.0 recorded report runs on a corpus given by path so): set its "
                '"corpus" to the corpus\'s path, or build the report again, which updates it'
            ) from None
        return legacy
    if prepared.vocab.itos != vocab.itos:
        raise LMError(f"the corpus now gives a different vocabulary than {run_dir}/vocab.json: was the corpus changed?")
    return prepared
