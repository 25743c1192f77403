"""torchtext's `basic_english` tokenizer, reproduced exactly (without depending on torchtext).

torchtext is unmaintained (its last release targets torch 2.3), but the original study
tokenized with `get_tokenizer("basic_english")`, so we keep its behaviour to the byte:
lowercase, then a fixed list of regex substitutions applied in order, then split on
whitespace. Curly quotes and dashes are *not* separated: "“hello" stays one token.
"""

from __future__ import annotations

import re

# (pattern, replacement) in torchtext's order (torchtext/data/utils.py, _basic_english_normalize).
_BASIC_ENGLISH_RULES = [
    (re.compile(r"\'"), " '  "),
    (re.compile(r"\""), ""),
    (re.compile(r"\."), " . "),
    (re.compile(r"<br \/>", re.IGNORECASE), " "),  # the same after lowercasing; also for lowercase=False
    (re.compile(r","), " , "),
    (re.compile(r"\("), " ( "),
    (re.compile(r"\)"), " ) "),
    (re.compile(r"\!"), " ! "),
    (re.compile(r"\?"), " ? "),
    (re.compile(r"\;"), " "),
    (re.compile(r"\:"), " "),
    (re.compile(r"\s+"), " "),
]


def basic_english(text: str, lowercase: bool = True) -> list[str]:
    """Split `text` into tokens exactly as torchtext's `basic_english` tokenizer does.

    `lowercase=False` gives the same tokens as the text writes them (data/casing.py learns from them).
    """
    if lowercase:
        text = text.lower()
    for pattern, replacement in _BASIC_ENGLISH_RULES:
        text = pattern.sub(replacement, text)
    return text.split()


def whitespace_lines(text: str, eos: str = "<eos>") -> list[str]:
    """Tokenize pre-tokenized text (PTB, WikiText): split on whitespace, `eos` after each line."""
    tokens: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words:
            tokens.extend(words)
            tokens.append(eos)
    return tokens
