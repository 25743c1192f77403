"""The valid/test gap study: per-token losses add up to each split's perplexity, on Austen and on an HPD layout."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_hpd

from lmlib.data.corpus import load_corpus
from lmlib.data.splits import prepare
from lmlib.presets import get_preset
from lmlib.report.gap import (
    StreamLosses,
    book_spans,
    combined_loss,
    gap_study,
    shift_share,
    stream_losses,
    windows,
)
from lmlib.report.gap_text import gap_analysis, plot_windows, segment_table, split_table
from lmlib.training.evaluate import evaluate_loss
from lmlib.training.loop import train

matplotlib.use("Agg")
TOLERANCE = 1e-6  # relative: the same losses summed in another order


def test_shift_share_splits_a_gap_into_mix_and_within_and_they_add_up():
    groups = pd.DataFrame({
        "split": ["valid", "valid", "test", "test"], "kind": ["A", "B", "A", "B"],
        "tokens": [50, 50, 20, 80], "loss": [1.0, 3.0, 1.5, 3.0],
    })  # fmt: skip
    parts = shift_share(groups, "kind").set_index("kind")
    assert parts.loc["A", "composition"] == pytest.approx(-0.3) and parts.loc["B", "composition"] == pytest.approx(0.9)
    assert parts.loc["A", "within"] == pytest.approx(0.1) and parts.loc["B", "within"] == pytest.approx(0.0)
    gap = (0.2 * 1.5 + 0.8 * 3.0) - (0.5 * 1.0 + 0.5 * 3.0)
    assert parts[["composition", "within"]].sum().sum() == pytest.approx(gap)
    only_test = pd.concat([groups, pd.DataFrame({"split": ["test"], "kind": ["C"], "tokens": [100], "loss": [5.0]})])
    parts = shift_share(only_test, "kind").set_index("kind")
    assert parts.loc["C", "within"] == 0.0  # a group valid lacks counts wholly as the mix
    total = (20 * 1.5 + 80 * 3.0 + 100 * 5.0) / 200 - 2.0
    assert parts[["composition", "within"]].sum().sum() == pytest.approx(total)


def test_windows_combine_to_the_streams_loss_and_carry_their_books():
    prepared = prepare(load_corpus("austen"))
    rng = np.random.default_rng(0)
    n = prepared.split_tokens["valid"]
    stream = StreamLosses("valid", np.arange(1, n + 1), np.ones(n, dtype=np.int64), rng.gamma(2.0, 2.0, n))
    w = windows(prepared, stream, 7_000)
    assert w["tokens"].sum() == n and combined_loss(w) == pytest.approx(stream.loss, rel=1e-12)
    assert w["start"].iloc[0] == prepared.split_tokens["train"] + 1  # positions are the corpus's
    assert list(pd.unique(w["book"])) == ["Emma", "Northanger Abbey"]  # the 70 % cut falls inside Emma
    spans = dict((t, (a, b)) for t, a, b in book_spans(prepared))
    assert spans["Persuasion"][1] == sum(prepared.book_tokens.values())


def test_stream_losses_put_every_predicted_token_back_in_stream_order(smoke_run):
    from lmlib.training.runs import load_model

    model, _, _ = load_model(smoke_run, "cpu")
    data = torch.arange(4 * 30).view(4, 30) % 50  # 4 rows of 30: row r holds tokens 30 r .. 30 r + 29
    stream = stream_losses(model, data, 7, "valid")
    assert len(stream.positions) == 4 * 29 and np.all(np.diff(stream.positions) > 0)
    assert set(range(120)) - set(stream.positions.tolist()) == {0, 30, 60, 90}  # each row's first token is context
    assert np.array_equal(stream.targets, stream.positions % 50)
    assert stream.loss == pytest.approx(evaluate_loss(model, data, 7), rel=TOLERANCE)


def test_the_gap_study_adds_up_to_each_splits_recorded_perplexity(smoke_run):
    study = gap_study(smoke_run, window=3000, device="cpu")
    for split in ("valid", "test"):
        assert study.losses[split] == pytest.approx(study.recorded[split], rel=TOLERANCE)  # results.json's
    for split, part in study.windows.groupby("split"):
        assert combined_loss(part) == pytest.approx(study.losses[split], rel=TOLERANCE)
        assert combined_loss(study.segments.query("split == @split")) == pytest.approx(study.losses[split], rel=1e-9)
        kinds = study.classes.query("split == @split and tokens > 0")
        assert kinds["share"].sum() == pytest.approx(1.0) and combined_loss(kinds) == pytest.approx(study.losses[split])
    gap = study.losses["test"] - study.losses["valid"]
    for parts in (study.by_book, study.by_word):
        assert parts[["composition", "within"]].sum().sum() == pytest.approx(gap, abs=1e-9)
    summary = study.summary()
    assert summary["window_losses"]["test"] == pytest.approx(summary["recorded"]["test"], rel=TOLERANCE)
    assert math.exp(study.losses["train"]) < math.exp(study.losses["valid"])  # it fitted its training text
    assert list(split_table(study).index) == ["train", "valid", "test"]


@pytest.fixture(scope="module")
def hpd_runs(tmp_path_factory):
    """A synthetic Harry Potter layout (5 books, chapters), one tiny run per protocol."""
    rng = np.random.default_rng(1)
    common = [f"w{i}" for i in range(60)]

    def chapter(book: int) -> str:
        names = [f"name{book}x{i}" for i in range(12)]  # each book brings its own names: later books hold new words
        words = rng.choice(common + names * 2, size=700, p=None)
        return " ".join(words) + " ."

    books = {b: {c: chapter(b) for c in range(1, 4)} for b in range(1, 6)}
    root = write_hpd(tmp_path_factory.mktemp("corpus") / "hpd", books)
    runs = {}
    for protocol in ("by-book", "original"):
        config = get_preset("smoke", corpus=str(root), protocol=protocol, min_freq=1, epochs=1, subset_tokens=None,
                            batch_size=8)  # fmt: skip
        run_dir = tmp_path_factory.mktemp("runs") / protocol
        train(config, run_dir, progress=False)
        runs[protocol] = run_dir
    return runs


def test_the_gap_study_runs_unchanged_on_a_harry_potter_layout_by_book(hpd_runs):
    study = gap_study(hpd_runs["by-book"], window=500, device="cpu")
    segs = study.segments.set_index(["split", "book"])
    assert list(segs.loc["valid"].index) == ["Book 4"] and list(segs.loc["test"].index) == ["Book 5"]
    assert set(segs.loc["train"].index) == {"Book 1", "Book 2", "Book 3"}
    assert not segs.loc[("valid", "Book 4"), "book trained on"]  # by book: valid and test are new books
    assert study.by_book["composition"].abs().sum() == pytest.approx(0.0)
    assert segs.loc[("test", "Book 5"), "<unk> share"] > 0.1  # its own names never occurred in training books
    for split in ("valid", "test"):
        assert study.losses[split] == pytest.approx(study.recorded[split], rel=TOLERANCE)
    text = gap_analysis(study)
    assert "Neither valid nor test holds text of a book the model trained on" in text
    assert "Rarer words." in text and "Overfitting to the training text." in text
    assert plot_windows(study).axes[0].get_yscale() == "log"


def test_under_the_contiguous_protocol_valid_holds_the_end_of_a_trained_book(hpd_runs):
    study = gap_study(hpd_runs["original"], window=500, device="cpu")
    segs = segment_table(study)
    assert segs.loc[("valid", "Book 4"), "book trained on"]  # 70 % of 5 equal books ends inside book 4
    assert not segs.loc[("test", "Book 5"), "book trained on"]
    gap = study.losses["test"] - study.losses["valid"]
    assert study.by_book[["composition", "within"]].sum().sum() == pytest.approx(gap, abs=1e-9)
    assert "**Book 4** is cut between train and valid" in gap_analysis(study)


def test_a_pre_split_corpus_without_books_is_cut_by_split(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "tiny_ptb"
    folder.mkdir()
    for split, size in (("train", 6000), ("valid", 1500), ("test", 1500)):
        lines = [" ".join(rng.choice([f"w{i}" for i in range(40)], size=20)) for _ in range(size // 20)]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    config = get_preset("smoke", corpus=str(folder), epochs=1, subset_tokens=None, batch_size=8)
    train(config, tmp_path / "run", progress=False)
    study = gap_study(tmp_path / "run", window=400, device="cpu")
    assert list(study.segments["book"]) == ["train", "valid", "test"]  # each split is its own "book"
    assert study.by_book["composition"].abs().sum() == pytest.approx(0.0)
    for split in ("valid", "test"):
        assert combined_loss(study.windows.query("split == @split")) == pytest.approx(
            study.recorded[split], rel=TOLERANCE
        )
    assert "Neither valid nor test holds text of a book the model trained on" in gap_analysis(study)
