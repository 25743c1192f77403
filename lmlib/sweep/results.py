"""A study's results for notebook 05: the trials as a table, the best trial, parameter importances."""

from __future__ import annotations

import pandas as pd

from lmlib.sweep.space import SweepSpace
from lmlib.sweep.storage import open_storage


def load_study(name: str, storage: str):
    """An existing study (read-only use: nothing here starts a trial)."""
    import optuna

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def space_table(space: SweepSpace) -> pd.DataFrame:
    """One row per searched field: its kind and range, and what every trial starts from."""
    base = space.base().flat()
    rows = {}
    for p in space.params:
        searched = ", ".join(map(str, p.choices)) if p.kind == "categorical" else f"[{p.low:g}, {p.high:g}]"
        scale = "log" if p.log else (f"step {p.step:g}" if p.step else "")
        rows[p.name] = {"kind": p.kind, "values": searched, "scale": scale, "base": base[p.name]}
    return pd.DataFrame.from_dict(rows, orient="index")


def trials_table(study) -> pd.DataFrame:
    """Every trial that was not a surplus: state, parameters, valid/test perplexity, epochs, run directory."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue  # created in a race between workers and never trained (lmlib.sweep.worker)
        retry = t.system_attrs.get("failed_trial")
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                **t.params,
                "valid ppl": t.user_attrs.get("valid_ppl"),
                "test ppl": t.user_attrs.get("test_ppl"),
                "epochs": t.user_attrs.get("epochs_run"),
                "minutes": _minutes(t.user_attrs.get("wall_seconds")),
                "retry of": retry if retry is not None else "",
                "run": t.user_attrs.get("run_dir", ""),
            }
        )
    return pd.DataFrame(rows).set_index("trial") if rows else pd.DataFrame()


def _minutes(seconds) -> float | None:
    return round(seconds / 60, 2) if seconds is not None else None


def best_trial(study):
    """The completed trial with the lowest objective, or None while none has completed."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return min(complete, key=lambda t: t.value) if complete else None


def plot_importances(study):
    """Parameter importances by optuna's default evaluator, as a matplotlib Axes; None and why, when it cannot.

    The default is PED-ANOVA (Watanabe et al. 2023) in optuna 5, fANOVA (Hutter et al. 2014,
    needs scikit-learn) in older versions: how much of the objective's spread each parameter explains.
    """
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return None, f"importances need at least 2 completed trials; this study has {len(complete)}"
    if len({t.value for t in complete}) < 2:
        return None, "every completed trial has the same value: no parameter explains a difference"
    try:
        return optuna.visualization.matplotlib.plot_param_importances(study), ""
    except (RuntimeError, ValueError) as err:  # e.g. a parameter that never varied
        return None, f"importances could not be computed: {err}"
