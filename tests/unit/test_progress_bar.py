"""A bar the time budget ends is a normal end, not the red of an error (tqdm's notebook widget)."""

import pytest

from lmlib.training.tracking import Tracker, end_bar


@pytest.mark.parametrize("budget,style", [(True, "success"), (False, "danger")])
def test_a_time_budget_stop_closes_the_notebook_bar_as_a_success(budget, style):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm

    bar = tqdm(total=100, desc="epoch 1/3", leave=True)
    bar.update(40)
    end_bar(bar, stopped_on_budget=budget)  # False: Ctrl-C or an error, which stays red
    assert bar.container.children[1].bar_style == style
    assert ("time budget" in bar.desc) is budget


def test_a_quiet_tracker_shows_nothing_and_logs_nothing():
    tracker = Tracker(progress=False)
    bar = tracker.bar(100, "epoch 1/1")
    bar.update(40)
    end_bar(bar, stopped_on_budget=True)
    assert bar.disable and tracker.bar_name("valid") is None
    tracker.flush(lr=0.1, tokens=10, seconds=1.0)
    tracker.close()
