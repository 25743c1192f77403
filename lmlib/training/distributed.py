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
- rank 0 alone writes (config, vocabulary, checkpoints, metrics, results); what must be read
  (a checkpoint to resume, the best weights) rank 0 reads and broadcasts, so the other
  machines of a multi-node run need no copy of the run directory;
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

A plain `python -m lmlib train` gets `Single`, whose hooks do nothing: no process group.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
from collections.abc import Callable
from typing import Any

import torch

from lmlib.errors import LMError
from lmlib.model.head import Hidden
from lmlib.training.evaluate import evaluate_loss


class Single:
    """One process: every hook is the identity; nothing to agree on, nothing to share."""

    rank, world_size, local_rank, is_main = 0, 1, 0, True

    def device(self, device: torch.device) -> torch.device:
        return device

    def seed_dropout(self, seed: int) -> None:
        """Nothing: one process draws its dropout masks from the run's seed."""

    def shard(self, batches: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return batches

    def wrap(self, update, model: torch.nn.Module, config) -> None:
        """Nothing: the update rule calls the model itself."""

    def agree(self, *flags: bool) -> tuple[bool, ...]:
        return flags

    def from_main(self, fn: Callable, *args) -> Any:
        return fn(*args)

    def evaluate(self, model, data: torch.Tensor, bptt: int) -> float:
        return evaluate_loss(model, data, bptt)

    def epoch_totals(self, state) -> None:
        """Nothing: the loop's sums are already the whole batch's."""

    def global_state(self, state):
        return state

    def local_state(self, state):
        return state

    def gather_hidden(self, hidden: Hidden | None) -> Hidden | None:
        return hidden

    def shard_hidden(self, hidden: Hidden | None) -> Hidden | None:
        return hidden

    def rng_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def restore_rng(self, tensors: dict, header: dict, seed: int, state) -> None:
        """Nothing: rng/torch in the checkpoint is this process's own."""


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
        """Rank 0 runs fn (reads a file, decides); every rank gets its result, or its LMError."""
        box: list = [None]
        if self.is_main:
            try:
                box[0] = (fn(*args), None)
            except LMError as err:
                box[0] = (None, str(err))
        torch.distributed.broadcast_object_list(box, src=0, device=self._cpu)
        result, error = box[0]
        if error is not None:
            raise LMError(error)
        return result

    def _sum(self, values: list[float], device: torch.device) -> list[float]:
        total = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(total)
        return total.tolist()

    def evaluate(self, model, data: torch.Tensor, bptt: int) -> float:
        """The mean NLL over every rank's rows: local sums all-reduced, as one process computes it."""
        count = data.size(0) * (data.size(1) - 1)  # the targets evaluate_loss scores
        nll = evaluate_loss(model, data, bptt) * count if count else 0.0
        total, tokens = self._sum([nll, float(count)], self._cpu)
        return total / tokens

    def epoch_totals(self, state) -> None:
        """The epoch's training NLL sum and tokens over all ranks (for the metrics row)."""
        state.loss_sum, tokens = self._sum([state.loss_sum, float(state.tokens)], self._cpu)
        state.tokens = int(tokens)

    def global_state(self, state):
        """The loop state as a checkpoint stores it: this epoch's sums over all ranks."""
        loss_sum, tokens = self._sum([state.loss_sum, float(state.tokens)], self._cpu)
        return dataclasses.replace(state, loss_sum=loss_sum, tokens=int(tokens))

    def local_state(self, state):
        """Back from a checkpoint: rank 0 carries the epoch's sums so far, the others start at 0."""
        return state if self.is_main else dataclasses.replace(state, loss_sum=0.0, tokens=0)

    def gather_hidden(self, hidden: Hidden | None) -> Hidden | None:
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

    def rng_tensors(self) -> dict[str, torch.Tensor]:
        """Every rank's torch RNG state (rank 0's is also the checkpoint's rng/torch)."""
        mine = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            mine["cuda"] = torch.cuda.get_rng_state()
        states: list = [None] * self.world_size
        torch.distributed.all_gather_object(states, mine)
        return {f"rng/rank{r}/{kind}": t for r, s in enumerate(states) for kind, t in s.items()}

    def restore_rng(self, tensors: dict, header: dict, seed: int, state) -> None:
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
