"""The gap section's prose, tables and figure, every number from a GapStudy (lmlib.report.gap).

The written answer separates two explanations of "test perplexity is above validation":

  * where the split falls: valid and test are different text. A contiguous split puts the
    end of a book the model trained on into valid and only later, new books into test; the
    later text may hold more words the training split never showed (`<unk>`, unseen, rare).
    `shift_share` measures how much of the gap the different *mix* explains.
  * overfitting: the weights fit their training text better than any held-out text (train
    against valid/test of the same weights, and within a book split between train and
    valid), and they were chosen on validation, which makes valid a little optimistic
    (measured over the seeds of the chosen arm).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lmlib.report.arms import Arm
from lmlib.report.gap import SPLITS, GapStudy, book_spans, split_offsets
from lmlib.report.html import escape_markdown


def split_table(study: GapStudy) -> pd.DataFrame:
    """Train, valid and test perplexity of the same weights (eval mode), and what results.json recorded."""
    tokens = study.windows.groupby("split")["tokens"].sum()
    rows = [
        {
            "split": s,
            "tokens": int(tokens[s]),
            "ppl": math.exp(study.losses[s]),
            "recorded ppl": math.exp(study.recorded[s]) if s in study.recorded else math.nan,
        }
        for s in SPLITS
    ]
    return pd.DataFrame(rows).set_index("split").round(2)


def segment_table(study: GapStudy) -> pd.DataFrame:
    """Per split and book: tokens, perplexity, % <unk>, % unseen in training, for people."""
    t = study.segments.copy()
    t["<unk> %"] = (100 * t["<unk> share"]).round(2)
    t["unseen %"] = (100 * t["unseen share"]).round(2)
    t["ppl"] = t["ppl"].round(1)
    return t[["split", "book", "book trained on", "tokens", "ppl", "<unk> %", "unseen %"]].set_index(["split", "book"])


def word_table(study: GapStudy) -> pd.DataFrame:
    """Per split and kind of word: tokens, % of the split, perplexity of those tokens, for people."""
    t = study.classes.copy()
    t["%"] = (100 * t["share"]).round(2)
    t["ppl"] = t["ppl"].map(lambda p: f"{p:,.0f}" if p >= 1000 else f"{p:.1f}" if p == p else "")
    return t[["split", "class", "tokens", "%", "ppl"]].set_index(["split", "class"])


def plot_windows(study: GapStudy):
    """Perplexity per window along the corpus (train grey, valid, test), books marked, each split's level dashed."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6))
    colours = {"train": "0.55", "valid": "C0", "test": "C3"}
    for split in SPLITS:
        w = study.windows.query("split == @split")
        middle = (w["start"] + w["end"]) / 2 / 1000
        ax.plot(
            middle, w["ppl"], "-", lw=1, color=colours[split], label=f"{split} ({math.exp(study.losses[split]):.1f})"
        )
        first, last = w["start"].min() / 1000, w["end"].max() / 1000
        ax.hlines(math.exp(study.losses[split]), first, last, colors=colours[split], linestyles="--", lw=1)
    for title, start, _ in book_spans(study.prepared):
        ax.axvline(start / 1000, color="0.3", lw=0.6, ls=":")
        ax.text(start / 1000, 1.01, f" {title}", rotation=20, fontsize=7, transform=ax.get_xaxis_transform())
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set(yscale="log", xlabel="position in the corpus (thousands of tokens)", ylabel="perplexity per window")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())  # labels at 1, 2, 5 x 10^k only, as plain numbers
    ax.set_title(
        f"{study.run}: perplexity of each {study.window:,}-token window (dashed: the split's)", fontsize=9, pad=28
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def gap_analysis(study: GapStudy, arm: Arm | None = None) -> str:
    """The written answer: how large the gap is, how much the books and the words explain, and overfitting.

    Book titles are the corpus's file names and reach Markdown, which lets HTML through: each is escaped."""
    ppl = {s: math.exp(study.losses[s]) for s in SPLITS}
    gap = study.losses["test"] - study.losses["valid"]
    lines = [
        f"Run **{escape_markdown(study.run)}** ({study.protocol} protocol), best weights without dropout: train "
        f"perplexity {ppl['train']:.1f}, valid {ppl['valid']:.1f}, test {ppl['test']:.1f}. The windows' token-weighted "
        f"mean loss equals each split's loss, so every part below adds up to the whole.",
        "",
    ]
    if gap <= 0:
        lines.append(f"- Test perplexity is **not** above validation here ({ppl['test']:.1f} ≤ {ppl['valid']:.1f}).")
    else:
        lines.append(
            f"- **The gap**: test is {ppl['test'] / ppl['valid'] - 1:.1%} above valid, {gap:.3f} nats per token."
        )
    lines += _books(study, gap) + _words(study, gap) + _same_book(study) + _overfitting(study, ppl, arm)
    lines += ["", _conclusion(study, gap, arm)]
    return "\n".join(lines)


def _share(part: float, gap: float) -> str:
    return f"{part:+.3f} nats" + (f" ({part / gap:.0%} of the gap)" if gap > 0 else "")


def _books(study: GapStudy, gap: float) -> list[str]:
    t = study.by_book.set_index("books")
    seen = "a book trained on"
    share_v = float(t.loc[seen, "share valid"]) if seen in t.index else 0.0
    share_t = float(t.loc[seen, "share test"]) if seen in t.index else 0.0
    composition, within = float(t["composition"].sum()), float(t["within"].sum())
    if share_v == 0 and share_t == 0:
        return [
            f"- **Where the split falls (books).** Neither valid nor test holds text of a book the model trained "
            f"on, so the whole gap is the text itself: {_share(within, gap)} within new books."
        ]
    held = study.segments.query("split == 'valid' and `book trained on`")
    names = ", ".join(escape_markdown(book) for book in held["book"])  # file names: any text at all
    loss_seen = float(t.loc[seen, "loss valid"]) if share_v else math.nan
    loss_new = float(t.loc["a new book", "loss valid"]) if "a new book" in t.index else math.nan
    return [
        f"- **Where the split falls (books).** {share_v:.0%} of valid is the rest of a book the model trained on "
        f"({names}: perplexity {math.exp(loss_seen):.1f}), against {share_t:.0%} of test; valid's new-book text "
        f"has perplexity {math.exp(loss_new):.1f}. This different mix explains {_share(composition, gap)}; new books "
        f"being harder in test than in valid explains {_share(within, gap)}."
    ]


def _words(study: GapStudy, gap: float) -> list[str]:
    c = study.classes.set_index(["split", "class"])["share"]
    shares = ", ".join(
        f"{_md(name)} {c.loc[('valid', name)]:.1%} → {c.loc[('test', name)]:.1%}"
        for name in c.loc["valid"].index
        if name != "frequent in training"
    )
    composition, within = float(study.by_word["composition"].sum()), float(study.by_word["within"].sum())
    return [
        f"- **Rarer words.** Shares of valid → test tokens: {shares}. The different mix of word kinds explains "
        f"{_share(composition, gap)}; the same kinds of words being harder in test explain {_share(within, gap)}. "
        "(Books and words are two views of one gap: their parts overlap and are not added.)"
    ]


def _md(name: str) -> str:
    """`<unk>` as code: bare, Markdown would take it for an HTML tag and drop it."""
    return name.replace("<unk>", "`<unk>`")


def _same_book(study: GapStudy) -> list[str]:
    """Books cut by a split boundary: the same book on both sides separates position from content."""
    seg, out = study.segments, []
    for a, b in (("train", "valid"), ("valid", "test")):
        ppl_a = seg[seg["split"] == a].set_index("book")["ppl"]
        ppl_b = seg[seg["split"] == b].set_index("book")["ppl"]
        for book in [t for t in ppl_a.index if t in ppl_b.index]:
            pa, pb = float(ppl_a[book]), float(ppl_b[book])
            title = escape_markdown(book)  # a file name: any text at all
            if a == "train":
                out.append(
                    f"- **{title}** is cut between train and valid: its trained part has perplexity {pa:.1f}, "
                    f"its held-out part {pb:.1f} (×{pb / pa:.2f}: what having trained on the text is worth)."
                )
            else:
                out.append(
                    f"- **{title}** is cut between valid and test: perplexity {pa:.1f} in valid, {pb:.1f} in "
                    f"test (×{pb / pa:.2f}): the same book, later in the stream."
                )
    return out


def _overfitting(study: GapStudy, ppl: dict, arm: Arm | None) -> list[str]:
    lines = [
        f"- **Overfitting to the training text.** The same weights give {ppl['train']:.1f} on their training text "
        f"and {ppl['valid']:.1f} / {ppl['test']:.1f} on held-out text (×{ppl['valid'] / ppl['train']:.2f} / "
        f"×{ppl['test'] / ppl['train']:.2f}). That generalisation gap is there for valid and test alike; it "
        "widens the valid–test gap only through valid text the model partly fitted (the book cut by the split)."
    ]
    selection = _selection(arm)
    if selection:
        lines.append(
            f"- **Overfitting to validation.** This run is the best of {selection['n']} seeds on validation: its "
            f"valid perplexity is {selection['valid_run']:.2f} against its arm's {selection['valid_mean']:.2f} "
            f"(geometric mean), its test {selection['test_run']:.2f} against {selection['test_mean']:.2f}. Choosing on "
            f"validation flatters valid by {selection['optimism']:+.4f} nats more than test."
        )
    return lines


def _selection(arm: Arm | None) -> dict | None:
    if arm is None or len(arm.records) < 2:
        return None
    valid = np.array([float(r.results["valid_loss"]) for r in arm.records])
    test = np.array([float(r.results["test_loss"]) for r in arm.records])
    best = int(np.argmin(valid))
    v, t = valid.mean() - valid[best], test.mean() - test[best]  # how much lower than the arm's mean, in nats
    return {
        "n": len(valid),
        "optimism": v - t,
        "valid_run": math.exp(valid[best]),
        "test_run": math.exp(test[best]),
        "valid_mean": math.exp(valid.mean()),
        "test_mean": math.exp(test.mean()),
    }


def _conclusion(study: GapStudy, gap: float, arm: Arm | None) -> str:
    if gap <= 0:
        return "**In short:** there is no valid–test gap to explain for this run."
    books = float(study.by_book["composition"].sum())
    words = float(study.by_word["composition"].sum())
    selection = _selection(arm)
    optimism = f"; choosing on validation, about {selection['optimism'] / gap:.0%}" if selection else ""
    return (
        f"**In short:** of the {gap:.3f}-nat gap, where the split falls explains {books / gap:.0%} through which "
        f"books valid and test hold, and the rarer words of test {words / gap:.0%} (two views, overlapping){optimism}. "
        f"Overfitting to the training text (train {math.exp(study.losses['train']):.1f} against valid "
        f"{math.exp(study.losses['valid']):.1f}) is common to both splits; it adds to the gap only through the "
        f"valid text of a book the model trained on. Split starts in the corpus: "
        + ", ".join(f"{s} at token {o:,}" for s, o in split_offsets(study.prepared).items())
        + "."
    )
