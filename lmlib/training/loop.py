"""Training: the loop and its budgets.

One call, `train(config, run_dir)`, trains a run or resumes it from `last.safetensors`
(lmlib.training.session). Each epoch appends a row to metrics.csv as it happens; the
best-validation weights go to model.safetensors; results.json is written at the end.
Training stops at the epoch limit, at the time budget (mid-epoch, recorded as a fractional
epoch), by early stopping (`patience`), or on Ctrl-C, which saves a checkpoint first.

`on_epoch(epoch, row)`, when given, is called after each validation with the metrics row
just logged; returning a reason (e.g. "pruned", as a sweep's pruner does) ends the run there,
cleanly: checkpoint, best weights and results.json as for any stop, with `stopped` = reason.
Under torchrun each process trains its share of the batch (lmlib.training.distributed); the
lines marked [distributed hook] are where the ranks share or agree, and do nothing otherwise.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lmlib.atomic import write_json
from lmlib.config import RunConfig
from lmlib.data.batching import fixed_windows, get_batch, variable_windows
from lmlib.data.splits import Prepared
from lmlib.errors import LMError
from lmlib.model.head import count_parameters
from lmlib.training import distributed
from lmlib.training.evaluate import perplexity
from lmlib.training.ownership import clear_run, own_run_dir
from lmlib.training.runs import RunPaths, append_metrics, read_config, read_metrics, read_results
from lmlib.training.session import (
    LoopState,
    Session,
    load_best_weights,
    open_session,
    save_best_weights,
    save_checkpoint,
    stop_on_sigint,
)


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
) -> dict:
    """Train (or resume) the run in `run_dir`; return its results dict.

    One process at a time owns a run directory (lmlib.training.ownership): a second is refused.
    `restart` deletes the run's files first and starts over.
    """
    paths = RunPaths(Path(run_dir))
    dist = distributed.current()  # [distributed hook] Single() unless started by torchrun
    # Under torchrun rank 0 alone writes, so it alone owns the directory (other ranks may have none).
    with own_run_dir(paths.root) if dist.is_main else nullcontext():
        if restart and dist.is_main:
            clear_run(paths)
        finished = dist.from_main(_finished_results, paths, config)
        if finished is not None:
            return finished  # already trained with exactly this config: nothing to do
        session = open_session(config, paths, prepared, dist)
        with stop_on_sigint() as stop:
            _loop(session, stop, progress and dist.is_main, on_epoch)
        if not session.state.stopped:
            raise TrainingInterrupted(
                f"training interrupted; its state is saved in {paths.last}: run the same command to resume"
            )
        return _finish(session)


def _finished_results(paths: RunPaths, config: RunConfig) -> dict | None:
    finished = read_results(paths.root)
    return finished if finished is not None and read_config(paths.root)[0] == config else None


def _loop(session: Session, stop: threading.Event, progress: bool, on_epoch: EpochHook | None) -> None:
    state, budget, dist = session.state, session.config.train.max_minutes, session.dist
    started = time.perf_counter() - state.elapsed
    while not state.stopped and state.epoch <= session.config.train.epochs:
        if budget is not None and dist.agree(state.elapsed >= budget * 60)[0]:  # [distributed hook] clocks differ
            state.stopped = "time_budget"
            break
        finished_epoch = _train_epoch(session, stop, started, progress)
        state.elapsed = time.perf_counter() - started
        if dist.agree(stop.is_set())[0]:  # [distributed hook] a Ctrl-C on any rank stops all, here
            save_checkpoint(session)
            return
        if finished_epoch or state.stopped == "time_budget":
            _end_epoch(session, partial=not finished_epoch, started=started, on_epoch=on_epoch)
        save_checkpoint(session)
    if not state.stopped:
        state.stopped = "completed"
        save_checkpoint(session)


def _windows(session: Session):
    columns, train = session.batches["train"].size(1), session.config.train
    if train.variable_bptt:
        return variable_windows(columns, train.bptt, session.rng, start=session.state.column)
    return fixed_windows(columns, train.bptt, start=session.state.column)


def _train_epoch(session: Session, stop: threading.Event, started: float, progress: bool) -> bool:
    """Train from the saved position to the end of the epoch; False if stopped early."""
    train, runtime, state, model = session.config.train, session.config.runtime, session.state, session.model
    data = session.batches["train"]  # (batch, columns)
    model.train()
    session.update.start_epoch(state.epoch)
    if state.column == 0 or session.hidden is None:
        session.hidden = model.init_hidden(data.size(0), session.device)  # this process's rows (distributed)
    bar = _progress_bar(session, progress)
    loss_acc = torch.zeros((), dtype=torch.float64, device=session.device)  # summed on device: no sync per step
    last_checkpoint, window = time.perf_counter(), state.column // train.bptt
    try:
        for start, length in _windows(session):
            step_start = time.perf_counter()
            x, y = get_batch(data, start, length)
            session.hidden = model.detach_hidden(session.hidden)
            nll, session.hidden = session.update.step(x, y, session.hidden, length / train.bptt)
            loss_acc += nll.detach().double() * y.numel()
            state.tokens += y.numel()
            state.column = start + length
            state.train_seconds += time.perf_counter() - step_start
            bar.update(length * data.size(0))
            window = start // train.bptt + 1
            if window % 20 == 1 or state.column >= data.size(1) - 1:  # not every step: .item() syncs
                _flush_loss(state, loss_acc, window)
                _show_loss(bar, state)
            now = time.perf_counter()
            over_budget = train.max_minutes is not None and now - started >= train.max_minutes * 60
            checkpoint_due = (
                runtime.checkpoint_minutes is not None and now - last_checkpoint >= runtime.checkpoint_minutes * 60
            )
            # [distributed hook] clocks and signals differ between ranks: all act on the same step
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
        bar.close()
    _flush_loss(state, loss_acc, window)
    return state.column >= data.size(1) - 1


def _progress_bar(session: Session, progress: bool):
    data, state = session.batches["train"], session.state
    rows = data.size(0)
    return tqdm(total=(data.size(1) - 1) * rows, initial=state.column * rows, unit="tok", unit_scale=True,
                desc=f"epoch {state.epoch}/{session.config.train.epochs}", disable=not progress, leave=True,
                dynamic_ncols=True)  # fmt: skip


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


def _end_epoch(session: Session, partial: bool, started: float, on_epoch: EpochHook | None = None) -> None:
    """Validate, log the epoch, keep the best weights, step schedules, maybe stop early."""
    state, train, dist = session.state, session.config.train, session.dist
    with session.update.averaged_weights():  # NT-ASGD evaluates (and saves) the averaged weights
        # fp32, as `lmlib evaluate`; [distributed hook] each rank its rows, the sums all-reduced
        valid_loss = dist.evaluate(session.model, session.batches["valid"], train.bptt)
        check_diverged(state, "validation", valid_loss)
        if valid_loss < state.best_loss:
            state.best_loss, state.best_epoch, state.bad_epochs = valid_loss, state.epoch, 0
            save_best_weights(session, valid_loss)
        else:
            state.bad_epochs += 1
    state.elapsed = time.perf_counter() - started  # validation included
    dist.epoch_totals(state)  # [distributed hook] the training loss over every rank's rows
    row = _metrics_row(session, valid_loss, partial)
    if dist.is_main:  # [distributed hook] rank 0 alone writes
        append_metrics(session.paths, row)
    state.valid_history.append(valid_loss)
    session.update.end_epoch(valid_loss, state.valid_history)
    if train.patience is not None and state.bad_epochs >= train.patience:
        state.stopped = "early_stopping"
    if on_epoch is not None:  # the caller's say (a sweep's pruner); rank 0's answer holds for all ranks
        reason = dist.from_main(on_epoch, state.epoch, row)
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
        "train_loss": round(train_loss, 6), "train_ppl": round(perplexity(train_loss), 4),
        "valid_loss": round(valid_loss, 6), "valid_ppl": round(perplexity(valid_loss), 4),
        "lr": session.update.lr,
        "train_seconds": round(state.train_seconds, 3),
        "train_tokens_per_s": round(state.tokens / max(state.train_seconds, 1e-9), 1),
        "wall_seconds": round(state.elapsed, 3),
    }  # fmt: skip


def _finish(session: Session) -> dict:
    """Evaluate the best weights on test (valid was measured when they were saved); write results.json."""
    load_best_weights(session)
    valid = session.state.best_loss  # measured on exactly these weights when they were saved
    test = session.dist.evaluate(session.model, session.batches["test"], session.config.train.bptt)
    return session.dist.from_main(_write_results, session, valid, test)  # [distributed hook] rank 0 writes


def _write_results(session: Session, valid: float, test: float) -> dict:
    """results.json from the metrics and the final numbers; returned as written."""
    metrics = read_metrics(session.paths.root)
    last = metrics.iloc[-1] if len(metrics) else None
    results = {
        "parameters": count_parameters(session.model),
        "best_epoch": session.state.best_epoch,
        "epochs_run": float(last["epoch"]) if last is not None else 0.0,
        "train_ppl": float(last["train_ppl"]) if last is not None else None,
        "valid_loss": valid, "valid_ppl": perplexity(valid),
        "test_loss": test, "test_ppl": perplexity(test),
        "wall_seconds": round(session.state.elapsed, 2),
        "train_tokens_per_s": float(metrics["train_tokens_per_s"].mean()) if len(metrics) else None,
        "stopped": session.state.stopped,
        "resolved_device": str(session.device), "resolved_precision": session.precision,
    }  # fmt: skip
    write_json(session.paths.results, results)
    return results
