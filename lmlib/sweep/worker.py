"""A sweep worker: trials of the ordinary training code until the study has all its trials.

    python -m lmlib sweep --study cpu-search --space params/sweeps/cpu.yaml --trials 20

Each trial is an ordinary run directory, runs/sweeps/<study>/trial-<n>, trained by
lmlib.training.loop.train. After each epoch its validation perplexity goes to the study
(`trial.report`) and the pruner may stop it there: the run ends cleanly, stopped = "pruned".
A retried trial (its worker died; lmlib.sweep.storage) trains in the dead trial's folder,
so where that folder is reachable it resumes from the dead worker's last checkpoint.

Exactly N trials, however many workers: optuna's MaxTrialsCallback checks only after a trial
ends, so two workers that both see N - 1 finished trials both start one. Here a worker
starts a trial only while finished + running + queued < N, and a trial, once created, checks
that fewer than N live trials (finished, running or queued) have a lower number than its
own; trial numbers are assigned in order by the storage, so of two trials created in a race
the later one sees the earlier and steps aside: it is marked FAIL with user attribute
`surplus` and never trained. A failed trial does not count (a failure is not a measurement):
a stale one is re-queued by the retry callback, a broken one is replaced by a new draw, and
three failures in a row stop the worker. When the remaining trials all run elsewhere, the
worker waits, so that a worker that dies near the end still has its trial finished here.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from lmlib.errors import LMError
from lmlib.sweep.space import SweepSpace, make_pruner
from lmlib.sweep.storage import open_storage, retried_number, retry_callback

MAX_FAILURES_IN_A_ROW = 3


class SurplusTrial(Exception):
    """A trial created in a race once the study already had its N: it steps aside untrained."""


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker does: which study, where it lives, and this worker's own budgets."""

    study: str
    space: SweepSpace
    trials: int  # the study's total: every worker with the same command stops when it has them
    storage: str = "sqlite:///runs/sweeps.db"
    runs_root: str = "runs/sweeps"
    worker_trials: int | None = None  # at most this many trials by this worker
    max_minutes: float | None = None  # this worker starts no trial after this many minutes
    heartbeat: int = 60
    grace: int | None = None


