import pytest

from lmlib.data.vocab import Vocab
from lmlib.errors import LMError


def test_order_specials_then_frequency_then_lexicographic():
    tokens = "b a c b a d b e e".split()
    vocab = Vocab.build(tokens)
    # counts: b 3, a 2, e 2, c 1, d 1 -> ties broken alphabetically (torchtext order)
    assert vocab.itos == ("<unk>", "<eos>", "b", "a", "e", "c", "d")
    assert vocab.counts == (0, 0, 3, 2, 2, 1, 1)


def test_min_freq_cuts_rare_words_and_they_encode_as_unk():
    vocab = Vocab.build("x x y z z z".split(), min_freq=2)
    assert vocab.itos == ("<unk>", "<eos>", "z", "x")
    assert list(vocab.encode(["z", "y", "x", "never"])) == [2, 0, 3, 0]
    assert vocab.decode([2, 0, 1]) == ["z", "<unk>", "<eos>"]


def test_specials_in_the_text_are_not_duplicated():
    vocab = Vocab.build(["<eos>", "a", "<unk>", "a"])
    assert vocab.itos == ("<unk>", "<eos>", "a")


def test_json_round_trip(tmp_path):
    vocab = Vocab.build("one two two three three three".split())
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocab.load(tmp_path / "vocab.json")
    assert loaded.itos == vocab.itos and loaded.counts == vocab.counts
    assert list(loaded.encode(["three", "zzz"])) == [2, 0]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3", True])
def test_min_freq_below_one_or_not_an_int_is_a_clear_error(bad):
    with pytest.raises(LMError, match="min_freq"):
        Vocab.build(["a"], min_freq=bad)


def test_corrupt_vocab_file_is_a_clear_error(tmp_path):
    (tmp_path / "vocab.json").write_text("{not json")
    with pytest.raises(LMError, match="not a valid vocab.json"):
        Vocab.load(tmp_path / "vocab.json")
    with pytest.raises(LMError, match="missing"):
        Vocab.load(tmp_path / "absent.json")


def test_tokens_must_be_text_and_counts_whole_numbers(tmp_path):
    with pytest.raises(LMError, match="tokens must be text, found 17"):
        Vocab(("<unk>", "<eos>", "a", 17))
    with pytest.raises(LMError, match="one whole number >= 0 per token"):
        Vocab(("<unk>", "<eos>", "a"), (0, 0))
    with pytest.raises(LMError, match="one whole number >= 0 per token"):
        Vocab(("<unk>", "<eos>", "a"), (0, 0, "3"))
    (tmp_path / "vocab.json").mkdir()
    with pytest.raises(LMError, match="cannot be read"):
        Vocab.load(tmp_path / "vocab.json")
