"""The report pipeline: profiles, the failure path (with stand-in notebooks), and the real smoke run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import ROOT

from lmlib.errors import LMError
from lmlib.report.pipeline import load_profile, plan, run_pipeline

PROFILES = ("smoke", "default", "gpu")


def write_notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {path.stem}\n## Section A", id="title"),
        nbformat.v4.new_code_cell("runs_root = ''", id="params", metadata={"tags": ["parameters"]}),
    ]
    nb.cells += [nbformat.v4.new_code_cell(s, id=f"c{i}") for i, s in enumerate(sources)]
    nbformat.write(nb, path)


def write_profile(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({"title": "Tiny", "runs": [{"name": "a", "preset": "smoke"}]}))
    return path


@pytest.fixture
def fake_notebooks(tmp_path) -> Path:
    """Stand-ins for 01-03 that run in a second and write no runs."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("01_data_prep", "02_train_lstm", "03_compare_runs"):
        write_notebook(folder / f"{name}.ipynb", "print('ok')")
    return folder


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_loads_and_names_valid_runs(name):
    profile = load_profile(name)
    assert profile.runs and len({r.name for r in profile.runs}) == len(profile.runs)
    if name == "default":
        assert len(profile.runs) >= 3 and len(profile.seeds) >= 2 and profile.corpus == "austen"


def test_a_bad_profile_is_a_clear_error(tmp_path):
    with pytest.raises(LMError, match="no profile .nope.*choose one of converged, default, gpu, smoke"):
        load_profile("nope")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"runs": [{"name": "x", "preset": "smoke", "overrides": {"hid_dimm": 3}}]}))
    with pytest.raises(LMError, match="run 'x': unknown config field.*hid_dimm"):
        load_profile(path)
    path.write_text(yaml.safe_dump({"runs": [{"name": "x", "preset": "smoke"}, {"name": "x", "preset": "cpu"}]}))
    with pytest.raises(LMError, match="unique"):
        load_profile(path)


def test_plan_runs_02_once_per_arm_and_seed_and_04_only_when_present(tmp_path, fake_notebooks):
    profile = load_profile("smoke")
    steps = plan(profile, tmp_path / "runs", tmp_path / "prep", fake_notebooks)
    names = [s.notebook for s in steps]
    runs = sum(len(r.seeds or profile.seeds) for r in profile.runs)  # the Transformer arm has one seed
    assert names == ["01_data_prep.ipynb"] + ["02_train_lstm.ipynb"] * runs + ["03_compare_runs.ipynb"]
    assert [s.parameters["run_name"] for s in steps[1:-1]] == ["smoke-s1", "smoke-s2", "smoke-tied-s1", "smoke-tied-s2",
                                                                "smoke-transformer-s1"]  # fmt: skip
    assert [s.parameters["overrides"]["seed"] for s in steps[1:-1]] == [1, 2, 1, 2, 1]
    assert steps[5].parameters["overrides"] == {"arch": "transformer", "context": 20, "seed": 1}
    assert steps[3].parameters["overrides"] == {"tie_weights": True, "seed": 1}
    assert all(s.parallel for s in steps[1:-1]) and not steps[0].parallel and not steps[-1].parallel
    assert steps[-1].parameters["arms"] == {
        "smoke": ["smoke-s1", "smoke-s2"],
        "smoke-tied": ["smoke-tied-s1", "smoke-tied-s2"],
        "smoke-transformer": ["smoke-transformer-s1"],
    }
    write_notebook(fake_notebooks / "04_generation_panel.ipynb", "print(runs_root)")
    last = plan(profile, tmp_path / "runs", tmp_path / "prep", fake_notebooks)[-1]
    assert last.notebook == "04_generation_panel.ipynb" and last.parameters == {"runs_root": str(tmp_path / "runs")}