@dataclass
class WorkerReport:
    """What one worker did."""

    worker: str
    trials: list[int] = field(default_factory=list)  # the numbers of the trials it trained
    stopped: str = ""  # why it stopped
    finished: int = 0  # the study's finished (complete + pruned) trials when it stopped


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(plan: WorkerPlan, log=print) -> WorkerReport:
    """Join (or create) the study and train trials until it has `plan.trials` or a budget ends."""
    import optuna

    if plan.trials < 1:
        raise LMError(f"--trials is the study's total number of trials, at least 1, got {plan.trials}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # this worker logs its own one line per trial
    study = open_study(plan)
    objective = _Objective(plan, study)
    report, started, failures, waiting = WorkerReport(worker_name()), time.monotonic(), 0, False
    while True:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial goes back to the queue
        counts = state_counts(study)
        report.finished = counts["finished"]
        stop = _budget_spent(plan, report, counts, started, failures)
        if stop:
            report.stopped = stop
            break
        if counts["finished"] + counts["running"] + counts["waiting"] >= plan.trials and not counts["waiting"]:
            if not waiting:
                log(f"[{report.worker}] the last trials run on other workers; waiting in case one of them dies")
            waiting = True
            time.sleep(min(plan.heartbeat, 5))
            continue
        waiting = False
        try:
            study.optimize(objective, n_trials=1, catch=(LMError, SurplusTrial), gc_after_trial=False)
        except KeyboardInterrupt:
            _requeue(study, objective.number)  # Ctrl-C: the interrupted trial is retried, not lost
            raise
        trial = _trial(study, objective.number)
        failures = failures + 1 if trial.state.name == "FAIL" and not trial.user_attrs.get("surplus") else 0
        if not trial.user_attrs.get("surplus"):
            report.trials.append(trial.number)
            log(f"[{report.worker}] {describe_trial(trial)}")
    log(
        f"[{report.worker}] stopped ({report.stopped}): trained {len(report.trials)} trial(s); "
        f"the study has {report.finished} of {plan.trials}"
    )
    if failures >= MAX_FAILURES_IN_A_ROW:  # a worker that could not train is a failure, not a finished sweep
        last = _trial(study, report.trials[-1]).user_attrs.get("error", "no reason recorded")
        raise LMError(f"the sweep worker stopped: {report.stopped}; the last one: {last}")
    return report


def open_study(plan: WorkerPlan):
    """Create the study, or join it; a study started with another space is an error."""
    import optuna

    storage = open_storage(plan.storage, plan.heartbeat, plan.grace)
    pruner = make_pruner(plan.space.pruner, plan.space.pruner_options)
    study = optuna.create_study(
        study_name=plan.study, storage=storage, pruner=pruner, direction="minimize", load_if_exists=True
    )
    signature = plan.space.signature() + f" pruner={plan.space.pruner}{plan.space.pruner_options}"
    saved = study.user_attrs.get("lmlib:space")
    if saved is None:
        _check_no_old_trials(plan, study)
        study.set_user_attr("lmlib:space", signature)
        study.set_user_attr("lmlib:space_file", plan.space.path)
    elif saved != signature:
        raise LMError(
            f"study {plan.study!r} was started with another search space or pruner "
            f"({study.user_attrs.get('lmlib:space_file')}): join it with the same space file, or name a new --study"
        )
    return study


def _check_no_old_trials(plan: WorkerPlan, study) -> None:
    """A study new to this storage must not find trial folders under its name: they belong to a study of the same
    name in another storage, and every trial would fail on them ("a run with a different config")."""
    folder = Path(plan.runs_root) / plan.study
    old = sorted(p.name for p in folder.glob("trial-*") if (p / "config.json").is_file()) if folder.is_dir() else []
    if old and not study.get_trials(deepcopy=False):
        raise LMError(
            f"{folder} already holds {', '.join(old[:3])}{', ...' if len(old) > 3 else ''} of a study named "
            f"{plan.study!r}, which {plan.storage} does not know (a study name used before with another storage?): "
            "name a new --study, pass the storage that study used, or move that folder away"
        )


def state_counts(study) -> dict[str, int]:
    """The study's trials by what they mean for the budget: finished, running, waiting, failed."""
    counts = {"finished": 0, "running": 0, "waiting": 0, "failed": 0}
    for trial in study.get_trials(deepcopy=False):
        key = {"COMPLETE": "finished", "PRUNED": "finished", "RUNNING": "running", "WAITING": "waiting"}
        counts[key.get(trial.state.name, "failed")] += 1
    return counts


def _budget_spent(plan: WorkerPlan, report: WorkerReport, counts: dict, started: float, failures: int) -> str:
    if counts["finished"] >= plan.trials:
        return "the study has all its trials"
    if plan.worker_trials is not None and len(report.trials) >= plan.worker_trials:
        return f"this worker's {plan.worker_trials} trial(s) are done"
    if plan.max_minutes is not None and time.monotonic() - started >= plan.max_minutes * 60:
        return f"this worker's {plan.max_minutes:g} minutes are up"
    if failures >= MAX_FAILURES_IN_A_ROW:
        return f"{failures} trials in a row failed: see the log, and fix the space or the base config"
    return ""


class _Objective:
    """One trial: draw the config, train it in its run directory, report each epoch, return the objective."""

    def __init__(self, plan: WorkerPlan, study):
        self.plan, self.study, self.number, self._prepared = plan, study, None, {}

    def __call__(self, trial) -> float:
        try:
            return self._train(trial)
        except LMError as err:
            trial.set_user_attr("error", str(err))  # kept with the trial: a worker that gives up names it
            raise

    def _train(self, trial) -> float:
        import optuna

        self.number = trial.number
        if not _admitted(self.study, trial.number, self.plan.trials):
            trial.set_user_attr("surplus", True)
            raise SurplusTrial(f"the study already has {self.plan.trials} trials finished, running or queued")
        config = self.plan.space.config_for(trial)
        first = retried_number(_trial(self.study, trial.number))
        run_dir = Path(self.plan.runs_root) / self.plan.study / f"trial-{trial.number if first is None else first}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", worker_name())
        metric = self.plan.space.objective

        def on_epoch(epoch: int, row: dict) -> str | None:
            trial.report(float(row[metric]), epoch)
            return "pruned" if trial.should_prune() else None

        from lmlib.training.loop import TrainingInterrupted, train
        from lmlib.training.runs import RunPaths

        # A retry resumes the dead trial's checkpoint; a worker killed before its first
        # checkpoint (after an epoch's metrics row) leaves nothing to resume: start it over.
        restart = first is not None and not RunPaths(run_dir).last.is_file()
        try:
            results = train(
                config, run_dir, prepared=self._prepare(config), progress=False, on_epoch=on_epoch, restart=restart
            )
        except TrainingInterrupted as err:
            raise KeyboardInterrupt from err  # the worker stops; the trial is re-queued (run_worker)
        for key in ("valid_ppl", "test_ppl", "best_epoch", "epochs_run", "stopped", "parameters", "wall_seconds"):
            trial.set_user_attr(key, results[key])
        if results["stopped"] == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {results['epochs_run']:g}")
        return float(results[metric])

    def _prepare(self, config):
        """The prepared corpus, kept between trials (a space may search data fields: one per data config)."""
        from lmlib.data.corpus import load_corpus
        from lmlib.data.splits import prepare

        key = (config.data.corpus, config.data.protocol, config.data.min_freq)
        if key not in self._prepared:
            self._prepared = {key: prepare(load_corpus(config.data.corpus), config.data.protocol, config.data.min_freq)}
        return self._prepared[key]


def _admitted(study, number: int, total: int) -> bool:
    """Fewer than `total` live trials (finished, running, queued) were numbered before this one."""
    live = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
    return sum(t.number < number and t.state.name in live for t in study.get_trials(deepcopy=False)) < total


def _trial(study, number: int):
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def _requeue(study, number: int | None) -> None:
    """Put an interrupted trial's parameters back in the queue (as the heartbeat's retry does)."""
    if number is None:
        return
    trial = _trial(study, number)
    if trial.state.name == "FAIL" and not trial.user_attrs.get("surplus"):
        retry_callback()(study, trial)


def describe_trial(trial) -> str:
    """One line: number, parameters, outcome."""
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    retry = trial.system_attrs.get("failed_trial")
    again = f" (retry of trial {retry})" if retry is not None else ""
    if trial.state.name == "COMPLETE":
        outcome = f"valid ppl {trial.user_attrs.get('valid_ppl', trial.value):.2f}"
    elif trial.state.name == "PRUNED":
        outcome = f"pruned after epoch {trial.user_attrs.get('epochs_run', len(trial.intermediate_values)):g}"
    else:
        outcome = "failed"
    return f"trial {trial.number}{again}: {params} -> {outcome} [{trial.user_attrs.get('run_dir', '')}]"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
