"""The model shipped inside lmlib (`--model austen`): present, small, good, and text in the first minute.

These tests need lmlib/pretrained/austen/, written by
    python -m lmlib export --run-dir runs/austen --to lmlib/pretrained/austen --dtype fp16
from a run of the `austen` preset (docs/models.md). Without it they fail, never skip: a
checkout or a wheel without its shipped model is broken.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
import yaml
from conftest import ROOT
from lm_fixtures import free_port, launch, stop, wait_for

from lmlib.generate import Generator
from lmlib.pretrained.locate import DEFAULT_MODEL, shipped_dir

FOLDER = shipped_dir() / DEFAULT_MODEL
FILES = ["README.md", "casing.json", "config.json", "model.safetensors", "results.json", "vocab.json"]
MAX_BYTES = 15_000_000  # issue 22: no more than 15 MB in the wheel
PROMPT = "It is a truth universally acknowledged"


@pytest.fixture(scope="module", autouse=True)
def shipped():
    if not (FOLDER / "config.json").is_file():
        pytest.fail(
            f"the shipped model is missing: {FOLDER} must hold {', '.join(FILES)}; write it with "
            f"python -m lmlib export --run-dir runs/austen --to {FOLDER.relative_to(ROOT)} --dtype fp16"
        )
    return FOLDER


def run_lmlib(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "lmlib", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=1800)  # fmt: skip


def test_the_shipped_folder_is_complete_small_and_half_precision():
    assert sorted(p.name for p in FOLDER.iterdir()) == FILES
    header = json.loads((FOLDER / "config.json").read_text())
    assert header["format"] == "lmlib-model" and header["dtype"] in ("float16", "bfloat16")
    assert header["config"]["data"]["corpus"] == "austen" and header["run"]["protocol"] == "original"
    assert (FOLDER / "model.safetensors").stat().st_size <= MAX_BYTES


TARGET_TEST_PPL = 110.0  # issue 22: the shipped model's static test perplexity


def test_it_meets_its_target_and_was_trained_by_the_preset_alone():
    """Static test perplexity at most 110, from one `train --preset austen` run (its config is the preset's)."""
    from lmlib.presets import get_preset

    results = json.loads((FOLDER / "results.json").read_text())
    header = json.loads((FOLDER / "config.json").read_text())
    assert results["test_ppl"] <= TARGET_TEST_PPL and results["stopped"] in ("completed", "early_stopping")
    assert header["config"] == get_preset("austen").to_dict() and "init_from" not in header["run"]


def test_its_card_gives_its_results():
    """The card's metrics are the run's."""
    results = json.loads((FOLDER / "results.json").read_text())
    card = (FOLDER / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n")[1])
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["test perplexity (static)"] == round(results["test_ppl"], 2)
    assert "test perplexity (continuous cache)" in metrics and "test perplexity (dynamic evaluation)" in metrics
    assert "--model austen" in card and meta["license_name"] == "public-domain"


def test_text_in_the_first_minute_from_an_empty_folder(tmp_path):
    done = run_lmlib("generate", "--model", "austen", "--prompt", PROMPT, "--seed", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout.strip()
    continuation = text.removeprefix(PROMPT)
    assert text.startswith(PROMPT) and len(continuation.split()) >= 20
    assert " ," not in text and " ." not in text and "<unk>" not in text  # readable, not tokens
    assert list(tmp_path.iterdir()) == []  # it wrote nothing


def test_evaluate_model_austen_gives_the_recorded_perplexity_within_half_a_percent(tmp_path):
    """The fp16 weights' perplexity against the fp32 run's (results.json): issue 22 allows at most 0.5%."""
    done = run_lmlib("evaluate", "--model", "austen", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    measured, recorded = json.loads(done.stdout), json.loads((FOLDER / "results.json").read_text())
    assert abs(measured["test_ppl"] / recorded["test_ppl"] - 1) <= 0.005
    assert list(tmp_path.iterdir()) == [] and not (FOLDER / "test_time.json").exists()


def test_from_pretrained_takes_its_name():
    generator = Generator.from_pretrained("austen", "cpu")
    assert generator.name == "austen" and generator.casing and generator.config.data.corpus == "austen"
    assert generator.generate(PROMPT, 10, seed=1).text.startswith(PROMPT)


def test_serve_without_a_model_serves_the_shipped_one(tmp_path):
    port = free_port()
    process = launch([sys.executable, "-m", "lmlib", "serve", "--port", str(port)], cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url + "health", process, seconds=120)
        with urllib.request.urlopen(url + "health", timeout=10) as response:
            health = json.loads(response.read())
        assert (
            health["model"] == "austen"
            and health["vocab_size"] == json.loads((FOLDER / "config.json").read_text())["vocab_size"]
        )
    finally:
        stop(process)


def test_the_panel_opens_on_the_shipped_model_when_no_run_has_finished(tmp_path):
    from lmlib.apps.panel import panel_for_models, runs_or_shipped

    models = runs_or_shipped(tmp_path / "runs")
    assert models == ["austen"]
    panel = panel_for_models(models, background=False)
    assert panel.run.options == ("austen",) and "Next word" in panel.distribution.value
    panel.random_seed.value, panel.length.value = False, 12
    panel.generate_button.click()
    assert panel.text.startswith(panel.prompt.value) and len(panel.tokens) >= 1