def test_a_profile_set_beside_another_build_hands_notebook_03_its_summary_when_it_exists(tmp_path, fake_notebooks):
    converged = load_profile("converged")
    assert converged.compare_with == "default" and load_profile("converged", corpus="hpd").compare_with == "default-hpd"
    compare = plan(converged, tmp_path / "runs", tmp_path / "prep", fake_notebooks, tmp_path / "reports")[-1]
    assert compare.notebook == "03_compare_runs.ipynb" and compare.parameters["compare_summary"] == ""  # not built
    (tmp_path / "reports" / "default").mkdir(parents=True)
    (tmp_path / "reports" / "default" / "summary.json").write_text("{}")
    compare = plan(converged, tmp_path / "runs", tmp_path / "prep", fake_notebooks, tmp_path / "reports")[-1]
    assert compare.parameters["compare_summary"] == str((tmp_path / "reports" / "default" / "summary.json").resolve())
    assert plan(load_profile("default"), tmp_path, tmp_path, fake_notebooks)[-1].parameters["compare_summary"] == ""


def test_folders_inside_the_project_reach_the_notebooks_relative_so_the_report_shows_no_machine_path(fake_notebooks):
    runs = ROOT / "runs" / "report-x"
    steps = plan(load_profile("smoke"), runs, runs / "_prepared", fake_notebooks)
    assert steps[0].parameters["prepared_dir"] == "runs/report-x/_prepared"
    assert {s.parameters["runs_root"] for s in steps[1:]} == {"runs/report-x"}
    assert str(ROOT) not in json.dumps([s.parameters for s in steps])


def test_plan_runs_05_after_04_with_the_profiles_sweep(tmp_path, fake_notebooks):
    profile = load_profile("smoke")
    write_notebook(fake_notebooks / "05_sweep.ipynb", "print(runs_root)")
    last = plan(profile, tmp_path / "runs", tmp_path / "prep", fake_notebooks)[-1]
    assert last.notebook == "05_sweep.ipynb" and last.title == "5 · Hyperparameter sweep"
    assert last.parameters == {
        "study": "smoke", "space_file": "params/sweeps/smoke.yaml", "trials": 3,
        "storage": f"sqlite:///{tmp_path / 'runs' / 'sweeps.db'}", "runs_root": str(tmp_path / "runs" / "sweeps"),
    }  # fmt: skip
    no_sweep = load_profile("default")
    assert no_sweep.sweep is None
    assert "05_sweep.ipynb" not in [s.notebook for s in plan(no_sweep, tmp_path, tmp_path, fake_notebooks)]


def test_a_bad_sweep_block_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.yaml"
    runs = [{"name": "x", "preset": "smoke"}]
    path.write_text(yaml.safe_dump({"runs": runs, "sweep": {"space": "nope", "trials": 2}}))
    with pytest.raises(LMError, match="sweep.space 'nope' is not a file"):
        load_profile(path)
    path.write_text(yaml.safe_dump({"runs": runs, "sweep": {"space": "smoke", "trials": 0}}))
    with pytest.raises(LMError, match="sweep.trials .* whole number >= 1"):
        load_profile(path, ROOT / "params")


def test_a_failing_notebook_names_notebook_and_cell_and_keeps_the_old_report(tmp_path, fake_notebooks):
    reports = tmp_path / "reports"
    kwargs = dict(
        reports_dir=reports,
        runs_root=tmp_path / "runs",
        notebooks_dir=fake_notebooks,
        params_dir=tmp_path / "params",
        log=lambda *a: None,
    )
    profile = write_profile(tmp_path / "params")
    good = run_pipeline(str(profile), **kwargs)
    assert good == reports / "tiny" / "report.html"
    before = good.read_text()
    assert "No run finished." in before and 'id="s3"' in before

    write_notebook(fake_notebooks / "03_compare_runs.ipynb", "x = 1", "# explain\ny = 1 / 0")
    with pytest.raises(LMError) as err:
        run_pipeline(str(profile), **kwargs)
    message = str(err.value)
    assert "notebook 03_compare_runs.ipynb (comparison) failed in cell 4" in message
    assert "section “Section A”" in message and "y = 1 / 0" in message and "ZeroDivisionError" in message
    assert good.read_text() == before  # the good report is untouched
    assert (reports / "tiny.tmp" / "notebooks" / "03_compare_runs.ipynb").is_file()  # the failed build, to inspect


