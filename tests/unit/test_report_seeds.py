"""Seeds and spread: one run per arm and seed, mean and range per arm, effects judged against the noise."""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest
import yaml
from test_compare import record

from lmlib.errors import LMError
from lmlib.report.analysis import analysis, verdict
from lmlib.report.arms import (
    LearningState,
    arm_summary,
    arm_table,
    group_arms,
    learning_status,
    plot_arms,
    spread,
    status_text,
)
from lmlib.report.pipeline import report_command
from lmlib.report.profiles import load_profile

matplotlib.use("Agg")


def seeded(name, seed, valid, test, **config):
    """A finished run of arm `name` under `seed` (its folder is name-s<seed>)."""
    return record(f"{name}-s{seed}", valid, [v + 50 for v in valid], test, seed=seed, **config)


def write(tmp_path, data) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


# --- profiles -------------------------------------------------------------------------------


def test_seeds_make_one_run_folder_per_arm_and_seed_and_a_run_may_list_its_own(tmp_path):
    path = write(tmp_path, {"seeds": [1, 2], "parallel": 2, "runs": [
        {"name": "a", "preset": "smoke"},
        {"name": "b", "vs": "a", "overrides": {"tie_weights": True}, "seeds": [7, 8, 9]},
    ]})  # fmt: skip
    profile = load_profile(path)
    assert [r.name for r in profile.replicates()] == ["a-s1", "a-s2", "b-s7", "b-s8", "b-s9"]
    assert profile.arms() == {"a": ["a-s1", "a-s2"], "b": ["b-s7", "b-s8", "b-s9"]}
    assert profile.parallel == 2
    rep = profile.replicates()[3]
    config = profile.run_config(rep.arm, seed=rep.seed)
    assert config.train.seed == 8 and config.model.tie_weights


def test_without_seeds_each_arm_trains_once_in_its_own_name(tmp_path):
    profile = load_profile(write(tmp_path, {"runs": [{"name": "a", "preset": "smoke"}]}))
    assert [(r.name, r.seed) for r in profile.replicates()] == [("a", None)]


@pytest.mark.parametrize("seeds", [[], [1, 1], "1,2", [-1], [1.5], [True]])
def test_bad_seeds_are_a_clear_error(tmp_path, seeds):
    with pytest.raises(LMError, match="seeds of the profile must be a list of distinct whole numbers"):
        load_profile(write(tmp_path, {"seeds": seeds, "runs": [{"name": "a", "preset": "smoke"}]}))


def test_a_bad_parallel_is_a_clear_error(tmp_path):
    with pytest.raises(LMError, match="parallel must be a whole number >= 1"):
        load_profile(write(tmp_path, {"parallel": 0, "runs": [{"name": "a", "preset": "smoke"}]}))


def test_a_same_named_folder_from_two_arms_is_refused(tmp_path):
    data = {"runs": [{"name": "a-s1", "preset": "smoke"}, {"name": "a", "preset": "smoke", "seeds": [1],
                                                            "overrides": {"hid_dim": 8}}]}  # fmt: skip
    with pytest.raises(LMError, match=r"two runs would train in the same folder \['a-s1'\]"):
        load_profile(write(tmp_path, data))


def test_the_default_profiles_have_enough_seeds():
    assert all(len(r.seeds or load_profile("default").seeds) >= 2 for r in load_profile("default").runs)
    assert all(len(r.seeds or load_profile("gpu").seeds) >= 3 for r in load_profile("gpu").runs)


def test_another_corpus_gets_its_own_name_folder_and_title(tmp_path):
    default = load_profile("default")
    hpd = load_profile("default", corpus="hpd")
    assert hpd.name == "default-hpd" and hpd.corpus == "hpd" and "the Harry Potter books" in hpd.title
    assert "Austen" in default.title and "Austen" not in hpd.title
    assert [r.name for r in hpd.replicates()] == [r.name for r in default.replicates()]
    assert load_profile("default", corpus="austen").name == "default"  # the profile's own data: the same report
    folder = load_profile("default", corpus=str(tmp_path / "My Books!"), protocol="by-book", min_freq=2)
    assert folder.name == "default-My_Books-by-book-mf2" and "“My Books!”" in folder.title
    assert folder.run_config(folder.runs[0]).data.protocol == "by-book"


def test_the_report_command_is_the_cli_line():
    assert report_command("default", "reports", False, None, None, None) == "python -m lmlib report --profile default"
    line = report_command("default", "/tmp/r x", True, "hpd", "by-book", 2)
    assert line == ("python -m lmlib report --profile default --corpus hpd --protocol by-book --min-freq 2 "
                    "--reports-dir '/tmp/r x' --fresh")  # fmt: skip


