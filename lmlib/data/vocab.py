"""Vocabulary: `<unk>` = 0, `<eos>` = 1, then tokens by descending frequency.

Ties are broken in lexicographic order, which is the order torchtext's
`build_vocab_from_iterator` produces (it sorts by (-count, token)), so a vocabulary
built here numbers the words exactly as the original study's did.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmlib.atomic import write_json
from lmlib.checks import not_int
from lmlib.errors import LMError

UNK, EOS = "<unk>", "<eos>"
SPECIALS = (UNK, EOS)
UNK_INDEX, EOS_INDEX = SPECIALS.index(UNK), SPECIALS.index(EOS)  # 0 and 1 in every vocabulary


@dataclass(frozen=True)
class Vocab:
    """An ordered list of tokens; unknown tokens map to `<unk>`."""

    itos: tuple[str, ...]
    counts: tuple[int, ...] = ()  # training-corpus frequency of each token (0 for specials)
    stoi: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if tuple(self.itos[: len(SPECIALS)]) != SPECIALS:
            raise LMError(f"a vocabulary must start with {SPECIALS}, got {self.itos[:2]}")
        odd = next((t for t in self.itos if not isinstance(t, str)), None)
        if odd is not None:
            raise LMError(f"vocabulary tokens must be text, found {odd!r}: the vocab.json file is corrupt")
        if self.counts and (len(self.counts) != len(self.itos) or any(not_int(c) or c < 0 for c in self.counts)):
            raise LMError("vocabulary counts must be one whole number >= 0 per token: the vocab.json file is corrupt")
        stoi = {token: index for index, token in enumerate(self.itos)}
        if len(stoi) != len(self.itos):
            raise LMError("the vocabulary lists a token twice: the vocab.json file is corrupt")
        object.__setattr__(self, "stoi", stoi)

    @classmethod
    def build(cls, tokens: Iterable[str], min_freq: int = 1) -> Vocab:
        """Count `tokens` and keep those seen at least `min_freq` times (specials always kept)."""
        check_min_freq(min_freq)
        counter = Counter(tokens)
        for special in SPECIALS:
            counter.pop(special, None)  # specials are placed first, never counted twice
        ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
        kept = [(token, count) for token, count in ordered if count >= min_freq]
        itos = SPECIALS + tuple(token for token, _ in kept)
        counts = (0,) * len(SPECIALS) + tuple(count for _, count in kept)
        return cls(itos, counts)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    @property
    def unk_index(self) -> int:
        return UNK_INDEX

    @property
    def eos_index(self) -> int:
        return EOS_INDEX

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Token strings -> int64 ids; unknown tokens become `<unk>` (0)."""
        get = self.stoi.get
        return np.fromiter((get(t, UNK_INDEX) for t in tokens), dtype=np.int64, count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> token strings."""
        itos = self.itos
        return [itos[int(i)] for i in ids]

    def to_json(self) -> dict:
        return {"itos": list(self.itos), "counts": list(self.counts)}

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (atomically)."""
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Read a vocabulary written by `save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(tuple(data["itos"]), tuple(data.get("counts", ())))
        except FileNotFoundError:
            raise LMError(f"vocabulary file {path} is missing") from None
        except (ValueError, KeyError, TypeError) as err:  # ValueError: bad JSON or bad UTF-8
            raise LMError(f"vocabulary file {path} is not a valid vocab.json ({err})") from None
        except OSError as err:  # a folder, no permission
            raise LMError(f"vocabulary file {path} cannot be read ({err.strerror})") from None


def check_min_freq(min_freq: int) -> None:
    """`min_freq` must be a whole number >= 1."""
    if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
        raise LMError(f"min_freq must be a whole number >= 1, got {min_freq!r}")
