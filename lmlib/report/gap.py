"""Why is test perplexity above validation? The numbers: per-token losses of one run's best weights.

The original study ended on a question: test 106.3 against validation 88.5 on the Harry
Potter books. Perplexity is exp(mean loss per token), so the split's loss is the token-weighted
mean of any partition of its tokens; this module partitions three ways, each adding up exactly:

  * along the token stream: fixed windows of `window` tokens, placed in the corpus by their
    position (split start + position in the split), with the books' boundaries;
  * by book: each (split, book) segment, and whether the model trained on part of that book;
  * by word: `<unk>`, in the vocabulary but unseen in the training split, rare in training
    (fewer than RARE occurrences), frequent.

Each loss comes from the same batching and hidden-state carry as training's evaluation
(`batch_splits`, `fixed_windows`), so the windows' token-weighted mean is the split's loss
in results.json. `shift_share` splits a valid → test gap over a partition into a part from
the groups' shares (test holds more of a harder group: where the split falls, rarer words)
and a part within the groups (the same kind of text is harder in test). The prose is in
lmlib.report.gap_text.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lmlib.data.batching import batch_splits, batchify, fixed_windows, get_batch
from lmlib.data.prepared import load_prepared
from lmlib.data.splits import Prepared, resolve_data
from lmlib.data.vocab import UNK_INDEX
from lmlib.errors import LMError
from lmlib.model.build import LanguageModel
from lmlib.training.evaluate import perplexity
from lmlib.training.runs import load_model, read_config, read_results

SPLITS = ("train", "valid", "test")
RARE = 10  # a word seen fewer times than this in the training split is "rare in training"
TRAIN_ROWS = 256  # the train split is evaluated in this many rows (a few cold starts in 577k tokens; 1.7x faster)
CLASSES = ("<unk>", "unseen in training", f"rare in training (< {RARE})", "frequent in training")


@torch.inference_mode()
def token_losses(model: LanguageModel, data: torch.Tensor, bptt: int) -> np.ndarray:
    """The loss (nats) of every predicted token of batchified `data` (B, C): (B, C - 1), fp32 weights, eval mode."""
    was_training = model.training
    model.eval()
    hidden = model.init_hidden(data.size(0), data.device)
    pieces = []
    for start, length in fixed_windows(data.size(1), bptt):  # the windows and state carry of evaluate_loss
        x, y = get_batch(data, start, length)
        out = model(x, hidden, targets=y, reduction="none")
        hidden = out.hidden
        pieces.append(out.nll.double().cpu())
    model.train(was_training)
    return torch.cat(pieces, dim=1).numpy()


@dataclass(frozen=True)
class StreamLosses:
    """One split's predicted tokens in stream order: their position in the split, id and loss."""

    split: str
    positions: np.ndarray  # int64 index into the split's id stream
    targets: np.ndarray  # int64 ids
    losses: np.ndarray  # float64 nats

    @property
    def loss(self) -> float:
        return float(self.losses.mean())


def stream_losses(model: LanguageModel, data: torch.Tensor, bptt: int, split: str) -> StreamLosses:
    """Per-token losses of batchified `data`, put back in stream order (row r holds tokens r*C .. r*C + C - 1)."""
    rows, columns = data.shape
    losses = token_losses(model, data, bptt)  # (B, C - 1): targets are columns 1 .. C - 1
    positions = np.arange(rows)[:, None] * columns + np.arange(1, columns)[None, :]
    order = np.argsort(positions.ravel(), kind="stable")
    targets = data[:, 1:].cpu().numpy().ravel()
    return StreamLosses(split, positions.ravel()[order], targets[order], losses.ravel()[order])


def split_offsets(prepared: Prepared) -> dict[str, int]:
    """Where each split starts in the corpus's token stream (books in reading order, train then valid then test)."""
    n = prepared.split_tokens
    return {"train": 0, "valid": n["train"], "test": n["train"] + n["valid"]}


def book_spans(prepared: Prepared) -> list[tuple[str, int, int]]:
    """(title, first, last + 1) of every book in the corpus's token stream; one span per split for pre-split corpora."""
    if not prepared.book_tokens:
        offsets = split_offsets(prepared)
        return [(s, offsets[s], offsets[s] + prepared.split_tokens[s]) for s in SPLITS]
    spans, start = [], 0
    for title, count in prepared.book_tokens.items():
        spans.append((title, start, start + count))
        start += count
    return spans


def global_positions(prepared: Prepared, stream: StreamLosses) -> np.ndarray:
    """Each token's position in the corpus stream (the split's appended <eos> counts as its last word)."""
    last = prepared.split_tokens[stream.split] - 1
    return split_offsets(prepared)[stream.split] + np.minimum(stream.positions, last)


