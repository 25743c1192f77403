"""The second probe round's tracebacks, each now one line on stderr and exit 2 (issue 20, "Low").

A doctored checkpoint loop state, a Transformer context that cannot fit, a profile's
`cutoffs: [[1]]`, sweep space files of the wrong shape, NaN weights, a study name reused with
a new storage, and a sweep worker whose every trial fails: each run as `python -m lmlib ...`.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from lm_fixtures import free_port
from test_reliability import assert_one_line_error, lmlib

from lmlib.errors import LMError

SMOKE = ["--preset", "smoke", "--set", "epochs=1", "--set", "subset_tokens=3000", "--samples", "0"]


@pytest.fixture
def run(tiny_run, tmp_path):
    return shutil.copytree(tiny_run, tmp_path / "run")


def edit_safetensors(path, change) -> None:
    """Rewrite a safetensors file with `change(tensors, header)` applied (the header is lmlib's JSON)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as handle:
        header = json.loads((handle.metadata() or {}).get("header", "{}"))
    tensors = load_file(str(path))
    change(tensors, header)
    save_file(tensors, str(path), metadata={"header": json.dumps(header)})


@pytest.mark.parametrize("field, value", [("epoch", "x"), ("column", None), ("valid_history", {"a": 1}),
                                          ("best_epoch", -3), ("stopped", 7)])  # fmt: skip
def test_a_checkpoint_with_a_bad_loop_state_is_a_one_line_error(run, field, value):
    (run / "results.json").unlink()  # so that train resumes from last.safetensors
    edit_safetensors(run / "last.safetensors", lambda tensors, header: header["loop"].update({field: value}))
    proc = lmlib("train", *SMOKE, "--set", "subset_tokens=5000", "--run-dir", run)
    assert_one_line_error(proc, f"holds a loop position lmlib did not write ({field} is {value!r})")


def test_a_transformer_context_that_cannot_fit_is_refused_before_anything_is_allocated(tmp_path):
    from lmlib.config import ModelConfig
    from lmlib.model.transformer import attention_bytes, physical_memory

    config = ModelConfig(arch="transformer", context=65536, emb_dim=32, hid_dim=32, dropout_hidden=0.0,
                         dropout_input=0.0, dropout_output=0.0, tie_weights=True)  # fmt: skip
    if (physical_memory() or 0) >= attention_bytes(config, 1, 1):
        pytest.skip("this machine has the memory for one row's attention over 65,536 positions")
    proc = lmlib("train", *SMOKE, "--set", "arch=transformer", "--set", "context=65536", "--run-dir", "r", cwd=tmp_path)
    assert_one_line_error(proc, "arch=transformer with context 65,536 needs")
    assert not (tmp_path / "r" / "config.json").exists()  # refused before the run was started


def test_attention_that_runs_out_of_memory_is_a_one_line_error(monkeypatch):
    """A context that fits for one row but not for the batch: the allocation failure is named, with what to lower."""
    import torch

    from lmlib.model.build import build_model
    from lmlib.presets import get_preset

    model = build_model(50, get_preset("smoke", arch="transformer", context=16).model)

    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 68761426176 bytes")

    monkeypatch.setattr(model.blocks, "forward", no_memory)
    ids = torch.zeros(2, 8, dtype=torch.long)
    with pytest.raises(LMError, match=r"attention over 24 positions for 2 rows .* smaller context \(now 16\)"):
        model(ids, model.init_hidden(2))


def test_a_profile_with_cutoffs_of_the_wrong_shape_is_a_one_line_error(tmp_path):
    profile = tmp_path / "bad.yaml"
    run = {"name": "a", "preset": "smoke", "overrides": {"adaptive_softmax": True, "cutoffs": [[1]]}}
    profile.write_text(yaml.safe_dump({"title": "bad", "runs": [run]}))
    proc = lmlib("report", "--profile", profile, "--reports-dir", "out", cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "run 'a': a value in its overrides is of the wrong kind")


SPACE = {"base": {"preset": "smoke", "overrides": {"epochs": 1}}, "space": {"lr": {"float": [1e-3, 1e-2]}}}


@pytest.mark.parametrize(
    "case, message",
    [
        ("binary", "is not a YAML text file"),
        ("integer key", "space: 1 is not a config field name"),
        ("400 digits", "is not a finite number"),
        ("nested categorical", "categorical takes plain values"),
        ("integer key in base.overrides", "base.overrides: 3 is not a config field name"),
        ("cutoffs of lists", "base: a value of the wrong kind"),
    ],
)
def test_a_space_file_of_the_wrong_shape_is_a_one_line_error(tmp_path, case, message):
    path = tmp_path / "space.yaml"
    raw = json.loads(json.dumps(SPACE))
    if case == "binary":
        path.write_bytes(b"\x00\xff\xfe\x89PNG\r\n\x1a\n" + bytes(range(256)))
    else:
        if case == "integer key":
            raw["space"] = {1: {"int": [1, 2]}}
        elif case == "400 digits":
            raw["space"] = {"hid_dim": {"int": [16, int("9" * 400)]}}
        elif case == "nested categorical":
            raw["space"] = {"hid_dim": {"categorical": [[16, 32], [48]]}}
        elif case == "integer key in base.overrides":
            raw["base"]["overrides"] = {3: 4}
        else:
            raw["base"]["overrides"] = {"adaptive_softmax": True, "cutoffs": [[1]]}
        path.write_text(yaml.safe_dump(raw))
    proc = lmlib("sweep", "--study", "s", "--space", path, "--trials", "1", "--storage", "sqlite:///s.db",
                 "--runs-root", "runs", cwd=tmp_path, timeout=120)  # fmt: skip
    assert_one_line_error(proc, message)
    assert not (tmp_path / "runs").exists()


def test_nan_weights_are_refused_by_generate_and_serve(run):
    def poison(tensors, header):
        tensors["embedding.weight"][:] = float("nan")

    edit_safetensors(run / "model.safetensors", poison)
    assert_one_line_error(lmlib("generate", "--run-dir", run, "--prompt", "the"), "hold NaN or infinite values")
    # the web app refuses to start, rather than answer 500 to every generation while /health says ok
    assert_one_line_error(lmlib("serve", "--run-dir", run, "--port", free_port()), "hold NaN or infinite values")


def test_a_study_name_reused_with_a_new_storage_is_refused_and_a_failing_worker_exits_non_zero(tmp_path):
    space = tmp_path / "space.yaml"
    raw = {"base": {"preset": "smoke", "overrides": {"epochs": 1, "subset_tokens": 3000}},
           "space": {"lr": {"float": [1e-3, 1e-2]}}, "pruner": "none"}  # fmt: skip
    space.write_text(yaml.safe_dump(raw))
    common = ["sweep", "--study", "s", "--space", space, "--trials", "1", "--runs-root", "runs"]
    first = lmlib(*common, "--storage", "sqlite:///one.db", cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr
    again = lmlib(*common, "--storage", "sqlite:///two.db", cwd=tmp_path, timeout=600)
    assert_one_line_error(again, "runs/s already holds trial-0 of a study named 's', which sqlite:///two.db does not")
    assert (tmp_path / "runs" / "s" / "trial-0" / "results.json").is_file()  # the old trial is untouched

    raw["base"]["overrides"]["corpus"] = str(tmp_path / "missing.txt")  # every trial fails: no such corpus
    space.write_text(yaml.safe_dump(raw))
    failing = lmlib("sweep", "--study", "f", "--space", space, "--trials", "5", "--runs-root", "runs",
                    "--storage", "sqlite:///three.db", cwd=tmp_path, timeout=600)  # fmt: skip
    assert failing.returncode == 2, failing.stdout + failing.stderr
    last = failing.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the sweep worker stopped: 3 trials in a row failed") and "missing.txt" in last
