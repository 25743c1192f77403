"""Training: the loop, its budgets, checkpoints and resume.

One call, `train(config, run_dir)`, trains a run or resumes it from `last.safetensors`.
Each epoch appends a row to metrics.csv as it happens; the best-validation weights go to
model.safetensors; results.json is written at the end. On CPU with a fixed seed an
interrupted-then-resumed run ends with exactly the metrics of an uninterrupted one: the
checkpoint holds the weights, optimiser, scheduler, RNG states, hidden state and the
position inside the epoch.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lmlib import __version__
from lmlib.atomic import write_json
from lmlib.config import RunConfig
from lmlib.data.batching import batchify, check_fits, fixed_windows, get_batch, variable_windows
from lmlib.data.corpus import load_corpus
from lmlib.data.splits import Prepared, prepare
from lmlib.errors import LMError
from lmlib.model.lstm import LSTMLanguageModel, count_parameters
from lmlib.training.checkpoint import (
    load_model_tensors,
    load_tensors,
    model_tensors,
    restore_rng,
    rng_tensors,
    save_tensors,
)
from lmlib.training.device import resolve_device, resolve_precision
from lmlib.training.evaluate import evaluate_loss, perplexity
from lmlib.training.optim import Optimization
from lmlib.training.runs import (
    RunPaths,
    append_metrics,
    read_config,
    read_metrics,
    read_results,
    truncate_metrics,
    write_config,
)

# Fields that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = {"epochs", "max_minutes", "device", "precision", "checkpoint_minutes", "patience"}


@dataclass
class LoopState:
    """Everything about the loop's position that a checkpoint must carry (JSON-able)."""

    epoch: int = 1  # the epoch being trained (1-based)
    column: int = 0  # next window start inside the epoch
    loss_sum: float = 0.0  # training NLL summed over this epoch's tokens so far
    tokens: int = 0  # training tokens of this epoch so far
    train_seconds: float = 0.0  # seconds spent in this epoch's training steps
    elapsed: float = 0.0  # wall seconds of the whole run, over all sessions
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    valid_history: list[float] = field(default_factory=list)
    stopped: str = ""  # "", "completed", "early_stopping", "time_budget"


@dataclass
class Session:
    """The live objects of one training session."""

    config: RunConfig
    paths: RunPaths
    prepared: Prepared
    device: torch.device
    precision: str
    model: LSTMLanguageModel
    opt: Optimization
    rng: np.random.Generator
    data: dict[str, torch.Tensor]
    state: LoopState
    hidden: list | None = None


def train(
    config: RunConfig, run_dir: str | os.PathLike, *, prepared: Prepared | None = None, progress: bool = True
) -> dict:
    """Train (or resume) the run in `run_dir`; return its results dict."""
    paths = RunPaths(Path(run_dir))
    finished = read_results(paths.root)
    if finished is not None and read_config(paths.root)[0] == config:
        return finished  # already trained with exactly this config: nothing to do
    session = _open_session(config, paths, prepared)
    with _stop_on_sigint() as stop:
        _loop(session, stop, progress)
    if not session.state.stopped:
        raise LMError(f"training interrupted; its state is saved in {paths.last}: run the same command to resume")
    return _finish(session)


def _open_session(config: RunConfig, paths: RunPaths, prepared: Prepared | None) -> Session:
    resuming = paths.last.is_file()
    if resuming or paths.config.is_file():
        _check_resumable(paths, config)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    prepared = prepared or prepare(load_corpus(config.corpus), config.protocol, config.min_freq)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    model = LSTMLanguageModel(len(prepared.vocab), config).to(device)
    data = _batched_splits(config, prepared, device)
    opt = Optimization(config, model, device, precision)
    session = Session(config, paths, prepared, device, precision, model, opt, rng, data, LoopState())
    if resuming:
        _restore(session)
    else:
        paths.root.mkdir(parents=True, exist_ok=True)
        write_config(paths, config, _data_description(prepared, model, device, precision))
        prepared.vocab.save(paths.vocab)
    return session


def _batched_splits(config: RunConfig, prepared: Prepared, device: torch.device) -> dict[str, torch.Tensor]:
    data = {}
    for split, ids in prepared.splits.items():
        if config.subset_tokens:
            ids = ids[: config.subset_tokens]
        batch = config.batch_size if split == "train" else (config.eval_batch_size or config.batch_size)
        data[split] = batchify(ids, batch).to(device)
        check_fits(data[split], config.bptt, split)
    return data


