"""Training: the loop and its budgets.

One call, `train(config, run_dir)`, trains a run or resumes it from `last.safetensors`
(lmlib.training.session). Each epoch appends a row to metrics.csv as it happens; the
best-validation weights go to model.safetensors; results.json is written at the end.
Training stops at the epoch limit, at the time budget (mid-epoch, recorded as a fractional
epoch), by early stopping (`patience`), or on Ctrl-C, which saves a checkpoint first.

Writes come in an order that a failure at any point (a full disk, a kill) cannot break: the
first checkpoint is written before training starts, and an epoch's weights and metrics row
before the checkpoint that moves past it, so the same command always resumes from the last
checkpoint; rows of epochs it trains again are dropped first (session.restore).

`on_epoch(epoch, row)`, when given, is called after each validation with the metrics row
just logged; returning a reason (e.g. "pruned", as a sweep's pruner does) ends the run there,
cleanly: checkpoint, best weights and results.json as for any stop, with `stopped` = reason.
Progress bars and TensorBoard: lmlib.training.tracking. Under torchrun each process trains
its share of the batch: the steps taken through `session.dist` (lmlib.training.distributed)
are where the processes share or agree; on one process each is the plain step.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lmlib.config import RunConfig
from lmlib.data.batching import fixed_windows, get_batch, variable_windows
from lmlib.data.splits import Prepared
from lmlib.errors import LMError
from lmlib.model.head import count_parameters
from lmlib.training import distributed
from lmlib.training.evaluate import perplexity
from lmlib.training.initial import StartFrom, check_same_start, check_start
from lmlib.training.runs import RunPaths, read_config
from lmlib.training.session import (
    LoopState,
    Session,
    load_best_weights,
    open_session,
    save_best_weights,
    save_checkpoint,
    stop_on_sigint,
)
from lmlib.training.tracking import Tracker, check_logger, end_bar


class TrainingInterrupted(LMError):
    """Ctrl-C stopped training after saving its state: the same call resumes it."""


# What `on_epoch` receives: the epoch number and its metrics row; a returned reason stops the run.
EpochHook = Callable[[int, dict], str | None]


def train(
    config: RunConfig,
    run_dir: str | os.PathLike,
    *,
    prepared: Prepared | None = None,
    progress: bool = True,
    on_epoch: EpochHook | None = None,
    restart: bool = False,
    init_from: StartFrom | str | os.PathLike | None = None,
) -> dict:
    """Train (or resume) the run in `run_dir`; return its results dict.

    One process at a time owns a run directory (lmlib.training.ownership): a second is refused.
    `restart` deletes the run's files first and starts over. `init_from` (a model's
    folder) gives a new run its starting weights (lmlib.training.initial).
    """
    paths = RunPaths(Path(run_dir))
    dist = distributed.current()  # Single() unless started by torchrun
    check_logger(config.runtime.logger)  # a missing package is refused before anything is written
    init_from = StartFrom.of(init_from) if init_from is not None else None
    if init_from is not None:
        check_start(init_from, paths.root)  # before --restart deletes anything
    with dist.own_run_dir(paths, restart=restart):
        if init_from is not None and paths.config.is_file():  # a started run: resumed or finished, never re-sourced
            check_same_start(init_from, read_config(paths.root)[1].get("init_from"))
        finished = dist.finished_results(paths, config)
        if finished is not None:
            return finished  # already trained with exactly this config: nothing to do
        session = open_session(config, paths, prepared, dist, init_from)
        tracker = dist.tracker(paths, config.runtime.logger, session.state.step, progress)
        try:
            with stop_on_sigint() as stop:
                _loop(session, stop, tracker, on_epoch)
            if not session.state.stopped:
                raise TrainingInterrupted(
                    f"training interrupted; its state is saved in {paths.last}: run the same command to resume"
                )
            return _finish(session, tracker)
        finally:
            tracker.close()


def _loop(session: Session, stop: threading.Event, tracker: Tracker, on_epoch: EpochHook | None) -> None:
    state, budget, dist = session.state, session.config.train.max_minutes, session.dist
    started = time.perf_counter() - state.elapsed
    while not state.stopped and state.epoch <= session.config.train.epochs:
        if budget is not None and dist.agree(state.elapsed >= budget * 60)[0]:  # every process: the same answer
            state.stopped = "time_budget"
            break
        finished_epoch = _train_epoch(session, stop, started, tracker)
        state.elapsed = time.perf_counter() - started
        if dist.agree(stop.is_set())[0]:  # Ctrl-C: save where the loop stands, then stop
            save_checkpoint(session)
            return
        if finished_epoch or state.stopped == "time_budget":
            _end_epoch(session, tracker, partial=not finished_epoch, started=started, on_epoch=on_epoch)
        save_checkpoint(session)
    if not state.stopped:
        state.stopped = "completed"
        save_checkpoint(session)


def _windows(session: Session):
    columns, train = session.batches["train"].size(1), session.config.train
    if train.variable_bptt:
        return variable_windows(columns, train.bptt, session.rng, start=session.state.column)
    return fixed_windows(columns, train.bptt, start=session.state.column)


def _train_epoch(session: Session, stop: threading.Event, started: float, tracker: Tracker) -> bool:
    """Train from the saved position to the end of the epoch; False if stopped early."""
    train, runtime, state, model = session.config.train, session.config.runtime, session.state, session.model
    data = session.batches["train"]  # (batch, columns)
    rows = data.size(0)
    model.train()
    session.update.start_epoch(state.epoch)
    if state.column == 0 or session.hidden is None:
        session.hidden = model.init_hidden(rows, session.device)
    bar = tracker.bar((data.size(1) - 1) * rows, f"epoch {state.epoch}/{train.epochs}", state.column * rows, leave=True)
    loss_acc = torch.zeros((), dtype=torch.float64, device=session.device)  # summed on device: no sync per step
    last_checkpoint, window = time.perf_counter(), state.column // train.bptt
    try:
        for start, length in _windows(session):
            step_start = time.perf_counter()
            x, y = get_batch(data, start, length)
            session.hidden = model.detach_hidden(session.hidden)
            nll, session.hidden = session.update.step(x, y, session.hidden, length / train.bptt)
            loss_acc += nll.detach().double() * y.numel()
            tracker.step(state.step, nll)
            state.step += 1
            state.tokens += y.numel()
            state.column = start + length
            state.train_seconds += time.perf_counter() - step_start
            bar.update(length * rows)
            window = start // train.bptt + 1
            if window % 20 == 1 or state.column >= data.size(1) - 1:  # not every step: .item() syncs
                _flush_loss(state, loss_acc, window)
                _show_loss(bar, state)
                tracker.flush(session.update.lr, state.tokens, state.train_seconds)
            now = time.perf_counter()
            over_budget = train.max_minutes is not None and now - started >= train.max_minutes * 60
            checkpoint_due = (
                runtime.checkpoint_minutes is not None and now - last_checkpoint >= runtime.checkpoint_minutes * 60
            )
            # Clocks and signals differ between processes: all of them act on the same step.
            over_budget, interrupted, checkpoint_due = session.dist.agree(over_budget, stop.is_set(), checkpoint_due)
            if over_budget:
                state.stopped = "time_budget"
            if interrupted:
                stop.set()
            if interrupted or state.stopped:
                break
            if checkpoint_due:
                _flush_loss(state, loss_acc, window)  # a diverged loss stops here, before it is saved
                state.elapsed = now - started
                save_checkpoint(session)
                last_checkpoint = time.perf_counter()
    finally:
        end_bar(bar, stopped_on_budget=state.stopped == "time_budget")  # a budget stop is a normal end
    _flush_loss(state, loss_acc, window)
    tracker.flush(session.update.lr, state.tokens, state.train_seconds)
    return state.column >= data.size(1) - 1


def _show_loss(bar, state: LoopState) -> None:
    mean = state.loss_sum / max(state.tokens, 1)
    speed = state.tokens / max(state.train_seconds, 1e-9)
    bar.set_postfix(loss=f"{mean:.3f}", ppl=f"{perplexity(mean):.1f}", tok_s=f"{speed:,.0f}")


def _flush_loss(state: LoopState, acc: torch.Tensor, window: int) -> None:
    """Move the loss summed on the device into the loop state (one sync); stop there if the run diverged."""
    state.loss_sum += acc.item()
    acc.zero_()
    check_diverged(state, "training", state.loss_sum / max(state.tokens, 1), f"by window {window}")


def check_diverged(state: LoopState, which: str, loss: float, where: str = "") -> None:
    """Stop a run whose mean loss (nats per token) is no longer finite, nor is its perplexity (exp overflows at
    ~710; a model starts near ln(vocabulary) ~ 9), before its checkpoint, best weights or metrics are written."""
    if math.isfinite(perplexity(loss)):
        return
    value = f"{loss:.4g} nats per token" if math.isfinite(loss) else f"{loss} (not a finite number)"
    raise LMError(
        f"training diverged in epoch {state.epoch}{f' ({where})' if where else ''}: the {which} loss reached "
        f"{value}; nothing since the last checkpoint was saved. Lower lr (or set clip) and pass --restart, "
        "or choose another --run-dir"
    )


def _end_epoch(
    session: Session, tracker: Tracker, partial: bool, started: float, on_epoch: EpochHook | None = None
) -> None:
    """Validate, log the epoch, keep the best weights, step schedules, maybe stop early."""
    state, train, dist = session.state, session.config.train, session.dist
    with session.update.averaged_weights():  # NT-ASGD evaluates (and saves) the averaged weights
        # in fp32, as `lmlib evaluate` does
        valid_loss = dist.evaluate(session.model, session.batches["valid"], train.bptt, tracker.bar_name("valid"))
        check_diverged(state, "validation", valid_loss)
        if valid_loss < state.best_loss:
            state.best_loss, state.best_epoch, state.bad_epochs = valid_loss, state.epoch, 0
            save_best_weights(session, valid_loss)
        else:
            state.bad_epochs += 1
    state.elapsed = time.perf_counter() - started  # validation included
    dist.epoch_totals(state)  # the epoch's training loss over every process's rows
    row = _metrics_row(session, valid_loss, partial)
    dist.write_metrics(session.paths, row)
    tracker.epoch(state.step, row)
    state.valid_history.append(valid_loss)
    session.update.end_epoch(valid_loss, state.valid_history)
    if train.patience is not None and state.bad_epochs >= train.patience:
        state.stopped = "early_stopping"
    if on_epoch is not None:  # the caller's say (a sweep's pruner)
        reason = dist.ask(on_epoch, state.epoch, row)
        if reason:
            state.stopped = str(reason)
    state.epoch, state.column, state.loss_sum, state.tokens, state.train_seconds = state.epoch + 1, 0, 0.0, 0, 0.0
    session.hidden = None


def _metrics_row(session: Session, valid_loss: float, partial: bool) -> dict:
    state = session.state
    train_loss = state.loss_sum / max(state.tokens, 1)
    fraction = state.column / max(session.batches["train"].size(1) - 1, 1)
    return {
        "epoch": round(state.epoch - 1 + fraction, 4) if partial else state.epoch,
        "train_loss": round(train_loss, 6),
        "train_ppl": round(perplexity(train_loss), 4),
        "valid_loss": round(valid_loss, 6),
        "valid_ppl": round(perplexity(valid_loss), 4),
        "lr": session.update.lr,
        "train_seconds": round(state.train_seconds, 3),
        "train_tokens_per_s": round(state.tokens / max(state.train_seconds, 1e-9), 1),
        "wall_seconds": round(state.elapsed, 3),
    }


def _finish(session: Session, tracker: Tracker) -> dict:
    """Evaluate the best weights on test (valid was measured when they were saved); write results.json."""
    load_best_weights(session)
    valid = session.state.best_loss  # measured on exactly these weights when they were saved
    test = session.dist.evaluate(
        session.model, session.batches["test"], session.config.train.bptt, tracker.bar_name("test")
    )
    results = {
        "parameters": count_parameters(session.model),
        "best_epoch": session.state.best_epoch,
        "valid_loss": valid,
        "valid_ppl": perplexity(valid),
        "test_loss": test,
        "test_ppl": perplexity(test),
        "wall_seconds": round(session.state.elapsed, 2),
        "stopped": session.state.stopped,
        "resolved_device": str(session.device),
        "resolved_precision": session.precision,
    }
    return session.dist.write_results(session.paths, results)  # with what metrics.csv adds: epochs run, ...