def book_of(prepared: Prepared, positions: np.ndarray) -> np.ndarray:
    """The title of the book each corpus position falls in."""
    spans = book_spans(prepared)
    index = np.searchsorted(np.array([end for _, _, end in spans]), positions, side="right")
    titles = np.array([title for title, _, _ in spans], dtype=object)
    return titles[np.minimum(index, len(spans) - 1)]


def windows(prepared: Prepared, stream: StreamLosses, size: int) -> pd.DataFrame:
    """Perplexity per window of `size` positions of the split; columns start, end (corpus positions), tokens, loss."""
    if size < 1:
        raise LMError(f"the window must hold at least one token, got {size}")
    where = global_positions(prepared, stream)
    first = split_offsets(prepared)[stream.split]
    index = (where - first) // size
    frame = pd.DataFrame({"w": index, "pos": where, "loss": stream.losses})
    grouped = frame.groupby("w")
    out = pd.DataFrame(
        {
            "start": grouped["pos"].min(),
            "end": grouped["pos"].max() + 1,
            "tokens": grouped["loss"].size(),
            "loss": grouped["loss"].mean(),
        }
    )
    out["ppl"] = np.exp(out["loss"])
    out["book"] = book_of(prepared, out["start"].to_numpy())
    out.insert(0, "split", stream.split)
    return out.reset_index(drop=True)


def combined_loss(table: pd.DataFrame) -> float:
    """The token-weighted mean loss of a partition's rows: the loss of everything they cover."""
    return float((table["tokens"] * table["loss"]).sum() / table["tokens"].sum())


def word_classes(prepared: Prepared, train_ids: np.ndarray) -> np.ndarray:
    """Per vocabulary id: 0 <unk>, 1 unseen in `train_ids`, 2 rare there (< RARE), 3 frequent."""
    counts = np.bincount(train_ids, minlength=len(prepared.vocab))
    classes = np.where(counts == 0, 1, np.where(counts < RARE, 2, 3))
    classes[UNK_INDEX] = 0
    return classes


def segments(prepared: Prepared, streams: dict[str, StreamLosses], trained_tokens: int, classes: np.ndarray):
    """Per (split, book): tokens, loss, ppl, share of <unk> and of words unseen in training, book trained on or not."""
    seen_books = {t for t, start, end in book_spans(prepared) if start < trained_tokens and end > 0}
    rows = []
    for split, stream in streams.items():
        books = book_of(prepared, global_positions(prepared, stream))
        for book in pd.unique(books):
            mask = books == book
            kind = classes[stream.targets[mask]]
            rows.append(
                {
                    "split": split,
                    "book": book,
                    "book trained on": book in seen_books,
                    "tokens": int(mask.sum()),
                    "loss": float(stream.losses[mask].mean()),
                    "<unk> share": float((kind == 0).mean()),
                    "unseen share": float((kind == 1).mean()),
                }
            )
    out = pd.DataFrame(rows)
    out["ppl"] = np.exp(out["loss"])
    return out


def class_table(streams: dict[str, StreamLosses], classes: np.ndarray) -> pd.DataFrame:
    """Per split and word class: tokens, share of the split, loss, ppl."""
    rows = []
    for split, stream in streams.items():
        kind = classes[stream.targets]
        for k, name in enumerate(CLASSES):
            mask = kind == k
            loss = float(stream.losses[mask].mean()) if mask.any() else math.nan
            rows.append(
                {
                    "split": split,
                    "class": name,
                    "tokens": int(mask.sum()),
                    "share": float(mask.mean()),
                    "loss": loss,
                    "ppl": perplexity(loss) if mask.any() else math.nan,
                }
            )
    return pd.DataFrame(rows)


def shift_share(groups: pd.DataFrame, key: str, a: str = "valid", b: str = "test") -> pd.DataFrame:
    """Split loss(b) − loss(a) over the groups in column `key`: composition + within, summing to the gap.

    composition_g = (share_b − share_a) · loss_a,g   (b holds more, or less, of group g)
    within_g      = share_b · (loss_b,g − loss_a,g)   (group g itself is harder in b)
    A group absent from a is priced at its loss in b (all of it is composition).
    """
    weighted = groups.assign(nll=groups["tokens"] * groups["loss"].fillna(0.0))
    sums = weighted.groupby(["split", key])[["tokens", "nll"]].sum()
    rows = []
    names = sorted({n for s, n in sums.index if s in (a, b)}, key=str)
    total = {s: sums.loc[s, "tokens"].sum() if s in sums.index.get_level_values(0) else 0 for s in (a, b)}
    for name in names:
        tok_a, nll_a = _group(sums, a, name)
        tok_b, nll_b = _group(sums, b, name)
        share_a, share_b = tok_a / total[a], tok_b / total[b]
        loss_b = nll_b / tok_b if tok_b else 0.0
        loss_a = nll_a / tok_a if tok_a else loss_b
        rows.append(
            {
                key: name,
                f"share {a}": share_a,
                f"share {b}": share_b,
                f"loss {a}": loss_a,
                f"loss {b}": loss_b if tok_b else math.nan,
                "composition": (share_b - share_a) * loss_a,
                "within": share_b * (loss_b - loss_a) if tok_b else 0.0,
            }
        )
    return pd.DataFrame(rows)


