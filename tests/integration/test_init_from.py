"""`train --init-from`: a new run starts from a trained model's weights (continue or fine-tune it).

The smoke run (tests/lm_fixtures.py) is the model; each test trains from it, or is refused.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lmlib.cli import main
from lmlib.errors import LMError
from lmlib.generate import Generator
from lmlib.presets import get_preset
from lmlib.pretrained.card import training_command
from lmlib.pretrained.export import export_run
from lmlib.training.loop import train
from lmlib.training.runs import RunPaths, read_config
from lmlib.training.session import open_session

SMOKE = dict(epochs=1, subset_tokens=5_000)


def weights(run) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in Generator.from_run(run, "cpu").model.state_dict().items()}


def starting_weights(config, run_dir, init_from) -> dict[str, torch.Tensor]:
    """The weights a new run starts training from (before any step)."""
    session = open_session(config, RunPaths(run_dir), None, init_from=init_from)
    return {k: v.clone() for k, v in session.model.state_dict().items()}


def test_a_new_run_starts_from_the_models_weights(tiny_run, tmp_path):
    before = weights(tiny_run)
    after = starting_weights(get_preset("smoke", **SMOKE), tmp_path / "continued", str(tiny_run))
    assert all(torch.equal(before[name], after[name]) for name in before)
    _, recorded = read_config(tmp_path / "continued")
    assert recorded["init_from"]["model"] == str(tiny_run)
    assert recorded["init_from"]["epochs_run"] == 1


def test_it_continues_learning_from_there(tiny_run, tmp_path):
    """A continued run beats a fresh one with the same epochs: it starts where the model ended."""
    config = get_preset("smoke", **SMOKE)
    fresh = train(config, tmp_path / "fresh", progress=False)
    continued = train(config, tmp_path / "continued", progress=False, init_from=str(tiny_run))
    assert continued["valid_ppl"] < fresh["valid_ppl"]


def test_an_exported_half_precision_folder_starts_a_run(tiny_run, tmp_path):
    folder = tmp_path / "model-fp16"
    export_run(tiny_run, folder, "fp16")
    before = weights(tiny_run)
    after = starting_weights(get_preset("smoke", **SMOKE), tmp_path / "continued", str(folder))
    # fp16 storage rounds each weight to 11 significant bits; the new run holds them in fp32
    assert all(torch.allclose(before[n], after[n], rtol=1e-3, atol=1e-4) for n in before)


def test_the_card_names_the_starting_model(tiny_run, tmp_path):
    train(get_preset("smoke", **SMOKE), tmp_path / "continued", progress=False, init_from=str(tiny_run))
    config, run = read_config(tmp_path / "continued")
    assert f"--init-from {tiny_run}" in training_command(config, run)


def test_another_vocabulary_is_refused_in_one_line(tiny_run, tmp_path):
    config = get_preset("smoke", epochs=1, subset_tokens=5_000, min_freq=1)  # more words than the model has
    with pytest.raises(LMError, match="vocabulary") as err:
        train(config, tmp_path / "other", progress=False, init_from=str(tiny_run))
    assert "\n" not in str(err.value)


def test_another_shape_is_refused_in_one_line(tiny_run, tmp_path):
    config = get_preset("smoke", **SMOKE, hid_dim=24)
    with pytest.raises(LMError, match="another network .hid_dim 32 there, 24 here.") as err:
        train(config, tmp_path / "other", progress=False, init_from=str(tiny_run))
    assert "\n" not in str(err.value)


def test_the_cli_flag(tiny_run, tmp_path, capsys):
    run_dir = tmp_path / "continued"
    code = main(
        ["train", "--preset", "smoke", "--set", "epochs=1", "--set", "subset_tokens=5000", "--run-dir", str(run_dir),
         "--init-from", str(tiny_run), "--json", "--samples", "0"]
    )  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["stopped"] == "completed"
    assert "--init-from" in (run_dir / "README.md").read_text(encoding="utf-8")


def test_the_cli_finds_a_shipped_model_by_name_and_checks_its_shapes(tmp_path, capsys):
    """`--init-from austen` is the shipped model (as `--model austen`); the smoke preset's smaller untied network
    does not fit its weights, so it is refused before any training, in one line naming it."""
    code = main(
        ["train", "--preset", "smoke", "--set", "epochs=1", "--set", "subset_tokens=5000",
         "--run-dir", str(tmp_path / "run"), "--init-from", "austen"]
    )  # fmt: skip
    err = capsys.readouterr().err
    shipped = get_preset("austen").model  # test_shipped holds the shipped config to the preset
    assert code != 0 and f"--init-from austen is another network (emb_dim {shipped.emb_dim} there, 32 here," in err
    assert "tie_weights true there, false here" in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written: no folder left behind


def test_dry_run_checks_the_starting_model_as_train_would(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--preset", "smoke", "--set", "subset_tokens=5000", "--dry-run", "--init-from"]
    assert main([*args, str(tiny_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["init_from"]["model"] == str(tiny_run)
    assert main([*args, str(tiny_run), "--set", "hid_dim=24"]) != 0
    assert "another network (hid_dim 32 there, 24 here)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_restart_from_the_runs_own_folder_is_refused_before_anything_is_deleted(tiny_run, tmp_path):
    run_dir = tmp_path / "own"
    shutil.copytree(tiny_run, run_dir)
    before = sorted(p.name for p in run_dir.iterdir())
    with pytest.raises(LMError, match="this run's own folder"):
        train(get_preset("smoke", **SMOKE), run_dir, progress=False, restart=True, init_from=str(run_dir))
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_a_run_resumes_without_its_source_and_refuses_another(tiny_run, tmp_path, capsys):
    """An interrupted continued run resumes from its own checkpoint (the source may be gone); naming another
    source, or one for a run started without, is refused; a finished run is refused the same way."""
    source = tmp_path / "source"
    shutil.copytree(tiny_run, source)
    run_dir = tmp_path / "continued"
    config = get_preset("smoke", **SMOKE)
    open_session(config, RunPaths(run_dir), None, init_from=str(source))  # a checkpoint, as if killed at once
    shutil.rmtree(source)
    args = ["train", "--preset", "smoke", "--set", "epochs=1", "--set", "subset_tokens=5000",
            "--run-dir", str(run_dir), "--json", "--samples", "0"]  # fmt: skip
    assert main([*args, "--init-from", str(tiny_run)]) != 0
    assert f"started from {source}, not from {tiny_run}" in capsys.readouterr().err
    assert main([*args, "--init-from", str(source)]) == 0  # resumed: the source is not needed
    assert json.loads(capsys.readouterr().out)["stopped"] == "completed"
    assert main([*args, "--init-from", str(tiny_run)]) != 0  # finished: still another source
    assert "not from" in capsys.readouterr().err