@pytest.fixture(scope="module")
def smoke_report(smoke_build) -> Path:
    """The real pipeline, smoke profile: `python -m lmlib report --profile smoke` run by the installed wheel
    from an empty folder (tests/wheel_fixtures.py; built once per session, test_install.py checks the folder)."""
    return smoke_build / "reports" / "smoke" / "report.html"


def runs_of(report: Path) -> Path:
    """Where the report's runs are: runs/report-<profile>/ beside reports/ (lmlib.report.pipeline)."""
    return report.parents[2] / "runs" / "report-smoke"


def test_smoke_pipeline_writes_one_report_with_every_section(smoke_report):
    html = smoke_report.read_text(encoding="utf-8")
    folder = smoke_report.parent
    profile = load_profile("smoke")
    assert "1 · Data preparation" in html and "3 · Comparison of the runs" in html
    for rep in profile.replicates():
        assert f"Training run “{rep.name}”" in html
        assert (folder / "notebooks" / f"02_train_lstm-{rep.name}.ipynb").is_file()
    if (ROOT / "notebooks" / "04_generation_panel.ipynb").is_file():
        assert "4 · Generation panel" in html
    assert "5 · Hyperparameter sweep" in html and (folder / "notebooks" / "05_sweep.ipynb").is_file()
    assert 'class="toc"' in html and "Best run: <strong>" in html
    assert html.count("<h1>Training runs</h1>") == 1  # every run's notebook 02 folded under one heading
    assert html.count('<details class="nb-section"') == len(profile.replicates())
    assert "PosixPath" not in html and str(ROOT) not in html
    assert re.search(r'<img alt="perplexity curves of every run" src="data:image/png;base64,', html)
    assert html.count("data:image/png;base64,") >= 1 + len(profile.replicates())  # title + each run's curves
    assert (folder / "summary.json").is_file()


def test_smoke_report_has_static_widgets_and_no_remote_script(smoke_report):
    html = smoke_report.read_text(encoding="utf-8")
    assert html.count('<script type="application/vnd.jupyter.widget-state+json">') == 1
    state = json.loads(re.search(r'widget-state\+json">(.*?)</script>', html, re.S).group(1).replace("<\\/", "</"))
    views = [json.loads(v) for v in re.findall(r'widget-view\+json">(.*?)</script>', html, re.S)]
    assert views, "no widget is shown (progress bars, the panel)"
    assert all(v["model_id"] in state["state"] for v in views)  # every view can be drawn statically
    sources = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", html)
    assert sources == ["assets/embed.js"]
    assert (smoke_report.parent / "assets" / "embed.js").stat().st_size > 1_000_000
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", html)


def test_smoke_report_renders_offline_in_chromium(smoke_report):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    pytest.importorskip("playwright")
    from lmlib.report.browser import check_in_browser

    seen = check_in_browser(smoke_report)
    assert seen["remote_requests"] == [] and seen["errors"] == []
    assert seen["widgets"] >= 1 and seen["images"] >= 2 and seen["tables"] >= 3 and seen["height"] > 1000


def test_closed_widgets_are_dropped_and_heading_ids_are_prefixed_per_section():
    from lmlib.report.html import render_section

    nb = nbformat.v4.new_notebook()
    view = {
        "application/vnd.jupyter.widget-view+json": {"model_id": "gone", "version_major": 2, "version_minor": 0},
        "text/plain": "epoch 1:   0%",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n## Part", id="a"),
        nbformat.v4.new_code_cell("bar", id="b", outputs=[nbformat.v4.new_output("display_data", data=view)]),
    ]
    section = render_section(nb, "s7", "New title")
    assert "epoch 1:" not in section.body and "widget-view" not in section.body
    assert 'id="s7-Part"' in section.body and section.headings == [(2, "s7-Part", "Part")]
    assert section.title == "New title" and "New title" in section.body


