import pytest

from lmlib.data.detokenize import detokenize
from lmlib.data.tokenize import basic_english


@pytest.mark.parametrize(
    "text,expected",
    [
        ("“I don't know,” said Harry. “it's 10 o'clock!”", "“I don't know,” said harry. “It's 10 o'clock!”"),
        ("what (really) happened? i think so.", "What (really) happened? I think so."),
        ("she said 'well' and left", "She said 'well' and left"),
        ("mr. darcy's house.", "Mr. Darcy's house."),
    ],
)
def test_round_trip_reads_well(text, expected):
    assert detokenize(basic_english(text)) == expected


def test_eos_starts_a_new_capitalised_line():
    assert detokenize(["the", "end", ".", "<eos>", "she", "left"]) == "The end.\nShe left"
