"""Casing: each word's usual form learnt from the raw corpus, shown by detokenize, never touching ids."""

from __future__ import annotations

import json
import shutil

import pytest

from lmlib.cli import main
from lmlib.data.casing import learn_casing, load_casing, save_casing, surface_tokens
from lmlib.data.corpus import load_austen, load_corpus
from lmlib.data.detokenize import detokenize
from lmlib.data.prepared import load_prepared, save_prepared
from lmlib.data.splits import prepare
from lmlib.data.tokenize import basic_english
from lmlib.errors import LMError
from lmlib.generate import Generator, readable

TEXT = (
    "The cat sat. The dog ran. The bird sang. He saw the hat. "
    "Harry said that Mr. Darcy was late. Harry ran. Then Mr. Darcy said: “I know.” "
    "Meanwhile it rained. CHAPTER TWO. The chapter ended, and the BBC said so. I think BBC news was fine."
)


def words_of(text: str) -> set[str]:
    return set(basic_english(text))


def test_learns_names_titles_and_i_and_keeps_the_lowercase_of_sentence_starts():
    forms = learn_casing([TEXT], words_of(TEXT))
    assert forms["darcy"] == "Darcy" and forms["mr"] == "Mr" and forms["harry"] == "Harry"
    assert forms["i"] == "I" and forms["“i"] == "“I"
    assert "the" not in forms  # "The" opens three sentences, "the" is the word's form elsewhere
    assert "chapter" not in forms  # a heading in capitals says nothing about the word's usual form
    assert forms["meanwhile"] == "Meanwhile"  # only ever at a sentence start: that is all there is
    assert forms["bbc"] == "BBC"  # only ever in capitals: an acronym
    assert all(form.lower() == token and form != token for token, form in forms.items())


def test_only_vocabulary_words_are_kept_and_ties_go_to_the_lowercase():
    text = "we met Bath and bath and Rome in Paris. <EOS> said <UNK>."
    forms = learn_casing([text], ["bath", "<eos>", "<unk>", "said", "paris"])
    assert forms == {"paris": "Paris"}  # "rome" is not in the vocabulary; specials never; Bath/bath tie -> lowercase


def test_surface_forms_line_up_with_the_tokens():
    text = "“Hello,” she said. Don't!<BR />Mr. Darcy's (very) good; 'quoted'  text? Yes: no."
    assert [form.lower() for form in surface_tokens(text)] == basic_english(text)


def test_surface_forms_line_up_with_the_tokens_on_the_embedded_corpus():
    for document in load_austen().documents:
        forms = surface_tokens(document.text)
        assert [form.lower() for form in forms] == basic_english(document.text), document.title


def test_detokenize_applies_the_usual_form_then_capitalises_sentences():
    tokens = ["mr", ".", "darcy", "said", "i", "am", "harry", ".", "the", "end", "."]
    casing = {"mr": "Mr", "darcy": "Darcy", "i": "I", "harry": "Harry"}
    assert detokenize(tokens, casing) == "Mr. Darcy said I am Harry. The end."
    assert detokenize(tokens) == "Mr. Darcy said I am harry. The end."  # no table: as before casing
    assert detokenize(["we", "said", "i"], {}) == "We said i"  # "I" comes from the corpus, not from code


def test_casing_json_round_trips_and_damage_is_a_clear_error(tmp_path):
    path = tmp_path / "casing.json"
    assert load_casing(path) is None
    save_casing(path, {"mr": "Mr", "darcy": "Darcy"})
    assert json.loads(path.read_text()) == {"version": 1, "forms": {"darcy": "Darcy", "mr": "Mr"}}
    assert load_casing(path) == {"darcy": "Darcy", "mr": "Mr"}
    for bad, message in [
        ("{not json", "not a valid casing.json"),
        ('{"version": 2, "forms": {}}', "casing version 2"),
        ('{"version": 1, "forms": ["x"]}', "not a mapping"),
        ('{"version": 1, "forms": {"darcy": "Bingley"}}', "not the same word"),
    ]:
        path.write_text(bad)
        with pytest.raises(LMError, match=message):
            load_casing(path)


