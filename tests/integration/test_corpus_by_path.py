"""A run on a corpus given by path records what reloads that corpus (issue 20, "a report on your own corpus").

Report runs recorded the corpus's base name (`xss` for xss.txt), which loads nothing: notebook 03
§5 and `evaluate` failed ("unknown corpus name 'xss'"), and every rebuild found "config changed
(corpus)", deleted the runs and trained them again. These tests follow what notebooks 01 and 02
do (prepare the corpus, train with the prepared data's config), then ask what the pipeline asks
before a rebuild (retire_stale_runs) and what `evaluate` and notebook 03 §5 do, for a .txt file,
a folder of .txt files and a pre-split folder (train.txt, valid.txt, test.txt, as PTB), each
given by a relative path, then read from another folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_reliability import assert_one_line_error

from lmlib.data.corpus import load_corpus
from lmlib.data.prepared import save_prepared
from lmlib.data.splits import prepare
from lmlib.presets import config_for_run
from lmlib.report.profiles import load_profile
from lmlib.training.evaluate import evaluate_run
from lmlib.training.loop import train
from lmlib.training.runs import read_config

TINY = {"epochs": 1, "emb_dim": 8, "hid_dim": 8, "batch_size": 4, "bptt": 8, "subset_tokens": None}
LINES = [" ".join(f"w{(i * 7 + j) % 23}" for j in range(12)) for i in range(40)]


def write_corpus(root: Path, kind: str) -> str:
    """A tiny corpus of `kind`; returns the relative path a user would type from `root`."""
    text = "\n".join(LINES) + "\n"
    if kind == "file":
        (root / "xss.txt").write_text(text * 4)
        return "xss.txt"
    folder = root / ("books" if kind == "folder" else "tiny_ptb")
    folder.mkdir()
    if kind == "folder":
        for i in range(3):
            (folder / f"{i + 1} book.txt").write_text(text * 2)
    else:
        for split, n in (("train", 6), ("valid", 1), ("test", 1)):
            (folder / f"{split}.txt").write_text(text * n)
    return folder.name


def write_profile(root: Path) -> Path:
    path = root / "mine.yaml"
    path.write_text(json.dumps({"title": "Mine", "runs": [{"name": "a", "preset": "smoke", "overrides": TINY}]}))
    return path


def train_as_the_notebooks_do(profile, runs_root: Path) -> Path:
    """Notebook 01 (prepare, save) and 02 (train with the prepared data's corpus, protocol, min_freq)."""
    prepared = prepare(load_corpus(profile.corpus), profile.protocol, profile.min_freq)
    save_prepared(prepared, runs_root / "_prepared")
    rep = profile.replicates()[0]
    overrides = {**profile.overrides, **rep.arm.overrides}
    config = config_for_run(preset=rep.arm.preset, overrides=overrides, data=prepared.data_config())
    train(config, runs_root / rep.name, prepared=prepared, progress=False)
    return runs_root / rep.name


@pytest.mark.parametrize("kind", ["file", "folder", "presplit"])
def test_a_run_on_a_corpus_given_by_path_is_reused_and_evaluated_from_anywhere(tmp_path, monkeypatch, kind):
    from lmlib.evaluation.records import evaluate_run_methods
    from lmlib.report.pipeline import retire_stale_runs

    monkeypatch.chdir(tmp_path)
    given = write_corpus(tmp_path, kind)
    profile = load_profile(str(write_profile(tmp_path)), corpus=given)
    runs_root = tmp_path / "runs"
    run = train_as_the_notebooks_do(profile, runs_root)
    recorded, info = read_config(run)
    assert recorded.data.corpus == str(tmp_path / given) == info["corpus"]  # absolute: it reloads from anywhere
    assert recorded.data.protocol == ("given" if kind == "presplit" else "original")

    log = []
    retire_stale_runs(profile, runs_root, fresh=False, log=log.append)  # what a rebuild decides first
    assert log == [] and (run / "results.json").is_file()  # same config: reused, not trained again

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # evaluate and notebook 03 run from other folders
    static = evaluate_run(run, device="cpu")
    assert static["test_ppl"] == pytest.approx(json.loads((run / "results.json").read_text())["test_ppl"], rel=1e-5)
    methods = evaluate_run_methods(run, ["static"], device="cpu", record=False)["methods"]  # notebook 03 §5
    assert methods["static"]["test_ppl"] == pytest.approx(static["test_ppl"], rel=1e-6)


def test_an_old_run_that_recorded_a_base_name_still_works(tmp_path, monkeypatch):
    """Runs written before the fix recorded `xss`: the rebuild keeps them and records the path; evaluate reads them."""
    from lmlib.report.pipeline import retire_stale_runs

    monkeypatch.chdir(tmp_path)
    profile = load_profile(str(write_profile(tmp_path)), corpus=write_corpus(tmp_path, "file"))
    runs_root = tmp_path / "runs"
    run = train_as_the_notebooks_do(profile, runs_root)
    config_file = run / "config.json"
    raw = json.loads(config_file.read_text())
    raw["config"]["data"]["corpus"] = raw["run"]["corpus"] = "xss"  # what lmlib 0.2.0 wrote
    config_file.write_text(json.dumps(raw))
    meta = json.loads((runs_root / "_prepared" / "meta.json").read_text())
    (runs_root / "_prepared" / "meta.json").write_text(json.dumps({**meta, "corpus": "xss"}))
    metrics = (run / "metrics.csv").read_text()

    cli = [sys.executable, "-m", "lmlib", "evaluate", "--run-dir", str(run), "--json"]
    proc = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr  # read from the report's prepared data beside the run
    recorded = json.loads((run / "results.json").read_text())
    assert json.loads(proc.stdout)["test_ppl"] == pytest.approx(recorded["test_ppl"])

    log = []
    retire_stale_runs(profile, runs_root, fresh=False, log=log.append)
    assert log == [f"run 'a': recorded its corpus by name only; it now records {tmp_path / 'xss.txt'}"]
    assert read_config(run)[0].data.corpus == str(tmp_path / "xss.txt") and (run / "metrics.csv").read_text() == metrics

    raw["config"]["data"]["corpus"] = "xss"  # an old run with no prepared data beside it: a clear way out
    config_file.write_text(json.dumps(raw))
    (runs_root / "_prepared" / "meta.json").unlink()
    proc = subprocess.run(cli[:-1], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert_one_line_error(proc, "records its corpus as 'xss', a file's or folder's name without its path")
