"""Corpus statistics as pandas DataFrames (for the CLI, the notebooks and the report)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lmlib.data.splits import Prepared
from lmlib.data.vocab import EOS, UNK_INDEX


def summary(prepared: Prepared) -> dict:
    """The headline numbers as one flat dict (the keys of `prepare --json`)."""
    counts = prepared.split_tokens
    result = {
        "corpus": prepared.corpus,
        "protocol": prepared.protocol,
        "min_freq": prepared.min_freq,
        "tokens": sum(counts.values()),
        "train_tokens": counts["train"],
        "valid_tokens": counts["valid"],
        "test_tokens": counts["test"],
        "vocab_size": len(prepared.vocab),
    }
    for split, ids in prepared.splits.items():
        result[f"{split}_unk_rate"] = round(unk_rate(ids), 6)
    result["book_tokens"] = dict(prepared.book_tokens)
    result["books"] = result["book_tokens"]  # its name before 0.2, still read by older scripts
    return result


def unk_rate(ids: np.ndarray) -> float:
    """Share of tokens that are `<unk>` (id 0)."""
    return float(np.mean(ids == UNK_INDEX)) if len(ids) else 0.0


def split_table(prepared: Prepared) -> pd.DataFrame:
    """One row per split: tokens, share, types, type/token ratio, `<unk>` count and rate."""
    total = sum(prepared.split_tokens.values())
    rows = []
    for split, ids in prepared.splits.items():
        tokens = prepared.split_tokens[split]
        types = prepared.split_types[split]
        rows.append(
            {
                "split": split,
                "tokens": tokens,
                "share %": round(100 * tokens / total, 2),
                "types": types,
                "type/token": round(types / tokens, 4) if tokens else 0.0,
                "<unk> tokens": int(np.sum(ids == UNK_INDEX)),
                "<unk> rate %": round(100 * unk_rate(ids), 3),
            }
        )
    return pd.DataFrame(rows).set_index("split")


def book_table(prepared: Prepared) -> pd.DataFrame:
    """One row per book (raw corpora): tokens and share of the corpus."""
    total = sum(prepared.book_tokens.values()) or 1
    rows = [
        {"book": title, "tokens": count, "share %": round(100 * count / total, 2)}
        for title, count in prepared.book_tokens.items()
    ]
    return pd.DataFrame(rows, columns=["book", "tokens", "share %"]).set_index("book")


def most_frequent(prepared: Prepared, n: int = 20) -> pd.DataFrame:
    """The `n` most frequent words of the vocabulary's source text, with counts and share."""
    vocab = prepared.vocab
    total = sum(vocab.counts) or 1
    words = [(t, c) for t, c in zip(vocab.itos, vocab.counts) if c > 0][:n]
    frame = pd.DataFrame(words, columns=["word", "count"])
    frame["share %"] = (100 * frame["count"] / total).round(3)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="rank")
    return frame


def rank_frequency(prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """(rank, frequency) of every counted word, for a Zipf plot."""
    counts = np.array([c for t, c in zip(prepared.vocab.itos, prepared.vocab.counts) if c > 0 and t != EOS])
    return np.arange(1, len(counts) + 1), counts


def format_report(prepared: Prepared, top: int = 10) -> str:
    """Human-readable statistics for the terminal."""
    s = summary(prepared)
    lines = [
        f"corpus {s['corpus']}  protocol {s['protocol']}  min_freq {s['min_freq']}",
        f"tokens {s['tokens']:,}  "
        f"(train {s['train_tokens']:,} / valid {s['valid_tokens']:,} / test {s['test_tokens']:,})",
        f"vocabulary {s['vocab_size']:,}",
        "",
    ]
    if prepared.book_tokens:
        lines += [book_table(prepared).to_string(), ""]
    lines += [split_table(prepared).to_string(), ""]
    frequent = most_frequent(prepared, top)
    lines.append("most frequent: " + ", ".join(f"{w} ({c:,})" for w, c in zip(frequent["word"], frequent["count"])))
    return "\n".join(lines)
