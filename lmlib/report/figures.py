"""Figures and text views of the data for notebook 01: Zipf's law and a sample as the model sees it."""

from __future__ import annotations

import textwrap

import numpy as np

from lmlib.data.corpus import corpus_label
from lmlib.data.splits import Prepared
from lmlib.data.stats import rank_frequency


def zipf_figure(prepared: Prepared):
    """Rank/frequency on log-log axes with the fitted Zipf exponent (ranks 10-1000)."""
    import matplotlib.pyplot as plt

    ranks, counts = rank_frequency(prepared)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.loglog(ranks, counts, ".", ms=2, label="words")
    s, c = zipf_exponent(ranks, counts)
    ax.loglog(ranks, np.exp(c) * ranks ** (-s), "--", lw=1, label=f"fit: frequency ∝ rank^-{s:.2f}")
    ax.set(xlabel="rank", ylabel="frequency", title=f"Zipf plot: {corpus_label(prepared.corpus)}, {len(ranks):,} words")
    ax.legend()
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


def zipf_exponent(ranks: np.ndarray, counts: np.ndarray, lo: int = 10, hi: int = 1000) -> tuple[float, float]:
    """Least-squares slope s and intercept c of log f = c - s log r over ranks lo..hi."""
    keep = (ranks >= lo) & (ranks <= hi)
    if keep.sum() < 2:
        keep = ranks > 0
    slope, intercept = np.polyfit(np.log(ranks[keep]), np.log(counts[keep]), 1)
    return float(-slope), float(intercept)


def token_sample(prepared: Prepared, n: int = 80, split: str = "train", width: int = 100) -> str:
    """The first `n` tokens of a split as the model sees them (ids decoded, `<unk>` shown)."""
    return textwrap.fill(" ".join(prepared.vocab.decode(prepared.splits[split][:n])), width)
