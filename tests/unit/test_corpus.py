import gzip

import pytest
from conftest import SHARED_PTB, write_hpd

from lmlib.data.corpus import load_corpus, load_hpd
from lmlib.data.splits import prepare
from lmlib.errors import LMError


def test_austen_has_six_books_in_publication_order():
    corpus = load_corpus("austen")
    assert [d.title for d in corpus.documents] == [
        "Sense and Sensibility",
        "Pride and Prejudice",
        "Mansfield Park",
        "Emma",
        "Northanger Abbey",
        "Persuasion",
    ]
    text = corpus.documents[0].text
    assert text.startswith("The family of Dashwood had long been settled in Sussex.")
    words = sum(len(d.text.split()) for d in corpus.documents)
    assert 700_000 < words < 730_000
    joined = "\n".join(d.text for d in corpus.documents)
    # the cleaning removed chapter headings and italics marks
    assert "CHAPTER" not in joined and "Chapter 1\n" not in joined and "_" not in joined


def test_hpd_reads_books_in_order_chapters_numerically_with_a_space_after_each(tiny_hpd):
    corpus = load_corpus(tiny_hpd)
    assert corpus.name == "hpd"
    assert [d.title for d in corpus.documents] == ["Book 1", "Book 2"]
    # chapter_10 after chapter_9; .DS_Store ignored; one space after each chapter
    assert corpus.documents[0].text == "“Harry,” said Ron. Two. Nine? Ten! "
    assert corpus.documents[1].text == "Book two — begins. Three "


def test_hpd_missing_empty_or_malformed_gives_one_clear_message(tmp_path):
    for root in (tmp_path / "absent", tmp_path / "empty"):
        if root.name == "empty":
            root.mkdir()
        with pytest.raises(LMError, match="book_1/chapter_1.txt") as err:
            load_hpd(root)
        assert "never shipped" in str(err.value) and "HPD" in str(err.value)
    gap = write_hpd(tmp_path / "gap", {1: {1: "a"}, 3: {1: "b"}})
    with pytest.raises(LMError, match="not 1..N"):
        load_hpd(gap)
    no_chapters = tmp_path / "nochap"
    (no_chapters / "book_1").mkdir(parents=True)
    (no_chapters / "book_1" / "notes.txt").write_text("x")
    with pytest.raises(LMError, match="no chapter_N.txt"):
        load_hpd(no_chapters)


def test_non_utf8_names_the_file_and_byte_offset(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes("héllo ".encode() + b"\xff rest")
    with pytest.raises(LMError, match=r"bad.txt is not valid UTF-8: byte 0xff at offset 7"):
        load_corpus(bad)


def test_text_file_and_folder_of_text_files(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "part_10.txt").write_text("ten")
    (tmp_path / "f" / "part_2.txt").write_text("two")
    (tmp_path / "f" / "skip.md").write_text("not text")
    corpus = load_corpus(tmp_path / "f")
    assert [d.text for d in corpus.documents] == ["two", "ten"]  # natural order
    single = load_corpus(tmp_path / "f" / "part_2.txt")
    assert single.documents[0].text == "two"


def test_bad_paths_and_names_are_clear_errors(tmp_path):
    with pytest.raises(LMError, match="unknown corpus name 'shakespeare'"):
        load_corpus("shakespeare")
    with pytest.raises(LMError, match="does not exist"):
        load_corpus(tmp_path / "nowhere.txt")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(LMError, match="holds no .txt files"):
        load_corpus(tmp_path / "empty_dir")
    (tmp_path / "blank.txt").write_text("  \n")
    with pytest.raises(LMError, match="contains no text"):
        load_corpus(tmp_path / "blank.txt")


def test_presplit_folder_whitespace_tokens_and_eos(tmp_path):
    for split, text in {"train": "a b c\nb c\n", "valid": "a z\n", "test": "c\n"}.items():
        (tmp_path / f"{split}.txt").write_text(text)
    prepared = prepare(load_corpus(tmp_path))
    assert prepared.protocol == "given"
    assert prepared.split_tokens == {"train": 7, "valid": 3, "test": 2}
    assert prepared.vocab.itos == ("<unk>", "<eos>", "b", "c", "a")  # no cut, eos not counted twice
    assert prepared.vocab.decode(prepared.splits["valid"]) == ["a", "<unk>", "<eos>"]
    with pytest.raises(LMError, match="needs protocol 'given'"):
        prepare(load_corpus(tmp_path), "original")
    (tmp_path / "test.txt").unlink()
    with pytest.raises(LMError, match="lacks the test split"):
        load_corpus(tmp_path)


@pytest.mark.skipif(not SHARED_PTB.is_dir(), reason="../shared/bench/ptb is absent")
def test_penn_treebank_exact_counts():
    prepared = prepare(load_corpus(SHARED_PTB))
    assert prepared.split_tokens == {"train": 929_589, "valid": 73_760, "test": 82_430}
    assert len(prepared.vocab) == 10_000
    assert prepared.splits["valid"][-1] == prepared.vocab.eos_index


def test_gzipped_text_is_read(tmp_path):
    path = tmp_path / "book.txt.gz"
    path.write_bytes(gzip.compress(b"Some text here."))
    assert load_corpus(path).documents[0].text == "Some text here."


def test_a_gzip_bomb_is_refused_and_a_broken_gzip_is_a_clear_error(tmp_path, monkeypatch):
    from lmlib.data import corpus

    monkeypatch.setattr(corpus, "MAX_GUNZIP_BYTES", 10_000)  # 2 GiB in use; small here to stay fast
    path = tmp_path / "bomb.txt.gz"
    path.write_bytes(gzip.compress(b"word " * 4000))  # 20 kB of text in a few hundred bytes
    with pytest.raises(LMError, match="decompresses to more than"):
        load_corpus(path)
    path.write_bytes(gzip.compress(b"word " * 1000))
    assert load_corpus(path).documents[0].text.startswith("word word")
    path.write_bytes(b"plain text")
    with pytest.raises(LMError, match="is not a valid gzip file"):
        load_corpus(path)
