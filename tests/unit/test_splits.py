import pytest

from lmlib.data.corpus import Corpus, Document, load_corpus
from lmlib.data.splits import prepare, split_contiguous
from lmlib.data.stats import book_table, most_frequent, split_table, summary
from lmlib.data.tokenize import basic_english
from lmlib.errors import LMError


def test_contiguous_split_sizes_are_the_original_tables():
    # N = 1,323,714 on the Harry Potter books gives the original study's table
    tokens = ["w"] * 1_323_714
    parts = split_contiguous(tokens)
    assert [len(parts[s]) for s in ("train", "valid", "test")] == [926_599, 198_557, 198_558]


def corpus_of(*texts):
    return Corpus("toy", "-", tuple(Document(f"Book {i}", t) for i, t in enumerate(texts, 1)))


def test_original_protocol_vocab_over_all_tokens_and_one_eos_per_split():
    # 20 tokens: train 14, valid 3, test 3
    corpus = corpus_of("a b a b a b a b a b a b a b", "c c c d d d")
    prepared = prepare(corpus, "original", min_freq=3)
    assert prepared.split_tokens == {"train": 14, "valid": 3, "test": 3}
    assert prepared.vocab.itos == ("<unk>", "<eos>", "a", "b", "c", "d")  # c, d only in valid/test
    assert prepared.vocab.decode(prepared.splits["valid"]) == ["c", "c", "c", "<eos>"]
    assert prepared.vocab.decode(prepared.splits["test"]) == ["d", "d", "d", "<eos>"]
    assert prepared.book_tokens == {"Book 1": 14, "Book 2": 6}


def test_train_vocab_protocol_does_not_leak_valid_and_test_words():
    corpus = corpus_of("a b a b a b a b a b a b a b", "c c c d d d")
    prepared = prepare(corpus, "train-vocab", min_freq=1)
    assert prepared.vocab.itos == ("<unk>", "<eos>", "a", "b")
    assert summary(prepared)["test_unk_rate"] == pytest.approx(3 / 4)


def test_by_book_protocol_last_book_is_test_and_needs_three_books():
    corpus = corpus_of("a a b", "b c", "c d d", "e")
    prepared = prepare(corpus, "by-book", min_freq=1)
    assert prepared.split_tokens == {"train": 5, "valid": 3, "test": 1}
    assert prepared.vocab.decode(prepared.splits["test"]) == ["<unk>", "<eos>"]
    with pytest.raises(LMError, match="at least 3 books"):
        prepare(corpus_of("a b c d e f g h i j", "x y z"), "by-book")


def test_unknown_protocol_and_bad_min_freq_are_clear_errors():
    corpus = corpus_of("a b c d e f g h i j k l m n o p q r s t")
    with pytest.raises(LMError, match="unknown protocol 'random'"):
        prepare(corpus, "random")
    with pytest.raises(LMError, match="min_freq"):
        prepare(corpus, "original", min_freq=0)
    with pytest.raises(LMError, match="too few to split"):
        prepare(corpus_of("a b c"), "original")


def test_hpd_protocol_tokenizes_the_joined_string(tiny_hpd):
    corpus = load_corpus(tiny_hpd)
    prepared = prepare(corpus, "original", min_freq=1)
    everything = basic_english("".join(d.text for d in corpus.documents))
    assert sum(prepared.split_tokens.values()) == len(everything)
    decoded = [t for s in ("train", "valid", "test") for t in prepared.vocab.decode(prepared.splits[s])[:-1]]
    assert decoded == everything


def test_austen_original_protocol_statistics():
    prepared = prepare(load_corpus("austen"))
    s = summary(prepared)
    assert s["tokens"] == s["train_tokens"] + s["valid_tokens"] + s["test_tokens"]
    assert s["train_tokens"] == s["tokens"] * 70 // 100
    assert 800_000 < s["tokens"] < 850_000 and 7_000 < s["vocab_size"] < 9_000
    assert set(s["book_tokens"]) >= {"Emma", "Persuasion"} and s["books"] == s["book_tokens"]  # old name kept
    table = split_table(prepared)
    assert list(table.index) == ["train", "valid", "test"]
    assert 0 < table.loc["test", "<unk> rate %"] < 5
    frequent = most_frequent(prepared, 5)
    assert list(frequent["word"][:3]) == [",", ".", "the"]
    assert list(book_table(prepared)["tokens"]) == list(s["book_tokens"].values())
