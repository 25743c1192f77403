"""Each word's usual casing, learnt from the raw corpus, so that generated text can show it.

basic_english lowercases everything ("Mr. Darcy" -> "mr . darcy"), which the model needs (one
id per word) but readers do not. The casing table maps a vocabulary token to the surface form
the corpus writes it in most often ("darcy" -> "Darcy", "mr" -> "Mr", "i" -> "I"); detokenize
applies it. It never touches ids, so perplexity and training are unchanged.

Surface forms come from the same substitutions as basic_english without the lowercasing, so
the k-th surface form lowercases to the k-th token (tested on the embedded corpus). A word at
a sentence start ("The") or written in capitals ("CHAPTER", "HARRY!") says little about its
usual form: such occurrences count only for words never seen elsewhere (names that open
sentences, acronyms, Roman numerals).

    casing.json    {"version": 1, "forms": {"darcy": "Darcy", "mr": "Mr", ...}}

Only tokens whose usual form differs from the token are stored.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from lmlib.atomic import write_json
from lmlib.data.tokenize import basic_english
from lmlib.data.vocab import SPECIALS
from lmlib.errors import LMError

CASING_VERSION = 1
_SENTENCE_END = {".", "!", "?"}


def surface_tokens(text: str) -> list[str]:
    """basic_english's tokens as the text writes them: `[t.lower() for t in surface_tokens(x)] == basic_english(x)`."""
    return basic_english(text, lowercase=False)


def count_forms(texts: Iterable[str]) -> tuple[Counter, Counter]:
    """(plain, other): surface-form counts in ordinary positions, and at sentence starts or in capitals."""
    every, starts = Counter(), Counter()
    for text in texts:
        forms = surface_tokens(text)
        every.update(forms)
        starts.update(forms[:1])  # a document starts a sentence
        starts.update(after for before, after in zip(forms, forms[1:]) if before in _SENTENCE_END)
    plain, other = Counter(), Counter()
    for form, count in every.items():
        if len(form) > 1 and form.isupper():  # "CHAPTER", "HARRY"; not "I" or "A"
            other[form] = count
        else:
            plain[form], other[form] = count - starts[form], starts[form]
    return +plain, +other  # unary plus drops the zero counts


def learn_casing(texts: Iterable[str], vocabulary: Iterable[str]) -> dict[str, str]:
    """token -> its most frequent surface form, for the `vocabulary` tokens whose form is not the token itself.

    Ordinary occurrences decide; sentence starts and capitals only for a word that has no other.
    Ties go to the lowercase token, then to the first form in code-point order (deterministic).
    """
    plain, other = count_forms(texts)
    wanted = set(vocabulary) - set(SPECIALS)
    grouped: dict[str, tuple[Counter, Counter]] = {}
    for counts, tier in ((plain, 0), (other, 1)):
        for form, count in counts.items():
            token = form.lower()
            if token in wanted and form != token:
                grouped.setdefault(token, (Counter(), Counter()))[tier][form] = count
    forms = {}
    for token, (ordinary, rest) in grouped.items():
        counts = ordinary.copy()
        counts[token] = plain[token]  # the lowercase form competes too
        if not ordinary and not plain[token]:
            counts = rest.copy()
            counts[token] = other[token]
        best = min(counts, key=lambda form: (-counts[form], form != token, form))
        if best != token:
            forms[token] = best
    return dict(sorted(forms.items()))


def save_casing(path: str | os.PathLike, forms: dict[str, str]) -> None:
    """Write casing.json (atomically)."""
    write_json(path, {"version": CASING_VERSION, "forms": dict(sorted(forms.items()))})


def load_casing(path: str | os.PathLike) -> dict[str, str] | None:
    """The casing table in `path`, or None when there is none (runs and prepared data from before casing)."""
    path = Path(path)
    if not path.exists():
        return None
    fix = f"delete {path} to show lowercase text, or prepare the data again"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        version, forms = data["version"], data["forms"]
    except (ValueError, KeyError, TypeError) as err:  # ValueError: bad JSON or bad UTF-8
        raise LMError(f"{path} is not a valid casing.json ({type(err).__name__}: {err}): {fix}") from None
    except OSError as err:  # a folder, no permission
        raise LMError(f"{path} cannot be read ({err.strerror}): {fix}") from None
    if version != CASING_VERSION:
        raise LMError(f"{path} has casing version {version!r}; this lmlib reads version {CASING_VERSION}: {fix}")
    if not isinstance(forms, dict):
        raise LMError(f"{path} is not a valid casing.json (forms is not a mapping): {fix}")
    for token, form in forms.items():
        # A form may only change letters' case: the table can never put other words in the model's mouth.
        if not isinstance(form, str) or form.lower() != token:
            raise LMError(f"{path} maps {token!r} to {form!r}, which is not the same word: {fix}")
    return forms
