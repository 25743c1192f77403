"""Protocols that turn a corpus into a vocabulary and train/valid/test id arrays.

  protocol      vocabulary from             split
  ----------    -------------------------   -----------------------------------------
  original      all tokens (min_freq 3)     contiguous 70 / 15 / 15 % by token position
  train-vocab   the training split only     same positions as `original` (no leak)
  by-book       the training books only     last book = test, the one before = valid
  given         train.txt (no cut)          the corpus's own files (PTB, WikiText)

`original` reproduces the study exactly: tokenize everything once, build the vocabulary
over *all* tokens (so valid/test words leak into it), cut at floor(0.70 N) and
floor(0.70 N) + floor(0.15 N), and append one `<eos>` to the end of each split.
On the Harry Potter books: N = 1,323,714; 926,599 / 198,557 / 198,558; vocabulary 13,134.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from lmlib.config import PROTOCOLS
from lmlib.data.casing import learn_casing
from lmlib.data.corpus import SPLIT_NAMES, Corpus, corpus_reference, is_presplit
from lmlib.data.tokenize import basic_english, whitespace_lines
from lmlib.data.vocab import EOS, Vocab, check_min_freq
from lmlib.errors import LMError


@dataclass(frozen=True)
class Prepared:
    """What training needs: the vocabulary and the three splits as id arrays."""

    corpus: str  # what load_corpus takes to load it again: a name, or an absolute path (corpus_reference)
    protocol: str
    min_freq: int
    vocab: Vocab
    splits: dict[str, np.ndarray]  # split name -> int64 ids (with the appended <eos>)
    split_tokens: dict[str, int]  # tokens per split as the original table counts them
    split_types: dict[str, int]  # distinct tokens per split (before the vocabulary cut)
    book_tokens: dict[str, int]  # tokens per document (raw corpora), in reading order
    casing: dict[str, str] | None = None  # token -> usual surface form (data/casing.py); None: not learnt

    def data_config(self) -> dict:
        """The DataConfig fields this data was prepared with (for a run's config)."""
        return {"corpus": self.corpus, "protocol": self.protocol, "min_freq": self.min_freq}


def default_protocol(corpus: Corpus) -> str:
    return "given" if corpus.presplit else "original"


def resolve_data(data: dict) -> dict:
    """corpus, protocol and min_freq as `prepare` will record them: "not set" (None) replaced by what it will use,
    a corpus path made absolute (corpus_reference)."""
    corpus = corpus_reference(data.get("corpus", "austen"))
    protocol = data.get("protocol") or ("given" if is_presplit(corpus) else "original")
    min_freq = default_min_freq(protocol) if data.get("min_freq") is None else data["min_freq"]
    return {**data, "corpus": corpus, "protocol": protocol, "min_freq": min_freq}


def default_min_freq(protocol: str) -> int:
    # The original study kept words seen 3 times; a pre-split benchmark is already cut.
    return 1 if protocol == "given" else 3


def prepare(corpus: Corpus, protocol: str | None = None, min_freq: int | None = None) -> Prepared:
    """Tokenize `corpus`, build the vocabulary and the splits under `protocol`."""
    protocol = protocol or default_protocol(corpus)
    if protocol not in PROTOCOLS:
        raise LMError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if corpus.presplit != (protocol == "given"):
        need = "'given' (its own train/valid/test files)" if corpus.presplit else "original, train-vocab or by-book"
        raise LMError(f"corpus {corpus.name!r} needs protocol {need}, not {protocol!r}")
    min_freq = default_min_freq(protocol) if min_freq is None else min_freq
    check_min_freq(min_freq)
    if protocol == "given":
        token_lists = {split: whitespace_lines(doc.text) for split, doc in zip(SPLIT_NAMES, corpus.documents)}
        return _finish(corpus, protocol, min_freq, token_lists, token_lists["train"], {}, append_eos=False)
    # basic_english never joins tokens across whitespace, so tokenizing each book on its
    # own and concatenating equals tokenizing the concatenated string once (tested).
    books = {doc.title: basic_english(doc.text) for doc in corpus.documents}
    book_tokens = {title: len(tokens) for title, tokens in books.items()}
    if protocol == "by-book":
        token_lists = _split_by_book(corpus, list(books.values()))
        vocab_source = token_lists["train"]
    else:
        everything = [token for tokens in books.values() for token in tokens]
        token_lists = split_contiguous(everything)
        vocab_source = everything if protocol == "original" else token_lists["train"]
    prepared = _finish(corpus, protocol, min_freq, token_lists, vocab_source, book_tokens, append_eos=True)
    # From the whole raw text, whatever the protocol: casing only changes how text is shown, never an id.
    return replace(prepared, casing=learn_casing((doc.text for doc in corpus.documents), prepared.vocab.itos))


def split_contiguous(tokens: list[str]) -> dict[str, list[str]]:
    """train = first floor(0.70 N), valid = next floor(0.15 N), test = the rest."""
    n = len(tokens)
    n_train, n_valid = n * 70 // 100, n * 15 // 100  # exact integer floor, no float rounding
    if min(n_train, n_valid, n - n_train - n_valid) < 2:
        raise LMError(f"the corpus has only {n} tokens: too few to split into train/valid/test")
    return {
        "train": tokens[:n_train],
        "valid": tokens[n_train : n_train + n_valid],
        "test": tokens[n_train + n_valid :],
    }


def _split_by_book(corpus: Corpus, books: list[list[str]]) -> dict[str, list[str]]:
    if len(books) < 3:
        raise LMError(f"the by-book protocol needs at least 3 books; {corpus.name!r} has {len(books)}")
    return {
        "train": [token for tokens in books[:-2] for token in tokens],
        "valid": books[-2],
        "test": books[-1],
    }


def _finish(corpus, protocol, min_freq, token_lists, vocab_source, book_tokens, append_eos) -> Prepared:
    vocab = Vocab.build(vocab_source, min_freq=min_freq)
    splits, split_tokens, split_types = {}, {}, {}
    for split in SPLIT_NAMES:
        tokens = token_lists[split]
        split_tokens[split] = len(tokens)
        split_types[split] = len(set(tokens))
        splits[split] = vocab.encode(tokens + [EOS] if append_eos else tokens)
    reference = corpus.reference or corpus.name  # what reloads it: the run's config records this
    return Prepared(reference, protocol, min_freq, vocab, splits, split_tokens, split_types, book_tokens)