def _loop(s: Session, stop: threading.Event, progress: bool) -> None:
    started = time.perf_counter() - s.state.elapsed
    while not s.state.stopped and s.state.epoch <= s.config.epochs:
        if s.config.max_minutes and s.state.elapsed >= s.config.max_minutes * 60:
            s.state.stopped = "time_budget"
            break
        finished_epoch = _train_epoch(s, stop, started, progress)
        s.state.elapsed = time.perf_counter() - started
        if stop.is_set():
            _save_checkpoint(s)
            return
        if finished_epoch or s.state.stopped == "time_budget":
            _end_epoch(s, partial=not finished_epoch)
            s.state.elapsed = time.perf_counter() - started
        _save_checkpoint(s)
    if not s.state.stopped:
        s.state.stopped = "completed"
        _save_checkpoint(s)


def _windows(s: Session):
    columns = s.data["train"].size(1)
    if s.config.variable_bptt:
        return variable_windows(columns, s.config.bptt, s.rng, start=s.state.column)
    return fixed_windows(columns, s.config.bptt, start=s.state.column)


def _train_epoch(s: Session, stop: threading.Event, started: float, progress: bool) -> bool:
    """Train from the saved position to the end of the epoch; False if stopped early."""
    cfg, st, model = s.config, s.state, s.model
    data = s.data["train"]
    model.train()
    s.opt.start_epoch(st.epoch)
    if st.column == 0 or s.hidden is None:
        s.hidden = model.init_hidden(cfg.batch_size, s.device)
    rows = data.size(0)
    bar = tqdm(
        total=(data.size(1) - 1) * rows,
        initial=st.column * rows,
        desc=f"epoch {st.epoch}/{cfg.epochs}",
        unit="tok",
        unit_scale=True,
        disable=not progress,
        leave=True,
        dynamic_ncols=True,
    )
    loss_acc = torch.zeros((), dtype=torch.float64, device=s.device)  # summed on device: no sync per step
    last_checkpoint = time.perf_counter()
    try:
        for start, length in _windows(s):
            step_start = time.perf_counter()
            x, y = get_batch(data, start, length)
            s.hidden = model.detach_hidden(s.hidden)
            nll, s.hidden = s.opt.step(x, y, s.hidden, length / cfg.bptt)
            loss_acc += nll.detach().double() * y.numel()
            st.tokens += y.numel()
            st.column = start + length
            st.train_seconds += time.perf_counter() - step_start
            bar.update(length * rows)
            if (start // cfg.bptt) % 20 == 0 or st.column >= data.size(1) - 1:  # not every step: .item() syncs
                _flush_loss(st, loss_acc)
                mean = st.loss_sum / max(st.tokens, 1)
                bar.set_postfix(
                    loss=f"{mean:.3f}",
                    ppl=f"{perplexity(mean):.1f}",
                    tok_s=f"{st.tokens / max(st.train_seconds, 1e-9):,.0f}",
                )
            now = time.perf_counter()
            if cfg.max_minutes and now - started >= cfg.max_minutes * 60:
                st.stopped = "time_budget"
            if stop.is_set() or st.stopped:
                break
            if cfg.checkpoint_minutes and now - last_checkpoint >= cfg.checkpoint_minutes * 60:
                _flush_loss(st, loss_acc)
                st.elapsed = now - started
                _save_checkpoint(s)
                last_checkpoint = time.perf_counter()
    finally:
        _flush_loss(st, loss_acc)
        bar.close()
    return st.column >= data.size(1) - 1


def _flush_loss(st: LoopState, acc: torch.Tensor) -> None:
    st.loss_sum += acc.item()
    acc.zero_()


def _end_epoch(s: Session, partial: bool) -> None:
    """Validate, log the epoch, keep the best weights, step schedules, maybe stop early."""
    cfg, st = s.config, s.state
    with s.opt.averaged_weights():  # NT-ASGD evaluates (and saves) the averaged weights
        valid_loss = evaluate_loss(s.model, s.data["valid"], cfg.bptt)  # fp32, as `lmlib evaluate`
        improved = valid_loss < st.best_loss
        if improved:
            st.best_loss, st.best_epoch, st.bad_epochs = valid_loss, st.epoch, 0
            save_tensors(s.paths.model, model_tensors(s.model), {"epoch": st.epoch, "valid_loss": valid_loss})
        else:
            st.bad_epochs += 1
    train_loss = st.loss_sum / max(st.tokens, 1)
    fraction = st.column / max(s.data["train"].size(1) - 1, 1)
    append_metrics(
        s.paths,
        {
            "epoch": round(st.epoch - 1 + fraction, 4) if partial else st.epoch,
            "train_loss": round(train_loss, 6),
            "train_ppl": round(perplexity(train_loss), 4),
            "valid_loss": round(valid_loss, 6),
            "valid_ppl": round(perplexity(valid_loss), 4),
            "lr": s.opt.lr,
            "seconds": round(st.train_seconds, 3),
            "tokens_per_s": round(st.tokens / max(st.train_seconds, 1e-9), 1),
            "elapsed_s": round(st.elapsed, 3),
        },
    )
    st.valid_history.append(valid_loss)
    s.opt.end_epoch(valid_loss, st.valid_history)
    if cfg.patience and st.bad_epochs >= cfg.patience:
        st.stopped = "early_stopping"
    st.epoch, st.column, st.loss_sum, st.tokens, st.train_seconds = st.epoch + 1, 0, 0.0, 0, 0.0
    s.hidden = None


def _save_checkpoint(s: Session) -> None:
    tensors = {f"model/{k}": v for k, v in model_tensors(s.model).items()}
    opt_tensors, opt_header = s.opt.state_tensors()
    rng_t, rng_header = rng_tensors(s.rng)
    tensors.update(opt_tensors)
    tensors.update(rng_t)
    for i, (h, c) in enumerate(s.hidden or []):
        tensors[f"hidden/{i}/h"], tensors[f"hidden/{i}/c"] = h, c
    header = {"loop": asdict(s.state), "optimization": opt_header, "rng": rng_header, "lmlib": __version__}
    save_tensors(s.paths.last, tensors, header)


def _restore(s: Session) -> None:
    tensors, header = load_tensors(s.paths.last)
    model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    load_model_tensors(s.model, model, str(s.paths.last))
    s.opt.restore(tensors, header["optimization"])
    restore_rng(s.rng, tensors, header["rng"])
    s.state = LoopState(**header["loop"])
    if s.state.stopped in ("completed", "time_budget"):
        s.state.stopped = ""  # more epochs or a larger budget continue a finished run
    layers = sorted({int(k.split("/")[1]) for k in tensors if k.startswith("hidden/")})
    s.hidden = [(tensors[f"hidden/{i}/h"].to(s.device), tensors[f"hidden/{i}/c"].to(s.device)) for i in layers] or None
    truncate_metrics(s.paths, s.state.epoch)


def _finish(s: Session) -> dict:
    """Evaluate the best weights on test (valid was measured when they were saved); write results.json."""
    if not s.paths.model.is_file():
        raise LMError(f"{s.paths.root} has no best weights: training stopped before the first validation")
    tensors, _ = load_tensors(s.paths.model)
    load_model_tensors(s.model, tensors, str(s.paths.model))
    valid = s.state.best_loss  # measured on exactly these weights when they were saved
    test = evaluate_loss(s.model, s.data["test"], s.config.bptt)
    metrics = read_metrics(s.paths.root)
    results = {
        "parameters": count_parameters(s.model),
        "best_epoch": s.state.best_epoch,
        "epochs_run": float(metrics["epoch"].iloc[-1]) if len(metrics) else 0.0,
        "train_ppl": float(metrics["train_ppl"].iloc[-1]) if len(metrics) else None,
        "valid_loss": valid,
        "valid_ppl": perplexity(valid),
        "test_loss": test,
        "test_ppl": perplexity(test),
        "seconds": round(s.state.elapsed, 2),
        "tokens_per_s": float(metrics["tokens_per_s"].mean()) if len(metrics) else None,
        "stopped": s.state.stopped,
        "device": str(s.device),
        "precision": s.precision,
    }
    write_json(s.paths.results, results)
    return results


def _differences(saved: RunConfig, config: RunConfig) -> list[str]:
    a, b = saved.to_dict(), config.to_dict()
    return [k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES]


def _check_resumable(paths: RunPaths, config: RunConfig) -> None:
    saved, _ = read_config(paths.root)
    changed = _differences(saved, config)
    if changed:
        raise LMError(
            f"{paths.root} already holds a run with a different config ({', '.join(changed)}): "
            "choose another --run-dir, or delete that folder to start over"
        )


def _data_description(prepared: Prepared, model, device, precision) -> dict:
    return {
        "corpus": prepared.corpus,
        "protocol": prepared.protocol,
        "min_freq": prepared.min_freq,
        "vocab_size": len(prepared.vocab),
        "split_tokens": prepared.split_tokens,
        "parameters": count_parameters(model),
        "device": str(device),
        "precision": precision,
        "torch": torch.__version__,
        "lmlib": __version__,
    }


@contextmanager
def _stop_on_sigint():
    """Turn Ctrl-C into a flag the loop checks between steps, so the checkpoint is consistent."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if stop.is_set():  # a second Ctrl-C: give up at once
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
