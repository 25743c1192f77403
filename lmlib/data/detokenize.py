"""Turn basic_english tokens back into readable text.

basic_english lowercases and splits off punctuation and ASCII apostrophes ("don't" ->
"don ' t"), so generated tokens read badly as they are. We re-attach punctuation and
contractions, attach quotes to their words, and capitalise sentences. Given the run's casing
table (data/casing.py, learnt from the raw corpus), each word first takes its usual form
("darcy" -> "Darcy", "i" -> "I"); without one (older runs, pre-split corpora) only "I" is
capitalised besides sentence starts, as before casing existed.
"""

from __future__ import annotations

from collections.abc import Mapping

_NO_SPACE_BEFORE = {".", ",", "!", "?", ")", ";", ":", "”", "’"}
_NO_SPACE_AFTER = {"(", "“", "‘"}
_SENTENCE_END = {".", "!", "?"}
_CONTRACTIONS = {"t", "s", "d", "ll", "re", "ve", "m", "clock"}  # don't, it's, ..., o'clock
_WITHOUT_CASING = {"i": "I"}  # what text showed before casing tables: the one word English always capitalises


def detokenize(tokens: list[str], casing: Mapping[str, str] | None = None) -> str:
    """Readable text: no space before punctuation, contractions joined, words in their usual
    casing (`casing`: token -> form), sentences capitalised."""
    return "".join(detokenize_pieces(tokens, casing)).strip()


def detokenize_pieces(tokens: list[str], casing: Mapping[str, str] | None = None) -> list[str]:
    """The text each token adds, with the space before it if any: `detokenize` is their join, stripped.

    A piece depends on the tokens before it (sentence starts, open quotes) and, for an
    apostrophe, on the one after it ("don ' t" glues, a closing quote does not).
    """
    forms = _WITHOUT_CASING if casing is None else casing
    pieces: list[str] = []
    capitalise, glue, quote_open = True, True, False
    for i, token in enumerate(tokens):
        if token == "<eos>":
            pieces.append("\n")
            capitalise, glue, quote_open = True, True, False
            continue
        glue_after = token in _NO_SPACE_AFTER
        if token == "'":
            if i + 1 < len(tokens) and tokens[i + 1] in _CONTRACTIONS and pieces:
                glue, glue_after = True, True  # "don ' t" -> "don't"
            elif quote_open:
                glue, quote_open = True, False  # closing quote sticks to the word before
            else:
                glue_after, quote_open = True, True  # opening quote sticks to the word after
        word, capitalise = _capitalised(forms.get(token, token), capitalise)
        space = "" if glue or token in _NO_SPACE_BEFORE else " "
        pieces.append(space + word)
        glue = glue_after
        if token in _SENTENCE_END:
            capitalise = True
    return pieces


def _capitalised(token: str, capitalise: bool) -> tuple[str, bool]:
    """Capitalise the first letter of a sentence (after any opening quote)."""
    lead = 1 if token[:1] in '“‘"' else 0
    if capitalise and token[lead : lead + 1].isalpha():
        return token[:lead] + token[lead].upper() + token[lead + 1 :], False
    return token, capitalise
