"""Data-parallel training under torchrun: one model, N processes, DistributedDataParallel.

    torchrun --standalone --nproc_per_node=2 -m lmlib train --preset cpu --run-dir runs/ddp

How the work is split (batchify's picture with a global batch of B = 4 rows, N = 2 ranks):

        ┌ a b c d e f ┐   row 0  ┐ rank 0
        │ g h i j k l │   row 1  ┘
        │ m n o p q r │   row 2  ┐ rank 1
        └ s t u v w x ┘   row 3  ┘

Each split is batchified with the GLOBAL batch size and rank r takes rows [r·B/N, (r+1)·B/N),
so every row is the same contiguous stretch of text as on one process and the hidden state
carries from window to window exactly as there (a shuffling DistributedSampler would cut
the stream). All ranks run the same windows (the numpy RNG that draws variable BPTT lengths
is seeded alike). DDP averages the gradients; each rank's loss is the mean over B/N rows of
equal length, so the average is the one-process mean over B rows: the same update, up to
float rounding.

Who does what:
- rank 0 alone holds, reads and writes the run directory (config, vocabulary, checkpoints,
  metrics, results) and broadcasts what it read, or the error it met, to the others
  (`from_main`), so the other machines of a multi-node run need no copy of the run directory,
  and a refusal (another trainer holds the directory, a full disk) is rank 0's one line while
  the other ranks exit quietly;
- validation and test: each rank evaluates its share of the eval rows (uneven shares are
  fine: eval_batch_size need not divide) and the NLL sums and token counts are all-reduced
  in float64. That is N times less work than rank 0 alone (which would also leave the other
  ranks waiting in a collective, against NCCL's timeout) and the same mean as one process;
- decisions that depend on a clock or a signal (time budget, Ctrl-C, mid-epoch checkpoint)
  are all-reduced (MAX) so that all ranks take them at the same step. This is one
  all-reduce of 3 integers per step, on gloo over the CPU even when training runs on GPUs
  (the process group has both backends), so it never waits for the GPU: the loop keeps its
  no-host-sync-per-step design. benchmarks/ddp_throughput.py measures what it costs.
  Early stopping depends only on the all-reduced validation loss, so it needs nothing;
- the checkpoint holds the whole batch's hidden state (all-gathered on save; each rank takes
  its rows back on resume), so a run resumes with any number of ranks that divides the batch;
- dropout masks differ per rank (ranks > 0 reseed torch with seed + rank); every rank's
  torch RNG state is saved, and restored when resuming with the same number of ranks. Runs
  with dropout therefore equal a one-process run only in distribution, not bit for bit.

The training code (session.py, loop.py) is written for one process and calls the steps of
`Single` (hold the run directory, check it, write its files, evaluate, checkpoint...). A plain
`python -m lmlib train` gets `Single` itself: each step is the one-process step, and there is
no process group. Under torchrun each process gets a `DataParallel`, which takes the same steps
across ranks through a few overridden primitives; the rank handling lives here, nowhere else.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from lmlib.errors import LMError, ReportedElsewhere
from lmlib.model.head import Hidden
from lmlib.training.checkpoint import save_tensors
from lmlib.training.evaluate import evaluate_loss
from lmlib.training.ownership import clear_run, own_run_dir
from lmlib.training.runs import (
    RunPaths,
    append_metrics,
    check_run_dir,
    finished_results,
    truncate_metrics,
    write_results,
    write_run_files,
)
from lmlib.training.tracking import Tracker, open_tracker
from lmlib.training.weights import check_weights_file


class Single:
    """One process. Each method is a whole step of the run as every process takes it; here each is the
    one-process step itself (nothing to share, nothing to agree on), and DataParallel overrides the few
    primitives (`from_main`, `agree`, the sums and gathers) that make the same steps work across ranks."""

    rank, world_size, local_rank, is_main = 0, 1, 0, True

    # -- the run directory: rank 0 alone reads and writes it; every rank gets its answers (or errors) ------
    @contextmanager
    def own_run_dir(self, paths: RunPaths, restart: bool = False) -> Iterator[None]:
        """Hold the run directory while training (one writer at a time); `restart` deletes the run's files first."""
        with ExitStack() as held:

            def hold():
                held.enter_context(own_run_dir(paths.root))
                if restart:
                    clear_run(paths)

            self.from_main(hold)  # another trainer's lock is one LMError, on every rank
            yield

    def finished_results(self, paths: RunPaths, config) -> dict | None:
        """results.json when the run already finished with exactly this config (nothing to train), else None."""
        return self.from_main(finished_results, paths, config)

    def check_run_dir(self, paths: RunPaths, config) -> bool:
        """Whether the run resumes from its checkpoint (True) or starts (False); an LMError where it may not."""
        return self.from_main(check_run_dir, paths, config)

    def check_checkpoint(self, paths: RunPaths, vocab_size: int, model_config) -> None:
        """The checkpoint's shapes against the config and vocabulary, before the model is built."""
        self.from_main(check_weights_file, paths.last, vocab_size, model_config, "model/")

    def write_run_files(self, paths: RunPaths, config, prepared, run: dict) -> None:
        """config.json, vocab.json and casing.json of a new run."""
        self.from_main(write_run_files, paths, config, prepared, run)

    def save_tensors(self, path, tensors: dict[str, torch.Tensor], header: dict) -> None:
        """Write a checkpoint or the best weights (every rank holds the same weights: rank 0 writes them)."""
        self.from_main(save_tensors, path, tensors, header)

    def load_tensors(self, read: Callable, *args) -> tuple[dict[str, torch.Tensor], dict]:
        """What `read(*args)` reads (a checkpoint, the best weights): rank 0 reads, every rank receives."""
        return self.from_main(read, *args)

    def write_metrics(self, paths: RunPaths, row: dict) -> None:
        """Append the epoch's row to metrics.csv."""
        self.from_main(append_metrics, paths, row)

    def drop_metrics_from(self, paths: RunPaths, epoch: int) -> None:
        """On resume: drop the metrics rows of `epoch` and later, which the run trains again."""
        self.from_main(truncate_metrics, paths, epoch)

    def write_results(self, paths: RunPaths, results: dict) -> dict:
        """results.json (completed from metrics.csv); every rank gets what was written."""
        return self.from_main(write_results, paths, results)

    def ask(self, hook: Callable, *args) -> Any:
        """The caller's hook (a sweep's pruner, which talks to its storage), asked once; its answer holds for all."""
        return self.from_main(hook, *args)

    def tracker(self, paths: RunPaths, logger: str | None, step: int, progress: bool) -> Tracker:
        """Progress bars and TensorBoard, shown by rank 0 only (the others train in silence)."""
        return open_tracker(paths.root, logger, step, progress) if self.is_main else Tracker()

    # -- setting up: this process's device, seed, rows and model ------------------------------------------
    def device(self, device: torch.device) -> torch.device:
        """The device this process computes on."""
        return device

    def seed_dropout(self, seed: int) -> None:
        """Nothing: one process draws its dropout masks from the run's seed."""

    def shard(self, batches: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This process's rows of each batchified split: all of them."""
        return batches

    def wrap(self, update, model: torch.nn.Module, config) -> None:
        """Nothing: the update rule calls the model itself."""

    # -- training: decisions, sums and the checkpoint's view of the whole batch --------------------------
    def agree(self, *flags: bool) -> tuple[bool, ...]:
        """The same decisions (time budget, Ctrl-C, a checkpoint due) on every process."""
        return flags

    def evaluate(self, model, data: torch.Tensor, bptt: int, progress: str | None = None) -> float:
        """The mean loss per token over every process's rows of `data` (`progress`: a bar's name)."""
        return evaluate_loss(model, data, bptt, progress=progress)

    def epoch_totals(self, state) -> None:
        """The epoch's training loss sums over every process's rows (here: already the whole batch's)."""

    def whole_batch(self, state, hidden: Hidden | None) -> tuple[Any, Hidden | None, dict[str, torch.Tensor]]:
        """What a checkpoint stores: the loop state, the whole batch's hidden state and every process's dropout
        RNG state (here: this process's own, which the checkpoint already holds)."""
        return state, hidden, {}

    def my_share(self, state, hidden: Hidden | None, tensors: dict, header: dict, seed: int):
        """(loop state, hidden state) of this process from a checkpoint's whole-batch view, its RNG restored."""
        return state, hidden

    # -- the primitive the steps above share --------------------------------------------------------------
    def from_main(self, fn: Callable, *args) -> Any:
        """Rank 0 runs fn (reads or writes the run directory, decides); every rank gets its result or LMError."""
        return fn(*args)


class DataParallel(Single):
    """One of N torchrun processes (ranks) training one model with DistributedDataParallel."""

    def __init__(self, rank: int, world_size: int, local_rank: int):
        self.rank, self.world_size, self.local_rank, self.is_main = rank, world_size, local_rank, rank == 0
        self._cpu = torch.device("cpu")

    # -- setting up -------------------------------------------------------------------------
    def device(self, device: torch.device) -> torch.device:
        """Each rank its own GPU (cuda:LOCAL_RANK); CPUs are shared."""
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        elif device.type != "cpu":
            raise LMError(f"data-parallel training runs on CUDA GPUs or CPUs, not {device.type}: set --device cpu")
        return device

    def seed_dropout(self, seed: int) -> None:
        """Rank 0 keeps the run's stream (so one rank equals one process); the others reseed."""
        if self.rank:
            torch.manual_seed(seed + self.rank)

    def shard(self, batches: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This rank's rows of each (global batch, columns) split: equal shares of train, any of eval."""
        rows = batches["train"].size(0)
        if rows % self.world_size:
            raise LMError(
                f"batch_size {rows} does not divide among {self.world_size} processes: choose a batch size "
                f"that is a multiple of {self.world_size} (it is the global batch, split by rows)"
            )
        return {split: data[self._rows(data.size(0))].contiguous() for split, data in batches.items()}

    def _rows(self, rows: int) -> slice:
        return slice(self.rank * rows // self.world_size, (self.rank + 1) * rows // self.world_size)

    def wrap(self, update, model: torch.nn.Module, config) -> None:
        """The update rule's forward goes through DDP (gradient all-reduce); everything else uses `model`."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        # The adaptive softmax skips a tail cluster that no target of this rank's window falls
        # into, leaving its parameters without a gradient on that step: DDP must look for them.
        update.model = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=config.adaptive_softmax)

    # -- collectives --------------------------------------------------------------------------
    def agree(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag true on any rank is true on all (one small all-reduce on the CPU group)."""
        votes = torch.tensor([int(f) for f in flags], dtype=torch.int32)
        torch.distributed.all_reduce(votes, op=torch.distributed.ReduceOp.MAX)
        return tuple(bool(v) for v in votes.tolist())

    def from_main(self, fn: Callable, *args) -> Any:
        """Rank 0 runs fn (reads or writes the run directory, decides); every rank gets its result, or its LMError.

        The other ranks raise that error as ReportedElsewhere: rank 0 prints it, they exit quietly (status 2),
        instead of each adding its own traceback when rank 0 leaves the process group."""
        box: list = [None]
        if self.is_main:
            try:
                box[0] = (fn(*args), None)
            except LMError as err:
                box[0] = (None, str(err))
        torch.distributed.broadcast_object_list(box, src=0, device=self._cpu)
        result, error = box[0]
        if error is not None:
            raise LMError(error) if self.is_main else ReportedElsewhere(error)
        return result

    def _sum(self, values: list[float], device: torch.device) -> list[float]:
        total = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(total)
        return total.tolist()

    def evaluate(self, model, data: torch.Tensor, bptt: int, progress: str | None = None) -> float:
        """The mean NLL over every rank's rows: local sums all-reduced, as one process computes it."""
        count = data.size(0) * (data.size(1) - 1)  # the targets evaluate_loss scores
        nll = evaluate_loss(model, data, bptt, progress=progress if self.is_main else None) * count if count else 0.0
        total, tokens = self._sum([nll, float(count)], self._cpu)
        return total / tokens

    def epoch_totals(self, state) -> None:
        """The epoch's training NLL sum and tokens over all ranks (for the metrics row)."""
        state.loss_sum, tokens = self._sum([state.loss_sum, float(state.tokens)], self._cpu)
        state.tokens = int(tokens)

    def whole_batch(self, state, hidden: Hidden | None) -> tuple[Any, Hidden | None, dict[str, torch.Tensor]]:
        """What a checkpoint stores: this epoch's loss sums over all ranks, every rank's rows of the hidden
        state (so that any number of ranks that divides the batch can resume) and every rank's dropout RNG."""
        rngs = self._rng_tensors()
        hidden = self._gather_hidden(hidden)
        loss_sum, tokens = self._sum([state.loss_sum, float(state.tokens)], self._cpu)
        return dataclasses.replace(state, loss_sum=loss_sum, tokens=int(tokens)), hidden, rngs

    def my_share(self, state, hidden: Hidden | None, tensors: dict, header: dict, seed: int):
        """Back from a checkpoint: rank 0 carries the epoch's sums so far (the others start at 0), each rank
        takes its rows of the hidden state and its own dropout RNG (or a fresh one: see _restore_rng)."""
        self._restore_rng(tensors, header, seed, state)
        state = state if self.is_main else dataclasses.replace(state, loss_sum=0.0, tokens=0)
        return state, self.shard_hidden(hidden)

    def _gather_hidden(self, hidden: Hidden | None) -> Hidden | None:
        """Every rank's rows of the hidden state, concatenated in rank order: the whole batch's."""
        if hidden is None:
            return None
        return [(self._gather_rows(h), self._gather_rows(c)) for h, c in hidden]

    def _gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:  # (layers, B/N, H) -> (layers, B, H)
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=1)

    def shard_hidden(self, hidden: Hidden | None) -> Hidden | None:
        """This rank's rows of a whole-batch hidden state (from a checkpoint of any number of ranks)."""
        if hidden is None:
            return None
        rows = self._rows(hidden[0][0].size(1))
        return [(h[:, rows].contiguous(), c[:, rows].contiguous()) for h, c in hidden]

    def _rng_tensors(self) -> dict[str, torch.Tensor]:
        """Every rank's torch RNG state (rank 0's is also the checkpoint's rng/torch)."""
        mine = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            mine["cuda"] = torch.cuda.get_rng_state()
        states: list = [None] * self.world_size
        torch.distributed.all_gather_object(states, mine)
        return {f"rng/rank{r}/{kind}": t for r, s in enumerate(states) for kind, t in s.items()}

    def _restore_rng(self, tensors: dict, header: dict, seed: int, state) -> None:
        """This rank's saved dropout RNG when the rank count is the same; a fresh derived seed otherwise."""
        if header.get("ranks") == self.world_size and f"rng/rank{self.rank}/torch" in tensors:
            torch.set_rng_state(tensors[f"rng/rank{self.rank}/torch"])
            if f"rng/rank{self.rank}/cuda" in tensors and torch.cuda.is_available():
                torch.cuda.set_rng_state(tensors[f"rng/rank{self.rank}/cuda"])
        elif self.rank:
            # a seed of its own for this rank at this point of the run: never the masks of a step already seen
            torch.manual_seed(seed + self.rank + 1_000_003 * (state.epoch * 1_000_000 + state.column + 1))


_CURRENT: list[Single] = []  # the process group is per process, so this is too


def current() -> Single:
    """This process's place in the run: Single, or a DataParallel rank when started by torchrun."""
    if not _CURRENT:
        _CURRENT.append(_from_environment())
    return _CURRENT[0]


def _from_environment() -> Single:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Single()
    import torch.distributed as dist

    if not dist.is_available():
        raise LMError("this torch build has no torch.distributed: data-parallel training needs one that does")
    # Both backends in one group: NCCL for CUDA tensors (gradients, hidden states), gloo for
    # CPU ones (flags, broadcast objects, eval sums) so that agreeing never waits for a GPU.
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)  # MASTER_ADDR, RANK, WORLD_SIZE: torchrun's env://
        atexit.register(_close)
    return DataParallel(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _close() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