def test_every_notebook_records_its_results_and_they_agree_with_the_runs(smoke_report):
    """The notebooks' last cells are a contract (recommenders' store_metadata/read_notebook)."""
    from lmlib.report.notebook import recorded_results
    from lmlib.training.runs import read_results

    executed, runs_root = smoke_report.parent / "notebooks", runs_of(smoke_report)
    data = recorded_results(executed / "01_data_prep.ipynb")
    assert (data["train_tokens"], data["vocab_size"], data["protocol"]) == (577_514, 7_784, "original")
    profile = load_profile("smoke")
    names = [rep.name for rep in profile.replicates()]
    for name in names:
        trained = recorded_results(executed / f"02_train_lstm-{name}.ipynb")
        saved = read_results(runs_root / name)
        assert trained["run"] == name and trained["test_ppl"] == pytest.approx(saved["test_ppl"], rel=1e-9)
        assert 1 <= trained["best_epoch"] <= 2 and trained["epochs_run"] == 2
        assert 50 < trained["valid_ppl"] < 7_784  # learnt something: better than a uniform guess over the words
    compared = recorded_results(executed / "03_compare_runs.ipynb")
    arm_valid = {arm: sum(read_results(runs_root / n)["valid_ppl"] for n in runs) / len(runs)
                 for arm, runs in profile.arms().items()}  # fmt: skip
    best_arm = min(arm_valid, key=arm_valid.get)
    best = min(profile.arms()[best_arm], key=lambda n: read_results(runs_root / n)["valid_ppl"])
    assert compared["runs"] == len(names) and compared["arms"] == 3
    assert compared["best_arm"] == best_arm and compared["best_run"] == best
    assert compared["best_test_ppl"] == pytest.approx(read_results(runs_root / best)["test_ppl"], abs=0.01)
    panel = recorded_results(executed / "04_generation_panel.ipynb")
    assert panel["run"] == min(names, key=lambda n: read_results(runs_root / n)["valid_ppl"])  # the best seed of all
    assert panel["sample"].startswith("It is a truth universally acknowledged")
    assert 0 < sum(panel["next_words"].values()) <= 1 and panel["mean_surprisal_bits"] > 0
    sweep = recorded_results(executed / "05_sweep.ipynb")
    assert sweep["trials"] == sweep["finished"] == 3  # the smoke profile's study, exactly its trials
    trial_runs = sorted((runs_root / "sweeps" / "smoke").glob("trial-*/results.json"))
    assert len(trial_runs) == 3
    best = min((json.loads(p.read_text()) for p in trial_runs if "pruned" not in p.read_text()),
               key=lambda r: r["valid_ppl"])  # fmt: skip
    assert sweep["best_valid_ppl"] == pytest.approx(best["valid_ppl"], abs=1e-3)


def test_seeds_train_separate_runs_and_the_table_gives_their_mean_and_range(smoke_report):
    from lmlib.report.notebook import recorded_results
    from lmlib.training.runs import read_config, read_results

    runs_root = runs_of(smoke_report)
    profile = load_profile("smoke")
    for rep in profile.replicates():
        config, _ = read_config(runs_root / rep.name)
        assert config.train.seed == rep.seed and config.model.tie_weights == (rep.arm.name == "smoke-tied")
        assert config.model.arch == ("transformer" if rep.arm.name == "smoke-transformer" else "lstm")
    compared = recorded_results(smoke_report.parent / "notebooks" / "03_compare_runs.ipynb")
    for row in compared["arm_summary"]:
        tests = [read_results(runs_root / name)["test_ppl"] for name in profile.arms()[row["arm"]]]
        assert len(tests) == (1 if row["arm"] == "smoke-transformer" else 2)  # its own `seeds: [1]`
        assert len(set(tests)) == len(tests)  # two seeds, two different runs
        assert row["seeds"] == len(tests) and row["test_mean"] == pytest.approx(sum(tests) / len(tests), abs=1e-3)
        assert (row["test_min"], row["test_max"]) == pytest.approx((min(tests), max(tests)), abs=1e-3)
    html = smoke_report.read_text(encoding="utf-8")
    assert "range over seeds (max − min)" in html and ("within noise" in html or "an effect" in html)
    summary = json.loads((smoke_report.parent / "summary.json").read_text())
    assert summary["seeds"] == {"smoke": [1, 2], "smoke-tied": [1, 2], "smoke-transformer": [1]}
    assert len(summary["runs"]) == 5
    assert summary["command"] == "python -m lmlib report --profile smoke"  # as it was typed
    assert "numpy" in summary["versions"] and "torch" in summary["versions"]