def test_prepared_data_keeps_its_casing_and_old_folders_have_none(tmp_path):
    corpus = tmp_path / "book.txt"
    corpus.write_text("Mr. Darcy met Elizabeth. " * 20 + "the end. " * 10, encoding="utf-8")
    assert main(["prepare", "--corpus", str(corpus), "--out", str(tmp_path / "prep")]) == 0
    prepared = load_prepared(tmp_path / "prep")
    assert prepared.casing == {"darcy": "Darcy", "elizabeth": "Elizabeth", "mr": "Mr"}
    save_prepared(prepared, tmp_path / "prep")  # casing.json is one of prepared data's own files: replaceable
    (tmp_path / "prep" / "casing.json").unlink()  # a folder prepared before casing existed
    assert load_prepared(tmp_path / "prep").casing is None
    save_prepared(prepared, tmp_path / "prep")  # still prepared data: it may be replaced
    assert load_casing(tmp_path / "prep" / "casing.json") == prepared.casing


def test_a_presplit_corpus_has_no_casing(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text("the Cat sat\n a dog ran\n", encoding="utf-8")
    assert prepare(load_corpus(tmp_path)).casing is None


def test_a_trained_run_keeps_the_casing_and_the_cli_shows_it(smoke_run, capsys):
    casing = load_casing(smoke_run / "casing.json")
    assert casing["darcy"] == "Darcy" and casing["mr"] == "Mr" and casing["i"] == "I" and "the" not in casing
    args = ["generate", "--run", str(smoke_run), "--prompt", "mr. darcy said", "--seed", "1", "--max-new-tokens", "12"]
    assert main([*args, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["text"] == "mr. darcy said" + shown["continuation"]  # the prompt as typed, then readable text
    assert shown["text"] == readable("mr. darcy said", shown["tokens"], casing)
    assert all(casing.get(t, t) in shown["continuation"] for t in shown["tokens"] if t.isalpha())  # cased words
    assert all(token == token.lower() for token in shown["tokens"])  # the model's tokens stay as they are
    assert main(args) == 0 and capsys.readouterr().out.strip() == shown["text"]


def test_casing_never_changes_what_is_generated(smoke_run, tmp_path):
    plain_run = shutil.copytree(smoke_run, tmp_path / "plain")
    (plain_run / "casing.json").unlink()  # as a run from before casing
    cased, plain = Generator.from_run(smoke_run, "cpu"), Generator.from_run(plain_run, "cpu")
    assert plain.casing is None and cased.casing
    a = cased.generate("she said that mr. darcy", 30, temperature=1.0, seed=5)
    b = plain.generate("she said that mr. darcy", 30, temperature=1.0, seed=5)
    assert (a.tokens, a.surprisals) == (b.tokens, b.surprisals)
    assert a.text.lower() == b.text.lower()
    assert (
        cased.readable("", ["said", "darcy"]) == "Said Darcy" and plain.readable("", ["said", "darcy"]) == "Said darcy"
    )
    streamed = list(cased.stream("she said that mr. darcy", 30, temperature=1.0, seed=5))
    assert [t.token for t in streamed] == a.tokens
    assert [t.word for t in streamed] == [cased.casing.get(token, token) for token in a.tokens]


def test_a_run_trained_from_prepared_data_takes_its_casing(tmp_path):
    from lmlib.presets import get_preset
    from lmlib.training.loop import train

    corpus = tmp_path / "book.txt"
    corpus.write_text("Mr. Darcy met Elizabeth in the hall. " * 60, encoding="utf-8")
    config = get_preset("smoke", corpus=str(corpus), epochs=1, emb_dim=8, hid_dim=8, batch_size=4, bptt=5)
    prepared = prepare(load_corpus(corpus), min_freq=1)
    train(config.replace(min_freq=1), tmp_path / "run", prepared=prepared, progress=False)
    assert (
        load_casing(tmp_path / "run" / "casing.json")
        == prepared.casing
        == {
            "darcy": "Darcy",
            "elizabeth": "Elizabeth",
            "mr": "Mr",
        }
    )


def test_import_original_learns_the_casing_from_the_corpus_it_is_given(tmp_path):
    from test_import_original import imported, study_files

    corpus = tmp_path / "book.txt"
    corpus.write_text("Harry saw Ron and the owl. " * 300, encoding="utf-8")
    prepared = prepare(load_corpus(corpus))
    files = study_files(tmp_path / "study", list(prepared.vocab.itos))
    imported(files, tmp_path / "with", corpus=str(corpus), device="cpu")
    assert load_casing(tmp_path / "with" / "casing.json") == prepared.casing == {"harry": "Harry", "ron": "Ron"}
    assert Generator.from_run(tmp_path / "with", "cpu").readable("harry saw", ["ron"]) == "harry saw Ron"
    imported(files, tmp_path / "without")  # no corpus: nothing to learn from, lowercase as before
    assert not (tmp_path / "without" / "casing.json").exists()
