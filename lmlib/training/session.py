"""One training session: the live objects of a run, its checkpoint, and resuming from it.

A checkpoint (`last.safetensors`, one atomic file) holds the weights, the update rule's
state (optimiser, scheduler, grad scaler, NT-ASGD averaging), both random-number states,
the hidden state and the loop's position inside the epoch, so that on a CPU with a fixed
seed a resumed run ends with exactly the metrics of an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from lmlib import __version__
from lmlib.config import RunConfig
from lmlib.data.batching import batch_splits
from lmlib.data.corpus import load_corpus
from lmlib.data.splits import Prepared, prepare
from lmlib.errors import LMError
from lmlib.model.build import Hidden, LanguageModel, build_model, count_parameters
from lmlib.training.checkpoint import load_model_tensors, load_tensors, model_tensors, restore_rng, rng_tensors
from lmlib.training.device import cpu_model, resolve_device, resolve_precision
from lmlib.training.distributed import Single
from lmlib.training.initial import StartFrom, initial_weights
from lmlib.training.optim import UpdateRule
from lmlib.training.runs import RunPaths, read_best_weights
from lmlib.training.weights import planned_weights


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
    step: int = 0  # update steps over the whole run (TensorBoard's x axis; absent from older checkpoints)


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
    dist: Single = field(default_factory=Single)  # this process's steps (lmlib.training.distributed)


def open_session(
    config: RunConfig,
    paths: RunPaths,
    prepared: Prepared | None,
    dist: Single | None = None,
    init_from: StartFrom | str | os.PathLike | None = None,
) -> Session:
    """Build the model and everything around it; resume from last.safetensors when there is one.

    A new run starts from `init_from`'s weights when given (lmlib.training.initial); a resumed
    run from its checkpoint, whatever `init_from` says.

    The steps go through `dist` (lmlib.training.distributed), which under torchrun shares them
    between processes; read alone, this is the one-process story.
    """
    dist = dist or Single()
    resuming = dist.check_run_dir(paths, config)  # resume, start, or refuse (a different config, lost records)
    torch.manual_seed(config.train.seed)
    rng = np.random.default_rng(config.train.seed)
    data = config.data
    prepared = prepared or prepare(load_corpus(data.corpus), data.protocol, data.min_freq)
    # Sizes against the vocabulary, and a checkpoint's shapes against the config, before allocating.
    planned_weights(len(prepared.vocab), config.model)
    if resuming:
        dist.check_checkpoint(paths, len(prepared.vocab), config.model)
    device = dist.device(resolve_device(config.runtime.device))
    precision = resolve_precision(config.runtime.precision, device)
    model = build_model(len(prepared.vocab), config.model)
    started_from = None
    if init_from is not None and not resuming:  # a resumed run's source was checked by train()
        started_from = initial_weights(model, prepared.vocab, StartFrom.of(init_from))
    model = model.to(device)
    dist.seed_dropout(config.train.seed)
    batches = dist.shard(batch_splits(prepared, config.data, config.train, device))
    update = UpdateRule(config.train, model, device, precision)
    dist.wrap(update, model, config.model)
    session = Session(config, paths, prepared, device, precision, model, update, rng, batches, LoopState(), dist=dist)
    if resuming:
        restore(session)
    else:
        run = describe_run(prepared, model, device, precision)
        if started_from:
            run["init_from"] = started_from  # the card's training command and history name it
        dist.write_run_files(paths, config, prepared, run)
        # The first checkpoint comes before any metrics or weights: whatever write fails later (a full
        # disk), the same command resumes from a checkpoint instead of finding records it cannot continue.
        save_checkpoint(session)
    return session


def describe_run(prepared: Prepared, model: LanguageModel, device: torch.device, precision: str) -> dict:
    """What config.json records beside the config: what `auto` and the corpus resolved to, and versions."""
    return {
        "resolved_device": str(device),
        "resolved_precision": precision,
        "corpus": prepared.corpus,
        "protocol": prepared.protocol,
        "min_freq": prepared.min_freq,
        "vocab_size": len(prepared.vocab),
        "split_tokens": prepared.split_tokens,
        "parameters": count_parameters(model),
        "torch": torch.__version__,
        "lmlib": __version__,
        "machine": describe_machine(device),
    }


def describe_machine(device: torch.device) -> str:
    """The processor that trains: the GPU's name, else the CPU's and its cores (for the model card)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {os.cpu_count()} cores"


def save_checkpoint(session: Session) -> None:
    """Write last.safetensors: weights, update rule, RNGs, hidden state and loop position (the whole batch's)."""
    state, hidden, rank_rngs = session.dist.whole_batch(session.state, session.hidden)
    update_tensors, update_header = session.update.state_tensors()
    rng_t, rng_header = rng_tensors(session.rng)
    tensors = {f"model/{k}": v for k, v in model_tensors(session.model).items()}
    tensors.update(update_tensors)
    tensors.update(rng_t)
    tensors.update(rank_rngs)
    for i, (h, c) in enumerate(hidden or []):
        tensors[f"hidden/{i}/h"], tensors[f"hidden/{i}/c"] = h, c
    header = {
        "loop": asdict(state),
        "update": update_header,
        "rng": rng_header,
        "lmlib": __version__,
        "ranks": session.dist.world_size,
    }
    session.dist.save_tensors(session.paths.last, tensors, header)


def restore(session: Session) -> None:
    """Load last.safetensors into the session (the inverse of `save_checkpoint`)."""
    path, dist = session.paths.last, session.dist
    tensors, header = dist.load_tensors(load_tensors, path)
    weights = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    load_model_tensors(session.model, weights, str(path))
    try:
        # "optimization": the key older checkpoints gave the update rule's state
        session.update.restore(tensors, header["update"] if "update" in header else header["optimization"])
        restore_rng(session.rng, tensors, header["rng"])
        state, hidden = LoopState(**header["loop"]), _saved_hidden(tensors, session.device)
        session.state, session.hidden = dist.my_share(state, hidden, tensors, header, session.config.train.seed)
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a header lmlib did not write
        raise LMError(
            f"checkpoint {path} lacks what a resume needs ({type(err).__name__}: {err}): it was not written by "
            "this version of lmlib; pass --restart to start the run over"
        ) from None
    if session.state.stopped in ("completed", "time_budget"):
        session.state.stopped = ""  # more epochs or a larger budget continue a finished run
    dist.drop_metrics_from(session.paths, session.state.epoch)


def _saved_hidden(tensors: dict[str, torch.Tensor], device: torch.device) -> Hidden | None:
    """The hidden state a mid-epoch checkpoint holds (hidden/<layer>/h and /c), None at an epoch's end."""
    layers = sorted({int(k.split("/")[1]) for k in tensors if k.startswith("hidden/")})
    return [(tensors[f"hidden/{i}/h"].to(device), tensors[f"hidden/{i}/c"].to(device)) for i in layers] or None


def save_best_weights(session: Session, valid_loss: float) -> None:
    """Write model.safetensors: the weights of the best validation epoch so far."""
    header = {"epoch": session.state.epoch, "valid_loss": valid_loss}
    session.dist.save_tensors(session.paths.model, model_tensors(session.model), header)


def load_best_weights(session: Session) -> None:
    """Put model.safetensors (the best validation epoch's weights) into the session's model."""
    tensors, _ = session.dist.load_tensors(read_best_weights, session.paths)
    load_model_tensors(session.model, tensors, str(session.paths.model))


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