def test_the_gap_section_adds_up_to_the_recorded_perplexities(smoke_report):
    from lmlib.report.notebook import recorded_results
    from lmlib.training.runs import read_results

    compared = recorded_results(smoke_report.parent / "notebooks" / "03_compare_runs.ipynb")
    gap, runs_root = compared["gap"], runs_of(smoke_report)
    assert gap["run"] == compared["best_run"]
    saved = read_results(runs_root / gap["run"])
    for split in ("valid", "test"):
        assert gap["window_losses"][split] == pytest.approx(saved[f"{split}_loss"], rel=1e-6)
        assert gap["losses"][split] == pytest.approx(saved[f"{split}_loss"], rel=1e-6)
    assert sum(gap["by_book"].values()) == pytest.approx(gap["gap"], abs=1e-9)
    assert sum(gap["by_word"].values()) == pytest.approx(gap["gap"], abs=1e-9)
    html = smoke_report.read_text(encoding="utf-8")
    assert "Why is test perplexity above validation?" in html and "Overfitting to the training text" in html


def test_the_test_time_section_records_what_the_library_computes(smoke_report):
    from lmlib.evaluation.records import read_record
    from lmlib.report.notebook import recorded_results
    from lmlib.report.testtime import method_summary
    from lmlib.training.runs import read_results

    compared = recorded_results(smoke_report.parent / "notebooks" / "03_compare_runs.ipynb")
    runs_root = runs_of(smoke_report)
    assert list(compared["test_time"]) == [compared["best_run"]]  # the best seed of the best arm
    for run, methods in compared["test_time"].items():
        record = read_record(runs_root / run)
        assert {e["grid_name"] for e in record["methods"].values()} == {"small"}  # pipeline.TEST_TIME_GRIDS
        assert methods == method_summary({run: record["methods"]})[run]
        assert set(methods) == {"static", "cache", "dynamic", "both"}
        assert methods["static"]["test_ppl"] == pytest.approx(read_results(runs_root / run)["test_ppl"], rel=1e-5)
    html = smoke_report.read_text(encoding="utf-8")
    assert "Test-time methods: cache and dynamic evaluation" in html


def test_a_report_on_another_corpus_goes_to_its_own_folders_and_names_the_corpus(tmp_path, fake_notebooks, monkeypatch):
    from conftest import write_hpd

    corpus = write_hpd(tmp_path / "my_hpd", {b: {1: "a b c d e f g h. " * 50} for b in (1, 2, 3)})
    monkeypatch.chdir(tmp_path)  # runs/ and reports/ are relative to where the command runs
    report = run_pipeline(str(write_profile(tmp_path / "params")), corpus=str(corpus), protocol="by-book",
                          notebooks_dir=fake_notebooks, log=lambda *a: None)  # fmt: skip
    assert report == (tmp_path / "reports" / "tiny-my_hpd-by-book" / "report.html").resolve()
    assert (tmp_path / "runs" / "report-tiny-my_hpd-by-book").is_dir()
    html = report.read_text(encoding="utf-8")
    assert "Tiny, on the corpus “my_hpd”" in html and f"--corpus {corpus} --protocol by-book" in html
    assert (report.parent / ".gitignore").read_text().endswith("*\n")  # it quotes the user's corpus: not for git
    assert not (tmp_path / "reports" / "tiny").exists()
