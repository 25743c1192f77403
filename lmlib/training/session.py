"""One training session: the live objects of a run, its checkpoint, and resuming from it.

A checkpoint (`last.safetensors`, one atomic file) holds the weights, the update rule's
state (optimiser, scheduler, grad scaler, NT-ASGD averaging), both random-number states,
the hidden state and the loop's position inside the epoch, so that on a CPU with a fixed
seed a resumed run ends with exactly the metrics of an uninterrupted one.
"""

from __future__ import annotations

import math
import signal
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from lmlib import __version__
from lmlib.config import RESUMABLE, RunConfig, differences
from lmlib.data.batching import batch_splits
from lmlib.data.casing import save_casing
from lmlib.data.corpus import load_corpus
from lmlib.data.splits import Prepared, prepare
from lmlib.errors import LMError
from lmlib.model.build import Hidden, LanguageModel, build_model, count_parameters
from lmlib.training.checkpoint import (
    load_model_tensors,
    load_tensors,
    model_tensors,
    restore_rng,
    rng_tensors,
    save_tensors,
)
from lmlib.training.device import resolve_device, resolve_precision
from lmlib.training.distributed import Single
from lmlib.training.optim import UpdateRule
from lmlib.training.runs import RunPaths, read_config, read_metric_rows, truncate_metrics, write_config
from lmlib.training.weights import check_weights_file, planned_weights


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
    stopped: str = ""  # "", "completed", "early_stopping", "time_budget", or train()'s on_epoch reason ("pruned")


@dataclass
class Session:
    """The live objects of one training session."""

    config: RunConfig
    paths: RunPaths
    prepared: Prepared
    device: torch.device
    precision: str
    model: LanguageModel
    update: UpdateRule
    rng: np.random.Generator
    batches: dict[str, torch.Tensor]  # split name -> (batch, columns) ids on the device
    state: LoopState
    hidden: Hidden | None = None
    dist: Single = field(default_factory=Single)  # this process's share of a torchrun run (lmlib.training.distributed)


def open_session(config: RunConfig, paths: RunPaths, prepared: Prepared | None, dist: Single | None = None) -> Session:
    """Build the model and everything around it; resume from last.safetensors when there is one."""
    dist = dist or Single()
    # [distributed hook] rank 0 looks at the run directory; every rank gets its answer (or error)
    resuming = dist.from_main(paths.last.is_file)
    if resuming or dist.from_main(paths.config.is_file):
        dist.from_main(check_resumable, paths, config)
    if not resuming:
        dist.from_main(check_startable, paths)
    torch.manual_seed(config.train.seed)
    rng = np.random.default_rng(config.train.seed)
    data = config.data
    prepared = prepared or prepare(load_corpus(data.corpus), data.protocol, data.min_freq)
    # Sizes against the vocabulary, and a checkpoint's shapes against the config, before allocating.
    planned_weights(len(prepared.vocab), config.model)
    if resuming:
        dist.from_main(lambda: check_weights_file(paths.last, len(prepared.vocab), config.model, prefix="model/"))
    device = dist.device(resolve_device(config.runtime.device))  # [distributed hook] cuda:LOCAL_RANK
    precision = resolve_precision(config.runtime.precision, device)
    model = build_model(len(prepared.vocab), config.model).to(device)
    dist.seed_dropout(config.train.seed)  # [distributed hook] same weights on every rank, own dropout masks
    # [distributed hook] the global batch's rows, then this rank's share of them
    batches = dist.shard(batch_splits(prepared, config.data, config.train, device))
    update = UpdateRule(config.train, model, device, precision)
    dist.wrap(update, model, config.model)  # [distributed hook] the training forward goes through DDP
    session = Session(config, paths, prepared, device, precision, model, update, rng, batches, LoopState(), dist=dist)
    if resuming:
        restore(session)
    elif dist.is_main:  # [distributed hook] rank 0 alone writes
        paths.root.mkdir(parents=True, exist_ok=True)
        write_config(paths, config, describe_run(prepared, model, device, precision))
        prepared.vocab.save(paths.vocab)
        if prepared.casing is not None:
            save_casing(paths.casing, prepared.casing)
    return session


def check_resumable(paths: RunPaths, config: RunConfig) -> None:
    """A run directory may only be continued with the config it was started with (budgets and runtime aside)."""
    saved, _ = read_config(paths.root)
    changed = differences(saved, config, ignore=RESUMABLE)
    if changed:
        raise LMError(
            f"{paths.root} already holds a run with a different config ({', '.join(changed)}): "
            "choose another --run-dir, or pass --restart to start over there"
        )


