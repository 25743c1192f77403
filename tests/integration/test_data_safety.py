"""Nothing outside a run is lost, and what a corpus holds cannot reach the terminal (issue 20).

Each test repeats a probe of the second hardening round the way it was tried: the real CLI in
a subprocess, on real folders, links, FIFOs and devices. Before the fixes, each of them lost a
user's file, hung, or printed a corpus's escape sequences raw.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_import_original import WORDS, study_files
from test_reliability import assert_one_line_error, lmlib

from lmlib.errors import LMError

SMOKE = ["--preset", "smoke", "--set", "epochs=1", "--set", "subset_tokens=3000", "--samples", "0", "--json"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    words = "the cat sat on the mat . a dog ran to the park . she said hello to him .".split()
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(words[i:] + words[:i]) for i in range(len(words))) * 20, encoding="utf-8")
    return path


def import_args(study: dict, run_dir) -> list:
    return ["import-original", "--state-dict", study["state_dict"], "--vocab", study["vocab"],
            "--config", study["config"], "--run-dir", run_dir]  # fmt: skip


# -- import-original writes a new folder, never over someone's ----------------------------


def test_import_original_keeps_a_folder_of_other_files(tmp_path):
    study = study_files(tmp_path / "study", WORDS)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "t.txt").write_text("t")
    assert_one_line_error(lmlib(*import_args(study, docs), cwd=tmp_path), "not a new or empty folder")
    assert sorted(p.name for p in docs.iterdir()) == ["t.txt"] and (docs / "t.txt").read_text() == "t"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing swapped aside


def test_import_original_never_touches_a_checkouts_data_folder(tmp_path):
    """`--run-dir data` in a checkout named the bundled corpus: it must stay whole."""
    study = study_files(tmp_path / "study", WORDS)
    checkout = tmp_path / "checkout"
    (checkout / "data" / "austen").mkdir(parents=True)
    (checkout / "data" / "austen" / "1_sense_and_sensibility.txt.gz").write_bytes(b"\x1f\x8b book")
    assert_one_line_error(lmlib(*import_args(study, "data"), cwd=checkout), "not a new or empty folder")
    assert (checkout / "data" / "austen" / "1_sense_and_sensibility.txt.gz").read_bytes() == b"\x1f\x8b book"
    for here in (".", ".."):  # the current folder or one above it: refused, not renamed away
        assert_one_line_error(lmlib(*import_args(study, here), cwd=checkout / "data"))
    assert (checkout / "data" / "austen").is_dir()


def test_import_original_writes_into_a_missing_or_empty_folder(tmp_path):
    study = study_files(tmp_path / "study", WORDS)
    (tmp_path / "empty").mkdir()
    for run in (tmp_path / "empty", tmp_path / "new"):
        proc = lmlib(*import_args(study, run), "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert (run / "config.json").is_file() and (run / "model.safetensors").is_file()
    again = lmlib(*import_args(study, tmp_path / "new"), cwd=tmp_path)
    assert_one_line_error(again, "already holds a run")


# -- the run lock never writes through a link -----------------------------------------------


def test_a_symlinked_lock_file_leaves_its_target_intact(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".train.lock").symlink_to(victim)
    proc = lmlib("train", *SMOKE, "--run-dir", "r", cwd=tmp_path)
    assert_one_line_error(proc, "is a symbolic link, not the lock file lmlib creates")
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [".train.lock"]  # nothing trained there


def test_a_lock_file_that_is_not_ours_is_refused_and_kept(tmp_path):
    """A hard link to another file, a folder, a FIFO, or a file of text: never truncated or opened for writing."""
    from lmlib.training.ownership import own_run_dir

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    cases = {"hard": "has other names", "text": "holds something other than a process id",
             "folder": "is not a regular file", "fifo": "is not a regular file"}  # fmt: skip
    for name, message in cases.items():
        run = tmp_path / name
        run.mkdir()
        lock = run / ".train.lock"
        if name == "hard":
            os.link(victim, lock)
        elif name == "text":
            lock.write_text("my notes\n")
        elif name == "folder":
            lock.mkdir()
        else:
            os.mkfifo(lock)
        with pytest.raises(LMError, match=message):
            with own_run_dir(run):
                pass
    assert victim.read_text() == "precious\n" and (tmp_path / "text" / ".train.lock").read_text() == "my notes\n"
    with own_run_dir(tmp_path / "fresh"):  # the lock of a new run is still taken and holds our pid
        assert (tmp_path / "fresh" / ".train.lock").read_text() == f"{os.getpid()}\n"


# -- train and --restart write and delete only a run's own files ----------------------------


def test_restart_keeps_files_that_are_not_a_runs(tmp_path):
    run = tmp_path / "model"
    run.mkdir()
    foreign = {"config.json": '{"model_type": "bert", "hidden_size": 768}\n', "results.json": '{"f1": 0.9}\n',
               "metrics.csv": "step,loss\n1,2.0\n"}  # fmt: skip
    for name, text in foreign.items():
        (run / name).write_text(text)
    proc = lmlib("train", *SMOKE, "--run-dir", run, "--restart", cwd=tmp_path)
    assert_one_line_error(proc, "is not the config.json of an lmlib run")
    assert {name: (run / name).read_text() for name in foreign} == foreign


def test_train_never_overwrites_a_vocabulary_without_its_run(tmp_path):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "vocab.json").write_text('{"my": 1}\n')
    for extra in ([], ["--restart"]):
        proc = lmlib("train", *SMOKE, "--run-dir", run, *extra, cwd=tmp_path)
        assert_one_line_error(proc, "holds vocab.json but no config.json")
        assert (run / "vocab.json").read_text() == '{"my": 1}\n' and not (run / "config.json").exists()


def test_restart_still_starts_a_run_of_its_own_over(tmp_path):
    first = lmlib("train", *SMOKE, "--run-dir", "r", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "r" / "notes.md").write_text("mine")
    again = lmlib("train", *SMOKE, "--run-dir", "r", "--restart", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["test_ppl"] == json.loads(first.stdout)["test_ppl"]  # seeded: the same run
    assert (tmp_path / "r" / "notes.md").read_text() == "mine"


# -- prepare: a user's .NAME.old, corpora that never end, escapes in the corpus ----------------


def test_prepare_keeps_a_users_dot_old_folder_beside_its_target(tmp_path, corpus):
    mine = tmp_path / ".prepared.old"
    mine.mkdir()
    (mine / "keep.txt").write_text("keep")
    for _ in range(2):  # the second replaces prepared data: the swap needs room beside the target
        proc = lmlib("prepare", "--corpus", corpus, "--prepared-dir", "prepared", "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert (mine / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".prepared.old", "corpus.txt", "prepared"]


def test_a_device_or_fifo_as_corpus_is_a_one_line_error(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # reading it would block for ever
    assert_one_line_error(lmlib("prepare", "--corpus", fifo, cwd=tmp_path, timeout=60), "is a FIFO")
    if Path("/dev/zero").exists():  # endless: it was read until the memory ran out
        assert_one_line_error(lmlib("prepare", "--corpus", "/dev/zero", cwd=tmp_path, timeout=60), "not a regular")


def test_a_plain_corpus_file_has_a_size_limit(tmp_path, monkeypatch):
    from lmlib.data import corpus

    monkeypatch.setattr(corpus, "MAX_GUNZIP_BYTES", 1000)  # 2 GiB in use; small here to stay fast
    big = tmp_path / "big.txt"
    big.write_text("word " * 1000)
    with pytest.raises(LMError, match=r"big.txt holds more than .* GiB: that is no corpus"):
        corpus.load_corpus(big)


def test_prepare_prints_no_terminal_escapes_from_the_corpus(tmp_path):
    text = "\x1b]0;pwned\x07 \x1b[2J\x1b[31mred the cat sat . " * 30
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "1 \x1b[1mbold.txt").write_text(text, encoding="utf-8")
    (tmp_path / "books" / "2 plain.txt").write_text("the dog ran . " * 30, encoding="utf-8")
    proc = lmlib("prepare", "--corpus", tmp_path / "books", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "most frequent: " in proc.stdout and "red" in proc.stdout
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
