"""Golden tests: lmlib.data.tokenize.basic_english behaves exactly like torchtext's basic_english."""

import pytest

from lmlib.data.tokenize import basic_english, whitespace_lines

GOLDEN = [
    # curly quotes and em dashes are not split off (torchtext only knows ASCII quotes)
    ("“Hello,” said Harry — it’s 10:30.", ["“hello", ",", "”", "said", "harry", "—", "it’s", "10", "30", "."]),
    # ASCII apostrophes become their own token; ASCII double quotes vanish
    ("Don't stop!", ["don", "'", "t", "stop", "!"]),
    ('HE SAID "no"', ["he", "said", "no"]),
    ("'tis the end.\n\tNew  line", ["'", "tis", "the", "end", ".", "new", "line"]),
    # <br /> is removed; ; and : become spaces; brackets, ! and ? are split off
    ("a<br />b (c) d;e:f?", ["a", "b", "(", "c", ")", "d", "e", "f", "?"]),
    ("line<BR />break", ["line", "break"]),
    # numbers: the full stop splits decimals; $ stays attached
    ("Mr. O'Neil paid $3.50...", ["mr", ".", "o", "'", "neil", "paid", "$3", ".", "50", ".", ".", "."]),
    ("1,000 wands", ["1", ",", "000", "wands"]),
    # double hyphens and hyphenated words stay one token
    ("well--then, twenty-one", ["well--then", ",", "twenty-one"]),
    ("", []),
    ("   ", []),
]


@pytest.mark.parametrize("text,expected", GOLDEN)
def test_basic_english_golden(text, expected):
    assert basic_english(text) == expected


def test_tokenizing_books_separately_equals_tokenizing_the_joined_string():
    # the splits module relies on this to count tokens per book
    parts = ["First book ends.", "“Second” book—starts!", "Third (last)"]
    joined = basic_english(" ".join(parts))
    assert joined == [t for p in parts for t in basic_english(p)]


def test_whitespace_lines_appends_eos_per_line_and_skips_blank_lines():
    text = " the cat sat \n\n a <unk> N \n"
    assert whitespace_lines(text) == ["the", "cat", "sat", "<eos>", "a", "<unk>", "N", "<eos>"]