def check_startable(paths: RunPaths) -> None:
    """Without a checkpoint a run cannot resume: refuse where starting afresh would duplicate or overwrite records.

    Only config.json and vocab.json (a run stopped before its first checkpoint) lose nothing:
    training is seeded, so starting over gives exactly the run that was interrupted.
    """
    recorded = [p.name for p in (paths.metrics, paths.model, paths.results) if p.exists()]
    if not recorded:
        return
    try:
        epochs = len(read_metric_rows(paths))
    except LMError:
        epochs = 0
    what = f"metrics for {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else " and ".join(recorded)
    raise LMError(
        f"{paths.root} has {what} but no checkpoint ({paths.last.name}): it cannot resume; "
        "delete the folder or pass --restart to start over"
    )


def describe_run(prepared: Prepared, model: LanguageModel, device: torch.device, precision: str) -> dict:
    """What config.json records beside the config: what `auto` and the corpus resolved to, and versions."""
    return {
        "resolved_device": str(device), "resolved_precision": precision,
        "corpus": prepared.corpus, "protocol": prepared.protocol, "min_freq": prepared.min_freq,
        "vocab_size": len(prepared.vocab), "split_tokens": prepared.split_tokens,
        "parameters": count_parameters(model), "torch": torch.__version__, "lmlib": __version__,
    }  # fmt: skip


def save_checkpoint(session: Session) -> None:
    """Write last.safetensors: weights, update rule, RNGs, hidden state and loop position."""
    tensors = {f"model/{k}": v for k, v in model_tensors(session.model).items()}
    update_tensors, update_header = session.update.state_tensors()
    rng_t, rng_header = rng_tensors(session.rng)
    tensors.update(update_tensors)
    tensors.update(rng_t)
    # [distributed hook] collectives on every rank: the whole batch's hidden state, every rank's
    # RNG, the epoch's loss sums over all ranks; then rank 0 alone writes
    dist = session.dist
    tensors.update(dist.rng_tensors())
    for i, (state, cell) in enumerate(dist.gather_hidden(session.hidden) or []):
        tensors[f"hidden/{i}/h"], tensors[f"hidden/{i}/c"] = state, cell
    loop = asdict(dist.global_state(session.state))
    if not dist.is_main:
        return
    # "optimization" is the key older checkpoints used for the update rule: kept so both read
    header = {"loop": loop, "optimization": update_header, "rng": rng_header, "lmlib": __version__,
              "ranks": dist.world_size}  # fmt: skip
    save_tensors(session.paths.last, tensors, header)


def restore(session: Session) -> None:
    """Load last.safetensors into the session (the inverse of `save_checkpoint`)."""
    path, dist = session.paths.last, session.dist
    tensors, header = dist.from_main(load_tensors, path)  # [distributed hook] rank 0 reads
    weights = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    load_model_tensors(session.model, weights, str(path))
    try:
        session.update.restore(tensors, header["optimization"])
        restore_rng(session.rng, tensors, header["rng"])
        session.state = dist.local_state(LoopState(**header["loop"]))  # [distributed hook] rank 0 holds the sums
        dist.restore_rng(tensors, header, session.config.train.seed, session.state)  # [distributed hook]
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a header lmlib did not write
        raise LMError(
            f"checkpoint {path} lacks what a resume needs ({type(err).__name__}: {err}): it was not written by "
            "this version of lmlib; pass --restart to start the run over"
        ) from None
    if session.state.stopped in ("completed", "time_budget"):
        session.state.stopped = ""  # more epochs or a larger budget continue a finished run
    layers = sorted({int(k.split("/")[1]) for k in tensors if k.startswith("hidden/")})
    device = session.device
    hidden = [(tensors[f"hidden/{i}/h"].to(device), tensors[f"hidden/{i}/c"].to(device)) for i in layers]
    session.hidden = session.dist.shard_hidden(hidden or None)  # [distributed hook] this rank's rows
    if session.dist.is_main:
        truncate_metrics(session.paths, session.state.epoch)


def save_best_weights(session: Session, valid_loss: float) -> None:
    """Write model.safetensors: the weights of the best validation epoch so far."""
    if not session.dist.is_main:  # [distributed hook] every rank holds the same weights; rank 0 writes
        return
    header = {"epoch": session.state.epoch, "valid_loss": valid_loss}
    save_tensors(session.paths.model, model_tensors(session.model), header)


def load_best_weights(session: Session) -> None:
    """Put model.safetensors (the best validation epoch's weights) into the session's model."""
    tensors, _ = session.dist.from_main(_read_best_weights, session.paths)  # [distributed hook] rank 0 reads
    load_model_tensors(session.model, tensors, str(session.paths.model))


def _read_best_weights(paths: RunPaths) -> tuple[dict[str, torch.Tensor], dict]:
    if not paths.model.is_file():
        raise LMError(f"{paths.root} has no best weights: training stopped before the first validation")
    return load_tensors(paths.model)


@contextmanager
def stop_on_sigint():
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