def test_the_cli_passes_corpus_protocol_and_min_freq(monkeypatch):
    import lmlib.report.pipeline as pipeline
    from lmlib.cli import main

    seen = {}
    monkeypatch.setattr(pipeline, "run_pipeline", lambda profile, **kw: seen.update(profile=profile, **kw) or "x")
    assert main(["report", "--profile", "smoke", "--corpus", "hpd", "--protocol", "by-book", "--min-freq", "2"]) == 0
    assert (seen["profile"], seen["corpus"], seen["protocol"], seen["min_freq"]) == ("smoke", "hpd", "by-book", 2)
    main(["report"])
    assert (seen["profile"], seen["corpus"], seen["protocol"], seen["min_freq"]) == ("default", None, None, None)


# --- spread, status, table --------------------------------------------------------------------


@pytest.fixture
def arms_runs():
    """Arm a (seeds 1, 2), arm b changes weight_drop (far better), arm c changes tie_weights (within noise)."""
    return [
        seeded("a", 1, [300, 250, 240], 250.0),
        seeded("a", 2, [310, 260, 244], 258.0),
        seeded("b", 1, [290, 220, 200], 200.0, weight_drop=0.5),
        seeded("b", 2, [280, 215, 198], 204.0, weight_drop=0.5),
        seeded("c", 1, [300, 250, 241], 252.0, tie_weights=True),
        seeded("c", 2, [305, 255, 245], 257.0, tie_weights=True),
    ]


def test_spread_is_mean_and_range_of_known_values():
    s = spread([250.0, 258.0, 254.0])
    assert (s.mean, s.low, s.high, s.n, s.range) == (254.0, 250.0, 258.0, 3, 8.0)
    assert s.text() == "254.0 (250.0–258.0)" and spread([7.0]).text() == "7.0"
    assert spread([None, float("nan")]).n == 0


def test_the_table_gives_each_arm_mean_and_range_over_its_seeds(arms_runs):
    arms = group_arms(arms_runs, vs={"b": "a", "c": "a"})
    assert [(a.name, a.seeds) for a in arms] == [("a", [1, 2]), ("b", [1, 2]), ("c", [1, 2])]
    numbers = arm_summary(arms)
    assert numbers.loc["a", ["test_mean", "test_min", "test_max"]].tolist() == [254.0, 250.0, 258.0]
    assert numbers.loc["b", ["valid_mean", "valid_min", "valid_max"]].tolist() == [199.0, 198.0, 200.0]
    table = arm_table(arms)
    assert table.loc["a", "test ppl"] == "254.0 (250.0–258.0)" and table.loc["b", "Δ test vs vs"] == "−52.0"
    assert table.loc["b", "change"] == "weight_drop 0 → 0.5" and table.loc["c", "seeds"] == "1, 2"
    assert "STILL IMPROVING" in table.loc["b", "status"]


def test_runs_of_one_arm_may_differ_only_in_seed(arms_runs):
    with pytest.raises(LMError, match="grouped as arm 'a' but differ in weight_drop 0 → 0.5"):
        group_arms(arms_runs, arms={"a": ["a-s1", "b-s1"]})


def test_a_run_still_improving_is_marked_with_the_slope_of_its_last_epochs():
    improving = record("r", [300, 250, 220, 200], [350, 300, 270, 250], 210.0)
    status = learning_status(improving)
    assert status.state is LearningState.IMPROVING and status.improving and not status.finished
    assert status.slope_per_epoch == pytest.approx(-20.0)  # its last epoch: 220 -> 200
    assert status.slope_per_minute == pytest.approx(-20.0)  # one epoch per minute in `record`
    assert status_text(improving) == "STILL IMPROVING: −20.0 ppl/epoch (−10.0%), −20.0 ppl/min in its last epoch"
    past = record("p", [300, 250, 260], [350, 300, 270], 255.0)
    assert learning_status(past).finished and status_text(past) == "past its best (best epoch 2 of 3)"
    flat = record("f", [300, 250, 220, 219.9], [350, 300, 270, 250], 230.0)  # -0.05% in its last epoch
    assert learning_status(flat).finished and learning_status(flat).state is LearningState.LEVELLED
    assert status_text(flat) == "levelled off (−0.100 ppl in its last epoch, less than 0.1%)"
    stopped = record("s", [300, 250, 260, 270], [350, 300, 270, 260], 255.0)
    stopped.results["stopped"] = "early_stopping"
    assert status_text(stopped) == "early stop (best epoch 2 of 4)"