def _group(sums: pd.DataFrame, split: str, name) -> tuple[float, float]:
    if (split, name) in sums.index:
        return float(sums.loc[(split, name), "tokens"]), float(sums.loc[(split, name), "nll"])
    return 0.0, 0.0


@dataclass
class GapStudy:
    """Everything the gap section shows, for one run's best weights."""

    run: str
    protocol: str
    prepared: Prepared
    losses: dict[str, float]  # split -> loss from the per-token losses (adds up to results.json's)
    recorded: dict[str, float]  # split -> loss in results.json (valid, test)
    windows: pd.DataFrame
    segments: pd.DataFrame
    classes: pd.DataFrame
    by_book: pd.DataFrame  # shift_share over seen/new books
    by_word: pd.DataFrame  # shift_share over word classes
    window: int

    def summary(self) -> dict:
        """The numbers notebook 03 records: each split's loss three ways (they must agree) and the gap's parts."""
        w = self.windows.assign(nll=self.windows["tokens"] * self.windows["loss"]).groupby("split")
        return {
            "run": self.run,
            "losses": self.losses,
            "recorded": self.recorded,
            "window_losses": (w["nll"].sum() / w["tokens"].sum()).to_dict(),
            "gap": self.losses["test"] - self.losses["valid"],
            "by_book": self.by_book[["composition", "within"]].sum().to_dict(),
            "by_word": self.by_word[["composition", "within"]].sum().to_dict(),
        }


def gap_study(
    run_dir: str | os.PathLike,
    prepared: Prepared | str | os.PathLike | None = None,
    window: int = 5000,
    device: str = "auto",
) -> GapStudy:
    """Per-token losses of the run's best weights on train, valid and test, partitioned three ways."""
    run_dir = Path(run_dir)
    config, _ = read_config(run_dir)
    model, vocab, _ = load_model(run_dir, device)
    prepared = _prepared_for(run_dir, config, prepared)
    if tuple(prepared.vocab.itos) != tuple(vocab.itos):
        raise LMError(f"the prepared data's vocabulary is not {run_dir}'s: pass the data the run was trained on")
    device = next(model.parameters()).device
    batched = batch_splits(prepared, config.data, config.train, device)  # valid, test: as results.json measured them
    trained = batched["train"].numel()  # the training tokens the run actually read (subset_tokens, batch trim)
    # train has no recorded eval-mode loss to match: read it in TRAIN_ROWS rows, which is several times faster
    batched["train"] = batchify(
        batched["train"].reshape(-1), min(TRAIN_ROWS, max(1, trained // (2 * config.train.bptt)))
    )
    streams = {split: stream_losses(model, batched[split], config.train.bptt, split) for split in SPLITS}
    classes = word_classes(prepared, prepared.splits["train"][:trained])
    segs = segments(prepared, streams, trained, classes)
    classes_table = class_table(streams, classes)
    familiar = segs.assign(books=np.where(segs["book trained on"], "a book trained on", "a new book"))
    results = read_results(run_dir) or {}
    return GapStudy(
        run=run_dir.name,
        protocol=prepared.protocol,
        prepared=prepared,
        losses={s: streams[s].loss for s in SPLITS},
        recorded={s: float(results[f"{s}_loss"]) for s in ("valid", "test") if results.get(f"{s}_loss") is not None},
        windows=pd.concat([windows(prepared, streams[s], window) for s in SPLITS], ignore_index=True),
        segments=segs,
        classes=classes_table,
        by_book=shift_share(familiar, "books"),
        by_word=shift_share(classes_table.rename(columns={"class": "word"}), "word"),
        window=window,
    )


def _prepared_for(run_dir: Path, config, prepared) -> Prepared:
    """The run's data: given, read from a prepared folder that matches the run, else prepared from its config."""
    if isinstance(prepared, Prepared):
        return prepared
    want = resolve_data(
        {"corpus": config.data.corpus, "protocol": config.data.protocol, "min_freq": config.data.min_freq}
    )
    if prepared and Path(prepared, "meta.json").is_file():
        loaded = load_prepared(prepared)
        if (loaded.protocol, loaded.min_freq) == (want["protocol"], want["min_freq"]):
            return loaded  # the caller checks the vocabulary against the run's
    from lmlib.data.corpus import load_corpus
    from lmlib.data.splits import prepare

    return prepare(load_corpus(want["corpus"]), want["protocol"], want["min_freq"])
