"""`lmlib export` and `Generator.from_pretrained`: a run becomes a folder anyone can load, from disk or the Hub.

Every model here is the session's smoke run (tests/lm_fixtures.py): export it, load it back,
and compare next-word log-probabilities on the same ids.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT

from lmlib.cli import main
from lmlib.errors import LMError
from lmlib.generate import Generator
from lmlib.pretrained.card import write_model_card
from lmlib.pretrained.export import export_run
from lmlib.training.exported import FORMAT, FORMAT_VERSION
from lmlib.training.runs import read_results

# fp16 keeps 11 significant bits, bf16 8: their rounding moves a log-probability by about this much here.
TOLERANCE = {"fp32": 0.0, "fp16": 2e-2, "bf16": 1.5e-1}


def log_probs(generator: Generator, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return generator.model(ids, generator.model.init_hidden(ids.size(0))).log_probs


@pytest.fixture(scope="module")
def ids(tiny_run) -> torch.Tensor:
    vocab_size = len(Generator.from_run(tiny_run, "cpu").vocab)
    return torch.randint(0, vocab_size, (2, 12), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_export_then_load_keeps_the_log_probabilities(tiny_run, tmp_path, ids, dtype):
    folder = tmp_path / f"model-{dtype}"
    result = export_run(tiny_run, folder, dtype)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "model.safetensors", "vocab.json", "casing.json", "results.json", "README.md"]
    )
    header = json.loads((folder / "config.json").read_text())
    stored = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[dtype]
    assert (header["format"], header["format_version"], header["dtype"]) == (FORMAT, FORMAT_VERSION, stored)
    assert header["lmlib_version"] and header["vocab_size"] == len(
        json.loads((folder / "vocab.json").read_text())["itos"]
    )
    run, loaded = Generator.from_run(tiny_run, "cpu"), Generator.from_pretrained(folder, "cpu", serving="fp32")
    difference = (log_probs(run, ids) - log_probs(loaded, ids)).abs().max().item()
    assert difference <= TOLERANCE[dtype], difference
    assert result["bytes"] == (folder / "model.safetensors").stat().st_size
    assert loaded.casing == run.casing and loaded.name == folder.name


def test_half_exports_are_half_the_size(tiny_run, tmp_path):
    sizes = {d: export_run(tiny_run, tmp_path / d, d)["bytes"] for d in ("fp32", "fp16")}
    assert sizes["fp16"] < 0.55 * sizes["fp32"]


def test_the_card_parses_and_its_metrics_are_the_runs(tiny_run, tmp_path):
    folder = tmp_path / "model"
    export_run(tiny_run, folder, "fp16")
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    results = read_results(tiny_run)
    assert meta["library_name"] == "lmlib" and meta["license"] == "other" and meta["license_name"] == "public-domain"
    assert meta["datasets"] == ["austen"] and meta["metrics"] == ["perplexity"]
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {
        "valid perplexity (static)": round(results["valid_ppl"], 2),
        "test perplexity (static)": round(results["test_ppl"], 2),
    }
    for section in ("## Training command", "## Data and licence", "## Machine and time", "## Intended use",
                    "## Limitations", "## Samples"):  # fmt: skip
        assert section in text
    assert "python -m lmlib train --preset smoke" in text and "seed 1, prompt 'It is a truth" in text
    assert text == (folder / "README.md").read_text(encoding="utf-8")  # written once, whole


def test_the_card_gives_the_test_time_methods_when_measured(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    from lmlib.evaluation.records import RECORD_NAME, weights_digest

    record = {"weights_sha256": weights_digest(run), "methods": {
        "static": {"valid_ppl": 300.0, "test_ppl": 310.0},
        "cache": {"valid_ppl": 250.0, "test_ppl": 260.5},
        "dynamic": {"valid_ppl": 240.0, "test_ppl": 251.25},
    }}  # fmt: skip
    (run / RECORD_NAME).write_text(json.dumps(record))
    card = write_model_card(run).read_text(encoding="utf-8")
    metrics = {
        m["name"]: m["value"] for m in yaml.safe_load(card.split("---\n")[1])["model-index"][0]["results"][0]["metrics"]
    }
    assert metrics["test perplexity (continuous cache)"] == 260.5
    assert metrics["test perplexity (dynamic evaluation)"] == 251.25
    assert "| dynamic evaluation | 240.0 | 251.2 |" in card


def test_a_wrong_format_version_is_refused_in_one_line(tiny_run, tmp_path):
    folder = tmp_path / "model"
    export_run(tiny_run, folder)
    header = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**header, "format_version": 99}))
    with pytest.raises(LMError, match="format version 99.*reads version 1") as err:
        Generator.from_pretrained(folder)
    assert "\n" not in str(err.value)


def test_a_vocabulary_that_does_not_fit_the_weights_is_refused(tiny_run, tmp_path):
    folder = tmp_path / "model"
    export_run(tiny_run, folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    (folder / "vocab.json").write_text(
        json.dumps({**vocab, "itos": vocab["itos"][:-5], "counts": vocab["counts"][:-5]})
    )
    with pytest.raises(LMError, match="declares .* words but its vocab.json holds") as err:
        Generator.from_pretrained(folder)
    assert "\n" not in str(err.value)
    header = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**header, "vocab_size": header["vocab_size"] - 5}))
    with pytest.raises(LMError, match="do not fit this model") as err:
        Generator.from_pretrained(folder)
    assert "\n" not in str(err.value)


def test_weights_in_another_dtype_than_declared_are_refused(tiny_run, tmp_path):
    half, full = tmp_path / "half", tmp_path / "full"
    export_run(tiny_run, half, "fp16")
    export_run(tiny_run, full, "fp32")
    shutil.copyfile(full / "model.safetensors", half / "model.safetensors")
    with pytest.raises(LMError, match="are float32 .* declares float16"):
        Generator.from_pretrained(half)


def test_nothing_is_unpickled(tiny_run, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    export_run(tiny_run, folder, "fp16")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load (pickle) was called"))
    import pickle

    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load was called"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads was called"))
    assert Generator.from_pretrained(folder, "cpu").generate("she", 3, seed=1).tokens


def test_export_replaces_only_an_earlier_export(tiny_run, tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(LMError, match="already holds other files"):
        export_run(tiny_run, other)
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(LMError, match="overlap the run"):
        export_run(tiny_run, tiny_run / "export")
    folder = tmp_path / "model"
    export_run(tiny_run, folder, "fp32")
    export_run(tiny_run, folder, "fp16")  # an earlier export is replaced
    assert json.loads((folder / "config.json").read_text())["dtype"] == "float16"


def test_an_unfinished_run_is_not_exported(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "results.json").unlink()
    with pytest.raises(LMError, match="has not finished"):
        export_run(run, tmp_path / "model")


def test_the_cli_exports_and_generates_and_evaluates_with_model(tiny_run, tmp_path, capsys):
    folder = tmp_path / "model"
    assert main(["export", "--run-dir", str(tiny_run), "--to", str(folder), "--dtype", "fp16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dtype"] == "fp16"
    assert main(["generate", "--model", str(folder), "--prompt", "she said", "--seed", "4", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["text"] == "she said" + shown["continuation"] and shown["tokens"]
    assert main(["evaluate", "--model", str(folder), "--json"]) == 0
    measured, results = json.loads(capsys.readouterr().out), read_results(tiny_run)
    assert measured["test_ppl"] == pytest.approx(results["test_ppl"], rel=5e-3)  # fp16 rounding only
    assert not (folder / "test_time.json").exists()


def test_model_and_run_dir_are_one_or_the_other(tiny_run, capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--model", "austen", "--run-dir", str(tiny_run)])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, message",
    [("no-such-model", "not a folder here, not a shipped model"), ("tests", "holds no model")],
)
def test_a_name_that_is_no_model_is_one_line(name, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(LMError, match=message) as err:
        Generator.from_pretrained(name)
    assert "\n" not in str(err.value)


def test_a_hub_id_without_huggingface_hub_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if it were not installed
    with pytest.raises(LMError, match="pip install huggingface-hub"):
        Generator.from_pretrained("someone/austen-lstm")


def prefilled_hub_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """The Hugging Face cache as snapshot_download leaves it: models--owner--name/{refs/main, snapshots/<commit>/}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)