def test_the_curves_show_each_arms_seed_band(arms_runs):
    fig = plot_arms(group_arms(arms_runs))
    by_epoch, by_time = fig.axes
    assert len(by_epoch.collections) == 3 and len(by_time.collections) == 3  # one min–max band per arm
    band = by_epoch.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(240.0) and band[:, 1].max() == pytest.approx(310.0)
    assert [t.get_text() for t in by_time.get_legend().get_texts()] == ["a (2 seeds)", "b (2 seeds)", "c (2 seeds)"]


# --- the analysis judges differences against the seed noise ----------------------------------


def test_verdict_calls_an_effect_only_beyond_the_spread_of_both_arms():
    a, b = spread([250.0, 258.0]), spread([200.0, 204.0])
    assert verdict(a, b).effect and verdict(a, b).direction == -1
    assert "20.5% lower (better), larger than the seed spread of both (8.0 and 4.0)" in verdict(a, b).text()
    close = spread([252.0, 257.0])
    assert not verdict(a, close).effect and verdict(a, close).text() == "within noise (|Δ| 0.5 ≤ seed spread 8.0)"
    assert verdict(a, close).direction == 0
    wide = spread([190.0, 260.0])  # a 29-point difference, but this arm's seeds span 70
    assert not verdict(a, wide).effect
    single = verdict(spread([250.0]), spread([200.0]))
    assert not single.measured and single.noise is None and single.text() == "one seed only: the noise is not measured"
    tight = spread([122.2127, 122.2265])  # two seeds 0.014 apart: one decimal, a non-zero range never as 0.0
    assert tight.text() == "122.2 (122.2–122.2)"
    assert "larger than the seed spread of both (< 0.1 and 6.2)" in verdict(tight, spread([191.4, 197.6])).text()


def test_analysis_says_within_noise_when_spreads_overlap_and_names_the_effect_when_not(arms_runs):
    text = analysis(arms_runs, "a", {"b": "a", "c": "a"})
    assert "**b** has the lowest validation perplexity (199.0 (198.0–200.0) over 2 seeds" in text
    assert (
        "**b** vs **a** (regularisation: weight_drop 0 → 0.5): test perplexity 254.0 (250.0–258.0) → "
        "202.0 (200.0–204.0), 20.5% lower (better), larger than the seed spread of both (8.0 and 4.0): an effect."
    ) in text
    assert (
        "**c** vs **a** (regularisation: tie_weights False → True): test perplexity 254.0 (250.0–258.0) → "
        "254.5 (252.0–257.0), within noise (|Δ| 0.5 ≤ seed spread 8.0)."
    ) in text
    assert (
        "Effects larger than the seed noise: **b**." in text
        and "Within noise (or not measured) at this budget: **c**" in text
    )
    assert "**a-s1**: STILL IMPROVING" in text and "were still improving when they ended" in text


def test_analysis_of_single_seed_runs_claims_no_effect():
    runs = [record("x", [300, 250], [350, 300], 250.0), record("y", [300, 200], [350, 300], 200.0, tie_weights=True)]
    text = analysis(runs)
    assert "one seed only: the noise is not measured" in text and "an effect" not in text
    assert "**Seeds.** Some arms have a single seed" in text


def test_arm_summary_of_nothing_is_empty():
    assert arm_summary([]).empty and isinstance(arm_table([]), pd.DataFrame)


# --- the title page: what each arm ran in, and runs the clock cut ------------------------------


def test_the_title_page_names_each_arms_precision_and_flags_runs_the_time_cap_cut():
    from lmlib.report.title import precision_text, reproducibility

    def ran(name, precision, stopped="early_stopping"):
        run = seeded(name.split("-s")[0], int(name[-1]), [200, 150], 160.0, precision="mixed")
        run.results.update(resolved_precision=precision, stopped=stopped)
        return run

    arms = {"cpu": ["cpu-s1", "cpu-s2"], "transformer": ["transformer-s1"]}
    same = [ran("cpu-s1", "fp32"), ran("cpu-s2", "fp32"), ran("transformer-s1", "fp32")]
    assert precision_text(same, arms).startswith("fp32 for every arm (asked: mixed, i.e. bf16 only where")
    mixed = [ran("cpu-s1", "bf16"), ran("cpu-s2", "bf16"), ran("transformer-s1", "fp32")]
    assert precision_text(mixed, arms).startswith("cpu bf16, transformer fp32")
    assert reproducibility(same).startswith("every run ended on its epoch limit or early stopping")
    clocked = [ran("cpu-s1", "fp32", "time_budget"), *same[1:]]
    assert reproducibility(clocked).startswith("⚠ 1 run(s) hit the time cap (cpu-s1)")