def test_a_hub_id_loads_from_a_prefilled_cache_offline(tiny_run, tmp_path):
    pytest.importorskip("huggingface_hub", reason="the hub extra is not installed: pip install -e '.[hub]'")
    folder = tmp_path / "model"
    export_run(tiny_run, folder, "fp16")
    prefilled_hub_cache(tmp_path / "hub", "someone/austen-lstm", folder)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "lmlib", "generate", "--prompt", "she said", "--seed", "4", "--json"]
    hub = subprocess.run([*command, "--model", "someone/austen-lstm"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    local = subprocess.run([*command, "--model", str(folder)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert hub.returncode == 0, hub.stderr
    assert json.loads(hub.stdout) == json.loads(local.stdout)
    missing = subprocess.run([*command, "--model", "someone/other"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "Hugging Face Hub" in missing.stderr


def test_the_studys_own_weights_travel_import_then_export(tmp_path):
    """import-original then export: the folder predicts exactly as the study's model (fp32), and close in fp16."""
    from test_import_original import WORDS, imported, reference_log_probs, study_files

    files = study_files(tmp_path / "study", WORDS)
    imported(files, tmp_path / "runs" / "original")
    ids = torch.randint(0, len(WORDS), (3, 9), generator=torch.Generator().manual_seed(5))
    expected = reference_log_probs(files["model"], ids)
    for dtype in ("fp32", "fp16"):
        export_run(tmp_path / "runs" / "original", tmp_path / f"original-{dtype}", dtype)
        loaded = Generator.from_pretrained(tmp_path / f"original-{dtype}", "cpu", serving="fp32")
        difference = (log_probs(loaded, ids) - expected).abs().max().item()
        assert difference <= max(TOLERANCE[dtype], 1e-5), (dtype, difference)
    card = (tmp_path / "original-fp16" / "README.md").read_text(encoding="utf-8")
    assert "imported from the original study" in card and "not measured" in card
    assert yaml.safe_load(card.split("---\n")[1])["license"] == "unknown"  # the study's corpus: the user's books
